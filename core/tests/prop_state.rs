//! The task state machine against a hand-written table and a sequential reference.

use errand_core::{Event, InvalidTransition, State, StateCell, Transition, transition};
use proptest::prelude::*;

/// The expected table, written out cell by cell (rows: states in `State::ALL` order; columns:
/// events in `Event::ALL` order: due, start, succeed, fail, retry, reschedule, cancel,
/// timeout). `None` is an invalid transition.
fn expected(state: State, event: Event) -> Option<State> {
    use State::*;
    const X: Option<State> = None;
    let table: [[Option<State>; 8]; 8] = [
        // Scheduled
        [Some(Queued), X, X, X, X, X, Some(Cancelled), X],
        // Queued
        [X, Some(Running), X, X, X, X, Some(Cancelled), X],
        // Running
        [
            X,
            X,
            Some(Succeeded),
            Some(Failed),
            Some(Retrying),
            Some(Scheduled),
            Some(Cancelled),
            Some(TimedOut),
        ],
        // Retrying
        [Some(Queued), X, X, X, X, X, Some(Cancelled), X],
        // Succeeded, Failed, Cancelled, TimedOut
        [X; 8],
        [X; 8],
        [X; 8],
        [X; 8],
    ];
    table[state as usize][event as usize]
}

#[test]
fn every_state_event_pair_matches_the_table() {
    assert_eq!(State::ALL.len(), 8);
    assert_eq!(Event::ALL.len(), 8);
    for state in State::ALL {
        for event in Event::ALL {
            let got = transition(state, event);
            match expected(state, event) {
                Some(to) => assert_eq!(got, Ok(to), "{state} + {event}"),
                None => {
                    let err = got.expect_err("expected an invalid transition");
                    assert_eq!((err.state(), err.event()), (state, event));
                }
            }
        }
    }
}

#[test]
fn terminal_iff_no_event_leaves() {
    for state in State::ALL {
        let leaves = Event::ALL
            .into_iter()
            .any(|event| transition(state, event).is_ok());
        assert_eq!(state.is_terminal(), !leaves, "{state}");
    }
}

fn any_state() -> impl Strategy<Value = State> {
    prop::sample::select(State::ALL.to_vec())
}

fn any_event() -> impl Strategy<Value = Event> {
    prop::sample::select(Event::ALL.to_vec())
}

proptest! {
    #[test]
    fn cell_matches_sequential_reference(
        start in any_state(),
        events in prop::collection::vec(any_event(), 0..64),
    ) {
        let cell = StateCell::new(start);
        let mut reference = start;
        for event in events {
            let was_terminal = reference.is_terminal();
            let got = cell.apply(event);
            match expected(reference, event) {
                Some(to) => {
                    prop_assert_eq!(got, Ok(Transition { from: reference, to }));
                    reference = to;
                }
                None => {
                    let err: InvalidTransition = got.unwrap_err();
                    prop_assert_eq!(err.state(), reference);
                    prop_assert_eq!(err.event(), event);
                }
            }
            // Terminal absorbs: once terminal, nothing changes.
            if was_terminal {
                prop_assert_eq!(cell.load(), reference);
                prop_assert!(reference.is_terminal());
            }
            prop_assert_eq!(cell.load(), reference);
        }
    }

    #[test]
    fn reset_then_replay_is_deterministic(
        start in any_state(),
        events in prop::collection::vec(any_event(), 0..32),
    ) {
        let cell = StateCell::new(State::Cancelled);
        cell.reset(start);
        let first: Vec<_> = events.iter().map(|&e| cell.apply(e)).collect();
        cell.reset(start);
        let second: Vec<_> = events.iter().map(|&e| cell.apply(e)).collect();
        prop_assert_eq!(first, second);
    }
}
