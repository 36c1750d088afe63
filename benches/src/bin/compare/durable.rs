//! The `durable_*` cases: durable no-op jobs on a SQLite file end to end (enqueue, run,
//! complete, every transition committed), beside the disk's fsync floor, the same work
//! with one transaction per transition, and the peer apalis-sqlite; the enqueue→start
//! latency; recovery after a `SIGKILL`; memory while many jobs burn down.
//!
//! Every side runs on the same disk (the target directory), one fresh database per round.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use errand_benches::report::{Line, Unit, median, percentile};
use errand_store_sqlite::{SqliteStore, Synchronous};
use errand_threads::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Runner, interleave};

/// Jobs run so far by [`Noop`] (in this process).
static RAN: AtomicU64 = AtomicU64::new(0);

/// The no-op durable job. Its kind is the crash test's, so the recovery case runs the
/// jobs a killed `durable-worker` left.
#[derive(Serialize, Deserialize)]
pub(crate) struct Noop {
    pub(crate) n: u64,
}

/// Jobs [`Noop`] has run so far in this process.
pub(crate) fn ran() -> u64 {
    RAN.load(Ordering::Relaxed)
}

impl DurableJob for Noop {
    const KIND: &'static str = "crash-test-work";
    type Output = ();

    async fn run(&self, _ctx: Context) -> Result<(), BoxError> {
        RAN.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Sends the instant it started on a channel: the latency case's job.
#[derive(Serialize, Deserialize)]
pub(crate) struct Probe;

/// Where [`Probe`] sends the instant it started, while a case listens.
pub(crate) fn probes() -> &'static std::sync::Mutex<Option<mpsc::Sender<Instant>>> {
    static PROBES: std::sync::OnceLock<std::sync::Mutex<Option<mpsc::Sender<Instant>>>> =
        std::sync::OnceLock::new();
    PROBES.get_or_init(Default::default)
}

impl DurableJob for Probe {
    const KIND: &'static str = "compare-probe";
    type Output = ();

    async fn run(&self, _ctx: Context) -> Result<(), BoxError> {
        let now = Instant::now();
        if let Some(tx) = &*probes().lock().unwrap() {
            let _ = tx.send(now);
        }
        Ok(())
    }
}

/// A fresh database path under the target directory (its files removed).
fn fresh_db(name: &str) -> PathBuf {
    let dir = PathBuf::from("target").join("compare-durable");
    std::fs::create_dir_all(&dir).expect("creating target/compare-durable");
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        drop(std::fs::remove_file(file));
    }
    drop(std::fs::remove_file(path.with_extension("log")));
    path
}

/// A durable manager on `path`, `Noop` and `Probe` registered.
fn manager(path: &Path, synchronous: Synchronous) -> Manager {
    let store = SqliteStore::options(path)
        .synchronous(synchronous)
        .open()
        .expect("the store opens");
    builder()
        .workers(crate::WORKERS)
        .store(store)
        .register::<Noop>()
        .register::<Probe>()
        .build()
        .expect("the manager builds")
}

/// Waits (polling each 100 µs, for at most a minute) until `RAN` reaches `target`.
fn until_ran(target: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while RAN.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "jobs did not all run within a minute"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// errand's durable jobs/s: `jobs` no-op jobs enqueued in batches of 1 000, run and
/// completed, the last completion committed (the shutdown flushes the keeper).
fn errand_throughput(jobs: u64, synchronous: Synchronous) -> f64 {
    let path = fresh_db("errand");
    let manager = manager(&path, synchronous);
    let start_count = RAN.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut n = 0;
    while n < jobs {
        let batch = (n..(n + 1000).min(jobs))
            .map(|n| (Noop { n }, JobOptions::new()))
            .collect();
        pending.push(manager.enqueue_batch(batch));
        n = (n + 1000).min(jobs);
    }
    for answers in pending {
        for answer in answers.wait() {
            answer.expect("enqueued");
        }
    }
    until_ran(start_count + jobs);
    let report = manager.shutdown(Duration::from_secs(60)).wait();
    assert!(report.unfinished.is_empty());
    let elapsed = started.elapsed().as_secs_f64();
    drop(manager);
    jobs as f64 / elapsed
}

/// The disk's floor: serial single-row transactions, each synced (`synchronous=FULL`,
/// WAL), per second.
fn fsync_floor(commits: u64) -> f64 {
    let path = fresh_db("floor");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);",
    )
    .unwrap();
    let started = Instant::now();
    for i in 0..commits {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [i as i64])
            .unwrap();
    }
    commits as f64 / started.elapsed().as_secs_f64()
}

/// The same work with one transaction per transition: an insert, a claim and a
/// completion per job, each its own synced transaction, by two worker threads (each claims
/// one job, runs it, completes it) after the enqueues.
fn unbatched_throughput(jobs: u64) -> f64 {
    let path = fresh_db("unbatched");
    let open = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .unwrap();
        conn
    };
    let conn = open();
    conn.execute_batch(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, \
         state INTEGER NOT NULL, attempt INTEGER NOT NULL); \
         CREATE INDEX jobs_pending ON jobs (id) WHERE state = 0;",
    )
    .unwrap();
    let started = Instant::now();
    for n in 0..jobs {
        conn.execute(
            "INSERT INTO jobs (payload, state, attempt) VALUES (?1, 0, 0)",
            [format!("{{\"n\":{n}}}")],
        )
        .unwrap();
    }
    let workers: Vec<_> = (0..crate::WORKERS)
        .map(|_| {
            let conn = open();
            std::thread::spawn(move || {
                loop {
                    let claimed: Option<i64> = conn
                        .query_row(
                            "UPDATE jobs SET state = 1, attempt = attempt + 1 WHERE id = \
                             (SELECT id FROM jobs WHERE state = 0 ORDER BY id LIMIT 1) \
                             RETURNING id",
                            [],
                            |row| row.get(0),
                        )
                        .ok();
                    let Some(id) = claimed else { return };
                    conn.execute(
                        "UPDATE jobs SET state = 2 WHERE id = ?1 AND state = 1",
                        [id],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    jobs as f64 / started.elapsed().as_secs_f64()
}

/// The peer's jobs/s: `benches/peers/apalis` (built by `.ci/run`), same disk, same
/// durability (WAL, `synchronous=FULL`), two workers.
fn apalis_throughput(jobs: u64) -> f64 {
    let binary = PathBuf::from("benches/peers/apalis/target/release/apalis-peer");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --release --manifest-path benches/peers/apalis/Cargo.toml`",
        binary.display()
    );
    let output = Command::new(&binary)
        .arg("--db")
        .arg(fresh_db("apalis"))
        .args([
            "--jobs",
            &jobs.to_string(),
            "--workers",
            &crate::WORKERS.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("the apalis peer runs");
    assert!(output.status.success(), "the apalis peer failed");
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    line["jobs_per_s"].as_f64().expect("jobs_per_s")
}

/// Enqueue→start latencies (ns) of `samples` probes on an idle manager (a pause between
/// them lets its workers park).
fn errand_latency(samples: usize) -> Vec<f64> {
    let path = fresh_db("latency");
    let manager = manager(&path, Synchronous::Full);
    let (tx, rx) = mpsc::channel();
    *probes().lock().unwrap() = Some(tx);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        std::thread::sleep(Duration::from_millis(2));
        let sent = Instant::now();
        manager
            .enqueue(Probe, JobOptions::new())
            .wait()
            .expect("enqueued");
        let started = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the probe ran");
        latencies.push(started.saturating_duration_since(sent).as_nanos() as f64);
    }
    *probes().lock().unwrap() = None;
    drop(manager);
    latencies
}

/// One synced single-row commit's latency (ns), `samples` times: the floor of any durable
/// enqueue on this disk.
fn commit_latency(samples: usize) -> Vec<f64> {
    let path = fresh_db("commit");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);",
    )
    .unwrap();
    (0..samples)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(2));
            let start = Instant::now();
            conn.execute("INSERT INTO t (v) VALUES (?1)", [i as i64])
                .unwrap();
            start.elapsed().as_nanos() as f64
        })
        .collect()
}

/// The `durable-worker` binary beside this one.
pub(crate) fn durable_worker() -> PathBuf {
    let exe = std::env::current_exe().expect("this binary's path");
    let worker = exe.with_file_name("durable-worker");
    assert!(
        worker.exists(),
        "{} is missing: build it with `cargo build --release -p errand-benches --bins`",
        worker.display()
    );
    worker
}

/// Time (ns) from opening the store to the last of `jobs` jobs run, the jobs left pending
/// by a `durable-worker` killed with `SIGKILL` after enqueueing them.
fn recovery(jobs: u64) -> f64 {
    let path = fresh_db("recovery");
    let log = path.with_extension("log");
    let mut child = Command::new(durable_worker())
        .arg("--db")
        .arg(&path)
        .arg("--log")
        .arg(&log)
        .args([
            "--no-run",
            "--enqueue",
            &jobs.to_string(),
            "--batch",
            "1000",
            "--until-done",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("the durable worker starts");
    // It runs nothing (`--no-run`), so `--until-done` never ends: it is killed once every
    // enqueue was acknowledged (and so committed).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let acked = std::fs::read_to_string(&log)
            .map(|text| text.lines().filter(|line| line.starts_with("ack ")).count())
            .unwrap_or(0);
        if acked as u64 >= jobs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the durable worker did not enqueue in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(child.kill());
    drop(child.wait());
    let start_count = RAN.load(Ordering::Relaxed);
    let started = Instant::now();
    let manager = manager(&path, Synchronous::Full);
    until_ran(start_count + jobs);
    let elapsed = started.elapsed().as_nanos() as f64;
    drop(manager);
    elapsed
}

/// Opening an empty store and building its manager (ns): the floor of `recovery`.
fn open_empty() -> f64 {
    let path = fresh_db("empty");
    let started = Instant::now();
    let manager = manager(&path, Synchronous::Full);
    let elapsed = started.elapsed().as_nanos() as f64;
    drop(manager);
    elapsed
}

/// The peak resident memory (bytes) of a worker process that runs `jobs` pending jobs to
/// the end: they are enqueued by a process that does not run them, then a fresh process
/// runs them all (jobs that return at once) and reports its high-water mark.
fn burn_down(jobs: u64) -> f64 {
    let path = fresh_db("burn");
    let log = path.with_extension("log");
    let enqueue = Command::new(durable_worker())
        .arg("--db")
        .arg(&path)
        .arg("--log")
        .arg(&log)
        .args([
            "--no-run",
            "--exit",
            "--enqueue",
            &jobs.to_string(),
            "--batch",
            "5000",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("the durable worker runs");
    assert!(enqueue.success());
    let run = Command::new(durable_worker())
        .arg("--db")
        .arg(&path)
        .arg("--log")
        .arg(&log)
        .args(["--instant", "--until-done", "--peak-rss"])
        .output()
        .expect("the durable worker runs");
    assert!(run.status.success());
    String::from_utf8_lossy(&run.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("peak-rss "))
        .and_then(|bytes| bytes.trim().parse::<f64>().ok())
        .expect("the worker reports its peak resident memory")
}

pub(crate) fn run(runner: &mut Runner) {
    let quick = runner.plan.rounds < 7;
    let jobs: u64 = if quick { 20_000 } else { 100_000 };
    let rounds = if quick { 2 } else { 3 };
    if runner.wants_any(&["durable_throughput_full", "durable_throughput_normal"]) {
        let (full, floor) = interleave(
            "durable_throughput_full",
            rounds,
            || errand_throughput(jobs, Synchronous::Full),
            || fsync_floor(if quick { 1_000 } else { 3_000 }),
        );
        let full = median(&full);
        runner.emit(Line::new(
            "durable_throughput_full",
            "errand durable jobs (SQLite, synchronous=FULL)",
            "serial synced commits/s on the same disk",
            Unit::TasksPerSecond,
            full,
            median(&floor),
            true,
        ));
        if runner.wants("durable_throughput_normal") {
            let (normal, full_again) = interleave(
                "durable_throughput_normal",
                rounds,
                || errand_throughput(jobs, Synchronous::Normal),
                || errand_throughput(jobs, Synchronous::Full),
            );
            runner.emit(Line::new(
                "durable_throughput_normal",
                "errand durable jobs (SQLite, synchronous=NORMAL)",
                "errand durable jobs (synchronous=FULL)",
                Unit::TasksPerSecond,
                median(&normal),
                median(&full_again),
                true,
            ));
        }
    }
    if runner.wants("durable_throughput_unbatched") {
        let unbatched_jobs = if quick { 1_000 } else { 3_000 };
        let (errand, unbatched) = interleave(
            "durable_throughput_unbatched",
            rounds,
            || errand_throughput(jobs, Synchronous::Full),
            || unbatched_throughput(unbatched_jobs),
        );
        runner.emit(Line::new(
            "durable_throughput_unbatched",
            "errand durable jobs (group commit, FULL)",
            "one synced transaction per transition",
            Unit::TasksPerSecond,
            median(&errand),
            median(&unbatched),
            true,
        ));
    }
    if runner.wants("durable_throughput_apalis") {
        // apalis-sqlite 1.0 slows down as its table grows (its completion query scans the
        // rows its worker locked: quadratic in the run; see BENCHMARKS.md), so 100k jobs
        // would take it most of an hour: both sides run the same, smaller count.
        let peer_jobs: u64 = if quick { 5_000 } else { 20_000 };
        let (errand, apalis) = interleave(
            "durable_throughput_apalis",
            rounds,
            || errand_throughput(peer_jobs, Synchronous::Full),
            || apalis_throughput(peer_jobs),
        );
        runner.emit(Line::new(
            "durable_throughput_apalis",
            format!("errand durable jobs (SQLite, FULL), {peer_jobs} jobs"),
            format!("apalis-sqlite 1.0 (SQLite, FULL), {peer_jobs} jobs"),
            Unit::TasksPerSecond,
            median(&errand),
            median(&apalis),
            true,
        ));
    }
    if runner.wants_any(&["durable_latency_p50", "durable_latency_p99"]) {
        let samples = if quick { 100 } else { 400 };
        let errand = errand_latency(samples);
        let floor = commit_latency(samples);
        for (case, p) in [("durable_latency_p50", 50.0), ("durable_latency_p99", 99.0)] {
            runner.emit(Line::new(
                case,
                "errand enqueue (committed) to start, idle",
                "one synced commit on the same disk",
                Unit::Nanoseconds,
                percentile(&errand, p),
                percentile(&floor, p),
                false,
            ));
        }
    }
    if runner.wants("durable_recovery_10k") {
        let (recovered, empty) = interleave(
            "durable_recovery_10k",
            rounds,
            || recovery(10_000),
            open_empty,
        );
        runner.emit(Line::new(
            "durable_recovery_10k",
            "open, recover and run 10k jobs left by a SIGKILL",
            "open an empty store",
            Unit::Nanoseconds,
            median(&recovered),
            median(&empty),
            false,
        ));
    }
    if runner.wants("durable_memory_burn_down") {
        let big: u64 = if quick { 100_000 } else { 1_000_000 };
        let grown = burn_down(big);
        let small = burn_down(10_000);
        runner.emit(Line::new(
            "durable_memory_burn_down",
            format!("peak RSS of a worker running {big} pending jobs"),
            "the same with 10 000 jobs",
            Unit::Bytes,
            grown,
            small,
            false,
        ));
    }
}
