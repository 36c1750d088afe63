//! The timer phase: arming timers, and the timer driver's round (delayed starts, retry
//! delays, timeouts, sleepers, expired results, profile samples, replacement workers).

use std::time::Instant;
use std::vec::Vec;

use event_listener::EventListener;

use super::cell::LatchRef;
use super::inner::{Inner, lock};
use super::record::{Cold, DETACHED, Desk, INLINE, Record};
use super::timers::Kind;
use crate::{Event as TaskEvent, State, TaskId};

impl Inner {
    /// Arms `id`'s timer at wheel tick `tick` in the calling thread's timer shard, waking
    /// the driver if it is now that shard's earliest; returns the shard.
    pub(crate) fn arm(&self, id: TaskId, tick: u64, kind: Kind) -> usize {
        let index = id.index() as usize;
        let shard = self.my_timers();
        let mut timers = self.lock_timers(shard);
        let earliest = timers.wheel.next_deadline().is_none_or(|next| tick < next);
        timers.make_room(index);
        timers.kinds[index] = kind;
        timers
            .wheel
            .insert(index, tick)
            .expect("every slot index has a timer entry");
        drop(timers);
        // Earlier than this shard's first: perhaps than every shard's, which the driver
        // sleeps until (a wake-up too many otherwise, never one too few).
        if earliest {
            self.timer_event.notify(1);
        }
        shard
    }

    /// Fires every due timer and sleeper, expires stored results and takes a profile
    /// sample if one is due. Returns `None` when the driver should exit, else when to run
    /// again (`None` inside: only when woken) and the listener that wakes it earlier
    /// (registered before the deadline was computed, so an earlier deadline inserted
    /// meanwhile is not missed).
    pub(crate) fn fire_timers(&self) -> Option<(Option<Instant>, EventListener)> {
        let listener = self.timer_event.listen();
        if self.parking.is_stopping() {
            return None;
        }
        let mut due = Vec::new();
        let mut timed_out = Vec::new();
        let ready = self.now_ns();
        let now = ready / 1_000_000;
        let mut next: Option<u64> = None;
        for shard in 0..self.timers.len() {
            let mut timers = self.lock_timers(shard);
            while let Some(index) = timers.wheel.poll(now) {
                match timers.kinds[index] {
                    // Rule 1: a Wake entry is its task's token, so its slot stays this
                    // task's after the lock is dropped: it is made due after, so a worker
                    // re-arming a recurring task (a thousand at one tick) does not wait
                    // for this lock while the queue fills.
                    Kind::Wake => due.push(index),
                    // A Timeout entry is removed (under this lock) before its slot is
                    // released: applied here, while the slot is surely its task's.
                    Kind::Timeout => {
                        let Some(id) = self.records.id_at(index) else {
                            continue;
                        };
                        let record = self.records.get(id).expect("a timer's slot is live");
                        if record.state.apply(TaskEvent::Timeout).is_ok() {
                            timed_out.push(id);
                        }
                    }
                }
            }
            if let Some(tick) = timers.wheel.next_deadline() {
                next = Some(next.map_or(tick, |earlier| earlier.min(tick)));
            }
        }
        for index in due {
            // Rule 1: we hold the token, so the slot is live and still this task's.
            let id = self
                .records
                .id_at(index)
                .expect("a waiting task's slot is live");
            let record = self.records.get(id).expect("a waiting task's slot is live");
            match record.state.apply(TaskEvent::Due) {
                Ok(_) => self.enqueue(id, record, ready),
                // Cancelled while waiting: we hold the token, so we finalize.
                Err(_) => self.finalize(id, record),
            }
        }
        for id in timed_out {
            self.stats.mine().timed_out.inc();
            if self.events.on() || cfg!(feature = "tracing") {
                let attempt = self
                    .records
                    .get(id)
                    .map_or(0, |record| record.lock().attempt);
                self.tell_ended(id, State::TimedOut, attempt, None, None);
            }
            self.interrupt(id, State::TimedOut);
        }
        let now = Instant::now();
        let (next_expiry, panics) = self.results.sweep(now);
        for _ in 0..panics {
            self.stats.mine().panicked.inc();
        }
        let deadline = [
            next.map(|tick| self.tick_instant(tick)),
            next_expiry,
            self.sleepers.fire(now),
            self.sample_if_due(now),
        ]
        .into_iter()
        .flatten()
        .min();
        Some((deadline, listener))
    }

    /// Tells the running attempt of task `id`, which the caller just ended with a `Cancel`
    /// or `Timeout` (to `state`), that it is over, and settles the task. A blocking
    /// attempt is detached (rule 8): its handle resolves now.
    pub(crate) fn interrupt(&self, id: TaskId, state: State) {
        if let Some(record) = self.records.get(id) {
            let mut cold = record.lock();
            // Rule 4: the slot is pinned; the worker may have finished and released it.
            if self.records.contains(id) {
                self.interrupt_locked(record, &mut cold, state);
            }
        }
        self.settle();
    }

    /// Under the cold lock, after the caller ended a running task with `state` (so the slot
    /// is still this task's): takes the worker's desk from the cold data, detaches a
    /// blocking attempt (its handle resolves now) and raises the task's signal, waking the
    /// worker if it waits on it (rule 8).
    pub(crate) fn interrupt_locked(&self, record: &Record, cold: &mut Cold, state: State) {
        let desk = cold.tenure.take_desk();
        if let Some(latch) = desk.as_deref().and_then(Desk::latch) {
            self.detach_locked(record, latch, state);
        }
        record.raise(desk.as_deref(), &self.cancels);
    }

    /// Resolves the handle of a blocking attempt at once through its latch, and counts
    /// the closure as detached (rules 8-9).
    fn detach_locked(&self, record: &Record, latch: LatchRef, state: State) {
        // Counted before the handle learns the end, so its waiter sees the count.
        record.set_flags(record.flags() | DETACHED);
        self.detached
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.stats.mine().detached.inc();
        // SAFETY: rule 8: under the cold lock with the pointer set, the JobRef lives.
        let latch = unsafe { latch.get() };
        // The worker publishes only after clearing the latch (under this lock): it cannot
        // have published yet, so the abort wins.
        let aborted = latch.abort(state as u8);
        debug_assert!(aborted, "a latch is set only before its worker publishes");
        if record.flags() & INLINE != 0 {
            // Rule 9: the worker is stuck in the closure; the timer driver starts another.
            lock(&self.pool).stuck += 1;
            self.timer_event.notify(1);
        }
    }

    /// How many replacement workers the timer driver should start now (rule 9): one per
    /// worker stuck in a detached closure, up to `max_detached`. Counted as started.
    pub(crate) fn workers_wanted(&self) -> usize {
        let mut pool = lock(&self.pool);
        let target = pool.stuck.min(self.config.max_detached);
        let wanted = target.saturating_sub(pool.extra);
        pool.extra += wanted;
        wanted
    }

    /// A replacement worker could not be started after all.
    pub(crate) fn worker_not_started(&self) {
        lock(&self.pool).extra -= 1;
    }
}
