//! Tasks: what they do ([`Work`]), how they are submitted ([`Job`]) and refused
//! ([`Rejected`]), and their record in the slot table ([`Task`]).

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, Ordering};

use errand_core::{BudgetExceeded, Priority, SlotsExhausted, State, StateCell};

use super::{CHECKSUM, ticks};

/// What a task does when it runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Work {
    /// A small computation over the job's `arg`; always succeeds.
    Compute,
    /// Busy until the next SysTick tick, then succeeds: work that takes real time.
    Spin,
    /// Fails its first `n` attempts, then succeeds; retried by the jittered policy.
    Flaky(u8),
    /// Fails every attempt; retried by the exact policy until its retries run out.
    Doomed,
    /// Adds `n` percent to its progress per run and yields between runs, until 100.
    Chunked(u8),
}

impl Work {
    pub(super) fn encode(self) -> (u8, u8) {
        match self {
            Work::Compute => (0, 0),
            Work::Spin => (1, 0),
            Work::Flaky(n) => (2, n),
            Work::Doomed => (3, 0),
            Work::Chunked(n) => (4, n),
        }
    }

    fn decode(kind: u8, param: u8) -> Self {
        match kind {
            0 => Work::Compute,
            1 => Work::Spin,
            2 => Work::Flaky(param),
            3 => Work::Doomed,
            _ => Work::Chunked(param),
        }
    }
}

/// A unit of work as submitted. Handed back whole when it is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Job {
    /// What it does.
    pub work: Work,
    /// Its priority (any `u8`; four queue levels).
    pub priority: Priority,
    /// Bytes charged to the memory budget while the task lives (its payload).
    pub bytes: u16,
    /// The job's argument.
    pub arg: u32,
    /// Milliseconds before it becomes ready; 0 queues it at once.
    pub delay_ms: u32,
}

/// Why a job was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    /// Every slot of the table is in use.
    NoSlot(SlotsExhausted),
    /// Its bytes would take the memory budget over its limit.
    OverBudget(BudgetExceeded),
    /// Its level of the ready queue is full (cannot happen with levels of `TASKS`).
    QueueFull,
}

/// A refused job, handed back to the caller with the reason.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rejected {
    /// Why.
    pub why: Refusal,
    /// The job, untouched.
    pub job: Job,
}

/// One task's record in the slot table. Shared with the SysTick handler (the table hands
/// out `&Task`), so every field is atomic; each is a byte or a few.
#[derive(Debug)]
pub struct Task {
    pub(super) state: StateCell,
    pub(super) kind: AtomicU8,
    pub(super) param: AtomicU8,
    pub(super) priority: AtomicU8,
    pub(super) attempts: AtomicU8,
    pub(super) progress: AtomicU8,
    /// Bytes held from the budget (a detached reservation).
    pub(super) bytes: AtomicU16,
    /// Low 16 bits of `DISPATCHED` when the task was last made ready.
    pub(super) mark: AtomicU16,
    /// The tick its timer was last set for.
    pub(super) due: AtomicU32,
    pub(super) arg: AtomicU32,
}

impl Task {
    pub(super) fn vacant() -> Self {
        Task {
            state: StateCell::new(State::Scheduled),
            kind: AtomicU8::new(0),
            param: AtomicU8::new(0),
            priority: AtomicU8::new(0),
            attempts: AtomicU8::new(0),
            progress: AtomicU8::new(0),
            bytes: AtomicU16::new(0),
            mark: AtomicU16::new(0),
            due: AtomicU32::new(0),
            arg: AtomicU32::new(0),
        }
    }

    pub(super) fn work(&self) -> Work {
        Work::decode(
            self.kind.load(Ordering::Relaxed),
            self.param.load(Ordering::Relaxed),
        )
    }

    pub(super) fn priority(&self) -> Priority {
        Priority(self.priority.load(Ordering::Relaxed))
    }

    /// Its progress in percent.
    pub fn progress(&self) -> u8 {
        self.progress.load(Ordering::Relaxed)
    }
}

/// What one run of the work returned.
pub(super) enum Outcome {
    Done,
    Failed,
    Yield { after_ms: u32 },
}

/// Runs `work` once for `task`'s attempt number `attempt`.
pub(super) fn perform(work: Work, task: &Task, attempt: u8) -> Outcome {
    match work {
        Work::Compute => {
            let mut x = task.arg.load(Ordering::Relaxed) | 1;
            for _ in 0..32 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
            }
            CHECKSUM.fetch_add(x, Ordering::Relaxed);
            task.progress.store(100, Ordering::Relaxed);
            Outcome::Done
        }
        Work::Spin => {
            let start = ticks();
            while ticks() == start {
                core::hint::spin_loop();
            }
            task.progress.store(100, Ordering::Relaxed);
            Outcome::Done
        }
        Work::Flaky(fails) if attempt > fails => {
            task.progress.store(100, Ordering::Relaxed);
            Outcome::Done
        }
        Work::Flaky(_) | Work::Doomed => Outcome::Failed,
        Work::Chunked(step) => {
            let progress = task.progress().saturating_add(step).min(100);
            task.progress.store(progress, Ordering::Relaxed);
            if progress < 100 {
                Outcome::Yield { after_ms: 1 }
            } else {
                Outcome::Done
            }
        }
    }
}
