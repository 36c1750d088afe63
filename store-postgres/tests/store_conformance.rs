//! errand's store conformance suite on PostgreSQL, on all three adapters: the same checks
//! the SQLite store passes, unchanged. Each check gets a schema of its own on the server
//! `DATABASE_URL` names (or a throwaway cluster the test process starts).

use errand_conformance::durable::Place;
use errand_store_postgres::PgStore;

/// A fresh schema on the test server.
struct Schema {
    url: String,
    schema: String,
}

impl Place for Schema {
    type Store = PgStore;

    fn fresh() -> Self {
        Self {
            url: errand_conformance::postgres::url(),
            schema: errand_conformance::postgres::fresh_schema("conf"),
        }
    }

    fn open(&self) -> PgStore {
        PgStore::options(&self.url)
            .schema(&self.schema)
            .open()
            .expect("the PostgreSQL store opens")
    }
}

#[path = "../../conformance/adapters.rs"]
mod adapters;

mod tokio_adapter {
    use super::Schema;
    errand_conformance::store_suite!(crate::adapters::tokio_adapter::Tokio, Schema);
}

mod smol_adapter {
    use super::Schema;
    errand_conformance::store_suite!(crate::adapters::smol_adapter::Smol, Schema);
}

mod threads_adapter {
    use super::Schema;
    errand_conformance::store_suite!(crate::adapters::threads_adapter::Threads, Schema);
}
