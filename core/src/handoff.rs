//! A value handed from one writer to the single winner of a state transition.
//!
//! [`Handoff`] pairs a [`StateCell`] with a cell holding a value (the engine's boxed job).
//! The value sits in the cell while the task *waits* (`Scheduled`, `Queued`, `Retrying`)
//! and is out of it otherwise: a worker holds it while the task runs, and it is gone once
//! the task ended. The state machine decides who may touch the cell, so no lock is taken.
//!
//! # Rules (cited by the code)
//!
//! 1. **Publishing.** A publisher with sole use of the handoff (its state is terminal, so
//!    no event applies, and no other thread uses it: the engine's slot table gives the
//!    slot to one submitter) writes the value, then stores the waiting state with
//!    `Release`.
//! 2. **Taking.** Only the winner of a transition *out of* the waiting states (`Start`,
//!    or `Cancel` from a waiting state) takes the value: its `AcqRel` compare-and-swap
//!    read the state the publisher (or returner, rule 3) released, so it sees the value,
//!    and no other transition can leave the waiting states after it. `Due` moves between
//!    waiting states and leaves the value where it is.
//! 3. **Returning.** The holder of the value (the winner of `Start`, while the task is
//!    `Running`) puts it back *before* applying the event that makes the task wait again
//!    (`Retry`, `Reschedule`), so the next taker finds it (rule 2). If that event loses
//!    (a `Cancel` or `Timeout` ended the task while it ran), the state is terminal, no
//!    one else touches the cell, and the holder takes the value back.
//!
//! So at every moment at most one thread may access the cell, and a thread whose event
//! lost never receives the value (unless it is a returner taking its own value back).
//!
//! A handoff may also carry a few bytes of its owner's, [`Handoff::side`], which sit in
//! the padding between the state byte and the value (the engine keeps a task's priority,
//! its cancellation bit and its cold data's lock there); the handoff never touches them.

use core::fmt;

use crate::sync::UnsafeCell;
use crate::{Event, InvalidTransition, State, StateCell, Transition};

/// A task's state plus the value it hands from its submitter to the single winner of a
/// transition out of waiting (see the [module docs](self)).
pub(crate) struct Handoff<T, S = ()> {
    state: StateCell,
    /// The owner's bytes (see the [module docs](self)).
    pub(crate) side: S,
    /// `Some` exactly while the state is a waiting one (after a publish).
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is moved between threads (so `T: Send`) but never shared: rules 1-3
// give the cell one user at a time, ordered by the state cell's release/acquire. The
// side bytes are shared as they are (`S: Sync`).
unsafe impl<T: Send, S: Sync> Sync for Handoff<T, S> {}

/// An applied transition and the value it took out of the cell (rule 2).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "the value, if any, belongs to the winner"]
pub(crate) struct Taken<T> {
    /// The transition applied.
    pub(crate) transition: Transition,
    /// The value, when the transition left the waiting states.
    pub(crate) value: Option<T>,
}

/// Whether the value sits in the cell in `state`.
const fn is_waiting(state: State) -> bool {
    matches!(state, State::Scheduled | State::Queued | State::Retrying)
}

impl<T> Handoff<T> {
    /// An empty handoff in a terminal state (`Cancelled`): no event applies until
    /// [`publish`](Self::publish).
    #[must_use]
    pub(crate) fn new() -> Self {
        Self::with_side(())
    }
}

impl<T, S> Handoff<T, S> {
    /// An empty handoff, as [`new`](Handoff::new), carrying its owner's `side` bytes.
    #[must_use]
    pub(crate) fn with_side(side: S) -> Self {
        Self {
            state: StateCell::new(State::Cancelled),
            side,
            value: UnsafeCell::new(None),
        }
    }

    /// The current state (`Acquire`).
    #[inline]
    #[must_use]
    pub(crate) fn load(&self) -> State {
        self.state.load()
    }

    /// Stores `value` and makes the task wait in `state` (a `Release` store, rule 1).
    ///
    /// # Safety
    ///
    /// Rule 1: no other thread uses this handoff until this call returns, and every
    /// earlier use of it happened before this call (the engine's slot table releases a
    /// slot with `Release` and acquires it with `Acquire`). `state` must be a waiting
    /// state (debug-asserted).
    pub(crate) unsafe fn publish(&self, value: T, state: State) {
        debug_assert!(is_waiting(state), "publishing into {state}");
        // SAFETY: rule 1, the caller has sole use of the cell.
        self.value.with_mut(|cell| unsafe { *cell = Some(value) });
        self.state.reset(state);
    }

    /// Applies `event`; if it moved the task out of the waiting states, takes the value
    /// (rule 2).
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] when another event won (the state is unchanged, the value
    /// untouched).
    #[inline]
    pub(crate) fn apply(&self, event: Event) -> Result<Taken<T>, InvalidTransition> {
        let transition = self.state.apply(event)?;
        let value = if is_waiting(transition.from) && !is_waiting(transition.to) {
            // SAFETY: rule 2, we won the only transition out of waiting for this value.
            self.value.with_mut(|cell| unsafe { (*cell).take() })
        } else {
            None
        };
        Ok(Taken { transition, value })
    }

    /// Puts `value` back and applies `event` (`Retry` or `Reschedule`), making the task
    /// wait again (rule 3).
    ///
    /// # Errors
    ///
    /// When the event loses (another ended the task while it ran): the rejection and the
    /// value, taken back.
    ///
    /// # Safety
    ///
    /// Rule 3: the caller holds the value it took by winning `Start`, and applied no
    /// event since (so the state is `Running`, or terminal if another event won).
    pub(crate) unsafe fn apply_returning(
        &self,
        event: Event,
        value: T,
    ) -> Result<Transition, (InvalidTransition, T)> {
        // SAFETY: rule 3, the running holder is the cell's only user.
        self.value.with_mut(|cell| unsafe { *cell = Some(value) });
        match self.state.apply(event) {
            Ok(transition) => {
                debug_assert!(is_waiting(transition.to), "returning with {event:?}");
                Ok(transition)
            }
            Err(lost) => {
                // SAFETY: rule 3, the state is terminal: no one else touches the cell.
                let value = self.value.with_mut(|cell| unsafe { (*cell).take() });
                Err((lost, value.expect("the value we just put back")))
            }
        }
    }

    #[cfg(test)]
    /// The value left in the cell, if any (the handoff is consumed).
    pub(crate) fn into_value(self) -> Option<T> {
        self.value.with_mut(|cell| {
            // SAFETY: `self` is owned: no other thread can use the cell.
            unsafe { (*cell).take() }
        })
    }
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S> fmt::Debug for Handoff<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("state", &self.load())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::string::String;

    /// A job's life: published, taken by `Start`, returned by `Retry`, taken by `Cancel`.
    #[test]
    fn take_return_take() {
        let handoff = Handoff::new();
        // SAFETY: rule 1, not shared.
        unsafe { handoff.publish(Box::new(String::from("job")), State::Queued) };
        let due = handoff.apply(Event::Start).unwrap();
        let job = due.value.expect("`Start` from `Queued` takes the job");
        // SAFETY: rule 3, we hold the job taken by winning `Start`.
        let retry = unsafe { handoff.apply_returning(Event::Retry, job) }.unwrap();
        assert_eq!(retry.to, State::Retrying);
        assert_eq!(
            handoff.apply(Event::Due).unwrap().value,
            None,
            "waiting to waiting"
        );
        let cancel = handoff.apply(Event::Cancel).unwrap();
        assert_eq!(cancel.value.as_deref().map(String::as_str), Some("job"));
        assert!(handoff.into_value().is_none());
    }

    /// A returner whose event loses gets its value back; a value left in the cell is
    /// dropped with the handoff.
    #[test]
    fn lost_return_gives_back_and_drop_frees() {
        let handoff = Handoff::new();
        // SAFETY: rule 1, not shared.
        unsafe { handoff.publish(Box::new(1_u32), State::Queued) };
        let job = handoff.apply(Event::Start).unwrap().value.unwrap();
        assert!(handoff.apply(Event::Timeout).is_ok());
        // SAFETY: rule 3, as above (the state is terminal now).
        let (lost, job) = unsafe { handoff.apply_returning(Event::Reschedule, job) }.unwrap_err();
        assert_eq!(lost.state(), State::TimedOut);
        assert_eq!(*job, 1);
        let kept = Handoff::new();
        // SAFETY: rule 1, not shared.
        unsafe { kept.publish(Box::new(2_u32), State::Scheduled) };
        drop(kept);
    }
}

/// The module's protocol in one walk-through (the type is crate-internal, so this is a
/// unit test rather than a doctest).
#[cfg(all(test, not(errand_loom)))]
mod walkthrough {
    #[test]
    fn walkthrough() {
        use crate::handoff::Handoff;
        use crate::{Event, State};

        let handoff = Handoff::new();
        // SAFETY: rule 1, nobody else has the handoff yet.
        unsafe { handoff.publish("job", State::Queued) };
        // A worker wins `Start` and gets the value; a racing cancel gets nothing.
        let started = handoff.apply(Event::Start).unwrap();
        assert_eq!(started.value, Some("job"));
        let cancelled = handoff.apply(Event::Cancel).unwrap();
        assert_eq!(cancelled.value, None);
        assert_eq!(handoff.load(), State::Cancelled);
    }
}
