//! Delays and timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use errand_core::engine::{BoxError, Context, Task};
use errand_core::{RetryDecision, State};

use crate::Adapter;
use crate::support::{Gate, PATIENCE, one_worker, policy, wait};

/// A delayed task waits `Scheduled` and starts no earlier than its delay (or instant).
pub fn delayed_tasks_never_start_early<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let delay = Duration::from_millis(120);
    let submitted = Instant::now();
    let after = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(Instant::now())).delay(delay))
        .unwrap();
    assert_eq!(after.state(), State::Scheduled);
    let at = submitted + Duration::from_millis(80);
    let at_handle = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(Instant::now())).at(at))
        .unwrap();
    assert!(wait(after).unwrap() >= submitted + delay);
    assert!(wait(at_handle).unwrap() >= at);
    // An instant in the past means now.
    let past = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(1)).at(submitted))
        .unwrap();
    assert_eq!(wait(past).unwrap(), 1);
}

/// A timed-out async attempt's future is dropped at the deadline, not before; the task
/// ends `TimedOut`.
pub fn timeouts_drop_async_work_at_the_deadline<A: Adapter>() {
    let manager = one_worker::<A>();
    let timeout = Duration::from_millis(60);
    let started = Instant::now();
    let handle = manager
        .submit(
            Task::future(|_ctx: Context| async {
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
    assert_eq!(manager.state(id), Some(State::TimedOut));
    assert_eq!(manager.counts().timed_out, 1);
    // The worker is free again.
    wait(
        manager
            .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
            .unwrap(),
    )
    .unwrap();
}

/// A timed-out blocking attempt sees `is_cancelled()` and the task ends `TimedOut`.
pub fn timeouts_tell_blocking_work_to_stop<A: Adapter>() {
    let manager = one_worker::<A>();
    let timeout = Duration::from_millis(40);
    let started = Instant::now();
    let handle = manager
        .submit(
            Task::blocking(|ctx: &Context| {
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
            Task::blocking(|ctx: &Context| {
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
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(3)).timeout(PATIENCE))
        .unwrap();
    assert_eq!(wait(quick).unwrap(), 3);
}

/// `Context::sleep` works on every adapter (the manager's timer driver wakes it), never
/// wakes early, and a cancelled task's sleep ends with its future.
pub fn tasks_sleep_on_every_adapter<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let nap = Duration::from_millis(30);
    let handle = manager
        .spawn(move |ctx: Context| async move {
            let started = Instant::now();
            ctx.sleep(nap).await;
            let first = started.elapsed();
            // A deadline in the past completes at once.
            ctx.sleep_until(started).await;
            Ok::<_, BoxError>(first)
        })
        .unwrap();
    assert!(wait(handle).unwrap() >= nap);
    let started = Gate::default();
    let long = manager
        .spawn({
            let started = started.clone();
            move |ctx: Context| {
                let started = started.clone();
                async move {
                    started.open();
                    ctx.sleep(Duration::from_secs(3600)).await;
                    Ok::<_, BoxError>(())
                }
            }
        })
        .unwrap();
    started.wait();
    long.cancel().unwrap();
    assert!(wait(long).unwrap_err().is_cancelled());
    assert!(manager.wait_for_completion(PATIENCE).wait());
}
