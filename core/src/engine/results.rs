//! Stored task results with a time to live: a map by id plus an expiry queue. Each entry
//! holds the memory-budget charge of its value, so removing it (on expiry) gives the bytes
//! back: expired results are freed, not only hidden.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use std::vec::Vec;

use super::guard;
use crate::{OwnedReservation, TaskId};

struct Stored {
    value: Arc<dyn Any + Send + Sync>,
    expires: Instant,
    /// Given back to the budget when the entry is dropped.
    _charge: OwnedReservation,
}

#[derive(Default)]
struct Map {
    entries: HashMap<TaskId, Stored>,
    expiry: BinaryHeap<Reverse<(Instant, TaskId)>>,
}

impl Map {
    /// Takes every entry expired at `now` out (for the caller to drop outside the lock);
    /// the next expiry after that.
    fn sweep(&mut self, now: Instant, expired: &mut Vec<Stored>) -> Option<Instant> {
        while let Some(Reverse((expires, id))) = self.expiry.peek().copied() {
            if expires > now {
                return Some(expires);
            }
            self.expiry.pop();
            if self
                .entries
                .get(&id)
                .is_some_and(|stored| stored.expires == expires)
            {
                expired.extend(self.entries.remove(&id));
            }
        }
        None
    }
}

/// Drops expired entries: their values are user types, so each drop is guarded (a panic
/// is counted, not unwound into the timer driver), and none runs under the store's lock.
fn drop_expired(expired: Vec<Stored>) -> usize {
    expired
        .into_iter()
        .map(guard::drop)
        .filter(Result::is_err)
        .count()
}

/// The result store (cold: only tasks that asked to store their result touch it).
#[derive(Default)]
pub(crate) struct Results {
    map: Mutex<Map>,
}

impl Results {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `value` until `expires`; returns whether it expires before every other
    /// entry (the timer driver must then wake earlier).
    pub(crate) fn insert(
        &self,
        id: TaskId,
        value: Arc<dyn Any + Send + Sync>,
        expires: Instant,
        charge: OwnedReservation,
    ) -> bool {
        let mut map = self.lock();
        let earliest = map
            .expiry
            .peek()
            .is_none_or(|Reverse((first, _))| expires < *first);
        map.expiry.push(Reverse((expires, id)));
        map.entries.insert(
            id,
            Stored {
                value,
                expires,
                _charge: charge,
            },
        );
        earliest
    }

    /// The value stored for `id`, unless it expired (expired entries are freed first).
    pub(crate) fn get(&self, id: TaskId, now: Instant) -> Option<Arc<dyn Any + Send + Sync>> {
        let mut expired = Vec::new();
        let value = {
            let mut map = self.lock();
            map.sweep(now, &mut expired);
            map.entries.get(&id).map(|stored| Arc::clone(&stored.value))
        };
        drop_expired(expired);
        value
    }

    /// Frees every expired entry; the next expiry, and how many drops panicked.
    pub(crate) fn sweep(&self, now: Instant) -> (Option<Instant>, usize) {
        let mut expired = Vec::new();
        let next = self.lock().sweep(now, &mut expired);
        (next, drop_expired(expired))
    }

    /// Entries held (expired ones not yet swept included).
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}
