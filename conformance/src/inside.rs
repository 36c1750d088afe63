//! The manager driven from inside the runtime's own tasks, as a web handler drives it:
//! submitting and awaiting from a task, a task that submits and awaits another, waiting
//! for completion and shutting down from a task. Every wait here is an `.await`, bounded
//! by the manager's own timer (no runtime timer is assumed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_core::State;
use errand_core::engine::{BoxError, Context, Task};

use crate::Adapter;
use crate::support::{Gate, PATIENCE};

/// Handles are awaited inside a runtime task: async and blocking work, a task's sleep,
/// and a `wait_for_completion` that times out (its deadline kept by the manager's timer
/// driver) and then one that completes.
pub fn handles_are_awaited_inside_the_runtime<A: Adapter>() {
    let manager = Arc::new(A::builder().workers(2).build().unwrap());
    let report = A::run_inside({
        let manager = Arc::clone(&manager);
        async move {
            let started = Instant::now();
            let slept = manager
                .spawn(|ctx: Context| async move {
                    ctx.sleep(Duration::from_millis(30)).await;
                    Ok::<_, BoxError>(ctx.attempt())
                })
                .unwrap();
            let blocking = manager
                .spawn_blocking(|_: &Context| Ok::<_, BoxError>("blocking"))
                .unwrap();
            assert_eq!(blocking.await.unwrap(), "blocking");
            assert_eq!(slept.await.unwrap(), 1);
            assert!(
                started.elapsed() >= Duration::from_millis(30),
                "slept early"
            );
            // A gate holds a task: the wait times out at its deadline, then completes.
            let gate = Gate::default();
            let held = manager
                .spawn_blocking({
                    let gate = gate.clone();
                    move |_: &Context| {
                        gate.wait();
                        Ok::<_, BoxError>(())
                    }
                })
                .unwrap();
            assert!(!manager.wait_for_completion(Duration::from_millis(20)).await);
            gate.open();
            assert!(manager.wait_for_completion(PATIENCE).await);
            held.await.unwrap();
            manager.counts()
        }
    });
    assert_eq!(report.succeeded, 3);
}

/// A task submits another task to the manager it runs on and awaits its handle.
pub fn a_task_submits_and_awaits_another<A: Adapter>() {
    let manager = Arc::new(A::builder().workers(2).build().unwrap());
    let parent = manager
        .submit(Task::future({
            let manager = Arc::clone(&manager);
            move |_ctx: Context| {
                let manager = Arc::clone(&manager);
                async move {
                    let child = manager
                        .spawn(|ctx: Context| async move { Ok::<_, BoxError>(ctx.id()) })
                        .map_err(|error| BoxError::from(error.to_string()))?;
                    let child_id = child.id();
                    assert_eq!(child.await?, child_id);
                    Ok::<_, BoxError>(child_id)
                }
            }
        }))
        .unwrap();
    let child_id = A::run_inside(async move { parent.await.unwrap() });
    assert_eq!(manager.state(child_id), Some(State::Succeeded));
}

/// A shutdown awaited from a runtime task: it stops accepting, waits out its grace period
/// (kept by the manager's timer), stops the delayed task and reports it.
pub fn shutdown_is_awaited_from_a_task<A: Adapter>() {
    let manager = Arc::new(A::builder().workers(1).build().unwrap());
    let report = A::run_inside({
        let manager = Arc::clone(&manager);
        async move {
            let quick = manager
                .spawn(|ctx: Context| async move {
                    ctx.sleep(Duration::from_millis(5)).await;
                    Ok::<_, BoxError>(1)
                })
                .unwrap();
            let later = manager
                .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(2)).delay(PATIENCE))
                .unwrap();
            assert_eq!(quick.await.unwrap(), 1);
            let report = manager.shutdown(Duration::from_millis(20)).await;
            assert!(later.await.unwrap_err().is_cancelled());
            assert!(!manager.is_accepting());
            report
        }
    });
    assert!(!report.completed);
    assert_eq!(report.unfinished.len(), 1);
    assert_eq!(report.unfinished[0].state, State::Scheduled);
    assert!(report.detached.is_empty());
}
