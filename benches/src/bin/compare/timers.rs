//! `delayed_insert` (scheduling a task for later) and `recurring_overhead` (CPU per fired
//! recurring run), errand-tokio beside tokio's own timers.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use errand_benches::cpu::process_time;
use errand_benches::report::{Line, Unit, median};
use errand_core::engine::{BoxError, Context, Every, Task};

use crate::adapters::{Adapter, TokioAdapter, WORKERS, finish, settle, wait_until};
use crate::{Runner, interleave};

/// Far enough that nothing fires while measured.
const FAR: Duration = Duration::from_secs(3600);

/// The recurring cases' interval.
const INTERVAL: Duration = Duration::from_millis(10);

/// `delayed_insert`: ns per delayed task scheduled.
pub(crate) fn delayed_insert(runner: &mut Runner, adapter: &TokioAdapter) {
    const CASE: &str = "delayed_insert";
    if !runner.wants(CASE) {
        return;
    }
    let n = runner.plan.delayed_tasks;
    let manager = adapter.manager(n + WORKERS);
    let errand = || {
        let mut handles = Vec::with_capacity(n);
        let start = Instant::now();
        for _ in 0..n {
            let task = Task::future(|_ctx: Context| async { Ok::<_, BoxError>(()) }).delay(FAR);
            handles.push(manager.submit(task).expect("a submission"));
        }
        let elapsed = start.elapsed();
        drop(manager.stop_all());
        settle(&manager);
        drop(handles);
        elapsed.as_nanos() as f64 / n as f64
    };
    let tokio = || {
        let registered = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        let start = Instant::now();
        for _ in 0..n {
            let registered = Arc::clone(&registered);
            handles.push(adapter.runtime.spawn(async move {
                let mut sleep = pin!(tokio::time::sleep(FAR));
                // Poll once: the timer is registered when this returns pending.
                std::future::poll_fn(|cx| {
                    let _ = sleep.as_mut().poll(cx);
                    Poll::Ready(())
                })
                .await;
                registered.fetch_add(1, Ordering::Release);
                sleep.await;
            }));
        }
        wait_until("every tokio task registered its sleep", || {
            registered.load(Ordering::Acquire) == n
        });
        let elapsed = start.elapsed();
        for handle in &handles {
            handle.abort();
        }
        adapter.block_on(async {
            for handle in handles {
                let _ = handle.await;
            }
        });
        elapsed.as_nanos() as f64 / n as f64
    };
    let (s, b) = interleave(
        &format!("{CASE} ({n} tasks, 1 h ahead)"),
        runner.plan.rounds.min(5),
        errand,
        tokio,
    );
    finish(manager);
    runner.emit(Line::new(
        CASE,
        "errand-tokio submit .delay(1 h)",
        "tokio::spawn(sleep(1 h)) until registered",
        Unit::Nanoseconds,
        median(&s),
        median(&b),
        false,
    ));
}

/// CPU ns per run over the measured window, while `runs` counts runs; also the runs per
/// second reached.
fn cpu_per_run(runs: &AtomicU64, window: Duration) -> (f64, f64) {
    // Let the schedule settle first.
    std::thread::sleep(Duration::from_millis(200));
    let (cpu, count) = (process_time(), runs.load(Ordering::Relaxed));
    std::thread::sleep(window);
    let cpu = process_time() - cpu;
    let count = runs.load(Ordering::Relaxed) - count;
    assert!(count > 0, "no recurring run in {window:?}");
    (
        cpu.as_nanos() as f64 / count as f64,
        count as f64 / window.as_secs_f64(),
    )
}

/// `recurring_overhead`: CPU ns per fired run.
pub(crate) fn recurring_overhead(runner: &mut Runner, adapter: &TokioAdapter) {
    const CASE: &str = "recurring_overhead";
    if !runner.wants(CASE) {
        return;
    }
    let tasks = runner.plan.recurring_tasks;
    let window = Duration::from_millis(runner.plan.recurring_window_ms);
    let nominal = tasks as f64 / INTERVAL.as_secs_f64();
    let manager = adapter.manager(tasks + WORKERS);
    let errand = || {
        // The same work per run as the baseline's loop body (one `fetch_add` on a shared
        // counter): a `&'static` counter (8 bytes leaked per round), where an `Arc`
        // cloned into each run's future would add two contended read-modify-writes per
        // run that the baseline's long-lived task does not pay.
        let runs: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let task = Task::future(move |_ctx: Context| async move {
                    runs.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, BoxError>(())
                })
                .every(Every::new(INTERVAL));
                manager.submit(task).expect("a submission")
            })
            .collect();
        let (ns, rate) = cpu_per_run(runs, window);
        eprintln!("  errand-tokio: {rate:.0} runs/s of {nominal:.0} due");
        drop(manager.stop_all());
        settle(&manager);
        drop(handles);
        ns
    };
    let tokio = || {
        let runs = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let runs = Arc::clone(&runs);
                adapter.runtime.spawn(async move {
                    let mut interval = tokio::time::interval(INTERVAL);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    loop {
                        interval.tick().await;
                        runs.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let (ns, rate) = cpu_per_run(&runs, window);
        eprintln!("  tokio interval: {rate:.0} runs/s of {nominal:.0} due");
        for handle in &handles {
            handle.abort();
        }
        adapter.block_on(async {
            for handle in handles {
                let _ = handle.await;
            }
        });
        ns
    };
    let (s, b) = interleave(
        &format!("{CASE} ({tasks} tasks every {INTERVAL:?}, {window:?} window, CPU ns per run)"),
        runner.plan.recurring_rounds,
        errand,
        tokio,
    );
    finish(manager);
    runner.emit(Line::new(
        CASE,
        format!("errand-tokio Every({INTERVAL:?}) x{tasks}, CPU per run"),
        format!("tokio interval({INTERVAL:?}) x{tasks}, CPU per run"),
        Unit::Nanoseconds,
        median(&s),
        median(&b),
        false,
    ));
}
