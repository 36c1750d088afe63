//! A flag that is raised once and wakes the one task waiting for it.
//!
//! A [`Flag`] is an idle worker's registration in the engine's waitlist: raised by the
//! notifier that takes it off the list, it wakes that worker. A [`Bit`] (below) is a
//! running task's cancellation signal: the engine raises it when a cancel or a timeout
//! ends the task, and the worker racing the task's future against it is woken.
//!
//! # Rules (cited by the code)
//!
//! 1. **Raise, then wake.** [`Flag::raise`] stores the flag (`Release`, so what the raiser
//!    wrote before is visible to whoever sees it raised), then wakes the registered waker.
//! 2. **Register, then check.** A waiter registers its waker, then loads the flag
//!    (`Acquire`). With the waker slot's rules, a raise after the check wakes the waiter,
//!    and a raise before it is seen by the check.
//! 3. **Lowering is the owner's.** [`Bit::lower`] is for whoever reuses the bit for a
//!    new use while nobody else can see it (the engine's submitter preparing a slot); a
//!    [`Flag`] is used once (an idle worker's registration).
//!
//! A [`Bit`] is the same flag with its waker slot kept elsewhere: in the engine, a task's
//! cancellation bit sits in its slot's record and the waker in its worker's seat, one slot
//! for every task that worker runs, so a slot of the table pays one byte rather than a
//! waker slot's 24. The rules are the same, with the waiter's slot passed to
//! [`Bit::raise`]: whoever raises learns that slot from the waiter (the engine: under the
//! task's cold lock, where the worker left it when it claimed the task).

use core::fmt;
use core::task::Waker;

use crate::sync::{AtomicU8, Ordering};
use crate::waker::WakerSlot;

/// A once-raised flag with one waiter (see the [module docs](self)).
pub(crate) struct Flag {
    /// Its `tag` byte is the flag: 0 lowered, 1 raised.
    waker: WakerSlot,
}

impl Flag {
    /// A lowered flag.
    pub(crate) fn new() -> Self {
        Self {
            waker: WakerSlot::new(),
        }
    }

    /// Raises the flag and wakes the waiter (rule 1).
    pub(crate) fn raise(&self) {
        self.waker.tag.store(1, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the flag is raised (`Acquire`, rule 2).
    #[inline]
    pub(crate) fn is_raised(&self) -> bool {
        self.waker.tag.load(Ordering::Acquire) != 0
    }

    /// Registers the waiter's waker; check [`is_raised`](Self::is_raised) afterwards
    /// (rule 2).
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

/// A once-raised flag whose one waiter registers in a [`WakerSlot`] of its own (see the
/// [module docs](self)).
pub(crate) struct Bit {
    raised: AtomicU8,
}

impl Bit {
    /// A lowered bit.
    pub(crate) fn new() -> Self {
        Self {
            raised: AtomicU8::new(0),
        }
    }

    /// Raises the bit and wakes the waiter registered in `waiter`, if the raiser knows its
    /// slot (rule 1): a raiser that does not knows no one waits.
    pub(crate) fn raise(&self, waiter: Option<&WakerSlot>) {
        self.raised.store(1, Ordering::Release);
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Whether the bit is raised (`Acquire`, rule 2: register in the slot first).
    #[inline]
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire) != 0
    }

    /// Lowers the bit for a new use (rule 3).
    pub(crate) fn lower(&self) {
        self.raised.store(0, Ordering::Relaxed);
    }
}

impl fmt::Debug for Bit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bit")
            .field("raised", &self.is_raised())
            .finish()
    }
}

impl Default for Flag {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flag")
            .field("raised", &self.is_raised())
            .finish_non_exhaustive()
    }
}
