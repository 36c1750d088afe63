//! Loom models of the job hand-off cell ([`Handoff`], the engine's record): the value
//! reaches exactly one claimant, never one whose event lost, and the cell is never
//! accessed by two threads at once (loom checks every access to its `UnsafeCell`).

use crate::handoff::Handoff;
use crate::{Event, State};
use loom::sync::Arc;
use loom::thread;

/// Counts the values a run ended with: taken by some thread, or left in the cell.
fn left_in(handoff: Arc<Handoff<u32>>) -> Option<u32> {
    Arc::try_unwrap(handoff)
        .ok()
        .expect("every thread joined")
        .into_value()
}

/// A publisher publishes `Queued` while a worker tries `Start` and a canceller `Cancel`:
/// the value ends with exactly one of them or stays in the cell (nobody won from a
/// waiting state), never with a loser.
#[test]
fn publish_start_cancel_one_claimant() {
    loom::model(|| {
        let handoff = Arc::new(Handoff::new());
        let claimant = |event: Event| {
            let handoff = Arc::clone(&handoff);
            thread::spawn(move || match handoff.apply(event) {
                Ok(taken) => taken.value,
                Err(_) => None,
            })
        };
        let start = claimant(Event::Start);
        let cancel = claimant(Event::Cancel);
        // SAFETY: rule 1, this thread is the only publisher and the claimants' events do
        // not apply to the initial terminal state.
        unsafe { handoff.publish(42, State::Queued) };
        let got = [start.join().unwrap(), cancel.join().unwrap()];
        let state = handoff.load();
        let left = left_in(handoff);
        let owners = got.iter().flatten().count() + usize::from(left.is_some());
        assert_eq!(owners, 1, "one owner of the value: {got:?}, left {left:?}");
        for value in got.iter().flatten().chain(&left) {
            assert_eq!(*value, 42, "the published value, fully written");
        }
        if left.is_some() {
            assert_eq!(state, State::Queued, "only a waiting task keeps its value");
        }
    });
}

/// A running worker returns its value with `Retry` while a canceller cancels: either the
/// retry wins and the canceller takes the value from `Retrying`, or the cancel wins and
/// the worker gets its value back. Then a second attempt races a `Start` against it too.
#[test]
fn retry_vs_cancel_one_owner() {
    loom::model(|| {
        let handoff = Arc::new(Handoff::new());
        // SAFETY: rule 1, not shared yet.
        unsafe { handoff.publish(7, State::Queued) };
        let value = handoff.apply(Event::Start).unwrap().value.unwrap();
        let canceller = {
            let handoff = Arc::clone(&handoff);
            thread::spawn(move || handoff.apply(Event::Cancel).ok().and_then(|t| t.value))
        };
        let starter = {
            let handoff = Arc::clone(&handoff);
            thread::spawn(move || handoff.apply(Event::Start).ok().and_then(|t| t.value))
        };
        // SAFETY: rule 3, we hold the value taken by winning `Start`, no event since.
        let back = match unsafe { handoff.apply_returning(Event::Retry, value) } {
            Ok(_) => None,
            Err((_, value)) => Some(value),
        };
        let got = [back, canceller.join().unwrap(), starter.join().unwrap()];
        let left = left_in(handoff);
        let owners = got.iter().flatten().count() + usize::from(left.is_some());
        assert_eq!(owners, 1, "one owner: {got:?}, left {left:?}");
        for value in got.iter().flatten().chain(&left) {
            assert_eq!(*value, 7);
        }
    });
}
