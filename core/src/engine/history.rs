//! A bounded history of finished tasks: a ring of per-entry locks, so finishing tasks on
//! different workers do not contend on one lock, and memory stays fixed however many tasks
//! ever run.

use std::boxed::Box;
use std::vec::Vec;

use crossbeam_utils::CachePadded;
use std::sync::{Mutex, PoisonError};

use std::collections::TryReserveError;

use super::clock::Clock;
use super::snapshot::{Finished, TaskInfo};
use crate::TaskId;

/// The last `capacity` finished tasks' records, kept raw (engine instants): converting
/// them to snapshots costs only when someone asks.
///
/// The caller numbers the entries (the engine keeps the count on a line it writes at a
/// task's end anyway). Each entry has cache lines of its own: consecutive entries are
/// written by different workers at the same time.
pub(crate) struct History {
    entries: Box<[CachePadded<Mutex<Option<Finished>>>]>,
}

impl History {
    /// A history of `capacity` entries, allocated fallibly.
    pub(crate) fn try_new(capacity: usize) -> Result<Self, TryReserveError> {
        Ok(Self {
            entries: crate::storage::try_boxed_from_fn(capacity, |_| {
                CachePadded::new(Mutex::new(None))
            })?,
        })
    }

    /// Records finished task number `seq` (numbered from 0 without gaps), evicting the
    /// oldest entry once full. A zero-capacity history records nothing.
    pub(crate) fn push(&self, seq: usize, info: Finished) {
        if self.entries.is_empty() {
            return;
        }
        let index = seq % self.entries.len();
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
                .map(|info| info.info(clock))
        })
    }

    /// Snapshots of the finished tasks `keep` accepts, most recently finished first.
    /// O(capacity).
    pub(crate) fn list(&self, clock: &Clock, keep: impl Fn(&TaskInfo) -> bool) -> Vec<TaskInfo> {
        let mut listed: Vec<TaskInfo> = self
            .entries
            .iter()
            .filter_map(|entry| {
                let entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
                entry.as_ref().map(|info| info.info(clock))
            })
            .filter(|info| keep(info))
            .collect();
        listed.sort_by_key(|info| core::cmp::Reverse(info.finished_at));
        listed
    }

    /// Appends `note` to finished task `id`'s error, while it is in the history (a panic
    /// caught around the task after its slot was released). O(capacity).
    pub(crate) fn annotate(&self, id: TaskId, note: &str) {
        for entry in self.entries.iter() {
            let mut entry = entry.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(info) = entry.as_mut().filter(|info| info.id == id) {
                info.error = Some(match info.error.take() {
                    Some(error) => std::format!("{error}; {note}").into(),
                    None => note.into(),
                });
                return;
            }
        }
    }
}
