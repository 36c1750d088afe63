//! Opening a database: is it an errand database, of which schema version, migrated to
//! this one; the pragmas, read back.

use errand_core::engine::{StoreError, StoreErrorKind};
use rusqlite::{Connection, OptionalExtension};

use crate::Synchronous;
use crate::error::Context;

/// The schema version this crate writes. Older databases are migrated; newer ones are
/// refused.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// The migrations, in order: `MIGRATIONS[n]` takes a database from version `n` to
/// `n + 1`. Version 0 is an empty database.
const MIGRATIONS: [&str; 1] = [r"
CREATE TABLE errand_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO errand_meta (key, value) VALUES ('application', 'errand');
CREATE TABLE errand_jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    retry_max INTEGER NOT NULL,
    retry_initial_ms INTEGER NOT NULL,
    retry_multiplier REAL NOT NULL,
    retry_max_delay_ms INTEGER NOT NULL,
    retry_jitter INTEGER NOT NULL,
    timeout_ms INTEGER,
    result_ttl_ms INTEGER NOT NULL,
    unique_key TEXT,
    schedule TEXT,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT,
    error TEXT,
    result TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    expires_at INTEGER,
    node TEXT,
    lease_until INTEGER
);
-- Claims: the highest priority, then the earliest due, of the pending jobs.
CREATE INDEX errand_jobs_due ON errand_jobs (priority DESC, run_at, id) WHERE state = 0;
-- The next pending job's due time.
CREATE INDEX errand_jobs_next ON errand_jobs (run_at) WHERE state = 0;
-- Listing pending jobs in id order (without reading every finished job before them).
CREATE INDEX errand_jobs_pending ON errand_jobs (id) WHERE state = 0;
-- Recovery of the jobs left running.
CREATE INDEX errand_jobs_running ON errand_jobs (id) WHERE state = 1;
-- At most one unfinished job per unique key.
CREATE UNIQUE INDEX errand_jobs_unique ON errand_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1);
-- Finished jobs to delete after the retention.
CREATE INDEX errand_jobs_finished ON errand_jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Results to prune.
CREATE INDEX errand_jobs_expiry ON errand_jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE errand_schedules (
    name TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
"];

/// Sets the pragmas and reads each back: a pragma SQLite does not take (a journal mode
/// the file system cannot do, say) is an error, not a silent downgrade.
pub(crate) fn configure(conn: &Connection, synchronous: Synchronous) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .doing("setting the busy timeout")?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .doing("setting journal_mode")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::new(
            StoreErrorKind::Setting,
            format!("journal_mode is {mode:?}, not \"wal\""),
        ));
    }
    let wanted = match synchronous {
        Synchronous::Full => 2,
        Synchronous::Normal => 1,
    };
    conn.pragma_update(None, "synchronous", wanted)
        .doing("setting synchronous")?;
    let got: i64 = conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .doing("reading synchronous back")?;
    if got != wanted {
        return Err(StoreError::new(
            StoreErrorKind::Setting,
            format!("synchronous is {got}, not {wanted}"),
        ));
    }
    Ok(())
}

/// Checks that `conn` holds an errand database (or nothing yet) of a version this crate
/// knows, and migrates it to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version = version(conn)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::new(
            StoreErrorKind::NewerSchema,
            format!(
                "the database has schema version {version}; this errand knows up to {SCHEMA_VERSION}"
            ),
        ));
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().doing("starting a migration")?;
        tx.execute_batch(migration)
            .doing(&format!("migrating from schema version {from}"))?;
        tx.execute(
            "INSERT OR REPLACE INTO errand_meta (key, value) VALUES ('schema_version', ?1)",
            [(from + 1).to_string()],
        )
        .doing("recording the schema version")?;
        tx.commit().doing("committing a migration")?;
    }
    Ok(())
}

/// The database's errand schema version: 0 for an empty database.
fn version(conn: &Connection) -> Result<i64, StoreError> {
    // Reading the schema is the first read: a file that is not a database fails here.
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(|error| match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::new(
                StoreErrorKind::NotErrand,
                format!("the file is not a SQLite database: {error}"),
            ),
            _ => crate::error::store_error("reading the schema", &error),
        })?;
    if tables == 0 {
        return Ok(0);
    }
    let has_meta: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'errand_meta'",
            [],
            |row| row.get(0),
        )
        .optional()
        .doing("looking for errand_meta")?;
    if has_meta.is_none() {
        return Err(StoreError::new(
            StoreErrorKind::NotErrand,
            "the database has tables, but not errand's (no errand_meta table)",
        ));
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM errand_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .doing("reading the schema version")?;
    let version = version.ok_or_else(|| {
        StoreError::new(
            StoreErrorKind::NotErrand,
            "errand_meta has no schema_version",
        )
    })?;
    version.parse().map_err(|_| {
        StoreError::new(
            StoreErrorKind::NotErrand,
            format!("errand_meta's schema_version {version:?} is not a number"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::configure;
    use crate::Synchronous;
    use rusqlite::Connection;

    /// What `configure` sets is what the connection reports after.
    #[test]
    fn configure_sets_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("errand-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (synchronous, level) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let conn = Connection::open(dir.join(format!("{level}.db"))).unwrap();
            configure(&conn, synchronous).unwrap();
            let got: i64 = conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .unwrap();
            assert_eq!(got, level);
        }
        drop(std::fs::remove_dir_all(&dir));
    }
}
