//! A hostile user's probes (issue 11, A–D), each once a defect: user code that panics
//! outside a task's body (a closure's drop, a result's clone, an error's `Display` or
//! drop, a cancelled future's drop) used to kill the worker and stall the manager; a
//! blocking task past its timeout or cancelled kept its waiters until the closure
//! returned; an unlimited schedule stopped after `u32::MAX` ticks; extreme settings
//! panicked or aborted the process.
//!
//! Every "the worker lives on" check runs a follow-up task on the manager's only worker:
//! before the fixes it never ran (the wait failed after `PATIENCE`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use errand_core::engine::{
    BoxError, BuildErrorKind, Builder, Context, Every, Manager, Runtime, Task,
};
use errand_core::{RetryPolicy, State, TaskId};

use crate::Adapter;
use crate::support::{Gate, PATIENCE, one_worker, policy, wait};

/// Panics when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// Runs a follow-up task on `manager` and waits for it: the worker lives on. Everything
/// the worker did for earlier tasks (their notes included) is done by the time it starts
/// this one.
fn worker_lives_on<R: Runtime>(manager: &Manager<R>) {
    let next = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>("alive"))
        .unwrap();
    assert_eq!(wait(next).unwrap(), "alive");
}

/// The error text of task `id`'s snapshot.
fn error_of<R: Runtime>(manager: &Manager<R>, id: TaskId) -> String {
    manager
        .task(id)
        .expect("in the history")
        .error
        .unwrap_or_default()
}

/// A value captured by the closure panics when the closure is dropped at the task's end:
/// the task still succeeded (its value reached the handle), the panic is recorded beside
/// it, and the worker lives on.
pub fn a_panicking_closure_drop_leaves_the_worker_alive<A: Adapter>() {
    let manager = one_worker::<A>();
    let bomb = PanicOnDrop("boom in the closure's drop");
    let handle = manager
        .spawn_blocking(move |_: &Context| {
            let _captured = &bomb;
            Ok::<_, BoxError>(1)
        })
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 1);
    worker_lives_on(&manager);
    assert_eq!(manager.state(id), Some(State::Succeeded));
    assert!(
        error_of(&manager, id).contains("panicked: boom in the closure's drop"),
        "{}",
        error_of(&manager, id)
    );
    assert!(manager.counts().panicked >= 1);
}

/// A result whose `Clone` panics, for a task that stores its result: the value reaches the
/// handle, nothing is stored, the panic is recorded, and the worker lives on.
pub fn a_panicking_result_clone_leaves_the_worker_alive<A: Adapter>() {
    #[derive(Debug)]
    struct BadClone(u32);
    impl Clone for BadClone {
        fn clone(&self) -> Self {
            panic!("boom in clone");
        }
    }
    let manager = one_worker::<A>();
    let handle = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(BadClone(7))).store_result())
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap().0, 7);
    worker_lives_on(&manager);
    assert!(manager.stored_result::<BadClone>(id).is_none());
    assert!(error_of(&manager, id).contains("panicked: boom in clone"));
}

/// An error whose `Display` panics (the engine formats errors for snapshots): the task
/// fails with its error, its snapshot says the `Display` panicked, and the worker lives
/// on.
pub fn a_panicking_error_display_leaves_the_worker_alive<A: Adapter>() {
    #[derive(Debug)]
    struct BadDisplay;
    impl std::fmt::Display for BadDisplay {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            panic!("boom in display");
        }
    }
    impl std::error::Error for BadDisplay {}
    let manager = one_worker::<A>();
    let handle = manager
        .spawn_blocking(|_: &Context| Err::<(), _>(BadDisplay))
        .unwrap();
    let id = handle.id();
    let error = wait(handle).unwrap_err();
    assert!(error.downcast_ref::<BadDisplay>().is_some());
    worker_lives_on(&manager);
    assert_eq!(manager.state(id), Some(State::Failed));
    assert!(error_of(&manager, id).contains("Display panicked: boom in display"));
}

/// An error that panics when dropped (the engine drops a failed attempt's error when it
/// retries): the retry happens, the panic is recorded, and the worker lives on.
pub fn a_panicking_error_drop_leaves_the_worker_alive<A: Adapter>() {
    #[derive(Debug)]
    struct BadDrop(Arc<AtomicBool>);
    impl Drop for BadDrop {
        fn drop(&mut self) {
            if self.0.swap(false, Ordering::SeqCst) {
                panic!("boom in the error's drop");
            }
        }
    }
    impl std::fmt::Display for BadDrop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bad drop")
        }
    }
    impl std::error::Error for BadDrop {}
    let manager = one_worker::<A>();
    let armed = Arc::new(AtomicBool::new(true));
    let handle = manager
        .submit(
            Task::blocking(move |ctx: &Context| {
                if ctx.attempt() == 1 {
                    Err(BadDrop(Arc::clone(&armed)))
                } else {
                    Ok(ctx.attempt())
                }
            })
            .retry(policy(1, 1)),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 2);
    worker_lives_on(&manager);
    assert_eq!(manager.counts().retried, 1);
    assert!(error_of(&manager, id).contains("panicked: boom in the error's drop"));
}

/// An async task whose future panics in `Drop` when it is cancelled mid-flight: the task
/// ends cancelled, the panic is recorded, and the worker lives on.
pub fn a_future_panicking_in_drop_on_cancel_leaves_the_worker_alive<A: Adapter>() {
    let manager = one_worker::<A>();
    let started = Gate::default();
    let handle = manager
        .spawn({
            let started = started.clone();
            move |_ctx: Context| {
                let started = started.clone();
                async move {
                    let _bomb = PanicOnDrop("boom in the future's drop");
                    started.open();
                    std::future::pending::<()>().await;
                    Ok::<_, BoxError>(())
                }
            }
        })
        .unwrap();
    let id = handle.id();
    started.wait();
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    worker_lives_on(&manager);
    assert_eq!(manager.state(id), Some(State::Cancelled));
    assert!(error_of(&manager, id).contains("panicked: boom in the future's drop"));
}

/// Counts its drops (a detached attempt's output is dropped, not stored).
#[derive(Clone, Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A blocking task that ignores its timeout and blocks on `gate`: its output counts into
/// `dropped`.
fn stubborn(
    gate: &Gate,
    started: &Gate,
    dropped: &Arc<AtomicUsize>,
) -> impl FnMut(&Context) -> Result<Counted, BoxError> + Send + 'static {
    let (gate, started, dropped) = (gate.clone(), started.clone(), Arc::clone(dropped));
    move |_: &Context| {
        started.open();
        gate.wait();
        Ok(Counted(Arc::clone(&dropped)))
    }
}

/// A blocking task whose closure ignores its timeout: its handle resolves `TimedOut` at
/// the deadline while the closure still runs (the closure is detached). Analytics count
/// it, a shutdown's report lists it, and when it returns its output is dropped, not
/// stored.
pub fn a_blocking_task_past_its_timeout_resolves_at_once<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, started) = (Gate::default(), Gate::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    let handle = manager
        .submit(
            Task::blocking(stubborn(&gate, &started, &dropped))
                .timeout(Duration::from_millis(20))
                .store_result(),
        )
        .unwrap();
    let id = handle.id();
    // Resolves while the closure is still blocked on the gate.
    assert!(wait(handle).unwrap_err().is_timed_out());
    started.wait();
    let info = manager.task(id).unwrap();
    assert_eq!((info.state, info.detached), (State::TimedOut, true));
    assert_eq!(manager.counts().detached, 1);
    assert_eq!(manager.analytics().detached, 1);
    let report = manager.shutdown(PATIENCE).wait();
    assert!(report.completed, "its task has ended");
    assert_eq!(
        report
            .detached
            .iter()
            .map(|info| info.id)
            .collect::<Vec<_>>(),
        [id]
    );
    gate.open();
    assert!(manager.wait_for_detached(PATIENCE).wait());
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the output was dropped");
    assert!(manager.stored_result::<Counted>(id).is_none());
    assert_eq!(manager.analytics().detached, 0);
    assert!(!manager.task(id).unwrap().detached);
}

/// Cancelling a running blocking task resolves every kind of waiter at once: by the time
/// `cancel` returns its handle has its end, so `wait`, `.await` and `wait_for_completion`
/// return while the closure runs on.
pub fn a_cancelled_blocking_task_resolves_waiters_at_once<A: Adapter>() {
    let manager = one_worker::<A>();
    let (gate, started) = (Gate::default(), Gate::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    let waited = manager
        .spawn_blocking(stubborn(&gate, &started, &dropped))
        .unwrap();
    started.wait();
    // Queued behind it, or running on a replacement worker: either way blocking too.
    let awaited = manager
        .spawn_blocking(stubborn(&gate, &Gate::default(), &dropped))
        .unwrap();
    waited.cancel().unwrap();
    assert!(waited.is_finished(), "resolved when cancel returned");
    awaited.cancel().unwrap();
    assert!(awaited.is_finished());
    assert!(wait(waited).unwrap_err().is_cancelled());
    assert!(
        futures_lite::future::block_on(awaited)
            .unwrap_err()
            .is_cancelled()
    );
    assert!(manager.wait_for_completion(PATIENCE).wait());
    gate.open();
    assert!(manager.wait_for_detached(PATIENCE).wait());
    assert!(dropped.load(Ordering::SeqCst) >= 1);
}

/// A cancel that wins against a blocking task at any moment of its start — queued, being
/// claimed by a worker, running — has resolved its handle by the time it returns. A worker holds the
/// task's cold lock from its `Start` until the attempt's latch is stored (engine rule 8);
/// before that, a cancel landing between the two found no latch, and its handle waited for
/// the closure (about 1 in 200 runs of the check above on errand-smol). Here many rounds
/// cancel after a varying delay, from a spinning worker (claim within nanoseconds) and a
/// parked one (claim after its wake-up), so some land inside the claim.
pub fn a_blocking_task_cancelled_while_it_starts_resolves_at_once<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    for round in 0..1_500u32 {
        if round % 4 == 0 {
            // Long enough for the workers' spin to end: the next claim follows a wake-up.
            std::thread::sleep(Duration::from_micros(300));
        }
        let handle = manager
            .spawn_blocking(|_: &Context| {
                std::thread::sleep(Duration::from_micros(200));
                Ok::<_, BoxError>(())
            })
            .unwrap();
        for _ in 0..(round % 97) * 40 {
            std::hint::spin_loop();
        }
        // A cancel that lost to the task's own end says so; that end reaches the handle
        // a moment later (the worker publishes the state, then completes the handle).
        if handle.cancel().is_ok() {
            assert!(
                handle.is_finished(),
                "round {round}: cancel won and the handle has no end"
            );
            assert!(wait(handle).unwrap_err().is_cancelled());
        } else {
            assert!(wait(handle).is_ok(), "round {round}: lost to a success");
        }
    }
    assert!(manager.wait_for_completion(PATIENCE).wait());
    assert!(manager.wait_for_detached(PATIENCE).wait());
}

/// A detached closure does not take capacity away: with one worker stuck in one, a new
/// task still runs (on errand-threads a replacement worker runs it, up to `max_detached`
/// at once; on the async adapters the closure holds a blocking-pool thread, not the
/// worker).
pub fn detached_closures_keep_the_pool_at_full_strength<A: Adapter>() {
    let manager = A::builder().workers(1).max_detached(3).build().unwrap();
    let (gate, started) = (Gate::default(), Gate::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    for round in 0..3 {
        let stuck = manager
            .submit(
                Task::blocking(stubborn(&gate, &started, &dropped))
                    .timeout(Duration::from_millis(10)),
            )
            .unwrap();
        assert!(wait(stuck).unwrap_err().is_timed_out(), "round {round}");
        let next = manager
            .spawn_blocking(move |_: &Context| Ok::<_, BoxError>(round))
            .unwrap();
        assert_eq!(wait(next).unwrap(), round);
    }
    assert_eq!(manager.analytics().detached, 3);
    gate.open();
    assert!(manager.wait_for_detached(PATIENCE).wait());
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
    // The pool is back to its size: one task at a time still runs.
    wait(
        manager
            .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
            .unwrap(),
    )
    .unwrap();
}

/// An unlimited schedule never ends by itself: one anchored 50 days back (at 1 ms, more
/// than `u32::MAX` ticks ago) keeps running. It used to end after its first run.
pub fn an_unlimited_schedule_runs_past_u32_ticks<A: Adapter>() {
    let Some(long_ago) = Instant::now().checked_sub(Duration::from_secs(50 * 24 * 3600)) else {
        panic!("this platform's clock cannot go 50 days back");
    };
    let manager = one_worker::<A>();
    let runs = Arc::new(AtomicUsize::new(0));
    let third = Gate::default();
    let handle = manager
        .submit(
            Task::blocking({
                let runs = Arc::clone(&runs);
                let third = third.clone();
                move |_: &Context| {
                    if runs.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
                        third.open();
                    }
                    Ok::<_, BoxError>(())
                }
            })
            .at(long_ago)
            .every(Every::new(Duration::from_millis(1))),
        )
        .unwrap();
    third.wait();
    assert_ne!(
        handle.state(),
        State::Succeeded,
        "an unlimited schedule ended"
    );
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    assert!(runs.load(Ordering::SeqCst) >= 3);
}

/// Every builder setting has a limit, and one past it is a typed error naming it (not a
/// "capacity overflow" panic, nor an abort on a huge allocation).
pub fn extreme_settings_are_typed_errors<A: Adapter>() {
    type B<A> = Builder<<A as Adapter>::Runtime>;
    let refused = |builder: B<A>| {
        let error = builder.build().expect_err("refused");
        assert_eq!(error.kind(), BuildErrorKind::OutOfRange, "{error}");
        error.setting()
    };
    assert_eq!(refused(A::builder().history(usize::MAX)), "history");
    assert_eq!(
        refused(A::builder().queue_capacity(u32::MAX as usize)),
        "queue_capacity"
    );
    assert_eq!(refused(A::builder().queue_capacity(0)), "queue_capacity");
    assert_eq!(refused(A::builder().workers(0)), "workers");
    assert_eq!(refused(A::builder().workers(usize::MAX)), "workers");
    assert_eq!(
        refused(A::builder().max_detached(usize::MAX)),
        "max_detached"
    );
    assert_eq!(
        refused(A::builder().default_timeout(Some(Duration::ZERO))),
        "default_timeout"
    );
    assert_eq!(
        refused(A::builder().default_result_ttl(Duration::ZERO)),
        "default_result_ttl"
    );
    // At their limits, or with settings that saturate, managers build and run.
    let manager = A::builder()
        .workers(1)
        .history(B::<A>::MAX_HISTORY)
        .memory_pool_mb(usize::MAX)
        .default_timeout(Some(Duration::MAX))
        .default_result_ttl(Duration::MAX)
        .default_retry(RetryPolicy::none())
        .build()
        .unwrap();
    let handle = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(5)).store_result())
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 5);
    assert_eq!(manager.stored_result::<i32>(id).as_deref(), Some(&5));
}
