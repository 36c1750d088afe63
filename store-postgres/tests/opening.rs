//! Opening a PostgreSQL store: migrations run once under their lock however many nodes
//! start at once; a schema from a newer errand, tables errand did not make, a server that
//! is not there and settings out of range are typed errors.

use std::time::Duration;

use errand_conformance::postgres::{fresh_schema, url};
use errand_store_postgres::{PgStore, StoreErrorKind};

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("a plain client connects")
}

fn open(url: &str, schema: &str) -> Result<PgStore, errand_store_postgres::StoreError> {
    PgStore::options(url).schema(schema).open()
}

#[test]
fn nodes_starting_at_once_migrate_the_schema_once() {
    let url = url();
    let schema = fresh_schema("migrate");
    let stores: Vec<PgStore> = std::thread::scope(|scope| {
        let opening: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| open(&url, &schema)))
            .collect();
        opening
            .into_iter()
            .map(|handle| handle.join().unwrap().expect("every node opens"))
            .collect()
    });
    assert_eq!(stores.len(), 6);
    let mut db = client(&url);
    let version: String = db
        .query_one(
            &format!("SELECT value FROM {schema}.errand_meta WHERE key = 'schema_version'"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, "1");
    let tables: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 3, "errand_meta, errand_jobs, errand_schedules");
    // Opening again changes nothing.
    drop(stores);
    drop(open(&url, &schema).expect("opens again"));
}

#[test]
fn a_schema_from_a_newer_errand_is_refused() {
    let url = url();
    let schema = fresh_schema("newer");
    drop(open(&url, &schema).unwrap());
    client(&url)
        .batch_execute(&format!(
            "UPDATE {schema}.errand_meta SET value = '99' WHERE key = 'schema_version'"
        ))
        .unwrap();
    let error = open(&url, &schema).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::NewerSchema, "{error}");
    assert!(error.to_string().contains("99"), "{error}");
}

#[test]
fn tables_errand_did_not_make_are_refused_and_left_alone() {
    let url = url();
    let schema = fresh_schema("foreign");
    let mut db = client(&url);
    db.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.errand_jobs (id int PRIMARY KEY, mine text); \
         INSERT INTO {schema}.errand_jobs VALUES (1, 'keep me')"
    ))
    .unwrap();
    let error = open(&url, &schema).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::NotErrand, "{error}");
    let kept: String = db
        .query_one(&format!("SELECT mine FROM {schema}.errand_jobs"), &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, "keep me");
}

#[test]
fn a_server_that_is_not_there_is_unavailable() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let error = PgStore::options(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .timeout(Duration::from_secs(2))
        .open()
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
}

#[test]
fn settings_out_of_range_are_refused_before_connecting() {
    let url = url();
    for (options, what) in [
        (PgStore::options(&url).schema("Bad-Name"), "schema"),
        (PgStore::options(&url).schema(&"s".repeat(49)), "schema"),
        (
            PgStore::options(&url).lease(Duration::from_millis(500)),
            "lease",
        ),
        (PgStore::options(&url).poll(Duration::ZERO), "poll"),
        (PgStore::options("not a url"), "URL"),
    ] {
        let error = options.open().unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Setting, "{error}");
        assert!(error.to_string().contains(what), "{what}: {error}");
    }
}
