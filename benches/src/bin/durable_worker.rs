//! A process that runs durable jobs on a SQLite file, to be killed: the crash test
//! (`benches/tests/crash.rs`) and the recovery case of the comparison runner start it,
//! `SIGKILL` it at random moments and start it again.
//!
//! ```text
//! durable-worker --db FILE --log FILE [--enqueue N] [--batch B] [--until-done]
//!                [--exit] [--no-run] [--instant] [--peak-rss] [--fsize-limit BYTES]
//!                [--as-nobody]
//! ```
//!
//! It registers the job type `Work` (each run appends `run <job> <attempt>` to the log,
//! then returns its number doubled with the attempt), enqueues `N` jobs in batches of `B`
//! (appending `ack <job>` for each acknowledged one, after its commit), and runs jobs until
//! killed, or with `--until-done` until no job is pending or running (then it exits 0), or
//! with `--exit` as soon as its enqueues are acknowledged. `--instant` makes each job
//! return at once (no logging, no pause); `--peak-rss` prints `peak-rss <bytes>` (the
//! process's resident high-water mark) before a `--until-done` exit.
//! `--no-run` registers nothing (its jobs stay pending). `--fsize-limit` caps the files it
//! may write (`RLIMIT_FSIZE`), to make the disk "full": an enqueue that fails prints
//! `refused <kind>` and the process exits 3. `--as-nobody` drops root's privileges before
//! opening the store (a file root may write is read-only to `nobody`); a store that does
//! not open prints `open-error <kind>` and the process exits 4.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use errand_store_sqlite::SqliteStore;
use errand_threads::prelude::*;
use serde::{Deserialize, Serialize};

/// Whether jobs return at once (`--instant`).
static INSTANT: AtomicBool = AtomicBool::new(false);

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
        ctx.sleep(Duration::from_micros(500 + self.n % 1500)).await;
        Ok(Done {
            doubled: self.n * 2,
            attempt: ctx.attempt(),
        })
    }
}

struct Args {
    db: PathBuf,
    log: PathBuf,
    enqueue: u64,
    batch: u64,
    until_done: bool,
    exit: bool,
    peak_rss: bool,
    run: bool,
    fsize_limit: Option<u64>,
    as_nobody: bool,
}

fn args() -> Args {
    let mut args = Args {
        db: PathBuf::new(),
        log: PathBuf::new(),
        enqueue: 0,
        batch: 10,
        until_done: false,
        exit: false,
        peak_rss: false,
        run: true,
        fsize_limit: None,
        as_nobody: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().expect("a value after the flag");
        match flag.as_str() {
            "--db" => args.db = value().into(),
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
    let store = match SqliteStore::open(&args.db) {
        Ok(store) => store,
        Err(error) => {
            println!("open-error {:?}: {error}", error.kind());
            std::process::exit(4);
        }
    };
    if let Some(bytes) = args.fsize_limit {
        limit_file_size(bytes);
    }
    let mut builder = builder().workers(2).store(store);
    if args.run {
        builder = builder.register::<Work>();
    }
    let manager = builder.build()?;
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
        drop(manager.shutdown(Duration::from_secs(10)).wait());
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
