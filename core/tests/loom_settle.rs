//! Loom model of settling ([`Settle`], the engine's count of unfinished tasks that
//! `wait_for_completion` waits on): a waiter never sleeps through the count reaching zero.
//!
//! A lost wakeup shows as a loom deadlock (the waiter waits forever).
#![cfg(errand_loom)]

mod support;

use errand_core::Settle;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use support::Bell;

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
        while let Some(listener) = settle.listen_unless(|| settle.is_settled()) {
            settle.notifier().wait(listener);
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
