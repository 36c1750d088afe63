//! Loom model of settling ([`Settle`], the engine's count of unfinished tasks that
//! `wait_for_completion` waits on): a waiter never sleeps through the count reaching zero.
//!
//! A lost wakeup shows as a loom deadlock (the waiter waits forever). Removing either
//! `SeqCst` fence of settle rule 3 makes these models deadlock.

use std::vec::Vec;

use super::support::Bell;
use crate::settle::Settle;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Two tasks settle on two threads while a waiter waits for both (the engine's
/// `wait_for_completion` loop); each settler first writes its result, which the waiter
/// must see once it is woken.
#[test]
fn waiter_sees_the_last_settle() {
    loom::model(|| {
        let settle = Arc::new(Settle::new(Bell::default()));
        let results = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        // Rule 1: counted before the work is visible to its settler.
        settle.add();
        settle.add();
        let settlers: Vec<_> = (0..2)
            .map(|me| {
                let settle = Arc::clone(&settle);
                let results = Arc::clone(&results);
                thread::spawn(move || {
                    results[me].store(1, Ordering::Relaxed);
                    settle.done();
                })
            })
            .collect();
        while let Some(waiter) = settle.listen_unless(|| settle.is_settled()) {
            waiter.wait_with(|ticket| settle.notifier().wait(ticket));
        }
        for result in results.iter() {
            assert_eq!(
                result.load(Ordering::Relaxed),
                1,
                "settled before its write"
            );
        }
        for settler in settlers {
            settler.join().unwrap();
        }
    });
}

/// A settler and a new add race a waiter: the waiter registered while one item was
/// outstanding must be woken when the last one settles, even though the settler that
/// finishes the first item sees a second one added (and so does not notify), and the
/// second item's settler is the one that must.
#[test]
fn the_settler_of_a_later_add_wakes_the_waiter() {
    loom::model(|| {
        let settle = Arc::new(Settle::new(Bell::default()));
        settle.add();
        let first = {
            let settle = Arc::clone(&settle);
            thread::spawn(move || settle.done())
        };
        let second = {
            let settle = Arc::clone(&settle);
            thread::spawn(move || {
                // Rule 1: added before its settler can see it (here: the same thread).
                settle.add();
                settle.done();
            })
        };
        while let Some(waiter) = settle.listen_unless(|| settle.is_settled()) {
            waiter.wait_with(|ticket| settle.notifier().wait(ticket));
        }
        first.join().unwrap();
        second.join().unwrap();
        assert!(settle.is_settled());
    });
}
