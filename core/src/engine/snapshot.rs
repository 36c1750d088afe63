//! Snapshots the manager answers questions with. Every one is `serde::Serialize` with the
//! `serde` feature.

use std::borrow::Cow;
use std::string::String;
use std::time::{Duration, Instant, SystemTime};
use std::vec::Vec;

use super::record::Cold;
use crate::{Priority, State, TaskId};

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
    /// Attempts started so far (0 before the first start).
    pub attempt: u32,
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
    /// The last attempt's error, as text.
    pub error: Option<String>,
}

/// Converts the engine's `Instant`s to wall-clock times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) epoch: Instant,
    pub(crate) wall: SystemTime,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    pub(crate) fn wall(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.epoch)
    }

    /// The snapshot of a task from its cold data and state.
    pub(crate) fn info(&self, id: TaskId, state: State, cold: &Cold) -> TaskInfo {
        let progress = if state == State::Succeeded {
            100.0
        } else {
            cold.progress
        };
        let estimated_completion = match (cold.started_at, state) {
            (Some(started), State::Running) if progress > 0.0 => {
                let elapsed = Instant::now().saturating_duration_since(started);
                let total = elapsed.mul_f64(100.0 / progress);
                Some(self.wall(started + total))
            }
            _ => cold.finished_at.map(|at| self.wall(at)),
        };
        TaskInfo {
            id,
            label: cold.label.clone(),
            state,
            priority: cold.priority,
            attempt: cold.attempt,
            progress,
            message: cold.message.clone(),
            submitted_at: self.wall(cold.submitted_at),
            started_at: cold.started_at.map(|at| self.wall(at)),
            finished_at: cold.finished_at.map(|at| self.wall(at)),
            estimated_completion,
            error: cold.error.clone(),
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
    /// cancelled.
    pub unfinished: Vec<TaskInfo>,
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
    /// Tasks cancelled by [`cancel`](super::Manager::cancel) or a handle.
    pub cancelled: u64,
    /// Tasks that timed out.
    pub timed_out: u64,
    /// Tasks stopped by [`stop_all`](super::Manager::stop_all) or a shutdown.
    pub stopped: u64,
    /// Attempts that panicked.
    pub panicked: u64,
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
