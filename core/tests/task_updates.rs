//! Task updates (`Manager::subscribe`): every transition and progress report reaches a
//! subscriber in order, several subscribers see the same, a subscriber that falls behind
//! learns how much it lost, and nothing is kept for nobody.

use std::time::{Duration, SystemTime};

use errand_core::engine::{
    BoxError, Builder, Context, Driver, Every, Manager, Runtime, Task, TaskUpdate, UpdateKind,
    Updates,
};
use errand_core::{Priority, RetryPolicy, State, TaskId};

#[derive(Clone)]
struct Threads;

impl Runtime for Threads {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .spawn(move || driver.run_blocking())
            .map(drop)
    }
}

fn manager() -> Manager<Threads> {
    Builder::new(Threads).workers(2).build().unwrap()
}

/// Drains `updates` until `done` holds for what was gathered (failing after 10 s).
fn gather(updates: &mut Updates, done: impl Fn(&[TaskUpdate]) -> bool) -> Vec<TaskUpdate> {
    let mut seen = Vec::new();
    loop {
        assert_eq!(updates.drain(&mut seen), 0, "no update lost");
        if done(&seen) {
            return seen;
        }
        assert!(
            updates.wait(Duration::from_secs(10)),
            "no update within 10 s; so far {seen:#?}"
        );
    }
}

fn ended(id: TaskId) -> impl Fn(&[TaskUpdate]) -> bool {
    move |seen| {
        seen.iter()
            .any(|u| u.id == id && matches!(u.kind, UpdateKind::Ended { .. }))
    }
}

fn of(seen: &[TaskUpdate], id: TaskId) -> Vec<(State, UpdateKind)> {
    seen.iter()
        .filter(|u| u.id == id)
        .map(|u| (u.state, u.kind.clone()))
        .collect()
}

#[test]
fn a_retried_task_reports_each_step_in_order() {
    let manager = manager();
    let mut updates = manager.subscribe();
    let handle = manager
        .submit(
            Task::blocking(|ctx: &Context| {
                ctx.progress(40.0, "working")?;
                if ctx.attempt() == 1 {
                    Err(BoxError::from("flaky"))
                } else {
                    Ok(())
                }
            })
            .label("flaky job")
            .priority(Priority::HIGH)
            .retry(
                RetryPolicy::builder()
                    .max_retries(1)
                    .initial_delay(Duration::from_millis(5))
                    .build()
                    .unwrap(),
            ),
        )
        .unwrap();
    let id = handle.id();
    handle.wait().unwrap();
    let seen = gather(&mut updates, ended(id));
    let steps = of(&seen, id);
    assert_eq!(steps.len(), 7, "{steps:#?}");
    assert_eq!(
        steps[0],
        (
            State::Queued,
            UpdateKind::Submitted {
                priority: Priority::HIGH,
                label: Some("flaky job".into())
            }
        )
    );
    assert_eq!(
        steps[1],
        (State::Running, UpdateKind::Started { attempt: 1 })
    );
    assert_eq!(
        steps[2],
        (
            State::Running,
            UpdateKind::Progress {
                percent: 40.0,
                message: "working".into()
            }
        )
    );
    match &steps[3] {
        (
            State::Retrying,
            UpdateKind::Retrying {
                attempt: 1, error, ..
            },
        ) => {
            assert_eq!(error.as_deref(), Some("task failed: flaky"));
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(
        steps[4],
        (State::Running, UpdateKind::Started { attempt: 2 })
    );
    assert!(matches!(steps[5].1, UpdateKind::Progress { .. }));
    assert_eq!(
        steps[6],
        (
            State::Succeeded,
            UpdateKind::Ended {
                attempt: 2,
                error: None
            }
        )
    );
    // Times never go back within one task.
    let times: Vec<SystemTime> = seen.iter().filter(|u| u.id == id).map(|u| u.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn cancels_timeouts_failures_and_schedules_are_reported() {
    let manager = manager();
    let mut updates = manager.subscribe();
    let delayed = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_secs(3600)),
        )
        .unwrap();
    let slow = manager
        .submit(
            Task::blocking(|ctx: &Context| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok::<_, BoxError>(())
            })
            .timeout(Duration::from_millis(20)),
        )
        .unwrap();
    let failing = manager
        .submit(Task::blocking(|_: &Context| {
            Err::<(), _>(BoxError::from("broken"))
        }))
        .unwrap();
    let recurring = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(()))
                .every(Every::new(Duration::from_millis(200)).times(2)),
        )
        .unwrap();
    manager.cancel(delayed.id()).unwrap();
    let ids = [delayed.id(), slow.id(), failing.id(), recurring.id()];
    let seen = gather(&mut updates, |seen| ids.iter().all(|id| ended(*id)(seen)));
    let last = |id: TaskId| of(&seen, id).pop().unwrap();
    assert_eq!(of(&seen, delayed.id())[0].0, State::Scheduled);
    assert_eq!(
        last(delayed.id()),
        (
            State::Cancelled,
            UpdateKind::Ended {
                attempt: 0,
                error: None
            }
        )
    );
    assert_eq!(last(slow.id()).0, State::TimedOut);
    assert_eq!(
        last(failing.id()),
        (
            State::Failed,
            UpdateKind::Ended {
                attempt: 1,
                error: Some("task failed: broken".into())
            }
        )
    );
    let runs = of(&seen, recurring.id());
    let rescheduled = runs
        .iter()
        .find_map(|(state, kind)| match kind {
            UpdateKind::Rescheduled { next_run } => Some((*state, *next_run)),
            _ => None,
        })
        .expect("the first run is rescheduled");
    assert_eq!(rescheduled.0, State::Scheduled);
    assert!(rescheduled.1 > SystemTime::now() - Duration::from_secs(60));
    assert_eq!(runs.last().unwrap().0, State::Succeeded);
}

#[test]
fn every_subscriber_sees_the_same_and_late_ones_see_nothing_earlier() {
    let manager = manager();
    let mut first = manager.subscribe();
    let mut second = manager.subscribe();
    let handle = manager.spawn_blocking(|_| Ok::<_, BoxError>(())).unwrap();
    let id = handle.id();
    handle.wait().unwrap();
    let a = gather(&mut first, ended(id));
    let b = gather(&mut second, ended(id));
    assert_eq!(a, b);
    drop((first, second));
    // Nobody listened while this ran: a subscription begun afterwards finds nothing.
    manager
        .spawn_blocking(|_| Ok::<_, BoxError>(()))
        .unwrap()
        .wait()
        .unwrap();
    let mut late = manager.subscribe();
    assert!(!late.has_new());
    let mut none = Vec::new();
    assert_eq!(late.drain(&mut none), 0);
    assert!(none.is_empty());
}

#[test]
fn a_subscriber_that_falls_behind_learns_how_much_it_lost() {
    let manager = Builder::new(Threads)
        .workers(1)
        .queue_capacity(8192)
        .build()
        .unwrap();
    let mut updates = manager.subscribe();
    // 3 updates per task from the submitting thread and the worker: far more than the
    // rings keep; the writers never wait for this reader.
    let tasks = 6000;
    let handles: Vec<_> = (0..tasks)
        .map(|_| manager.spawn_blocking(|_| Ok::<_, BoxError>(())).unwrap())
        .collect();
    for handle in handles {
        handle.wait().unwrap();
    }
    assert!(manager.wait_for_completion(Duration::from_secs(30)).wait());
    let mut seen = Vec::new();
    let lost = updates.drain(&mut seen);
    assert!(lost > 0, "nothing lost of {} updates", 3 * tasks);
    assert_eq!(lost + seen.len() as u64, 3 * tasks as u64);
    // Caught up: the next drain loses nothing.
    let mut more = Vec::new();
    assert_eq!(updates.drain(&mut more), 0);
    assert!(more.is_empty());
}

#[test]
fn an_async_waiter_wakes_on_the_next_update() {
    let manager = manager();
    let mut updates = manager.subscribe();
    let waiter = std::thread::spawn(move || {
        errand_core_block_on(async {
            updates.changed().await;
        });
        updates
    });
    manager
        .spawn_blocking(|_| Ok::<_, BoxError>(()))
        .unwrap()
        .wait()
        .unwrap();
    let mut updates = waiter.join().unwrap();
    let mut seen = Vec::new();
    updates.drain(&mut seen);
    assert!(!seen.is_empty());
}

#[test]
fn waiting_readers_miss_no_wake_up_while_workers_write() {
    // Each round a reader waits while a worker writes the task's updates: a write that
    // slipped between the reader's look and its wait without waking it would stall the
    // round for the full 10 s and fail it. Blocking and async readers alike.
    let manager = manager();
    let mut updates = manager.subscribe();
    for round in 0..500 {
        let handle = manager.spawn_blocking(|_| Ok::<_, BoxError>(())).unwrap();
        let id = handle.id();
        if round % 2 == 0 {
            gather(&mut updates, ended(id));
        } else {
            // A watchdog: if the round stalls, it says so and writes an update (a task of
            // its own) to wake the reader, so the test fails instead of hanging.
            let (done, finished) = std::sync::mpsc::channel::<()>();
            let manager = &manager;
            let stalled = std::thread::scope(|scope| {
                let watchdog = scope.spawn(move || {
                    let stalled = finished.recv_timeout(Duration::from_secs(10)).is_err();
                    if stalled {
                        drop(manager.spawn_blocking(|_| Ok::<_, BoxError>(())));
                    }
                    stalled
                });
                let mut seen = Vec::new();
                errand_core_block_on(async {
                    loop {
                        updates.drain(&mut seen);
                        if ended(id)(&seen) {
                            break;
                        }
                        updates.changed().await;
                    }
                });
                done.send(()).ok();
                watchdog.join().unwrap()
            });
            assert!(
                !stalled,
                "round {round}: an async reader missed its wake-up"
            );
        }
        handle.wait().unwrap();
    }
}

/// A minimal executor: polls `future` on this thread, parking between polls.
fn errand_core_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park_timeout(Duration::from_secs(10));
    }
}
