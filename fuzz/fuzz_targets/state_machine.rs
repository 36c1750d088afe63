//! `state_machine`: random event sequences on a `StateCell` against a reference table.
#![no_main]

use arbitrary::Arbitrary;
use errand_core::{Event, State, StateCell, Transition, transition};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    start: u8,
    events: Vec<u8>,
    /// Where (in `events`) to `reset` the cell to `start` again, if anywhere.
    reset_at: Option<u8>,
}

/// The reference table, written independently of the crate's `transition`.
fn reference(state: State, event: Event) -> Option<State> {
    use Event as E;
    use State as S;
    Some(match (state, event) {
        (S::Scheduled, E::Due) | (S::Retrying, E::Due) => S::Queued,
        (S::Queued, E::Start) => S::Running,
        (S::Running, E::Succeed) => S::Succeeded,
        (S::Running, E::Fail) => S::Failed,
        (S::Running, E::Retry) => S::Retrying,
        (S::Running, E::Reschedule) => S::Scheduled,
        (S::Running, E::Timeout) => S::TimedOut,
        (S::Scheduled, E::Cancel)
        | (S::Queued, E::Cancel)
        | (S::Running, E::Cancel)
        | (S::Retrying, E::Cancel) => S::Cancelled,
        _ => return None,
    })
}

fuzz_target!(|input: Input| {
    let start = State::ALL[usize::from(input.start) % State::ALL.len()];
    let cell = StateCell::new(start);
    let mut model = start;
    for (position, byte) in input.events.iter().enumerate() {
        if input.reset_at.map(usize::from) == Some(position) {
            cell.reset(start);
            model = start;
        }
        let event = Event::ALL[usize::from(*byte) % Event::ALL.len()];
        let pure = transition(model, event);
        let applied = cell.apply(event);
        match reference(model, event) {
            Some(to) => {
                assert_eq!(pure, Ok(to));
                assert_eq!(applied, Ok(Transition { from: model, to }));
                assert!(!model.is_terminal(), "a terminal state must absorb");
                model = to;
            }
            None => {
                let err = applied.expect_err("reference says invalid");
                assert_eq!(pure, Err(err));
                assert_eq!((err.state(), err.event()), (model, event));
                assert!(err.to_string().starts_with("invalid transition: cannot "));
            }
        }
        assert_eq!(cell.load(), model);
    }
});
