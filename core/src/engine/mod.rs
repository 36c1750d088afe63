//! The runtime-agnostic task manager (feature `std`).
//!
//! The engine owns every piece of task logic: submission, priorities, the worker loop and
//! its parking, cancellation, results, history and shutdown. It knows no runtime: an
//! adapter implements [`Runtime`] (start a [`Driver`]) and, for async runtimes,
//! [`AsyncRuntime`] (run a blocking closure), then re-exports [`Manager`] and [`Builder`]
//! with its runtime filled in.
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
//!    one [`Handoff`](crate::Handoff); this is its rule 1, checked by
//!    `core/tests/loom_handoff.rs`.)
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
//!    [`Parking`](crate::Parking): it registers idle, listens, fences, reads the stop flag,
//!    re-checks the queue, and only then waits; every enqueue fences and notifies only if a
//!    worker is registered idle. No push is left in the queue while its only worker
//!    sleeps, and a worker exits only after seeing the stop flag *and* an empty queue
//!    (`core/tests/loom_park.rs`).
//! 6. **Admission.** Every submission holds a [`Pass`](crate::Pass) of the manager's
//!    [`Gate`](crate::Gate) from its acceptance check until its tasks are published.
//!    `stop_accepting` closes the gate and waits until it is drained, so afterwards no
//!    task is accepted and every accepted one is visible to `stop_all`
//!    (`core/tests/loom_gate.rs`).
//! 7. **Settling.** `unfinished` (a [`Settle`](crate::Settle)) counts accepted tasks not
//!    yet terminal: counted as added before a task is published, as done exactly once by
//!    the winner of the task's terminal transition, which notifies when nothing is left
//!    and a waiter is registered (and `finalize` notifies when the slot table empties). A
//!    waiter checks, listens, registers, checks again, then waits
//!    (`Settle::listen_unless`; `core/tests/loom_settle.rs`).
//!
//! Cancellation races are the state cell's: exactly one of cancel and start wins, and a
//! worker whose end event loses learns which terminal state beat it.

mod context;
mod driver;
mod error;
mod handle;
mod history;
mod job;
mod manager;
mod process;
mod record;
mod results;
mod shared;
mod snapshot;
mod spec;
#[cfg(test)]
mod tests;

pub use context::{Cancelled, Context};
pub use driver::{AsyncRuntime, Driver, Runtime};
pub use error::{
    BoxError, BuildError, CancelError, ProgressError, SubmitError, TaskError, TaskErrorKind,
};
pub use handle::TaskHandle;
pub use job::{Async, Blocking, Job, Task};
pub use manager::{Builder, Manager};
pub use snapshot::{
    Analytics, Counts, LevelLatency, Performance, QueueSizes, ShutdownReport, TaskInfo,
};
pub use spec::{Every, MissedTicks, Overlap};

/// Everything a user of an adapter needs, for the adapter to re-export in one line
/// (`pub use errand_core::engine::prelude::*;`), so every adapter exposes the same API.
pub mod prelude {
    pub use super::{
        Analytics, BoxError, BuildError, CancelError, Context, Counts, Every, LevelLatency,
        MissedTicks, Overlap, Performance, ProgressError, QueueSizes, ShutdownReport, SubmitError,
        Task, TaskError, TaskErrorKind, TaskHandle, TaskInfo,
    };
    pub use crate::{
        BudgetSnapshot, Jitter, Level, Mode, Priority, RetryDecision, RetryPolicy, State, TaskId,
    };
}
