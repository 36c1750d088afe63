//! Snapshots the manager answers questions with. Every one is `serde::Serialize` with the
//! `serde` feature.

use std::borrow::Cow;
use std::boxed::Box;
use std::string::String;
use std::time::{Duration, Instant, SystemTime};
use std::vec::Vec;

use super::clock::{Clock, Stamp};
use crate::{BudgetSnapshot, HistogramSnapshot, Level, Priority, State, TaskId};

/// What the manager knows about one task: its status and progress.
///
/// Returned by [`Manager::task`](super::Manager::task) (for live tasks and those still in
/// the finished-task history) and [`Manager::active_tasks`](super::Manager::active_tasks).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Its label, if it was given one.
    pub label: Option<Cow<'static, str>>,
    /// Where it is in its life.
    pub state: State,
    /// Its priority.
    pub priority: Priority,
    /// Attempts started so far (0 before the first start), every run and retry counted
    /// (saturating at `u32::MAX`).
    pub attempt: u32,
    /// Successful runs of a recurring task (0 for other tasks).
    pub runs: u64,
    /// The last progress reported, `0.0..=100.0` (100 once it succeeded).
    pub progress: f64,
    /// The message of the last progress report.
    pub message: Option<String>,
    /// When it was submitted.
    pub submitted_at: SystemTime,
    /// When its current (or last) attempt started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// A linear estimate from its progress so far: `started_at + elapsed * 100 / progress`.
    pub estimated_completion: Option<SystemTime>,
    /// The last attempt's error, as text; after a success, what panicked in user code
    /// around it (the closure's drop, the result's clone), if anything did.
    pub error: Option<String>,
    /// Whether its blocking closure was detached: the task timed out or was cancelled
    /// while the closure ran, its handle resolved at once, and the closure still runs (its
    /// output will be dropped). Only a live task can be detached.
    pub detached: bool,
    /// A recurring task's interval (`None` for other tasks).
    pub every: Option<Duration>,
    /// When a recurring task waiting for its next run is due (`None` otherwise).
    pub next_run: Option<SystemTime>,
}

/// A task as the engine records it (the history keeps these): what a [`TaskInfo`] shows,
/// with engine instants, converted to wall-clock times only when someone asks.
pub(crate) struct Finished {
    pub(crate) id: TaskId,
    pub(crate) state: State,
    pub(crate) label: Option<Cow<'static, str>>,
    pub(crate) priority: Priority,
    pub(crate) attempt: u32,
    pub(crate) runs: u64,
    pub(crate) progress: f64,
    pub(crate) message: Option<Box<str>>,
    pub(crate) error: Option<Box<str>>,
    pub(crate) submitted_at: Stamp,
    pub(crate) started_at: Option<Stamp>,
    pub(crate) finished_at: Option<Stamp>,
}

impl Finished {
    /// The snapshot, with engine instants turned into wall-clock times by `clock`.
    pub(crate) fn info(&self, clock: &Clock) -> TaskInfo {
        let raw = self;
        let progress = if raw.state == State::Succeeded {
            100.0
        } else {
            raw.progress
        };
        let estimated_completion = match (raw.started_at, raw.state) {
            (Some(started), State::Running) if progress > 0.0 => {
                let started = clock.instant(started);
                let elapsed = Instant::now().saturating_duration_since(started);
                let total = elapsed.mul_f64(100.0 / progress);
                Some(clock.wall(started + total))
            }
            _ => raw.finished_at.map(|at| clock.wall_of(at)),
        };
        TaskInfo {
            id: raw.id,
            label: raw.label.clone(),
            state: raw.state,
            priority: raw.priority,
            attempt: raw.attempt,
            runs: raw.runs,
            progress,
            message: raw.message.as_deref().map(String::from),
            submitted_at: clock.wall_of(raw.submitted_at),
            started_at: raw.started_at.map(|at| clock.wall_of(at)),
            finished_at: raw.finished_at.map(|at| clock.wall_of(at)),
            estimated_completion,
            error: raw.error.as_deref().map(String::from),
            detached: false,
            every: None,
            next_run: None,
        }
    }
}

/// What [`Manager::shutdown`](super::Manager::shutdown) did.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether every task ended within the timeout (nothing had to be stopped).
    pub completed: bool,
    /// Every task that had not ended when the timeout passed, as it was then; each was
    /// stopped (the same list [`stop_all`](super::Manager::stop_all) returns).
    pub unfinished: Vec<TaskInfo>,
    /// Blocking closures still running, detached from tasks that timed out or were
    /// cancelled (see [`TaskInfo::detached`]); their tasks have ended, their threads are
    /// busy until the closures return.
    pub detached: Vec<TaskInfo>,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

/// Counts of what the manager did since it was built.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Counts {
    /// Tasks accepted.
    pub submitted: u64,
    /// Attempts run to their end (every retry and recurring run counts).
    pub executed: u64,
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that failed for good (their error or a panic).
    pub failed: u64,
    /// Failed attempts sent back for a retry.
    pub retried: u64,
    /// Tasks cancelled by [`cancel`](super::Manager::cancel) or a handle.
    pub cancelled: u64,
    /// Tasks that timed out.
    pub timed_out: u64,
    /// Tasks stopped by [`stop_all`](super::Manager::stop_all) or a shutdown.
    pub stopped: u64,
    /// Panics caught in user code: attempts that panicked, and panics around a task (its
    /// closure's drop, its result's clone, its error's formatting, its error handler).
    pub panicked: u64,
    /// Blocking attempts detached: a timeout or cancel ended their task while the closure
    /// ran, so the handle resolved at once and the closure was left to finish on its own.
    pub detached: u64,
    /// The most tasks running at once.
    pub peak_concurrency: u64,
}

impl Counts {
    /// Tasks that have ended: succeeded + failed + cancelled + timed out + stopped.
    #[must_use]
    pub fn ended(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled + self.timed_out + self.stopped
    }
}

/// Queued tasks per priority level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct QueueSizes {
    /// Priorities `0..=2` (`LOW`).
    pub low: usize,
    /// Priorities `3..=7` (`NORMAL`).
    pub normal: usize,
    /// Priorities `8..=14` (`HIGH`).
    pub high: usize,
    /// Priorities `15..=255` (`CRITICAL`).
    pub critical: usize,
}

impl QueueSizes {
    /// Queued tasks over all levels.
    #[must_use]
    pub fn total(&self) -> usize {
        self.low + self.normal + self.high + self.critical
    }
}

/// Dispatch latency (ready to started) of one priority level. Percentiles are within
/// 3.125 % of the exact sample percentiles (see [`Histogram`](crate::Histogram)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LevelLatency {
    /// The level.
    pub level: Level,
    /// Tasks started from it.
    pub count: u64,
    /// Median latency.
    pub p50: Option<Duration>,
    /// 95th percentile.
    pub p95: Option<Duration>,
    /// 99th percentile.
    pub p99: Option<Duration>,
}

/// The manager's analytics: counts, execution times, queue sizes, concurrency, uptime,
/// dispatch latency per priority, memory. Always recorded; timings are `None` only before
/// the first attempt ends. [`enable_profiling`](super::Builder::enable_profiling) adds
/// process CPU and memory samples ([`Analytics::profile`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Analytics {
    /// What happened so far.
    pub counts: Counts,
    /// Mean attempt duration.
    pub avg_execution_time: Option<Duration>,
    /// Median attempt duration.
    pub p50_execution_time: Option<Duration>,
    /// 95th percentile attempt duration.
    pub p95_execution_time: Option<Duration>,
    /// 99th percentile attempt duration.
    pub p99_execution_time: Option<Duration>,
    /// Tasks queued now, per level.
    pub queue_size: QueueSizes,
    /// Tasks waiting for a delay or a retry now.
    pub waiting: usize,
    /// Attempts running now (detached closures included).
    pub running: usize,
    /// Detached blocking closures still running (see [`TaskInfo::detached`]).
    pub detached: usize,
    /// Time since the manager was built.
    pub uptime: Duration,
    /// Ready-to-start latency per level, lowest level first.
    pub dispatch_latency: [LevelLatency; Level::COUNT],
    /// The memory budget.
    pub memory: BudgetSnapshot,
    /// Results held in the result store.
    pub stored_results: usize,
    /// Process CPU and memory sampled once a second, with profiling on; `None` without it.
    pub profile: Option<Profile>,
}

/// Process CPU and memory, sampled once a second by the timer driver while profiling is
/// on (see [`Builder::enable_profiling`](super::Builder::enable_profiling)).
#[derive(Clone, Debug, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Profile {
    /// The most recent samples, oldest first (at most [`Profile::CAPACITY`]).
    pub samples: Vec<Sample>,
    /// The highest resident memory sampled since profiling began, in bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl Profile {
    /// How many samples are kept (a minute's worth).
    pub const CAPACITY: usize = 60;
}

/// One sample of the process.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Sample {
    /// When it was taken.
    pub at: SystemTime,
    /// CPU used since the previous sample, in percent of the whole machine (0–100).
    pub cpu_percent: Option<f64>,
    /// Resident memory, in bytes.
    pub rss_bytes: Option<u64>,
}

/// The latency histograms behind [`Analytics`]' percentiles, per priority level (lowest
/// first): for a metrics exporter that wants the whole distribution. Each bucket is within
/// 3.125 % of its samples (see [`Histogram`](crate::Histogram)).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Latency {
    /// Ready-to-started time of the attempts dispatched from each level, in nanoseconds.
    pub dispatch: [HistogramSnapshot; Level::COUNT],
    /// Attempt durations of the tasks of each level, in nanoseconds.
    pub execution: [HistogramSnapshot; Level::COUNT],
}

/// Performance of the process and the manager.
///
/// `cpu_percent` and `rss_bytes` come from `/proc/self` on Linux and are `None` on other
/// platforms. `cpu_percent` is the process's CPU time over the window's wall time across
/// all the machine's cores (0–100); `cpu_percent_of_one_core` is the same time over one
/// core's (up to 100 × `cores`).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Performance {
    /// Process CPU use over the window, in percent of the whole machine (0–100).
    pub cpu_percent: Option<f64>,
    /// Process CPU use over the window, in percent of one core (0 to 100 × `cores`).
    pub cpu_percent_of_one_core: Option<f64>,
    /// The machine's cores (as `std::thread::available_parallelism` counts them).
    pub cores: usize,
    /// Process resident memory, in bytes.
    pub rss_bytes: Option<u64>,
    /// Bytes of the memory budget in use.
    pub memory_pool_used: usize,
    /// The memory budget, in bytes.
    pub memory_pool_limit: usize,
    /// Workers running an attempt now.
    pub active_workers: usize,
    /// Workers in all.
    pub workers: usize,
    /// Attempts ended per second over the window.
    pub throughput: f64,
    /// Failed tasks in percent of tasks that succeeded or failed, since the start.
    pub error_rate: f64,
    /// The window `cpu_percent` and `throughput` cover.
    pub window: Duration,
}
