//! The main loop's side: submitting, running and cancelling tasks.

use core::sync::atomic::Ordering;

use errand_core::{Event, Jitter, Level, RetryPolicy, SplitMix64, State, TaskId};

use super::task::{Outcome, perform};
use super::{DISPATCHED, Job, Refusal, Rejected, Shared, TICK_HZ, Task, Work, ticks};

/// What running a task once led to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    /// It succeeded; its slot and bytes are given back.
    Succeeded,
    /// It failed with no retry left; its slot and bytes are given back.
    Failed,
    /// It failed and waits `delay_ns` for its next attempt, due at tick `due`.
    Retrying {
        /// The policy's delay for this retry.
        delay_ns: u64,
        /// The tick its timer is set for.
        due: u32,
    },
    /// It yielded and runs again at tick `due`.
    Rescheduled {
        /// The tick its timer is set for.
        due: u32,
    },
    /// It was not run: its state was this (it was cancelled while queued).
    Skipped(State),
    /// Its id was stale (cannot happen here).
    Stale,
}

/// One dispatch of the main loop: which task ran, when, and how it ended.
#[derive(Clone, Copy, Debug)]
pub struct Ran {
    /// The task.
    pub id: TaskId,
    /// The queue level it was popped from.
    pub level: Level,
    /// What it does.
    pub work: Work,
    /// Its argument.
    pub arg: u32,
    /// The tick it started at.
    pub at: u32,
    /// The tick its timer was last set for (0 if it never had one).
    pub due: u32,
    /// Tasks dispatched between the moment it was made ready and its own dispatch.
    pub overtaken_by: u16,
    /// This attempt's number (the first is 1).
    pub attempt: u8,
    /// Its progress after the run, in percent.
    pub progress: u8,
    /// How it ended.
    pub end: End,
}

/// The main loop's side: submits, runs and cancels tasks. Not shared with the handler.
#[derive(Debug)]
pub struct Executor {
    shared: &'static Shared,
    /// Retry policy of `Doomed` work: no jitter, so delays are exact.
    exact: RetryPolicy,
    /// Retry policy of `Flaky` work: equal jitter from a per-task seeded generator.
    jittered: RetryPolicy,
    seed: u64,
}

impl Executor {
    /// An executor over the installed structures.
    ///
    /// # Panics
    ///
    /// If a built-in retry policy is invalid (it is not).
    pub fn new(shared: &'static Shared, seed: u64) -> Self {
        use core::time::Duration;
        let base = RetryPolicy::builder()
            .max_retries(4)
            .initial_delay(Duration::from_millis(5))
            .multiplier(2.0);
        // Not `expect`: formatting the error would format its `f64` multiplier and pull
        // float formatting (about 17 KiB) into flash.
        Executor {
            shared,
            exact: base
                .max_delay(Duration::from_millis(30))
                .build()
                .unwrap_or_else(|_| panic!("invalid retry policy")),
            jittered: base
                .max_delay(Duration::from_millis(40))
                .jitter(Jitter::Equal)
                .build()
                .unwrap_or_else(|_| panic!("invalid retry policy")),
            seed,
        }
    }

    /// The shared structures.
    pub fn shared(&self) -> &'static Shared {
        self.shared
    }

    /// The retry policy `work` is retried by, if any.
    pub fn policy(&self, work: Work) -> Option<&RetryPolicy> {
        match work {
            Work::Doomed => Some(&self.exact),
            Work::Flaky(_) => Some(&self.jittered),
            _ => None,
        }
    }

    /// Submits `job`: charges its bytes to the budget, takes a slot, and either queues it
    /// or sets its timer.
    ///
    /// # Errors
    ///
    /// [`Rejected`], holding the job, when the budget or the slot table refuses it.
    /// Nothing is kept in that case.
    pub fn submit(&self, job: Job) -> Result<TaskId, Rejected> {
        let shared = self.shared;
        let reservation = shared
            .budget
            .try_reserve(usize::from(job.bytes))
            .map_err(|e| Rejected {
                why: Refusal::OverBudget(e),
                job,
            })?;
        // On a refusal here the reservation drops and gives its bytes back.
        let (id, task) = shared.tasks.acquire().map_err(|e| Rejected {
            why: Refusal::NoSlot(e),
            job,
        })?;
        let (kind, param) = job.work.encode();
        task.kind.store(kind, Ordering::Relaxed);
        task.param.store(param, Ordering::Relaxed);
        task.priority.store(job.priority.0, Ordering::Relaxed);
        task.attempts.store(0, Ordering::Relaxed);
        task.progress.store(0, Ordering::Relaxed);
        task.arg.store(job.arg, Ordering::Relaxed);
        task.due.store(0, Ordering::Relaxed);
        // Fits: budgets here are below 64 KiB, and a reservation is at most `job.bytes`.
        task.bytes
            .store(reservation.detach() as u16, Ordering::Relaxed);
        if job.delay_ms == 0 {
            task.state.reset(State::Queued);
            if shared.enqueue(id, task).is_err() {
                self.finish(id, task);
                return Err(Rejected {
                    why: Refusal::QueueFull,
                    job,
                });
            }
        } else {
            task.state.reset(State::Scheduled);
            self.arm(id, task, job.delay_ms);
        }
        Ok(id)
    }

    /// Cancels task `id` if it has not ended. Returns the state it was cancelled from.
    ///
    /// A task whose timer was pending is disarmed and freed at once. One already queued
    /// stays in the queue, marked cancelled, and is freed when the main loop pops it.
    pub fn cancel(&self, id: TaskId) -> Option<State> {
        let task = self.shared.tasks.get(id)?;
        let index = id.index() as usize;
        let disarmed =
            critical_section::with(|cs| self.shared.timers.borrow_ref_mut(cs).cancel(index));
        let from = task.state.apply(Event::Cancel).ok()?.from;
        if disarmed.is_some() {
            self.finish(id, task);
        }
        Some(from)
    }

    /// The progress of live task `id`, `None` once it has ended and its slot is free.
    pub fn progress(&self, id: TaskId) -> Option<u8> {
        self.shared.tasks.get(id).map(Task::progress)
    }

    /// Pops the highest-priority ready task and runs it once. `None` if none is ready.
    pub fn run_next(&self) -> Option<Ran> {
        let shared = self.shared;
        let (id, level) = shared.ready.pop()?;
        let at = ticks();
        let dispatched = DISPATCHED.fetch_add(1, Ordering::Relaxed) as u16;
        let Some(task) = shared.tasks.get(id) else {
            return Some(Ran {
                id,
                level,
                work: Work::Compute,
                arg: 0,
                at,
                due: 0,
                overtaken_by: 0,
                attempt: 0,
                progress: 0,
                end: End::Stale,
            });
        };
        let mut ran = Ran {
            id,
            level,
            work: task.work(),
            arg: task.arg.load(Ordering::Relaxed),
            at,
            due: task.due.load(Ordering::Relaxed),
            overtaken_by: dispatched.wrapping_sub(task.mark.load(Ordering::Relaxed)),
            attempt: task.attempts.load(Ordering::Relaxed),
            progress: task.progress(),
            end: End::Stale,
        };
        if let Err(refused) = task.state.apply(Event::Start) {
            if refused.state() == State::Cancelled {
                self.finish(id, task);
            }
            ran.end = End::Skipped(refused.state());
            return Some(ran);
        }
        ran.attempt = task.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let outcome = perform(ran.work, task, ran.attempt);
        ran.progress = task.progress();
        ran.end = match outcome {
            Outcome::Done => self.end(id, task, Event::Succeed, End::Succeeded),
            Outcome::Failed => match self.retry_delay_ns(id, ran.work, ran.attempt) {
                Some(delay_ns) => {
                    // The state first: the handler fires only Scheduled or Retrying tasks.
                    self.transition(task, Event::Retry);
                    let due = self.arm(id, task, ns_to_ticks(delay_ns));
                    End::Retrying { delay_ns, due }
                }
                None => self.end(id, task, Event::Fail, End::Failed),
            },
            Outcome::Yield { after_ms } => {
                self.transition(task, Event::Reschedule);
                let due = self.arm(id, task, after_ms);
                End::Rescheduled { due }
            }
        };
        Some(ran)
    }

    /// The delay before retry number `attempt` (after `attempt` failures), replayed from
    /// the policy with the task's own seeded generator: the record keeps only a count.
    fn retry_delay_ns(&self, id: TaskId, work: Work, failures: u8) -> Option<u64> {
        let policy = self.policy(work)?;
        let task_seed = (u64::from(id.index()) << 32) | u64::from(id.generation());
        let mut rng = SplitMix64::new(self.seed ^ task_seed);
        let mut backoff = policy.backoff();
        let mut delay = None;
        for _ in 0..failures {
            delay = backoff.next_delay_ns(&mut rng);
        }
        delay
    }

    fn transition(&self, task: &Task, event: Event) {
        // The main loop is the only one sending these events to a running task.
        if task.state.apply(event).is_err() {
            panic!("{event} refused for a running task");
        }
    }

    fn end(&self, id: TaskId, task: &Task, event: Event, end: End) -> End {
        self.transition(task, event);
        self.finish(id, task);
        end
    }

    /// Gives back an ended task's bytes and slot.
    fn finish(&self, id: TaskId, task: &Task) {
        let bytes = task.bytes.swap(0, Ordering::Relaxed);
        self.shared.budget.release(usize::from(bytes));
        if self.shared.tasks.release(id).is_err() {
            panic!("task {id} released twice");
        }
    }

    /// Sets task `id`'s timer to fire `delay_ms` ticks from now; returns the tick it is due
    /// at (low 32 bits, like [`ticks`]).
    fn arm(&self, id: TaskId, task: &Task, delay_ms: u32) -> u32 {
        critical_section::with(|cs| {
            let mut wheel = self.shared.timers.borrow_ref_mut(cs);
            let due = wheel.now() + u64::from(delay_ms);
            task.due.store(due as u32, Ordering::Relaxed);
            // Every slot index is below the wheel's capacity (both are `TASKS`).
            let armed = wheel.insert(id.index() as usize, due);
            assert!(armed.is_ok(), "slot index outside the timer wheel");
            due as u32
        })
    }

    /// Runs tasks until none is live, sleeping (WFI) while none is ready. Calls `each`
    /// after every dispatch. Returns `false` if `limit_ms` passed first.
    pub fn run_until_idle(&self, limit_ms: u32, mut each: impl FnMut(&Ran)) -> bool {
        let start = ticks();
        loop {
            if let Some(ran) = self.run_next() {
                each(&ran);
                continue;
            }
            if self.shared.tasks.is_empty() {
                return true;
            }
            if ticks().wrapping_sub(start) > limit_ms {
                return false;
            }
            // Sleep only if nothing became ready since the pop above. WFI inside the
            // critical section still wakes on the pending SysTick, which runs right after.
            critical_section::with(|_| {
                if self.shared.ready.is_empty() {
                    cortex_m::asm::wfi();
                }
            });
        }
    }
}

/// Milliseconds (ticks) for a delay in nanoseconds, rounded up: never early.
fn ns_to_ticks(ns: u64) -> u32 {
    let per_tick = 1_000_000_000 / u64::from(TICK_HZ);
    u32::try_from(ns.div_ceil(per_tick)).unwrap_or(u32::MAX)
}
