//! A process that runs durable jobs on a SQLite file or a PostgreSQL database, to be
//! killed: the crash test (`benches/tests/crash.rs`), the cluster test
//! (`benches/tests/cluster.rs`) and the durable cases of the comparison runner start it,
//! `SIGKILL` it at random moments and start it again.
//!
//! ```text
//! durable-worker (--db FILE | --pg URL [--schema S] [--node NAME] [--lease-ms N]
//!                [--poll-ms N]) --log FILE [--enqueue N] [--batch B] [--until-done]
//!                [--exit] [--no-run] [--instant] [--work-us N] [--peak-rss]
//!                [--schedule NAME,EVERY_MS,TIMES] [--fsize-limit BYTES] [--as-nobody]
//!                [--serve]
//! ```
//!
//! `--pg` runs on PostgreSQL (errand-store-postgres) in schema `--schema`, with the lease
//! and poll given. `--work-us` makes each job pause that long (by default 0.5–2 ms);
//! `--schedule` stores a recurring schedule of `Work` jobs (every `EVERY_MS`, `TIMES` runs,
//! missed ticks in a burst, a tick's job made even while the previous one runs, so every
//! tick makes exactly one job) before anything else.
//!
//! It registers the job type `Work` (each run appends `run <job> <attempt>` to the log,
//! then returns its number doubled with the attempt), enqueues `N` jobs in batches of `B`
//! (appending `ack <job>` for each acknowledged one, after its commit), and runs jobs until
//! killed, or with `--until-done` until no job is pending or running (then it shuts down,
//! prints `unfinished <count>` and exits 0), or with `--exit` as soon as its enqueues are
//! acknowledged. `--instant` makes each job
//! return at once (no logging, no pause); `--peak-rss` prints `peak-rss <bytes>` (the
//! process's resident high-water mark) before a `--until-done` exit.
//! `--serve` (the comparison runner's PostgreSQL cases) prints `ready` once its manager is
//! built, runs jobs until its standard input closes, then shuts down and prints
//! `stats claimed <jobs> claims <claims> finished <attempts>` (its durable counters).
//! `--no-run` registers nothing (its jobs stay pending). `--fsize-limit` caps the files it
//! may write (`RLIMIT_FSIZE`), to make the disk "full": an enqueue that fails prints
//! `refused <kind>` and the process exits 3. `--as-nobody` drops root's privileges before
//! opening the store (a file root may write is read-only to `nobody`); a store that does
//! not open prints `open-error <kind>` and the process exits 4.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use errand_store_postgres::PgStore;
use errand_store_sqlite::SqliteStore;
use errand_threads::prelude::*;
use serde::{Deserialize, Serialize};

/// Whether jobs return at once (`--instant`).
static INSTANT: AtomicBool = AtomicBool::new(false);

/// Each job's pause in microseconds (`--work-us`; `u64::MAX`: 0.5–2 ms by job).
static WORK_US: AtomicU64 = AtomicU64::new(u64::MAX);

/// The log every run and acknowledgement is appended to.
static LOG: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

fn log(line: &str) {
    let mut file = LOG.get().expect("the log is open").lock().unwrap();
    // One write per line, on an O_APPEND file: lines never interleave, and a SIGKILL
    // loses nothing written (the page cache survives the process).
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The crash test's job.
#[derive(Serialize, Deserialize)]
struct Work {
    n: u64,
}

/// What a `Work` job returns: its number doubled, and the attempt that computed it.
#[derive(Serialize, Deserialize)]
struct Done {
    doubled: u64,
    attempt: u32,
}

impl DurableJob for Work {
    const KIND: &'static str = "crash-test-work";
    type Output = Done;

    async fn run(&self, ctx: Context) -> Result<Done, BoxError> {
        if INSTANT.load(Ordering::Relaxed) {
            return Ok(Done {
                doubled: self.n * 2,
                attempt: ctx.attempt(),
            });
        }
        let id = ctx.job_id().expect("a durable job has an id");
        log(&format!("run {} {}", id.get(), ctx.attempt()));
        // A little work, so kills land mid-run too.
        let pause = match WORK_US.load(Ordering::Relaxed) {
            u64::MAX => 500 + self.n % 1500,
            micros => micros,
        };
        if pause > 0 {
            ctx.sleep(Duration::from_micros(pause)).await;
        }
        Ok(Done {
            doubled: self.n * 2,
            attempt: ctx.attempt(),
        })
    }
}

struct Args {
    db: PathBuf,
    pg: Option<String>,
    schema: String,
    node: Option<String>,
    lease_ms: u64,
    poll_ms: u64,
    schedule: Option<(String, u64, u64)>,
    log: PathBuf,
    enqueue: u64,
    batch: u64,
    until_done: bool,
    exit: bool,
    peak_rss: bool,
    run: bool,
    fsize_limit: Option<u64>,
    as_nobody: bool,
    serve: bool,
}

fn args() -> Args {
    let mut args = Args {
        db: PathBuf::new(),
        pg: None,
        schema: errand_store_postgres::DEFAULT_SCHEMA.to_string(),
        node: None,
        lease_ms: 30_000,
        poll_ms: 1_000,
        schedule: None,
        log: PathBuf::new(),
        enqueue: 0,
        batch: 10,
        until_done: false,
        exit: false,
        peak_rss: false,
        run: true,
        fsize_limit: None,
        as_nobody: false,
        serve: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().expect("a value after the flag");
        match flag.as_str() {
            "--db" => args.db = value().into(),
            "--pg" => args.pg = Some(value()),
            "--schema" => args.schema = value(),
            "--node" => args.node = Some(value()),
            "--lease-ms" => args.lease_ms = value().parse().unwrap(),
            "--poll-ms" => args.poll_ms = value().parse().unwrap(),
            "--work-us" => WORK_US.store(value().parse().unwrap(), Ordering::Relaxed),
            "--schedule" => {
                let spec = value();
                let parts: Vec<&str> = spec.split(',').collect();
                assert_eq!(parts.len(), 3, "--schedule NAME,EVERY_MS,TIMES");
                args.schedule = Some((
                    parts[0].to_string(),
                    parts[1].parse().unwrap(),
                    parts[2].parse().unwrap(),
                ));
            }
            "--log" => args.log = value().into(),
            "--enqueue" => args.enqueue = value().parse().unwrap(),
            "--batch" => args.batch = value().parse().unwrap(),
            "--until-done" => args.until_done = true,
            "--exit" => args.exit = true,
            "--instant" => INSTANT.store(true, Ordering::Relaxed),
            "--peak-rss" => args.peak_rss = true,
            "--no-run" => args.run = false,
            "--fsize-limit" => args.fsize_limit = Some(value().parse().unwrap()),
            "--as-nobody" => args.as_nobody = true,
            "--serve" => args.serve = true,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// The process's resident high-water mark (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Caps the size of files this process writes (and ignores the signal the cap raises).
fn limit_file_size(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn main() -> Result<(), BoxError> {
    let args = args();
    if let Ok(file) = OpenOptions::new().create(true).append(true).open(&args.log) {
        LOG.set(Mutex::new(file)).ok();
    }
    if args.as_nobody {
        // SAFETY: plain system calls; 65534 is `nobody` on Debian.
        unsafe {
            if libc::geteuid() == 0 {
                assert_eq!(libc::setgid(65534), 0);
                assert_eq!(libc::setuid(65534), 0);
            }
        }
    }
    let open_error = |error: StoreError| -> ! {
        println!("open-error {:?}: {error}", error.kind());
        std::process::exit(4);
    };
    let mut builder = builder().workers(2);
    builder = match &args.pg {
        Some(url) => {
            let mut options = PgStore::options(url)
                .schema(&args.schema)
                .lease(Duration::from_millis(args.lease_ms))
                .poll(Duration::from_millis(args.poll_ms));
            if let Some(node) = &args.node {
                options = options.node(node);
            }
            builder.store(options.open().unwrap_or_else(|error| open_error(error)))
        }
        None => {
            builder.store(SqliteStore::open(&args.db).unwrap_or_else(|error| open_error(error)))
        }
    };
    if let Some(bytes) = args.fsize_limit {
        limit_file_size(bytes);
    }
    if args.run {
        builder = builder.register::<Work>();
    }
    let manager = builder.build()?;
    if args.serve {
        println!("ready");
        std::io::stdout().flush()?;
        // Until the parent closes our standard input.
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())?;
        let report = manager.shutdown(Duration::from_secs(10)).wait();
        let stats = manager.durable_stats()?;
        println!(
            "stats claimed {} claims {} finished {} unfinished {}",
            stats.claimed,
            stats.claims,
            stats.finished,
            report.unfinished.len()
        );
        return Ok(());
    }
    if let Some((name, every_ms, times)) = &args.schedule {
        manager
            .schedule(
                name,
                Work { n: 0 },
                Every::new(Duration::from_millis(*every_ms))
                    .times(u32::try_from(*times).unwrap_or(u32::MAX))
                    .missed_ticks(MissedTicks::Burst)
                    // Not `Skip`: a tick due while the previous tick's job still runs (on
                    // a node killed holding it, say) would make no job, by design.
                    .overlap(Overlap::Queue),
                JobOptions::new(),
            )
            .wait()?;
    }
    let mut next = 0;
    while next < args.enqueue {
        let count = args.batch.min(args.enqueue - next);
        let jobs = (next..next + count)
            .map(|n| (Work { n }, JobOptions::new()))
            .collect();
        for answer in manager.enqueue_batch(jobs).wait() {
            match answer {
                Ok(id) => log(&format!("ack {}", id.get())),
                Err(EnqueueError::Store { error, .. }) => {
                    println!("refused {:?}", error.kind());
                    std::process::exit(3);
                }
                Err(other) => return Err(other.to_string().into()),
            }
        }
        next += count;
    }
    if args.exit {
        drop(manager.shutdown(Duration::from_secs(10)).wait());
        return Ok(());
    }
    if args.until_done {
        loop {
            let open = [JobState::Pending, JobState::Running]
                .into_iter()
                .map(|state| manager.jobs(&JobFilter::all().state(state).limit(1)))
                .collect::<Result<Vec<_>, _>>()?;
            if open.iter().all(Vec::is_empty) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let report = manager.shutdown(Duration::from_secs(10)).wait();
        println!("unfinished {}", report.unfinished.len());
        if args.peak_rss {
            println!("peak-rss {}", peak_rss());
        }
        return Ok(());
    }
    // Run until killed.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
