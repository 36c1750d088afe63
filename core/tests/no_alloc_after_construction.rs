//! Every bounded structure allocates at construction and never again: the queue, slot table,
//! state cell, memory budget, timer wheel and statistics are driven hard under a counting
//! global allocator, and the count of allocations made while they work must be zero.
#![cfg(not(errand_loom))] // loom swaps the atomics; this test is about the real ones

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use errand_core::{
    BoxedPriorityQueue, Event, Histogram, MemoryBudget, Mode, Priority, SlotTable, SplitMix64,
    State, StateCell, TimerWheel,
};

/// Counts the allocations made by threads that have armed the counter.
struct Counting;

thread_local! {
    /// Whether this thread's allocations are being counted.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// This thread's count. Per thread, so tests running in parallel do not see each
    /// other's allocations.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if ARMED.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counting around it allocates nothing (const thread-locals without
// destructors).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `alloc`'s contract; passed through unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `work` with this thread's allocations counted; returns how many it made.
fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    ARMED.with(|a| a.set(true));
    work();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_counts() {
    // A check that cannot fail is no check: the counter must see a real allocation.
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(7u64))));
    assert_eq!(n, 1);
}

#[test]
fn queue_allocates_nothing_after_construction() {
    let queue = Arc::new(BoxedPriorityQueue::<u64>::with_capacity(256, Mode::Strict));
    let weighted = BoxedPriorityQueue::<u64>::with_capacity(64, Mode::Weighted);
    let n = allocations_during(|| {
        for round in 0..50u64 {
            for i in 0..300u64 {
                // Past capacity the item comes back in the error: no allocation either.
                let _ = queue.push(i, Priority((i % 25) as u8));
                let _ = weighted.push(i, Priority((i * round % 25) as u8));
            }
            while queue.pop().is_some() {}
            while weighted.pop().is_some() {}
        }
    });
    assert_eq!(n, 0, "the queue allocated {n} times after construction");

    // Two threads contending, each counting its own allocations.
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                allocations_during(|| {
                    for i in 0..20_000u64 {
                        let _ = queue.push(i, Priority(((i + t) % 21) as u8));
                        let _ = queue.pop();
                    }
                })
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), 0, "a contending thread allocated");
    }
}

#[test]
fn slot_table_and_state_cells_allocate_nothing() {
    let table =
        SlotTable::<StateCell, Box<[_]>>::with_capacity(128, |_| StateCell::new(State::Queued));
    let n = allocations_during(|| {
        for _ in 0..100 {
            let mut ids = [None; 128];
            for id in &mut ids {
                let (new, cell) = table.acquire().unwrap();
                cell.reset(State::Queued);
                let _ = cell.apply(Event::Start);
                let _ = cell.apply(Event::Succeed);
                let _ = cell.apply(Event::Cancel); // rejected: terminal
                *id = Some(new);
            }
            assert!(table.acquire().is_err());
            for id in ids.into_iter().flatten() {
                table.release(id).unwrap();
                assert!(table.release(id).is_err());
            }
        }
    });
    assert_eq!(n, 0, "slot table / state cells allocated {n} times");
}

#[test]
fn budget_allocates_nothing() {
    let budget = Arc::new(MemoryBudget::new(1 << 20));
    let n = allocations_during(|| {
        for i in 0..10_000usize {
            let mut r = budget.try_reserve(i % 4096).unwrap();
            let _ = r.try_grow(i);
            r.shrink(7);
            let owned = MemoryBudget::try_reserve_owned(&budget, 10);
            drop(owned);
            let _ = budget.try_reserve(usize::MAX); // refused
        }
    });
    assert_eq!(n, 0, "the budget allocated {n} times");
}

#[test]
fn timer_wheel_allocates_nothing_after_construction() {
    let mut wheel = TimerWheel::<Box<[_]>>::with_capacity(4096);
    let mut rng = SplitMix64::new(9);
    let n = allocations_during(|| {
        use errand_core::RandomSource;
        let mut now = 0u64;
        for round in 0..50u64 {
            for index in 0..4096usize {
                let deadline = now + rng.next_u64() % (1 << (round % 40 + 1));
                wheel.insert(index, deadline).unwrap();
            }
            for index in (0..4096usize).step_by(3) {
                wheel.cancel(index);
            }
            now = now.saturating_add(1 << (round % 41));
            wheel.advance(now, |_| {});
            while let Some(next) = wheel.next_deadline() {
                now = next;
                wheel.advance(now, |_| {});
            }
        }
    });
    assert_eq!(n, 0, "the timer wheel allocated {n} times");
}

#[test]
fn statistics_allocate_nothing() {
    let histogram = Histogram::new();
    let n = allocations_during(|| {
        for i in 0..100_000u64 {
            histogram.record(i.wrapping_mul(2_654_435_761));
        }
        let snapshot = histogram.snapshot();
        assert!(snapshot.p99().is_some());
        assert!(snapshot.mean().is_some());
    });
    assert_eq!(n, 0, "the histogram allocated {n} times");
}
