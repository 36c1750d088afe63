//! Values, errors, panics, awaiting, ids and snapshots: the first things a user sees.

use std::time::Duration;

use errand_core::State;
use errand_core::engine::{BoxError, CancelError, Context, Task, TaskErrorKind};

use crate::Adapter;
use crate::support::{ConnectionError, PATIENCE, block_worker, one_worker, wait};

/// A blocking task and an async task both deliver their values through their handles.
pub fn blocking_and_async_tasks_return_their_values<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let blocking = manager
        .spawn_blocking(|ctx: &Context| Ok::<_, BoxError>(ctx.attempt() * 10))
        .unwrap();
    let asynchronous = manager
        .spawn(|ctx: Context| async move { Ok::<_, BoxError>(format!("{}", ctx.id())) })
        .unwrap();
    let id = asynchronous.id();
    assert_eq!(wait(blocking).unwrap(), 10);
    assert_eq!(wait(asynchronous).unwrap(), id.to_string());
    assert_eq!(manager.state(id), Some(State::Succeeded));
}

/// A handle is a future resolving to the task's result.
pub fn handles_can_be_awaited<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let handle = manager
        .spawn(|_ctx: Context| async { Ok::<_, BoxError>(7_u8) })
        .unwrap();
    assert_eq!(futures_lite::future::block_on(handle).unwrap(), 7);
}

/// A returned error is a failure whose source downcasts to the task's error type.
pub fn errors_are_downcastable_failures<A: Adapter>() {
    let manager = one_worker::<A>();
    let handle = manager
        .spawn_blocking(|_: &Context| Err::<(), _>(ConnectionError))
        .unwrap();
    let id = handle.id();
    let error = wait(handle).unwrap_err();
    assert_eq!(error.kind(), TaskErrorKind::Failed);
    assert!(error.downcast_ref::<ConnectionError>().is_some());
    assert_eq!(
        error.to_string(),
        "task failed: failed to connect to external service"
    );
    assert_eq!(manager.state(id), Some(State::Failed));
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
        .spawn_blocking(|_: &Context| -> Result<(), BoxError> { panic!("boom in a closure") })
        .unwrap();
    let error = wait(blocking).unwrap_err();
    assert_eq!(error.kind(), TaskErrorKind::Panicked);
    assert_eq!(error.panic_message(), Some("boom in a closure"));
    let asynchronous = manager
        .spawn(|_ctx: Context| async {
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
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>("alive"))
        .unwrap();
    assert_eq!(wait(after).unwrap(), "alive");
    assert_eq!(manager.counts().panicked, 2);
    assert_eq!(manager.counts().failed, 2);
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
    assert_eq!(manager.state(id), None);
    assert!(manager.task(id).is_none());
    assert_eq!(manager.cancel(id), Err(CancelError::Unknown { id }));
    assert!("t-3-x".parse::<errand_core::TaskId>().is_err());
}

/// Task snapshots, counts and shutdown reports serialize.
pub fn snapshots_serialize<A: Adapter>() {
    let manager = one_worker::<A>();
    let handle = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(())).label("json"))
        .unwrap();
    let id = handle.id();
    wait(handle).unwrap();
    let json = serde_json::to_value(manager.task(id).unwrap()).unwrap();
    assert_eq!(json["id"], id.to_string());
    assert_eq!(json["state"], "succeeded");
    assert_eq!(json["label"], "json");
    let counts = serde_json::to_value(manager.counts()).unwrap();
    assert_eq!(counts["succeeded"], 1);
    let report = serde_json::to_value(manager.shutdown(PATIENCE).wait()).unwrap();
    assert_eq!(report["completed"], true);
}
