//! Timer wheel: per-operation cost of insert, cancel and fire with 10k and 1M timers,
//! against a `BTreeMap<(deadline, index), ()>` timer queue (the usual simple baseline).
//!
//! Deadlines are uniform over one hour of 1 ms ticks; cancels go in random order. Each
//! measured iteration performs `n` operations (`Throughput::Elements(n)`), so criterion's
//! time per element is the cost per operation. `fire` advances past every deadline in one
//! call: it includes the cascades between levels, so it is the cost per fired timer.
//! Memory per pending timer is measured with a counting allocator and printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use errand_core::{TimerEntry, TimerWheel};

/// Counts live heap bytes, to report memory per pending timer.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The baseline: an ordered map of `(deadline, index)` plus each index's deadline, so
/// that cancel by index is possible.
struct BTreeTimers {
    queue: BTreeMap<(u64, u32), ()>,
    deadlines: Vec<Option<u64>>,
}

impl BTreeTimers {
    fn with_capacity(n: usize) -> Self {
        Self {
            queue: BTreeMap::new(),
            deadlines: vec![None; n],
        }
    }
    fn insert(&mut self, index: usize, deadline: u64) {
        if let Some(old) = self.deadlines[index].replace(deadline) {
            self.queue.remove(&(old, index as u32));
        }
        self.queue.insert((deadline, index as u32), ());
    }
    fn cancel(&mut self, index: usize) -> Option<u64> {
        let old = self.deadlines[index].take()?;
        self.queue.remove(&(old, index as u32));
        Some(old)
    }
    fn next_deadline(&self) -> Option<u64> {
        self.queue
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
    }
    fn poll(&mut self, now: u64) -> Option<usize> {
        let entry = self.queue.first_entry()?;
        let (deadline, index) = *entry.key();
        if deadline > now {
            return None;
        }
        entry.remove();
        self.deadlines[index as usize] = None;
        Some(index as usize)
    }
    fn advance(&mut self, now: u64, mut fire: impl FnMut(usize)) {
        while let Some(entry) = self.queue.first_entry() {
            let (deadline, index) = *entry.key();
            if deadline > now {
                break;
            }
            entry.remove();
            self.deadlines[index as usize] = None;
            fire(index as usize);
        }
    }
}

/// SplitMix64: deterministic inputs without a dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const HOUR_MS: u64 = 3_600_000;

struct Inputs {
    deadlines: Vec<u64>,
    cancel_order: Vec<usize>,
}

fn inputs(n: usize) -> Inputs {
    let mut s = 0x5EED ^ n as u64;
    let deadlines = (0..n).map(|_| 1 + splitmix(&mut s) % HOUR_MS).collect();
    let mut cancel_order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        cancel_order.swap(i, j);
    }
    Inputs {
        deadlines,
        cancel_order,
    }
}

type Wheel = TimerWheel<Box<[TimerEntry]>>;

fn filled_wheel(inp: &Inputs) -> Wheel {
    let mut w = TimerWheel::with_capacity(inp.deadlines.len());
    for (i, &d) in inp.deadlines.iter().enumerate() {
        w.insert(i, d).unwrap();
    }
    w
}

fn filled_btree(inp: &Inputs) -> BTreeTimers {
    let mut t = BTreeTimers::with_capacity(inp.deadlines.len());
    for (i, &d) in inp.deadlines.iter().enumerate() {
        t.insert(i, d);
    }
    t
}

fn report_memory(n: usize, inp: &Inputs) {
    let before = LIVE.load(Ordering::Relaxed);
    let wheel = filled_wheel(inp);
    let wheel_heap = LIVE.load(Ordering::Relaxed) - before;
    let wheel_total = wheel_heap + size_of_val(&wheel);
    drop(wheel);
    let before = LIVE.load(Ordering::Relaxed);
    let btree = filled_btree(inp);
    let btree_total = LIVE.load(Ordering::Relaxed) - before + size_of_val(&btree);
    drop(btree);
    println!(
        "timer memory, {n} pending: wheel {wheel_total} B ({:.1} B/timer), \
         btree baseline {btree_total} B ({:.1} B/timer)",
        wheel_total as f64 / n as f64,
        btree_total as f64 / n as f64,
    );
}

fn bench_timer(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer");
    for n in [10_000usize, 1_000_000] {
        let inp = inputs(n);
        report_memory(n, &inp);
        group.throughput(Throughput::Elements(n as u64));
        if n >= 1_000_000 {
            group.sample_size(10);
        }

        group.bench_function(format!("insert/wheel/{n}"), |b| {
            b.iter_batched_ref(
                || TimerWheel::with_capacity(n),
                |w: &mut Wheel| {
                    for (i, &d) in inp.deadlines.iter().enumerate() {
                        w.insert(i, d).unwrap();
                    }
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("insert/btree/{n}"), |b| {
            b.iter_batched_ref(
                || BTreeTimers::with_capacity(n),
                |t| {
                    for (i, &d) in inp.deadlines.iter().enumerate() {
                        t.insert(i, d);
                    }
                },
                BatchSize::PerIteration,
            )
        });

        group.bench_function(format!("cancel/wheel/{n}"), |b| {
            b.iter_batched_ref(
                || filled_wheel(&inp),
                |w| {
                    for &i in &inp.cancel_order {
                        black_box(w.cancel(i));
                    }
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("cancel/btree/{n}"), |b| {
            b.iter_batched_ref(
                || filled_btree(&inp),
                |t| {
                    for &i in &inp.cancel_order {
                        black_box(t.cancel(i));
                    }
                },
                BatchSize::PerIteration,
            )
        });

        group.bench_function(format!("fire/wheel/{n}"), |b| {
            b.iter_batched_ref(
                || filled_wheel(&inp),
                |w| {
                    let mut fired = 0usize;
                    w.advance(HOUR_MS, |i| fired += black_box(i) & 1);
                    black_box(fired)
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("fire/btree/{n}"), |b| {
            b.iter_batched_ref(
                || filled_btree(&inp),
                |t| {
                    let mut fired = 0usize;
                    t.advance(HOUR_MS, |i| fired += black_box(i) & 1);
                    black_box(fired)
                },
                BatchSize::PerIteration,
            )
        });

        // The engine's steady state: sleep until `next_deadline()`, fire what is due and
        // re-arm each fired timer, n pending throughout. Cost per (wake-up share + fire +
        // re-arm).
        group.bench_function(format!("tick_rearm/wheel/{n}"), |b| {
            b.iter_batched_ref(
                || (filled_wheel(&inp), 0x1234u64),
                |(w, s)| {
                    let mut ops = 0;
                    while ops < n {
                        let now = w.next_deadline().unwrap();
                        while let Some(i) = w.poll(now) {
                            w.insert(i, now + 1 + splitmix(s) % HOUR_MS).unwrap();
                            ops += 1;
                        }
                    }
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("tick_rearm/btree/{n}"), |b| {
            b.iter_batched_ref(
                || (filled_btree(&inp), 0x1234u64),
                |(t, s)| {
                    let mut ops = 0;
                    while ops < n {
                        let now = t.next_deadline().unwrap();
                        while let Some(i) = t.poll(now) {
                            t.insert(i, now + 1 + splitmix(s) % HOUR_MS);
                            ops += 1;
                        }
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_timer
}
criterion_main!(benches);
