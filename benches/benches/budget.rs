//! The memory budget: a reservation taken and given back, against bare atomics.
//!
//! - `budget/1thread`: one thread reserving 64 bytes and dropping the reservation.
//! - `budget/2threads`: two threads doing the same on one budget at once; time per
//!   reserve+release pair of the whole system.
//!
//! Subjects: errand's `MemoryBudget` (`try_reserve`, which checks the limit with a
//! compare-exchange loop and tracks the peak; the drop gives the bytes back);
//! `fetch_add` (a bare `fetch_add`/`fetch_sub` pair with no limit: the floor); `cas_limit`
//! (the same compare-exchange loop with a limit check and no peak: what errand costs
//! beyond the floor, minus its bookkeeping).
//!
//! `cargo bench -p errand-benches --bench budget -- budget/2threads`

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_utils::CachePadded;
use errand_core::MemoryBudget;

const BYTES: usize = 64;
const LIMIT: usize = 1 << 30;

/// One way of taking `BYTES` and giving them back.
trait Subject: Sync {
    /// Reserves and releases once; `true` if the reservation was granted.
    fn cycle(&self) -> bool;
}

impl Subject for MemoryBudget {
    #[inline]
    fn cycle(&self) -> bool {
        // The reservation gives its bytes back when dropped, at the end of the statement.
        self.try_reserve(black_box(BYTES)).is_ok()
    }
}

/// The floor: no limit, no peak. (Each baseline's word has a cache line of its own, as
/// errand's has, so no neighbour on the heap shares it.)
struct FetchAdd(CachePadded<AtomicUsize>);

impl Subject for FetchAdd {
    #[inline]
    fn cycle(&self) -> bool {
        self.0.fetch_add(black_box(BYTES), Ordering::AcqRel);
        self.0.fetch_sub(BYTES, Ordering::Release);
        true
    }
}

/// A limit-checking compare-exchange loop without errand's peak and rejection counts.
struct CasLimit(CachePadded<AtomicUsize>);

impl Subject for CasLimit {
    #[inline]
    fn cycle(&self) -> bool {
        let bytes = black_box(BYTES);
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = match current.checked_add(bytes) {
                Some(next) if next <= LIMIT => next,
                _ => return false,
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.0.fetch_sub(bytes, Ordering::Release);
        true
    }
}

fn subjects() -> Vec<(&'static str, Box<dyn Subject>)> {
    vec![
        ("errand", Box::new(MemoryBudget::new(LIMIT))),
        (
            "fetch_add",
            Box::new(FetchAdd(CachePadded::new(AtomicUsize::new(0)))),
        ),
        (
            "cas_limit",
            Box::new(CasLimit(CachePadded::new(AtomicUsize::new(0)))),
        ),
    ]
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("budget/1thread");
    for (name, subject) in subjects() {
        group.bench_function(name, |b| b.iter(|| subject.cycle()));
    }
    group.finish();
}

/// Two threads run `iters / 2` cycles each, starting together; returns the wall time.
fn run_two(subject: &dyn Subject, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(2);
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let worker = || {
            barrier.wait();
            let start = Instant::now();
            for _ in 0..per_thread {
                assert!(subject.cycle());
            }
            start.elapsed()
        };
        let a = s.spawn(worker);
        let b = s.spawn(worker);
        a.join().unwrap().max(b.join().unwrap())
    })
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("budget/2threads");
    for (name, subject) in subjects() {
        group.bench_function(name, |b| b.iter_custom(|iters| run_two(&*subject, iters)));
    }
    group.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
