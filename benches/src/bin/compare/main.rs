//! The side-by-side comparison runner: errand against what a user would otherwise use, on
//! the same machine in the same run.
//!
//! ```text
//! cargo run --release -p errand-benches --bin compare -- [--quick] [--out FILE] [--case SUBSTR] [--skip SUBSTR]...
//! ```
//!
//! Each case runs subject and baseline in alternating rounds (A B A B …) and prints one
//! JSON object per line on stdout (the format is `errand_benches::report::Line`); progress
//! goes to stderr. `--out FILE` also writes the lines to `FILE`; `--case SUBSTR` runs only
//! the cases whose name contains `SUBSTR`; `--skip SUBSTR` (repeatable) leaves out those
//! whose name contains it (`--skip durable_ --skip pg_`: the in-memory cases). `--quick` (about a minute) uses fewer tasks and
//! rounds than the default (a few minutes); the sizes are in [`Plan`].
//!
//! Every errand manager has 2 workers (strict priorities) and so does every baseline. The
//! cases, and what the values are:
//!
//! - `noop_throughput_{tokio,smol,threads}` (tasks/s, median over rounds): N no-op tasks
//!   submitted and completed. tokio: errand-tokio `Task::future` + awaiting every
//!   `TaskHandle` vs `tokio::spawn(async {})` + awaiting every `JoinHandle`, both inside
//!   `block_on` of one 2-thread runtime. smol: errand-smol (smol's global executor,
//!   `SMOL_THREADS=2`) vs an async-executor `Executor` run by 2 threads, every handle
//!   awaited with `smol::block_on`. threads: errand-threads blocking no-op closures, handles
//!   dropped, then `wait_for_completion` vs [`ChannelPool`](errand_benches::ChannelPool)
//!   (2 threads, boxed closures over crossbeam-channel) and its `wait_idle`.
//! - `noop_throughput_threads_bare` (tasks/s): the same errand-threads side vs
//!   [`BarePool`](errand_benches::BarePool), the floor any thread pool pays: 2 threads
//!   taking boxed closures from a bounded crossbeam channel (1 024 jobs), with no tracking
//!   at all; its run ends when the threads, their channel closed, are joined.
//! - `dispatch_latency_{p50,p99}_{tokio,smol,threads}` (ns): idle system, from the instant
//!   before submit / spawn to the instant the task's body reads the clock; one task at a
//!   time, 500 µs of sleep between samples so the workers park. Percentiles of each round's
//!   samples, median over rounds.
//! - `roundtrip_latency_{p50,p99}_{tokio,smol,threads}` (ns): the same samples, to the
//!   instant the submitter has the task's result (its handle awaited, or waited on; the
//!   baseline's join handle, task or reply channel): what the caller of one task at a
//!   time waits, including whatever the workers do once the task ends.
//! - `priority_latency_under_backlog[_smol|_threads]` (ns): both workers are held while
//!   100k NORMAL no-op tasks are queued, then released; once 1 000 of them have run (the
//!   workers are draining), a probe task is submitted and its submit → start latency
//!   measured. Subject: CRITICAL probes (20 per round, one after another); baseline: one
//!   NORMAL probe per round (FIFO behind the backlog). p99 by nearest rank over every probe
//!   of every round.
//! - `allocations_per_task[_smol|_threads]` (allocs): heap allocations per task over the
//!   throughput case's submit → complete path, counted on every thread by the binary's
//!   counting global allocator; median over rounds.
//! - `memory_per_queued_task` (bytes): errand-tokio with both workers held and N no-op
//!   tasks queued: live heap bytes from before the manager is built (so its slot table,
//!   queue rings and timer entries, reserved for N tasks, are counted) to after the N-th
//!   submit, over N. `memory_per_queued_task_marginal`: the same from just before the first
//!   submit (the per-submit heap only). Baseline for both: N tokio tasks parked on a
//!   semaphore, live bytes after spawning over N. Handles are kept in vectors allocated
//!   before counting.
//! - `delayed_insert` (ns per task): submitting N tasks with a one-hour `delay` on
//!   errand-tokio vs `tokio::spawn` of a task that creates a one-hour `tokio::time::sleep`
//!   and polls it once (registering its timer), timed until every task has registered.
//! - `recurring_overhead` (CPU ns per run): 1 000 recurring no-op tasks every 10 ms
//!   (errand-tokio `Every`) vs 1 000 tokio tasks looping on `tokio::time::interval(10 ms)`
//!   (missed ticks skipped, as errand's default); process CPU time (`getrusage`) over a
//!   window, divided by the runs completed in it. Each run does the same work on both
//!   sides: one `fetch_add` on a shared counter (errand's tasks reach it through a
//!   `&'static`, not an `Arc` cloned into every run's future).
//! - `scaling_queue_depth_<depth>[_smol|_threads]` (tasks/s): both workers held while
//!   `depth` no-op tasks are queued, then released; the drain rate from the first task's
//!   start to the last's. Baseline: the same adapter at depth 1 000, measured in the same
//!   rounds, so the ratio shows how flat throughput stays as the queue deepens.
//! - `dashboard_dispatch_with_1000_streams` (tasks/s): errand-tokio's no-op throughput
//!   with the dashboard serving 1 000 open event streams (clients reading every frame) vs
//!   the same with none open, in alternating rounds (`dashboard.rs`).

mod adapters;
mod backlog;
mod dashboard;
mod durable;
mod latency;
mod memory;
mod pg;
mod throughput;
mod timers;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use errand_benches::counting::Counting;
use errand_benches::report::Line;

use adapters::{SmolAdapter, ThreadsAdapter, TokioAdapter, WORKERS};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How big and how many: `--quick` or thorough.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Rounds of each side for the throughput and latency cases.
    pub(crate) rounds: usize,
    /// No-op tasks per throughput round.
    pub(crate) throughput_tasks: usize,
    /// Samples per dispatch-latency round.
    pub(crate) latency_samples: usize,
    /// Rounds of the backlog case (each queues `backlog` tasks twice).
    pub(crate) backlog_rounds: usize,
    pub(crate) backlog: usize,
    /// CRITICAL probes per backlog round.
    pub(crate) critical_probes: usize,
    /// Tasks per allocation-counting round.
    pub(crate) alloc_tasks: usize,
    /// Queued tasks in the memory case, and its rounds.
    pub(crate) memory_tasks: usize,
    pub(crate) memory_rounds: usize,
    /// Delayed tasks per `delayed_insert` round.
    pub(crate) delayed_tasks: usize,
    /// Recurring tasks, and the measured window per round, and rounds.
    pub(crate) recurring_tasks: usize,
    pub(crate) recurring_window_ms: u64,
    pub(crate) recurring_rounds: usize,
    /// Queue depths of the scaling case; the first is the baseline.
    pub(crate) depths: Vec<usize>,
    /// Tasks drained per depth per round (repeated fills at small depths).
    pub(crate) scaling_work: usize,
    pub(crate) scaling_rounds: usize,
    /// No-op tasks per round of the dashboard case, and its rounds.
    pub(crate) dashboard_tasks: usize,
    pub(crate) dashboard_rounds: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 5,
                throughput_tasks: 200_000,
                latency_samples: 400,
                backlog_rounds: 5,
                backlog: 100_000,
                critical_probes: 20,
                alloc_tasks: 20_000,
                memory_tasks: 200_000,
                memory_rounds: 2,
                delayed_tasks: 100_000,
                recurring_tasks: 1_000,
                recurring_window_ms: 1_000,
                recurring_rounds: 2,
                depths: vec![1_000, 10_000, 100_000],
                scaling_work: 100_000,
                scaling_rounds: 5,
                dashboard_tasks: 200_000,
                dashboard_rounds: 3,
            }
        } else {
            Self {
                rounds: 7,
                throughput_tasks: 1_000_000,
                latency_samples: 1_000,
                backlog_rounds: 7,
                backlog: 100_000,
                critical_probes: 20,
                alloc_tasks: 100_000,
                memory_tasks: 1_000_000,
                memory_rounds: 3,
                delayed_tasks: 1_000_000,
                recurring_tasks: 1_000,
                recurring_window_ms: 3_000,
                recurring_rounds: 3,
                depths: vec![1_000, 10_000, 100_000, 1_000_000],
                scaling_work: 200_000,
                scaling_rounds: 5,
                dashboard_tasks: 1_000_000,
                dashboard_rounds: 5,
            }
        }
    }
}

/// Which cases run, and where their lines go.
pub(crate) struct Runner {
    pub(crate) plan: Plan,
    filter: Option<String>,
    skip: Vec<String>,
    out: Option<File>,
    emitted: usize,
}

impl Runner {
    /// Whether case `case` was asked for.
    pub(crate) fn wants(&self, case: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| case.contains(f))
            && !self.skip.iter().any(|s| case.contains(s.as_str()))
    }

    /// Whether any of `cases` was asked for.
    pub(crate) fn wants_any<S: AsRef<str>>(&self, cases: &[S]) -> bool {
        cases.iter().any(|case| self.wants(case.as_ref()))
    }

    /// Prints `line` (if its case was asked for) on stdout and to the `--out` file.
    pub(crate) fn emit(&mut self, line: Line) {
        if !self.wants(&line.case) {
            return;
        }
        let text = line.to_json();
        println!("{text}");
        eprintln!(
            "  => {}: {} {:.4e} vs {} {:.4e} {}, ratio {}",
            line.case,
            line.subject,
            line.subject_value,
            line.baseline,
            line.baseline_value,
            line.unit.as_str(),
            line.ratio.map_or("-".into(), |r| format!("{r:.3}"))
        );
        if let Some(out) = &mut self.out {
            writeln!(out, "{text}").expect("writing the --out file");
            out.flush().expect("writing the --out file");
        }
        self.emitted += 1;
    }
}

/// Runs `subject` and `baseline` alternately, `rounds` times each, after one unrecorded
/// warm-up of each; their values per round.
pub(crate) fn interleave(
    what: &str,
    rounds: usize,
    mut subject: impl FnMut() -> f64,
    mut baseline: impl FnMut() -> f64,
) -> (Vec<f64>, Vec<f64>) {
    eprintln!("{what}: warm-up");
    subject();
    baseline();
    let mut subjects = Vec::with_capacity(rounds);
    let mut baselines = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let s = subject();
        let b = baseline();
        eprintln!("{what}: round {round}/{rounds}: subject {s:.4e}, baseline {b:.4e}");
        subjects.push(s);
        baselines.push(b);
    }
    (subjects, baselines)
}

fn usage() -> ! {
    eprintln!("usage: compare [--quick] [--out FILE] [--case SUBSTR] [--skip SUBSTR]...");
    std::process::exit(2);
}

fn main() {
    let mut quick = false;
    let mut out = None;
    let mut filter = None;
    let mut skip = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--case" => filter = Some(args.next().unwrap_or_else(|| usage())),
            "--skip" => skip.push(args.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other:?}");
                usage();
            }
        }
    }
    // errand-smol's workers run on smol's global executor, one thread unless told; read
    // on its first use, below.
    // SAFETY: no other thread exists yet (nothing has been started), so nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("SMOL_THREADS", WORKERS.to_string()) };

    let out = out.map(|path| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).expect("creating the --out directory");
        }
        File::create(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
    });
    let plan = Plan::new(quick);
    eprintln!(
        "compare: {} mode, {} worker(s) per side, {} CPU(s) available",
        if quick { "quick" } else { "thorough" },
        WORKERS,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut runner = Runner {
        plan,
        filter,
        skip,
        out,
        emitted: 0,
    };
    let started = Instant::now();
    let tokio = TokioAdapter::new();

    throughput::tokio(&mut runner, &tokio);
    throughput::smol(&mut runner, &SmolAdapter);
    throughput::threads(&mut runner, &ThreadsAdapter);
    latency::tokio(&mut runner, &tokio);
    latency::smol(&mut runner, &SmolAdapter);
    latency::threads(&mut runner, &ThreadsAdapter);
    backlog::priority(&mut runner, &tokio);
    backlog::priority(&mut runner, &SmolAdapter);
    backlog::priority(&mut runner, &ThreadsAdapter);
    memory::queued(&mut runner, &tokio);
    timers::delayed_insert(&mut runner, &tokio);
    timers::recurring_overhead(&mut runner, &tokio);
    backlog::scaling(&mut runner, &tokio);
    backlog::scaling(&mut runner, &SmolAdapter);
    backlog::scaling(&mut runner, &ThreadsAdapter);
    durable::run(&mut runner);
    pg::run(&mut runner);
    dashboard::streams(&mut runner, &tokio);

    eprintln!(
        "compare: {} line(s) in {:.1} s",
        runner.emitted,
        started.elapsed().as_secs_f64()
    );
    if runner.emitted == 0 {
        eprintln!("no case matched");
        std::process::exit(1);
    }
}

/// The suffix a case name carries for an adapter other than tokio (`_smol`, `_threads`).
pub(crate) fn suffix(short: &str) -> String {
    if short == "tokio" {
        String::new()
    } else {
        format!("_{short}")
    }
}
