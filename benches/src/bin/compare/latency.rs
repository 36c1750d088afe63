//! `dispatch_latency_{p50,p99}_<adapter>`: on an idle system, submit → the task's first
//! line, one task at a time, beside the baseline's spawn → first line.

use std::time::{Duration, Instant};

use errand_benches::ChannelPool;
use errand_benches::report::{Line, Unit, median, percentile};
use errand_core::Priority;

use crate::adapters::{Adapter, SmolAdapter, ThreadsAdapter, TokioAdapter, WORKERS, finish};
use crate::{Runner, interleave};
use errand_benches::ExecutorPool;

/// Sleep between samples: the previous task has finished and the workers park.
const GAP: Duration = Duration::from_micros(500);

/// One round: `samples` latencies from `sample`, each after [`GAP`]; (p50, p99) in ns.
fn round(samples: usize, mut sample: impl FnMut() -> Duration) -> (f64, f64) {
    let latencies: Vec<f64> = (0..samples)
        .map(|_| {
            std::thread::sleep(GAP);
            sample().as_nanos() as f64
        })
        .collect();
    (percentile(&latencies, 50.0), percentile(&latencies, 99.0))
}

/// Runs the rounds and emits the p50 and p99 lines of adapter `short`.
fn run(
    runner: &mut Runner,
    short: &str,
    subject: &str,
    baseline: &str,
    mut subject_sample: impl FnMut() -> Duration,
    mut baseline_sample: impl FnMut() -> Duration,
) {
    let samples = runner.plan.latency_samples;
    let (mut s99, mut b99) = (Vec::new(), Vec::new());
    let (s50, b50) = interleave(
        &format!("dispatch_latency_{short} ({samples} samples per round; p50 shown)"),
        runner.plan.rounds,
        || {
            let (p50, p99) = round(samples, &mut subject_sample);
            s99.push(p99);
            p50
        },
        || {
            let (p50, p99) = round(samples, &mut baseline_sample);
            b99.push(p99);
            p50
        },
    );
    // The warm-up round's p99s are the first entries; drop them like its p50s.
    s99.remove(0);
    b99.remove(0);
    eprintln!("  p99 per round: subject {s99:.0?}, baseline {b99:.0?}");
    for (p, s, b) in [("p50", &s50, &b50), ("p99", &s99, &b99)] {
        runner.emit(Line::new(
            format!("dispatch_latency_{p}_{short}"),
            subject,
            baseline,
            Unit::Nanoseconds,
            median(s),
            median(b),
            false,
        ));
    }
}

fn wanted(runner: &Runner, short: &str) -> bool {
    runner.wants_any(&[
        format!("dispatch_latency_p50_{short}"),
        format!("dispatch_latency_p99_{short}"),
    ])
}

/// errand-tokio vs `tokio::spawn`.
pub(crate) fn tokio(runner: &mut Runner, adapter: &TokioAdapter) {
    if !wanted(runner, "tokio") {
        return;
    }
    let manager = adapter.manager(16);
    run(
        runner,
        "tokio",
        "errand-tokio",
        "tokio::spawn",
        || {
            adapter.block_on(async {
                let before = Instant::now();
                let handle = adapter.submit_stamp(&manager, Priority::NORMAL);
                handle.await.expect("a stamp task succeeds") - before
            })
        },
        || {
            adapter.block_on(async {
                let before = Instant::now();
                let handle = tokio::spawn(async { Instant::now() });
                handle.await.expect("a stamp task succeeds") - before
            })
        },
    );
    finish(manager);
}

/// errand-smol vs async-executor.
pub(crate) fn smol(runner: &mut Runner, adapter: &SmolAdapter) {
    if !wanted(runner, "smol") {
        return;
    }
    let manager = adapter.manager(16);
    let executor = ExecutorPool::new(WORKERS);
    run(
        runner,
        "smol",
        "errand-smol",
        "async-executor spawn (2 threads)",
        || {
            let before = Instant::now();
            let handle = adapter.submit_stamp(&manager, Priority::NORMAL);
            smol::block_on(handle).expect("a stamp task succeeds") - before
        },
        || {
            let before = Instant::now();
            let task = executor.executor().spawn(async { Instant::now() });
            smol::block_on(task) - before
        },
    );
    finish(manager);
}

/// errand-threads vs a crossbeam-channel pool.
pub(crate) fn threads(runner: &mut Runner, adapter: &ThreadsAdapter) {
    if !wanted(runner, "threads") {
        return;
    }
    let manager = adapter.manager(16);
    let pool = ChannelPool::new(WORKERS);
    run(
        runner,
        "threads",
        "errand-threads",
        "crossbeam-channel pool (2 threads)",
        || {
            let before = Instant::now();
            let handle = adapter.submit_stamp(&manager, Priority::NORMAL);
            handle.wait().expect("a stamp task succeeds") - before
        },
        || {
            let (sender, receiver) = crossbeam_channel::bounded(1);
            let before = Instant::now();
            pool.execute(move || {
                let _ = sender.send(Instant::now());
            });
            receiver.recv().expect("the pool runs the closure") - before
        },
    );
    finish(manager);
}
