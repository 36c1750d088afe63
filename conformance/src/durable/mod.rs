//! The durable store's behaviour, written once for every store and every adapter: a
//! store crate implements [`Place`] and expands [`store_suite!`](crate::store_suite) once
//! per adapter. Some checks drive a manager; others talk to the [`Store`] interface
//! itself (fencing, recovery, pruning), where the manager gives no handle on the moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use errand_core::engine::durable::{Finish, JobRow, NewJob, Op, ScheduleRow, Store};
use errand_core::engine::{
    Builder, DurableJob, EnqueueError, Every, JobFilter, JobId, JobOptions, JobState, MissedTicks,
    StoreErrorKind,
};
use errand_core::{Priority, RetryPolicy, State};

use crate::Adapter;
use crate::support::PATIENCE;

mod jobs;
mod manager;
mod store;

pub use jobs::{Double, Flaky, Held, Record};
pub use manager::*;
pub use store::*;

/// Where a store keeps its data for one check: a fresh place per check, opened as often
/// as the check restarts its manager.
pub trait Place: Sized {
    /// The store.
    type Store: Store;
    /// A fresh, empty place.
    fn fresh() -> Self;
    /// Opens the store at this place (again).
    fn open(&self) -> Self::Store;
}

/// Expands to one `#[test]` per store check, for adapter `$adapter` and place `$place`.
#[macro_export]
macro_rules! store_suite {
    ($adapter:ty, $place:ty) => {
        $crate::store_suite!(@tests $adapter, $place;
            results_survive_a_restart,
            claims_follow_priority_then_due_time,
            failures_retry_with_their_count_persisted,
            unique_keys_admit_one_unfinished_job,
            stale_attempts_change_nothing,
            many_ops_in_one_commit_answer_each_alone,
            running_jobs_are_recovered_at_start,
            expired_results_are_pruned,
            a_backlog_of_expired_results_is_pruned_at_once,
            leases_hold_until_they_expire_then_jobs_are_rescued,
            a_cancel_reaches_a_running_job,
            old_finished_jobs_are_purged_in_batches,
            a_schedule_tick_fires_once_in_the_store,
            schedules_fire_once_per_tick_and_resume,
            bad_payloads_fail_alone_and_unknown_kinds_wait,
            pending_and_running_jobs_can_be_cancelled,
            progress_and_timeouts_are_recorded,
            finished_jobs_can_be_retried,
            schedules_are_listed_with_their_next_run,
            the_earliest_due_pending_job_is_found,
        );
    };
    (@tests $adapter:ty, $place:ty; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::durable::$name::<$adapter, $place>();
            }
        )*
    };
}

/// A unique name for a check's lists, gates and counters.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A builder on `place` with every conformance job type registered.
pub(crate) fn durable<A: Adapter, P: Place>(place: &P) -> Builder<A::Runtime> {
    A::builder()
        .workers(2)
        .store(place.open())
        .register::<Double>()
        .register::<Record>()
        .register::<Held>()
        .register::<Flaky>()
}

/// Waits for job `id` to finish; its row.
pub(crate) fn finished<R: errand_core::engine::Runtime>(
    manager: &errand_core::engine::Manager<R>,
    id: JobId,
) -> errand_core::engine::JobInfo {
    let info = manager
        .wait_job(id, PATIENCE)
        .wait()
        .unwrap()
        .expect("the job exists");
    assert!(
        info.job_state.is_finished(),
        "{id} did not finish within {PATIENCE:?}"
    );
    info
}

/// Waits (polling each millisecond, bounded by `PATIENCE`) for `done`.
pub(crate) fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
