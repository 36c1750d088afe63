//! The runtime-agnostic task manager (feature `std`).
//!
//! The engine owns every piece of task logic: submission, priorities, the worker loop and
//! its parking, cancellation, results, history and shutdown. It knows no runtime: an
//! adapter implements [`Runtime`] (start a [`Driver`]) and, for async runtimes,
//! [`AsyncRuntime`] (run a blocking closure), then re-exports [`Manager`] and [`Builder`]
//! with its runtime filled in, and this module's [`prelude`].
//!
//! # Modules, bottom up
//!
//! `wait` (blocking on this thread) and `guard` (the one guard around user code) know
//! nothing of tasks. Above them the data: `error`, `spec`, `clock`, `snapshot`,
//! `sleep`, `context`, `cell` (a task's one allocation), `task` (what a user builds),
//! `record` (a slot), `history`, `results`, `timers`, `tally`. `inner` holds the shared
//! state; the phases add its methods, one file each: `submit`, `attempt`, `timed`,
//! `control`, `report`, and `events` (task updates for subscribers). On top: `handle`, `driver` (the worker and timer loops),
//! `shutdown`, `manager`, `builder`.
//!
//! # How a task moves
//!
//! A submission takes a slot of a [`SlotTable`](crate::SlotTable) of task records (its
//! index and generation are the task's [`TaskId`](crate::TaskId)), stores the job (the
//! engine's reference to the task's one allocation, which also holds the handle's
//! completion) in the record, and pushes the id on a [`PriorityQueue`](crate::PriorityQueue). An idle
//! worker is woken only if one is registered idle (an atomic count), so a busy manager
//! does not notify at all. A worker pops an id, wins `Start` on the record's
//! [`StateCell`](crate::StateCell), takes the job and runs it; it applies the outcome
//! (`Succeed`/`Fail`), publishes it to the handle, records the task in the bounded
//! history and releases the slot. No global lock is taken on that path.
//!
//! # Protocol
//!
//! These rules make the record's job cell sound and decide who frees a slot; the code
//! cites them by number.
//!
//! 1. **Tokens.** A live task has exactly one *token*: held by its submitter until it is
//!    published, then by its queue entry (until a worker pops it and tries `Start`), or by
//!    the worker running it. Only the token holder *finalizes* the task (history, slot
//!    release), exactly once, after the task reached a terminal state. A cancel of a
//!    queued task therefore ends the task (and resolves its handle) at once, but the slot
//!    is reclaimed by the worker that pops the cancelled entry.
//! 2. **Publishing.** A slot's state is terminal while it is free (a never-used record
//!    starts `Cancelled`), so no event applies to a slot being prepared. The submitter
//!    writes the job, then stores the live state with `Release`: whoever later wins a
//!    transition from that state acquires the job. (The record's state and job cell are
//!    one `Handoff`; this is its rule 1, checked by the loom model
//!    `loom_models/handoff.rs`.)
//! 3. **The job cell.** Outside submission, the job cell is touched only by the single
//!    winner of a transition out of a waiting state (`Start` from `Queued`, or `Cancel`
//!    from `Queued`/`Scheduled`/`Retrying`), which takes the job. A worker that must run
//!    the job again puts it back *before* applying the event that makes the task wait
//!    again, and takes it back if that event loses (the task then ended while it ran).
//!    The state cell's `AcqRel` transitions order all of these accesses. (`Handoff`'s
//!    rules 2-3: `Handoff::apply` takes, `Handoff::apply_returning` puts back.)
//! 4. **Pinning.** A slot is released only under its record's cold-data lock. Operations
//!    by id from outside (cancel, status, progress) take that lock and re-check the id:
//!    while they hold it the id cannot be reused.
//! 5. **Parking.** A worker that finds the queue empty parks through
//!    `Parking`: it registers idle, listens, fences, reads the stop flag,
//!    re-checks the queue, and only then waits; every enqueue fences and notifies only if a
//!    worker is registered idle. No push is left in the queue while its only worker
//!    sleeps, and a worker exits only after seeing the stop flag *and* an empty queue
//!    (`loom_models/park.rs`).
//! 6. **Admission.** Every submission holds a `Pass` of the manager's `Gate` from its
//!    acceptance check until its tasks are published.
//!    `stop_accepting` closes the gate and waits until it is drained, so afterwards no
//!    task is accepted and every accepted one is visible to `stop_all`
//!    (`loom_models/gate.rs`).
//! 7. **Settling.** `unfinished` (a `Settle`) counts accepted tasks not
//!    yet terminal: counted as added before a task is published, as done exactly once by
//!    the winner of the task's terminal transition, which notifies when nothing is left
//!    and a waiter is registered (and `finalize` notifies when the slot table empties). A
//!    waiter checks, listens, registers, checks again, then waits
//!    (`Settle::listen_unless`; `loom_models/settle.rs`).
//!
//! 8. **The desk of a running attempt.** Each worker has a desk: the waker it waits on a
//!    task's cancellation signal with, and the latch of the blocking attempt it runs. When
//!    a worker starts an attempt it points the task's cold data at its desk (and, for a
//!    blocking attempt, stores the task's completion latch in the desk), under the cold
//!    lock, which it took before its `Start` won and holds until both are stored (so an
//!    end that lands right after `Start` waits for the lock and then finds them); it
//!    clears the pointer under that lock before the job leaves its hands (completed, or
//!    returned to the cell for a retry or the next run). Whoever ends the running task
//!    with a `Cancel` or `Timeout` takes the pointer under the cold lock. If the desk
//!    holds a latch, the job (and so the latch) is alive, and the worker has not
//!    published (it publishes only after clearing the pointer), so aborting the latch
//!    resolves the handle at once and marks the attempt *detached*; the closure runs on,
//!    and when it returns, its worker finds the task ended, drops the output, and
//!    finalizes. Then it raises the task's signal (a bit in the record) and wakes the
//!    desk's waker (flag rules 1-2: the worker registers in its desk, then checks the
//!    bit). A worker leaves a task only under that task's cold lock, after any raise for
//!    it, so the desk never carries one task's wake-up into the next.
//! 9. **Replacing a stuck worker.** A detached attempt that runs on its worker's own
//!    thread (errand-threads) counts that worker as stuck; the timer driver starts a
//!    replacement (at most `max_detached` at once). When the closure returns, its worker
//!    retires if a replacement took its place, so the pool keeps its size.
//!
//! Cancellation races are the state cell's: exactly one of cancel and start wins, and a
//! worker whose end event loses learns which terminal state beat it.

mod attempt;
mod builder;
mod cell;
mod clock;
mod context;
mod control;
mod driver;
#[cfg(feature = "durable")]
pub mod durable;
mod ending;
mod error;
mod events;
mod guard;
mod handle;
mod history;
mod inner;
mod manager;
mod packed;
mod process;
mod record;
mod report;
mod results;
mod shutdown;
mod sleep;
mod snapshot;
mod spec;
mod spin;
mod submit;
mod tally;
mod task;
#[cfg(test)]
mod tests;
mod timed;
mod timers;
mod wait;

pub use builder::Builder;
pub use context::{Cancelled, Context, Sleep};
pub use driver::{AsyncRuntime, Driver, Runtime};
pub use error::{
    BoxError, BuildError, BuildErrorKind, CancelError, ProgressError, SubmitError, TaskError,
    TaskErrorKind,
};
pub use events::{Changed, TaskUpdate, UpdateKind, Updates};
pub use handle::TaskHandle;
pub use manager::Manager;
pub use shutdown::{Shutdown, WaitForCompletion};
pub use snapshot::{
    Analytics, Counts, Latency, LevelLatency, Performance, Profile, QueueSizes, Sample,
    ShutdownReport, TaskInfo,
};
pub use spec::{Every, MissedTicks, Overlap};
pub use task::{Async, Blocking, Job, Task};

#[cfg(feature = "durable")]
pub use durable::{
    Committed, DurableJob, DurableStats, EnqueueError, JobFilter, JobId, JobInfo, JobOptions,
    JobState, JobWait, Retried, ScheduleInfo, Store, StoreError, StoreErrorKind,
};

/// Everything a port of the guide needs, for an adapter to re-export in its own prelude
/// (`pub use errand_core::engine::prelude::*;`), so every adapter exposes the same API and
/// code moves between adapters by changing one `use`.
pub mod prelude {
    #[cfg(feature = "durable")]
    pub use super::durable::{
        Committed, DurableJob, DurableStats, EnqueueError, JobFilter, JobId, JobInfo, JobOptions,
        JobState, JobWait, ParseJobIdError, Retried, ScheduleInfo, StoreError, StoreErrorKind,
    };
    pub use super::{
        Analytics, BoxError, BuildError, BuildErrorKind, CancelError, Cancelled, Context, Counts,
        Every, Latency, LevelLatency, MissedTicks, Overlap, Performance, Profile, ProgressError,
        QueueSizes, Sample, Shutdown, ShutdownReport, Sleep, SubmitError, Task, TaskError,
        TaskErrorKind, TaskHandle, TaskInfo, TaskUpdate, UpdateKind, Updates, WaitForCompletion,
    };
    pub use crate::{
        BudgetSnapshot, Jitter, Level, Mode, ParseTaskIdError, Priority, RetryDecision,
        RetryPolicy, State, TaskId,
    };
}
