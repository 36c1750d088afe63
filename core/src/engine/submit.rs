//! The submission phase: checking a task, taking its budget charge and slot, publishing
//! it (rule 2) and queueing it or arming its start timer.

use std::borrow::Cow;
use std::boxed::Box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::vec::Vec;

use super::error::SubmitError;
use super::handle::TaskHandle;
use super::inner::{Inner, TASK_OVERHEAD, far_future};
use super::record::{Cold, Extra, Record};
use super::spec::{Limit, Spec, Start};
use super::task::{Job, Task};
use super::timers::Kind;
use crate::{MemoryBudget, Reservation, State, TaskId};

/// A slot and budget charge taken for a task that is not published yet.
struct Prepared<'a> {
    id: TaskId,
    record: &'a Record,
    charge: Reservation<&'a MemoryBudget>,
}

/// Why preparing a task failed (turned into a [`SubmitError`] carrying the task).
enum Refusal {
    Full,
    Budget { requested: usize },
    ShuttingDown,
    RuntimeGone,
    Invalid(Cow<'static, str>),
}

impl Refusal {
    fn into_error<T>(self, task: T, inner: &Inner) -> SubmitError<T> {
        match self {
            Refusal::Full => SubmitError::QueueFull {
                task,
                capacity: inner.config.capacity,
            },
            Refusal::Budget { requested } => SubmitError::BudgetExceeded {
                task,
                requested,
                budget: inner.budget.limit(),
            },
            Refusal::ShuttingDown => SubmitError::ShuttingDown { task },
            Refusal::RuntimeGone => SubmitError::RuntimeGone { task },
            Refusal::Invalid(reason) => SubmitError::InvalidSpec { task, reason },
        }
    }
}

impl Inner {
    /// Why the gate is closed.
    fn closed(&self) -> Refusal {
        if self.runtime_gone.load(Ordering::Acquire) {
            Refusal::RuntimeGone
        } else {
            Refusal::ShuttingDown
        }
    }

    /// Accepts `task` or gives it back.
    pub(crate) fn submit<J: Job>(
        self: &Arc<Self>,
        task: Task<J>,
    ) -> Result<TaskHandle<J::Output>, SubmitError<Task<J>>> {
        // Held until the task is published, so `stop_accepting` waits for it (gate rules).
        let Some(_pass) = self.admission.enter() else {
            return Err(self.closed().into_error(task, self));
        };
        match self.prepare(&task) {
            Ok(prepared) => Ok(self.publish(prepared, task)),
            Err(refusal) => Err(refusal.into_error(task, self)),
        }
    }

    /// Accepts every task of `tasks`, or none of them (all given back).
    #[allow(
        clippy::type_complexity,
        reason = "the error names the tasks it gives back"
    )]
    pub(crate) fn submit_batch<J: Job>(
        self: &Arc<Self>,
        tasks: Vec<Task<J>>,
    ) -> Result<Vec<TaskHandle<J::Output>>, SubmitError<Vec<Task<J>>>> {
        let Some(_pass) = self.admission.enter() else {
            return Err(self.closed().into_error(tasks, self));
        };
        let mut prepared = Vec::with_capacity(tasks.len());
        let mut refusal = None;
        for task in &tasks {
            match self.prepare(task) {
                Ok(one) => prepared.push(one),
                Err(why) => {
                    refusal = Some(why);
                    break;
                }
            }
        }
        match refusal {
            Some(why) => {
                // Nothing was published: give the slots back (their budget charges drop
                // with `prepared`).
                for one in &prepared {
                    self.records
                        .release(one.id)
                        .expect("an unpublished slot is ours to release");
                }
                // A budget refusal names what the whole batch needed.
                let why = match why {
                    Refusal::Budget { .. } => Refusal::Budget {
                        requested: tasks
                            .iter()
                            .map(Self::charge_of)
                            .fold(0, usize::saturating_add),
                    },
                    other => other,
                };
                Err(why.into_error(tasks, self))
            }
            None => Ok(prepared
                .into_iter()
                .zip(tasks)
                .map(|(one, task)| self.publish(one, task))
                .collect()),
        }
    }

    /// The bytes `task` is charged while it lives: its allocation, the bookkeeping, and
    /// the weight its submitter stated.
    fn charge_of<J: Job>(task: &Task<J>) -> usize {
        let weight = task.spec.as_ref().map_or(0, |spec| spec.weight);
        (J::erased_size() + TASK_OVERHEAD).saturating_add(weight)
    }

    /// Why `spec` cannot run, if it cannot.
    fn invalid(&self, spec: &Spec) -> Option<Cow<'static, str>> {
        if spec.timeout == Some(Duration::ZERO) {
            return Some("the timeout is 0 s".into());
        }
        if spec.store.and_then(|store| store.ttl) == Some(Duration::ZERO) {
            return Some("the result ttl is 0 s".into());
        }
        if let Some(every) = spec.every {
            if every.interval.is_zero() {
                return Some("the interval is 0 s".into());
            }
            if every.limit == Limit::Runs(0) {
                return Some("a recurring task set to run 0 times".into());
            }
        }
        if spec.on_error.is_some() && spec.retry.is_none() && self.config.retry.max_retries() == 0 {
            return Some(
                "an error handler with no retry policy, on a manager whose default retry \
                 policy allows no retries: the handler's Retry could never retry; set \
                 Task::retry (RetryPolicy::none() for a handler that only observes) or \
                 Builder::default_retry"
                    .into(),
            );
        }
        None
    }

    /// Checks `task` and takes its budget charge and slot, publishing nothing.
    fn prepare<J: Job>(&self, task: &Task<J>) -> Result<Prepared<'_>, Refusal> {
        if let Some(reason) = task.spec.as_deref().and_then(|spec| self.invalid(spec)) {
            return Err(Refusal::Invalid(reason));
        }
        let requested = Self::charge_of(task);
        let charge = self
            .budget
            .try_reserve(requested)
            .map_err(|_| Refusal::Budget { requested })?;
        let (id, record) = self.records.acquire().map_err(|_| Refusal::Full)?;
        Ok(Prepared { id, record, charge })
    }

    /// Makes a prepared task live: stores its job and settings, then queues it or arms
    /// its start timer.
    fn publish<J: Job>(
        self: &Arc<Self>,
        prepared: Prepared<'_>,
        task: Task<J>,
    ) -> TaskHandle<J::Output> {
        let Prepared { id, record, charge } = prepared;
        let Task {
            job,
            priority,
            spec,
        } = task;
        let spec = spec.map_or_else(Spec::default, |spec| *spec);
        let (job, completion) = job.erase();
        // One clock reading for the submission stamp and, if it is queued now, the start
        // of its dispatch latency.
        let stamp = self.clock.now();
        let now = self.clock.instant(stamp);
        let (start, first_due) = match spec.start {
            Start::Now => (None, now),
            Start::After(delay) => {
                let at = now.checked_add(delay).unwrap_or_else(|| far_future(now));
                (Some(at), at)
            }
            // A recurring schedule is anchored at `at`, even in the past.
            Start::At(at) => ((at > now).then_some(at), at),
        };
        // Written in place under the slot's lock: every field, so nothing of the slot's
        // previous task survives.
        // Given back by `finalize`, through the budget this engine owns.
        let charge = charge.detach();
        let rare = spec.on_error.is_some()
            || spec.store.is_some()
            || spec.every.is_some()
            || spec.retry.is_some()
            || spec.on_end.is_some()
            // A charge past 32 bits is kept with the extra settings.
            || u32::try_from(charge).is_err();
        let extra = rare.then(|| {
            Box::new(Extra {
                on_error: spec.on_error,
                on_end: spec.on_end,
                store: spec.store,
                every: spec.every,
                ..Extra::new(
                    spec.retry.unwrap_or(self.config.retry),
                    self.task_rng(id),
                    first_due,
                )
            })
        });
        // Only a subscriber pays for the label's copy.
        let told = self.events.on().then(|| spec.label.clone());
        record.reset(priority, |cold| {
            *cold = Cold {
                extra,
                attempt: spec.attempts_before,
                ..Cold::empty(stamp)
            };
            cold.set_timeout(spec.timeout.or(self.config.timeout));
            cold.set_label(spec.label);
            cold.set_charge(charge);
        });
        // Settle rule 1: counted before it is published.
        self.unfinished.add();
        if let Some(label) = told {
            let state = if start.is_some() {
                State::Scheduled
            } else {
                State::Queued
            };
            // Before it is published: no update of its worker comes first in its ring.
            self.tell_submitted(id, stamp, state, priority, label);
        }
        match start.map(|at| self.tick_at(at)) {
            None => {
                // SAFETY: rule 2, we acquired the slot and have not published it.
                unsafe { record.state.publish(job, State::Queued) };
                self.enqueue(id, record, stamp.nanos());
            }
            Some(tick) => {
                // SAFETY: rule 2, as above.
                unsafe { record.state.publish(job, State::Scheduled) };
                // Rule 1: the token passes to the timer entry.
                self.arm(id, tick, Kind::Wake);
            }
        }
        TaskHandle::new(id, completion, Arc::clone(self))
    }

    /// Pushes a `Queued` task's id (handing its token to the queue, rule 1) and wakes an
    /// idle worker if there is one. `ready` (nanoseconds since the epoch, read by the
    /// caller) is when it became ready: the start of its dispatch latency.
    pub(crate) fn enqueue(&self, id: TaskId, record: &Record, ready: u64) {
        record.ready_at.store(ready, Ordering::Relaxed);
        let priority = record.priority();
        if self.queue.push(id.index(), priority).is_err() {
            // Each live task has at most one queue entry and a level holds as many entries
            // as there are slots: a push cannot find its level full.
            unreachable!("a queue level holds as many entries as there are task slots");
        }
        // Parking rule 2: either the idle worker's re-check sees this push, or this sees
        // the worker idle and notifies it.
        self.parking.notify_work();
    }
}
