//! A seeded soak: a random mix of tasks with a shutdown in mid-flight, and exact accounting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use errand_core::Priority;
use errand_core::engine::{BoxError, Context, SubmitError, Task, TaskErrorKind};

use crate::Adapter;
use crate::support::{PATIENCE, policy, wait};

/// What a soak task does when it runs.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Returns a value (blocking).
    Succeed,
    /// Returns a value (async).
    SucceedAsync,
    /// Returns an error every attempt.
    Fail,
    /// Panics every attempt.
    Panic,
    /// Fails this many attempts, then succeeds.
    Flaky(u32),
    /// Runs past its timeout (async: pending; the future is dropped).
    Hang,
}

/// A seeded soak: many tasks with random priorities, delays, failures, panics, retries,
/// timeouts and cancels, and a shutdown in mid-flight. Afterwards every accepted task is
/// accounted for exactly once (`submitted = succeeded + failed + cancelled + timed out +
/// stopped`, the last being the shutdown report's length), every handle agrees with the
/// counts, and no task ran more often than its retries allow. The seed comes from
/// `ERRAND_SOAK_SEED` (default fixed), and is printed on failure.
pub fn soak_with_a_shutdown_in_mid_flight<A: Adapter>() {
    use errand_core::{RandomSource, SplitMix64};

    let seed = std::env::var("ERRAND_SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = SplitMix64::new(seed);
    let mut below = |n: u64| rng.next_u64() % n;
    let manager = A::builder()
        .workers(4)
        .queue_capacity(128)
        .enable_profiling(true)
        .seed(seed)
        .build()
        .unwrap();
    const TASKS: usize = 400;
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
    let mut accepted = Vec::new();
    let mut refused_full = 0;
    let mut refused_after_shutdown = 0;
    let mut report = None;
    for i in 0..TASKS {
        if i == TASKS / 2 {
            report = Some(manager.shutdown(Duration::from_millis(5)).wait());
        }
        let behaviour = match below(10) {
            0..=2 => Behaviour::Succeed,
            3 | 4 => Behaviour::SucceedAsync,
            5 => Behaviour::Fail,
            6 => Behaviour::Panic,
            7 | 8 => Behaviour::Flaky(below(3) as u32 + 1),
            _ => Behaviour::Hang,
        };
        let retries = below(3) as u32;
        let runs = Arc::clone(&runs);
        let work = move |ctx: Context| {
            runs[i].fetch_add(1, Ordering::SeqCst);
            async move {
                match behaviour {
                    Behaviour::Succeed | Behaviour::SucceedAsync => Ok(i),
                    Behaviour::Fail => Err(BoxError::from("soak failure")),
                    Behaviour::Panic => panic!("soak panic"),
                    Behaviour::Flaky(failures) => {
                        if ctx.attempt() <= failures {
                            Err(BoxError::from("flaky"))
                        } else {
                            Ok(i)
                        }
                    }
                    Behaviour::Hang => {
                        std::future::pending::<()>().await;
                        Ok(i)
                    }
                }
            }
        };
        let mut task = Task::future(work)
            .priority(Priority(below(256) as u8))
            .retry(policy(retries, 1));
        if below(4) == 0 {
            task = task.delay(Duration::from_millis(below(20)));
        }
        if matches!(behaviour, Behaviour::Hang) || below(8) == 0 {
            task = task.timeout(Duration::from_millis(2 + below(10)));
        }
        match manager.submit(task) {
            Ok(handle) => {
                if below(8) == 0 {
                    // Cancelling may lose to the task's end: either is fine.
                    let _ = handle.cancel();
                }
                accepted.push((i, retries, handle));
            }
            Err(SubmitError::QueueFull { .. }) => refused_full += 1,
            Err(SubmitError::ShuttingDown { .. }) => refused_after_shutdown += 1,
            Err(other) => panic!("seed {seed}: unexpected refusal: {other}"),
        }
    }
    let report = report.unwrap();
    assert_eq!(refused_after_shutdown, TASKS - TASKS / 2, "seed {seed}");
    let (mut ok, mut failed, mut cancelled, mut timed_out) = (0, 0, 0, 0);
    for (i, retries, handle) in accepted {
        match wait(handle) {
            Ok(value) => {
                assert_eq!(value, i, "seed {seed}");
                ok += 1;
            }
            Err(error) => match error.kind() {
                TaskErrorKind::Failed | TaskErrorKind::Panicked => failed += 1,
                TaskErrorKind::Cancelled => cancelled += 1,
                TaskErrorKind::TimedOut => timed_out += 1,
                _ => panic!("seed {seed}: unknown error kind {error}"),
            },
        }
        let ran = runs[i].load(Ordering::SeqCst);
        assert!(
            ran <= 1 + retries as usize,
            "seed {seed}: task {i} ran {ran} times with {retries} retries"
        );
    }
    assert!(manager.wait_for_completion(PATIENCE).wait(), "seed {seed}");
    let counts = manager.counts();
    assert_eq!(
        counts.submitted,
        (TASKS / 2 - refused_full) as u64,
        "seed {seed}"
    );
    assert_eq!(counts.submitted, counts.ended(), "seed {seed}: {counts:?}");
    assert_eq!(
        counts.stopped,
        report.unfinished.len() as u64,
        "seed {seed}"
    );
    assert_eq!(counts.succeeded, ok, "seed {seed}");
    assert_eq!(counts.failed, failed, "seed {seed}");
    assert_eq!(counts.timed_out, timed_out, "seed {seed}");
    assert_eq!(counts.cancelled + counts.stopped, cancelled, "seed {seed}");
    assert!(manager.active_tasks().is_empty(), "seed {seed}");
    assert_eq!(manager.analytics().memory.used, 0, "seed {seed}");
}
