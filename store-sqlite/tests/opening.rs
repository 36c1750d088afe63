//! Opening a database: what is not an errand database, or is from a newer errand, or is
//! open in another process, is a typed error at open; the pragmas are what was asked.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use errand_store_sqlite::{SqliteStore, StoreErrorKind, Synchronous};

fn fresh(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "opening-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("errand.db")
}

fn kind(path: &PathBuf) -> StoreErrorKind {
    SqliteStore::open(path).expect_err("refused").kind()
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let path = fresh("garbage");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    assert_eq!(kind(&path), StoreErrorKind::NotErrand);
    // Nothing was written over it.
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a_u8; 8192]);
}

#[test]
fn another_applications_database_is_refused() {
    let path = fresh("foreign");
    errand_sql(&path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY);");
    let error = SqliteStore::open(&path).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::NotErrand);
    assert!(error.to_string().contains("errand_meta"), "{error}");
}

/// Runs `sql` on the database at `path`, with a connection of the test's own.
fn errand_sql(path: &PathBuf, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[test]
fn a_newer_schema_is_refused_and_an_older_one_migrated() {
    let path = fresh("newer");
    drop(SqliteStore::open(&path).unwrap());
    errand_sql(
        &path,
        "UPDATE errand_meta SET value = '99' WHERE key = 'schema_version'",
    );
    let error = SqliteStore::open(&path).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::NewerSchema);
    assert!(error.to_string().contains("99"), "{error}");
    // An empty file is version 0: migrated to the current version.
    let empty = fresh("empty");
    std::fs::write(&empty, b"").unwrap();
    drop(SqliteStore::open(&empty).unwrap());
    let version: String = rusqlite::Connection::open(&empty)
        .unwrap()
        .query_row(
            "SELECT value FROM errand_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, "1");
}

#[test]
fn a_second_opener_is_locked_out_until_the_first_closes() {
    let path = fresh("locked");
    let first = SqliteStore::open(&path).unwrap();
    assert_eq!(kind(&path), StoreErrorKind::Locked);
    drop(first);
    drop(SqliteStore::open(&path).unwrap());
}

#[test]
fn the_database_is_in_wal_mode_with_either_synchronous() {
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        let path = fresh("pragmas");
        drop(
            SqliteStore::options(&path)
                .synchronous(synchronous)
                .open()
                .unwrap(),
        );
        // The journal mode persists in the file: read it from outside. (`synchronous`
        // is per connection: the store reads it back itself at open, see schema.rs.)
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
