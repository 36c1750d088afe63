//! The `pg_*` cases: errand's durable jobs on PostgreSQL, on the server `DATABASE_URL`
//! names (or, without it, a throwaway cluster this process starts and stops; see
//! `errand_conformance::postgres`). `--case pg_` runs them alone.
//!
//! - `pg_throughput_{1,3}` (jobs/s): no-op durable jobs end to end with 1 and 3 worker
//!   processes (`durable-worker --serve`, 2 workers each, default lease and poll). The
//!   runner enqueues N jobs in batches of 1 000 once every worker is up, and the clock
//!   stops when no job is pending or running. Baseline: the peer apalis-postgres 1.0
//!   (`benches/peers/apalis-postgres`, built by `.ci/run`) doing the same, with as many
//!   processes of 2 workers, on the same server, in a database of its own.
//! - `pg_ceiling_{1,3}` (jobs/s): the same errand rounds beside the server's ceiling for
//!   errand's row work: `pgbench` (prepared statements), one client per errand process,
//!   each cycling through an insert of B jobs, errand's claim statement verbatim
//!   ([`CLAIM_SQL`]) and the completion of what it claimed, three commits, with B errand's
//!   mean claim in those rounds; jobs completed per second (see `cycle_script`).
//! - `pg_latency_{p50,p99}` (ns): on an idle system, a job enqueued on one node (its
//!   commit awaited) to its start on another (woken by the NOTIFY of the enqueue's
//!   commit). Baseline: one single-row insert committed on the same server.
//! - `pg_rescue` (ns): a worker process holding jobs mid-run is killed with `SIGKILL`
//!   just after it claimed them (so their leases are as fresh as they get: the worst
//!   moment); time from the kill until another node (default lease 30 s, poll 1 s) has
//!   finished every one of them. Baseline: the lease. `pg_rescue_after_expiry` (ns): the
//!   part of that time after the last of their leases ended, beside the poll interval.
//!   `pg_rescue_duplicates` (count): jobs of those completed more than once (must be 0),
//!   beside the jobs the dead node held.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use errand_benches::report::{Line, Unit, median, percentile};
use errand_conformance::postgres::fresh_schema;
use errand_store_postgres::{CLAIM_SQL, PgStore};
use errand_threads::prelude::*;

use crate::Runner;
use crate::durable::{Noop, Probe, durable_worker, probes, ran};

/// CPU time the whole machine has spent busy so far (all cores, `/proc/stat`), in
/// seconds: what a round cost the server, the workers and the peer together.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 3 && *index != 4)
        .map(|(_, ticks)| ticks)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy / hz
}

/// Jobs per enqueue call, on both sides.
const ENQUEUE_BATCH: u64 = 1_000;
/// The default lease of errand-store-postgres, which the rescue case runs with.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The longest a round may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(300);

/// The server, and a plain client on it for set-up and the baselines.
struct Server {
    url: String,
    client: postgres::Client,
}

impl Server {
    fn connect() -> Self {
        let url = errand_conformance::postgres::url();
        let client = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        Self { url, client }
    }

    /// A store on `schema` for node `node`, with the default lease and poll.
    fn store(&self, schema: &str, node: &str) -> PgStore {
        PgStore::options(&self.url)
            .schema(schema)
            .node(node)
            .open()
            .expect("the PostgreSQL store opens")
    }

    fn drop_schema(&mut self, schema: &str) {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .expect("dropping a round's schema");
    }

    /// The URL of database `name` on the same server, created if missing.
    fn database(&mut self, name: &str) -> String {
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .expect("listing databases")
            .is_some();
        if !exists {
            self.client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("creating the peer's database");
        }
        let mut config: postgres::Config = self.url.parse().expect("DATABASE_URL parses");
        config.dbname(name);
        let host = match &config.get_hosts()[0] {
            postgres::config::Host::Tcp(host) => host.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(path) => path.display().to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres");
        match config.get_password() {
            Some(password) => format!(
                "postgres://{user}:{}@{host}:{port}/{name}",
                String::from_utf8_lossy(password)
            ),
            None => format!("postgres://{user}@{host}:{port}/{name}"),
        }
    }
}

/// A `durable-worker --serve` process: started, ready, and stopped by closing its stdin.
struct Worker {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

/// What a worker reported when it stopped.
struct WorkerStats {
    claimed: u64,
    claims: u64,
}

impl Worker {
    fn start(url: &str, schema: &str, node: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(durable_worker())
            .args(["--pg", url, "--schema", schema, "--node", node, "--serve"])
            .arg("--log")
            .arg("/dev/null")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the durable worker starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading the worker");
        assert_eq!(line.trim(), "ready", "the worker did not start");
        Self { child, stdout }
    }

    /// Closes its stdin, waits for it and reads its counters.
    fn stop(mut self) -> WorkerStats {
        drop(self.child.stdin.take());
        let mut text = String::new();
        for line in (&mut self.stdout).lines() {
            text.push_str(&line.expect("reading the worker"));
            text.push('\n');
        }
        assert!(self.child.wait().expect("the worker exits").success());
        let words: Vec<&str> = text
            .lines()
            .find_map(|line| line.strip_prefix("stats "))
            .expect("the worker prints its stats")
            .split_whitespace()
            .collect();
        let field = |name: &str| -> u64 {
            let at = words
                .iter()
                .position(|w| *w == name)
                .expect("a stats field");
            words[at + 1].parse().expect("a number")
        };
        assert_eq!(field("unfinished"), 0, "the worker left jobs unfinished");
        WorkerStats {
            claimed: field("claimed"),
            claims: field("claims"),
        }
    }
}

/// Jobs in `state` on the store `manager` reads, counting up to `limit`.
fn count(manager: &Manager, state: JobState, limit: usize) -> usize {
    manager
        .jobs(&JobFilter::all().state(state).limit(limit))
        .expect("listing jobs")
        .len()
}

/// Waits until no job is pending or running (polling every 2 ms).
fn until_idle(observer: &Manager) {
    let deadline = Instant::now() + PATIENCE;
    while count(observer, JobState::Pending, 1) + count(observer, JobState::Running, 1) > 0 {
        assert!(Instant::now() < deadline, "the jobs did not all finish");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A manager that enqueues and watches but runs nothing (no kind registered).
fn observer(store: PgStore) -> Manager {
    builder()
        .workers(crate::WORKERS)
        .store(store)
        .build()
        .expect("the manager builds")
}

/// Enqueues `jobs` no-op jobs in batches of [`ENQUEUE_BATCH`], every batch sent before
/// the first answer is awaited.
fn enqueue(manager: &Manager, jobs: u64) {
    let mut pending = Vec::new();
    let mut n = 0;
    while n < jobs {
        let end = (n + ENQUEUE_BATCH).min(jobs);
        let batch = (n..end).map(|n| (Noop { n }, JobOptions::new())).collect();
        pending.push(manager.enqueue_batch(batch));
        n = end;
    }
    for answers in pending {
        for answer in answers.wait() {
            answer.expect("enqueued");
        }
    }
}

/// One errand round: jobs/s with `processes` worker processes, and their mean claim.
fn errand_round(server: &mut Server, processes: usize, jobs: u64) -> (f64, f64) {
    let schema = fresh_schema("tput");
    let watcher = observer(server.store(&schema, "enqueuer"));
    let workers: Vec<Worker> = (0..processes)
        .map(|n| Worker::start(&server.url, &schema, &format!("worker-{n}"), &["--instant"]))
        .collect();
    let (started, busy) = (Instant::now(), machine_busy());
    enqueue(&watcher, jobs);
    until_idle(&watcher);
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "  errand, {processes} process(es): {:.1} µs of machine CPU a job",
        (machine_busy() - busy) / jobs as f64 * 1e6
    );
    let stats: Vec<WorkerStats> = workers.into_iter().map(Worker::stop).collect();
    let claimed: u64 = stats.iter().map(|s| s.claimed).sum();
    let claims: u64 = stats.iter().map(|s| s.claims).sum();
    assert_eq!(claimed, jobs, "every job claimed once");
    drop(watcher);
    server.drop_schema(&schema);
    (jobs as f64 / elapsed, claimed as f64 / claims.max(1) as f64)
}

/// One round of the peer: jobs/s of apalis-postgres with `processes` processes.
fn apalis_round(url: &str, processes: usize, jobs: u64) -> f64 {
    let binary =
        std::path::PathBuf::from("benches/peers/apalis-postgres/target/release/apalis-pg-peer");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --release --locked --manifest-path \
         benches/peers/apalis-postgres/Cargo.toml`",
        binary.display()
    );
    let output = Command::new(&binary)
        .args(["--url", url, "--jobs", &jobs.to_string()])
        .args(["--workers", &crate::WORKERS.to_string()])
        .args(["--processes", &processes.to_string()])
        .stderr(Stdio::null())
        .output()
        .expect("the apalis-postgres peer runs");
    assert!(output.status.success(), "the apalis-postgres peer failed");
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    line["jobs_per_s"].as_f64().expect("jobs_per_s")
}

/// One cycle of a durable job's row work as a pgbench script, three transactions as
/// errand commits them: `:batch` jobs inserted; errand's claim statement, verbatim
/// ([`CLAIM_SQL`], its `$n` as pgbench variables) claiming up to `:batch` for this client;
/// the jobs this client holds completed, as errand's completion writes them. pgbench has no
/// loops, so the insert and the completion are set-based where errand sends one statement
/// a job: the same rows written, fewer statements.
fn cycle_script() -> String {
    let claim = CLAIM_SQL
        .replace("$1", ":now")
        .replace("$2", "'{crash-test-work}'::text[]")
        .replace("$3", ":batch")
        .replace("$4", "('pgbench-' || :client_id)")
        .replace("$5", ":lease");
    format!(
        "\\set now 1000\n\\set lease 31000\n\
         BEGIN;\n\
         INSERT INTO errand_jobs (kind, payload, state, priority, run_at, attempt, failures, \
         retry_max, retry_initial_ms, retry_multiplier, retry_max_delay_ms, retry_jitter, \
         result_ttl_ms, created_at) SELECT 'crash-test-work', '{{\"n\":' || g || '}}', 0, 5, \
         0, 0, 0, 0, 1000, 2.0, 60000, 0, 60000, :now FROM generate_series(1, :batch) AS g;\n\
         COMMIT;\n\
         BEGIN;\n{claim};\nCOMMIT;\n\
         BEGIN;\n\
         UPDATE errand_jobs SET state = 2, result = 'null', expires_at = :now + 60000, \
         error = NULL, failures = failures + 0, finished_at = :now, progress = 100, \
         lease_until = NULL WHERE state = 1 AND node = ('pgbench-' || :client_id);\n\
         COMMIT;\n"
    )
}

/// The server's ceiling for errand's row work: jobs inserted, claimed and completed per
/// second by `clients` pgbench clients running [`cycle_script`] with `batch` jobs a cycle.
fn pgbench_ceiling(server: &mut Server, clients: usize, batch: usize, jobs: u64) -> f64 {
    let schema = fresh_schema("ceiling");
    drop(server.store(&schema, "setup"));
    let script = std::env::temp_dir().join(format!("errand-cycle-{}.sql", std::process::id()));
    std::fs::File::create(&script)
        .and_then(|mut file| file.write_all(cycle_script().as_bytes()))
        .expect("writing the pgbench script");
    let cycles = (jobs as usize / (clients * batch)).max(1);
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let busy = machine_busy();
    let output = Command::new(std::path::Path::new(&bin).join("pgbench"))
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
        .args(["-j", &clients.to_string(), "-t", &cycles.to_string()])
        .args(["-D", &format!("batch={batch}")])
        .arg("-f")
        .arg(&script)
        .arg(&server.url)
        .output()
        .expect("pgbench runs (PostgreSQL's client tools are needed)");
    drop(std::fs::remove_file(&script));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tps: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .expect("pgbench prints its tps");
    // A cycle's claim may come back short under contention: count what was completed.
    let done: i64 = server
        .client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.errand_jobs WHERE state = 2"),
            &[],
        )
        .and_then(|row| row.try_get(0))
        .expect("counting the completed jobs");
    eprintln!(
        "  pgbench, {clients} client(s): {:.1} µs of machine CPU a job",
        (machine_busy() - busy) / done.max(1) as f64 * 1e6
    );
    server.drop_schema(&schema);
    let seconds = (clients * cycles) as f64 / tps;
    done as f64 / seconds
}

/// Enqueue (committed) on one node to start on another, `samples` times, idle.
fn latency(server: &mut Server, samples: usize) -> Vec<f64> {
    let schema = fresh_schema("latency");
    let sender = observer(server.store(&schema, "sender"));
    let runner = builder()
        .workers(crate::WORKERS)
        .store(server.store(&schema, "runner"))
        .register::<Probe>()
        .build()
        .expect("the manager builds");
    let (tx, rx) = std::sync::mpsc::channel();
    *probes().lock().unwrap() = Some(tx);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        std::thread::sleep(Duration::from_millis(5));
        let sent = Instant::now();
        sender
            .enqueue(Probe, JobOptions::new())
            .wait()
            .expect("enqueued");
        let started = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the probe ran on the other node");
        latencies.push(started.saturating_duration_since(sent).as_nanos() as f64);
    }
    *probes().lock().unwrap() = None;
    drop((sender, runner));
    server.drop_schema(&schema);
    latencies
}

/// One single-row insert committed, `samples` times: the floor of a durable enqueue.
fn commit_latency(server: &mut Server, samples: usize) -> Vec<f64> {
    let schema = fresh_schema("commit");
    let client = &mut server.client;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id bigserial PRIMARY KEY, v bigint)"
        ))
        .expect("creating the table");
    let insert = client
        .prepare(&format!("INSERT INTO {schema}.t (v) VALUES ($1)"))
        .expect("preparing");
    let latencies = (0..samples as i64)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(5));
            let start = Instant::now();
            client.execute(&insert, &[&i]).expect("inserting");
            start.elapsed().as_nanos() as f64
        })
        .collect();
    server.drop_schema(&schema);
    latencies
}

/// A node killed holding `held` jobs mid-run: time until another node finished them all
/// (ns), the part of it after their leases ended (ns), and how many of them completed
/// more than once.
fn rescue(server: &mut Server, held: usize) -> (f64, f64, u64) {
    let schema = fresh_schema("rescue");
    let watcher = observer(server.store(&schema, "watcher"));
    // Jobs that run two minutes on the doomed node.
    let doomed = Worker::start(&server.url, &schema, "doomed", &["--work-us", "120000000"]);
    let ids: Vec<JobId> = watcher
        .enqueue_batch(
            (0..held as u64)
                .map(|n| (Noop { n }, JobOptions::new()))
                .collect(),
        )
        .wait()
        .into_iter()
        .map(|answer| answer.expect("enqueued"))
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while count(&watcher, JobState::Running, held + 1) < held {
        assert!(
            Instant::now() < deadline,
            "the doomed node did not claim them"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The rescuer is up before the kill, as a surviving node would be.
    let before = ran();
    let rescuer = builder()
        .workers(crate::WORKERS)
        .store(server.store(&schema, "rescuer"))
        .register::<Noop>()
        .build()
        .expect("the manager builds");
    // When the last of their leases ends (Unix ms): the doomed node just claimed them.
    let expiry: i64 = server
        .client
        .query_one(
            &format!("SELECT max(lease_until) FROM {schema}.errand_jobs WHERE state = 1"),
            &[],
        )
        .and_then(|row| row.try_get(0))
        .expect("the running jobs have leases");
    let mut child = doomed.child;
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    child.wait().expect("the doomed node is gone");
    while count(&watcher, JobState::Succeeded, held + 1) < held {
        assert!(
            killed.elapsed() < DEFAULT_LEASE * 3,
            "the dead node's jobs were not rescued"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = killed.elapsed().as_nanos() as f64;
    let after_expiry = (unix_millis() - expiry).max(0) as f64 * 1e6;
    let runs = ran() - before;
    for id in ids {
        let row = watcher
            .job(id)
            .expect("reading a job")
            .expect("the job exists");
        assert_eq!(row.job_state, JobState::Succeeded);
    }
    drop((rescuer, watcher));
    server.drop_schema(&schema);
    (elapsed, after_expiry, runs.saturating_sub(held as u64))
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn run(runner: &mut Runner) {
    let throughput_cases = [
        "pg_throughput_1",
        "pg_throughput_3",
        "pg_ceiling_1",
        "pg_ceiling_3",
    ];
    let latency_cases = ["pg_latency_p50", "pg_latency_p99"];
    let rescue_cases = [
        "pg_rescue",
        "pg_rescue_after_expiry",
        "pg_rescue_duplicates",
    ];
    if !runner.wants_any(&throughput_cases)
        && !runner.wants_any(&latency_cases)
        && !runner.wants_any(&rescue_cases)
    {
        return;
    }
    let quick = runner.plan.rounds < 7;
    let mut server = Server::connect();
    eprintln!("pg: on {}", server.url);
    if runner.wants_any(&throughput_cases) {
        let jobs: u64 = if quick { 20_000 } else { 100_000 };
        let rounds = if quick { 2 } else { 3 };
        let peer_url = server.database("errand_compare_apalis");
        for processes in [1, 3] {
            let case = format!("pg_throughput_{processes}");
            eprintln!("{case}: warm-up");
            errand_round(&mut server, processes, jobs / 4);
            apalis_round(&peer_url, processes, jobs / 4);
            let (mut errand, mut peer, mut claims) = (Vec::new(), Vec::new(), Vec::new());
            for round in 1..=rounds {
                let (rate, claim) = errand_round(&mut server, processes, jobs);
                let theirs = apalis_round(&peer_url, processes, jobs);
                eprintln!(
                    "{case}: round {round}/{rounds}: errand {rate:.4e} (mean claim {claim:.1}), \
                     apalis-postgres {theirs:.4e}"
                );
                errand.push(rate);
                peer.push(theirs);
                claims.push(claim);
            }
            runner.emit(Line::new(
                &case,
                format!("errand durable jobs (PostgreSQL), {processes} process(es) of 2 workers"),
                format!("apalis-postgres 1.0, {processes} process(es) of 2 workers"),
                Unit::TasksPerSecond,
                median(&errand),
                median(&peer),
                true,
            ));
            let batch = median(&claims).round().max(1.0) as usize;
            let ceilings: Vec<f64> = (0..rounds)
                .map(|_| pgbench_ceiling(&mut server, processes, batch, jobs))
                .collect();
            runner.emit(Line::new(
                format!("pg_ceiling_{processes}"),
                format!("errand durable jobs (PostgreSQL), {processes} process(es), end to end"),
                format!(
                    "pgbench: the same row work (errand's claim statement), {processes} \
                     client(s), {batch} jobs a cycle"
                ),
                Unit::TasksPerSecond,
                median(&errand),
                median(&ceilings),
                true,
            ));
        }
    }
    if runner.wants_any(&latency_cases) {
        let samples = if quick { 100 } else { 400 };
        // A warm-up of each side first (connections, prepared statements, the planner).
        latency(&mut server, 10);
        let errand = latency(&mut server, samples);
        let floor = commit_latency(&mut server, samples);
        for (case, p) in [("pg_latency_p50", 50.0), ("pg_latency_p99", 99.0)] {
            runner.emit(Line::new(
                case,
                "errand enqueue (committed) on one node to start on another, idle",
                "one single-row insert committed on the same server",
                Unit::Nanoseconds,
                percentile(&errand, p),
                percentile(&floor, p),
                false,
            ));
        }
    }
    if runner.wants_any(&rescue_cases) {
        let held = 20;
        let rounds = if quick { 1 } else { 3 };
        let (mut times, mut afters, mut duplicates) = (Vec::new(), Vec::new(), 0);
        for round in 1..=rounds {
            let (time, after, twice) = rescue(&mut server, held);
            eprintln!(
                "pg_rescue: round {round}/{rounds}: {:.2} s, {:.0} ms after the leases ended, \
                 {twice} completed twice",
                time / 1e9,
                after / 1e6
            );
            times.push(time);
            afters.push(after);
            duplicates += twice;
        }
        runner.emit(Line::new(
            "pg_rescue",
            format!("SIGKILL of a node holding {held} running jobs to all finished elsewhere"),
            "the lease (default, 30 s)",
            Unit::Nanoseconds,
            median(&times),
            DEFAULT_LEASE.as_nanos() as f64,
            false,
        ));
        runner.emit(Line::new(
            "pg_rescue_after_expiry",
            "the leases' end to all finished elsewhere",
            "the poll interval (default, 1 s)",
            Unit::Nanoseconds,
            median(&afters),
            1e9,
            false,
        ));
        runner.emit(Line::new(
            "pg_rescue_duplicates",
            "rescued jobs completed more than once",
            format!("jobs the dead node held ({rounds} round(s))"),
            Unit::Count,
            duplicates as f64,
            (held * rounds) as f64,
            false,
        ));
        // Not a timing: fencing by attempt promises that a rescued job completes once.
        assert_eq!(duplicates, 0, "rescued jobs completed more than once");
    }
}
