//! The engine's counters: what workers bump on every task, sharded by thread, and the
//! running count with its peak. A leaf: the report phase (`report.rs`) reads them.

use std::boxed::Box;
use std::collections::TryReserveError;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::{Counter, Histogram, HistogramSnapshot, Level};

/// The engine's counters and histograms (see [`Counts`] and [`Analytics`]).
///
/// The manager's counters. What a worker bumps on every task is sharded by thread
/// ([`Shard`]): two workers bumping one counter would pass its cache line back and forth
/// on every task (about 30 ns each on the 2-core machine of BENCHMARKS.md, and a worker
/// bumps four such words per task). Readers sum the shards. Submissions are counted by
/// the settling count (`Inner::unfinished`) and the running count, whose peak must be
/// exact, is one word ([`Tally`]).
pub(crate) struct Stats {
    shards: Box<[CachePadded<Shard>]>,
}

/// The calling thread's number: threads are numbered on first use, round-robin, so the
/// threads of a manager (its workers first among them) fall into different shards of
/// whatever the engine shards by thread (its statistics, its timer wheels).
#[inline]
pub(crate) fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|index| *index)
}

/// The words that workers write for every task, on one line of their own: a worker
/// starting and ending a task writes them in a row, so the line moves to its core once
/// per step instead of once per word.
pub(crate) struct Tally {
    /// Attempts running now.
    pub(crate) running: AtomicUsize,
    /// The most attempts ever running at once.
    pub(crate) peak: AtomicUsize,
    /// Tasks recorded in the history so far (the next entry's sequence number).
    pub(crate) recorded: AtomicUsize,
}

/// One thread's share of the counters (see [`Stats`]).
#[derive(Default)]
pub(crate) struct Shard {
    pub(crate) executed: Counter,
    pub(crate) succeeded: Counter,
    pub(crate) failed: Counter,
    pub(crate) retried: Counter,
    pub(crate) cancelled: Counter,
    pub(crate) timed_out: Counter,
    pub(crate) stopped: Counter,
    pub(crate) panicked: Counter,
    /// Attempt durations per level of the task's priority (indexed by `Level::index`).
    pub(crate) execution: [Histogram; Level::COUNT],
    /// Blocking attempts detached.
    pub(crate) detached: Counter,
    /// Ready-to-start latency per level (indexed by `Level::index`).
    pub(crate) dispatch: [Histogram; Level::COUNT],
}

impl Stats {
    /// Shards: a power of two, at least the workers plus the timer driver and one
    /// submitting thread, so that threads rarely share one (at most 16: ~63 KB each).
    pub(crate) fn try_new(workers: usize) -> Result<Self, TryReserveError> {
        let shards = workers.saturating_add(2).next_power_of_two().min(16);
        Ok(Self {
            shards: crate::storage::try_boxed_from_fn(shards, |_| CachePadded::default())?,
        })
    }

    /// The calling thread's shard (see [`thread_index`]).
    #[inline]
    pub(crate) fn mine(&self) -> &Shard {
        &self.shards[thread_index() & (self.shards.len() - 1)]
    }

    /// A counter summed over the shards.
    pub(crate) fn sum(&self, counter: impl Fn(&Shard) -> &Counter) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(shard).get() as u64)
            .sum()
    }

    /// A histogram merged over the shards.
    pub(crate) fn merged(&self, histogram: impl Fn(&Shard) -> &Histogram) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot::new();
        for shard in self.shards.iter() {
            merged.merge(&histogram(shard).snapshot());
        }
        merged
    }
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            recorded: AtomicUsize::new(0),
        }
    }

    /// One more attempt running; raises the peak if it is one.
    #[inline]
    pub(crate) fn start(&self) {
        let running = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        // Most starts set no new peak: a load spares the shared line a write.
        if running > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(running, Ordering::Relaxed);
        }
    }
}
