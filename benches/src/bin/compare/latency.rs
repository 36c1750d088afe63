//! `dispatch_latency_{p50,p99}_<adapter>`: on an idle system, submit → the task's first
//! line, one task at a time, beside the baseline's spawn → first line; and
//! `roundtrip_latency_{p50,p99}_<adapter>` from the same samples: submit → the task's
//! result back in the submitter's hands (its handle awaited or waited on), which also
//! counts what the workers do after the task (a spinning worker can keep the submitter
//! from its core).

use std::time::{Duration, Instant};

use errand_benches::ChannelPool;
use errand_benches::report::{Line, Unit, median, percentile};
use errand_core::Priority;

use crate::adapters::{Adapter, SmolAdapter, ThreadsAdapter, TokioAdapter, WORKERS, finish};
use crate::{Runner, interleave};
use errand_benches::ExecutorPool;

/// Sleep between samples: the previous task has finished and the workers park.
const GAP: Duration = Duration::from_micros(500);

/// One sample: the instant before the submit (or spawn) and the task's first line's
/// instant, as the task reports it back; the round trip ends when `sample` returns.
type Sample = (Instant, Instant);

/// A round's percentiles, in ns: dispatch p50 and p99, round trip p50 and p99.
type Percentiles = [f64; 4];

/// One round: `samples` latencies from `sample`, each after [`GAP`].
fn round(samples: usize, mut sample: impl FnMut() -> Sample) -> Percentiles {
    let (dispatch, trip): (Vec<f64>, Vec<f64>) = (0..samples)
        .map(|_| {
            std::thread::sleep(GAP);
            let (before, first_line) = sample();
            let back = Instant::now();
            (
                (first_line - before).as_nanos() as f64,
                (back - before).as_nanos() as f64,
            )
        })
        .unzip();
    [
        percentile(&dispatch, 50.0),
        percentile(&dispatch, 99.0),
        percentile(&trip, 50.0),
        percentile(&trip, 99.0),
    ]
}

/// Runs the rounds and emits the dispatch and round-trip lines of adapter `short`.
fn run(
    runner: &mut Runner,
    short: &str,
    subject: &str,
    baseline: &str,
    mut subject_sample: impl FnMut() -> Sample,
    mut baseline_sample: impl FnMut() -> Sample,
) {
    let samples = runner.plan.latency_samples;
    let (mut s_rest, mut b_rest) = (Vec::<Percentiles>::new(), Vec::<Percentiles>::new());
    let (s50, b50) = interleave(
        &format!("dispatch_latency_{short} ({samples} samples per round; p50 shown)"),
        runner.plan.rounds,
        || {
            let p = round(samples, &mut subject_sample);
            s_rest.push(p);
            p[0]
        },
        || {
            let p = round(samples, &mut baseline_sample);
            b_rest.push(p);
            p[0]
        },
    );
    // The warm-up round's figures are the first entries; drop them like its p50s.
    s_rest.remove(0);
    b_rest.remove(0);
    let column =
        |rounds: &[Percentiles], k: usize| -> Vec<f64> { rounds.iter().map(|p| p[k]).collect() };
    eprintln!(
        "  p99 per round: subject {:.0?}, baseline {:.0?}",
        column(&s_rest, 1),
        column(&b_rest, 1)
    );
    eprintln!(
        "  round trip p50 per round: subject {:.0?}, baseline {:.0?}",
        column(&s_rest, 2),
        column(&b_rest, 2)
    );
    let lines = [
        ("dispatch_latency_p50", s50, b50),
        (
            "dispatch_latency_p99",
            column(&s_rest, 1),
            column(&b_rest, 1),
        ),
        (
            "roundtrip_latency_p50",
            column(&s_rest, 2),
            column(&b_rest, 2),
        ),
        (
            "roundtrip_latency_p99",
            column(&s_rest, 3),
            column(&b_rest, 3),
        ),
    ];
    for (case, s, b) in lines {
        runner.emit(Line::new(
            format!("{case}_{short}"),
            subject,
            baseline,
            Unit::Nanoseconds,
            median(&s),
            median(&b),
            false,
        ));
    }
}

fn wanted(runner: &Runner, short: &str) -> bool {
    runner.wants_any(&[
        format!("dispatch_latency_p50_{short}"),
        format!("dispatch_latency_p99_{short}"),
        format!("roundtrip_latency_p50_{short}"),
        format!("roundtrip_latency_p99_{short}"),
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
                (before, handle.await.expect("a stamp task succeeds"))
            })
        },
        || {
            adapter.block_on(async {
                let before = Instant::now();
                let handle = tokio::spawn(async { Instant::now() });
                (before, handle.await.expect("a stamp task succeeds"))
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
            (
                before,
                smol::block_on(handle).expect("a stamp task succeeds"),
            )
        },
        || {
            let before = Instant::now();
            let task = executor.executor().spawn(async { Instant::now() });
            (before, smol::block_on(task))
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
            (before, handle.wait().expect("a stamp task succeeds"))
        },
        || {
            let (sender, receiver) = crossbeam_channel::bounded(1);
            let before = Instant::now();
            pool.execute(move || {
                let _ = sender.send(Instant::now());
            });
            (before, receiver.recv().expect("the pool runs the closure"))
        },
    );
    finish(manager);
}
