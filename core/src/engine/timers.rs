//! The timer wheel of the engine's delays, retries and timeouts, and what each entry
//! means. A leaf: the timer phase (`timed.rs`) drives it.

use std::boxed::Box;
use std::collections::TryReserveError;

use crate::{TimerEntry, TimerWheel};

/// What a timer entry of a slot means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A waiting (`Scheduled`/`Retrying`) task becomes `Due`.
    Wake,
    /// A running attempt's timeout.
    Timeout,
}

/// The timer wheel (ticks are milliseconds since the manager's epoch) and what each
/// slot's entry means. One entry per slot suffices: a slot never waits for a delay and
/// runs at once.
pub(crate) struct Timers {
    pub(crate) wheel: TimerWheel<Box<[TimerEntry]>>,
    pub(crate) kinds: Box<[Kind]>,
}

impl Timers {
    /// Timers for `capacity` slots, allocated fallibly.
    pub(crate) fn try_new(capacity: usize) -> Result<Self, TryReserveError> {
        Ok(Self {
            wheel: TimerWheel::try_with_capacity(capacity)?,
            kinds: crate::storage::try_boxed_from_fn(capacity, |_| Kind::Wake)?,
        })
    }
}
