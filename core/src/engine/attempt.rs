//! The attempt phase: a worker claims a queued task, runs it (in `driver.rs`), and ends
//! the attempt here: a retry, the next run of a schedule, or the task's end, published to
//! its handle and recorded.

use std::boxed::Box;
use std::string::{String, ToString};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cell::{JobRef, Outcome, Shell};
use super::clock::Stamp;
use super::context::{Context, Host};
use super::ending::{Ending, OnEnd};
use super::error::TaskError;
use super::guard::{self, Notes};
use super::inner::{Inner, Seat, ceil_ms, far_future, lock};
use super::record::{Cold, DETACHED, Extra, INLINE, Record, STOPPED};
use super::spec::{Limit, MissedTicks, Overlap, Store};
use super::timers::Kind;
use crate::{Event as TaskEvent, Level, MemoryBudget, RetryDecision, State, TaskId};

/// A task a worker claimed: it won `Start` and owns the job until it applies an end event.
pub(crate) struct Claimed {
    pub(crate) meta: AttemptMeta,
    pub(crate) job: JobRef,
    /// The attempt's context: lent to a blocking job, given to an async job's future
    /// when it starts.
    pub(crate) ctx: Option<Context>,
    /// The attempt's span (id, label, priority, attempt), entered while its code runs.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

/// What the engine needs to end an attempt, apart from its job.
#[derive(Clone, Copy)]
pub(crate) struct AttemptMeta {
    pub(crate) id: TaskId,
    /// Which attempt this is (1 for the first).
    attempt: u32,
    /// The queue level it was dispatched from (its execution time is recorded there).
    level: Level,
    /// When it started, in nanoseconds since the epoch.
    started: u64,
    /// The timer shard holding this attempt's timeout entry, if one was armed.
    timed: Option<usize>,
    /// Whether the task is recurring (it has a schedule to consult after a success).
    recurring: bool,
    /// Where a success's value is stored, if it is.
    store: Option<Store>,
}

/// How an attempt ended, for the worker that ran it.
#[must_use]
pub(crate) struct End {
    /// The task's emptied cell, if nothing else refers to it (the worker frees it in a
    /// batch).
    pub(crate) shell: Option<Shell>,
    /// Whether this worker should exit: its attempt had been detached and a replacement
    /// worker took its place meanwhile (rule 9).
    pub(crate) retire: bool,
    /// When the attempt ended (nanoseconds since the epoch), as the worker read the clock
    /// for its execution time: the start of its next attempt, if it claims one right away
    /// (one reading per task boundary on a busy worker).
    pub(crate) at: Option<u64>,
}

impl End {
    pub(crate) const NONE: End = End {
        shell: None,
        retire: false,
        at: None,
    };
}

/// Where a recurring task goes after a successful run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// It is over: it succeeds.
    Done,
    /// Its next run is already due.
    Now,
    /// Its next run is due then.
    At(Instant),
}

impl Inner {
    /// Takes the next startable task off the queue, finalizing cancelled entries on the
    /// way; `None` when the queue is empty. `inline`: a blocking job will run on this
    /// worker's own thread (rather than on a runtime's blocking pool). `now`: the clock as
    /// the worker's previous attempt ended, if it claims right after it.
    pub(crate) fn claim(&self, seat: &Seat, inline: bool, now: Option<u64>) -> Option<Claimed> {
        let mut now = now;
        loop {
            let (index, level) = self.queue.pop()?;
            // Rule 1: the queue entry is the task's token, so the slot is still this task's
            // and its live id is the queued task's.
            let id = self
                .records
                .id_at(index as usize)
                .expect("a queued task's slot is live");
            let record = self.records.get(id).expect("a queued task's slot is live");
            // Rule 8: the cold lock is taken before `Start` and held until the latch is
            // stored, so whoever ends the task once it runs, and then takes the lock, finds
            // the latch of a blocking attempt set (taken after `Start`, a cancel landing
            // in between found no latch, and its handle waited for the closure).
            let mut cold = record.lock();
            // Rule 3: winning `Start` hands us the job (handoff rule 2).
            let Ok(taken) = record.state.apply(TaskEvent::Start) else {
                drop(cold);
                // Cancelled while queued: the canceller completed the handle; we hold the
                // token, so we finalize (rule 1).
                self.finalize(id, record);
                continue;
            };
            // One clock reading (or the previous attempt's end) for the dispatch latency,
            // the start stamp and the timeout's start.
            let started = now.take().unwrap_or_else(|| self.now_ns());
            let started_stamp = Stamp::from_nanos(started);
            let ready = record.ready_at.load(Ordering::Relaxed);
            self.stats.mine().dispatch[level.index()]
                .record(started_stamp.nanos().saturating_sub(ready));
            let job = taken.value.expect("a queued task has its job");
            // Rule 8: a blocking attempt's latch, for a timeout or cancel to resolve the
            // handle while the closure runs.
            let latch = (!job.is_async()).then(|| job.latch());
            // The attempt's one look at the cold data: what its end will need is copied out
            // (none of it changes while the task lives).
            let (attempt, timeout, recurring, store, job_id) = {
                cold.attempt = cold.attempt.saturating_add(1);
                cold.started_at = Some(started_stamp);
                seat.desk.set_latch(latch);
                cold.tenure.set_desk(Arc::clone(&seat.desk));
                record.set_flags(if inline { INLINE } else { 0 });
                let (recurring, store, job_id) =
                    cold.extra.as_ref().map_or((false, None, 0), |extra| {
                        (
                            extra.every.is_some(),
                            extra.store,
                            extra.on_end.as_ref().map_or(0, |hook| hook.job()),
                        )
                    });
                (cold.attempt, cold.timeout(), recurring, store, job_id)
            };
            drop(cold);
            #[cfg(feature = "tracing")]
            let span = attempt_span(id, record, attempt);
            let timed = match timeout {
                Some(timeout) => {
                    let tick = started.div_ceil(1_000_000).saturating_add(ceil_ms(timeout));
                    Some(self.arm(id, tick, Kind::Timeout))
                }
                None => None,
            };
            self.tally.start();
            self.tell_started(id, started, attempt);
            let host: Arc<dyn Host> = seat.clone();
            return Some(Claimed {
                meta: AttemptMeta {
                    id,
                    attempt,
                    level,
                    started,
                    timed,
                    recurring,
                    store,
                },
                job,
                ctx: Some(Context::new(host, id, attempt, job_id)),
                #[cfg(feature = "tracing")]
                span,
            });
        }
    }

    /// Ends an attempt: decides about a failure (retry or not), applies the result to the
    /// state cell (or learns what beat it), publishes it to the handle, finalizes.
    pub(crate) fn finish(&self, claimed: Claimed, outcome: Outcome) -> End {
        let Claimed { meta, job, ctx, .. } = claimed;
        drop(ctx);
        let at = self.end_attempt(&meta, &outcome);
        let end = self.end(meta, job, outcome, at);
        End {
            at: Some(at),
            ..end
        }
    }

    /// The rest of [`finish`](Self::finish), once the attempt's bookkeeping is done; `at`
    /// is when the attempt ended.
    fn end(&self, meta: AttemptMeta, job: JobRef, outcome: Outcome, at: u64) -> End {
        let id = meta.id;
        let ended = Some(Stamp::from_nanos(at));
        let record = self.records.get(id).expect("a running task's slot is live");
        if record.state.load() != State::Running {
            // A cancel or timeout already ended the task (the attempt saw its signal, or
            // was detached): no retry decision, no next run; `conclude` learns the
            // winner's state.
            let event = if outcome.is_ok() {
                TaskEvent::Succeed
            } else {
                TaskEvent::Fail
            };
            return self.conclude(id, record, job, event, outcome, None, None, ended);
        }
        match outcome {
            Ok(()) => match if meta.recurring {
                self.next_run(record, self.clock.instant(Stamp::from_nanos(meta.started)))
            } else {
                Next::Done
            } {
                Next::Done => self.conclude(
                    id,
                    record,
                    job,
                    TaskEvent::Succeed,
                    Ok(()),
                    None,
                    meta.store,
                    ended,
                ),
                next => self.reschedule(id, record, job, next),
            },
            Err(error) => match self.decide(id, record, &error, meta.attempt) {
                Some(delay) => self.retry(id, record, job, delay, error),
                None => self.conclude(
                    id,
                    record,
                    job,
                    TaskEvent::Fail,
                    Err(error),
                    None,
                    None,
                    ended,
                ),
            },
        }
    }

    /// Ends an attempt the runtime dropped before it ended (its blocking closure dropped
    /// unrun, or its worker dropped mid-attempt with the runtime): the task fails, with no
    /// retry, and its handle resolves.
    pub(crate) fn lost(&self, claimed: Claimed) -> End {
        let Claimed { meta, job, ctx, .. } = claimed;
        drop(ctx);
        let error = TaskError::failed("the runtime dropped the attempt before it ended");
        self.end_attempt(&meta, &Ok(()));
        let record = self
            .records
            .get(meta.id)
            .expect("a running task's slot is live");
        let text = Some(error.to_string());
        self.conclude(
            meta.id,
            record,
            job,
            TaskEvent::Fail,
            Err(error),
            text,
            None,
            None,
        )
    }

    /// Bookkeeping common to every attempt's end; when it ended (one clock reading, in
    /// nanoseconds since the epoch).
    fn end_attempt(&self, meta: &AttemptMeta, outcome: &Outcome) -> u64 {
        if let Some(shard) = meta.timed {
            // The timeout entry is ours to remove before the slot changes hands again.
            self.lock_timers(shard)
                .wheel
                .cancel(meta.id.index() as usize);
        }
        self.tally.running.fetch_sub(1, Ordering::Relaxed);
        let shard = self.stats.mine();
        shard.executed.inc();
        let at = self.now_ns();
        shard.execution[meta.level.index()].record(at.saturating_sub(meta.started));
        if let Err(error) = outcome {
            if error.panic_message().is_some() {
                shard.panicked.inc();
            }
        }
        at
    }

    /// The text of `error` for the task's snapshot. Its `Display` is the task's code, so
    /// it runs under the guard.
    fn describe(&self, error: &TaskError) -> String {
        guard::run(|| error.to_string()).unwrap_or_else(|caught| {
            self.stats.mine().panicked.inc();
            std::format!("(the error's Display panicked: {})", caught.message())
        })
    }

    /// Whether (and after how long) a failed attempt is retried: the error handler's
    /// decision (if any), bounded by the retry policy.
    fn decide(
        &self,
        id: TaskId,
        record: &Record,
        error: &TaskError,
        attempt: u32,
    ) -> Option<Duration> {
        let text = self.describe(error);
        let handler = {
            let mut cold = record.lock();
            // Rule 8: the job may go back to the cell next; the desk goes first.
            cold.leave();
            cold.set_error(text.into());
            cold.extra.as_ref().and_then(|extra| extra.on_error.clone())
        };
        let decision = match handler {
            None => RetryDecision::Retry,
            // User code: never under a lock, and a panic in it is the task's failure.
            Some(handler) => guard::run(|| handler(id, error, attempt)).unwrap_or_else(|caught| {
                self.stats.mine().panicked.inc();
                record.lock().note(&std::format!(
                    "the error handler panicked: {}",
                    caught.message()
                ));
                RetryDecision::Fail
            }),
        };
        if decision == RetryDecision::Fail {
            return None;
        }
        let mut cold = record.lock();
        if cold.extra.is_none() {
            if self.config.retry.max_retries() == 0 {
                return None;
            }
            // A plain task under a retrying default: its retry state starts now.
            let started = self.clock.instant(cold.submitted_at);
            cold.extra = Some(Box::new(Extra::new(
                self.config.retry,
                self.task_rng(id),
                started,
            )));
        }
        let extra = cold.extra.as_mut().expect("made just above");
        match decision {
            RetryDecision::Fail => None,
            RetryDecision::Retry => extra.next_retry(),
            RetryDecision::RetryAfter(delay) => extra.next_retry().map(|_| delay),
        }
    }

    /// Where a recurring task's schedule goes after a successful run that started at
    /// `started` (see [`Every`](super::Every), [`Overlap`] and [`MissedTicks`]). An
    /// unlimited schedule never ends by itself: its tick count is a `u64`, and a due time
    /// past what an `Instant` holds is "far away", not the end.
    fn next_run(&self, record: &Record, started: Instant) -> Next {
        let mut cold = record.lock();
        // Rule 8: the job may go back to the cell next; the desk goes first.
        cold.leave();
        let Cold { extra, .. } = &mut *cold;
        let Some(extra) = extra.as_deref_mut() else {
            return Next::Done;
        };
        let Some(every) = extra.every else {
            return Next::Done;
        };
        extra.runs = extra.runs.saturating_add(1);
        if let Limit::Runs(limit) = every.limit {
            if extra.runs >= u64::from(limit) {
                return Next::Done;
            }
        }
        let end = Instant::now();
        let (first, tick) = (extra.first_due, extra.tick);
        // Ticks due by the run's start (missed while it waited) and by its end (come
        // while it ran).
        let by_start = every.ticks_by(first, started).max(tick);
        let by_end = every.ticks_by(first, end).max(by_start);
        let next = if every.missed == MissedTicks::Burst && by_start > tick {
            tick.saturating_add(1)
        } else if every.overlap == Overlap::Queue && by_end > by_start {
            by_end
        } else {
            by_end.saturating_add(1)
        };
        let due = every.due(first, next);
        if let Limit::Until(deadline) = every.limit {
            if due.is_none_or(|due| due > deadline) {
                return Next::Done;
            }
        }
        extra.tick = next;
        match due {
            Some(due) if due <= end => Next::Now,
            Some(due) => Next::At(due),
            None => Next::At(far_future(end)),
        }
    }

    /// Sends a recurring task back to wait for its next run.
    fn reschedule(&self, id: TaskId, record: &Record, job: JobRef, next: Next) -> End {
        // SAFETY: rule 3, we took the job by winning `Start` and applied no event since.
        if let Err((_, job)) = unsafe { record.state.apply_returning(TaskEvent::Reschedule, job) } {
            // A cancel or timeout won while the run ran: we got the job back (rule 3); the
            // `Fail` below loses too and the handle learns the winner's state.
            return self.conclude(
                id,
                record,
                job,
                TaskEvent::Fail,
                Err(TaskError::cancelled()),
                None,
                None,
                None,
            );
        }
        self.tell_rescheduled(
            id,
            match next {
                Next::At(due) => Some(due),
                _ => None,
            },
        );
        match next {
            Next::At(due) => {
                self.arm(id, self.tick_at(due), Kind::Wake);
            }
            // Still our token: queue it now, unless a cancel won from `Scheduled`.
            _ => self.requeue(id, record),
        }
        End::NONE
    }

    /// Queues a waiting task whose token we hold, unless a cancel won meanwhile.
    fn requeue(&self, id: TaskId, record: &Record) {
        if record.state.apply(TaskEvent::Due).is_ok() {
            self.enqueue(id, record, self.now_ns());
        } else {
            self.finalize(id, record);
        }
    }

    /// Sends a failed attempt back to wait for its retry.
    fn retry(
        &self,
        id: TaskId,
        record: &Record,
        job: JobRef,
        delay: Duration,
        error: TaskError,
    ) -> End {
        // SAFETY: rule 3, we took the job by winning `Start` and applied no event since.
        if let Err((_, job)) = unsafe { record.state.apply_returning(TaskEvent::Retry, job) } {
            // A cancel or timeout won while the attempt ran: we got the job back (rule 3);
            // end as that state says.
            return self.conclude(
                id,
                record,
                job,
                TaskEvent::Fail,
                Err(error),
                None,
                None,
                None,
            );
        }
        self.stats.mine().retried.inc();
        if self.events.on() || cfg!(feature = "tracing") {
            let (attempt, text) = {
                let cold = record.lock();
                (cold.attempt, cold.error().map(Box::<str>::from))
            };
            self.tell_retrying(id, attempt, text.as_deref(), delay);
        }
        // The attempt's error is the task's code (its own error type) to drop.
        let mut notes = Notes::new();
        notes.check("dropping the attempt's error", guard::drop(error));
        self.note(id, notes);
        if delay.is_zero() {
            self.requeue(id, record);
        } else {
            let tick = self
                .now_tick()
                .saturating_add(1)
                .saturating_add(ceil_ms(delay));
            // Rule 1: the token passes to the timer entry.
            self.arm(id, tick, Kind::Wake);
        }
        End::NONE
    }

    /// Applies an end `event` and publishes the result (storing a success's value in
    /// `store`, recording a failure's `text` unless `decide` did, and `ended` as its end),
    /// or learns what beat it; finalizes (the worker holds the token).
    #[allow(
        clippy::too_many_arguments,
        reason = "one end, many facets; all of them needed"
    )]
    fn conclude(
        &self,
        id: TaskId,
        record: &Record,
        job: JobRef,
        event: TaskEvent,
        result: Outcome,
        text: Option<String>,
        store: Option<Store>,
        ended: Option<Stamp>,
    ) -> End {
        let mut job = job;
        let mut notes = Notes::new();
        match record.state.apply(event) {
            Ok(step) => {
                let shard = self.stats.mine();
                let counter = if result.is_ok() {
                    &shard.succeeded
                } else {
                    &shard.failed
                };
                counter.inc();
                // Stored before the handle learns the end, so the handle's owner finds it.
                if let (Ok(()), Some(store)) = (&result, store) {
                    self.store_result(id, &mut job, store, &mut notes);
                }
                // One lock for the end: the latch (rule 8), the error, the history entry,
                // the slot's release. The history has the task before its handle learns
                // the end (a status asked after `wait` finds it), and before it settles
                // (once `wait_for_completion` sees it settled, it is in the history).
                let hook = {
                    let mut cold = record.lock();
                    cold.leave();
                    if let Some(ended) = ended {
                        cold.tenure.set_end(ended);
                    }
                    if let Some(text) = text {
                        cold.set_error(text.into());
                    }
                    self.note_locked(&mut cold, core::mem::take(&mut notes));
                    if self.events.on() || cfg!(feature = "tracing") {
                        let error = (step.transition.to != State::Succeeded)
                            .then_some(cold.error())
                            .flatten();
                        self.tell_ended(id, step.transition.to, cold.attempt, error, ended);
                    }
                    let hook = cold.take_hook();
                    self.finalize_locked(id, record, &mut cold);
                    hook
                };
                if let Some(hook) = hook {
                    tell_end(&hook, &mut job, &result, false);
                }
                let shell = job.complete(result, &mut notes);
                // Panics in the drops after the end go to the history entry.
                self.note(id, notes);
                self.settle();
                End { shell, ..End::NONE }
            }
            // A cancel or timeout won while the attempt ran (state rules 1-2): the winner
            // counted and settled the task; the attempt's result is discarded (if the
            // attempt was detached, its handle was resolved by the winner already).
            Err(lost) => {
                let (flags, hook) = {
                    let mut cold = record.lock();
                    // Rule 8: before the job completes.
                    cold.leave();
                    (record.flags(), cold.take_hook())
                };
                let ended = Err(TaskError::for_state(lost.state()));
                if let Some(hook) = hook {
                    tell_end(&hook, &mut job, &ended, flags & STOPPED != 0);
                }
                let shell = job.complete(ended, &mut notes);
                {
                    let mut cold = record.lock();
                    self.note_locked(&mut cold, notes);
                    if flags & DETACHED != 0 {
                        // The detached closure returned: counted off before its slot is
                        // released, so a wait for detached closures sees both at once.
                        record.set_flags(record.flags() & !DETACHED);
                        self.detached.fetch_sub(1, Ordering::AcqRel);
                    }
                    self.finalize_locked(id, record, &mut cold);
                }
                End {
                    shell,
                    retire: self.unstick(flags),
                    at: None,
                }
            }
        }
    }

    /// A detached attempt's closure returned and its task is finalized: if it ran inline,
    /// its worker is no longer stuck, and retires if a replacement took its place
    /// (rule 9).
    fn unstick(&self, flags: u8) -> bool {
        if flags & DETACHED == 0 || flags & INLINE == 0 {
            return false;
        }
        let mut pool = lock(&self.pool);
        pool.stuck -= 1;
        if pool.extra > pool.stuck {
            pool.extra -= 1;
            true
        } else {
            false
        }
    }

    /// Copies a succeeded task's value into the result store, if the budget has room.
    fn store_result(&self, id: TaskId, job: &mut JobRef, store: Store, notes: &mut Notes) {
        let Some(cloned) = job.clone_staged(store.clone) else {
            return;
        };
        let Some((value, bytes)) = notes.check("cloning the result for the store", cloned) else {
            return;
        };
        let Ok(charge) = MemoryBudget::try_reserve_owned(&self.budget, bytes) else {
            // Not stored: the budget is spent. The rejection shows in the budget's counts.
            let mut dropped = Notes::new();
            dropped.check("dropping the stored copy", guard::drop(value));
            notes.merge(dropped);
            return;
        };
        let ttl = store.ttl.unwrap_or(self.config.result_ttl);
        let now = Instant::now();
        let expires = now.checked_add(ttl).unwrap_or_else(|| far_future(now));
        if self.results.insert(id, value, expires, charge) {
            self.timer_event.notify(1);
        }
    }
}

/// Tells `hook` how the attempt holding `job` ended: with its staged value on success.
fn tell_end(hook: &Arc<dyn OnEnd>, job: &mut JobRef, result: &Outcome, stopped: bool) {
    match result {
        Ok(()) => {
            let mut told = false;
            job.inspect_staged(&mut |value| {
                told = true;
                hook.ended(Ending {
                    state: State::Succeeded,
                    stopped,
                    value: Some(value),
                    error: None,
                });
            });
            if !told {
                hook.ended(Ending {
                    state: State::Succeeded,
                    stopped,
                    value: None,
                    error: None,
                });
            }
        }
        Err(error) => hook.ended(Ending {
            state: error.state(),
            stopped,
            value: None,
            error: Some(error),
        }),
    }
}

/// The span of attempt `attempt` of task `id` (its label copied only if the span is on).
#[cfg(feature = "tracing")]
fn attempt_span(id: TaskId, record: &Record, attempt: u32) -> tracing::Span {
    let span = tracing::info_span!(
        "errand.attempt",
        task = %id,
        label = tracing::field::Empty,
        priority = record.priority().0,
        attempt,
    );
    if !span.is_disabled() {
        if let Some(label) = record.lock().label() {
            span.record("label", label);
        }
    }
    span
}
