//! The conformance suite on the tokio adapter (a multi-threaded runtime shared by the
//! tests; the test threads themselves are outside it, as a web handler's caller would be).

use std::sync::OnceLock;

struct TokioAdapter;

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

impl errand_conformance::Adapter for TokioAdapter {
    type Runtime = errand_tokio::Tokio;

    fn builder() -> errand_tokio::Builder {
        errand_tokio::builder_on(runtime().handle().clone())
    }

    fn run_inside<F>(future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        runtime()
            .block_on(runtime().spawn(future))
            .expect("the tokio task ran to its end")
    }
}

errand_conformance::suite!(TokioAdapter);
