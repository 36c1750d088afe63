//! Loom models of the priority queue on [`Segments`]: pushes that race to install a
//! segment, and pops that race a push into a segment not yet there (rules 8-9 of the
//! queue module).
//!
//! Run with
//! `RUSTFLAGS="--cfg errand_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p errand-core --release --test loom_segments --target-dir target/loom`.
#![cfg(errand_loom)]

use errand_core::{Level, Mode, Priority, SegmentedPriorityQueue};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

type Queue = SegmentedPriorityQueue<u32>;

/// Runs `f` under loom, allowing the longer paths that a pop spinning on a push in
/// progress produces.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 10_000;
    builder.check(f);
}

fn drain(queue: &Queue) -> Vec<u32> {
    core::iter::from_fn(|| queue.pop().map(|(item, _)| item)).collect()
}

fn sorted(mut items: Vec<u32>) -> Vec<u32> {
    items.sort_unstable();
    items
}

/// Two pushes both find the level's first segment missing and both allocate one; one
/// installs it, the other frees its own and pushes into the winner's. A pop runs
/// beside them. Every item comes out once; both segments' slots were built, one freed.
#[test]
fn two_pushes_race_to_install_a_segment() {
    model(|| {
        let queue = Arc::new(Queue::segmented(2, 2, Mode::Strict));
        let producers: Vec<_> = [1, 2]
            .into_iter()
            .map(|item| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.push(item, Priority::NORMAL).unwrap())
            })
            .collect();
        let mut got: Vec<u32> = queue.pop().into_iter().map(|(i, _)| i).collect();
        for p in producers {
            p.join().unwrap();
        }
        got.extend(drain(&queue));
        assert_eq!(sorted(got), [1, 2]);
        assert_eq!(queue.allocated_slots(Level::Normal), 2);
    });
}

/// A pop races the push that crosses into a segment not yet allocated (segments of one
/// slot: the second item needs the second segment). The pop returns `None` only while
/// the push has not claimed its position, and a completed push is never missed.
#[test]
fn a_pop_races_a_push_into_a_new_segment() {
    model(|| {
        let queue = Arc::new(Queue::segmented(2, 1, Mode::Strict));
        queue.push(1, Priority::HIGH).unwrap();
        assert_eq!(queue.pop(), Some((1, Level::High)));
        let pushed = Arc::new(AtomicBool::new(false));
        let pusher = {
            let (queue, pushed) = (Arc::clone(&queue), Arc::clone(&pushed));
            thread::spawn(move || {
                queue.push(2, Priority::HIGH).unwrap();
                pushed.store(true, Ordering::SeqCst);
            })
        };
        let done_before = pushed.load(Ordering::SeqCst);
        let first = queue.pop();
        if done_before {
            assert_eq!(first, Some((2, Level::High)), "a completed push was missed");
        }
        pusher.join().unwrap();
        let mut got: Vec<u32> = first.into_iter().map(|(i, _)| i).collect();
        got.extend(drain(&queue));
        assert_eq!(got, [2]);
    });
}

/// Two producers on one level, every push past the first needing a new segment of one
/// slot, a pop between: each producer's items still leave in its order, and the ring
/// wraps onto the segments it has (a second lap allocates nothing).
#[test]
fn per_producer_fifo_across_segments() {
    model(|| {
        let queue = Arc::new(Queue::segmented(4, 1, Mode::Strict));
        let producers: Vec<_> = [[10, 11], [20, 21]]
            .into_iter()
            .map(|items| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    for item in items {
                        queue.push(item, Priority::LOW).unwrap();
                    }
                })
            })
            .collect();
        let mut got: Vec<u32> = queue.pop().into_iter().map(|(i, _)| i).collect();
        for p in producers {
            p.join().unwrap();
        }
        got.extend(drain(&queue));
        for producer in [10, 20] {
            let mine: Vec<_> = got
                .iter()
                .copied()
                .filter(|i| i / 10 == producer / 10)
                .collect();
            assert_eq!(mine, [producer, producer + 1], "{got:?}");
        }
        assert_eq!(queue.allocated_slots(Level::Low), 4);
        queue.push(30, Priority::LOW).unwrap();
        assert_eq!(drain(&queue), [30]);
        assert_eq!(queue.allocated_slots(Level::Low), 4);
        assert_eq!(queue.allocated_slots(Level::Normal), 0);
    });
}
