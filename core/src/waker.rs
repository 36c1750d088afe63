//! A slot for one waker, registered by one waiter and taken by any number of wakers.
//!
//! [`WakerSlot`] is the waiting half of the engine's one-waiter events (a task's
//! completion, its cancellation signal, the hand-back of a blocking attempt). The algorithm
//! is the well-known "atomic waker" of the futures ecosystem, written here on the atomics
//! of `sync.rs` so that loom checks it with everything built on it.
//!
//! # Rules (cited by the code)
//!
//! 1. **One registrant at a time.** Only one thread calls [`register`](WakerSlot::register)
//!    at a time (the single waiter); any thread may call [`take`](WakerSlot::take) or
//!    [`wake`](WakerSlot::wake).
//! 2. **The state word guards the cell.** A registrant moves `WAITING → REGISTERING`
//!    (`Acquire`) before it writes the cell, and back with `AcqRel`; a waker sets the
//!    `WAKING` bit (`AcqRel`) and touches the cell only if the state it replaced was
//!    `WAITING`, clearing the bit (`Release`) when done. So the cell has one user at a
//!    time.
//! 3. **No lost wake-up.** A waker that finds `REGISTERING` leaves its bit set; the
//!    registrant's closing compare-and-swap then fails, and the registrant takes the waker
//!    it just stored and wakes it itself. A registrant that finds `WAKING` wakes its own
//!    waker at once. Together with "register, then check the condition" on the waiting
//!    side and "make the condition true, then wake" on the other, a waiter never sleeps
//!    past its condition.

use core::fmt;
use core::task::Waker;

use crate::sync::{AtomicU8, Ordering, UnsafeCell};

/// Nobody is using the cell.
const WAITING: u8 = 0;
/// A registrant is writing the cell.
const REGISTERING: u8 = 0b01;
/// A waker is taking the cell (or asked a registrant to wake).
const WAKING: u8 = 0b10;

/// One registered waker (see the [module docs](self)).
pub(crate) struct WakerSlot {
    state: AtomicU8,
    /// A byte for the owner's own state (a flag's raised bit, a completion's phase),
    /// zero at first. It shares the slot's word with `state`, so a flag or a latch costs
    /// the slot's 24 bytes on 64-bit targets instead of a word more; the slot itself
    /// never touches it.
    pub(crate) tag: AtomicU8,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cell is only touched by the one thread the state word lets in (rule 2), and
// a `Waker` is `Send + Sync`.
unsafe impl Sync for WakerSlot {}
// SAFETY: as above; the slot owns only a `Waker`, which is `Send`.
unsafe impl Send for WakerSlot {}

impl WakerSlot {
    /// An empty slot.
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(WAITING),
            tag: AtomicU8::new(0),
            waker: UnsafeCell::new(None),
        }
    }

    /// Registers `waker` (replacing an earlier one), for the single waiter (rule 1). Check
    /// the condition waited for afterwards: a wake-up between that check and this call
    /// would be lost otherwise.
    pub(crate) fn register(&self, waker: &Waker) {
        match self.state.compare_exchange(
            WAITING,
            REGISTERING,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // SAFETY: rule 2, REGISTERING gives us the cell.
                self.waker.with_mut(|cell| unsafe {
                    match &*cell {
                        Some(old) if old.will_wake(waker) => {}
                        _ => *cell = Some(waker.clone()),
                    }
                });
                if let Err(actual) = self.state.compare_exchange(
                    REGISTERING,
                    WAITING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // Rule 3: a waker came while we wrote; it left the cell to us.
                    debug_assert_eq!(actual, REGISTERING | WAKING);
                    // SAFETY: rule 2, the state is still ours (REGISTERING | WAKING).
                    let woken = self.waker.with_mut(|cell| unsafe { (*cell).take() });
                    self.state.swap(WAITING, Ordering::AcqRel);
                    if let Some(woken) = woken {
                        woken.wake();
                    }
                }
            }
            // Rule 3: a wake is under way; the condition may already hold.
            Err(WAKING) => waker.wake_by_ref(),
            // Rule 1 forbids a concurrent registrant; nothing to do for a stale state.
            Err(_) => {}
        }
    }

    /// Takes the registered waker, if any, so the caller can wake it (outside its locks).
    pub(crate) fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            WAITING => {
                // SAFETY: rule 2, we moved WAITING to WAKING: the cell is ours.
                let waker = self.waker.with_mut(|cell| unsafe { (*cell).take() });
                self.state.fetch_and(!WAKING, Ordering::Release);
                waker
            }
            // A registrant is writing (it will wake itself, rule 3) or another waker is
            // at the cell.
            _ => None,
        }
    }

    /// Wakes the registered waker, if any.
    pub(crate) fn wake(&self) {
        if let Some(waker) = self.take() {
            waker.wake();
        }
    }
}

impl Default for WakerSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakerSlot").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(errand_loom)))]
mod tests {
    use super::WakerSlot;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_registered_waker_is_woken_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let slot = WakerSlot::new();
        slot.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "nothing registered");
        slot.register(&waker);
        slot.register(&waker);
        slot.wake();
        slot.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        slot.register(&waker);
        assert!(slot.take().is_some());
        assert!(slot.take().is_none());
    }
}
