//! The schema: versioned migrations, applied at open under an advisory lock (so two nodes
//! starting at once migrate once), and a refusal of a schema newer than this crate.

use errand_core::engine::{StoreError, StoreErrorKind};

use crate::conn::Conn;

/// The schema version this crate writes.
pub(crate) const VERSION: u32 = 1;

/// Migration `n` (1-based) takes the schema from version `n - 1` to `n`.
const MIGRATIONS: [&str; VERSION as usize] = ["
CREATE TABLE errand_jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    payload text NOT NULL,
    state smallint NOT NULL,
    priority smallint NOT NULL,
    run_at bigint NOT NULL,
    attempt integer NOT NULL,
    failures integer NOT NULL,
    retry_max integer NOT NULL,
    retry_initial_ms bigint NOT NULL,
    retry_multiplier double precision NOT NULL,
    retry_max_delay_ms bigint NOT NULL,
    retry_jitter smallint NOT NULL,
    timeout_ms bigint,
    result_ttl_ms bigint NOT NULL,
    unique_key text,
    schedule text,
    progress double precision NOT NULL DEFAULT 0,
    message text,
    error text,
    result text,
    created_at bigint NOT NULL,
    started_at bigint,
    finished_at bigint,
    expires_at bigint,
    node text,
    lease_until bigint
);
-- Claims: the highest priority, then the earliest due, of the pending jobs.
CREATE INDEX errand_jobs_due ON errand_jobs (priority DESC, run_at, id) WHERE state = 0;
-- The next pending job's due time.
CREATE INDEX errand_jobs_next ON errand_jobs (run_at) WHERE state = 0;
-- Listing pending jobs in id order.
CREATE INDEX errand_jobs_pending ON errand_jobs (id) WHERE state = 0;
-- Running jobs: listing them, heartbeats, rescuing expired leases.
CREATE INDEX errand_jobs_running ON errand_jobs (id) WHERE state = 1;
-- At most one unfinished job per unique key.
CREATE UNIQUE INDEX errand_jobs_unique ON errand_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1);
-- Finished jobs to delete after the retention.
CREATE INDEX errand_jobs_finished ON errand_jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Results to prune.
CREATE INDEX errand_jobs_expiry ON errand_jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE errand_schedules (
    name text PRIMARY KEY,
    body text NOT NULL
);
"];

/// A stable 64-bit key for an advisory lock named `what` in `schema`.
pub(crate) fn lock_key(schema: &str, what: &str) -> i64 {
    // FNV-1a: stable across processes and builds (unlike the std hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes().chain([b':']).chain(what.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Creates `schema` if needed and brings it to [`VERSION`]: refuses a schema written by
/// a newer errand, and tables named like errand's that errand did not make.
pub(crate) fn migrate(conn: &mut Conn, schema: &str) -> Result<(), StoreError> {
    let key = lock_key(schema, "migrate");
    conn.run("migrating the schema", async |client| {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .await?;
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await?;
        let tables: Vec<String> = tx
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                &[&schema],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let has = |name: &str| tables.iter().any(|table| table == name);
        if !has("errand_meta") {
            if has("errand_jobs") || has("errand_schedules") {
                return Ok(Err(StoreError::new(
                    StoreErrorKind::NotErrand,
                    format!("schema {schema} has errand's table names but no errand_meta"),
                )));
            }
            tx.batch_execute(
                "CREATE TABLE errand_meta (key text PRIMARY KEY, value text NOT NULL); \
                 INSERT INTO errand_meta (key, value) VALUES ('schema_version', '0')",
            )
            .await?;
        }
        let version: Option<String> = tx
            .query_opt(
                "SELECT value FROM errand_meta WHERE key = 'schema_version'",
                &[],
            )
            .await?
            .map(|row| row.get(0));
        let Some(version) = version.and_then(|value| value.parse::<u32>().ok()) else {
            return Ok(Err(StoreError::new(
                StoreErrorKind::NotErrand,
                format!("schema {schema}'s errand_meta has no schema_version number"),
            )));
        };
        if version > VERSION {
            return Ok(Err(StoreError::new(
                StoreErrorKind::NewerSchema,
                format!(
                    "schema {schema} is at version {version}, newer than this errand's {VERSION}"
                ),
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(migration).await?;
            tx.execute(
                "UPDATE errand_meta SET value = $1 WHERE key = 'schema_version'",
                &[&(index + 1).to_string()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    })?
}
