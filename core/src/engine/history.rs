//! A bounded history of finished tasks: a ring of per-entry locks, so finishing tasks on
//! different workers do not contend on one lock, and memory stays fixed however many tasks
//! ever run.

use std::boxed::Box;
use std::sync::{Mutex, PoisonError};

use super::snapshot::{Clock, Finished, TaskInfo};
use crate::TaskId;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The last `capacity` finished tasks' records, kept raw (engine instants): converting
/// them to snapshots costs only when someone asks.
pub(crate) struct History {
    entries: Box<[Mutex<Option<Finished>>]>,
    next: AtomicUsize,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: (0..capacity).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Records a finished task, evicting the oldest entry once full. A zero-capacity
    /// history records nothing.
    pub(crate) fn push(&self, info: Finished) {
        if self.entries.is_empty() {
            return;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.entries.len();
        *self.entries[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(info);
    }

    /// The snapshot of finished task `id`, while it is still in the history. O(capacity).
    pub(crate) fn find(&self, id: TaskId, clock: &Clock) -> Option<TaskInfo> {
        self.entries.iter().find_map(|entry| {
            let entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
            entry
                .as_ref()
                .filter(|info| info.id == id)
                .map(|info| clock.info_of(info))
        })
    }
}
