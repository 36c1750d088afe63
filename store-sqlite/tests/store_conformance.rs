//! The store conformance suite on SQLite, on all three adapters.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use errand_store_sqlite::SqliteStore;

/// A fresh database file under the target directory.
struct File(PathBuf);

impl errand_conformance::durable::Place for File {
    type Store = SqliteStore;

    fn fresh() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-conformance");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            drop(std::fs::remove_file(name));
        }
        File(path)
    }

    fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.0).expect("the store opens")
    }
}

mod tokio_adapter {
    use super::*;

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

    errand_conformance::store_suite!(Tokio, File);
}

mod smol_adapter {
    use super::*;

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

    errand_conformance::store_suite!(Smol, File);
}

mod threads_adapter {
    use super::*;

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

    errand_conformance::store_suite!(Threads, File);
}
