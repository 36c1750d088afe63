//! Recurring tasks: runs, deadlines, overlap, cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_core::State;
use errand_core::engine::{BoxError, Context, Every, MissedTicks, Overlap, Task};

use crate::Adapter;
use crate::support::{Gate, PATIENCE, wait};

/// A task recurring `times(4)` runs four times, each run no earlier than
/// `first + k × interval` (no drift), and yields its last run's value.
pub fn recurring_tasks_run_n_times_on_a_fixed_schedule<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let interval = Duration::from_millis(25);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let submitted = Instant::now();
    let handle = manager
        .submit(
            Task::blocking({
                let starts = Arc::clone(&starts);
                move |_: &Context| {
                    let mut starts = starts.lock().unwrap();
                    starts.push(Instant::now());
                    Ok::<_, BoxError>(starts.len())
                }
            })
            .every(Every::new(interval).times(4)),
        )
        .unwrap();
    let id = handle.id();
    assert_eq!(wait(handle).unwrap(), 4);
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 4);
    for (k, start) in starts.iter().enumerate() {
        assert!(
            *start >= submitted + interval * k as u32,
            "run {k} started early"
        );
    }
    let info = manager.task(id).unwrap();
    assert_eq!((info.state, info.runs), (State::Succeeded, 4));
    let counts = manager.counts();
    assert_eq!((counts.executed, counts.succeeded), (4, 1));
}

/// A task recurring `until(deadline)` runs no tick due after the deadline, then succeeds.
pub fn recurring_tasks_stop_at_their_deadline<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let interval = Duration::from_millis(20);
    let submitted = Instant::now();
    let deadline = submitted + Duration::from_millis(70);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let handle = manager
        .submit(
            Task::blocking({
                let starts = Arc::clone(&starts);
                move |_: &Context| {
                    starts.lock().unwrap().push(Instant::now());
                    Ok::<_, BoxError>(())
                }
            })
            .every(
                Every::new(interval)
                    .until(deadline)
                    .missed_ticks(MissedTicks::Burst),
            ),
        )
        .unwrap();
    wait(handle).unwrap();
    let starts = starts.lock().unwrap().clone();
    // Ticks are due at 0, 20, 40 and 60 ms; the one at 80 ms is past the deadline.
    assert!((1..=4).contains(&starts.len()), "{} runs", starts.len());
    for (k, start) in starts.iter().enumerate() {
        assert!(
            *start >= submitted + interval * k as u32,
            "run {k} started early"
        );
    }
}

/// With the default overlap policy, ticks that come while a run is running are skipped:
/// the next run waits for the first tick after the previous run ended.
pub fn overlapping_ticks_are_skipped_by_default<A: Adapter>() {
    let manager = A::builder().workers(2).build().unwrap();
    let interval = Duration::from_millis(20);
    let spans = Arc::new(Mutex::new(Vec::new()));
    let submitted = Instant::now();
    let handle = manager
        .submit(
            Task::blocking({
                let spans = Arc::clone(&spans);
                move |_: &Context| {
                    let start = Instant::now();
                    std::thread::sleep(Duration::from_millis(50));
                    spans.lock().unwrap().push((start, Instant::now()));
                    Ok::<_, BoxError>(())
                }
            })
            .every(Every::new(interval).times(2).overlap(Overlap::Skip)),
        )
        .unwrap();
    wait(handle).unwrap();
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    let (_, first_end) = spans[0];
    let (second_start, _) = spans[1];
    // The ticks at 20 and 40 ms came during the first run: skipped. The next is the
    // first tick after it ended.
    let ticks_by_end = (first_end - submitted).as_nanos() / interval.as_nanos();
    let next_tick = submitted + interval * (ticks_by_end as u32 + 1);
    assert!(second_start >= next_tick);
    assert!(second_start >= submitted + interval * 3);

    // With `Overlap::Queue` the second run follows the first without waiting for a tick.
    let spans = Arc::new(Mutex::new(Vec::new()));
    let handle = manager
        .submit(
            Task::blocking({
                let spans = Arc::clone(&spans);
                move |_: &Context| {
                    let start = Instant::now();
                    std::thread::sleep(Duration::from_millis(50));
                    spans.lock().unwrap().push((start, Instant::now()));
                    Ok::<_, BoxError>(())
                }
            })
            .every(Every::new(interval).times(2).overlap(Overlap::Queue)),
        )
        .unwrap();
    wait(handle).unwrap();
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    assert!(spans[1].0 >= spans[0].1, "runs never overlap");
}

/// Cancelling a recurring task between or during runs ends it for good.
pub fn cancelling_a_recurring_task_ends_it<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(1).build().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let second = Gate::default();
    let handle = manager
        .submit(
            Task::blocking({
                let runs = Arc::clone(&runs);
                let second = second.clone();
                move |_: &Context| {
                    if runs.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                        second.open();
                    }
                    Ok::<_, BoxError>(())
                }
            })
            .every(Every::new(Duration::from_millis(5))),
        )
        .unwrap();
    second.wait();
    handle.cancel().unwrap();
    assert!(wait(handle).unwrap_err().is_cancelled());
    // A cancel during a run detaches the run's closure: its slot is free once it returns.
    assert!(manager.wait_for_detached(PATIENCE).wait());
    // The slot is free again (capacity 1), and the recurring task is not active.
    let after = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(9))
        .unwrap();
    assert_eq!(wait(after).unwrap(), 9);
    assert!(manager.active_tasks().is_empty());
    assert!(runs.load(Ordering::SeqCst) >= 2);
}
