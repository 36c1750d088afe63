//! Asking about tasks: progress, active tasks, history, analytics, performance.

use std::time::Duration;

use errand_core::engine::{BoxError, Context, ProgressError, Task};
use errand_core::{Priority, State};

use crate::Adapter;
use crate::support::{Gate, PATIENCE, block_worker, one_worker, wait};

/// Progress out of range is an error; valid progress is visible from outside while the
/// task runs, with its start time and an estimated completion.
pub fn progress_is_validated_and_visible<A: Adapter>() {
    let manager = one_worker::<A>();
    let reported = Gate::default();
    let gate = Gate::default();
    let handle = manager
        .submit(
            Task::blocking({
                let reported = reported.clone();
                let gate = gate.clone();
                move |ctx: &Context| {
                    assert!(matches!(
                        ctx.progress(f64::NAN, "nan"),
                        Err(ProgressError::OutOfRange { .. })
                    ));
                    let error = ctx.progress(150.0, "too far").unwrap_err();
                    assert_eq!(
                        error.to_string(),
                        "invalid progress: 150 is not a percentage in 0..=100"
                    );
                    assert!(ctx.progress(-1.0, "negative").is_err());
                    ctx.progress(40.0, "Processing batch 2/3...")?;
                    reported.open();
                    gate.wait();
                    Ok::<_, BoxError>(())
                }
            })
            .label("data processing"),
        )
        .unwrap();
    reported.wait();
    let info = manager.task(handle.id()).unwrap();
    assert_eq!(info.state, State::Running);
    assert_eq!(info.progress, 40.0);
    assert_eq!(info.message.as_deref(), Some("Processing batch 2/3..."));
    assert_eq!(info.label.as_deref(), Some("data processing"));
    assert_eq!(info.attempt, 1);
    let started = info.started_at.unwrap();
    assert!(info.estimated_completion.unwrap() >= started);
    gate.open();
    let id = handle.id();
    wait(handle).unwrap();
    let info = manager.task(id).unwrap();
    assert_eq!(info.state, State::Succeeded);
    assert_eq!(info.progress, 100.0);
    assert!(info.finished_at.unwrap() >= started);
}

/// `active_tasks` lists the running and queued tasks, and nothing that ended.
pub fn active_tasks_lists_queued_and_running_work<A: Adapter>() {
    let manager = one_worker::<A>();
    let finished = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    let finished_id = finished.id();
    wait(finished).unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap();
    let mut active: Vec<_> = manager
        .active_tasks()
        .into_iter()
        .map(|info| (info.id, info.state))
        .collect();
    active.sort();
    let mut expected = vec![(blocker.id(), State::Running), (queued.id(), State::Queued)];
    expected.sort();
    assert_eq!(active, expected);
    assert!(active.iter().all(|(id, _)| *id != finished_id));
    gate.open();
    wait(blocker).unwrap();
    wait(queued).unwrap();
    assert!(manager.wait_for_completion(PATIENCE).wait());
    assert!(manager.active_tasks().is_empty());
}

/// Finished tasks answer status queries while they are among the most recent ones; the
/// history never grows past its size.
pub fn finished_tasks_stay_in_a_bounded_history<A: Adapter>() {
    let manager = A::builder().workers(1).history(4).build().unwrap();
    let ids: Vec<_> = (0..10)
        .map(|i| {
            let handle = manager
                .spawn_blocking(move |_: &Context| Ok::<_, BoxError>(i))
                .unwrap();
            let id = handle.id();
            assert_eq!(wait(handle).unwrap(), i);
            // Settled tasks are in the history.
            assert!(manager.wait_for_completion(PATIENCE).wait());
            id
        })
        .collect();
    for old in &ids[..6] {
        assert_eq!(
            manager.state(*old),
            None,
            "{old} should have left the history"
        );
    }
    for recent in &ids[6..] {
        assert_eq!(manager.state(*recent), Some(State::Succeeded));
    }
}

/// Analytics count what ran and, with profiling, time it per priority.
pub fn analytics_count_and_time_the_work<A: Adapter>() {
    // Timings need no profiling: the guide's analytics are always on.
    let manager = A::builder().workers(1).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued: Vec<_> = [Priority::LOW, Priority::HIGH, Priority::HIGH]
        .into_iter()
        .map(|priority| {
            manager
                .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(())).priority(priority))
                .unwrap()
        })
        .collect();
    let failing = manager
        .spawn_blocking(|_: &Context| Err::<(), _>(BoxError::from("no")))
        .unwrap();
    let analytics = manager.analytics();
    assert_eq!(analytics.queue_size.low, 1);
    assert_eq!(analytics.queue_size.high, 2);
    assert_eq!(analytics.queue_size.normal, 1);
    assert_eq!(analytics.queue_size.total(), 4);
    assert_eq!(analytics.running, 1);
    gate.open();
    wait(blocker).unwrap();
    for handle in queued {
        wait(handle).unwrap();
    }
    wait(failing).unwrap_err();
    assert!(manager.wait_for_completion(PATIENCE).wait());
    let analytics = manager.analytics();
    assert_eq!(analytics.counts.executed, 5);
    assert_eq!(analytics.counts.succeeded, 4);
    assert_eq!(analytics.counts.failed, 1);
    assert_eq!(analytics.counts.peak_concurrency, 1);
    assert!(
        analytics.profile.is_none(),
        "no process samples without profiling"
    );
    assert!(analytics.avg_execution_time.is_some());
    assert!(analytics.p99_execution_time >= analytics.p50_execution_time);
    let [low, normal, high, critical] = analytics.dispatch_latency;
    assert_eq!(
        (low.count, normal.count, high.count, critical.count),
        (1, 1, 2, 1)
    );
    assert!(high.p50.is_some());
    assert!(analytics.uptime > Duration::ZERO);
    assert_eq!(analytics.queue_size.total(), 0);
}

/// Performance reports the process (on Linux), workers, throughput and error rate.
pub fn performance_reports_process_and_rates<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    for i in 0..4 {
        let handle = manager
            .spawn_blocking(move |_: &Context| {
                if i == 0 {
                    Err(BoxError::from("one in four fails"))
                } else {
                    Ok(())
                }
            })
            .unwrap();
        let _ = wait(handle);
    }
    assert!(manager.wait_for_completion(PATIENCE).wait());
    let performance = manager.performance();
    assert_eq!(performance.workers, 2);
    assert_eq!(performance.error_rate, 25.0);
    assert!(performance.throughput > 0.0);
    assert!(performance.memory_pool_limit > 0);
    assert!(performance.cores >= 1);
    if cfg!(target_os = "linux") {
        // Of the whole machine, 0-100; of one core, up to 100 per core.
        let machine = performance.cpu_percent.unwrap();
        let one_core = performance.cpu_percent_of_one_core.unwrap();
        assert!((0.0..=100.0).contains(&machine), "{machine}");
        assert!((one_core - machine * performance.cores as f64).abs() < 1e-6);
        assert!(performance.rss_bytes.unwrap() > 0);
    }
    let json = serde_json::to_value(&performance).unwrap();
    assert_eq!(json["workers"], 2);
    let json = serde_json::to_value(manager.analytics()).unwrap();
    assert_eq!(json["counts"]["failed"], 1);
}

/// With profiling on, the timer driver samples the process's CPU and memory (its first
/// round takes the first sample).
pub fn profiling_samples_the_process<A: Adapter>() {
    let manager = A::builder()
        .workers(1)
        .enable_profiling(true)
        .build()
        .unwrap();
    // A delayed task fires in a later round of the timer driver than its first.
    let later = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_millis(5)))
        .unwrap();
    wait(later).unwrap();
    let profile = manager.analytics().profile.expect("profiling is on");
    assert!(!profile.samples.is_empty());
    assert!(profile.samples.len() <= errand_core::engine::Profile::CAPACITY);
    if cfg!(target_os = "linux") {
        assert!(profile.peak_rss_bytes.unwrap() > 0);
        assert!(profile.samples[0].rss_bytes.unwrap() > 0);
    }
    let json = serde_json::to_value(manager.analytics()).unwrap();
    assert!(json["profile"]["samples"].is_array());
}
