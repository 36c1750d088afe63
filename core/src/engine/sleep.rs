//! The sleepers of [`Context::sleep`](super::Context::sleep): deadlines with the wakers of
//! the futures waiting for them, fired by the timer driver. A runtime-neutral timer, so a
//! task's sleep works the same on every adapter (errand-threads has no timer of its own).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;
use std::vec::Vec;

/// A sleeper's place: its deadline, and a number that makes equal deadlines distinct.
pub(crate) type SleepKey = (Instant, u64);

/// Pending sleeps, earliest first. Each costs one map entry while it is registered;
/// a sleep that is dropped (its task cancelled, say) removes its entry at once, so the map
/// holds only sleeps someone still awaits.
#[derive(Default)]
pub(crate) struct Sleepers {
    map: Mutex<BTreeMap<SleepKey, Waker>>,
    next: AtomicU64,
}

impl Sleepers {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<SleepKey, Waker>> {
        // The map is only changed by its own methods, never left half-updated.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or refreshes) the sleeper at `key` (given one on first use) until
    /// `deadline` with `waker`. Returns whether it is now the earliest (the timer driver
    /// must then wake sooner), or `None` if the sleeper already fired.
    pub(crate) fn register(
        &self,
        key: &mut Option<SleepKey>,
        deadline: Instant,
        waker: &Waker,
    ) -> Option<bool> {
        let mut map = self.lock();
        match key {
            Some(key) => {
                let entry = map.get_mut(key)?;
                if !entry.will_wake(waker) {
                    *entry = waker.clone();
                }
                Some(false)
            }
            None => {
                let new = (deadline, self.next.fetch_add(1, Ordering::Relaxed));
                let earliest = map.keys().next().is_none_or(|first| new < *first);
                map.insert(new, waker.clone());
                *key = Some(new);
                Some(earliest)
            }
        }
    }

    /// Forgets the sleeper at `key` (its future was dropped).
    pub(crate) fn cancel(&self, key: SleepKey) {
        let waker = self.lock().remove(&key);
        drop(waker);
    }

    /// Wakes every sleeper due at `now` (outside the lock); the next deadline after them.
    pub(crate) fn fire(&self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let next = {
            let mut map = self.lock();
            while let Some(entry) = map.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            map.keys().next().map(|(at, _)| *at)
        };
        for waker in due {
            waker.wake();
        }
        next
    }
}
