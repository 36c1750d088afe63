//! The priority queue against crossbeam's `ArrayQueue` (no priorities: the floor) and a
//! `Mutex<BinaryHeap>` with the same priorities (the obvious alternative).
//!
//! - `queue/1thread`: one thread, push then pop, cycling through the four named priorities.
//! - `queue/2threads`: two threads, each doing push+pop pairs with mixed priorities; the
//!   reported time is per push+pop pair of the whole system (total throughput). The queue
//!   holds a standing backlog of 64 items, so pops never come back empty (an empty pop is
//!   cheap and would flatter whichever subject hits it most).
//!
//! `cargo bench -p errand-benches --bench queue -- queue/1thread`

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use errand_benches::MutexHeap;
use errand_core::{BoxedPriorityQueue, Mode, Priority};

const CAPACITY: usize = 1024;
/// Items waiting in the queue throughout `queue/2threads`, spread over the four levels.
const BACKLOG: u64 = 64;
const PRIORITIES: [Priority; 4] = [
    Priority::LOW,
    Priority::NORMAL,
    Priority::HIGH,
    Priority::CRITICAL,
];

/// The three operations each subject offers, `true` on success.
trait Subject: Sync {
    fn push(&self, item: u64, priority: Priority) -> bool;
    fn pop(&self) -> bool;

    /// One push+pop pair.
    #[inline]
    fn pair(&self, item: u64, priority: Priority) {
        black_box(self.push(black_box(item), priority));
        black_box(self.pop());
    }
}

impl Subject for BoxedPriorityQueue<u64> {
    #[inline]
    fn push(&self, item: u64, priority: Priority) -> bool {
        BoxedPriorityQueue::push(self, item, priority).is_ok()
    }
    #[inline]
    fn pop(&self) -> bool {
        BoxedPriorityQueue::pop(self).is_some()
    }
}

/// errand with every item on one level: what the priorities cost on top of the rings.
struct OneLevel(BoxedPriorityQueue<u64>);

impl Subject for OneLevel {
    #[inline]
    fn push(&self, item: u64, _priority: Priority) -> bool {
        self.0.push(item, Priority::NORMAL).is_ok()
    }
    #[inline]
    fn pop(&self) -> bool {
        self.0.pop().is_some()
    }
}

impl Subject for ArrayQueue<u64> {
    #[inline]
    fn push(&self, item: u64, _priority: Priority) -> bool {
        ArrayQueue::push(self, item).is_ok()
    }
    #[inline]
    fn pop(&self) -> bool {
        ArrayQueue::pop(self).is_some()
    }
}

impl Subject for MutexHeap<u64> {
    #[inline]
    fn push(&self, item: u64, priority: Priority) -> bool {
        MutexHeap::push(self, item, priority).is_ok()
    }
    #[inline]
    fn pop(&self) -> bool {
        MutexHeap::pop(self).is_some()
    }
}

/// The subjects, each freshly built, by name.
fn subjects() -> Vec<(&'static str, Box<dyn Subject>)> {
    vec![
        (
            "errand_strict",
            Box::new(BoxedPriorityQueue::<u64>::with_capacity(
                CAPACITY,
                Mode::Strict,
            )),
        ),
        (
            "errand_weighted",
            Box::new(BoxedPriorityQueue::<u64>::with_capacity(
                CAPACITY,
                Mode::Weighted,
            )),
        ),
        (
            "errand_one_level",
            Box::new(OneLevel(BoxedPriorityQueue::with_capacity(
                CAPACITY,
                Mode::Strict,
            ))),
        ),
        (
            "array_queue",
            Box::new(ArrayQueue::<u64>::new(CAPACITY * 4)),
        ),
        (
            "mutex_heap",
            Box::new(MutexHeap::<u64>::with_capacity(CAPACITY * 4)),
        ),
    ]
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue/1thread");
    for (name, subject) in subjects() {
        group.bench_function(name, |b| {
            let mut i = 0u64;
            b.iter(|| {
                subject.pair(i, PRIORITIES[(i & 3) as usize]);
                i = i.wrapping_add(1);
            });
        });
    }
    group.finish();
}

/// Two threads run `iters / 2` pairs each, starting together; returns the wall time.
fn run_two(subject: &dyn Subject, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(2);
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let worker = |t: u64| {
            let barrier = &barrier;
            move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..per_thread {
                    subject.pair(i, PRIORITIES[((i + t) & 3) as usize]);
                }
                start.elapsed()
            }
        };
        let a = s.spawn(worker(0));
        let b = s.spawn(worker(1));
        a.join().unwrap().max(b.join().unwrap())
    })
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue/2threads");
    for (name, subject) in subjects() {
        // A standing backlog, so that (with every pop matched by a push) no pop finds the
        // queue empty and no push finds it full: the subjects all run their common path.
        for i in 0..BACKLOG {
            assert!(subject.push(i, PRIORITIES[(i & 3) as usize]));
        }
        group.bench_function(name, |b| b.iter_custom(|iters| run_two(&*subject, iters)));
    }
    group.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
