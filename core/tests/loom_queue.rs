//! Loom models of the priority queue: every interleaving of a few pushes and pops.
//!
//! Run with
//! `RUSTFLAGS="--cfg errand_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p errand-core --release --test loom_queue --target-dir target/loom`.
#![cfg(errand_loom)]

use errand_core::{InlinePriorityQueue, Level, Mode, Priority, PushError};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

type Queue<const N: usize> = InlinePriorityQueue<u32, N>;

/// Runs `f` under loom, allowing the longer paths that a pop spinning on a push in
/// progress produces.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 10_000;
    builder.check(f);
}

/// Pops until `None`, returning the items.
fn drain<const N: usize>(queue: &Queue<N>) -> Vec<(u32, Level)> {
    core::iter::from_fn(|| queue.pop()).collect()
}

fn sorted(mut items: Vec<u32>) -> Vec<u32> {
    items.sort_unstable();
    items
}

/// Two producers on different levels, one consumer popping while they push: after the
/// join every item comes out exactly once, on its own level.
#[test]
fn two_producers_one_consumer_lose_nothing() {
    model(|| {
        let queue = Arc::new(Queue::<1>::new(Mode::Strict));
        let producers: Vec<_> = [(1, Priority::HIGH), (2, Priority::LOW)]
            .into_iter()
            .map(|(item, priority)| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.push(item, priority).unwrap())
            })
            .collect();
        let mut got: Vec<_> = queue.pop().into_iter().collect();
        for p in producers {
            p.join().unwrap();
        }
        got.extend(drain(&queue));
        for &(item, level) in &got {
            assert_eq!(level, if item == 1 { Level::High } else { Level::Low });
        }
        assert_eq!(sorted(got.into_iter().map(|(i, _)| i).collect()), [1, 2]);
    });
}

/// One producer, two consumers racing for its items (one pushed before they start, one
/// while they pop): no item is lost or seen twice.
#[test]
fn one_producer_two_consumers_lose_nothing() {
    model(|| {
        let queue = Arc::new(Queue::<2>::new(Mode::Strict));
        queue.push(1, Priority::NORMAL).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.pop())
            })
            .collect();
        queue
            .push(2, Priority::NORMAL)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut got: Vec<u32> = Vec::new();
        for c in consumers {
            got.extend(c.join().unwrap().map(|(i, _)| i));
        }
        got.extend(drain(&queue).into_iter().map(|(i, _)| i));
        assert_eq!(sorted(got), [1, 2]);
    });
}

/// Two producers on one level: whatever the interleaving, each producer's items leave in
/// the order it pushed them.
#[test]
fn per_producer_fifo_within_a_level() {
    model(|| {
        let queue = Arc::new(Queue::<4>::new(Mode::Strict));
        let producers: Vec<_> = [[10, 11], [20, 21]]
            .into_iter()
            .map(|items| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for item in items {
                        queue.push(item, Priority::NORMAL).unwrap();
                    }
                })
            })
            .collect();
        let mut got: Vec<u32> = queue.pop().into_iter().map(|(i, _)| i).collect();
        for p in producers {
            p.join().unwrap();
        }
        got.extend(drain(&queue).into_iter().map(|(i, _)| i));
        for producer in [10, 20] {
            let mine: Vec<_> = got
                .iter()
                .copied()
                .filter(|i| i / 10 == producer / 10)
                .collect();
            assert_eq!(mine, [producer, producer + 1], "{got:?}");
        }
    });
}

/// `Full` only when the level really is full: once a pop has returned, a push to that
/// level of capacity 1 succeeds, even while another level is full.
#[test]
fn full_only_when_really_full() {
    model(|| {
        let queue = Arc::new(Queue::<1>::new(Mode::Strict));
        queue.push(0, Priority::NORMAL).unwrap();
        queue.push(9, Priority::LOW).unwrap();
        let popped = Arc::new(AtomicBool::new(false));
        let popper = {
            let (queue, popped) = (Arc::clone(&queue), Arc::clone(&popped));
            thread::spawn(move || {
                let got = queue.pop();
                popped.store(true, Ordering::SeqCst);
                got
            })
        };
        let was_popped = popped.load(Ordering::SeqCst);
        let pushed = queue.push(1, Priority::NORMAL);
        if was_popped {
            assert_eq!(pushed, Ok(()));
        }
        assert_eq!(popper.join().unwrap(), Some((0, Level::Normal)));
        match pushed {
            // Full happened before the pop freed the slot: only the low item is left.
            Err(PushError::Full(1)) => assert_eq!(drain(&queue), [(9, Level::Low)]),
            Ok(()) => assert_eq!(drain(&queue), [(1, Level::Normal), (9, Level::Low)]),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

/// The summary race: a pop finds the high ring empty (its bit is stale) and clears the
/// bit while a push publishes to that ring. The item must not be stranded: a pop that
/// starts after the push completed finds it, and so does the drain after the join.
#[test]
fn bitmap_clear_races_a_push() {
    model(|| {
        let queue = Arc::new(Queue::<2>::new(Mode::Strict));
        // Leave the high bit set over an empty ring.
        queue.push(0, Priority::HIGH).unwrap();
        assert_eq!(queue.pop(), Some((0, Level::High)));
        let pushed = Arc::new(AtomicBool::new(false));
        let pusher = {
            let (queue, pushed) = (Arc::clone(&queue), Arc::clone(&pushed));
            thread::spawn(move || {
                queue.push(1, Priority::HIGH).unwrap();
                pushed.store(true, Ordering::SeqCst);
            })
        };
        let first = queue.pop();
        let push_done = pushed.load(Ordering::SeqCst);
        let second = queue.pop();
        if push_done {
            assert!(
                first.is_some() || second.is_some(),
                "a completed push was stranded"
            );
        }
        pusher.join().unwrap();
        let mut got: Vec<_> = [first, second].into_iter().flatten().collect();
        got.extend(drain(&queue));
        assert_eq!(got, [(1, Level::High)]);
    });
}

/// The same race with a lower level holding an item: the critical item must not be
/// left behind a cleared bit either.
#[test]
fn bitmap_clear_races_a_push_with_lower_level_busy() {
    model(|| {
        let queue = Arc::new(Queue::<1>::new(Mode::Strict));
        queue.push(0, Priority::CRITICAL).unwrap();
        assert_eq!(queue.pop(), Some((0, Level::Critical)));
        queue.push(5, Priority::LOW).unwrap();
        let pusher = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.push(1, Priority::CRITICAL).unwrap())
        };
        let first = queue.pop();
        pusher.join().unwrap();
        let mut got: Vec<_> = first.into_iter().collect();
        got.extend(drain(&queue));
        assert!(
            got[0] == (1, Level::Critical) || got[0] == (5, Level::Low),
            "{got:?}"
        );
        assert_eq!(sorted(got.into_iter().map(|(i, _)| i).collect()), [1, 5]);
    });
}

/// Weighted mode under concurrency: a pop racing a push still loses nothing.
#[test]
fn weighted_pop_races_push() {
    model(|| {
        let queue = Arc::new(Queue::<1>::new(Mode::Weighted));
        queue.push(1, Priority::LOW).unwrap();
        let pusher = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || queue.push(2, Priority::CRITICAL).unwrap())
        };
        let first = queue.pop();
        assert!(first.is_some());
        pusher.join().unwrap();
        let mut got: Vec<_> = first.into_iter().map(|(i, _)| i).collect();
        got.extend(drain(&queue).into_iter().map(|(i, _)| i));
        assert_eq!(sorted(got), [1, 2]);
    });
}

/// The summary race must not break strict order either: a high item whose push raced a
/// clearing pop is still served before a low item pushed after it.
#[test]
fn bitmap_clear_race_keeps_strict_order() {
    model(|| {
        let queue = Arc::new(Queue::<1>::new(Mode::Strict));
        // Leave the high bit set over an empty ring.
        queue.push(0, Priority::HIGH).unwrap();
        assert_eq!(queue.pop(), Some((0, Level::High)));
        let pusher = {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                queue.push(1, Priority::HIGH).unwrap();
                queue.push(2, Priority::LOW).unwrap();
            })
        };
        let first = queue.pop();
        pusher.join().unwrap();
        let mut got: Vec<_> = first.into_iter().collect();
        got.extend(drain(&queue));
        assert_eq!(got, [(1, Level::High), (2, Level::Low)]);
    });
}
