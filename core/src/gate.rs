//! An admission gate that can be closed and then drained: after [`Gate::close`] and a
//! drained [`Gate::is_drained`], no holder of a [`Pass`] remains and no new one is given.
//!
//! The engine's submissions pass through it: a shutdown closes the gate, waits until it
//! is drained, and then knows every accepted task is published (so stopping "every live
//! task" really sees every one) and that no task will be accepted any more.
//!
//! # Rules (cited by the code)
//!
//! 1. **Enter: count, fence, check.** [`Gate::enter`] adds one to the count of entrants,
//!    issues a `SeqCst` fence, then reads the open flag; if the gate is closed it leaves
//!    again (and gets no pass).
//! 2. **Close: flag, fence, count.** [`Gate::close`] clears the open flag and issues a
//!    `SeqCst` fence; [`Gate::is_drained`] then reads the count of entrants (`Acquire`).
//! 3. **Why 1 and 2 suffice.** The two fences are ordered. If the entrant's comes first,
//!    every drained check after the closer's fence sees the entrant counted until its
//!    pass drops. If the closer's comes first, the entrant sees the gate closed. So no pass
//!    is given after a closer saw the gate drained (the store-buffering pattern again).
//! 4. **Leaving publishes.** A pass drops with a `Release` decrement: what its holder
//!    wrote is visible to the closer whose `Acquire` read saw the count reach zero.
//!
//! A pass costs an entrant two read-modify-writes of the count and one fence; the count is
//! the only shared word it writes.

use core::fmt;

use crate::sync::{AtomicUsize, Ordering, fence};

/// A closable admission gate (see the [module docs](self)).
pub(crate) struct Gate {
    /// Non-zero while open.
    open: AtomicUsize,
    /// Passes given and not dropped yet (plus entrants between rules 1's steps).
    entered: AtomicUsize,
}

/// Permission to go through an open [`Gate`]; a closer waits until every pass dropped.
#[must_use = "the pass admits its holder only while it is held"]
pub(crate) struct Pass<'a>(&'a Gate);

impl Gate {
    /// An open gate with no entrant.
    #[must_use]
    pub(crate) fn new() -> Self {
        Self {
            open: AtomicUsize::new(1),
            entered: AtomicUsize::new(0),
        }
    }

    /// A pass, unless the gate is closed (rule 1).
    #[inline]
    pub(crate) fn enter(&self) -> Option<Pass<'_>> {
        self.entered.fetch_add(1, Ordering::Relaxed);
        // Rule 3: pairs with the fence in `close`.
        fence(Ordering::SeqCst);
        let pass = Pass(self);
        if self.open.load(Ordering::Relaxed) == 0 {
            // Leaves again (dropping the pass).
            return None;
        }
        Some(pass)
    }

    /// Closes the gate: no pass is given after a [`is_drained`](Self::is_drained) that
    /// follows this call returns `true` (rule 2). Closing twice is harmless.
    pub(crate) fn close(&self) {
        self.open.store(0, Ordering::Relaxed);
        // Rule 3: pairs with the fence in `enter`.
        fence(Ordering::SeqCst);
    }

    /// Whether the gate is open.
    #[must_use]
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed) != 0
    }

    /// Whether no pass is held. After [`close`](Self::close), once this is `true` no
    /// pass will be given again and every former holder's writes are visible (rule 4).
    #[must_use]
    pub(crate) fn is_drained(&self) -> bool {
        self.entered.load(Ordering::Acquire) == 0
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pass<'_> {
    #[inline]
    fn drop(&mut self) {
        // Rule 4.
        self.0.entered.fetch_sub(1, Ordering::Release);
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.is_open())
            .field("entered", &self.entered.load(Ordering::Relaxed))
            .finish()
    }
}

impl fmt::Debug for Pass<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pass").finish_non_exhaustive()
    }
}

/// The module's protocol in one walk-through (the type is crate-internal, so this is a
/// unit test rather than a doctest).
#[cfg(all(test, not(errand_loom)))]
mod walkthrough {
    #[test]
    fn walkthrough() {
        use crate::gate::Gate;

        let gate = Gate::new();
        let pass = gate.enter().expect("the gate starts open");
        gate.close();
        assert!(!gate.is_open());
        assert!(!gate.is_drained(), "a pass is still held");
        assert!(gate.enter().is_none(), "closed: no new pass");
        drop(pass);
        assert!(gate.is_drained());
    }
}
