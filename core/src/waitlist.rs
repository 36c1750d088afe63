//! The waiting half of worker parking: idle workers' registrations, oldest first, woken
//! only after the list's lock is released.
//!
//! [`Waitlist`] is the [`Notify`] the engine plugs into [`Parking`](crate::park::Parking).
//! Each registration is a [`Flag`]; a notifier takes registrations off the list under a
//! short lock and raises their flags after releasing it, so a woken worker never runs
//! into a lock its waker still holds. (`event_listener::Event`, which the engine used
//! before, wakes inside its list's lock: a wakee placed on its waker's core preempts the
//! waker there, blocks on that lock when it polls its listener, and needs a second
//! wake-up once the waker runs again and unlocks; BENCHMARKS.md has the trace.)
//!
//! # Rules (cited by the code)
//!
//! 1. **Listening registers.** [`Notify::listen`] appends a fresh flag to the list under
//!    the lock and returns a [`Listener`] holding it: the registration exists from then
//!    on, before the listener is first polled (the parking protocol creates it before its
//!    fence and waits on it after its re-check).
//! 2. **Take under the lock, raise outside it.** [`notify_one`](Notify::notify_one) pops
//!    the oldest registration under the lock and raises its flag after the unlock;
//!    [`notify_all`](Notify::notify_all) takes every registration the same way. A
//!    registration is taken at most once, so each notification is meant for one listener
//!    that nobody else was told about ("one more than before", as
//!    `notify(1.additional())` is).
//! 3. **Waiting takes no lock.** A listener waits by "register the waker, then check the
//!    flag" (flag rules 1-2): a raise after the check wakes it, one before is seen.
//! 4. **A listener that goes without waiting passes its notification on.** Dropped before
//!    a poll saw its flag raised, a listener removes its registration under the lock. If
//!    the registration is no longer there, a notifier took it (its raise may still be in
//!    flight): that notification was for this listener, which will not use it, so it is
//!    passed to the oldest remaining registration, as rule 2 would have. So a
//!    notification reaches a listener that waits, or the last one that went without (as
//!    an `EventListener` dropped while notified passes its notification on).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::vec::Vec;

use crate::flag::Flag;
use crate::park::Notify;
use crate::sync::{Arc, Mutex};

/// Idle workers' registrations, oldest first (see the [module docs](self)).
pub(crate) struct Waitlist {
    waiting: Mutex<VecDeque<Arc<Flag>>>,
}

/// One registration on a [`Waitlist`]: a future that completes once it is notified.
#[must_use = "a listener does nothing unless awaited"]
pub(crate) struct Listener<'a> {
    list: &'a Waitlist,
    flag: Arc<Flag>,
    /// A poll saw the flag raised: the notification was used (rule 4).
    used: bool,
}

impl Waitlist {
    /// An empty list with room for `capacity` registrations before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            waiting: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    fn lock(&self) -> impl core::ops::DerefMut<Target = VecDeque<Arc<Flag>>> + '_ {
        // The list is only pushed, popped and searched under the lock, never left half
        // changed by a panic: a poisoned lock still holds a coherent list.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the oldest registration and raises it after the unlock (rule 2).
    fn wake_oldest(&self) {
        let oldest = self.lock().pop_front();
        if let Some(flag) = oldest {
            flag.raise();
        }
    }
}

impl Notify for Waitlist {
    type Listener<'a> = Listener<'a>;

    fn listen(&self) -> Listener<'_> {
        let flag = Arc::new(Flag::new());
        // Rule 1: registered before the caller's fence.
        self.lock().push_back(Arc::clone(&flag));
        Listener {
            list: self,
            flag,
            used: false,
        }
    }

    fn notify_one(&self) {
        self.wake_oldest();
    }

    fn notify_all(&self) {
        // Rule 2: every registration, raised outside the lock.
        let all: Vec<Arc<Flag>> = self.lock().drain(..).collect();
        for flag in all {
            flag.raise();
        }
    }
}

impl Future for Listener<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Rule 3: register, then check.
        if !self.flag.is_raised() {
            self.flag.register(cx.waker());
            if !self.flag.is_raised() {
                return Poll::Pending;
            }
        }
        self.used = true;
        Poll::Ready(())
    }
}

impl Drop for Listener<'_> {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        // Rule 4: still registered, or taken by a notifier whose notification we pass on.
        let taken = {
            let mut waiting = self.list.lock();
            match waiting
                .iter()
                .position(|flag| Arc::ptr_eq(flag, &self.flag))
            {
                Some(at) => {
                    drop(waiting.remove(at));
                    false
                }
                None => true,
            }
        };
        if taken {
            self.list.wake_oldest();
        }
    }
}

impl fmt::Debug for Waitlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waitlist")
            .field("waiting", &self.lock().len())
            .finish()
    }
}

impl fmt::Debug for Listener<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("notified", &self.flag.is_raised())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(errand_loom)))]
mod tests {
    use super::Waitlist;
    use crate::park::Notify;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    fn ready(listener: &mut core::pin::Pin<&mut super::Listener<'_>>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        listener.as_mut().poll(&mut cx) == Poll::Ready(())
    }

    #[test]
    fn notify_one_wakes_the_oldest_listener_once() {
        let list = Waitlist::with_capacity(2);
        let mut first = pin!(list.listen());
        let mut second = pin!(list.listen());
        assert!(!ready(&mut first) && !ready(&mut second));
        list.notify_one();
        assert!(ready(&mut first));
        assert!(!ready(&mut second));
        list.notify_one();
        assert!(ready(&mut second));
        // Nobody left: a notification with no listener is dropped.
        list.notify_one();
        let mut late = pin!(list.listen());
        assert!(!ready(&mut late));
    }

    #[test]
    fn a_listener_notified_before_its_first_poll_is_ready() {
        let list = Waitlist::with_capacity(1);
        let mut listener = pin!(list.listen());
        list.notify_one();
        assert!(ready(&mut listener));
    }

    #[test]
    fn a_dropped_notified_listener_passes_its_notification_on() {
        let list = Waitlist::with_capacity(2);
        let first = list.listen();
        let mut second = pin!(list.listen());
        list.notify_one();
        drop(first);
        assert!(ready(&mut second));
    }

    #[test]
    fn a_dropped_unnotified_listener_leaves_the_list() {
        let list = Waitlist::with_capacity(2);
        let first = list.listen();
        let mut second = pin!(list.listen());
        drop(first);
        list.notify_one();
        assert!(ready(&mut second));
        assert_eq!(std::format!("{list:?}"), "Waitlist { waiting: 0 }");
    }

    #[test]
    fn notify_all_wakes_every_listener() {
        let list = Waitlist::with_capacity(2);
        let mut first = pin!(list.listen());
        let mut second = pin!(list.listen());
        list.notify_all();
        assert!(ready(&mut first) && ready(&mut second));
    }
}
