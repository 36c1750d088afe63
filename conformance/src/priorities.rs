//! Strict and weighted priorities.

use std::sync::{Arc, Mutex};

use errand_core::engine::{BoxError, Context, Task};
use errand_core::{Mode, Priority};

use crate::Adapter;
use crate::support::{block_worker, wait};

/// Submits one task per priority in `order` behind a blocked single worker and returns
/// the order they ran in.
fn run_order<A: Adapter>(mode: Mode, priorities: &[Priority]) -> Vec<u8> {
    let manager = A::builder().workers(1).priority_mode(mode).build().unwrap();
    let (gate, blocker) = block_worker(&manager);
    let ran = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = priorities
        .iter()
        .map(|&priority| {
            let ran = Arc::clone(&ran);
            manager
                .submit(
                    Task::blocking(move |_: &Context| {
                        ran.lock().unwrap().push(priority.0);
                        Ok::<_, BoxError>(())
                    })
                    .priority(priority),
                )
                .unwrap()
        })
        .collect();
    gate.open();
    wait(blocker).unwrap();
    for handle in handles {
        wait(handle).unwrap();
    }
    ran.lock().unwrap().clone()
}

/// In strict mode the queued tasks run highest priority first, FIFO within a priority.
pub fn strict_priorities_never_wait_behind_lower_ones<A: Adapter>() {
    let order = run_order::<A>(
        Mode::Strict,
        &[
            Priority::LOW,
            Priority::NORMAL,
            Priority::HIGH,
            Priority::CRITICAL,
            Priority::LOW,
            Priority::CRITICAL,
        ],
    );
    assert_eq!(order, [20, 20, 10, 5, 1, 1]);
}

/// In weighted mode a low-priority task runs before a long run of critical ones ends.
pub fn weighted_priorities_let_low_work_through<A: Adapter>() {
    let mut priorities = vec![Priority::CRITICAL; 60];
    priorities.push(Priority::LOW);
    let order = run_order::<A>(Mode::Weighted, &priorities);
    let low_at = order.iter().position(|&p| p == 1).unwrap();
    assert!(
        low_at < 60,
        "the low task ran last (position {low_at}): it starved"
    );
}
