//! Loom models of the waker slot and the flag built on it ([`Flag`], a task's
//! cancellation signal): a waiter that registers and then checks is never left asleep
//! past a raise, whatever the interleaving.

use std::vec::Vec;

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use loom::sync::Arc;
use loom::thread;

use crate::flag::Flag;

/// Waits for the flag the way the engine's workers do: register, then check.
struct Raised<'a>(&'a Flag);

impl Future for Raised<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_raised() {
            return Poll::Ready(());
        }
        self.0.register(cx.waker());
        if self.0.is_raised() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// One raiser, one waiter: the waiter always wakes (a lost wake-up is a loom deadlock).
#[test]
fn a_raise_always_reaches_the_waiter() {
    loom::model(|| {
        let flag = Arc::new(Flag::new());
        let raiser = {
            let flag = Arc::clone(&flag);
            thread::spawn(move || flag.raise())
        };
        loom::future::block_on(Raised(&flag));
        raiser.join().unwrap();
    });
}

/// Two raisers race a waiter that registers twice (a re-poll with the same waker): it
/// still wakes, and the slot's cell is never touched by two threads at once.
#[test]
fn racing_raisers_and_a_re_registering_waiter() {
    loom::model(|| {
        let flag = Arc::new(Flag::new());
        let raisers: Vec<_> = (0..2)
            .map(|_| {
                let flag = Arc::clone(&flag);
                thread::spawn(move || flag.raise())
            })
            .collect();
        loom::future::block_on(async {
            Raised(&flag).await;
            Raised(&flag).await;
        });
        for raiser in raisers {
            raiser.join().unwrap();
        }
    });
}
