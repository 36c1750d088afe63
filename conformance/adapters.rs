//! The three adapters as the conformance suite drives them, for the store crates' tests
//! (`#[path]`-included by `store-sqlite/tests/store_conformance.rs` and
//! `store-postgres/tests/store_conformance.rs`; not compiled on its own). The adapters'
//! own test suites define theirs beside their runtime's specifics.

pub(crate) mod tokio_adapter {
    use std::sync::OnceLock;

    pub(crate) struct Tokio;

    fn runtime() -> &'static tokio::runtime::Runtime {
        static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_time()
                .build()
                .expect("a tokio runtime")
        })
    }

    impl errand_conformance::Adapter for Tokio {
        type Runtime = errand_tokio::Tokio;

        fn builder() -> errand_tokio::Builder {
            errand_tokio::builder_on(runtime().handle().clone())
        }

        fn run_inside<F>(future: F) -> F::Output
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            runtime().block_on(runtime().spawn(future)).unwrap()
        }
    }
}

pub(crate) mod smol_adapter {

    pub(crate) struct Smol;

    impl errand_conformance::Adapter for Smol {
        type Runtime = errand_smol::Smol;

        fn builder() -> errand_smol::Builder {
            errand_smol::builder()
        }

        fn run_inside<F>(future: F) -> F::Output
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            smol::block_on(smol::spawn(future))
        }
    }
}

pub(crate) mod threads_adapter {

    pub(crate) struct Threads;

    impl errand_conformance::Adapter for Threads {
        type Runtime = errand_threads::Threads;

        fn builder() -> errand_threads::Builder {
            errand_threads::builder()
        }

        fn run_inside<F>(future: F) -> F::Output
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            futures_lite_block_on(future)
        }
    }

    /// Runs `future` on a thread of its own (the threads runtime's "task").
    fn futures_lite_block_on<F>(future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        std::thread::spawn(move || smol::block_on(future))
            .join()
            .unwrap()
    }
}
