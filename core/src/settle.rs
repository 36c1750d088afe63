//! Counting outstanding work and waking whoever waits for it to settle, without a lost
//! wakeup.
//!
//! [`Settle`] is the engine's count of accepted tasks that have not ended, with the event
//! `wait_for_completion` waits on. The waiting half comes from outside through
//! [`Notify`], as for [`Parking`](crate::Parking).
//!
//! # Rules (cited by the code)
//!
//! 1. **Count before visible.** [`Settle::add`] is called before the work it counts can
//!    be seen by anyone who will call [`Settle::done`] for it (the engine adds before it
//!    publishes the task), so the count never drops below the truth.
//! 2. **Done once, then notify at zero.** [`Settle::done`] is an `AcqRel` decrement, once
//!    per added item; the caller that takes the count to zero notifies every listener,
//!    after its decrement. Other conditions a waiter checks may notify too
//!    ([`Settle::notify_all`]) after changing what the check reads.
//! 3. **Check, listen, check.** A waiter checks its condition, creates a listener, checks
//!    again, and only then waits ([`Settle::listen_unless`]). If the second check still
//!    fails, the notification that will make it true comes after the listener: had the
//!    notification come before (in the notifier's own order, which the listener's
//!    creation synchronizes with), the change it follows would have been visible to the
//!    second check.
//!
//! # Examples
//!
//! ```
//! use errand_core::{Notify, Settle};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! /// Counts notifications (a real notifier wakes threads).
//! #[derive(Default)]
//! struct Count(AtomicUsize);
//!
//! impl Notify for Count {
//!     type Listener = ();
//!     fn listen(&self) {}
//!     fn notify_one(&self) {
//!         self.0.fetch_add(1, Ordering::SeqCst);
//!     }
//!     fn notify_all(&self) {
//!         self.0.fetch_add(1, Ordering::SeqCst);
//!     }
//! }
//!
//! let settle = Settle::new(Count::default());
//! settle.add();
//! settle.add();
//! assert_eq!(settle.outstanding(), 2);
//! assert!(settle.listen_unless(|| settle.is_settled()).is_some(), "wait: 2 outstanding");
//! settle.done();
//! assert_eq!(settle.notifier().0.load(Ordering::SeqCst), 0, "not settled yet");
//! settle.done();
//! assert_eq!(settle.notifier().0.load(Ordering::SeqCst), 1, "settled: notified");
//! assert!(settle.listen_unless(|| settle.is_settled()).is_none(), "no need to wait");
//! ```

use core::fmt;

use crate::Notify;
use crate::sync::{AtomicUsize, Ordering};

/// A count of outstanding work and the event its waiters listen on (see the
/// [module docs](self)).
pub struct Settle<N> {
    outstanding: AtomicUsize,
    notify: N,
}

impl<N: Notify> Settle<N> {
    /// Nothing outstanding.
    pub fn new(notify: N) -> Self {
        Self {
            outstanding: AtomicUsize::new(0),
            notify,
        }
    }

    /// Counts one more item, before it becomes visible (rule 1).
    #[inline]
    pub fn add(&self) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
    }

    /// One item settled; notifies every listener when none is left (rule 2).
    #[inline]
    pub fn done(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_all();
        }
    }

    /// Items added and not done (`Acquire`: what the settling callers wrote before
    /// their `done` is visible once this reads zero).
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Whether nothing is outstanding.
    pub fn is_settled(&self) -> bool {
        self.outstanding() == 0
    }

    /// Wakes every listener: for other conditions waiters check (rule 2).
    pub fn notify_all(&self) {
        self.notify.notify_all();
    }

    /// `None` if `done` holds, else a listener to wait on, created between two checks of
    /// `done` (rule 3). Call again after the wait.
    pub fn listen_unless(&self, mut done: impl FnMut() -> bool) -> Option<N::Listener> {
        if done() {
            return None;
        }
        let listener = self.notify.listen();
        if done() {
            return None;
        }
        Some(listener)
    }

    /// The notifier.
    pub fn notifier(&self) -> &N {
        &self.notify
    }
}

impl<N> fmt::Debug for Settle<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settle")
            .field("outstanding", &self.outstanding.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
