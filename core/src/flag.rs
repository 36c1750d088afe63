//! A flag that is raised once and wakes the one task waiting for it.
//!
//! The engine raises a running task's [`Flag`] when a cancel or a timeout ends the task,
//! and the worker racing the task's future against it is woken.
//!
//! # Rules (cited by the code)
//!
//! 1. **Raise, then wake.** [`Flag::raise`] stores the flag (`Release`, so what the raiser
//!    wrote before is visible to whoever sees it raised), then wakes the registered waker.
//! 2. **Register, then check.** A waiter registers its waker, then loads the flag
//!    (`Acquire`). With the waker slot's rules, a raise after the check wakes the waiter,
//!    and a raise before it is seen by the check.
//! 3. **Lowering is the owner's.** [`Flag::lower`] is for whoever reuses the flag for a
//!    new use while nobody else can see it (the engine's submitter preparing a slot).

use core::fmt;
use core::task::Waker;

use crate::sync::Ordering;
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

    /// Drops the registered waker, if any (the waiter gave up waiting).
    pub(crate) fn unregister(&self) {
        drop(self.waker.take());
    }

    /// Lowers the flag and forgets any waker, for a new use (rule 3).
    pub(crate) fn lower(&self) {
        self.waker.tag.store(0, Ordering::Relaxed);
        drop(self.waker.take());
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
