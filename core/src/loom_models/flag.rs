//! Loom models of the waker slot and the flags built on it ([`Flag`], an idle worker's
//! registration; [`Bit`], a task's cancellation signal, whose waiter's waker is in its
//! worker's desk): a waiter that registers and then checks is never left asleep past a
//! raise, whatever the interleaving.

use std::vec::Vec;

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use loom::sync::Arc;
use loom::thread;

use loom::sync::atomic::{AtomicUsize, Ordering};

use crate::flag::{Bit, Flag};
use crate::waker::WakerSlot;

/// Waits the way the engine's workers do: register (`register`), then check (`raised`).
struct Raised<R, C>(R, C);

impl<R: Fn(&core::task::Waker) + Unpin, C: Fn() -> bool + Unpin> Future for Raised<R, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if (self.1)() {
            return Poll::Ready(());
        }
        (self.0)(cx.waker());
        if (self.1)() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Waits for `flag`.
fn flag_raised(flag: &Flag) -> impl Future<Output = ()> + '_ {
    Raised(
        |waker: &core::task::Waker| flag.register(waker),
        || flag.is_raised(),
    )
}

/// Waits for `bit`, with the waker in `slot` (a worker's desk).
fn bit_raised<'a>(bit: &'a Bit, slot: &'a WakerSlot) -> impl Future<Output = ()> + 'a {
    Raised(
        |waker: &core::task::Waker| slot.register(waker),
        || bit.is_raised(),
    )
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
        loom::future::block_on(flag_raised(&flag));
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
            flag_raised(&flag).await;
            flag_raised(&flag).await;
        });
        for raiser in raisers {
            raiser.join().unwrap();
        }
    });
}

/// A bit raised with its waiter's slot always wakes the waiter, and what the raiser wrote
/// before is seen by the woken waiter.
#[test]
fn a_raised_bit_always_reaches_the_waiter_in_its_own_slot() {
    loom::model(|| {
        let bit = Arc::new(Bit::new());
        let slot = Arc::new(WakerSlot::new());
        let note = Arc::new(AtomicUsize::new(0));
        let raiser = {
            let (bit, slot, note) = (Arc::clone(&bit), Arc::clone(&slot), Arc::clone(&note));
            thread::spawn(move || {
                note.store(7, Ordering::Relaxed);
                bit.raise(Some(&slot));
            })
        };
        loom::future::block_on(bit_raised(&bit, &slot));
        assert_eq!(note.load(Ordering::Relaxed), 7);
        raiser.join().unwrap();
    });
}

/// One waker slot serves two tasks in turn (a worker's desk): the first task's bit is
/// raised while the worker waits on it; the worker then takes its waker back, the bit of
/// the second task is lowered and raised from another thread, and the worker, waiting
/// again in the same slot, still wakes.
#[test]
fn one_slot_serves_the_bits_of_successive_tasks() {
    loom::model(|| {
        let slot = Arc::new(WakerSlot::new());
        let first = Arc::new(Bit::new());
        let second = Arc::new(Bit::new());
        let raiser = {
            let (slot, first) = (Arc::clone(&slot), Arc::clone(&first));
            thread::spawn(move || first.raise(Some(&slot)))
        };
        loom::future::block_on(bit_raised(&first, &slot));
        drop(slot.take());
        raiser.join().unwrap();
        second.lower();
        let raiser = {
            let (slot, second) = (Arc::clone(&slot), Arc::clone(&second));
            thread::spawn(move || second.raise(Some(&slot)))
        };
        loom::future::block_on(bit_raised(&second, &slot));
        raiser.join().unwrap();
    });
}
