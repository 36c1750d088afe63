//! A task's settings, as carried by a [`Task`](super::Task).

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ending::OnEnd;
use super::error::TaskError;
use crate::{RetryDecision, RetryPolicy, TaskId};

/// When a task may start.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Start {
    /// As soon as a worker is free.
    #[default]
    Now,
    /// No earlier than this long after submission.
    After(Duration),
    /// No earlier than this instant (a recurring task's schedule is anchored there, even
    /// in the past).
    At(Instant),
}

/// Decides about a failed attempt: `(task, error, attempt) -> decision`.
pub(crate) type ErrorHandler = Arc<dyn Fn(TaskId, &TaskError, u32) -> RetryDecision + Send + Sync>;

/// Clones a task's value (given as `&dyn Any`) into the result store; returns the shared
/// value and the bytes it is charged.
pub(crate) type StoreFn = fn(&dyn Any) -> Option<(Arc<dyn Any + Send + Sync>, usize)>;

/// Keeping a task's value after it ends.
#[derive(Clone, Copy)]
pub(crate) struct Store {
    /// How long; `None`: the manager's default result TTL.
    pub(crate) ttl: Option<Duration>,
    pub(crate) clone: StoreFn,
}

/// Everything about a task except its work.
#[derive(Clone, Default)]
pub(crate) struct Spec {
    pub(crate) label: Option<Cow<'static, str>>,
    pub(crate) start: Start,
    /// `None`: the manager's default timeout.
    pub(crate) timeout: Option<Duration>,
    /// `None`: the manager's default retry policy.
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) on_error: Option<ErrorHandler>,
    pub(crate) store: Option<Store>,
    pub(crate) every: Option<Every>,
    /// Bytes the task owns beyond its allocation, as the caller states them.
    pub(crate) weight: usize,
    /// Told when the task ends (the durable layer's hook).
    pub(crate) on_end: Option<Arc<dyn OnEnd>>,
    /// Attempts already made before this task (a durable job's earlier claims), so its
    /// first attempt here is numbered after them.
    pub(crate) attempts_before: u32,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("label", &self.label)
            .field("start", &self.start)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("on_error", &self.on_error.is_some())
            .field("store", &self.store.map(|store| store.ttl))
            .field("every", &self.every)
            .field("weight", &self.weight)
            .field("on_end", &self.on_end.is_some())
            .finish()
    }
}

/// What to do with a tick that comes while the previous run is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Overlap {
    /// Skip it: the next run is the first tick after the previous run ends (the default).
    #[default]
    Skip,
    /// Keep it: the next run starts as soon as the previous one ends (ticks that came
    /// during one run make one run, never a pile).
    Queue,
}

/// What to do with ticks that passed while a run waited to start (all workers busy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum MissedTicks {
    /// Drop them: the late run counts for them all (the default).
    #[default]
    Skip,
    /// Run each of them, back to back, until the schedule is caught up.
    Burst,
}

/// When a recurring task stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Limit {
    Forever,
    Runs(u32),
    Until(Instant),
}

/// A recurrence: run every `interval`, on a fixed schedule (run `k` is due at
/// `first + k × interval`, so delays never accumulate), for a number of runs, until an
/// instant, or until cancelled.
///
/// A recurring task is one task: one id, one slot, runs one at a time. Each successful run
/// sends it back to `Scheduled`; it ends `Succeeded` after its last run (its handle then
/// yields the last run's value), `Failed` if a run fails for good (after its retries), or
/// `Cancelled`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_core::engine::{Every, MissedTicks, Overlap};
///
/// // The guide's monitoring task: every 10 s for 10 minutes.
/// let every = Every::new(Duration::from_secs(10))
///     .times(60)
///     .overlap(Overlap::Skip)
///     .missed_ticks(MissedTicks::Skip);
/// assert_eq!(every.interval(), Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Every {
    pub(crate) interval: Duration,
    pub(crate) limit: Limit,
    pub(crate) overlap: Overlap,
    pub(crate) missed: MissedTicks,
}

impl Every {
    /// Every `interval`, until cancelled. A zero interval is an invalid spec.
    #[must_use]
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            limit: Limit::Forever,
            overlap: Overlap::Skip,
            missed: MissedTicks::Skip,
        }
    }

    /// Stops after `runs` successful runs (zero is an invalid spec).
    #[must_use]
    pub fn times(mut self, runs: u32) -> Self {
        self.limit = Limit::Runs(runs);
        self
    }

    /// Stops before the first run due after `deadline`.
    #[must_use]
    pub fn until(mut self, deadline: Instant) -> Self {
        self.limit = Limit::Until(deadline);
        self
    }

    /// Sets the overlap policy (default [`Overlap::Skip`]).
    #[must_use]
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// Sets the missed-tick policy (default [`MissedTicks::Skip`]).
    #[must_use]
    pub fn missed_ticks(mut self, missed: MissedTicks) -> Self {
        self.missed = missed;
        self
    }

    /// The interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Where run `tick` is due, given the first run's due time; `None` only past what an
    /// `Instant` can hold (centuries away), which the engine treats as "far in the
    /// future", never as the schedule's end.
    pub(crate) fn due(&self, first: Instant, tick: u64) -> Option<Instant> {
        let nanos = self.interval.as_nanos().checked_mul(u128::from(tick))?;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        // The remainder is below 10^9, so it fits.
        let offset = Duration::new(secs, (nanos % 1_000_000_000) as u32);
        first.checked_add(offset)
    }

    /// How many ticks after the first are due at `at` (0 before the second is due).
    pub(crate) fn ticks_by(&self, first: Instant, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(first).as_nanos();
        let interval = self.interval.as_nanos().max(1);
        u64::try_from(elapsed / interval).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::Every;
    use std::time::{Duration, Instant};

    /// An unlimited schedule has a next run however many ticks it has made: a tick past
    /// `u32::MAX` (49.7 days of 1 ms ticks) is due like any other.
    #[test]
    fn ticks_past_u32_are_due() {
        let every = Every::new(Duration::from_millis(1));
        let first = Instant::now();
        let tick = u64::from(u32::MAX) + 10;
        let due = every.due(first, tick).expect("an instant 49.7 days ahead");
        assert_eq!(due - first, Duration::from_millis(tick));
        assert_eq!(every.ticks_by(first, due), tick);
        // Ticks beyond what a `Duration` holds: `None`, which the engine treats as far away
        // rather than as the end.
        assert_eq!(
            Every::new(Duration::from_secs(3600)).due(first, u64::MAX),
            None
        );
    }
}
