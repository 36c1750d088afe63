//! Parking idle workers without losing a wakeup: an idle count, a stop flag, and a
//! notifier the owner plugs in.
//!
//! [`Parking`] is the counting half of a worker pool's sleep/wake protocol. The waiting
//! half (an event with listeners) comes from outside through the [`Notify`] trait: the
//! engine plugs in [`Waitlist`](crate::waitlist::Waitlist), which wakes no thread while
//! it holds its lock (the loom models of parking use it too). Producers pay one fence and one load of the idle count per item, and notify
//! only while a worker is registered idle, so a busy pool writes no shared word for
//! parking at all.
//!
//! # Rules (cited by the code)
//!
//! 1. **Register, listen, fence, re-check.** A worker that found no work adds itself to
//!    the idle count, creates a listener, issues a `SeqCst` fence, and only then reads the
//!    stop flag and looks for work again. It waits only if both are absent, and stays
//!    counted until its wait ended.
//! 2. **Publish, fence, look.** A producer makes its work visible (a queue push), issues a
//!    `SeqCst` fence, then loads the idle count and notifies one listener if it is not
//!    zero.
//! 3. **Why 1 and 2 suffice (no lost wakeup).** The two fences are ordered. If the
//!    worker's comes first, the producer's load sees the worker counted, and the worker's
//!    listener (created before its fence) is registered when the producer notifies, so the
//!    notification reaches it or another registered listener (whose worker then takes the
//!    work). If the producer's fence comes first, the worker's re-check sees the work.
//!    This is the store-buffering (Dekker) pattern: without either fence both sides may
//!    read stale values, and the work sits in the queue while its only worker sleeps.
//! 4. **Stopping.** [`Parking::stop`] sets the stop flag (`SeqCst`, a release), then
//!    notifies every listener, unconditionally. A worker reads the flag after creating its
//!    listener (rule 1), so it either sees the flag or holds a listener that the
//!    notification reaches. It reads the flag *before* looking for work: a worker that
//!    sees the flag then also sees all work pushed before the stop, and exits only when
//!    there is none (checked the other way round, a push and a stop landing between the
//!    two reads would let the worker exit past the pushed item; the loom model
//!    `push_then_stop_runs_the_item` found exactly that).
//! 5. **One spinner, and it passes wake-ups on.** Before parking, a worker may take the
//!    single spinning slot ([`Parking::try_spin`]) and poll for work for a short while:
//!    waking a parked thread costs microseconds, a spinner picks a push up in
//!    nanoseconds. While the slot is taken, [`notify_work`](Parking::notify_work) does
//!    not notify; the spinner is responsible for that work instead. It ends its spin with
//!    [`SpinToken::release`], found work or not: clear the slot, fence, and if work is
//!    still queued, notify an idle worker. That mirrors rule 3: a producer that saw the
//!    slot taken had its fence before the release fence, so the releaser sees its push.
//!    A woken worker looks for work through the slot (spins) before it takes work
//!    directly, so a release that woke it is passed on again if more remains: one skipped
//!    notification per push becomes a chain of wake-ups, one per worker needed. The
//!    producer loads the slot *after* its fence; loaded before, both sides can miss each
//!    other. The loom models `push_while_spinning_then_parking_wakes_the_worker` and
//!    `skipped_wakeups_are_passed_on_by_the_spinner` check both ends (the second found a
//!    worker asleep beside queued work when a spinner that gave up did not pass on).

use core::fmt;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Ordering, fence};

/// The waiting half of [`Parking`]: an event that threads listen to and others notify.
///
/// A listener created before a notification must be woken by it (or by a later one),
/// whenever it starts waiting; [`Waitlist`](crate::waitlist::Waitlist) and
/// `event_listener::Event` behave so.
pub(crate) trait Notify {
    /// What a worker waits on; created before the worker's re-check (rule 1).
    type Listener<'a>
    where
        Self: 'a;
    /// Registers a new listener.
    fn listen(&self) -> Self::Listener<'_>;
    /// Wakes one more listener than previous notifications did, if there is one.
    fn notify_one(&self);
    /// Wakes every listener.
    fn notify_all(&self);
}

/// The idle count and stop flag of a worker pool, with the notifier its idle workers wait
/// on (see the [module docs](self) for the protocol).
pub(crate) struct Parking<N> {
    /// The words a producer reads on every push, together on their own cache line.
    words: CachePadded<Words>,
    /// Non-zero once [`stop`](Self::stop) was called.
    stopping: AtomicUsize,
    notify: N,
}

/// The idle count and the spinning slot: one line, so a producer's look costs one miss.
struct Words {
    /// Workers registered idle (rule 1).
    idle: AtomicUsize,
    /// 1 while a worker holds the spinning slot (rule 5).
    spinning: AtomicUsize,
}

/// The spinning slot, held by the one worker polling for work before it parks (rule 5).
///
/// End the spin with [`release`](Self::release). Dropping the token clears the slot
/// without passing wake-ups on (for unwinding; a worker that does so may leave work
/// queued while others sleep, until the next push).
#[must_use = "the slot stays taken until `release` is called"]
pub(crate) struct SpinToken<'a, N: Notify> {
    parking: &'a Parking<N>,
}

/// What a worker should do after [`Parking::park`].
pub(crate) enum Parked<'a, L> {
    /// Work appeared while it registered: go take it.
    Work,
    /// The pool is stopping and there is no work: return.
    Exit,
    /// Wait on the listener (blocking, or `.await`), then drop the token and look again.
    Wait(L, IdleToken<'a>),
}

/// A worker's registration as idle; unregisters it when dropped (after its wait).
#[must_use = "dropping the token unregisters the worker: drop it after the wait"]
pub(crate) struct IdleToken<'a>(&'a AtomicUsize);

impl<N: Notify> Parking<N> {
    /// A pool with no idle worker, not stopping, waiting on `notify`.
    pub(crate) fn new(notify: N) -> Self {
        Self {
            words: CachePadded::new(Words {
                idle: AtomicUsize::new(0),
                spinning: AtomicUsize::new(0),
            }),
            stopping: AtomicUsize::new(0),
            notify,
        }
    }

    /// Wakes an idle worker, if one is registered and no worker is spinning, for work
    /// just made visible (rules 2 and 5). Call it after every push.
    #[inline]
    pub(crate) fn notify_work(&self) {
        // Rule 3: pairs with the fence in `park` (and in `SpinToken::release`).
        fence(Ordering::SeqCst);
        // Rule 5: the slot is loaded after the fence, never before.
        if self.words.idle.load(Ordering::Relaxed) > 0
            && self.words.spinning.load(Ordering::Relaxed) == 0
        {
            self.notify.notify_one();
        }
    }

    /// Takes the spinning slot if it is free (rule 5). `None` while another worker
    /// spins: park instead, two spinners would only fight over the same pushes.
    #[inline]
    pub(crate) fn try_spin(&self) -> Option<SpinToken<'_, N>> {
        let spinning = &self.words.spinning;
        if spinning.load(Ordering::Relaxed) != 0 {
            return None;
        }
        spinning
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinToken { parking: self })
    }

    #[cfg(all(test, errand_loom))]
    /// Whether a worker holds the spinning slot (a snapshot).
    pub(crate) fn is_spinning(&self) -> bool {
        self.words.spinning.load(Ordering::Relaxed) != 0
    }

    /// Registers the calling worker as idle and re-checks `has_work` and the stop flag
    /// (rule 1). `has_work` must see work whose producer's
    /// [`notify_work`](Self::notify_work) came before this call's fence.
    pub(crate) fn park(&self, has_work: impl FnOnce() -> bool) -> Parked<'_, N::Listener<'_>> {
        self.words.idle.fetch_add(1, Ordering::Relaxed);
        let listener = self.notify.listen();
        // Rule 3: pairs with the fence in `notify_work`.
        fence(Ordering::SeqCst);
        // Rule 4: the flag first, so work pushed before a stop we see is seen below.
        let stopping = self.is_stopping();
        if has_work() {
            self.words.idle.fetch_sub(1, Ordering::Relaxed);
            return Parked::Work;
        }
        if stopping {
            self.words.idle.fetch_sub(1, Ordering::Relaxed);
            return Parked::Exit;
        }
        Parked::Wait(listener, IdleToken(&self.words.idle))
    }

    /// Tells every worker to exit once it finds no work, waking the idle ones (rule 4).
    pub(crate) fn stop(&self) {
        self.stopping.store(1, Ordering::SeqCst);
        self.notify.notify_all();
    }

    /// Whether [`stop`](Self::stop) was called.
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst) != 0
    }

    #[cfg(test)]
    /// Workers registered idle right now (a snapshot).
    pub(crate) fn idle(&self) -> usize {
        self.words.idle.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    /// The notifier (to listen on it for something else, or to inspect it).
    pub(crate) fn notifier(&self) -> &N {
        &self.notify
    }
}

impl<N: Notify> SpinToken<'_, N> {
    /// Ends the spin (rule 5): gives the slot up and, if `more_work` (called after a
    /// fence) says work is still queued, wakes an idle worker for it, since producers did
    /// not while this worker spun. Call it whether the spin found work or not.
    pub(crate) fn release(self, more_work: impl FnOnce() -> bool) {
        let parking = self.parking;
        // Dropping clears the slot; the fence orders that clear before the look below.
        drop(self);
        fence(Ordering::SeqCst);
        if more_work() && parking.words.idle.load(Ordering::Relaxed) > 0 {
            parking.notify.notify_one();
        }
    }
}

impl<N: Notify> Drop for SpinToken<'_, N> {
    fn drop(&mut self) {
        // Rule 5: pairs with the producer's fence through the fence in `release`.
        self.parking.words.spinning.store(0, Ordering::Release);
    }
}

impl<N: Notify> fmt::Debug for SpinToken<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinToken").finish_non_exhaustive()
    }
}

impl Drop for IdleToken<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<N> fmt::Debug for Parking<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parking")
            .field("idle", &self.words.idle.load(Ordering::Relaxed))
            .field(
                "spinning",
                &(self.words.spinning.load(Ordering::Relaxed) != 0),
            )
            .field("stopping", &(self.stopping.load(Ordering::Relaxed) != 0))
            .finish_non_exhaustive()
    }
}

impl<L> fmt::Debug for Parked<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Parked::Work => "Work",
            Parked::Exit => "Exit",
            Parked::Wait(..) => "Wait",
        })
    }
}

impl fmt::Debug for IdleToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleToken").finish_non_exhaustive()
    }
}

/// The module's protocol in one walk-through (the type is crate-internal, so this is a
/// unit test rather than a doctest).
#[cfg(all(test, not(errand_loom)))]
mod walkthrough {
    #[test]
    fn walkthrough() {
        use crate::park::{Notify, Parked, Parking};
        use std::sync::atomic::{AtomicBool, Ordering};

        /// A notifier that only remembers whether it was notified (a real one wakes threads).
        #[derive(Default)]
        struct Flag(AtomicBool);

        impl Notify for Flag {
            type Listener<'a> = ();
            fn listen(&self) {}
            fn notify_one(&self) {
                self.0.store(true, Ordering::SeqCst);
            }
            fn notify_all(&self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }

        let parking = Parking::new(Flag::default());
        // A busy pool: nobody idle, so a producer does not notify.
        parking.notify_work();
        assert!(!parking.notifier().0.load(Ordering::SeqCst));
        // A worker finds no work and registers idle; now a producer notifies.
        let Parked::Wait((), token) = parking.park(|| false) else {
            unreachable!()
        };
        assert_eq!(parking.idle(), 1);
        parking.notify_work();
        assert!(parking.notifier().0.load(Ordering::SeqCst));
        drop(token);
        assert_eq!(parking.idle(), 0);
        // Work found while registering: the worker does not wait.
        assert!(matches!(parking.park(|| true), Parked::Work));
        parking.stop();
        assert!(matches!(parking.park(|| false), Parked::Exit));

        // One spinner at a time; while it spins, producers leave the work to it.
        let parking = Parking::new(Flag::default());
        let spin = parking.try_spin().expect("the slot is free");
        assert!(parking.try_spin().is_none());
        let Parked::Wait((), idle) = parking.park(|| false) else {
            unreachable!()
        };
        parking.notify_work();
        assert!(
            !parking.notifier().0.load(Ordering::SeqCst),
            "the spinner takes it"
        );
        // The spinner ends its spin with more work queued: it wakes the idle worker itself.
        spin.release(|| true);
        assert!(parking.notifier().0.load(Ordering::SeqCst));
        drop(idle);
    }
}
