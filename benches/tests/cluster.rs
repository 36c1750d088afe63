//! Many machines on PostgreSQL, as real processes: three `durable-worker`s on one
//! database (the server `DATABASE_URL` names, or a throwaway cluster this test starts).
//!
//! - 100k jobs, one node killed with `SIGKILL` mid-run: every job completes, each job's
//!   completion is recorded once (by its last claimed attempt), the dead node's jobs are
//!   rescued within the lease (plus a poll), and nothing is left running.
//! - One recurring schedule and three nodes, the leader killed halfway: one job per tick,
//!   no tick missed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use errand_core::engine::durable::{Store, StoreReader};
use errand_core::engine::{JobFilter, JobState};
use errand_store_postgres::PgStore;

mod support;
use support::{all_rows, check_each_completed_once, exit_code, fresh_dir, read_logs};

const WORKER: &str = env!("CARGO_BIN_EXE_durable-worker");
/// The lease the nodes run with (short, so the test is quick; the default is 30 s).
const LEASE: Duration = Duration::from_secs(4);
/// How often they poll.
const POLL: Duration = Duration::from_millis(250);

struct Db {
    url: String,
    schema: String,
}

impl Db {
    fn fresh(name: &str) -> Self {
        Self {
            url: errand_conformance::postgres::url(),
            schema: errand_conformance::postgres::fresh_schema(name),
        }
    }

    fn worker(&self, log: &Path, node: &str, args: &[&str]) -> Child {
        Command::new(WORKER)
            .args(["--pg", &self.url, "--schema", &self.schema, "--node", node])
            .args(["--lease-ms", &LEASE.as_millis().to_string()])
            .args(["--poll-ms", &POLL.as_millis().to_string()])
            .arg("--log")
            .arg(log)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts")
    }

    fn store(&self) -> PgStore {
        PgStore::options(&self.url)
            .schema(&self.schema)
            .node("observer")
            .open()
            .expect("the store opens")
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// Running jobs claimed by `node`, now.
fn running_on(reader: &dyn StoreReader, node: &str) -> usize {
    let mut count = 0;
    let mut after = None;
    loop {
        let mut filter = JobFilter::all().state(JobState::Running).limit(1000);
        if let Some(id) = after {
            filter = filter.after(id);
        }
        let page = reader.jobs(&filter).unwrap();
        let Some(last) = page.last() else {
            return count;
        };
        after = Some(last.id);
        count += page
            .iter()
            .filter(|row| row.node.as_deref() == Some(node))
            .count();
    }
}

#[test]
fn three_nodes_one_killed_every_job_completes_once() {
    const JOBS: u64 = 100_000;
    let dir = fresh_dir("cluster-kill");
    let db = Db::fresh("kill");
    let enqueue_log = dir.join("enqueue.log");
    let mut enqueuer = db.worker(
        &enqueue_log,
        "enqueuer",
        &[
            "--no-run",
            "--exit",
            "--enqueue",
            &JOBS.to_string(),
            "--batch",
            "2000",
        ],
    );
    assert_eq!(exit_code(&mut enqueuer, Duration::from_secs(300)), 0);
    let logs: Vec<PathBuf> = (0..3).map(|n| dir.join(format!("node-{n}.log"))).collect();
    let mut nodes: Vec<Child> = (0..3)
        .map(|n| {
            db.worker(
                &logs[n],
                &format!("node-{n}"),
                &["--until-done", "--work-us", "200"],
            )
        })
        .collect();
    // Kill node 0 once it has run a few thousand jobs: mid-run, holding a window of them.
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines(&logs[0]) < 5_000 {
        assert!(Instant::now() < deadline, "node 0 ran too few jobs");
        std::thread::sleep(Duration::from_millis(5));
    }
    nodes[0].kill().expect("SIGKILL");
    nodes[0].wait().unwrap();
    let killed = Instant::now();
    // Its jobs are rescued once their lease expires.
    let store = db.store();
    let reader = store.reader();
    let held = running_on(&*reader, "node-0");
    while running_on(&*reader, "node-0") > 0 {
        assert!(
            killed.elapsed() < LEASE + POLL + Duration::from_secs(5),
            "the dead node's jobs were not rescued within the lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rescued_after = killed.elapsed();
    for node in &mut nodes[1..] {
        assert_eq!(exit_code(node, Duration::from_secs(300)), 0);
    }
    let (acks, runs) = read_logs(&[
        enqueue_log,
        logs[0].clone(),
        logs[1].clone(),
        logs[2].clone(),
    ]);
    assert_eq!(acks.len() as u64, JOBS);
    let rows = all_rows(&*reader);
    assert_eq!(rows.len() as u64, JOBS);
    let reruns = check_each_completed_once("cluster", &rows, &acks, &runs);
    assert!(
        reruns <= held.max(1) * 2,
        "{reruns} jobs ran again, node 0 held {held}"
    );
    println!(
        "{JOBS} jobs on 3 nodes; node 0 killed holding {held} running, all rescued {:.1} s \
         after the kill (lease {LEASE:?}); {reruns} jobs ran again",
        rescued_after.as_secs_f64()
    );
    drop(std::fs::remove_dir_all(&dir));
}

#[test]
fn three_nodes_fire_one_job_per_tick_and_miss_none() {
    const TICKS: u64 = 30;
    const EVERY_MS: u64 = 150;
    let dir = fresh_dir("cluster-ticks");
    let db = Db::fresh("ticks");
    let logs: Vec<PathBuf> = (0..3).map(|n| dir.join(format!("node-{n}.log"))).collect();
    let store = db.store();
    let reader = store.reader();
    let ticked = || {
        reader
            .jobs(&JobFilter::all().limit(1000))
            .unwrap()
            .into_iter()
            .filter(|row| row.schedule.as_deref() == Some("every"))
            .collect::<Vec<_>>()
    };
    // Node 0 stores the schedule and leads: the others start once it has fired a tick.
    let schedule = format!("every,{EVERY_MS},{TICKS}");
    let mut nodes = vec![db.worker(
        &logs[0],
        "node-0",
        &["--schedule", &schedule, "--work-us", "0"],
    )];
    let deadline = Instant::now() + Duration::from_secs(60);
    while ticked().is_empty() {
        assert!(Instant::now() < deadline, "no tick fired");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (n, log) in logs.iter().enumerate().skip(1) {
        nodes.push(db.worker(log, &format!("node-{n}"), &["--work-us", "0"]));
    }
    // Kill the leader a third of the way: another node takes the lead and goes on.
    while (ticked().len() as u64) < TICKS / 3 {
        assert!(Instant::now() < deadline, "ticks stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    nodes[0].kill().expect("SIGKILL");
    nodes[0].wait().unwrap();
    let done = || {
        let rows = ticked();
        rows.len() as u64 >= TICKS && rows.iter().all(|row| row.state == JobState::Succeeded)
    };
    while !done() {
        assert!(
            Instant::now() < deadline + LEASE * 2,
            "the ticks did not all run: {} of {TICKS}",
            ticked().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let any late duplicate show itself before counting.
    std::thread::sleep(Duration::from_millis(4 * EVERY_MS));
    for node in &mut nodes[1..] {
        node.kill().unwrap();
        node.wait().unwrap();
    }
    let rows = ticked();
    let mut keys: Vec<String> = rows
        .iter()
        .filter_map(|row| row.unique_key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(rows.len() as u64, TICKS, "one job per tick: {keys:?}");
    assert_eq!(keys.len() as u64, TICKS, "each tick its own key");
    for tick in 0..TICKS {
        assert!(
            keys.contains(&format!("errand-schedule:every:{tick}")),
            "tick {tick} missed: {keys:?}"
        );
    }
    let (_, runs) = read_logs(&logs);
    for row in &rows {
        assert_eq!(row.state, JobState::Succeeded);
        assert!(runs.contains_key(&row.id.get()), "{} never ran", row.id);
    }
    let stored = db.store().schedules().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].fired, TICKS);
    drop(std::fs::remove_dir_all(&dir));
}
