//! Counting outstanding work and waking whoever waits for it to settle, without a lost
//! wakeup.
//!
//! [`Settle`] is the engine's count of accepted tasks that have not ended, with the event
//! `wait_for_completion` waits on. The waiting half comes from outside through
//! [`Notify`], as for [`Parking`](crate::Parking).
//!
//! The count is two counters on two cache lines: items `added` (written by whoever adds)
//! and items `done` (written by whoever settles), so adding and settling on different
//! threads do not pass one line back and forth on every item. Outstanding is their
//! difference. A settler cannot see from its own update that it took the difference to
//! zero without reading `added`, the adders' line; it does so only while a waiter is
//! registered (`waiting`, on the settlers' line, written only when waiters come and go).
//!
//! # Rules (cited by the code)
//!
//! 1. **Count before visible.** [`Settle::add`] is called before the work it counts can
//!    be seen by anyone who will call [`Settle::done`] for it (the engine adds before it
//!    publishes the task), so an item's add happens before its done.
//! 2. **Done, fence, look for waiters.** [`Settle::done`] raises `done` (`AcqRel`: the
//!    settlers' updates form one chain, so the adds of every item done so far happen
//!    before the next settler's look), issues a `SeqCst` fence, then reads `waiting`
//!    (`Acquire`). Only if a waiter is registered does it read `added` (`Acquire`); if
//!    that equals its own `done`, nothing is outstanding and it notifies every listener.
//! 3. **Listen, register, fence, check.** A waiter ([`Settle::listen_unless`]) checks its
//!    condition, creates a listener, registers in `waiting` (`Release`), issues a
//!    `SeqCst` fence and checks again; it stays registered until its [`SettleWaiter`] drops.
//!    Of the settler's fence and the waiter's fence, whichever comes first in their single
//!    order decides: if the settler's, the waiter's second check sees its `done`; if the
//!    waiter's, the settler sees it registered, and since the listener was created before
//!    the registration, the notification reaches it. (The store-buffering pattern again.)
//! 4. **Reading the count.** [`Settle::outstanding`] reads `done` (`Acquire`) then
//!    `added`. Both only grow and no item is done before it is added, so if the two
//!    readings are equal, they were equal when `done` was read: everything added by then
//!    had settled.
//! 5. **Other conditions.** What else a waiter's condition reads is notified with
//!    [`Settle::notify_all`] after the change; a notification that came before the
//!    listener is seen by the second check (the notifier orders its notifications after
//!    what they follow, and the listener's creation after them).

use core::fmt;
use core::ops::{Deref, DerefMut};

use crossbeam_utils::CachePadded;

use crate::park::Notify;
use crate::sync::{AtomicUsize, Ordering, fence};

/// A count of outstanding work and the event its waiters listen on (see the
/// [module docs](self)).
pub(crate) struct Settle<N> {
    /// Items added (wrapping): the adders' line.
    added: CachePadded<AtomicUsize>,
    /// The settlers' line.
    tail: CachePadded<Tail>,
    notify: N,
}

/// What settlers write and read on every item.
struct Tail {
    /// Items done (wrapping).
    done: AtomicUsize,
    /// Registered waiters (rule 3).
    waiting: AtomicUsize,
}

impl<N: Notify> Settle<N> {
    /// Nothing outstanding.
    pub(crate) fn new(notify: N) -> Self {
        Self {
            added: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(Tail {
                done: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
            }),
            notify,
        }
    }

    /// Counts one more item, before it becomes visible (rule 1).
    #[inline]
    pub(crate) fn add(&self) {
        self.added.fetch_add(1, Ordering::Relaxed);
    }

    /// One item settled; notifies every listener if a waiter is registered and none is
    /// left (rule 2).
    #[inline]
    pub(crate) fn done(&self) {
        let done = self
            .tail
            .done
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        // Rule 3: pairs with the fence in `listen_unless`.
        fence(Ordering::SeqCst);
        if self.tail.waiting.load(Ordering::Acquire) != 0
            && self.added.load(Ordering::Acquire) == done
        {
            self.notify.notify_all();
        }
    }

    /// Items added and not done (rule 4). `Acquire`: what the settling callers wrote
    /// before their `done` is visible once this reads zero.
    pub(crate) fn outstanding(&self) -> usize {
        let done = self.tail.done.load(Ordering::Acquire);
        self.added.load(Ordering::Acquire).wrapping_sub(done)
    }

    /// Items ever added (wrapping at `usize::MAX`).
    pub(crate) fn added(&self) -> usize {
        self.added.load(Ordering::Relaxed)
    }

    /// Whether nothing is outstanding.
    pub(crate) fn is_settled(&self) -> bool {
        self.outstanding() == 0
    }

    /// Wakes every listener: for other conditions waiters check (rule 5).
    pub(crate) fn notify_all(&self) {
        self.notify.notify_all();
    }

    /// `None` if `done` holds, else a registered [`SettleWaiter`] holding a listener to wait on,
    /// created and registered before a second check of `done` (rule 3). Call again after
    /// the wait.
    pub(crate) fn listen_unless(
        &self,
        mut done: impl FnMut() -> bool,
    ) -> Option<SettleWaiter<'_, N>> {
        if done() {
            return None;
        }
        let listener = self.notify.listen();
        self.tail.waiting.fetch_add(1, Ordering::Release);
        let waiter = SettleWaiter {
            settle: self,
            listener: Some(listener),
        };
        // Rule 3: pairs with the fence in `done`.
        fence(Ordering::SeqCst);
        if done() {
            return None;
        }
        Some(waiter)
    }

    #[cfg(test)]
    /// The notifier.
    pub(crate) fn notifier(&self) -> &N {
        &self.notify
    }
}

impl<N> fmt::Debug for Settle<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settle")
            .field("added", &self.added.load(Ordering::Relaxed))
            .field("done", &self.tail.done.load(Ordering::Relaxed))
            .field("waiting", &self.tail.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A waiter registered with a [`Settle`] (rule 3), holding its listener; settlers look
/// for a zero count while it lives. It derefs to the listener (to poll it);
/// [`wait_with`](Self::wait_with) hands the listener to a consuming wait.
#[must_use = "dropping the waiter unregisters it"]
pub(crate) struct SettleWaiter<'a, N: Notify> {
    settle: &'a Settle<N>,
    /// `Some` until `wait_with` takes it.
    listener: Option<N::Listener<'a>>,
}

impl<'a, N: Notify> SettleWaiter<'a, N> {
    /// Runs `wait` on the listener (a blocking wait that consumes it), staying registered
    /// until it returns.
    pub(crate) fn wait_with<R>(mut self, wait: impl FnOnce(N::Listener<'a>) -> R) -> R {
        wait(self.listener.take().expect("the listener is taken once"))
    }
}

impl<'a, N: Notify> Deref for SettleWaiter<'a, N> {
    type Target = N::Listener<'a>;

    fn deref(&self) -> &N::Listener<'a> {
        self.listener.as_ref().expect("the listener is taken once")
    }
}

impl<'a, N: Notify> DerefMut for SettleWaiter<'a, N> {
    fn deref_mut(&mut self) -> &mut N::Listener<'a> {
        self.listener.as_mut().expect("the listener is taken once")
    }
}

impl<N: Notify> Drop for SettleWaiter<'_, N> {
    fn drop(&mut self) {
        self.settle.tail.waiting.fetch_sub(1, Ordering::Release);
    }
}

impl<N: Notify> fmt::Debug for SettleWaiter<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettleWaiter").finish_non_exhaustive()
    }
}

/// The module's protocol in one walk-through (the type is crate-internal, so this is a
/// unit test rather than a doctest).
#[cfg(all(test, not(errand_loom)))]
mod walkthrough {
    #[test]
    fn walkthrough() {
        use crate::park::Notify;
        use crate::settle::Settle;
        use std::sync::atomic::{AtomicUsize, Ordering};

        /// Counts notifications (a real notifier wakes threads).
        #[derive(Default)]
        struct Count(AtomicUsize);

        impl Notify for Count {
            type Listener<'a> = ();
            fn listen(&self) {}
            fn notify_one(&self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn notify_all(&self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let settle = Settle::new(Count::default());
        settle.add();
        settle.add();
        assert_eq!(settle.outstanding(), 2);
        let waiter = settle.listen_unless(|| settle.is_settled());
        assert!(waiter.is_some(), "wait: 2 outstanding");
        settle.done();
        assert_eq!(
            settle.notifier().0.load(Ordering::SeqCst),
            0,
            "not settled yet"
        );
        settle.done();
        assert_eq!(
            settle.notifier().0.load(Ordering::SeqCst),
            1,
            "settled: notified"
        );
        assert!(
            settle.listen_unless(|| settle.is_settled()).is_none(),
            "no need to wait"
        );

        // With no waiter registered, settlers do not look at the adders' counter at all.
        drop(waiter);
        settle.add();
        settle.done();
        assert_eq!(settle.notifier().0.load(Ordering::SeqCst), 1);
        assert!(settle.is_settled());
    }
}
