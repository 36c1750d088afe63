//! Cancelling tasks in every state, and dropping the manager.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use errand_core::State;
use errand_core::engine::{BoxError, CancelError, Context, Task};

use crate::Adapter;
use crate::support::{Gate, PATIENCE, block_worker, one_worker, wait};

/// A task cancelled while queued ends cancelled at once and never runs.
pub fn cancelling_a_queued_task_means_it_never_runs<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, blocker) = block_worker(&manager);
    let ran = Arc::new(AtomicBool::new(false));
    let handle = manager
        .spawn_blocking({
            let ran = Arc::clone(&ran);
            move |_: &Context| {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
        .unwrap();
    let id = handle.id();
    assert_eq!(manager.state(id), Some(State::Queued));
    handle.cancel().unwrap();
    assert_eq!(handle.state(), State::Cancelled);
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
    wait(
        manager
            .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
            .unwrap(),
    )
    .unwrap();
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
        .spawn({
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
    assert_eq!(handle.state(), State::Running);
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    // The worker drops the future before it takes the next task.
    wait(
        manager
            .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
            .unwrap(),
    )
    .unwrap();
    assert!(dropped.load(Ordering::SeqCst));
}

/// Cancelling a running blocking task resolves its handle at once, even while the
/// closure runs; the closure sees `is_cancelled()` turn true, and its output is dropped.
pub fn cancelling_a_running_blocking_task_resolves_at_once<A: Adapter>() {
    let manager = one_worker::<A>();
    let started = Gate::default();
    let release = Gate::default();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let handle = manager
        .spawn_blocking({
            let started = started.clone();
            let release = release.clone();
            let saw_cancel = Arc::clone(&saw_cancel);
            move |ctx: &Context| {
                started.open();
                let deadline = std::time::Instant::now() + PATIENCE;
                while !ctx.is_cancelled() {
                    assert!(std::time::Instant::now() < deadline, "never cancelled");
                    std::thread::yield_now();
                }
                saw_cancel.store(true, Ordering::SeqCst);
                release.wait();
                Ok::<_, BoxError>("finished anyway")
            }
        })
        .unwrap();
    let id = handle.id();
    started.wait();
    handle.cancel().unwrap();
    // The closure is still held by `release`: the handle resolved without it.
    assert!(wait(handle).unwrap_err().is_cancelled());
    assert!(manager.task(id).unwrap().detached);
    release.open();
    assert!(manager.wait_for_detached(PATIENCE).wait());
    assert!(saw_cancel.load(Ordering::SeqCst));
    assert_eq!(manager.state(id), Some(State::Cancelled));
    assert_eq!(manager.counts().detached, 1);
}

/// Dropping the manager cancels the tasks that have not ended; their handles resolve.
pub fn dropping_the_manager_cancels_pending_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    drop(manager);
    assert!(wait(queued).unwrap_err().is_cancelled());
    gate.open();
    assert!(wait(blocker).unwrap_err().is_cancelled());
}

/// Cancelling a scheduled task ends it at once and frees its slot for a new task.
pub fn cancelling_a_delayed_task_frees_its_slot<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(1).build().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let delayed = manager
        .submit(
            Task::blocking({
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
    let next = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(5))
        .unwrap();
    assert_eq!(wait(next).unwrap(), 5);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(manager.active_tasks().is_empty());
}
