//! A real crash test: a process running durable jobs on a SQLite file is killed with
//! `SIGKILL` at random moments (several seeds), started again on the same file, and at
//! the end every acknowledged job has completed once, none is lost, and the attempts add
//! up. Also: a "full" disk (a file-size limit) refuses an enqueue with a typed error and
//! acknowledges nothing it did not commit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use errand_core::engine::durable::Store;
use errand_core::engine::{JobFilter, JobState};
use errand_store_sqlite::SqliteStore;

const WORKER: &str = env!("CARGO_BIN_EXE_durable-worker");

/// A small seeded generator (SplitMix64), so each seed replays its kill times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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

/// Waits for `child` to exit by itself, within `patience`.
fn exit_code(mut child: Child, patience: Duration) -> i32 {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the worker did not finish within {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The log's lines: acknowledged jobs, and the attempts that ran, per job.
fn read_log(dir: &Path) -> (Vec<u64>, HashMap<u64, Vec<u32>>) {
    let text = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let mut acks = Vec::new();
    let mut runs: HashMap<u64, Vec<u32>> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("ack"), Some(id), None) => acks.push(id.parse().unwrap()),
            (Some("run"), Some(id), Some(attempt)) => {
                runs.entry(id.parse().unwrap())
                    .or_default()
                    .push(attempt.parse().unwrap());
            }
            _ => panic!("a torn log line: {line:?}"),
        }
    }
    (acks, runs)
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
    let finisher = worker(&dir, &["--until-done"]);
    assert_eq!(
        exit_code(finisher, Duration::from_secs(120)),
        0,
        "seed {seed}"
    );

    let (acks, runs) = read_log(&dir);
    assert!(
        !acks.is_empty(),
        "seed {seed}: no enqueue was acknowledged before the kills"
    );
    let store = SqliteStore::open(dir.join("jobs.db")).unwrap();
    let reader = store.reader();
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let mut filter = JobFilter::all().limit(1000);
        if let Some(id) = after {
            filter = filter.after(id);
        }
        let page = reader.jobs(&filter).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        rows.extend(page);
    }
    let by_id: HashMap<u64, _> = rows.iter().map(|row| (row.id.get(), row)).collect();
    // Every acknowledged job is there, and completed.
    for id in &acks {
        let row = by_id
            .get(id)
            .unwrap_or_else(|| panic!("seed {seed}: acknowledged job j-{id} lost"));
        assert_eq!(row.state, JobState::Succeeded, "seed {seed}: j-{id}");
    }
    for row in &rows {
        let id = row.id.get();
        // Nothing is left running or pending; nothing failed.
        assert_eq!(
            row.state,
            JobState::Succeeded,
            "seed {seed}: j-{id} ended {:?}",
            row.state
        );
        let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
        let result: serde_json::Value =
            serde_json::from_str(row.result.as_deref().unwrap()).unwrap();
        assert_eq!(
            result["doubled"],
            payload["n"].as_u64().unwrap() * 2,
            "seed {seed}: j-{id}"
        );
        // The completion recorded is one attempt's: the last one claimed (fencing kept a
        // stale attempt from overwriting it), and that attempt ran.
        let ran = runs
            .get(&id)
            .unwrap_or_else(|| panic!("seed {seed}: j-{id} never ran"));
        let completed = result["attempt"].as_u64().unwrap() as u32;
        assert_eq!(
            completed, row.attempt,
            "seed {seed}: j-{id} completed by a stale attempt"
        );
        assert!(
            ran.contains(&completed),
            "seed {seed}: j-{id}'s attempt {completed} never ran"
        );
        // Attempts add up: every run was a counted claim, and no claim ran twice.
        assert!(
            row.attempt as usize >= ran.len(),
            "seed {seed}: j-{id} ran {ran:?} in {} attempts",
            row.attempt
        );
        let mut distinct = ran.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            ran.len(),
            "seed {seed}: j-{id} ran an attempt twice: {ran:?}"
        );
    }
    let reruns = rows.iter().filter(|row| row.attempt > 1).count();
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
    assert!(stdout.contains("refused"), "{stdout}");
    // Every job acknowledged is in the store; none was acknowledged that is not.
    let (acks, _) = read_log(&dir);
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
