//! A real crash test: a process running durable jobs on a SQLite file is killed with
//! `SIGKILL` at random moments (several seeds), started again on the same file, and at
//! the end every acknowledged job has completed once, none is lost, and the attempts add
//! up. Also: a "full" disk (a file-size limit) refuses an enqueue with a typed error and
//! acknowledges nothing it did not commit.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use errand_core::engine::durable::Store;
use errand_store_sqlite::SqliteStore;

mod support;
use support::{Rng, all_rows, check_each_completed_once, exit_code, fresh_dir, read_logs};

const WORKER: &str = env!("CARGO_BIN_EXE_durable-worker");

fn worker(dir: &Path, args: &[&str]) -> Child {
    Command::new(WORKER)
        .arg("--db")
        .arg(dir.join("jobs.db"))
        .arg("--log")
        .arg(dir.join("log"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the worker starts")
}

fn crash_and_recover(seed: u64) {
    let dir = fresh_dir(&format!("crash-{seed}"));
    let mut rng = Rng(seed);
    let kills = 5;
    for _ in 0..kills {
        // Batches of 1 (a commit each) make kills land mid-enqueue too.
        let batch = if rng.next() % 2 == 0 { "1" } else { "10" };
        let mut child = worker(&dir, &["--enqueue", "300", "--batch", batch]);
        std::thread::sleep(Duration::from_millis(rng.between(5, 150)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
    let mut finisher = worker(&dir, &["--until-done"]);
    assert_eq!(
        exit_code(&mut finisher, Duration::from_secs(120)),
        0,
        "seed {seed}"
    );

    let (acks, runs) = read_logs(&[dir.join("log")]);
    assert!(
        !acks.is_empty(),
        "seed {seed}: no enqueue was acknowledged before the kills"
    );
    let store = SqliteStore::open(dir.join("jobs.db")).unwrap();
    let rows = all_rows(&*store.reader());
    let reruns = check_each_completed_once(&format!("seed {seed}"), &rows, &acks, &runs);
    println!(
        "seed {seed}: {} jobs, {} acknowledged before kills, {reruns} run again after a kill",
        rows.len(),
        acks.len()
    );
    drop(store);
    drop(std::fs::remove_dir_all(&dir));
}

#[test]
fn acknowledged_jobs_survive_sigkill_at_random_moments() {
    for seed in [1, 2, 3] {
        crash_and_recover(seed);
    }
}

#[test]
fn a_full_disk_refuses_the_enqueue_and_acknowledges_nothing() {
    let dir = fresh_dir("full");
    // Create the database first, with room.
    let setup = worker(&dir, &["--no-run", "--until-done"]);
    drop(setup.wait_with_output());
    let size = std::fs::metadata(dir.join("jobs.db")).unwrap().len();
    let wal = std::fs::metadata(dir.join("jobs.db-wal")).map_or(0, |meta| meta.len());
    // Now with the files capped near their size: the enqueues soon find no room.
    let limit = (size.max(wal) + 64 * 1024).to_string();
    let child = worker(
        &dir,
        &[
            "--no-run",
            "--enqueue",
            "100000",
            "--batch",
            "100",
            "--fsize-limit",
            &limit,
        ],
    );
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "the enqueue was refused: {stdout}"
    );
    // A typed error: the disk is full (the file-size limit), not some other failure.
    assert!(stdout.contains("refused Full"), "{stdout}");
    // Every job acknowledged is in the store; none was acknowledged that is not.
    let (acks, _) = read_logs(&[dir.join("log")]);
    let store = SqliteStore::open(dir.join("jobs.db")).unwrap();
    let reader = store.reader();
    for id in &acks {
        assert!(
            reader
                .job(errand_core::engine::JobId::new(*id))
                .unwrap()
                .is_some(),
            "j-{id} acknowledged but lost"
        );
    }
    let pending = reader.pending_kinds().unwrap();
    let stored: u64 = pending.iter().map(|(_, count)| count).sum();
    assert_eq!(
        stored,
        acks.len() as u64,
        "stored jobs that were never acknowledged, or the reverse"
    );
    drop(store);
    drop(std::fs::remove_dir_all(&dir));
}

#[test]
fn a_read_only_database_is_a_typed_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir("read-only");
    let setup = worker(&dir, &["--no-run", "--until-done"]);
    drop(setup.wait_with_output());
    // Everyone may use the directory and the lock; the database is read-only to them.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    for file in ["jobs.db", "jobs.db-wal", "jobs.db-shm"] {
        drop(std::fs::set_permissions(
            dir.join(file),
            std::fs::Permissions::from_mode(0o444),
        ));
    }
    drop(std::fs::set_permissions(
        dir.join("jobs.db.lock"),
        std::fs::Permissions::from_mode(0o666),
    ));
    drop(std::fs::set_permissions(
        dir.join("log"),
        std::fs::Permissions::from_mode(0o666),
    ));
    let output = worker(&dir, &["--as-nobody", "--no-run", "--enqueue", "1"])
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(stdout.starts_with("open-error ReadOnly"), "{stdout}");
    drop(std::fs::remove_dir_all(&dir));
}
