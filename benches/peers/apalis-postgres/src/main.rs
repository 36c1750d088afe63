//! The apalis-postgres peer of errand's PostgreSQL throughput case: durable no-op jobs end
//! to end on a PostgreSQL server (enqueue, run, completion recorded in the database), with
//! W workers in each of P processes consuming one queue.
//!
//! ```text
//! apalis-pg-peer --url postgres://USER@HOST:PORT/DB --jobs N [--workers W] [--processes P]
//! ```
//!
//! It prints one JSON line on stdout:
//! `{"jobs":N,"seconds":S,"jobs_per_s":R,"processes":P,"workers":W}`. Progress and errors go
//! to stderr. A run that takes longer than five minutes exits with status 2.
//!
//! **It drops the `apalis` schema of the database it is given** (`DROP SCHEMA apalis
//! CASCADE`) and re-creates it with apalis-postgres's migrations, so every run starts from
//! the same empty tables, indexes and planner statistics, whatever an earlier run left.
//! Point it at a throwaway database only.
//!
//! The run, in order (only steps 4 to 6 are timed):
//!
//! 1. the first process drops and re-creates the schema;
//! 2. it starts P-1 copies of itself (`std::env::current_exe()`) in a worker-only mode
//!    (`--child K`), each with W workers on the same queue, and starts its own W;
//! 3. it waits until all P×W workers have registered in `apalis.workers`;
//! 4. the clock starts; it enqueues the N jobs in batches of 1000;
//! 5. it watches the database until N jobs have the status `Done` (see [`wait_all_done`]);
//! 6. the clock stops;
//! 7. it stops its workers, closes the children's stdin (on which they stop theirs and
//!    exit), waits for them, and checks that the table holds exactly N jobs, all `Done`.
//!
//! Settings: apalis-postgres 1.0's defaults throughout (its `Config::default()`: a batch
//! of 10 jobs per fetch, jobs locked while they run, results recorded, a 30 s heartbeat;
//! sqlx's default pool of up to 10 connections per process; the server's own durability
//! settings, printed on stderr) but one: a poll interval, see [`POLL_INTERVAL`].

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{PgPool, PostgresStorage};
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// The whole run (setup included) must finish within this, or the process exits 2.
const HARD_TIMEOUT: Duration = Duration::from_secs(300);

/// Jobs per enqueue call, as errand's side of the comparison enqueues them.
const ENQUEUE_BATCH: u64 = 1000;

/// How often an idle worker looks at the queue again.
///
/// apalis-postgres 1.0 sets no wake-up of its own: `PostgresStorage::new` polls the table
/// only when its worker is woken, and a worker whose fetch finds the queue empty is woken
/// next by its heartbeat, 30 s later. Two places in this run hit that:
///
/// - a worker that starts before the first batch is committed (here: every worker, as they
///   register before the clock starts) would sit idle for up to 30 s;
/// - at the end of the run, a worker whose last fetch came back empty while its final
///   jobs were finishing keeps their completions in memory, unwritten, until it is woken
///   again. Seen here without an interval: the last few jobs were recorded `Done` only at
///   the next heartbeat, so every run took just over 30 s whatever N was.
///
/// apalis's documented remedies are a poll strategy or `with_pubsub()` (LISTEN/NOTIFY on
/// inserts). Notifications alone do not cover the second case (nothing is inserted at the
/// end), so this program uses a plain interval, `poll_with_interval`, and the same 100 ms
/// as the apalis-sqlite peer (`benches/peers/apalis`), taken from apalis-sqlite's own
/// `examples/config.rs`. The interval does not throttle a busy worker: one whose fetch
/// returns jobs fetches again as soon as it has handed them out. What it does cost is up
/// to 100 ms at the end of a run, before the last completions are written: part of
/// apalis-postgres's end-to-end time, so it is left inside the clock.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often the first process asks whether any job is still waiting to be fetched, once
/// all are enqueued (an `EXISTS` on apalis's own partial index of waiting jobs: cheap).
const PENDING_CHECK: Duration = Duration::from_millis(20);

/// How often it then counts the `Done` jobs, until there are N. This count reads the whole
/// table, so it only runs once no job waits to be fetched, for the last few batches.
const DONE_CHECK: Duration = Duration::from_millis(5);

/// How long a child may take to stop after its stdin closes before it gives up.
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The no-op job.
#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    n: u64,
}

/// The handler: does nothing.
async fn run_noop(_job: Noop) -> Result<(), BoxDynError> {
    Ok(())
}

/// The command line.
struct Args {
    url: String,
    jobs: u64,
    workers: usize,
    processes: usize,
    /// `Some(k)`: this is child k (1..P), worker-only.
    child: Option<usize>,
}

const USAGE: &str =
    "usage: apalis-pg-peer --url postgres://USER@HOST:PORT/DB --jobs N [--workers W] [--processes P]";

fn usage(problem: &str) -> ! {
    eprintln!("apalis-pg-peer: {problem}");
    eprintln!("{USAGE}");
    std::process::exit(64);
}

fn parse_args() -> Args {
    let (mut url, mut jobs, mut workers, mut processes, mut child) = (None, None, 2, 1, None);
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let mut number = || {
            value()
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| usage(&format!("{flag} wants a positive number")))
        };
        match flag.as_str() {
            "--url" => url = Some(value()),
            "--jobs" => jobs = Some(number()),
            "--workers" => workers = number() as usize,
            "--processes" => processes = number() as usize,
            // Internal: how the first process starts the others.
            "--child" => child = Some(number() as usize),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let jobs = match (jobs, child) {
        (Some(jobs), _) => jobs,
        (None, Some(_)) => 0,
        (None, None) => usage("--jobs is required"),
    };
    Args {
        url,
        jobs,
        workers,
        processes,
        child,
    }
}

/// The printed result.
#[derive(Serialize)]
struct Report {
    jobs: u64,
    seconds: f64,
    jobs_per_s: f64,
    processes: usize,
    workers: usize,
}

/// A signal every worker of a process waits on.
type Stop = Shared<oneshot::Receiver<()>>;

/// Starts W workers for process `process`, each on its own clone of one storage (one pool),
/// each stopping when `stop` fires. Worker names are unique across processes
/// (apalis-postgres registers each in `apalis.workers` and refuses a name in use).
fn start_workers(
    pool: &PgPool,
    process: usize,
    workers: usize,
    stop: &Stop,
) -> Vec<JoinHandle<Result<(), WorkerError>>> {
    let storage: PostgresStorage<Noop> = PostgresStorage::new(pool);
    (1..=workers)
        .map(|i| {
            // No `.concurrency(..)` layer: a worker runs the jobs of its batch concurrently
            // with no limit, as apalis does by default; the handler does nothing.
            let worker = WorkerBuilder::new(format!("p{process}-w{i}"))
                .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                .on_event(|ctx, event| {
                    if let Event::Error(error) = event {
                        eprintln!("apalis-pg-peer: {}: {error}", ctx.name());
                    }
                })
                .build(run_noop);
            let signal = stop.clone().map(|_| Ok::<(), std::io::Error>(()));
            tokio::spawn(worker.run_until(signal))
        })
        .collect()
}

/// Waits for every worker of this process to stop.
async fn join_workers(
    workers: Vec<JoinHandle<Result<(), WorkerError>>>,
) -> Result<(), BoxDynError> {
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// Worker-only mode: W workers until stdin closes, then stop them (each writes its last
/// completions) and exit.
async fn run_child(args: &Args, process: usize) -> Result<(), BoxDynError> {
    let pool = PgPool::connect(&args.url).await?;
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
        std::thread::sleep(CHILD_STOP_TIMEOUT);
        eprintln!("apalis-pg-peer: child {process} did not stop in time, giving up");
        std::process::exit(2);
    });
    let workers = start_workers(&pool, process, args.workers, &rx.shared());
    join_workers(workers).await?;
    pool.close().await;
    Ok(())
}

/// Drops apalis's schema, with every job, worker and migration record of earlier runs, and
/// runs apalis-postgres's migrations (`PostgresStorage::setup`) to create it again.
async fn fresh_schema(pool: &PgPool) -> Result<(), BoxDynError> {
    sqlx::query("DROP SCHEMA IF EXISTS apalis CASCADE")
        .execute(pool)
        .await?;
    PostgresStorage::setup(pool).await?;
    let mut settings = Vec::new();
    for name in ["server_version", "synchronous_commit", "fsync", "shared_buffers"] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(pool)
            .await?;
        settings.push(format!("{name}={value}"));
    }
    eprintln!("apalis-pg-peer: server {}", settings.join(" "));
    Ok(())
}

/// Fails if a child has already exited: the run cannot finish as measured without it.
fn check_children(children: &mut [Child]) -> Result<(), BoxDynError> {
    for child in children {
        if let Some(status) = child.try_wait()? {
            return Err(format!("a child process exited early ({status})").into());
        }
    }
    Ok(())
}

/// Waits until every worker of every process has registered in `apalis.workers`.
async fn wait_registered(
    pool: &PgPool,
    expected: i64,
    children: &mut [Child],
) -> Result<(), BoxDynError> {
    loop {
        let registered: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.workers")
            .fetch_one(pool)
            .await?;
        if registered == expected {
            return Ok(());
        }
        check_children(children)?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits, once all jobs are enqueued, until `jobs` jobs are recorded `Done`.
///
/// Counting `Done` rows reads the whole table (apalis has no index that covers it), and
/// doing that every few milliseconds through a long run would take a share of the server
/// from the workers. So it first waits, with a cheap query, until no job waits to be
/// fetched any more; the jobs left are then the ones in the workers' hands (at most P×W
/// batches of 10), and only then does it count `Done` rows, often.
async fn wait_all_done(
    pool: &PgPool,
    jobs: u64,
    children: &mut [Child],
) -> Result<(), BoxDynError> {
    // The same predicate as apalis's partial index `idx_apalis_jobs_fetch_partial` (and its
    // `get_jobs` fetch), so the planner answers it from that index.
    let waiting = "SELECT EXISTS (SELECT 1 FROM apalis.jobs WHERE job_type = $1 AND \
                   (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)))";
    let queue = std::any::type_name::<Noop>();
    loop {
        let any: bool = sqlx::query_scalar(waiting)
            .bind(queue)
            .fetch_one(pool)
            .await?;
        if !any {
            break;
        }
        check_children(children)?;
        tokio::time::sleep(PENDING_CHECK).await;
    }
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE status = 'Done'")
            .fetch_one(pool)
            .await?;
        if done as u64 >= jobs {
            return Ok(());
        }
        check_children(children)?;
        tokio::time::sleep(DONE_CHECK).await;
    }
}

/// The first process: setup, children, enqueue, the clock, and the final checks.
async fn run(args: &Args) -> Result<Report, BoxDynError> {
    let pool = PgPool::connect(&args.url).await?;
    fresh_schema(&pool).await?;
    // The queue is the default one `PostgresStorage::new` names after the job type.
    let storage: PostgresStorage<Noop> = PostgresStorage::new(&pool);

    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for process in 1..args.processes {
        let child = Command::new(&exe)
            .args(["--url", &args.url])
            .args(["--workers", &args.workers.to_string()])
            .args(["--child", &process.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        children.push(child);
    }
    let (stop, stopped) = oneshot::channel();
    let workers = start_workers(&pool, 0, args.workers, &stopped.shared());
    wait_registered(&pool, (args.processes * args.workers) as i64, &mut children).await?;
    eprintln!(
        "apalis-pg-peer: {} workers in {} processes registered",
        args.processes * args.workers,
        args.processes
    );

    // The clock starts at the first enqueue, every worker already running.
    let started = Instant::now();
    let mut sink = storage;
    let mut next = 0;
    while next < args.jobs {
        let end = (next + ENQUEUE_BATCH).min(args.jobs);
        // `push_bulk` buffers the batch and writes it with one multi-row INSERT (apalis's
        // `push_tasks`, an UNNEST of arrays) in one transaction.
        sink.push_bulk((next..end).map(|n| Noop { n }).collect())
            .await?;
        next = end;
    }
    eprintln!(
        "apalis-pg-peer: {} jobs enqueued after {:.3} s",
        args.jobs,
        started.elapsed().as_secs_f64()
    );
    wait_all_done(&pool, args.jobs, &mut children).await?;
    let seconds = started.elapsed().as_secs_f64();

    // Outside the clock: stop everyone, then check the table.
    let _ = stop.send(());
    for child in &mut children {
        drop(child.stdin.take());
    }
    join_workers(workers).await?;
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        if !status.success() {
            return Err(format!("a child process failed ({status})").into());
        }
    }
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM apalis.jobs GROUP BY status")
            .fetch_all(&pool)
            .await?;
    if states != [("Done".to_string(), args.jobs as i64)] {
        return Err(format!("expected {} jobs done, found {states:?}", args.jobs).into());
    }
    // Who ran them: worker names start with the process number.
    let shares: Vec<(String, i64)> = sqlx::query_as(
        "SELECT split_part(lock_by, '-', 1) AS p, COUNT(*) FROM apalis.jobs GROUP BY p ORDER BY p",
    )
    .fetch_all(&pool)
    .await?;
    let shares: Vec<String> = shares.iter().map(|(p, n)| format!("{p}={n}")).collect();
    eprintln!("apalis-pg-peer: jobs run per process: {}", shares.join(" "));
    pool.close().await;

    Ok(Report {
        jobs: args.jobs,
        seconds,
        jobs_per_s: args.jobs as f64 / seconds,
        processes: args.processes,
        workers: args.workers,
    })
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    // A plain thread, so that it fires even if the runtime is stuck. When the first
    // process exits, its children's stdin closes and they stop too.
    std::thread::spawn(|| {
        std::thread::sleep(HARD_TIMEOUT);
        eprintln!(
            "apalis-pg-peer: no result after {} s, giving up",
            HARD_TIMEOUT.as_secs()
        );
        std::process::exit(2);
    });
    if let Some(process) = args.child {
        if let Err(error) = run_child(&args, process).await {
            eprintln!("apalis-pg-peer: child {process}: {error}");
            std::process::exit(1);
        }
        return;
    }
    match run(&args).await {
        Ok(report) => println!("{}", serde_json::to_string(&report).unwrap()),
        Err(error) => {
            eprintln!("apalis-pg-peer: {error}");
            std::process::exit(1);
        }
    }
}
