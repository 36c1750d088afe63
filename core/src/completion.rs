//! A one-time result slot between a writer, a taker, and anyone who may abort it.
//!
//! The engine gives every task one [`Completion`]: the worker running the task (the
//! *writer*) stages values in its slot and publishes the task's end; the task's handle (the
//! *taker*) waits for the end and takes it; a cancel or timeout that ends a task whose
//! blocking closure cannot be stopped *aborts* the completion, so the handle resolves at
//! once while the closure runs on, detached.
//!
//! The state is one byte: a phase (`PENDING`, `READY`, `TAKEN`), an `ABORTED` bit and a
//! five-bit *code* (the engine stores the terminal state the end stands for).
//!
//! # Rules (cited by the code)
//!
//! 1. **The writer's slot.** The slot belongs to the writer (one holder at a time; the
//!    engine's unique job reference) while the phase is `PENDING`, and for good once the
//!    completion was aborted: a taker never reads an aborted slot.
//! 2. **Publishing.** The writer fills the slot, then moves `PENDING → READY` with its
//!    code (`Release`). If that fails, the completion was aborted: the slot is still the
//!    writer's (rule 1), and it empties it itself.
//! 3. **Aborting.** Anyone holding a reference moves `PENDING → READY | ABORTED` with a
//!    code; it never touches the slot. Of a publish and an abort, exactly one wins the
//!    compare-and-swap.
//! 4. **Taking.** The taker moves `READY → TAKEN` (`Acquire`, keeping the other bits):
//!    once, so the end is handed over once. A published slot is then the taker's; an
//!    aborted one stays the writer's, and the taker gets the abort's code.
//! 5. **Waking.** The winner of rule 2 or 3 wakes the taker's registered waker after its
//!    compare-and-swap; the taker registers, then checks the phase (waker slot rules).

use core::fmt;
use core::task::Waker;

use crate::sync::{AtomicU8, Ordering, UnsafeCell};
use crate::waker::WakerSlot;

/// The phase bits of the state.
const PHASE: u8 = 0b011;
/// Nothing published yet.
const PENDING: u8 = 0b000;
/// The end is published (or aborted) and not taken.
const READY: u8 = 0b001;
/// The taker took the end.
const TAKEN: u8 = 0b010;
/// Set when the end came from [`Completion::abort`].
const ABORTED: u8 = 0b100;
/// Where the code sits in the state byte.
const CODE_SHIFT: u32 = 3;

/// The largest code an end may carry.
pub(crate) const MAX_CODE: u8 = u8::MAX >> CODE_SHIFT;

/// What a taker got (rule 4).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken<R> {
    /// The writer published; this is what the taker read from the slot.
    Published(R),
    /// The completion was aborted with this code.
    Aborted(u8),
}

/// A one-time result slot (see the [module docs](self)).
pub(crate) struct Completion<T> {
    latch: Latch,
    slot: UnsafeCell<T>,
}

/// The part of a [`Completion`] that does not depend on its value: its state and the
/// taker's waker. An aborter needs only this (the engine keeps a pointer to it while a
/// blocking attempt runs, whatever the task's value type).
pub(crate) struct Latch {
    /// Its `tag` byte is the latch's state ([`PENDING`] at first, as a new slot's tag is).
    waker: WakerSlot,
}

impl Latch {
    fn new() -> Self {
        const { assert!(PENDING == 0, "a new waker slot's tag is the pending state") };
        Self {
            waker: WakerSlot::new(),
        }
    }

    /// The state byte (the slot's tag).
    #[inline]
    fn bits(&self) -> &AtomicU8 {
        &self.waker.tag
    }

    /// Ends the completion with `code` without a value (rule 3); wakes the taker. `false`
    /// if it had already ended.
    pub(crate) fn abort(&self, code: u8) -> bool {
        debug_assert!(code <= MAX_CODE);
        let aborted = READY | ABORTED | (code << CODE_SHIFT);
        let won = self
            .bits()
            .compare_exchange(PENDING, aborted, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if won {
            // Rule 5.
            self.waker.wake();
        }
        won
    }

    /// Whether the end is published or aborted (`Acquire`).
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.bits().load(Ordering::Acquire) & PHASE != PENDING
    }

    #[cfg(test)]
    /// Whether the end came from an abort.
    pub(crate) fn is_aborted(&self) -> bool {
        self.bits().load(Ordering::Acquire) & ABORTED != 0
    }

    /// The code of the end; `None` before it.
    pub(crate) fn code(&self) -> Option<u8> {
        let state = self.bits().load(Ordering::Acquire);
        (state & PHASE != PENDING).then_some(state >> CODE_SHIFT)
    }

    /// Registers the taker's waker; check [`is_done`](Self::is_done) afterwards (rule 5).
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

// SAFETY: the slot has one user at a time (rules 1-4, ordered by the state byte's
// release/acquire); its value moves from the writer's thread to the taker's, so `T: Send`.
unsafe impl<T: Send> Sync for Completion<T> {}

impl<T> Completion<T> {
    /// A pending completion whose slot holds `empty`.
    pub(crate) fn new(empty: T) -> Self {
        Self {
            latch: Latch::new(),
            slot: UnsafeCell::new(empty),
        }
    }

    /// Gives `f` the slot, for the writer.
    ///
    /// # Safety
    ///
    /// Rule 1: the caller is the writer, and it has not published successfully.
    pub(crate) unsafe fn with_slot<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the caller's contract.
        self.slot.with_mut(|slot| f(unsafe { &mut *slot }))
    }

    /// Publishes what the slot holds, with `code` (rule 2); wakes the taker. `false` if
    /// the completion was aborted first: the slot is still the writer's to empty.
    ///
    /// # Safety
    ///
    /// Rule 1: the caller is the writer, and it has not published yet.
    pub(crate) unsafe fn publish(&self, code: u8) -> bool {
        debug_assert!(code <= MAX_CODE);
        let ready = READY | (code << CODE_SHIFT);
        let won = self
            .latch
            .bits()
            .compare_exchange(PENDING, ready, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if won {
            // Rule 5.
            self.latch.waker.wake();
        }
        won
    }

    /// Takes the end, once (rule 4): `f` reads a published slot. `None` before the end or
    /// after it was taken.
    pub(crate) fn take<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<Taken<R>> {
        let state = self.latch.bits();
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current & PHASE != READY {
                return None;
            }
            let taken = (current & !PHASE) | TAKEN;
            match state.compare_exchange_weak(current, taken, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let code = current >> CODE_SHIFT;
        if current & ABORTED != 0 {
            return Some(Taken::Aborted(code));
        }
        // SAFETY: rule 4, we won READY → TAKEN of a published end: the slot is ours.
        Some(Taken::Published(
            self.slot.with_mut(|slot| f(unsafe { &mut *slot })),
        ))
    }

    /// The value-independent part: state, code and the taker's waker.
    #[inline]
    pub(crate) fn latch(&self) -> &Latch {
        &self.latch
    }

    /// The slot, when nobody else can reach the completion.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self`: no other reference exists.
        self.slot.with_mut(|slot| unsafe { &mut *slot })
    }
}

impl<T> fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("latch", &self.latch)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Latch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latch")
            .field("done", &self.is_done())
            .field("code", &self.code())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(errand_loom)))]
mod tests {
    use super::{Completion, Taken};

    #[test]
    fn published_once_then_taken_once() {
        let completion = Completion::new(0_u32);
        assert!(!completion.latch().is_done());
        assert_eq!(completion.take(|slot| *slot), None);
        // SAFETY: rule 1, this test is the writer.
        unsafe { completion.with_slot(|slot| *slot = 7) };
        // SAFETY: as above, not published yet.
        assert!(unsafe { completion.publish(3) });
        assert!(!completion.latch().abort(4), "already ended");
        assert_eq!(completion.latch().code(), Some(3));
        assert_eq!(completion.take(|slot| *slot), Some(Taken::Published(7)));
        assert_eq!(completion.take(|slot| *slot), None, "taken once");
        assert_eq!(completion.latch().code(), Some(3));
    }

    #[test]
    fn an_abort_beats_the_writer_and_leaves_it_the_slot() {
        let mut completion = Completion::new(0_u32);
        assert!(completion.latch().abort(5));
        // SAFETY: rule 1, the writer keeps an aborted slot.
        unsafe { completion.with_slot(|slot| *slot = 9) };
        // SAFETY: as above.
        assert!(!unsafe { completion.publish(3) });
        assert!(completion.latch().is_aborted());
        assert_eq!(completion.take(|slot| *slot), Some(Taken::Aborted(5)));
        assert_eq!(*completion.get_mut(), 9, "the taker never read it");
    }
}
