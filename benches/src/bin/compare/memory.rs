//! `memory_per_queued_task` and `memory_per_queued_task_marginal`: heap bytes per queued
//! task on errand-tokio, beside tokio tasks parked.

use std::sync::Arc;

use errand_benches::counting::Window;
use errand_benches::report::{Line, Unit, median};
use errand_core::Priority;

use crate::adapters::{Adapter, Blockers, TokioAdapter, WORKERS, finish, settle};
use crate::{Runner, interleave};

const ALL_IN: &str = "memory_per_queued_task";
const MARGINAL: &str = "memory_per_queued_task_marginal";

/// errand: (bytes per task from before the build, bytes per task from the first submit).
fn errand(adapter: &TokioAdapter, n: usize) -> (f64, f64) {
    let mut handles = Vec::with_capacity(n);
    let window = Window::open();
    let manager = adapter.manager(n + WORKERS);
    let blockers = Blockers::occupy(&manager);
    let built = window.counted();
    for _ in 0..n {
        handles.push(adapter.submit_noop(&manager, Priority::NORMAL));
    }
    let queued = window.counted();
    drop(window);
    blockers.release();
    settle(&manager);
    finish(manager);
    drop(handles);
    let per_task = |bytes: isize| bytes as f64 / n as f64;
    (
        per_task(queued.live_bytes),
        per_task(queued.live_bytes - built.live_bytes),
    )
}

/// tokio: bytes per task of `n` tasks parked on a semaphore.
fn tokio_parked(adapter: &TokioAdapter, n: usize) -> f64 {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut handles = Vec::with_capacity(n);
    let window = Window::open();
    for _ in 0..n {
        let gate = Arc::clone(&gate);
        handles.push(adapter.runtime.spawn(async move {
            let _permit = gate.acquire().await;
        }));
    }
    let spawned = window.close();
    gate.close();
    adapter.block_on(async {
        for handle in handles {
            handle
                .await
                .expect("a parked task ends once its gate closes");
        }
    });
    spawned.live_bytes as f64 / n as f64
}

/// Both memory cases, on tokio.
pub(crate) fn queued(runner: &mut Runner, adapter: &TokioAdapter) {
    if !runner.wants_any(&[ALL_IN, MARGINAL]) {
        return;
    }
    let n = runner.plan.memory_tasks;
    let mut marginal = Vec::new();
    let (all_in, parked) = interleave(
        &format!("{ALL_IN} ({n} tasks queued; all-in figure shown)"),
        runner.plan.memory_rounds,
        || {
            let (all_in, per_submit) = errand(adapter, n);
            marginal.push(per_submit);
            all_in
        },
        || tokio_parked(adapter, n),
    );
    marginal.remove(0); // the warm-up's
    eprintln!("  per-submit bytes per round: {marginal:.1?}");
    let baseline = "tokio task parked on a semaphore";
    runner.emit(Line::new(
        ALL_IN,
        "errand-tokio queued (slots reserved for them included)",
        baseline,
        Unit::Bytes,
        median(&all_in),
        median(&parked),
        false,
    ));
    runner.emit(Line::new(
        MARGINAL,
        "errand-tokio queued (per submit, slots already reserved)",
        baseline,
        Unit::Bytes,
        median(&marginal),
        median(&parked),
        false,
    ));
}
