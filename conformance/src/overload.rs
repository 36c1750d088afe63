//! Overload and bad input: a full queue, a spent budget, batches, invalid specs. A rejected task comes back whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use errand_core::engine::{BoxError, Context, Every, SubmitError, Task};

use crate::Adapter;
use crate::support::{PATIENCE, block_worker, one_worker, wait};

/// Past the queue capacity (live tasks) a submission fails and gives the task back.
pub fn a_full_queue_gives_the_task_back<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(2).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let queued = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(1))
        .unwrap();
    let error = manager
        .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(2)).label("third"))
        .unwrap_err();
    assert!(matches!(error, SubmitError::QueueFull { capacity: 2, .. }));
    assert_eq!(
        error.to_string(),
        "queue full: all 2 task slots hold live tasks (queued, scheduled or running)"
    );
    let task = error.into_task();
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(queued).unwrap(), 1);
    // The task given back is whole: submitted again it runs.
    assert_eq!(wait(manager.submit(task).unwrap()).unwrap(), 2);
}

/// Once queued tasks fill the memory budget, submissions are refused and the task is
/// given back; the budget refills as tasks end.
pub fn a_spent_budget_gives_the_task_back<A: Adapter>() {
    let manager = A::builder().workers(1).memory_pool_mb(1).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let chunk = [1_u8; 30_000];
    let mut accepted = Vec::new();
    let error = loop {
        match manager.spawn_blocking(move |_: &Context| Ok::<_, BoxError>(chunk[0])) {
            Ok(handle) => accepted.push(handle),
            Err(error) => break error,
        }
        assert!(accepted.len() <= 40, "the budget never ran out");
    };
    let SubmitError::BudgetExceeded {
        requested, budget, ..
    } = &error
    else {
        panic!("expected a budget error, got {error}");
    };
    // Each task is charged its closure (30 000 bytes and change) plus bookkeeping: as
    // many fit as 1 MiB holds (the small blocker fits in the remainder).
    assert!(*requested > 30_000 && *requested < 31_000);
    assert_eq!(accepted.len(), (1 << 20) / *requested);
    assert_eq!(*budget, 1 << 20);
    assert!(
        error
            .to_string()
            .starts_with("memory budget exceeded: the task needs ")
    );
    let task = error.into_task();
    gate.open();
    wait(blocker).unwrap();
    for handle in accepted {
        assert_eq!(wait(handle).unwrap(), 1);
    }
    assert!(manager.wait_for_completion(PATIENCE).wait());
    assert_eq!(manager.analytics().memory.used, 0);
    assert_eq!(wait(manager.submit(task).unwrap()).unwrap(), 1);
}

/// A batch is accepted whole or refused whole, with every task given back.
pub fn batches_are_all_or_nothing<A: Adapter>() {
    let manager = A::builder().workers(1).queue_capacity(3).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let ran = Arc::new(AtomicUsize::new(0));
    let make = |n: usize| -> Vec<_> {
        (0..n)
            .map(|i| {
                let ran = Arc::clone(&ran);
                Task::blocking(move |_: &Context| {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(i)
                })
            })
            .collect()
    };
    let error = manager.submit_batch(make(3)).unwrap_err();
    assert!(matches!(error, SubmitError::QueueFull { capacity: 3, .. }));
    assert_eq!(error.into_task().len(), 3);
    assert_eq!(manager.active_tasks().len(), 1, "only the blocker is live");
    let handles = manager.submit_batch(make(2)).unwrap();
    gate.open();
    wait(blocker).unwrap();
    let values: Vec<_> = handles.into_iter().map(|h| wait(h).unwrap()).collect();
    assert_eq!(values, [0, 1]);
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

/// Invalid specs are refused with a message naming the field; the task comes back.
pub fn invalid_specs_are_refused<A: Adapter>() {
    let manager = one_worker::<A>();
    let task = || Task::blocking(|_: &Context| Ok::<_, BoxError>(()));
    let cases = [
        (
            task().every(Every::new(Duration::ZERO)),
            "invalid task spec: the interval is 0 s",
        ),
        (
            task().every(Every::new(Duration::from_secs(1)).times(0)),
            "invalid task spec: a recurring task set to run 0 times",
        ),
        (
            task().timeout(Duration::ZERO),
            "invalid task spec: the timeout is 0 s",
        ),
    ];
    for (task, message) in cases {
        let error = manager.submit(task).unwrap_err();
        assert!(matches!(error, SubmitError::InvalidSpec { .. }));
        assert_eq!(error.to_string(), message);
    }
    assert_eq!(manager.counts().submitted, 0);
    assert!(A::builder().workers(0).build().is_err());
    assert!(A::builder().queue_capacity(0).build().is_err());
}

/// A task's stated weight (the heap it owns, which `size_of` cannot see) is charged to the
/// budget while it lives, and given back when it ends.
pub fn a_stated_weight_is_charged<A: Adapter>() {
    let manager = A::builder().workers(1).memory_pool_mb(1).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let rows: Vec<u8> = vec![7; 600 * 1024];
    let weight = rows.capacity();
    let heavy = |rows: Vec<u8>| {
        Task::blocking(move |_: &Context| Ok::<_, BoxError>(rows.len())).weight(weight)
    };
    let first = manager.submit(heavy(rows.clone())).unwrap();
    let used = manager.analytics().memory.used;
    assert!(
        used >= weight,
        "{used} bytes charged for a {weight}-byte weight"
    );
    // A second one does not fit in the 1 MiB budget: it comes back whole.
    match manager.submit(heavy(rows)) {
        Err(SubmitError::BudgetExceeded {
            requested, task, ..
        }) => {
            assert!(requested >= weight);
            drop(task);
        }
        other => panic!("expected a budget refusal, got {:?}", other.map(|h| h.id())),
    }
    gate.open();
    wait(blocker).unwrap();
    assert_eq!(wait(first).unwrap(), 600 * 1024);
    assert!(manager.wait_for_completion(PATIENCE).wait());
    assert_eq!(manager.analytics().memory.used, 0);
}
