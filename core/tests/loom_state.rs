//! Loom models of racing events on one `StateCell`: exactly one ending wins, and the loser
//! learns which state beat it (and sees what the winner wrote before its transition).
#![cfg(errand_loom)]

use errand_core::{Event, State, StateCell, Transition};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Two events race on a cell in `start`; each thread first writes a marker (Relaxed), so a
/// loser can check it sees the winner's writes. Returns both results and the final state.
fn race(start: State, a: Event, b: Event) {
    loom::model(move || {
        let cell = Arc::new(StateCell::new(start));
        let marks = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let spawn = |me: usize, event: Event| {
            let cell = Arc::clone(&cell);
            let marks = Arc::clone(&marks);
            thread::spawn(move || {
                marks[me].store(1, Ordering::Relaxed);
                let result = cell.apply(event);
                if result.is_err() {
                    // The winner's transition happened before ours was rejected, so its
                    // marker is visible (race rule 3 on `StateCell`).
                    assert_eq!(marks[1 - me].load(Ordering::Relaxed), 1);
                }
                result
            })
        };
        let ha = spawn(0, a);
        let hb = spawn(1, b);
        let (ra, rb) = (ha.join().unwrap(), hb.join().unwrap());
        let end = cell.load();
        match (ra, rb) {
            (Ok(Transition { from, to }), Err(lost)) | (Err(lost), Ok(Transition { from, to })) => {
                assert_eq!(from, start);
                assert_eq!(lost.state(), to, "the loser names the state that beat it");
                assert_eq!(end, to);
            }
            (Ok(first), Ok(second)) => {
                // Both applied: one after the other, chained.
                assert!(
                    (first.from == start && second.from == first.to && end == second.to)
                        || (second.from == start && first.from == second.to && end == first.to),
                    "{first:?} {second:?}"
                );
            }
            (Err(a), Err(b)) => panic!("nobody won: {a} / {b}"),
        }
    });
}

#[test]
fn succeed_vs_timeout_one_wins() {
    race(State::Running, Event::Succeed, Event::Timeout);
}

#[test]
fn succeed_vs_cancel_one_wins() {
    race(State::Running, Event::Succeed, Event::Cancel);
}

#[test]
fn cancel_vs_start_on_queued() {
    loom::model(|| {
        let cell = Arc::new(StateCell::new(State::Queued));
        let worker = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || cell.apply(Event::Start))
        };
        let cancel = cell.apply(Event::Cancel);
        let start = worker.join().unwrap();
        // Cancel on a non-terminal task always succeeds.
        let cancel = cancel.expect("cancel always applies to a live task");
        assert_eq!(cell.load(), State::Cancelled);
        match start {
            // Cancel first: the task never runs.
            Err(lost) => {
                assert_eq!(lost.state(), State::Cancelled);
                assert_eq!(cancel.from, State::Queued);
            }
            // Start first: the cancel then stops a running task.
            Ok(started) => {
                assert_eq!(
                    started,
                    Transition {
                        from: State::Queued,
                        to: State::Running
                    }
                );
                assert_eq!(
                    cancel,
                    Transition {
                        from: State::Running,
                        to: State::Cancelled
                    }
                );
            }
        }
    });
}

#[test]
fn three_endings_exactly_one_wins() {
    loom::model(|| {
        let cell = Arc::new(StateCell::new(State::Running));
        let handles: Vec<_> = [Event::Succeed, Event::Timeout, Event::Cancel]
            .into_iter()
            .map(|event| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || cell.apply(event))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let end = cell.load();
        assert_eq!(winners[0].to, end);
        for lost in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(lost.state(), end);
        }
    });
}
