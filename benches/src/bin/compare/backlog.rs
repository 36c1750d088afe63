//! Cases over a deep queue: `priority_latency_under_backlog*` (a CRITICAL task's start
//! latency while the workers drain 100k NORMAL ones) and `scaling_queue_depth_*` (drain
//! rate against queue depth).

use std::time::{Duration, Instant};

use errand_benches::report::{Line, Unit, median, percentile};
use errand_core::Priority;
use errand_core::engine::Manager;

use crate::adapters::{Adapter, Blockers, WORKERS, finish, settle, wait_until};
use crate::{Runner, suffix};

/// Backlog tasks that must have run before a probe goes in: the workers are draining.
const DRAINING: u64 = 1_000;

/// One backlog round: queue `backlog` NORMAL no-ops behind held workers, release them,
/// wait until they drain, then submit `probes` probes at `priority`, one after another;
/// their submit → start latencies in ns.
fn probe_round<A: Adapter>(
    adapter: &A,
    manager: &Manager<A::Rt>,
    backlog: usize,
    priority: Priority,
    probes: usize,
) -> Vec<f64> {
    let blockers = Blockers::occupy(manager);
    let before = manager.counts().succeeded;
    for _ in 0..backlog {
        drop(adapter.submit_noop(manager, Priority::NORMAL));
    }
    blockers.release();
    wait_until("the workers drain the backlog", || {
        manager.counts().succeeded >= before + WORKERS as u64 + DRAINING
    });
    let latencies = (0..probes)
        .map(|_| {
            let submitted = Instant::now();
            let handle = adapter.submit_stamp(manager, priority);
            let started = adapter.block_on(handle).expect("a probe task succeeds");
            (started - submitted).as_nanos() as f64
        })
        .collect();
    settle(manager);
    latencies
}

/// `priority_latency_under_backlog[_smol|_threads]`.
pub(crate) fn priority<A: Adapter>(runner: &mut Runner, adapter: &A) {
    let case = format!("priority_latency_under_backlog{}", suffix(adapter.short()));
    if !runner.wants(&case) {
        return;
    }
    let plan = runner.plan.clone();
    let manager = adapter.manager(plan.backlog + plan.critical_probes + WORKERS + 16);
    eprintln!(
        "{case}: {} rounds of {} NORMAL tasks queued, {} CRITICAL probes vs 1 NORMAL probe",
        plan.backlog_rounds, plan.backlog, plan.critical_probes
    );
    let (mut critical, mut normal) = (Vec::new(), Vec::new());
    // A warm-up round of each, unrecorded.
    probe_round(adapter, &manager, plan.backlog, Priority::CRITICAL, 1);
    for round in 1..=plan.backlog_rounds {
        let c = probe_round(
            adapter,
            &manager,
            plan.backlog,
            Priority::CRITICAL,
            plan.critical_probes,
        );
        let n = probe_round(adapter, &manager, plan.backlog, Priority::NORMAL, 1);
        eprintln!(
            "{case}: round {round}/{}: CRITICAL median {:.0} ns max {:.0} ns; NORMAL {:.0} ns",
            plan.backlog_rounds,
            median(&c),
            c.iter().copied().fold(0.0, f64::max),
            n[0]
        );
        critical.extend(c);
        normal.extend(n);
    }
    finish(manager);
    runner.emit(Line::new(
        case,
        format!("{} CRITICAL p99", adapter.name()),
        format!("{} NORMAL p99 (FIFO behind the backlog)", adapter.name()),
        Unit::Nanoseconds,
        percentile(&critical, 99.0),
        percentile(&normal, 99.0),
        false,
    ));
}

/// One fill at `depth`: hold the workers, queue `depth` no-ops (the first and last read
/// the clock), release; the tasks started between the first and last, and that time.
fn drain<A: Adapter>(adapter: &A, manager: &Manager<A::Rt>, depth: usize) -> (usize, Duration) {
    let blockers = Blockers::occupy(manager);
    let first = adapter.submit_stamp(manager, Priority::NORMAL);
    for _ in 0..depth - 2 {
        drop(adapter.submit_noop(manager, Priority::NORMAL));
    }
    let last = adapter.submit_stamp(manager, Priority::NORMAL);
    blockers.release();
    let first = adapter.block_on(first).expect("a stamp task succeeds");
    let last = adapter.block_on(last).expect("a stamp task succeeds");
    settle(manager);
    (depth - 1, last - first)
}

/// Drain rate at `depth` over fills adding up to about `work` tasks, in tasks/s.
fn drain_rate<A: Adapter>(adapter: &A, manager: &Manager<A::Rt>, depth: usize, work: usize) -> f64 {
    let fills = (work / depth).max(1);
    let (mut tasks, mut time) = (0, Duration::ZERO);
    for _ in 0..fills {
        let (n, t) = drain(adapter, manager, depth);
        tasks += n;
        time += t;
    }
    tasks as f64 / time.as_secs_f64()
}

/// `scaling_queue_depth_<depth>[_smol|_threads]`: every depth of the plan once per round
/// (so rounds interleave the depths), each against the first depth (1 000) of the same
/// rounds.
pub(crate) fn scaling<A: Adapter>(runner: &mut Runner, adapter: &A) {
    let plan = runner.plan.clone();
    let cases: Vec<String> = plan
        .depths
        .iter()
        .map(|depth| format!("scaling_queue_depth_{depth}{}", suffix(adapter.short())))
        .collect();
    if !runner.wants_any(&cases) {
        return;
    }
    let managers: Vec<_> = plan
        .depths
        .iter()
        .map(|&depth| adapter.manager(depth + WORKERS + 16))
        .collect();
    let mut rates = vec![Vec::new(); plan.depths.len()];
    eprintln!(
        "scaling_queue_depth ({}): depths {:?}, about {} tasks per depth per round",
        adapter.name(),
        plan.depths,
        plan.scaling_work
    );
    for (manager, &depth) in managers.iter().zip(&plan.depths) {
        drain_rate(adapter, manager, depth, depth); // warm-up: one fill
    }
    for round in 1..=plan.scaling_rounds {
        let mut shown = Vec::new();
        for ((manager, &depth), rates) in managers.iter().zip(&plan.depths).zip(&mut rates) {
            let rate = drain_rate(adapter, manager, depth, plan.scaling_work);
            shown.push(format!("{depth}: {rate:.3e}"));
            rates.push(rate);
        }
        eprintln!(
            "scaling_queue_depth ({}): round {round}/{}: {}",
            adapter.name(),
            plan.scaling_rounds,
            shown.join(", ")
        );
    }
    for manager in managers {
        finish(manager);
    }
    let base_depth = plan.depths[0];
    let base = median(&rates[0]);
    for ((case, &depth), rates) in cases.into_iter().zip(&plan.depths).zip(&rates) {
        runner.emit(Line::new(
            case,
            format!("{} @ {depth} queued", adapter.name()),
            format!("{} @ {base_depth} queued", adapter.name()),
            Unit::TasksPerSecond,
            median(rates),
            base,
            true,
        ));
    }
}
