//! The control phase: what callers do to tasks by id (cancel, progress, questions about
//! one task) and to the manager as a whole (stop accepting, wait until quiet, stop
//! everything, lose the runtime).

use std::any::Any;
use std::string::String;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use std::vec::Vec;

use event_listener::Event;

use super::ending::Ending;
use super::error::{CancelError, TaskError};
use super::guard::Notes;
use super::inner::Inner;
use super::record::STOPPED;
use super::snapshot::TaskInfo;
use super::wait::listen_until;
use crate::settle::SettleWaiter;
use crate::{Event as TaskEvent, State, TaskId};

/// How a task is being ended from outside its worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A user's cancel (counted as cancelled).
    Cancel,
    /// `stop_all` or a shutdown (counted as stopped).
    Shutdown,
}

impl Inner {
    /// Cancels live task `id` on behalf of a user (`Stop::Cancel`) or a shutdown.
    fn stop(&self, id: TaskId, how: Stop) -> Result<State, CancelError> {
        let ended = || match self.history.find(id, &self.clock) {
            Some(info) => CancelError::Finished {
                id,
                state: info.state,
            },
            None => CancelError::Unknown { id },
        };
        // A slot already released: the task ended (and may be in the history).
        let record = self.records.get(id).ok_or_else(ended)?;
        let mut cold = record.lock();
        // Rule 4: under the cold lock the slot cannot be released; check it is still ours.
        if !self.records.contains(id) {
            drop(cold);
            return Err(ended());
        }
        let step = record
            .state
            .apply(TaskEvent::Cancel)
            .map_err(|lost| CancelError::Finished {
                id,
                state: lost.state(),
            })?;
        match how {
            Stop::Cancel => self.stats.mine().cancelled.inc(),
            Stop::Shutdown => self.stats.mine().stopped.inc(),
        }
        self.tell_ended(id, State::Cancelled, cold.attempt, None, None);
        let from = step.transition.from;
        if from == State::Running {
            // The worker owns the job: tell it (the future of an async attempt is dropped,
            // a blocking attempt is detached, rule 8), and whether a shutdown stopped it.
            if how == Stop::Shutdown {
                record.set_flags(record.flags() | STOPPED);
            }
            self.interrupt_locked(record, &mut cold, State::Cancelled);
            drop(cold);
        } else {
            cold.tenure.set_end(self.clock.now());
            // Waiting on a timer: if we remove its entry we hold the token (rule 1).
            // Under the cold lock the slot cannot change hands meanwhile (rule 4). The
            // entry is in the shard of whichever thread armed it: each is asked in turn.
            let token = from != State::Queued
                && (0..self.timers.len()).any(|shard| {
                    self.lock_timers(shard)
                        .wheel
                        .cancel(id.index() as usize)
                        .is_some()
                });
            let hook = cold.take_hook();
            drop(cold);
            if let Some(hook) = hook {
                hook.ended(Ending {
                    state: State::Cancelled,
                    stopped: how == Stop::Shutdown,
                    value: None,
                    error: None,
                });
            }
            // Rule 3: winning `Cancel` from a waiting state handed us the job; completing
            // it drops the task's closure, which is user code: outside the lock.
            let mut notes = Notes::new();
            if let Some(job) = step.value {
                drop(job.complete(Err(TaskError::cancelled()), &mut notes));
            }
            if token {
                let mut cold = record.lock();
                self.note_locked(&mut cold, notes);
                self.finalize_locked(id, record, &mut cold);
            } else {
                // The queue entry holds the token: the worker that pops it finalizes.
                self.note(id, notes);
            }
        }
        self.settle();
        Ok(from)
    }

    pub(crate) fn cancel(&self, id: TaskId) -> Result<(), CancelError> {
        self.stop(id, Stop::Cancel).map(drop)
    }

    /// The state of task `id`: live, or in the history.
    pub(crate) fn state(&self, id: TaskId) -> Option<State> {
        if let Some(record) = self.records.get(id) {
            let _cold = record.lock();
            if self.records.contains(id) {
                return Some(record.state.load());
            }
        }
        self.history.find(id, &self.clock).map(|info| info.state)
    }

    /// The snapshot of task `id`: live, or in the history.
    pub(crate) fn info(&self, id: TaskId) -> Option<TaskInfo> {
        if let Some(record) = self.records.get(id) {
            let cold = record.lock();
            if self.records.contains(id) {
                return Some(record.info(id, &cold, &self.clock));
            }
        }
        self.history.find(id, &self.clock)
    }

    /// Snapshots of the live tasks `keep` accepts. O(capacity).
    fn live_infos(&self, keep: impl Fn(&TaskInfo) -> bool) -> Vec<TaskInfo> {
        (0..self.records.capacity())
            .filter_map(|index| self.records.id_at(index))
            .filter_map(|id| self.info(id))
            .filter(keep)
            .collect()
    }

    /// Snapshots of every live task that has not ended (queued, scheduled, retrying or
    /// running).
    pub(crate) fn active(&self) -> Vec<TaskInfo> {
        self.live_infos(|info| !info.state.is_terminal())
    }

    /// Snapshots of the tasks whose blocking closures run detached.
    pub(crate) fn detached_tasks(&self) -> Vec<TaskInfo> {
        if self.detached.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.live_infos(|info| info.detached)
    }

    pub(crate) fn progress(&self, id: TaskId, percent: f64, message: String) -> bool {
        let Some(record) = self.records.get(id) else {
            return false;
        };
        let mut cold = record.lock();
        if !self.records.contains(id) || record.state.load().is_terminal() {
            return false;
        }
        if let Some(hook) = cold.extra.as_ref().and_then(|extra| extra.on_end.as_ref()) {
            hook.progress(percent, &message);
        }
        self.tell_progress(id, percent, &message);
        cold.set_progress(percent, message.into_boxed_str());
        true
    }

    /// Whether `id`'s attempt should stop: its signal is raised, or the task is no longer
    /// live (a context that outlived its task).
    pub(crate) fn is_cancelled(&self, id: TaskId) -> bool {
        match self.records.get(id) {
            // Read the flag, then check the slot is still this task's: if it is, the flag
            // was this task's when read.
            Some(record) => record.is_raised() || !self.records.contains(id),
            None => true,
        }
    }

    /// The stored result of `id`, unless it expired (or was never stored).
    pub(crate) fn stored_result(&self, id: TaskId) -> Option<Arc<dyn Any + Send + Sync>> {
        self.results.get(id, Instant::now())
    }

    pub(crate) fn stop_accepting(&self) {
        self.shutdown_initiated.store(true, Ordering::SeqCst);
        self.admission.close();
        // Submissions that entered before the close finish publishing first, so a
        // `stop_all` after this sees them (gate rules 3-4). They are short (no user code
        // runs in them).
        while !self.admission.is_drained() {
            std::thread::yield_now();
        }
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.admission.is_open()
    }

    pub(crate) fn is_shutdown_initiated(&self) -> bool {
        self.shutdown_initiated.load(Ordering::SeqCst)
    }

    /// `None` once [`is_quiet`](Self::is_quiet), else a listener notified when tasks
    /// settle, slots are reclaimed or detached closures return, created between two
    /// checks (settle rules 3 and 5).
    pub(crate) fn quiet_or_listener(&self, detached: bool) -> Option<SettleWaiter<'_, Event>> {
        self.unfinished.listen_unless(|| self.is_quiet(detached))
    }

    /// Blocks until [`is_quiet`](Self::is_quiet) or `deadline` passes; whether it is quiet.
    pub(crate) fn wait_quiet(&self, detached: bool, deadline: Option<Instant>) -> bool {
        loop {
            let Some(waiter) = self.quiet_or_listener(detached) else {
                return true;
            };
            if !waiter.wait_with(|listener| listen_until(listener, deadline)) {
                return self.is_quiet(detached);
            }
        }
    }

    /// Cancels every live task (counted as stopped), returning their snapshots as they
    /// were just before. Waiting tasks go first, so a worker that a detached closure frees
    /// meanwhile finds nothing left to start; then the running ones, in passes until one
    /// finds none (a task that failed into `Retrying` meanwhile is caught by the next).
    pub(crate) fn stop_all(&self) -> Vec<TaskInfo> {
        let mut stopped = Vec::new();
        self.stop_pass(|state| state != State::Running, &mut stopped);
        while self.stop_pass(|_| true, &mut stopped) > 0 {}
        stopped
    }

    /// Stops every live task not yet ended whose state `pick` accepts; how many.
    fn stop_pass(&self, pick: impl Fn(State) -> bool, stopped: &mut Vec<TaskInfo>) -> usize {
        let before = stopped.len();
        for index in 0..self.records.capacity() {
            let Some(id) = self.records.id_at(index) else {
                continue;
            };
            let Some(info) = self.info(id) else {
                continue;
            };
            if info.state.is_terminal() || !pick(info.state) {
                continue;
            }
            if let Ok(from) = self.stop(id, Stop::Shutdown) {
                stopped.push(TaskInfo {
                    state: from,
                    ..info
                });
            }
        }
        stopped.len() - before
    }

    /// Tells the workers to exit once the queue is empty, and the timer driver to exit.
    pub(crate) fn stop_workers(&self) {
        self.parking.stop();
        self.timer_event.notify(usize::MAX);
    }

    /// The runtime dropped a driver (it was shut down): nothing will run any more. Stops
    /// accepting (later submissions fail with `RuntimeGone`), stops every task (their
    /// handles resolve), and tells the remaining drivers to exit. Idempotent.
    pub(crate) fn runtime_lost(&self) {
        if self.runtime_gone.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stop_accepting();
        drop(self.stop_all());
        self.stop_workers();
    }
}
