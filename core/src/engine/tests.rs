//! Engine unit tests on a minimal thread runtime that joins its threads, small enough
//! for miri, which checks the job cell's hand-offs (protocol rules 2-3) on every path
//! that moves a job: start, cancel from each waiting state, retry, reschedule, timeout,
//! and a blocking attempt detached through its latch (rule 8).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use std::vec::Vec;

use super::{BoxError, Builder, Context, Driver, Every, Manager, Runtime, Task};
use crate::{RetryPolicy, State};

/// One thread per driver; remembers them so a test can join them at its end.
#[derive(Clone, Default)]
struct Joined(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Runtime for Joined {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        let thread = std::thread::Builder::new().spawn(move || driver.run_blocking())?;
        self.0.lock().unwrap().push(thread);
        Ok(())
    }
}

fn manager(capacity: usize) -> (Manager<Joined>, Joined) {
    let runtime = Joined::default();
    let manager = Builder::new(runtime.clone())
        .workers(1)
        .queue_capacity(capacity)
        .history(8)
        .seed(1)
        .build()
        .unwrap();
    (manager, runtime)
}

/// Shuts down, drops the manager and joins every driver thread.
fn finish(manager: Manager<Joined>, runtime: &Joined) {
    let report = manager.shutdown(Duration::from_secs(30)).wait();
    assert!(report.unfinished.is_empty());
    drop(manager);
    join(runtime);
}

/// Joins every driver thread, replacements started meanwhile included.
fn join(runtime: &Joined) {
    loop {
        let threads: Vec<_> = runtime.0.lock().unwrap().drain(..).collect();
        if threads.is_empty() {
            return;
        }
        for thread in threads {
            thread.join().unwrap();
        }
    }
}

#[test]
fn blocking_async_retry_and_recurring_jobs_move_through_the_cell() {
    let (manager, runtime) = manager(4);
    let blocking = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(1))
        .unwrap();
    let asynchronous = manager
        .spawn(|ctx: Context| async move { Ok::<_, BoxError>(ctx.attempt()) })
        .unwrap();
    let retried = manager
        .submit(
            Task::blocking(|ctx: &Context| {
                if ctx.attempt() < 2 {
                    Err(BoxError::from("again"))
                } else {
                    Ok(ctx.attempt())
                }
            })
            .retry(
                RetryPolicy::builder()
                    .max_retries(1)
                    .initial_delay(Duration::ZERO)
                    .build()
                    .unwrap(),
            ),
        )
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let recurring = manager
        .submit(
            Task::blocking({
                let runs = Arc::clone(&runs);
                move |_: &Context| Ok::<_, BoxError>(runs.fetch_add(1, Ordering::SeqCst))
            })
            .every(Every::new(Duration::from_millis(1)).times(2)),
        )
        .unwrap();
    assert_eq!(blocking.wait().unwrap(), 1);
    assert_eq!(asynchronous.wait().unwrap(), 1);
    assert_eq!(retried.wait().unwrap(), 2);
    assert_eq!(recurring.wait().unwrap(), 1);
    finish(manager, &runtime);
}

#[test]
fn cancels_take_the_job_from_every_waiting_state() {
    let (manager, runtime) = manager(4);
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let blocker = manager
        .spawn_blocking({
            let gate = Arc::clone(&gate);
            let started = Arc::clone(&started);
            move |_: &Context| {
                started.store(1, Ordering::SeqCst);
                drop(gate.lock().unwrap());
                Ok::<_, BoxError>(())
            }
        })
        .unwrap();
    while started.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let queued = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    let scheduled = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_secs(3600)),
        )
        .unwrap();
    assert_eq!(queued.state(), State::Queued);
    assert_eq!(scheduled.state(), State::Scheduled);
    queued.cancel().unwrap();
    scheduled.cancel().unwrap();
    assert!(queued.wait().unwrap_err().is_cancelled());
    assert!(scheduled.wait().unwrap_err().is_cancelled());
    drop(held);
    blocker.wait().unwrap();
    finish(manager, &runtime);
}

#[test]
fn a_running_async_job_is_dropped_on_timeout() {
    let (manager, runtime) = manager(2);
    let handle = manager
        .submit(
            Task::future(|_ctx: Context| async {
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            })
            .timeout(Duration::from_millis(1)),
        )
        .unwrap();
    assert!(handle.wait().unwrap_err().is_timed_out());
    finish(manager, &runtime);
}

/// A fire-and-forget task's captures and result are dropped when it ends, though its
/// emptied cell may wait in its worker's batch (`driver::Graves`) until the worker runs out
/// of work.
#[test]
fn fire_and_forget_captures_and_results_drop_at_the_end() {
    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (manager, runtime) = manager(8);
    let captured = Arc::new(());
    let results = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let captured = Arc::clone(&captured);
        let results = Arc::clone(&results);
        drop(
            manager
                .spawn_blocking(move |_: &Context| {
                    let _captured = &captured;
                    Ok::<_, BoxError>(Counted(Arc::clone(&results)))
                })
                .unwrap(),
        );
    }
    assert!(manager.wait_for_completion(Duration::from_secs(30)).wait());
    assert_eq!(Arc::strong_count(&captured), 1, "every closure was dropped");
    assert_eq!(
        results.load(Ordering::SeqCst),
        3,
        "every result was dropped"
    );
    finish(manager, &runtime);
}

/// A blocking attempt that times out while it runs is detached: its handle resolves at
/// once through the latch (rule 8) while the closure still runs, a replacement worker
/// starts (rule 9), and when the closure returns its output is dropped, its worker
/// retires and the slot is reclaimed.
#[test]
fn a_running_blocking_job_is_detached_on_timeout() {
    /// Counts its drops.
    #[derive(Debug)]
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (manager, runtime) = manager(4);
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let stuck = manager
        .submit(
            Task::blocking({
                let gate = Arc::clone(&gate);
                let dropped = Arc::clone(&dropped);
                move |_: &Context| {
                    drop(gate.lock().unwrap());
                    Ok::<_, BoxError>(Counted(Arc::clone(&dropped)))
                }
            })
            .timeout(Duration::from_millis(1)),
        )
        .unwrap();
    let id = stuck.id();
    assert!(
        stuck.wait().unwrap_err().is_timed_out(),
        "resolved while it runs"
    );
    assert_eq!(manager.detached().len(), 1);
    assert!(manager.task(id).unwrap().detached);
    // The replacement worker runs the next task while the first closure is stuck.
    let next = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(7))
        .unwrap();
    assert_eq!(next.wait().unwrap(), 7);
    // Its task has ended: a shutdown does not wait for it, and reports it if it still
    // runs.
    let report = manager.shutdown(Duration::from_secs(30)).wait();
    assert!(report.completed);
    drop(held);
    // Every driver thread exits once its work is done; the stuck worker only after the
    // closure returned and its attempt ended.
    join(&runtime);
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the output was dropped");
    assert_eq!(manager.analytics().detached, 0);
    assert_eq!(manager.counts().detached, 1);
    let info = manager.task(id).unwrap();
    assert_eq!((info.state, info.detached), (State::TimedOut, false));
}

/// A charge wider than the slot's 32 bits (a weight of 5 GiB, accounting only) is held
/// while the task lives and given back whole when it ends, beside a plain task's.
#[cfg(target_pointer_width = "64")]
#[test]
fn a_charge_past_32_bits_is_held_and_given_back_whole() {
    let runtime = Joined::default();
    let manager = Builder::new(runtime.clone())
        .workers(1)
        .queue_capacity(4)
        .memory_pool_mb(8 << 10)
        .seed(1)
        .build()
        .unwrap();
    let (gate, opened) = std::sync::mpsc::channel::<()>();
    let opened = Mutex::new(opened);
    let wide = 5_usize << 30;
    let held = manager
        .submit(
            Task::blocking(move |_: &Context| {
                opened.lock().unwrap().recv().ok();
                Ok::<_, BoxError>(())
            })
            .weight(wide),
        )
        .unwrap();
    let plain = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    let used = manager.analytics().memory.used;
    assert!(used > wide, "the wide charge is held: {used} B in use");
    gate.send(()).unwrap();
    held.wait().unwrap();
    plain.wait().unwrap();
    assert!(manager.wait_for_completion(Duration::from_secs(30)).wait());
    assert_eq!(manager.analytics().memory.used, 0, "every byte given back");
    finish(manager, &runtime);
}

/// Polls `future` to its end on this thread, parking between wake-ups; calls `pending`
/// once, after the first poll that did not finish.
fn block_on<F: std::future::Future>(future: F, pending: impl FnOnce()) -> F::Output {
    let mut pending = Some(pending);
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        if let Some(pending) = pending.take() {
            pending();
        }
        std::thread::park();
    }
}

/// `Context::cancelled` awaited away from the attempt (a clone of the context, on a
/// thread of the task's own) is woken by the task's cancel: every awaiter listens on the
/// engine's one cancellation event and re-checks its own task.
#[test]
fn a_context_awaited_on_another_thread_wakes_on_cancel() {
    let (manager, runtime) = manager(2);
    let (started_tx, started) = std::sync::mpsc::channel();
    let (woken_tx, woken) = std::sync::mpsc::channel();
    let handle = manager
        .spawn_blocking(move |ctx: &Context| {
            let waiter = {
                let ctx = ctx.clone();
                let woken_tx = woken_tx.clone();
                // Told once the awaiter listens (its first poll found no cancel).
                let started_tx = started_tx.clone();
                std::thread::spawn(move || {
                    block_on(ctx.cancelled(), || started_tx.send(()).unwrap());
                    woken_tx.send(()).unwrap();
                })
            };
            waiter.join().unwrap();
            Ok::<_, BoxError>(())
        })
        .unwrap();
    started.recv().unwrap();
    handle.cancel().unwrap();
    // A hang guard, not a timing: the wake-up comes at once or never.
    woken
        .recv_timeout(Duration::from_secs(120))
        .expect("the awaiter on the other thread was woken");
    assert!(handle.wait().unwrap_err().is_cancelled());
    finish(manager, &runtime);
}

/// A cancel finds a timer entry in whichever shard armed it: a retry delay armed by the
/// worker (its own shard) and a delayed start armed by this thread are both taken back
/// at once, so both tasks are finalized (in the history) before their timers are due.
#[test]
fn a_cancel_takes_a_timer_entry_from_any_shard() {
    let (manager, runtime) = manager(4);
    let retrying = manager
        .submit(
            Task::blocking(|_: &Context| Err::<(), _>(BoxError::from("again"))).retry(
                RetryPolicy::builder()
                    .max_retries(1)
                    .initial_delay(Duration::from_secs(3600))
                    .build()
                    .unwrap(),
            ),
        )
        .unwrap();
    let delayed = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_secs(3600)),
        )
        .unwrap();
    while retrying.state() != State::Retrying {
        std::thread::yield_now();
    }
    for handle in [&retrying, &delayed] {
        handle.cancel().unwrap();
    }
    let finished: Vec<_> = manager
        .finished_tasks()
        .iter()
        .map(|info| info.id)
        .collect();
    assert!(finished.contains(&retrying.id()), "{finished:?}");
    assert!(finished.contains(&delayed.id()), "{finished:?}");
    assert!(retrying.wait().unwrap_err().is_cancelled());
    assert!(delayed.wait().unwrap_err().is_cancelled());
    finish(manager, &runtime);
}
