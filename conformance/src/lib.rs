//! The behaviour every errand adapter must show, written once.
//!
//! Each adapter implements [`Adapter`] in its `tests/conformance.rs` and expands
//! [`suite!`], which turns every check below into a `#[test]`. The checks use only the
//! public API, wait on the events themselves (handles, gates) with generous timeouts that
//! fail loudly, and never use timing as pass/fail except "not before its deadline".

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use errand_core::engine::{
    BoxError, Builder, CancelError, Context, Manager, ProgressError, Runtime, SubmitError, Task,
    TaskErrorKind, TaskHandle,
};
use errand_core::engine::{Every, MissedTicks, Overlap, TaskError};
use errand_core::{Mode, Priority, RetryDecision, RetryPolicy, State};
use std::time::Instant;

/// How the suite builds managers on one adapter.
pub trait Adapter {
    /// The adapter's runtime.
    type Runtime: Runtime;
    /// A builder with the adapter's defaults (each test sets what it relies on).
    fn builder() -> Builder<Self::Runtime>;
}

/// Expands to one `#[test]` per conformance check, for adapter type `$adapter`.
#[macro_export]
macro_rules! suite {
    ($adapter:ty) => {
        $crate::suite!(@tests $adapter;
            blocking_and_async_tasks_return_their_values,
            handles_can_be_awaited,
            errors_are_downcastable_failures,
            panics_are_failures_and_the_worker_lives_on,
            strict_priorities_never_wait_behind_lower_ones,
            weighted_priorities_let_low_work_through,
            cancelling_a_queued_task_means_it_never_runs,
            cancelling_a_running_async_task_drops_its_future,
            cancelling_a_running_blocking_task_is_cooperative,
            a_full_queue_gives_the_task_back,
            shutdown_stops_accepting_and_reports_unfinished_work,
            wait_for_completion_waits_for_every_task,
            progress_is_validated_and_visible,
            active_tasks_lists_queued_and_running_work,
            wait_timeout_gives_the_handle_back,
            unknown_ids_are_errors,
            dropping_the_manager_cancels_pending_work,
            finished_tasks_stay_in_a_bounded_history,
            snapshots_serialize,
            delayed_tasks_never_start_early,
            cancelling_a_delayed_task_frees_its_slot,
            timeouts_drop_async_work_at_the_deadline,
            timeouts_tell_blocking_work_to_stop,
            failed_attempts_are_retried_with_backoff,
            retries_are_bounded_by_the_policy,
            the_error_handler_decides_by_error_type,
            a_panicking_error_handler_fails_the_task,
            stored_results_expire_and_are_freed,
            a_spent_budget_gives_the_task_back,
            batches_are_all_or_nothing,
            analytics_count_and_time_the_work,
            performance_reports_process_and_rates,
            shutdown_reports_scheduled_work,
            recurring_tasks_run_n_times_on_a_fixed_schedule,
            recurring_tasks_stop_at_their_deadline,
            overlapping_ticks_are_skipped_by_default,
            cancelling_a_recurring_task_ends_it,
            invalid_specs_are_refused,
            soak_with_a_shutdown_in_mid_flight,
        );
    };
    (@tests $adapter:ty; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::$name::<$adapter>();
            }
        )*
    };
}

/// The generous bound every wait in the suite uses; reaching it fails the test.
const PATIENCE: Duration = Duration::from_secs(20);

fn wait<T>(handle: TaskHandle<T>) -> Result<T, errand_core::engine::TaskError> {
    match handle.wait_timeout(PATIENCE) {
        Ok(result) => result,
        Err(handle) => panic!("task {} did not end within {PATIENCE:?}", handle.id()),
    }
}

/// A one-shot gate: tasks block on it until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let (lock, condvar) = &*self.0;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = condvar
            .wait_timeout_while(guard, PATIENCE, |open| !*open)
            .unwrap();
        assert!(!timeout.timed_out() && *guard, "gate never opened");
    }
}

/// Occupies the only worker of `manager` until the returned gate opens; returns once the
/// blocker is running.
fn block_worker<R: Runtime>(manager: &Manager<R>) -> (Gate, TaskHandle<()>) {
    let gate = Gate::default();
    let started = Gate::default();
    let handle = manager
        .submit(
            Task::new({
                let gate = gate.clone();
                let started = started.clone();
                move |_: &Context| {
                    started.open();
                    gate.wait();
                    Ok::<_, BoxError>(())
                }
            })
            .priority(Priority(255))
            .label("blocker"),
        )
        .unwrap();
    started.wait();
    (gate, handle)
}

fn one_worker<A: Adapter>() -> Manager<A::Runtime> {
    A::builder().workers(1).build().unwrap()
}

/// A blocking task and an async task both deliver their values through their handles.
pub fn blocking_and_async_tasks_return_their_values<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let blocking = manager
        .spawn(|ctx: &Context| Ok::<_, BoxError>(ctx.attempt() * 10))
        .unwrap();
    let asynchronous = manager
        .spawn_async(|ctx: Context| async move { Ok::<_, BoxError>(format!("{}", ctx.id())) })
        .unwrap();
    let id = asynchronous.id();
    assert_eq!(wait(blocking).unwrap(), 10);
    assert_eq!(wait(asynchronous).unwrap(), id.to_string());
    assert_eq!(manager.status(id), Some(State::Succeeded));
}

/// A handle is a future resolving to the task's result.
pub fn handles_can_be_awaited<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let handle = manager
        .spawn_async(|_ctx: Context| async { Ok::<_, BoxError>(7_u8) })
        .unwrap();
    assert_eq!(futures_lite::future::block_on(handle).unwrap(), 7);
}

#[derive(Debug)]
struct ConnectionError;

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed to connect to external service")
    }
}

impl std::error::Error for ConnectionError {}

/// A returned error is a failure whose source downcasts to the task's error type.
pub fn errors_are_downcastable_failures<A: Adapter>() {
    let manager = one_worker::<A>();
    let handle = manager
        .spawn(|_: &Context| Err::<(), _>(ConnectionError))
        .unwrap();
    let id = handle.id();
    let error = wait(handle).unwrap_err();
    assert_eq!(error.kind(), TaskErrorKind::Failed);
    assert!(error.downcast_ref::<ConnectionError>().is_some());
    assert_eq!(
        error.to_string(),
        "task failed: failed to connect to external service"
    );
    assert_eq!(manager.status(id), Some(State::Failed));
    let info = manager.task(id).unwrap();
    assert_eq!(
        info.error.as_deref(),
        Some("task failed: failed to connect to external service")
    );
}

/// A panicking task (blocking or async) fails with the panic message; the single worker
/// survives and runs the next task.
pub fn panics_are_failures_and_the_worker_lives_on<A: Adapter>() {
    let manager = one_worker::<A>();
    let blocking = manager
        .spawn(|_: &Context| -> Result<(), BoxError> { panic!("boom in a closure") })
        .unwrap();
    let error = wait(blocking).unwrap_err();
    assert_eq!(error.kind(), TaskErrorKind::Panicked);
    assert_eq!(error.panic_message(), Some("boom in a closure"));
    let asynchronous = manager
        .spawn_async(|_ctx: Context| async {
            if true {
                panic!("boom in a future");
            }
            Ok::<(), BoxError>(())
        })
        .unwrap();
    assert_eq!(
        wait(asynchronous).unwrap_err().panic_message(),
        Some("boom in a future")
    );
    let after = manager
        .spawn(|_: &Context| Ok::<_, BoxError>("alive"))
        .unwrap();
    assert_eq!(wait(after).unwrap(), "alive");
    assert_eq!(manager.counts().panicked, 2);
    assert_eq!(manager.counts().failed, 2);
}

/// Submits one task per priority in `order` behind a blocked single worker and returns
/// the order they ran in.
fn run_order<A: Adapter>(mode: Mode, priorities: &[Priority]) -> Vec<u8> {
    let manager = A::builder().workers(1).priority_mode(mode).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let ran = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = priorities
        .iter()
        .map(|&priority| {
            let ran = Arc::clone(&ran);
            manager
                .submit(
                    Task::new(move |_: &Context| {
                        ran.lock().unwrap().push(priority.0);
                        Ok::<_, BoxError>(())
                    })
                    .priority(priority),
                )
                .unwrap()
        })
        .collect();
    gate.open();
    wait(blocker).unwrap();
    for handle in handles {
        wait(handle).unwrap();
    }
    ran.lock().unwrap().clone()
}

/// In strict mode the queued tasks run highest priority first, FIFO within a priority.
pub fn strict_priorities_never_wait_behind_lower_ones<A: Adapter>() {
    let order = run_order::<A>(
        Mode::Strict,
        &[
            Priority::LOW,
            Priority::NORMAL,
            Priority::HIGH,
            Priority::CRITICAL,
            Priority::LOW,
            Priority::CRITICAL,
        ],
    );
    assert_eq!(order, [20, 20, 10, 5, 1, 1]);
}

/// In weighted mode a low-priority task runs before a long run of critical ones ends.
pub fn weighted_priorities_let_low_work_through<A: Adapter>() {
    let mut priorities = vec![Priority::CRITICAL; 60];
    priorities.push(Priority::LOW);
    let order = run_order::<A>(Mode::Weighted, &priorities);
    let low_at = order.iter().position(|&p| p == 1).unwrap();
    assert!(
        low_at < 60,
        "the low task ran last (position {low_at}): it starved"
    );
}

/// A task cancelled while queued ends cancelled at once and never runs.
pub fn cancelling_a_queued_task_means_it_never_runs<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, blocker) = block_worker(&manager);
    let ran = Arc::new(AtomicBool::new(false));
    let handle = manager
        .spawn({
            let ran = Arc::clone(&ran);
            move |_: &Context| {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
        .unwrap();
    let id = handle.id();
    assert_eq!(manager.status(id), Some(State::Queued));
    handle.cancel().unwrap();
    assert_eq!(handle.status(), State::Cancelled);
    assert!(wait(handle).unwrap_err().is_cancelled());
    assert_eq!(
        manager.cancel(id),
        Err(CancelError::Finished {
            id,
            state: State::Cancelled
        })
    );
    gate.open();
    wait(blocker).unwrap();
    // The worker has popped the cancelled entry by the time a later task runs.
    wait(manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap()).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(manager.counts().cancelled, 1);
}

/// Cancelling a running async task drops its future at once.
pub fn cancelling_a_running_async_task_drops_its_future<A: Adapter>() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let manager = one_worker::<A>();
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Gate::default();
    let handle = manager
        .spawn_async({
            let dropped = Arc::clone(&dropped);
            let started = started.clone();
            move |_ctx: Context| {
                let guard = SetOnDrop(Arc::clone(&dropped));
                let started = started.clone();
                async move {
                    let _guard = guard;
                    started.open();
                    std::future::pending::<()>().await;
                    Ok::<_, BoxError>(())
                }
            }
        })
        .unwrap();
    started.wait();
    assert_eq!(handle.status(), State::Running);
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    // The worker drops the future before it takes the next task.
    wait(manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap()).unwrap();
    assert!(dropped.load(Ordering::SeqCst));
}

/// A running blocking task sees `is_cancelled()` turn true and its handle resolves as
/// cancelled.
pub fn cancelling_a_running_blocking_task_is_cooperative<A: Adapter>() {
    let manager = one_worker::<A>();
    let started = Gate::default();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let handle = manager
        .spawn({
            let started = started.clone();
            let saw_cancel = Arc::clone(&saw_cancel);
            move |ctx: &Context| {
                started.open();
                let deadline = std::time::Instant::now() + PATIENCE;
                while !ctx.is_cancelled() {
                    assert!(std::time::Instant::now() < deadline, "never cancelled");
                    std::thread::yield_now();
                }
                saw_cancel.store(true, Ordering::SeqCst);
                Ok::<_, BoxError>("finished anyway")
            }
        })
        .unwrap();
    started.wait();
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    wait(manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap()).unwrap();
    assert!(saw_cancel.load(Ordering::SeqCst));
}

/// Past the queue capacity (live tasks) a submission fails and gives the task back.
pub fn a_full_queue_gives_the_task_back<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(2).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager.spawn(|_: &Context| Ok::<_, BoxError>(1)).unwrap();
    let error = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(2)).label("third"))
        .unwrap_err();
    assert!(matches!(error, SubmitError::QueueFull { capacity: 2, .. }));
    assert_eq!(
        error.to_string(),
        "queue full: all 2 task slots hold live tasks (queued, scheduled or running)"
    );
    let task = error.into_task();
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(queued).unwrap(), 1);
    // The task given back is whole: submitted again it runs.
    assert_eq!(wait(manager.submit(task).unwrap()).unwrap(), 2);
}

/// `shutdown` stops accepting, waits, stops what is left and accounts for every task.
pub fn shutdown_stops_accepting_and_reports_unfinished_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let done = manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap();
    wait(done).unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap();
    let report = manager.shutdown(Duration::from_millis(50));
    assert!(!report.completed);
    let mut unfinished: Vec<_> = report
        .unfinished
        .iter()
        .map(|info| (info.id, info.state))
        .collect();
    unfinished.sort();
    let mut expected = vec![(blocker.id(), State::Running), (queued.id(), State::Queued)];
    expected.sort();
    assert_eq!(unfinished, expected);
    assert!(!manager.is_accepting());
    assert!(manager.is_shutdown_initiated());
    let rejected = manager
        .spawn(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap_err();
    assert!(matches!(rejected, SubmitError::ShuttingDown { .. }));
    assert_eq!(
        rejected.to_string(),
        "shutting down: the manager no longer accepts tasks"
    );
    gate.open();
    assert!(wait(blocker).unwrap_err().is_cancelled());
    assert!(wait(queued).unwrap_err().is_cancelled());
    let counts = manager.counts();
    assert_eq!(counts.submitted, 3);
    assert_eq!(counts.stopped, 2);
    assert_eq!(counts.submitted, counts.ended());
}

/// `wait_for_completion` returns true once every task ended, false on timeout.
pub fn wait_for_completion_waits_for_every_task<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let count = Arc::clone(&count);
        manager
            .spawn(move |_: &Context| {
                count.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            })
            .unwrap();
    }
    assert!(manager.wait_for_completion(PATIENCE));
    assert_eq!(count.load(Ordering::SeqCst), 50);
    let (gate, blocker) = block_worker(&manager);
    assert!(!manager.wait_for_completion(Duration::from_millis(20)));
    gate.open();
    assert!(manager.wait_for_completion(PATIENCE));
    wait(blocker).unwrap();
}

/// Progress out of range is an error; valid progress is visible from outside while the
/// task runs, with its start time and an estimated completion.
pub fn progress_is_validated_and_visible<A: Adapter>() {
    let manager = one_worker::<A>();
    let reported = Gate::default();
    let gate = Gate::default();
    let handle = manager
        .submit(
            Task::new({
                let reported = reported.clone();
                let gate = gate.clone();
                move |ctx: &Context| {
                    assert!(matches!(
                        ctx.progress(f64::NAN, "nan"),
                        Err(ProgressError::OutOfRange { .. })
                    ));
                    let error = ctx.progress(150.0, "too far").unwrap_err();
                    assert_eq!(
                        error.to_string(),
                        "invalid progress: 150 is not a percentage in 0..=100"
                    );
                    assert!(ctx.progress(-1.0, "negative").is_err());
                    ctx.progress(40.0, "Processing batch 2/3...")?;
                    reported.open();
                    gate.wait();
                    Ok::<_, BoxError>(())
                }
            })
            .label("data processing"),
        )
        .unwrap();
    reported.wait();
    let info = manager.task(handle.id()).unwrap();
    assert_eq!(info.state, State::Running);
    assert_eq!(info.progress, 40.0);
    assert_eq!(info.message.as_deref(), Some("Processing batch 2/3..."));
    assert_eq!(info.label.as_deref(), Some("data processing"));
    assert_eq!(info.attempt, 1);
    let started = info.started_at.unwrap();
    assert!(info.estimated_completion.unwrap() >= started);
    gate.open();
    let id = handle.id();
    wait(handle).unwrap();
    let info = manager.task(id).unwrap();
    assert_eq!(info.state, State::Succeeded);
    assert_eq!(info.progress, 100.0);
    assert!(info.finished_at.unwrap() >= started);
}

/// `active_tasks` lists the running and queued tasks, and nothing that ended.
pub fn active_tasks_lists_queued_and_running_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let finished = manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap();
    let finished_id = finished.id();
    wait(finished).unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap();
    let mut active: Vec<_> = manager
        .active_tasks()
        .into_iter()
        .map(|info| (info.id, info.state))
        .collect();
    active.sort();
    let mut expected = vec![(blocker.id(), State::Running), (queued.id(), State::Queued)];
    expected.sort();
    assert_eq!(active, expected);
    assert!(active.iter().all(|(id, _)| *id != finished_id));
    gate.open();
    wait(blocker).unwrap();
    wait(queued).unwrap();
    assert!(manager.wait_for_completion(PATIENCE));
    assert!(manager.active_tasks().is_empty());
}

/// `wait_timeout` hands the handle back when the task has not ended in time.
pub fn wait_timeout_gives_the_handle_back<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, blocker) = block_worker(&manager);
    let blocker = blocker
        .wait_timeout(Duration::from_millis(10))
        .expect_err("the blocker cannot have finished");
    assert!(!blocker.is_finished());
    gate.open();
    wait(blocker).unwrap();
}

/// Unknown and malformed ids are errors, never panics.
pub fn unknown_ids_are_errors<A: Adapter>() {
    let manager = one_worker::<A>();
    let id: errand_core::TaskId = "t-3-99".parse().unwrap();
    assert_eq!(manager.status(id), None);
    assert!(manager.task(id).is_none());
    assert_eq!(manager.cancel(id), Err(CancelError::Unknown { id }));
    assert!("t-3-x".parse::<errand_core::TaskId>().is_err());
}

/// Dropping the manager cancels the tasks that have not ended; their handles resolve.
pub fn dropping_the_manager_cancels_pending_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap();
    drop(manager);
    assert!(wait(queued).unwrap_err().is_cancelled());
    gate.open();
    assert!(wait(blocker).unwrap_err().is_cancelled());
}

/// Finished tasks answer status queries while they are among the most recent ones; the
/// history never grows past its size.
pub fn finished_tasks_stay_in_a_bounded_history<A: Adapter>() {
    let manager = A::builder().workers(1).history(4).build().unwrap();
    let ids: Vec<_> = (0..10)
        .map(|i| {
            let handle = manager
                .spawn(move |_: &Context| Ok::<_, BoxError>(i))
                .unwrap();
            let id = handle.id();
            assert_eq!(wait(handle).unwrap(), i);
            // Settled tasks are in the history.
            assert!(manager.wait_for_completion(PATIENCE));
            id
        })
        .collect();
    for old in &ids[..6] {
        assert_eq!(
            manager.status(*old),
            None,
            "{old} should have left the history"
        );
    }
    for recent in &ids[6..] {
        assert_eq!(manager.status(*recent), Some(State::Succeeded));
    }
}

/// Task snapshots, counts and shutdown reports serialize.
pub fn snapshots_serialize<A: Adapter>() {
    let manager = one_worker::<A>();
    let handle = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(())).label("json"))
        .unwrap();
    let id = handle.id();
    wait(handle).unwrap();
    let json = serde_json::to_value(manager.task(id).unwrap()).unwrap();
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["state"], "succeeded");
    assert_eq!(json["label"], "json");
    let counts = serde_json::to_value(manager.counts()).unwrap();
    assert_eq!(counts["succeeded"], 1);
    let report = serde_json::to_value(manager.shutdown(PATIENCE)).unwrap();
    assert_eq!(report["completed"], true);
}

/// A delayed task waits `Scheduled` and starts no earlier than its delay (or instant).
pub fn delayed_tasks_never_start_early<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let delay = Duration::from_millis(120);
    let submitted = Instant::now();
    let after = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(Instant::now())).delay(delay))
        .unwrap();
    assert_eq!(after.status(), State::Scheduled);
    let at = submitted + Duration::from_millis(80);
    let at_handle = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(Instant::now())).at(at))
        .unwrap();
    assert!(wait(after).unwrap() >= submitted + delay);
    assert!(wait(at_handle).unwrap() >= at);
    // An instant in the past means now.
    let past = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(1)).at(submitted))
        .unwrap();
    assert_eq!(wait(past).unwrap(), 1);
}

/// Cancelling a scheduled task ends it at once and frees its slot for a new task.
pub fn cancelling_a_delayed_task_frees_its_slot<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(1).build().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let delayed = manager
        .submit(
            Task::new({
                let ran = Arc::clone(&ran);
                move |_: &Context| {
                    ran.store(true, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                }
            })
            .delay(Duration::from_secs(3600)),
        )
        .unwrap();
    assert_eq!(manager.active_tasks().len(), 1);
    delayed.cancel().unwrap();
    assert!(wait(delayed).unwrap_err().is_cancelled());
    // The single slot is free again.
    let next = manager.spawn(|_: &Context| Ok::<_, BoxError>(5)).unwrap();
    assert_eq!(wait(next).unwrap(), 5);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(manager.active_tasks().is_empty());
}

/// A timed-out async attempt's future is dropped at the deadline, not before; the task
/// ends `TimedOut`.
pub fn timeouts_drop_async_work_at_the_deadline<A: Adapter>() {
    let manager = one_worker::<A>();
    let timeout = Duration::from_millis(60);
    let started = Instant::now();
    let handle = manager
        .submit(
            Task::new_async(|_ctx: Context| async {
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            })
            .timeout(timeout),
        )
        .unwrap();
    let id = handle.id();
    let error = wait(handle).unwrap_err();
    assert!(error.is_timed_out(), "{error}");
    assert!(started.elapsed() >= timeout);
    assert_eq!(manager.status(id), Some(State::TimedOut));
    assert_eq!(manager.counts().timed_out, 1);
    // The worker is free again.
    wait(manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap()).unwrap();
}

/// A timed-out blocking attempt sees `is_cancelled()` and the task ends `TimedOut`.
pub fn timeouts_tell_blocking_work_to_stop<A: Adapter>() {
    let manager = one_worker::<A>();
    let timeout = Duration::from_millis(40);
    let started = Instant::now();
    let handle = manager
        .submit(
            Task::new(|ctx: &Context| {
                let deadline = Instant::now() + PATIENCE;
                while !ctx.is_cancelled() {
                    assert!(Instant::now() < deadline, "never told to stop");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok::<_, BoxError>(())
            })
            .timeout(timeout),
        )
        .unwrap();
    assert!(wait(handle).unwrap_err().is_timed_out());
    assert!(started.elapsed() >= timeout);
    // A timed-out attempt is final: its error handler is not asked, nothing is retried.
    let asked = Arc::new(AtomicUsize::new(0));
    let handle = manager
        .submit(
            Task::new(|ctx: &Context| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err::<(), _>(BoxError::from("stopped early"))
            })
            .timeout(timeout)
            .retry(policy(3, 1))
            .on_error({
                let asked = Arc::clone(&asked);
                move |_, _, _| {
                    asked.fetch_add(1, Ordering::SeqCst);
                    RetryDecision::Retry
                }
            }),
        )
        .unwrap();
    assert!(wait(handle).unwrap_err().is_timed_out());
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    assert_eq!(manager.counts().retried, 0);
    // A task that finishes in time is unaffected by its timeout.
    let quick = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(3)).timeout(PATIENCE))
        .unwrap();
    assert_eq!(wait(quick).unwrap(), 3);
}

#[derive(Debug)]
struct ValueError;

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid data format")
    }
}

impl std::error::Error for ValueError {}

fn policy(retries: u32, initial_ms: u64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(retries)
        .initial_delay(Duration::from_millis(initial_ms))
        .multiplier(2.0)
        .max_delay(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// A task that fails twice then succeeds is retried after growing delays, never early.
pub fn failed_attempts_are_retried_with_backoff<A: Adapter>() {
    let manager = one_worker::<A>();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let handle = manager
        .submit(
            Task::new({
                let starts = Arc::clone(&starts);
                move |ctx: &Context| {
                    starts.lock().unwrap().push(Instant::now());
                    if ctx.attempt() < 3 {
                        Err(BoxError::from(std::format!(
                            "attempt {} failed",
                            ctx.attempt()
                        )))
                    } else {
                        Ok(ctx.attempt())
                    }
                }
            })
            .retry(policy(3, 20)),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 3);
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 3);
    assert!(starts[1] - starts[0] >= Duration::from_millis(20));
    assert!(starts[2] - starts[1] >= Duration::from_millis(40));
    let counts = manager.counts();
    assert_eq!(
        (counts.retried, counts.executed, counts.succeeded),
        (2, 3, 1)
    );
    let info = manager.task(id).unwrap();
    assert_eq!(info.attempt, 3);
    assert_eq!(info.state, State::Succeeded);
}

/// Retries stop at the policy's limit: the task fails with its last error.
pub fn retries_are_bounded_by_the_policy<A: Adapter>() {
    let manager = A::builder()
        .workers(1)
        .default_retry(policy(2, 1))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let handle = manager
        .spawn({
            let attempts = Arc::clone(&attempts);
            move |ctx: &Context| {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(BoxError::from(std::format!("failure {}", ctx.attempt())))
            }
        })
        .unwrap();
    let error = wait(handle).unwrap_err();
    assert_eq!(error.to_string(), "task failed: failure 3");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(manager.counts().retried, 2);
    assert_eq!(manager.counts().failed, 1);
}

/// The guide's custom handler: connection errors are retried, validation errors fail at
/// once, others are retried up to attempt 2; the handler sees id, error and attempt.
pub fn the_error_handler_decides_by_error_type<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = Arc::clone(&seen);
        move |id: errand_core::TaskId, error: &TaskError, attempt: u32| {
            seen.lock().unwrap().push((id, attempt));
            if error.downcast_ref::<ConnectionError>().is_some() {
                RetryDecision::RetryAfter(Duration::from_millis(5))
            } else if error.downcast_ref::<ValueError>().is_some() {
                RetryDecision::Fail
            } else if attempt < 2 {
                RetryDecision::Retry
            } else {
                RetryDecision::Fail
            }
        }
    };
    let connection = manager
        .submit(
            Task::new(|ctx: &Context| {
                if ctx.attempt() < 3 {
                    Err(BoxError::from(ConnectionError))
                } else {
                    Ok("connected")
                }
            })
            .retry(policy(5, 1))
            .on_error(handler.clone()),
        )
        .unwrap();
    let validation = manager
        .submit(
            Task::new(|_: &Context| Err::<(), _>(ValueError))
                .retry(policy(5, 1))
                .on_error(handler.clone()),
        )
        .unwrap();
    let connection_id = connection.id();
    let validation_id = validation.id();
    assert_eq!(wait(connection).unwrap(), "connected");
    let error = wait(validation).unwrap_err();
    assert!(error.downcast_ref::<ValueError>().is_some());
    let other = manager
        .submit(
            Task::new(|_: &Context| Err::<(), _>(BoxError::from("unknown error occurred")))
                .retry(policy(5, 1))
                .on_error(handler),
        )
        .unwrap();
    let other_id = other.id();
    assert_eq!(
        wait(other).unwrap_err().to_string(),
        "task failed: unknown error occurred"
    );
    let seen = seen.lock().unwrap().clone();
    let attempts = |id| -> Vec<u32> {
        seen.iter()
            .filter(|(seen_id, _)| *seen_id == id)
            .map(|(_, attempt)| *attempt)
            .collect()
    };
    assert_eq!(attempts(connection_id), [1, 2]);
    assert_eq!(attempts(validation_id), [1]);
    assert_eq!(attempts(other_id), [1, 2]);
}

/// A panic in the error handler fails the task (with both messages); the worker lives.
pub fn a_panicking_error_handler_fails_the_task<A: Adapter>() {
    let manager = one_worker::<A>();
    let handle = manager
        .submit(
            Task::new(|_: &Context| Err::<(), _>(BoxError::from("first failure")))
                .retry(policy(3, 1))
                .on_error(|_, _, _| panic!("handler exploded")),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(
        wait(handle).unwrap_err().to_string(),
        "task failed: first failure"
    );
    let info = manager.task(id).unwrap();
    assert_eq!(info.state, State::Failed);
    assert_eq!(
        info.error.as_deref(),
        Some("task failed: first failure; the error handler panicked: handler exploded")
    );
    assert_eq!(manager.counts().retried, 0);
    wait(manager.spawn(|_: &Context| Ok::<_, BoxError>(())).unwrap()).unwrap();
}

/// A stored result is there until its TTL passes, then gone, and its bytes are back in
/// the memory budget.
pub fn stored_results_expire_and_are_freed<A: Adapter>() {
    let manager = one_worker::<A>();
    let kept = manager
        .submit(
            Task::new(|_: &Context| Ok::<_, BoxError>(String::from("report_2024.pdf")))
                .store_result_for(Duration::from_secs(3600)),
        )
        .unwrap();
    let kept_id = kept.id();
    assert_eq!(wait(kept).unwrap(), "report_2024.pdf");
    // Once every task has ended, only stored results hold budget.
    assert!(manager.wait_for_completion(PATIENCE));
    let with_one = manager.analytics().memory.used;
    assert!(with_one > 0);
    assert_eq!(
        manager
            .stored_result::<String>(kept_id)
            .as_deref()
            .map(String::as_str),
        Some("report_2024.pdf")
    );
    assert!(
        manager.stored_result::<u32>(kept_id).is_none(),
        "wrong type"
    );

    let ttl = Duration::from_millis(50);
    let brief = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>([7_u64; 64])).store_result_for(ttl))
        .unwrap();
    let brief_id = brief.id();
    assert_eq!(wait(brief).unwrap(), [7; 64]);
    assert!(manager.wait_for_completion(PATIENCE));
    assert!(manager.analytics().memory.used > with_one);
    assert_eq!(manager.analytics().stored_results, 2);
    // Past its TTL the result is gone and its bytes are back in the budget.
    std::thread::sleep(ttl);
    assert!(
        manager.stored_result::<[u64; 64]>(brief_id).is_none(),
        "expired"
    );
    assert_eq!(manager.analytics().memory.used, with_one);
    assert_eq!(manager.analytics().stored_results, 1);
    // Results are stored only when asked for.
    let plain = manager
        .spawn(|_: &Context| Ok::<_, BoxError>(1_u8))
        .unwrap();
    let plain_id = plain.id();
    wait(plain).unwrap();
    assert!(manager.stored_result::<u8>(plain_id).is_none());
}

/// Once queued tasks fill the memory budget, submissions are refused and the task is
/// given back; the budget refills as tasks end.
pub fn a_spent_budget_gives_the_task_back<A: Adapter>() {
    let manager = A::builder().workers(1).memory_pool_mb(1).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let chunk = [1_u8; 30_000];
    let mut accepted = Vec::new();
    let error = loop {
        match manager.spawn(move |_: &Context| Ok::<_, BoxError>(chunk[0])) {
            Ok(handle) => accepted.push(handle),
            Err(error) => break error,
        }
        assert!(accepted.len() <= 40, "the budget never ran out");
    };
    let SubmitError::BudgetExceeded {
        requested, budget, ..
    } = &error
    else {
        panic!("expected a budget error, got {error}");
    };
    // Each task is charged its closure (30 000 bytes and change) plus bookkeeping: as
    // many fit as 1 MiB holds (the small blocker fits in the remainder).
    assert!(*requested > 30_000 && *requested < 31_000);
    assert_eq!(accepted.len(), (1 << 20) / *requested);
    assert_eq!(*budget, 1 << 20);
    assert!(
        error
            .to_string()
            .starts_with("memory budget exceeded: the task needs ")
    );
    let task = error.into_task();
    gate.open();
    wait(blocker).unwrap();
    for handle in accepted {
        assert_eq!(wait(handle).unwrap(), 1);
    }
    assert!(manager.wait_for_completion(PATIENCE));
    assert_eq!(manager.analytics().memory.used, 0);
    assert_eq!(wait(manager.submit(task).unwrap()).unwrap(), 1);
}

/// A batch is accepted whole or refused whole, with every task given back.
pub fn batches_are_all_or_nothing<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(3).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let ran = Arc::new(AtomicUsize::new(0));
    let make = |n: usize| -> Vec<_> {
        (0..n)
            .map(|i| {
                let ran = Arc::clone(&ran);
                Task::new(move |_: &Context| {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(i)
                })
            })
            .collect()
    };
    let error = manager.submit_batch(make(3)).unwrap_err();
    assert!(matches!(error, SubmitError::QueueFull { capacity: 3, .. }));
    assert_eq!(error.into_task().len(), 3);
    assert_eq!(manager.active_tasks().len(), 1, "only the blocker is live");
    let handles = manager.submit_batch(make(2)).unwrap();
    gate.open();
    wait(blocker).unwrap();
    let values: Vec<_> = handles.into_iter().map(|h| wait(h).unwrap()).collect();
    assert_eq!(values, [0, 1]);
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

/// Analytics count what ran and, with profiling, time it per priority.
pub fn analytics_count_and_time_the_work<A: Adapter>() {
    let manager = A::builder()
        .workers(1)
        .enable_profiling(true)
        .build()
        .unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued: Vec<_> = [Priority::LOW, Priority::HIGH, Priority::HIGH]
        .into_iter()
        .map(|priority| {
            manager
                .submit(Task::new(|_: &Context| Ok::<_, BoxError>(())).priority(priority))
                .unwrap()
        })
        .collect();
    let failing = manager
        .spawn(|_: &Context| Err::<(), _>(BoxError::from("no")))
        .unwrap();
    let analytics = manager.analytics();
    assert_eq!(analytics.queue_size.low, 1);
    assert_eq!(analytics.queue_size.high, 2);
    assert_eq!(analytics.queue_size.normal, 1);
    assert_eq!(analytics.queue_size.total(), 4);
    assert_eq!(analytics.running, 1);
    gate.open();
    wait(blocker).unwrap();
    for handle in queued {
        wait(handle).unwrap();
    }
    wait(failing).unwrap_err();
    assert!(manager.wait_for_completion(PATIENCE));
    let analytics = manager.analytics();
    assert_eq!(analytics.counts.executed, 5);
    assert_eq!(analytics.counts.succeeded, 4);
    assert_eq!(analytics.counts.failed, 1);
    assert_eq!(analytics.counts.peak_concurrency, 1);
    assert!(analytics.profiling);
    assert!(analytics.avg_execution_time.is_some());
    assert!(analytics.p99_execution_time >= analytics.p50_execution_time);
    let [low, normal, high, critical] = analytics.dispatch_latency;
    assert_eq!(
        (low.count, normal.count, high.count, critical.count),
        (1, 1, 2, 1)
    );
    assert!(high.p50.is_some());
    assert!(analytics.uptime > Duration::ZERO);
    assert_eq!(analytics.queue_size.total(), 0);
}

/// Performance reports the process (on Linux), workers, throughput and error rate.
pub fn performance_reports_process_and_rates<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    for i in 0..4 {
        let handle = manager
            .spawn(move |_: &Context| {
                if i == 0 {
                    Err(BoxError::from("one in four fails"))
                } else {
                    Ok(())
                }
            })
            .unwrap();
        let _ = wait(handle);
    }
    assert!(manager.wait_for_completion(PATIENCE));
    let performance = manager.performance();
    assert_eq!(performance.workers, 2);
    assert_eq!(performance.error_rate, 25.0);
    assert!(performance.throughput > 0.0);
    assert!(performance.memory_pool_limit > 0);
    if cfg!(target_os = "linux") {
        assert!(performance.cpu_percent.unwrap() >= 0.0);
        assert!(performance.rss_bytes.unwrap() > 0);
    }
    let json = serde_json::to_value(&performance).unwrap();
    assert_eq!(json["workers"], 2);
    let json = serde_json::to_value(manager.analytics()).unwrap();
    assert_eq!(json["counts"]["failed"], 1);
}

/// A shutdown reports scheduled work as unfinished too, and it never runs.
pub fn shutdown_reports_scheduled_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let later = manager
        .submit(Task::new(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_secs(3600)))
        .unwrap();
    let report = manager.shutdown(Duration::from_millis(10));
    assert_eq!(report.unfinished.len(), 1);
    assert_eq!(report.unfinished[0].id, later.id());
    assert_eq!(report.unfinished[0].state, State::Scheduled);
    assert!(wait(later).unwrap_err().is_cancelled());
    let counts = manager.counts();
    assert_eq!(counts.submitted, counts.ended());
}

/// A task recurring `times(4)` runs four times, each run no earlier than
/// `first + k × interval` (no drift), and yields its last run's value.
pub fn recurring_tasks_run_n_times_on_a_fixed_schedule<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let interval = Duration::from_millis(25);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let submitted = Instant::now();
    let handle = manager
        .submit(
            Task::new({
                let starts = Arc::clone(&starts);
                move |_: &Context| {
                    let mut starts = starts.lock().unwrap();
                    starts.push(Instant::now());
                    Ok::<_, BoxError>(starts.len())
                }
            })
            .every(Every::new(interval).times(4)),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 4);
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 4);
    for (k, start) in starts.iter().enumerate() {
        assert!(
            *start >= submitted + interval * k as u32,
            "run {k} started early"
        );
    }
    let info = manager.task(id).unwrap();
    assert_eq!((info.state, info.runs), (State::Succeeded, 4));
    let counts = manager.counts();
    assert_eq!((counts.executed, counts.succeeded), (4, 1));
}

/// A task recurring `until(deadline)` runs no tick due after the deadline, then succeeds.
pub fn recurring_tasks_stop_at_their_deadline<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let interval = Duration::from_millis(20);
    let submitted = Instant::now();
    let deadline = submitted + Duration::from_millis(70);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let handle = manager
        .submit(
            Task::new({
                let starts = Arc::clone(&starts);
                move |_: &Context| {
                    starts.lock().unwrap().push(Instant::now());
                    Ok::<_, BoxError>(())
                }
            })
            .every(
                Every::new(interval)
                    .until(deadline)
                    .missed_ticks(MissedTicks::Burst),
            ),
        )
        .unwrap();
    wait(handle).unwrap();
    let starts = starts.lock().unwrap().clone();
    // Ticks are due at 0, 20, 40 and 60 ms; the one at 80 ms is past the deadline.
    assert!((1..=4).contains(&starts.len()), "{} runs", starts.len());
    for (k, start) in starts.iter().enumerate() {
        assert!(
            *start >= submitted + interval * k as u32,
            "run {k} started early"
        );
    }
}

/// With the default overlap policy, ticks that come while a run is running are skipped:
/// the next run waits for the first tick after the previous run ended.
pub fn overlapping_ticks_are_skipped_by_default<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let interval = Duration::from_millis(20);
    let spans = Arc::new(Mutex::new(Vec::new()));
    let submitted = Instant::now();
    let handle = manager
        .submit(
            Task::new({
                let spans = Arc::clone(&spans);
                move |_: &Context| {
                    let start = Instant::now();
                    std::thread::sleep(Duration::from_millis(50));
                    spans.lock().unwrap().push((start, Instant::now()));
                    Ok::<_, BoxError>(())
                }
            })
            .every(Every::new(interval).times(2).overlap(Overlap::Skip)),
        )
        .unwrap();
    wait(handle).unwrap();
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    let (_, first_end) = spans[0];
    let (second_start, _) = spans[1];
    // The ticks at 20 and 40 ms came during the first run: skipped. The next is the
    // first tick after it ended.
    let ticks_by_end = (first_end - submitted).as_nanos() / interval.as_nanos();
    let next_tick = submitted + interval * (ticks_by_end as u32 + 1);
    assert!(second_start >= next_tick);
    assert!(second_start >= submitted + interval * 3);

    // With `Overlap::Queue` the second run follows the first without waiting for a tick.
    let spans = Arc::new(Mutex::new(Vec::new()));
    let handle = manager
        .submit(
            Task::new({
                let spans = Arc::clone(&spans);
                move |_: &Context| {
                    let start = Instant::now();
                    std::thread::sleep(Duration::from_millis(50));
                    spans.lock().unwrap().push((start, Instant::now()));
                    Ok::<_, BoxError>(())
                }
            })
            .every(Every::new(interval).times(2).overlap(Overlap::Queue)),
        )
        .unwrap();
    wait(handle).unwrap();
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    assert!(spans[1].0 >= spans[0].1, "runs never overlap");
}

/// Cancelling a recurring task between or during runs ends it for good.
pub fn cancelling_a_recurring_task_ends_it<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(1).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let second = Gate::default();
    let handle = manager
        .submit(
            Task::new({
                let runs = Arc::clone(&runs);
                let second = second.clone();
                move |_: &Context| {
                    if runs.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                        second.open();
                    }
                    Ok::<_, BoxError>(())
                }
            })
            .every(Every::new(Duration::from_millis(5))),
        )
        .unwrap();
    second.wait();
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    assert!(manager.wait_for_completion(PATIENCE));
    // The slot is free again (capacity 1), and the recurring task is not active.
    let after = manager.spawn(|_: &Context| Ok::<_, BoxError>(9)).unwrap();
    assert_eq!(wait(after).unwrap(), 9);
    assert!(manager.active_tasks().is_empty());
    assert!(runs.load(Ordering::SeqCst) >= 2);
}

/// Invalid specs are refused with a message naming the field; the task comes back.
pub fn invalid_specs_are_refused<A: Adapter>() {
    let manager = one_worker::<A>();
    let task = || Task::new(|_: &Context| Ok::<_, BoxError>(()));
    let cases = [
        (
            task().every(Every::new(Duration::ZERO)),
            "invalid task spec: the interval is 0 s",
        ),
        (
            task().every(Every::new(Duration::from_secs(1)).times(0)),
            "invalid task spec: a recurring task set to run 0 times",
        ),
        (
            task().timeout(Duration::ZERO),
            "invalid task spec: the timeout is 0 s",
        ),
    ];
    for (task, message) in cases {
        let error = manager.submit(task).unwrap_err();
        assert!(matches!(error, SubmitError::InvalidSpec { .. }));
        assert_eq!(error.to_string(), message);
    }
    assert_eq!(manager.counts().submitted, 0);
    assert!(A::builder().workers(0).build().is_err());
    assert!(A::builder().queue_capacity(0).build().is_err());
}

/// What a soak task does when it runs.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Returns a value (blocking).
    Succeed,
    /// Returns a value (async).
    SucceedAsync,
    /// Returns an error every attempt.
    Fail,
    /// Panics every attempt.
    Panic,
    /// Fails this many attempts, then succeeds.
    Flaky(u32),
    /// Runs past its timeout (async: pending; the future is dropped).
    Hang,
}

/// A seeded soak: many tasks with random priorities, delays, failures, panics, retries,
/// timeouts and cancels, and a shutdown in mid-flight. Afterwards every accepted task is
/// accounted for exactly once (`submitted = succeeded + failed + cancelled + timed out +
/// stopped`, the last being the shutdown report's length), every handle agrees with the
/// counts, and no task ran more often than its retries allow. The seed comes from
/// `ERRAND_SOAK_SEED` (default fixed), and is printed on failure.
pub fn soak_with_a_shutdown_in_mid_flight<A: Adapter>() {
    use errand_core::{RandomSource, SplitMix64};

    let seed = std::env::var("ERRAND_SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = SplitMix64::new(seed);
    let mut below = |n: u64| rng.next_u64() % n;
    let manager = A::builder()
        .workers(4)
        .queue_capacity(128)
        .enable_profiling(true)
        .seed(seed)
        .build()
        .unwrap();
    const TASKS: usize = 400;
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
    let mut accepted = Vec::new();
    let mut refused_full = 0;
    let mut refused_after_shutdown = 0;
    let mut report = None;
    for i in 0..TASKS {
        if i == TASKS / 2 {
            report = Some(manager.shutdown(Duration::from_millis(5)));
        }
        let behaviour = match below(10) {
            0..=2 => Behaviour::Succeed,
            3 | 4 => Behaviour::SucceedAsync,
            5 => Behaviour::Fail,
            6 => Behaviour::Panic,
            7 | 8 => Behaviour::Flaky(below(3) as u32 + 1),
            _ => Behaviour::Hang,
        };
        let retries = below(3) as u32;
        let runs = Arc::clone(&runs);
        let work = move |ctx: Context| {
            runs[i].fetch_add(1, Ordering::SeqCst);
            async move {
                match behaviour {
                    Behaviour::Succeed | Behaviour::SucceedAsync => Ok(i),
                    Behaviour::Fail => Err(BoxError::from("soak failure")),
                    Behaviour::Panic => panic!("soak panic"),
                    Behaviour::Flaky(failures) => {
                        if ctx.attempt() <= failures {
                            Err(BoxError::from("flaky"))
                        } else {
                            Ok(i)
                        }
                    }
                    Behaviour::Hang => {
                        std::future::pending::<()>().await;
                        Ok(i)
                    }
                }
            }
        };
        let mut task = Task::new_async(work)
            .priority(Priority(below(256) as u8))
            .retry(policy(retries, 1));
        if below(4) == 0 {
            task = task.delay(Duration::from_millis(below(20)));
        }
        if matches!(behaviour, Behaviour::Hang) || below(8) == 0 {
            task = task.timeout(Duration::from_millis(2 + below(10)));
        }
        match manager.submit(task) {
            Ok(handle) => {
                if below(8) == 0 {
                    // Cancelling may lose to the task's end: either is fine.
                    let _ = handle.cancel();
                }
                accepted.push((i, retries, handle));
            }
            Err(SubmitError::QueueFull { .. }) => refused_full += 1,
            Err(SubmitError::ShuttingDown { .. }) => refused_after_shutdown += 1,
            Err(other) => panic!("seed {seed}: unexpected refusal: {other}"),
        }
    }
    let report = report.unwrap();
    assert_eq!(refused_after_shutdown, TASKS - TASKS / 2, "seed {seed}");
    let (mut ok, mut failed, mut cancelled, mut timed_out) = (0, 0, 0, 0);
    for (i, retries, handle) in accepted {
        match wait(handle) {
            Ok(value) => {
                assert_eq!(value, i, "seed {seed}");
                ok += 1;
            }
            Err(error) => match error.kind() {
                TaskErrorKind::Failed | TaskErrorKind::Panicked => failed += 1,
                TaskErrorKind::Cancelled => cancelled += 1,
                TaskErrorKind::TimedOut => timed_out += 1,
                _ => panic!("seed {seed}: unknown error kind {error}"),
            },
        }
        let ran = runs[i].load(Ordering::SeqCst);
        assert!(
            ran <= 1 + retries as usize,
            "seed {seed}: task {i} ran {ran} times with {retries} retries"
        );
    }
    assert!(manager.wait_for_completion(PATIENCE), "seed {seed}");
    let counts = manager.counts();
    assert_eq!(
        counts.submitted,
        (TASKS / 2 - refused_full) as u64,
        "seed {seed}"
    );
    assert_eq!(counts.submitted, counts.ended(), "seed {seed}: {counts:?}");
    assert_eq!(
        counts.stopped,
        report.unfinished.len() as u64,
        "seed {seed}"
    );
    assert_eq!(counts.succeeded, ok, "seed {seed}");
    assert_eq!(counts.failed, failed, "seed {seed}");
    assert_eq!(counts.timed_out, timed_out, "seed {seed}");
    assert_eq!(counts.cancelled + counts.stopped, cancelled, "seed {seed}");
    assert!(manager.active_tasks().is_empty(), "seed {seed}");
    assert_eq!(manager.analytics().memory.used, 0, "seed {seed}");
}
