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
use errand_core::{Mode, Priority, State};

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
    Arc::try_unwrap(ran).unwrap().into_inner().unwrap()
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
