//! Durable jobs (feature `durable`): work that survives restarts and crashes, kept in a
//! [`Store`] (errand-store-sqlite's embedded SQLite file; errand-store-postgres next).
//!
//! In-memory tasks stay what they are: closures and futures, fast, lost with the process.
//! A durable job is data: a value of a registered [`DurableJob`] type, serialized (JSON)
//! into a row with its options, and run by whichever process claims it. Its [`JobId`] is
//! stable; its state, attempts, errors, progress and result are answered from the store,
//! across restarts.
//!
//! # How it runs
//!
//! One thread per manager, the *keeper*, owns the store and commits in groups: every
//! request that arrived while the previous transaction committed (enqueues, attempt ends,
//! claims, progress, schedule ticks) goes into the next transaction and its one sync. An
//! enqueue is answered after its commit. A job due now that fits in this process's
//! window (see [`Builder::durable_window`](crate::engine::Builder::durable_window)) is
//! inserted already claimed and handed to a worker at once; others are claimed in batches
//! as room frees and as they fall due. The keeper sleeps until a request comes or its next
//! deadline (a due job, a schedule tick, a prune pass): it never polls the database.
//!
//! Each attempt runs as one engine task; its end is written to the row with its attempt
//! number, and retries are the store's: a failure is written with its next run time
//! (the job's retry policy and [`DurableJob::on_error`] decide), and the job is claimed
//! again when it is due.
//!
//! # Semantics
//!
//! | property | what errand guarantees |
//! |---|---|
//! | delivery | **at least once**. A job runs again if the process dies (a crash, a kill, a power cut) after its attempt started and before the attempt's end was committed, or if its attempt's end could not be written. Use the [`JobId`] ([`Context::job_id`](crate::engine::Context::job_id)) as the idempotency key of its effects. |
//! | acknowledgement | an enqueue answers `Ok(id)` only after the job's row is committed (synced as the store says: SQLite's `synchronous=FULL` by default); an error means nothing was committed |
//! | attempts | each claim counts an attempt in the row, before the attempt runs; failures are counted apart and are what the retry policy limits; the last error is kept |
//! | fencing | every write an attempt makes names its attempt number; a write of a stale attempt changes nothing (counted in [`DurableStats::stale`]) |
//! | recovery | at build, every job a previous run of the process left running is pending again at once (no lease to expire on a single node) |
//! | progress | kept in memory at once, written at most every 250 ms per job (the last value wins) |
//! | results | kept in the row for the job's result TTL, then dropped by a background pass (in bounded batches); the row itself stays |
//! | unique keys | at most one unfinished job holds a key, enforced by a unique index of the database, not by a read before the write |
//! | schedules | stored by name; each tick enqueues one job with a unique key of its own, in the same transaction that advances the schedule, so a tick fires once; a restart applies the missed-tick policy to the downtime |
//! | unknown kinds | a pending job of a kind no registered type knows stays pending for a process that knows it, and is reported in [`DurableStats::unknown_kinds`] |
//! | bad payloads | a payload that no longer deserializes fails its job, with the decode error in its row; the others go on |
//! | shutdown | a shutdown gives the jobs it stops back (pending again, due now); an attempt still running when the keeper stops stays running in the store, and the next start recovers it |
//!
//! # Examples
//!
//! A job type, registered and enqueued on a store (errand-store-sqlite's `SqliteStore`
//! in practice; here a `Store` of the reader's choice, behind a function):
//!
//! ```no_run
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use errand_core::engine::{
//!     BoxError, Builder, Context, DurableJob, JobOptions, Runtime, Store,
//! };
//!
//! #[derive(Serialize, Deserialize)]
//! struct Resize {
//!     image: String,
//! }
//!
//! impl DurableJob for Resize {
//!     const KIND: &'static str = "resize";
//!     type Output = u64;
//!
//!     async fn run(&self, ctx: Context) -> Result<u64, BoxError> {
//!         ctx.progress(50.0, "resizing")?;
//!         Ok(self.image.len() as u64)
//!     }
//! }
//!
//! fn demo<R: Runtime>(builder: Builder<R>, store: impl Store) -> Result<(), BoxError> {
//!     let manager = builder.store(store).register::<Resize>().build()?;
//!     let id = manager
//!         .enqueue(Resize { image: "cat.png".into() }, JobOptions::new())
//!         .wait()?;
//!     let done = manager.wait_job(id, Duration::from_secs(5)).wait()?;
//!     assert!(done.is_some_and(|job| job.job_state.is_finished()));
//!     assert_eq!(manager.job_result::<Resize>(id)?, Some(7));
//!     Ok(())
//! }
//! ```

mod api;
mod job;
mod job_wait;
mod keeper;
mod reply;
mod runner;
mod stats;
mod store;

pub(crate) use api::DurableConfig;
pub use api::{Retried, ScheduleInfo};
pub use job::{DurableJob, EnqueueError, JobId, JobInfo, JobOptions, JobState, ParseJobIdError};
pub use job_wait::JobWait;
pub(crate) use keeper::Shared;
pub use reply::Committed;
pub use stats::DurableStats;
pub use store::{
    Finish, Hint, JobFilter, JobRow, NewJob, Op, RetryColumns, ScheduleRow, Sharing, Store,
    StoreError, StoreErrorKind, StoreReader, UnixMillis, is_retryable,
};
