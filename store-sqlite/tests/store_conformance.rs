//! The store conformance suite on SQLite, on all three adapters.

use std::path::PathBuf;
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

#[path = "../../conformance/adapters.rs"]
mod adapters;

mod tokio_adapter {
    use super::File;
    errand_conformance::store_suite!(crate::adapters::tokio_adapter::Tokio, File);
}

mod smol_adapter {
    use super::File;
    errand_conformance::store_suite!(crate::adapters::smol_adapter::Smol, File);
}

mod threads_adapter {
    use super::File;
    errand_conformance::store_suite!(crate::adapters::threads_adapter::Threads, File);
}
