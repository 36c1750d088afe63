//! Stopping: stop accepting, wait for completion, shut down with a report.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use errand_core::State;
use errand_core::engine::{BoxError, Context, SubmitError, Task};

use crate::Adapter;
use crate::support::{PATIENCE, block_worker, one_worker, wait};

/// `shutdown` stops accepting, waits, stops what is left and accounts for every task.
pub fn shutdown_stops_accepting_and_reports_unfinished_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let done = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    wait(done).unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    let report = manager.shutdown(Duration::from_millis(50)).wait();
    assert!(!report.completed);
    let mut unfinished: Vec<_> = report
        .unfinished
        .iter()
        .map(|info| (info.id, info.state))
        .collect();
    unfinished.sort();
    let mut expected = vec![(blocker.id(), State::Running), (queued.id(), State::Queued)];
    expected.sort();
    assert_eq!(unfinished, expected);
    assert!(!manager.is_accepting());
    assert!(manager.is_shutdown_initiated());
    let rejected = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap_err();
    assert!(matches!(rejected, SubmitError::ShuttingDown { .. }));
    assert_eq!(
        rejected.to_string(),
        "shutting down: the manager no longer accepts tasks"
    );
    gate.open();
    assert!(wait(blocker).unwrap_err().is_cancelled());
    assert!(wait(queued).unwrap_err().is_cancelled());
    let counts = manager.counts();
    assert_eq!(counts.submitted, 3);
    assert_eq!(counts.stopped, 2);
    assert_eq!(counts.submitted, counts.ended());
}

/// `wait_for_completion` returns true once every task ended, false on timeout.
pub fn wait_for_completion_waits_for_every_task<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let count = Arc::clone(&count);
        manager
            .spawn_blocking(move |_: &Context| {
                count.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            })
            .unwrap();
    }
    assert!(manager.wait_for_completion(PATIENCE).wait());
    assert_eq!(count.load(Ordering::SeqCst), 50);
    let (gate, blocker) = block_worker(&manager);
    assert!(
        !manager
            .wait_for_completion(Duration::from_millis(20))
            .wait()
    );
    gate.open();
    assert!(manager.wait_for_completion(PATIENCE).wait());
    wait(blocker).unwrap();
}

/// A shutdown reports scheduled work as unfinished too, and it never runs.
pub fn shutdown_reports_scheduled_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let later = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_secs(3600)),
        )
        .unwrap();
    let report = manager.shutdown(Duration::from_millis(10)).wait();
    assert_eq!(report.unfinished.len(), 1);
    assert_eq!(report.unfinished[0].id, later.id());
    assert_eq!(report.unfinished[0].state, State::Scheduled);
    assert!(wait(later).unwrap_err().is_cancelled());
    let counts = manager.counts();
    assert_eq!(counts.submitted, counts.ended());
}
