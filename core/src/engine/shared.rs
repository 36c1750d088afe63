//! The engine's shared state and every task operation: submit, claim, finish, cancel,
//! finalize, and the queries. Runtime-free: the worker loops in `driver.rs` call in here.

use std::boxed::Box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::vec::Vec;

use crossbeam_utils::CachePadded;
use event_listener::{Event, IntoNotification, Listener};

use super::context::Context;
use super::error::{CancelError, SubmitError, TaskError};
use super::handle::TaskHandle;
use super::history::History;
use super::job::{Completion, ErasedJob, Job, Outcome, Task};
use super::record::Record;
use super::snapshot::{Clock, Counts, TaskInfo};
use crate::{BoxedPriorityQueue, Entry, Event as TaskEvent, Mode, SlotTable, State, TaskId};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

/// The engine's counters (see [`Counts`]).
#[derive(Default)]
struct Stats {
    submitted: AtomicUsize,
    executed: AtomicUsize,
    succeeded: AtomicUsize,
    failed: AtomicUsize,
    cancelled: AtomicUsize,
    timed_out: AtomicUsize,
    stopped: AtomicUsize,
    panicked: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// How a task is being ended from outside its worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A user's cancel (counted as cancelled).
    Cancel,
    /// `stop_all` or a shutdown (counted as stopped).
    Shutdown,
}

/// Settings fixed at build time.
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) mode: Mode,
    pub(crate) history: usize,
}

/// A task a worker claimed: it won `Start` and owns the job until it applies an end event.
pub(crate) struct Claimed {
    pub(crate) id: TaskId,
    pub(crate) job: Box<dyn ErasedJob>,
    pub(crate) ctx: Context,
}

/// Everything the manager, its handles and its workers share.
pub(crate) struct Inner {
    records: SlotTable<Record, Box<[Entry<Record>]>>,
    queue: BoxedPriorityQueue<TaskId>,
    /// Workers registered as idle (about to wait, or waiting, on `work`).
    idle: CachePadded<AtomicUsize>,
    /// Notified when work arrives while a worker is idle, and when workers must stop.
    work: Event,
    accepting: AtomicBool,
    shutdown_initiated: AtomicBool,
    /// Workers exit once they find the queue empty.
    stopping: AtomicBool,
    /// Submissions between their `accepting` check and publishing the task.
    submitting: AtomicUsize,
    /// Accepted tasks that have not reached a terminal state.
    unfinished: AtomicUsize,
    /// Notified when `unfinished` drops to zero.
    settled: Event,
    history: History,
    stats: Stats,
    pub(crate) clock: Clock,
    pub(crate) config: Config,
}

impl Inner {
    pub(crate) fn new(config: Config) -> Self {
        let clock = Clock::new();
        Self {
            records: SlotTable::with_capacity(config.capacity, |_| Record::new(clock.epoch)),
            queue: BoxedPriorityQueue::with_capacity(config.capacity, config.mode),
            idle: CachePadded::new(AtomicUsize::new(0)),
            work: Event::new(),
            accepting: AtomicBool::new(true),
            shutdown_initiated: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            submitting: AtomicUsize::new(0),
            unfinished: AtomicUsize::new(0),
            settled: Event::new(),
            history: History::new(config.history),
            stats: Stats::default(),
            clock,
            config,
        }
    }

    pub(crate) fn record(&self, id: TaskId) -> Option<&Record> {
        self.records.get(id)
    }

    // ----- submission ---------------------------------------------------------------

    /// Accepts `task` or gives it back.
    pub(crate) fn submit<J: Job>(
        self: &Arc<Self>,
        task: Task<J>,
    ) -> Result<TaskHandle<J::Output>, SubmitError<Task<J>>> {
        // Counted before the check, so `stop_accepting` can wait for submissions that
        // passed it (SeqCst pairs with the store and load there).
        self.submitting.fetch_add(1, Ordering::SeqCst);
        let result = self.try_submit(task);
        self.submitting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn try_submit<J: Job>(
        self: &Arc<Self>,
        task: Task<J>,
    ) -> Result<TaskHandle<J::Output>, SubmitError<Task<J>>> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown { task });
        }
        let Ok((id, record)) = self.records.acquire() else {
            return Err(SubmitError::QueueFull {
                task,
                capacity: self.config.capacity,
            });
        };
        let Task { job, spec } = task;
        let completion = Arc::new(Completion::new());
        let job = job.erase(Arc::clone(&completion));
        let now = Instant::now();
        record.reset(Record::cold(spec.label, spec.priority, now));
        self.unfinished.fetch_add(1, Ordering::Relaxed);
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        // SAFETY: rule 2, we acquired the slot and have not published it.
        unsafe { record.publish(job, State::Queued) };
        self.enqueue(id, spec.priority);
        Ok(TaskHandle::new(id, completion, Arc::clone(self)))
    }

    /// Pushes a `Queued` task's id (handing its token to the queue, rule 1) and wakes an
    /// idle worker if there is one.
    fn enqueue(&self, id: TaskId, priority: crate::Priority) {
        if self.queue.push(id, priority).is_err() {
            // Each live task has at most one queue entry and a level holds as many entries
            // as there are slots: a push cannot find its level full.
            unreachable!("a queue level holds as many entries as there are task slots");
        }
        // Pairs with the fence in `Worker::park`: either the worker's re-check sees this
        // push, or this load sees the worker idle (the store-buffering pattern).
        fence(Ordering::SeqCst);
        if self.idle.load(Ordering::Relaxed) > 0 {
            self.work.notify(1.additional());
        }
    }

    // ----- workers ------------------------------------------------------------------

    /// Takes the next startable task off the queue, finalizing cancelled entries on the
    /// way; `None` when the queue is empty.
    pub(crate) fn claim(self: &Arc<Self>) -> Option<Claimed> {
        loop {
            let (id, _level) = self.queue.pop()?;
            // Rule 1: the queue entry is the task's token, so the slot is still this task's.
            let record = self.records.get(id).expect("a queued task's slot is live");
            match record.state.apply(TaskEvent::Start) {
                Ok(_) => {
                    // SAFETY: rule 3, we won `Start`.
                    let job = unsafe { record.take_job() }.expect("a queued task has its job");
                    let attempt = {
                        let mut cold = record.lock();
                        cold.attempt += 1;
                        cold.started_at = Some(Instant::now());
                        cold.attempt
                    };
                    let running = self.stats.running.fetch_add(1, Ordering::Relaxed) + 1;
                    self.stats.peak.fetch_max(running, Ordering::Relaxed);
                    let ctx = Context::new(Arc::clone(self), id, attempt);
                    return Some(Claimed { id, job, ctx });
                }
                // Cancelled while queued: the canceller completed the handle; we hold the
                // token, so we finalize (rule 1).
                Err(_) => self.finalize(id, record),
            }
        }
    }

    /// Ends an attempt: applies its outcome to the state cell (or learns what beat it),
    /// publishes the result to the handle and finalizes the task.
    ///
    /// `job` is `None` when the runtime lost it (its drop resolved the handle already).
    pub(crate) fn finish(&self, id: TaskId, job: Option<Box<dyn ErasedJob>>, outcome: Outcome) {
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        self.stats.executed.fetch_add(1, Ordering::Relaxed);
        let record = self.records.get(id).expect("a running task's slot is live");
        if let Err(error) = &outcome {
            if error.panic_message().is_some() {
                self.stats.panicked.fetch_add(1, Ordering::Relaxed);
            }
        }
        let event = if outcome.is_ok() {
            TaskEvent::Succeed
        } else {
            TaskEvent::Fail
        };
        match record.state.apply(event) {
            Ok(_) => {
                let counter = if outcome.is_ok() {
                    &self.stats.succeeded
                } else {
                    &self.stats.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                {
                    let mut cold = record.lock();
                    cold.finished_at = Some(Instant::now());
                    if let Err(error) = &outcome {
                        cold.error = Some(std::string::ToString::to_string(error));
                    }
                }
                if let Some(job) = job {
                    job.complete(outcome);
                }
                self.settle();
            }
            // A cancel or timeout won while the attempt ran (state rules 1-2): the winner
            // counted and settled the task; its outcome is discarded.
            Err(lost) => {
                if let Some(job) = job {
                    job.complete(Err(TaskError::for_state(lost.state())));
                }
            }
        }
        self.finalize(id, record);
    }

    /// Ends the use of a slot: records the task in the history and releases the slot.
    /// Only the token holder calls it, once (rule 1).
    fn finalize(&self, id: TaskId, record: &Record) {
        let mut cold = record.lock();
        let state = record.state.load();
        debug_assert!(state.is_terminal());
        if cold.finished_at.is_none() {
            cold.finished_at = Some(Instant::now());
        }
        self.history.push(self.clock.info(id, state, &cold));
        // Rule 4: released under the cold lock.
        self.records
            .release(id)
            .expect("the token holder releases the slot once");
    }

    /// One fewer unfinished task.
    fn settle(&self) {
        if self.unfinished.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settled.notify(usize::MAX);
        }
    }

    /// Parks an idle worker until work may have arrived. Returns `false` when the worker
    /// should exit (stopping, and the queue was seen empty).
    pub(crate) fn idle_listener(&self) -> Idle<'_> {
        self.idle.fetch_add(1, Ordering::SeqCst);
        let listener = self.work.listen();
        // Pairs with the fence in `enqueue` (see there).
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.idle.fetch_sub(1, Ordering::Relaxed);
            return Idle::Work;
        }
        if self.stopping.load(Ordering::SeqCst) {
            self.idle.fetch_sub(1, Ordering::Relaxed);
            return Idle::Exit;
        }
        Idle::Wait(listener, IdleToken(&self.idle))
    }

    // ----- control ------------------------------------------------------------------

    /// Cancels live task `id` on behalf of a user (`Stop::Cancel`) or a shutdown.
    fn stop(&self, id: TaskId, how: Stop) -> Result<State, CancelError> {
        let record = self.records.get(id).ok_or(CancelError::Unknown { id })?;
        let cold = record.lock();
        // Rule 4: under the cold lock the slot cannot be released; check it is still ours.
        if !self.records.contains(id) {
            drop(cold);
            return Err(match self.history.find(id) {
                Some(info) => CancelError::Finished {
                    id,
                    state: info.state,
                },
                None => CancelError::Unknown { id },
            });
        }
        let step = record
            .state
            .apply(TaskEvent::Cancel)
            .map_err(|lost| CancelError::Finished {
                id,
                state: lost.state(),
            })?;
        drop(cold);
        let counter = match how {
            Stop::Cancel => &self.stats.cancelled,
            Stop::Shutdown => &self.stats.stopped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if step.from == State::Running {
            // The worker owns the job; tell it (cooperative for blocking work, the future
            // is dropped for async work).
            record.signal.raise();
        } else {
            // SAFETY: rule 3, we won `Cancel` from a waiting state.
            if let Some(job) = unsafe { record.take_job() } {
                job.complete(Err(TaskError::cancelled()));
            }
            record.lock().finished_at = Some(Instant::now());
        }
        self.settle();
        Ok(step.from)
    }

    pub(crate) fn cancel(&self, id: TaskId) -> Result<(), CancelError> {
        self.stop(id, Stop::Cancel).map(drop)
    }

    /// The state of task `id`: live, or in the history.
    pub(crate) fn status(&self, id: TaskId) -> Option<State> {
        if let Some(record) = self.records.get(id) {
            let _cold = record.lock();
            if self.records.contains(id) {
                return Some(record.state.load());
            }
        }
        self.history.find(id).map(|info| info.state)
    }

    /// The snapshot of task `id`: live, or in the history.
    pub(crate) fn info(&self, id: TaskId) -> Option<TaskInfo> {
        if let Some(record) = self.records.get(id) {
            let cold = record.lock();
            if self.records.contains(id) {
                return Some(self.clock.info(id, record.state.load(), &cold));
            }
        }
        self.history.find(id)
    }

    /// Snapshots of every live task that has not ended (queued, scheduled, retrying or
    /// running). O(capacity).
    pub(crate) fn active(&self) -> Vec<TaskInfo> {
        (0..self.records.capacity())
            .filter_map(|index| self.records.id_at(index))
            .filter_map(|id| self.info(id))
            .filter(|info| !info.state.is_terminal())
            .collect()
    }

    pub(crate) fn progress(
        &self,
        id: TaskId,
        percent: f64,
        message: Option<std::string::String>,
    ) -> bool {
        let Some(record) = self.records.get(id) else {
            return false;
        };
        let mut cold = record.lock();
        if !self.records.contains(id) || record.state.load().is_terminal() {
            return false;
        }
        cold.progress = percent;
        cold.message = message;
        true
    }

    /// Whether `id`'s attempt should stop: its signal is raised, or the task is no longer
    /// live (a context that outlived its task).
    pub(crate) fn is_cancelled(&self, id: TaskId) -> bool {
        match self.records.get(id) {
            // Read the flag, then check the slot is still this task's: if it is, the flag
            // was this task's when read.
            Some(record) => record.signal.is_raised() || !self.records.contains(id),
            None => true,
        }
    }

    pub(crate) fn stop_accepting(&self) {
        self.shutdown_initiated.store(true, Ordering::SeqCst);
        self.accepting.store(false, Ordering::SeqCst);
        // Submissions that passed the check before the store finish publishing first, so
        // a `stop_all` after this sees them. They are short (no user code runs in them).
        while self.submitting.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    pub(crate) fn is_shutdown_initiated(&self) -> bool {
        self.shutdown_initiated.load(Ordering::SeqCst)
    }

    /// Blocks until every accepted task has ended or `timeout` passes; `true` if all ended.
    pub(crate) fn wait_for_completion(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.unfinished.load(Ordering::Acquire) == 0 {
                return true;
            }
            let listener = self.settled.listen();
            if self.unfinished.load(Ordering::Acquire) == 0 {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    if listener.wait_deadline(deadline).is_none() {
                        return self.unfinished.load(Ordering::Acquire) == 0;
                    }
                }
                None => listener.wait(),
            }
        }
    }

    /// Cancels every live task (counted as stopped), returning their snapshots as they
    /// were just before.
    pub(crate) fn stop_all(&self) -> Vec<TaskInfo> {
        let mut stopped = Vec::new();
        for index in 0..self.records.capacity() {
            let Some(id) = self.records.id_at(index) else {
                continue;
            };
            let Some(before) = self.info(id) else {
                continue;
            };
            if before.state.is_terminal() {
                continue;
            }
            if let Ok(from) = self.stop(id, Stop::Shutdown) {
                stopped.push(TaskInfo {
                    state: from,
                    ..before
                });
            }
        }
        stopped
    }

    /// Tells the workers to exit once the queue is empty.
    pub(crate) fn stop_workers(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.work.notify(usize::MAX);
    }

    pub(crate) fn counts(&self) -> Counts {
        let get = |counter: &AtomicUsize| counter.load(Ordering::Relaxed) as u64;
        let stats = &self.stats;
        Counts {
            submitted: get(&stats.submitted),
            executed: get(&stats.executed),
            succeeded: get(&stats.succeeded),
            failed: get(&stats.failed),
            cancelled: get(&stats.cancelled),
            timed_out: get(&stats.timed_out),
            stopped: get(&stats.stopped),
            panicked: get(&stats.panicked),
            peak_concurrency: get(&stats.peak),
        }
    }

    /// Live tasks right now (queued, scheduled, running, and ended ones not yet reclaimed).
    pub(crate) fn live(&self) -> usize {
        self.records.len()
    }
}

/// What an idle worker should do.
pub(crate) enum Idle<'a> {
    /// Work arrived while registering: go claim it.
    Work,
    /// Stopping and nothing queued: return.
    Exit,
    /// Wait on the listener (blocking or `.await`), then drop the token and claim again.
    Wait(event_listener::EventListener, IdleToken<'a>),
}

/// A worker's registration as idle; unregisters it when dropped.
pub(crate) struct IdleToken<'a>(&'a AtomicUsize);

impl Drop for IdleToken<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
