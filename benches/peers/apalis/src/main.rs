//! The apalis-sqlite peer of errand's `durable_throughput_apalis` case: durable no-op jobs
//! end to end on a SQLite file (enqueue, run, completion recorded), with the same
//! durability as errand (WAL, `synchronous=FULL` unless told otherwise).
//!
//! ```text
//! apalis-peer --db PATH --jobs N [--workers W] [--synchronous full|normal]
//! ```
//!
//! It prints one JSON line on stdout:
//! `{"jobs":N,"seconds":S,"jobs_per_s":R,"synchronous":"full"}`. Progress and errors go to
//! stderr. A run that takes longer than five minutes exits with status 2.
//!
//! apalis-sqlite 1.0 slows down as the run grows (see [`run`]): its jobs/s at 20 000 jobs
//! is several times lower than at 1 000, so compare runs of the same `--jobs` only.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteStorage};
use futures::FutureExt;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};

/// The whole run (setup included) must finish within this, or the process exits 2.
const HARD_TIMEOUT: Duration = Duration::from_secs(300);

/// Jobs per enqueue call, as errand's side of the comparison enqueues them.
const ENQUEUE_BATCH: u64 = 1000;

/// How often an idle worker looks at the queue again. apalis-sqlite 1.0 sets no poll
/// interval by default: a worker whose fetch finds the queue empty sleeps until its next
/// heartbeat (30 s), so a worker that looks before the first batch is committed idles for
/// 30 s (seen here: one run in six of 200 jobs took 30.1 s instead of 0.1 s). 100 ms is
/// the interval apalis-sqlite's own `examples/config.rs` uses.
/// It only matters when a fetch comes back empty (here: before the first commit); a
/// worker whose fetch returns jobs fetches again as soon as it has handed them out.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a connection waits for SQLite's write lock before failing with "database is
/// locked". sqlx's default is 5 s; with two workers and the enqueuer writing at once, a
/// worker sometimes waited longer than that for its turn (apalis-sqlite's transactions
/// grow slow as the table grows, see [`run`]), failed, and ended the run. 60 s is a
/// setting a user running several workers on one file would reasonably choose.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The no-op job.
#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    n: u64,
}

/// Shared by every worker's handler: how many jobs have run, and who to tell when the
/// last one has.
struct Progress {
    ran: AtomicU64,
    target: u64,
    all_ran: Mutex<Option<oneshot::Sender<()>>>,
}

/// The handler: counts the job, and on the last one signals every worker to stop.
async fn run_noop(_job: Noop, progress: Data<Arc<Progress>>) -> Result<(), BoxDynError> {
    if progress.ran.fetch_add(1, Ordering::Relaxed) + 1 == progress.target
        && let Some(tx) = progress.all_ran.lock().unwrap().take()
    {
        let _ = tx.send(());
    }
    Ok(())
}

/// The command line.
struct Args {
    db: PathBuf,
    jobs: u64,
    workers: usize,
    normal: bool,
}

fn usage(problem: &str) -> ! {
    eprintln!("apalis-peer: {problem}");
    eprintln!("usage: apalis-peer --db PATH --jobs N [--workers W] [--synchronous full|normal]");
    std::process::exit(64);
}

fn parse_args() -> Args {
    let (mut db, mut jobs, mut workers, mut normal) = (None, None, 2, false);
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
            "--db" => db = Some(PathBuf::from(value())),
            "--jobs" => jobs = Some(number()),
            "--workers" => workers = number() as usize,
            "--synchronous" => match value().as_str() {
                "full" => normal = false,
                "normal" => normal = true,
                _ => usage("--synchronous is full or normal"),
            },
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    Args {
        db: db.unwrap_or_else(|| usage("--db is required")),
        jobs: jobs.unwrap_or_else(|| usage("--jobs is required")),
        workers,
        normal,
    }
}

/// The printed result.
#[derive(Serialize)]
struct Report {
    jobs: u64,
    seconds: f64,
    jobs_per_s: f64,
    synchronous: &'static str,
}

/// Deletes the database and its WAL and shared-memory files, then creates it with
/// apalis-sqlite's schema, and returns a pool whose every connection uses WAL and the
/// asked `synchronous`.
async fn fresh_pool(args: &Args) -> Result<SqlitePool, BoxDynError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = args.db.clone().into_os_string();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            _ => {}
        }
    }
    let options = SqliteConnectOptions::new()
        .filename(&args.db)
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if args.normal {
            SqliteSynchronous::Normal
        } else {
            SqliteSynchronous::Full
        });
    // `SqliteStorage::setup` runs `PRAGMA synchronous = OFF` (and a few cache pragmas) on
    // whichever pooled connection it gets, and that connection would go back to the pool
    // with no durability. So it runs on a pool of its own, closed afterwards; the pool the
    // benchmark uses only ever has connections opened with the options above.
    let setup = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    SqliteStorage::setup(&setup).await?;
    setup.close().await;
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    // Check: 2 is FULL, 1 is NORMAL.
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&pool)
        .await?;
    let expected = if args.normal { 1 } else { 2 };
    if synchronous != expected {
        return Err(format!("PRAGMA synchronous is {synchronous}, not {expected}").into());
    }
    Ok(pool)
}

/// The run, from an empty database to every job recorded as done.
///
/// A note on apalis-sqlite 1.0's speed: its acknowledgement query (`queries/task/ack.sql`,
/// `UPDATE Jobs ... FROM json_each(?) WHERE Jobs.id = task_id AND Jobs.lock_by = ?`) is
/// planned, on a database without statistics (apalis never runs `ANALYZE`), as a walk
/// over every row the worker has ever locked (the index on `lock_by`), finished jobs
/// included, each checked against the acknowledged ids. So an acknowledgement costs time
/// in proportion to the jobs that worker ran before, and a run's time grows with the
/// square of `--jobs`. With statistics that show `lock_by` has few distinct values,
/// SQLite looks the ids up by primary key instead and the slowdown goes away, but whether
/// an `ANALYZE` gives such statistics depends on when it runs, so this program does not
/// run one: it measures apalis-sqlite as it comes.
async fn run(args: Args) -> Result<Report, BoxDynError> {
    let pool = fresh_pool(&args).await?;
    let storage: SqliteStorage<Noop> = SqliteStorage::new(&pool);

    let (tx, rx) = oneshot::channel();
    let progress = Arc::new(Progress {
        ran: AtomicU64::new(0),
        target: args.jobs,
        all_ran: Mutex::new(Some(tx)),
    });
    let all_ran = rx.shared();

    // Concurrency: W apalis workers on clones of one storage (one pool), each with its
    // own name, fetching batches of jobs on its own (apalis-sqlite's default batch of 10,
    // jobs locked and results recorded: all its defaults). Each is spawned on the
    // multi-threaded runtime. A worker runs the jobs of a batch concurrently itself, with
    // no limit (no `.concurrency(..)` layer): the handler does nothing, so a limit would
    // only add overhead. `run_until` stops the worker once every job has run; it returns
    // after the worker has written its last acknowledgements to the database.
    let mut workers = Vec::new();
    for i in 1..=args.workers {
        let worker = WorkerBuilder::new(format!("worker-{i}"))
            .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
            .data(progress.clone())
            .on_event(|ctx, event| {
                if let Event::Error(error) = event {
                    eprintln!("apalis-peer: {}: {error}", ctx.name());
                }
            })
            .build(run_noop);
        let signal = all_ran.clone().map(|_| Ok::<(), std::io::Error>(()));
        workers.push(tokio::spawn(worker.run_until(signal)));
    }

    // The clock starts at the first enqueue, the workers already started.
    let started = Instant::now();
    let mut sink = storage;
    let mut next = 0;
    while next < args.jobs {
        let end = (next + ENQUEUE_BATCH).min(args.jobs);
        // `push_bulk` is apalis-sqlite's fastest enqueue: the batch is buffered and
        // written in one transaction (one commit).
        sink.push_bulk((next..end).map(|n| Noop { n }).collect())
            .await?;
        next = end;
    }
    eprintln!(
        "apalis-peer: {} jobs enqueued after {:.3} s",
        args.jobs,
        started.elapsed().as_secs_f64()
    );
    for worker in workers {
        worker.await??;
    }
    let seconds = started.elapsed().as_secs_f64();

    // Outside the clock: every job is recorded as done in the database.
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM Jobs GROUP BY status")
            .fetch_all(&pool)
            .await?;
    let done = states
        .iter()
        .find(|(s, _)| s == "Done")
        .map_or(0, |(_, n)| *n);
    if done as u64 != args.jobs || states.len() != 1 {
        return Err(format!("expected {} jobs done, found {states:?}", args.jobs).into());
    }
    pool.close().await;

    Ok(Report {
        jobs: args.jobs,
        seconds,
        jobs_per_s: args.jobs as f64 / seconds,
        synchronous: if args.normal { "normal" } else { "full" },
    })
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    // A plain thread, so that it fires even if the runtime is stuck.
    std::thread::spawn(|| {
        std::thread::sleep(HARD_TIMEOUT);
        eprintln!(
            "apalis-peer: no result after {} s, giving up",
            HARD_TIMEOUT.as_secs()
        );
        std::process::exit(2);
    });
    match run(args).await {
        Ok(report) => println!("{}", serde_json::to_string(&report).unwrap()),
        Err(error) => {
            eprintln!("apalis-peer: {error}");
            std::process::exit(1);
        }
    }
}
