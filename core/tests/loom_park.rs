//! Loom models of worker parking ([`Parking`], the engine's idle count) over the real
//! priority queue: a push that completes while the only worker goes idle always gets that
//! worker woken or seen, and a stop always reaches an idle worker.
//!
//! A lost wakeup shows as a loom deadlock (the worker waits forever).
#![cfg(errand_loom)]

mod support;

use errand_core::{InlinePriorityQueue, Mode, Parked, Parking, Priority};
use loom::sync::Arc;
use loom::thread;
use support::Bell;

type Queue = InlinePriorityQueue<u8, 1>;

struct Pool {
    queue: Queue,
    parking: Parking<Bell>,
}

fn pool() -> Arc<Pool> {
    Arc::new(Pool {
        queue: Queue::new(Mode::Strict),
        parking: Parking::new(Bell::default()),
    })
}

/// The engine's worker loop: take work, else park (re-checking the queue), until told to
/// exit or `until` items were taken. Returns the items taken.
fn work(pool: &Pool, until: usize) -> usize {
    let mut taken = 0;
    loop {
        if pool.queue.pop().is_some() {
            taken += 1;
            if taken == until {
                return taken;
            }
            continue;
        }
        match pool.parking.park(|| !pool.queue.is_empty()) {
            Parked::Work => {}
            Parked::Exit => return taken,
            Parked::Wait(listener, token) => {
                pool.parking.notifier().wait(listener);
                drop(token);
            }
        }
    }
}

/// One worker going idle while one producer pushes: the worker always gets the item.
#[test]
fn push_while_parking_wakes_the_worker() {
    loom::model(|| {
        let pool = pool();
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || work(&pool, 1))
        };
        pool.queue.push(7, Priority::NORMAL).unwrap();
        pool.parking.notify_work();
        assert_eq!(worker.join().unwrap(), 1);
        assert_eq!(pool.parking.idle(), 0);
    });
}

/// A stop while the only worker goes idle always makes it return.
#[test]
fn stop_while_parking_wakes_the_worker() {
    loom::model(|| {
        let pool = pool();
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || work(&pool, usize::MAX))
        };
        pool.parking.stop();
        assert_eq!(worker.join().unwrap(), 0);
        assert_eq!(pool.parking.idle(), 0);
    });
}

/// A push, then a stop, with the worker going idle meanwhile: the worker takes the item
/// before it exits (it exits only once it finds the queue empty).
#[test]
fn push_then_stop_runs_the_item() {
    loom::model(|| {
        let pool = pool();
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || work(&pool, usize::MAX))
        };
        pool.queue.push(7, Priority::NORMAL).unwrap();
        pool.parking.notify_work();
        pool.parking.stop();
        assert_eq!(worker.join().unwrap(), 1);
    });
}
