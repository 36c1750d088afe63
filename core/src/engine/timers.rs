//! The timer wheel of the engine's delays, retries and timeouts, and what each entry
//! means. A leaf: the timer phase (`timed.rs`) drives it.

use std::boxed::Box;
use std::collections::TryReserveError;
use std::vec::Vec;

use crate::{TimerEntry, TimerWheel};

/// What a timer entry of a slot means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A waiting (`Scheduled`/`Retrying`) task becomes `Due`.
    Wake,
    /// A running attempt's timeout.
    Timeout,
}

/// One shard's timer wheel (ticks are milliseconds since the manager's epoch) and what
/// each slot's entry means. One entry per slot suffices: a slot never waits for a delay
/// and runs at once; that entry is in one shard at a time (`Inner::timers`).
///
/// The entries grow as slots arm timers (doubling, up to the table's capacity), so a
/// manager whose tasks never wait on a timer pays nothing for them: 17 bytes per slot
/// otherwise (BENCHMARKS.md, memory per queued task).
pub(crate) struct Timers {
    pub(crate) wheel: TimerWheel<Box<[TimerEntry]>>,
    /// What each slot's entry means (as long as the wheel).
    pub(crate) kinds: Vec<Kind>,
    /// The slot table's capacity: the wheel never needs more.
    limit: usize,
}

impl Timers {
    /// Timers for up to `capacity` slots, none allocated yet.
    pub(crate) fn try_new(capacity: usize) -> Result<Self, TryReserveError> {
        Ok(Self {
            wheel: TimerWheel::try_with_capacity(0)?,
            kinds: Vec::new(),
            limit: capacity,
        })
    }

    /// Makes room for slot `index`'s entry (under the timer lock, before arming it).
    pub(crate) fn make_room(&mut self, index: usize) {
        let have = self.wheel.capacity();
        if index < have {
            return;
        }
        let want = (index + 1)
            .max(have.saturating_mul(2))
            .max(64)
            .min(self.limit);
        let want = want.max(index + 1);
        self.wheel.grow(want);
        self.kinds.resize(want, Kind::Wake);
    }
}
