//! `noop_throughput_*` and `allocations_per_task*`: N no-op tasks submitted and completed,
//! timed (throughput) or counted by the allocator (allocations), on each adapter beside its
//! baseline.

use std::time::{Duration, Instant};

use errand_benches::counting::Window;
use errand_benches::report::{Line, Unit, median};
use errand_benches::{BarePool, ChannelPool};
use errand_core::Priority;
use errand_core::engine::Manager;

use crate::adapters::{Adapter, PATIENCE, SmolAdapter, ThreadsAdapter, TokioAdapter, WORKERS};
use crate::{Runner, interleave, suffix};
use errand_benches::ExecutorPool;

/// The two sides of one adapter's throughput case: each runs `n` tasks and returns the
/// wall time.
trait Sides {
    fn subject(&self, n: usize) -> Duration;
    fn baseline(&self, n: usize) -> Duration;
}

/// Runs the adapter's throughput and allocation cases for `sides`.
fn run(runner: &mut Runner, short: &str, subject: &str, baseline: &str, sides: &impl Sides) {
    let throughput = format!("noop_throughput_{short}");
    let allocations = format!("allocations_per_task{}", suffix(short));
    if runner.wants(&throughput) {
        let n = runner.plan.throughput_tasks;
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let (s, b) = interleave(
            &format!("{throughput} ({n} tasks)"),
            runner.plan.rounds,
            || rate(sides.subject(n)),
            || rate(sides.baseline(n)),
        );
        runner.emit(Line::new(
            throughput,
            subject,
            baseline,
            Unit::TasksPerSecond,
            median(&s),
            median(&b),
            true,
        ));
    }
    if runner.wants(&allocations) {
        let n = runner.plan.alloc_tasks;
        let per_task = |run: &dyn Fn(usize) -> Duration| {
            let window = Window::open();
            run(n);
            window.close().allocations as f64 / n as f64
        };
        let (s, b) = interleave(
            &format!("{allocations} ({n} tasks)"),
            runner.plan.rounds,
            || per_task(&|n| sides.subject(n)),
            || per_task(&|n| sides.baseline(n)),
        );
        runner.emit(Line::new(
            allocations,
            subject,
            baseline,
            Unit::Allocations,
            median(&s),
            median(&b),
            false,
        ));
    }
}

/// A manager with room for the largest round.
fn manager_for<A: Adapter>(adapter: &A, runner: &Runner) -> Manager<A::Rt> {
    let plan = &runner.plan;
    adapter.manager(plan.throughput_tasks.max(plan.alloc_tasks) + WORKERS)
}

struct TokioSides<'a> {
    adapter: &'a TokioAdapter,
    manager: Manager<errand_tokio::Tokio>,
}

impl Sides for TokioSides<'_> {
    fn subject(&self, n: usize) -> Duration {
        let (adapter, manager) = (self.adapter, &self.manager);
        adapter.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..n)
                .map(|_| adapter.submit_noop(manager, Priority::NORMAL))
                .collect();
            for handle in handles {
                handle.await.expect("a no-op task succeeds");
            }
            start.elapsed()
        })
    }

    fn baseline(&self, n: usize) -> Duration {
        self.adapter.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
            for handle in handles {
                handle.await.expect("a no-op task succeeds");
            }
            start.elapsed()
        })
    }
}

/// errand-tokio vs `tokio::spawn`.
pub(crate) fn tokio(runner: &mut Runner, adapter: &TokioAdapter) {
    if !runner.wants_any(&["noop_throughput_tokio", "allocations_per_task"]) {
        return;
    }
    let sides = TokioSides {
        adapter,
        manager: manager_for(adapter, runner),
    };
    run(runner, "tokio", "errand-tokio", "tokio::spawn", &sides);
    crate::adapters::finish(sides.manager);
}

struct SmolSides<'a> {
    adapter: &'a SmolAdapter,
    manager: Manager<errand_smol::Smol>,
    executor: ExecutorPool,
}

impl Sides for SmolSides<'_> {
    fn subject(&self, n: usize) -> Duration {
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|_| self.adapter.submit_noop(&self.manager, Priority::NORMAL))
            .collect();
        smol::block_on(async {
            for handle in handles {
                handle.await.expect("a no-op task succeeds");
            }
        });
        start.elapsed()
    }

    fn baseline(&self, n: usize) -> Duration {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| self.executor.executor().spawn(async {}))
            .collect();
        smol::block_on(async {
            for task in tasks {
                task.await;
            }
        });
        start.elapsed()
    }
}

/// errand-smol vs async-executor.
pub(crate) fn smol(runner: &mut Runner, adapter: &SmolAdapter) {
    if !runner.wants_any(&["noop_throughput_smol", "allocations_per_task_smol"]) {
        return;
    }
    let sides = SmolSides {
        adapter,
        manager: manager_for(adapter, runner),
        executor: ExecutorPool::new(WORKERS),
    };
    run(
        runner,
        "smol",
        "errand-smol",
        "async-executor spawn (2 threads)",
        &sides,
    );
    crate::adapters::finish(sides.manager);
}

struct ThreadsSides<'a> {
    adapter: &'a ThreadsAdapter,
    manager: Manager<errand_threads::Threads>,
    pool: ChannelPool,
}

impl Sides for ThreadsSides<'_> {
    fn subject(&self, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            drop(self.adapter.submit_noop(&self.manager, Priority::NORMAL));
        }
        assert!(self.manager.wait_for_completion(PATIENCE).wait());
        start.elapsed()
    }

    fn baseline(&self, n: usize) -> Duration {
        let start = Instant::now();
        // Each job is a closure with state (its index), as real work is: boxing it
        // allocates, as a task does.
        for i in 0..n {
            self.pool.execute(move || {
                std::hint::black_box(i);
            });
        }
        self.pool.wait_idle();
        start.elapsed()
    }
}

/// Jobs the bare pool's channel holds before a sender waits.
const BARE_CAPACITY: usize = 1024;

/// The bare pool's side of `noop_throughput_threads_bare`: `n` boxed closures through a
/// bounded channel to [`WORKERS`] threads, timed from the first send until the threads,
/// their channel closed, have run them all and been joined. The threads are started
/// before the clock.
fn bare(n: usize) -> Duration {
    let pool = BarePool::new(WORKERS, BARE_CAPACITY);
    let start = Instant::now();
    for i in 0..n {
        pool.execute(move || {
            std::hint::black_box(i);
        });
    }
    pool.join();
    start.elapsed()
}

/// errand-threads vs a crossbeam-channel pool, and vs a bare one.
pub(crate) fn threads(runner: &mut Runner, adapter: &ThreadsAdapter) {
    const BARE: &str = "noop_throughput_threads_bare";
    if !runner.wants_any(&[
        "noop_throughput_threads",
        "allocations_per_task_threads",
        BARE,
    ]) {
        return;
    }
    let sides = ThreadsSides {
        adapter,
        manager: manager_for(adapter, runner),
        pool: ChannelPool::new(WORKERS),
    };
    run(
        runner,
        "threads",
        "errand-threads",
        "crossbeam-channel pool (2 threads)",
        &sides,
    );
    if runner.wants(BARE) {
        let n = runner.plan.throughput_tasks;
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let (s, b) = interleave(
            &format!("{BARE} ({n} tasks)"),
            runner.plan.rounds,
            || rate(sides.subject(n)),
            || rate(bare(n)),
        );
        runner.emit(Line::new(
            BARE,
            "errand-threads",
            format!("bare bounded crossbeam-channel pool ({WORKERS} threads, untracked)"),
            Unit::TasksPerSecond,
            median(&s),
            median(&b),
            true,
        ));
    }
    crate::adapters::finish(sides.manager);
}
