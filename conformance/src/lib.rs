//! The behaviour every errand adapter must show, written once.
//!
//! Each adapter implements [`Adapter`] in its `tests/conformance.rs` and expands
//! [`suite!`], which turns every check into a `#[test]`. The checks use only the public
//! API, wait on the events themselves (handles, gates) with generous timeouts that fail
//! loudly, and never use timing as pass/fail except "not before its deadline".
//!
//! The checks live in rooms, one topic each: [`basics`], [`priorities`], [`cancel`],
//! [`overload`], [`shutdown`], [`introspection`], [`timing`], [`retries`], [`results`],
//! [`recurring`], [`hostile`] (user code that panics outside a task's body, blocking work
//! that outlives its task, schedules past `u32::MAX` ticks, extreme settings), [`inside`]
//! (the manager driven from inside the runtime's own tasks) and [`soak`].

use std::future::Future;

use errand_core::engine::{Builder, Runtime};

mod support;

#[doc(hidden)]
pub mod basics;
#[doc(hidden)]
pub mod cancel;
#[doc(hidden)]
pub mod durable;
#[doc(hidden)]
pub mod hostile;
#[doc(hidden)]
pub mod inside;
#[doc(hidden)]
pub mod introspection;
#[doc(hidden)]
pub mod overload;
pub mod postgres;
#[doc(hidden)]
pub mod priorities;
#[doc(hidden)]
pub mod recurring;
#[doc(hidden)]
pub mod results;
#[doc(hidden)]
pub mod retries;
#[doc(hidden)]
pub mod shutdown;
#[doc(hidden)]
pub mod soak;
#[doc(hidden)]
pub mod timing;

/// How the suite builds managers on one adapter, and runs code inside its runtime.
pub trait Adapter {
    /// The adapter's runtime.
    type Runtime: Runtime;
    /// A builder with the adapter's defaults (each test sets what it relies on).
    fn builder() -> Builder<Self::Runtime>;
    /// Runs `future` as one of the runtime's own tasks (a tokio or smol task; for plain
    /// threads, an async task of another errand-threads manager) and returns its output.
    fn run_inside<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// Expands to one `#[test]` per conformance check, for adapter type `$adapter`.
#[macro_export]
macro_rules! suite {
    ($adapter:ty) => {
        $crate::suite!(@tests $adapter;
            basics::blocking_and_async_tasks_return_their_values,
            basics::handles_can_be_awaited,
            basics::errors_are_downcastable_failures,
            basics::panics_are_failures_and_the_worker_lives_on,
            basics::wait_timeout_gives_the_handle_back,
            basics::unknown_ids_are_errors,
            basics::snapshots_serialize,
            priorities::strict_priorities_never_wait_behind_lower_ones,
            priorities::weighted_priorities_let_low_work_through,
            cancel::cancelling_a_queued_task_means_it_never_runs,
            cancel::cancelling_a_running_async_task_drops_its_future,
            cancel::cancelling_a_running_blocking_task_resolves_at_once,
            cancel::dropping_the_manager_cancels_pending_work,
            cancel::cancelling_a_delayed_task_frees_its_slot,
            overload::a_full_queue_gives_the_task_back,
            overload::a_spent_budget_gives_the_task_back,
            overload::a_stated_weight_is_charged,
            overload::batches_are_all_or_nothing,
            overload::invalid_specs_are_refused,
            shutdown::shutdown_stops_accepting_and_reports_unfinished_work,
            shutdown::wait_for_completion_waits_for_every_task,
            shutdown::shutdown_reports_scheduled_work,
            introspection::progress_is_validated_and_visible,
            introspection::active_tasks_lists_queued_and_running_work,
            introspection::finished_tasks_stay_in_a_bounded_history,
            introspection::analytics_count_and_time_the_work,
            introspection::performance_reports_process_and_rates,
            introspection::profiling_samples_the_process,
            timing::delayed_tasks_never_start_early,
            timing::timeouts_drop_async_work_at_the_deadline,
            timing::timeouts_tell_blocking_work_to_stop,
            timing::tasks_sleep_on_every_adapter,
            retries::failed_attempts_are_retried_with_backoff,
            retries::retries_are_bounded_by_the_policy,
            retries::the_error_handler_decides_by_error_type,
            retries::a_handler_alone_retries_under_the_default_policy,
            retries::a_handler_that_can_never_retry_is_refused,
            retries::a_panicking_error_handler_fails_the_task,
            results::stored_results_expire_and_are_freed,
            recurring::recurring_tasks_run_n_times_on_a_fixed_schedule,
            recurring::recurring_tasks_stop_at_their_deadline,
            recurring::overlapping_ticks_are_skipped_by_default,
            recurring::cancelling_a_recurring_task_ends_it,
            hostile::a_panicking_closure_drop_leaves_the_worker_alive,
            hostile::a_panicking_result_clone_leaves_the_worker_alive,
            hostile::a_panicking_error_display_leaves_the_worker_alive,
            hostile::a_panicking_error_drop_leaves_the_worker_alive,
            hostile::a_future_panicking_in_drop_on_cancel_leaves_the_worker_alive,
            hostile::a_blocking_task_past_its_timeout_resolves_at_once,
            hostile::a_cancelled_blocking_task_resolves_waiters_at_once,
            hostile::a_blocking_task_cancelled_while_it_starts_resolves_at_once,
            hostile::detached_closures_keep_the_pool_at_full_strength,
            hostile::an_unlimited_schedule_runs_past_u32_ticks,
            hostile::extreme_settings_are_typed_errors,
            inside::handles_are_awaited_inside_the_runtime,
            inside::a_task_submits_and_awaits_another,
            inside::shutdown_is_awaited_from_a_task,
            soak::soak_with_a_shutdown_in_mid_flight,
        );
    };
    (@tests $adapter:ty; $($module:ident :: $name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::$module::$name::<$adapter>();
            }
        )*
    };
}
