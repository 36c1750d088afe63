//! The task state machine: [`State`]s, [`Event`]s, one pure [`transition`] function, and
//! [`StateCell`], an atomic cell that applies it with compare-and-swap.
//!
//! The transition table is documented on [`State`], the guarantees for racing events on
//! [`StateCell`].

use core::fmt;

use crate::sync::{AtomicU8, Ordering};

/// Where a task is in its life.
///
/// # Transitions
///
/// Rows are states, columns events; a cell is the state the event leads to, `-` an
/// [`InvalidTransition`] (the state stays as it was).
///
/// | state \ event | `Due`  | `Start` | `Succeed`   | `Fail`   | `Retry`    | `Reschedule` | `Cancel`    | `Timeout`  |
/// |---------------|--------|---------|-------------|----------|------------|--------------|-------------|------------|
/// | `Scheduled`   | Queued | -       | -           | -        | -          | -            | Cancelled   | -          |
/// | `Queued`      | -      | Running | -           | -        | -          | -            | Cancelled   | -          |
/// | `Running`     | -      | -       | Succeeded   | Failed   | Retrying   | Scheduled    | Cancelled   | TimedOut   |
/// | `Retrying`    | Queued | -       | -           | -        | -          | -            | Cancelled   | -          |
/// | `Succeeded`   | -      | -       | -           | -        | -          | -            | -           | -          |
/// | `Failed`      | -      | -       | -           | -        | -          | -            | -           | -          |
/// | `Cancelled`   | -      | -       | -           | -        | -          | -            | -           | -          |
/// | `TimedOut`    | -      | -       | -           | -        | -          | -            | -           | -          |
///
/// In words: a task waits (`Scheduled` for a delay or its next recurring run, `Retrying` for
/// a retry delay) until its timer is `Due`, then waits `Queued` for a worker, which `Start`s
/// it. A `Running` attempt ends in exactly one of: `Succeed`, `Fail`, `Timeout` (terminal),
/// `Retry` (wait for the retry delay, then run again) or `Reschedule` (a recurring task's run
/// finished; wait for the next one). `Cancel` ends any task that has not ended yet. The four
/// terminal states ([`State::is_terminal`]) absorb: every event on them is invalid. A timed-out
/// attempt that should be retried is sent `Retry`, not `Timeout`: `Timeout` is final.
///
/// # Examples
///
/// ```
/// use errand_core::State;
///
/// assert!(!State::Running.is_terminal());
/// assert!(State::TimedOut.is_terminal());
/// assert_eq!(State::TimedOut.to_string(), "timed_out");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[repr(u8)]
pub enum State {
    /// Waiting for a delay to pass (a delayed task, or a recurring task's next run).
    Scheduled = 0,
    /// Ready, waiting for a worker.
    Queued = 1,
    /// A worker is running it.
    Running = 2,
    /// An attempt failed and will be retried after a delay.
    Retrying = 3,
    /// Finished successfully (terminal).
    Succeeded = 4,
    /// Finished with an error, no retry left (terminal).
    Failed = 5,
    /// Cancelled before it finished (terminal).
    Cancelled = 6,
    /// Its attempt ran past the timeout (terminal).
    TimedOut = 7,
}

impl State {
    /// Every state, in `repr(u8)` order.
    pub const ALL: [State; 8] = [
        State::Scheduled,
        State::Queued,
        State::Running,
        State::Retrying,
        State::Succeeded,
        State::Failed,
        State::Cancelled,
        State::TimedOut,
    ];

    /// Whether the task has ended: `Succeeded`, `Failed`, `Cancelled` or `TimedOut`. No event
    /// leaves a terminal state.
    #[inline]
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Failed | State::Cancelled | State::TimedOut
        )
    }

    /// The state's name in `snake_case` (as serde writes it).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Queued => "queued",
            State::Running => "running",
            State::Retrying => "retrying",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::TimedOut => "timed_out",
        }
    }

    /// The state as an adjective for messages ("a timed-out task").
    const fn adjective(self) -> &'static str {
        match self {
            State::TimedOut => "timed-out",
            other => other.as_str(),
        }
    }

    /// The state stored as `byte` by [`StateCell`]; only ever given bytes it stored.
    #[inline]
    fn from_u8(byte: u8) -> Self {
        match byte {
            0 => State::Scheduled,
            1 => State::Queued,
            2 => State::Running,
            3 => State::Retrying,
            4 => State::Succeeded,
            5 => State::Failed,
            6 => State::Cancelled,
            7 => State::TimedOut,
            _ => unreachable!("a StateCell only stores valid states, found {byte}"),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to a task. The table on [`State`] says which state each one leads
/// to.
///
/// # Examples
///
/// ```
/// use errand_core::{transition, Event, State};
///
/// assert_eq!(transition(State::Queued, Event::Start), Ok(State::Running));
/// assert_eq!(Event::Timeout.to_string(), "timeout");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[repr(u8)]
pub enum Event {
    /// The task's timer fired: `Scheduled`/`Retrying -> Queued`.
    Due = 0,
    /// A worker picked it up: `Queued -> Running`.
    Start = 1,
    /// The attempt returned success: `Running -> Succeeded`.
    Succeed = 2,
    /// The attempt failed for good: `Running -> Failed`.
    Fail = 3,
    /// The attempt failed and will be retried: `Running -> Retrying`.
    Retry = 4,
    /// A recurring task's run finished; wait for the next: `Running -> Scheduled`.
    Reschedule = 5,
    /// Cancellation: any non-terminal state `-> Cancelled`.
    Cancel = 6,
    /// The attempt ran past its timeout: `Running -> TimedOut`.
    Timeout = 7,
}

impl Event {
    /// Every event, in `repr(u8)` order.
    pub const ALL: [Event; 8] = [
        Event::Due,
        Event::Start,
        Event::Succeed,
        Event::Fail,
        Event::Retry,
        Event::Reschedule,
        Event::Cancel,
        Event::Timeout,
    ];

    /// The event's name in `snake_case` (as serde writes it).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Due => "due",
            Event::Start => "start",
            Event::Succeed => "succeed",
            Event::Fail => "fail",
            Event::Retry => "retry",
            Event::Reschedule => "reschedule",
            Event::Cancel => "cancel",
            Event::Timeout => "timeout",
        }
    }

    /// What the event does, as a verb for "cannot <verb> a <state> task".
    const fn verb(self) -> &'static str {
        match self {
            Event::Due => "queue",
            Event::Start => "start",
            Event::Succeed => "complete",
            Event::Fail => "fail",
            Event::Retry => "retry",
            Event::Reschedule => "reschedule",
            Event::Cancel => "cancel",
            Event::Timeout => "time out",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that does not apply to a state (a `-` in the table on [`State`]). It carries both; the
/// state is the one the task was actually in, so a racing loser learns what beat it.
///
/// # Examples
///
/// ```
/// use errand_core::{transition, Event, State};
///
/// let err = transition(State::Cancelled, Event::Start).unwrap_err();
/// assert_eq!(err.state(), State::Cancelled);
/// assert_eq!(err.event(), Event::Start);
/// assert_eq!(err.to_string(), "invalid transition: cannot start a cancelled task");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct InvalidTransition {
    state: State,
    event: Event,
}

impl InvalidTransition {
    /// The state the task was in (and still is).
    #[inline]
    #[must_use]
    pub const fn state(&self) -> State {
        self.state
    }

    /// The rejected event.
    #[inline]
    #[must_use]
    pub const fn event(&self) -> Event {
        self.event
    }
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid transition: cannot {} a {} task",
            self.event.verb(),
            self.state.adjective()
        )
    }
}

impl core::error::Error for InvalidTransition {}

/// The state `event` moves `state` to, per the table on [`State`]; pure and total.
///
/// # Errors
///
/// [`InvalidTransition`] carrying `state` and `event` when the table has no entry for them
/// (in particular for every event on a terminal state).
///
/// # Examples
///
/// ```
/// use errand_core::{transition, Event, State};
///
/// assert_eq!(transition(State::Running, Event::Timeout), Ok(State::TimedOut));
/// assert!(transition(State::TimedOut, Event::Succeed).is_err());
/// ```
pub const fn transition(state: State, event: Event) -> Result<State, InvalidTransition> {
    use Event as E;
    use State as S;
    match (state, event) {
        (S::Scheduled | S::Retrying, E::Due) => Ok(S::Queued),
        (S::Queued, E::Start) => Ok(S::Running),
        (S::Running, E::Succeed) => Ok(S::Succeeded),
        (S::Running, E::Fail) => Ok(S::Failed),
        (S::Running, E::Retry) => Ok(S::Retrying),
        (S::Running, E::Reschedule) => Ok(S::Scheduled),
        (S::Running, E::Timeout) => Ok(S::TimedOut),
        (S::Scheduled | S::Queued | S::Running | S::Retrying, E::Cancel) => Ok(S::Cancelled),
        _ => Err(InvalidTransition { state, event }),
    }
}

/// An applied transition: the state an event found and the state it left.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Transition {
    /// The state before the event.
    pub from: State,
    /// The state after it.
    pub to: State,
}

/// A task's [`State`] in one atomic byte, moved only by [`transition`] through one
/// compare-and-swap helper.
///
/// # Races
///
/// [`StateCell::apply`] reads the state, computes [`transition`], and installs the result with
/// one compare-and-swap, retrying if the state changed in between (and re-checking the event
/// against the new state). Two racing events are therefore applied in *some* order, each
/// against the state the other left, and the engine relies on these consequences:
///
/// 1. **One ending wins.** When two events would each end the task from the same state
///    (`Succeed`, `Fail`, `Timeout`, `Cancel` on `Running`), exactly one is applied; the other
///    returns [`InvalidTransition`] whose [`state`](InvalidTransition::state) is the terminal
///    state the winner installed. So a worker that finishes while the timeout fires learns
///    from its `Succeed` error that the task timed out, and vice versa.
/// 2. **Cancel vs start.** On a `Queued` task, either `Cancel` is applied first — the task is
///    `Cancelled`, the worker's `Start` fails naming `Cancelled`, and the task never runs — or
///    `Start` is applied first — the task is `Running`, and the `Cancel` then moves it
///    `Running -> Cancelled` (it succeeds). In the second case the code is already running:
///    cancellation is cooperative, the engine signals the task, and the worker's eventual
///    `Succeed`/`Fail` is rejected naming `Cancelled`, so the task ends cancelled and its
///    outcome is discarded. Either way exactly one of {never started, started and then
///    cancelled} happens, and the `Cancel` itself succeeds. (If the worker also finishes
///    before the `Cancel` lands, that is rule 1 between its `Succeed`/`Fail` and the
///    `Cancel`: the `Cancel` then fails naming the state the worker installed.)
/// 3. **Visibility.** A successful transition is a `Release` (and `Acquire`) operation, and
///    [`StateCell::load`] and failed attempts read with `Acquire`: whatever a thread wrote
///    before applying an event (a stored result, an error message) is visible to any thread
///    that then observes the new state, including a loser whose event was rejected.
///
/// # Examples
///
/// ```
/// use errand_core::{Event, State, StateCell, Transition};
///
/// let cell = StateCell::new(State::Queued);
/// assert_eq!(
///     cell.apply(Event::Start),
///     Ok(Transition { from: State::Queued, to: State::Running })
/// );
/// // The timeout fires first; the worker's success then learns it lost.
/// assert!(cell.apply(Event::Timeout).is_ok());
/// let lost = cell.apply(Event::Succeed).unwrap_err();
/// assert_eq!(lost.state(), State::TimedOut);
/// assert_eq!(cell.load(), State::TimedOut);
/// ```
pub struct StateCell {
    state: AtomicU8,
}

impl StateCell {
    /// A cell holding `state`.
    ///
    /// A `const fn`, so a cell can be a `static` or part of a constant initialiser.
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{Event, State, StateCell};
    ///
    /// static HOUSEKEEPING: StateCell = StateCell::new(State::Scheduled);
    ///
    /// assert!(HOUSEKEEPING.apply(Event::Due).is_ok());
    /// assert_eq!(HOUSEKEEPING.load(), State::Queued);
    /// ```
    #[cfg(not(errand_loom))]
    #[must_use]
    pub const fn new(state: State) -> Self {
        Self {
            state: AtomicU8::new(state as u8),
        }
    }

    /// A cell holding `state` (not `const` under loom, whose atomics are not).
    #[cfg(errand_loom)]
    #[must_use]
    pub fn new(state: State) -> Self {
        Self {
            state: AtomicU8::new(state as u8),
        }
    }

    /// The current state (an `Acquire` load: what was written before the transition into
    /// it is visible).
    #[inline]
    #[must_use]
    pub fn load(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Applies `event` to the current state atomically.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] naming the state actually found (the one a racing event
    /// installed, if any) when the event does not apply to it. The state is left unchanged.
    #[inline]
    #[must_use = "a rejected event means another event won; handle the error"]
    pub fn apply(&self, event: Event) -> Result<Transition, InvalidTransition> {
        self.fetch_update(|state| transition(state, event))
    }

    /// Sets the state unconditionally, outside the table: only for re-initialising a cell
    /// whose record is being reused (for example a slot just acquired from a
    /// [`SlotTable`](crate::SlotTable)), never to move a live task. A `Release` store.
    #[inline]
    pub fn reset(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// The one compare-and-swap loop every transition goes through: reads the state, asks
    /// `next` where to go, and installs that with a CAS, retrying on interference so `next`
    /// always judges the state it replaces. `AcqRel` on success, `Acquire` on every read
    /// (race rule 3 on `StateCell`).
    fn fetch_update(
        &self,
        mut next: impl FnMut(State) -> Result<State, InvalidTransition>,
    ) -> Result<Transition, InvalidTransition> {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let from = State::from_u8(current);
            let to = next(from)?;
            match self.state.compare_exchange_weak(
                current,
                to as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Transition { from, to }),
                Err(actual) => current = actual,
            }
        }
    }
}

impl fmt::Debug for StateCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StateCell").field(&self.load()).finish()
    }
}

#[cfg(all(test, not(errand_loom)))]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn terminal_states_absorb_every_event() {
        for state in State::ALL.into_iter().filter(|state| state.is_terminal()) {
            for event in Event::ALL {
                assert_eq!(
                    transition(state, event),
                    Err(InvalidTransition { state, event })
                );
            }
        }
    }

    #[test]
    fn cancel_ends_every_live_state() {
        for state in State::ALL.into_iter().filter(|state| !state.is_terminal()) {
            assert_eq!(transition(state, Event::Cancel), Ok(State::Cancelled));
        }
    }

    #[test]
    fn repr_round_trips() {
        for (byte, state) in State::ALL.into_iter().enumerate() {
            assert_eq!(state as u8 as usize, byte);
            assert_eq!(State::from_u8(state as u8), state);
        }
        for (byte, event) in Event::ALL.into_iter().enumerate() {
            assert_eq!(event as u8 as usize, byte);
        }
    }

    #[test]
    fn a_recurring_task_cycles() {
        let cell = StateCell::new(State::Scheduled);
        for _ in 0..3 {
            assert!(cell.apply(Event::Due).is_ok());
            assert!(cell.apply(Event::Start).is_ok());
            let step = cell.apply(Event::Reschedule).unwrap();
            assert_eq!(
                step,
                Transition {
                    from: State::Running,
                    to: State::Scheduled
                }
            );
        }
        assert!(cell.apply(Event::Cancel).is_ok());
        assert_eq!(cell.load(), State::Cancelled);
        cell.reset(State::Queued);
        assert_eq!(cell.load(), State::Queued);
    }

    #[test]
    fn a_const_cell_starts_like_a_new_one() {
        static CELLS: [StateCell; 2] = [
            StateCell::new(State::Scheduled),
            StateCell::new(State::TimedOut),
        ];
        for (cell, state) in CELLS.iter().zip([State::Scheduled, State::TimedOut]) {
            assert_eq!(cell.load(), StateCell::new(state).load());
        }
        assert!(CELLS[0].apply(Event::Due).is_ok());
        assert!(CELLS[1].apply(Event::Cancel).is_err());
        assert_eq!(
            CELLS.each_ref().map(StateCell::load),
            [State::Queued, State::TimedOut]
        );
    }

    #[test]
    fn messages_read_well() {
        let message = |state, event| transition(state, event).unwrap_err().to_string();
        assert_eq!(
            message(State::TimedOut, Event::Succeed),
            "invalid transition: cannot complete a timed-out task"
        );
        assert_eq!(
            message(State::Queued, Event::Due),
            "invalid transition: cannot queue a queued task"
        );
        assert_eq!(
            message(State::Scheduled, Event::Timeout),
            "invalid transition: cannot time out a scheduled task"
        );
        assert_eq!(
            std::format!("{:?}", StateCell::new(State::Running)),
            "StateCell(Running)"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_snake_case_names() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, std::format!("\"{state}\""));
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
        }
        for event in Event::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, std::format!("\"{event}\""));
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        }
    }
}
