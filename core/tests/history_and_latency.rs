//! The finished-task history as a list (most recent first) and the latency histograms
//! per priority level behind the analytics' percentiles.

use std::time::Duration;

use errand_core::engine::{BoxError, Builder, Context, Driver, Runtime, Task};
use errand_core::{Level, Priority, State};

#[derive(Clone)]
struct Threads;

impl Runtime for Threads {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .spawn(move || driver.run_blocking())
            .map(drop)
    }
}

#[test]
fn finished_tasks_are_listed_newest_first_and_histograms_count_per_level() {
    let manager = Builder::new(Threads).workers(1).history(4).build().unwrap();
    let ok = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(())).priority(Priority::HIGH))
        .unwrap();
    ok.wait().unwrap();
    let failing = manager
        .submit(Task::blocking(|_: &Context| Err::<(), _>(BoxError::from("no"))).label("bad"))
        .unwrap();
    let failed = failing.id();
    failing.wait().unwrap_err();
    let listed = manager.finished_tasks();
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].id, listed[0].state), (failed, State::Failed));
    assert_eq!(listed[0].error.as_deref(), Some("task failed: no"));
    assert_eq!(listed[1].state, State::Succeeded);
    // The history keeps its last 4: older tasks drop out of the list.
    for _ in 0..6 {
        manager
            .spawn_blocking(|_| Ok::<_, BoxError>(()))
            .unwrap()
            .wait()
            .unwrap();
    }
    assert_eq!(manager.finished_tasks().len(), 4);
    let latency = manager.latency();
    assert_eq!(latency.execution[Level::High.index()].count(), 1);
    assert_eq!(latency.dispatch[Level::High.index()].count(), 1);
    assert_eq!(latency.execution[Level::Normal.index()].count(), 7);
    assert_eq!(latency.execution[Level::Low.index()].count(), 0);
    assert!(manager.shutdown(Duration::from_secs(10)).wait().completed);
}

#[test]
fn cancelling_a_task_whose_slot_was_reclaimed_names_its_end() {
    use errand_core::engine::CancelError;
    let manager = Builder::new(Threads).workers(1).build().unwrap();
    let handle = manager.spawn_blocking(|_| Ok::<_, BoxError>(())).unwrap();
    let id = handle.id();
    handle.wait().unwrap();
    assert!(manager.wait_for_completion(Duration::from_secs(10)).wait());
    // The slot is free now; the history still has the task.
    assert_eq!(
        manager.cancel(id),
        Err(CancelError::Finished {
            id,
            state: State::Succeeded
        })
    );
}
