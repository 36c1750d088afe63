//! Shared pieces of errand's benchmarks: the baselines errand is measured against, and
//! what the side-by-side comparison runner (`src/bin/compare`) and its plots
//! (`src/bin/plots.rs`) share.
//!
//! - [`MutexHeap`] (below), [`ChannelPool`], [`BarePool`] and [`ExecutorPool`]: baselines.
//! - [`report`]: the runner's JSON-lines format and its statistics (median, percentile).
//! - [`counting`]: a counting global allocator for allocations and live bytes.
//! - [`cpu`]: the process's CPU time.

pub mod counting;
pub mod cpu;
mod executor;
mod pool;
pub mod report;

pub use executor::ExecutorPool;
pub use pool::{BarePool, ChannelPool};

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;

use errand_core::Priority;

/// The lock-based baseline for errand's [`PriorityQueue`](errand_core::PriorityQueue): a
/// `std::sync::Mutex` around a [`BinaryHeap`], keyed by `(priority, reverse sequence)` so it
/// is strict across priorities and FIFO within one, like errand's strict mode. Capacity is
/// reserved up front and, like errand's, enforced per call (`Err(item)` when full), so
/// neither side allocates while measured.
///
/// Note the heap orders by the exact `u8` priority, while errand orders by the four levels
/// those priorities map to; with the named priorities the two orders agree.
///
/// # Examples
///
/// ```
/// use errand_benches::MutexHeap;
/// use errand_core::Priority;
///
/// let heap = MutexHeap::with_capacity(4);
/// heap.push("b", Priority::LOW).unwrap();
/// heap.push("a", Priority::HIGH).unwrap();
/// heap.push("c", Priority::LOW).unwrap();
/// assert_eq!(heap.pop(), Some("a"));
/// assert_eq!(heap.pop(), Some("b"));
/// assert_eq!(heap.pop(), Some("c"));
/// assert_eq!(heap.pop(), None);
/// ```
#[derive(Debug)]
pub struct MutexHeap<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
}

#[derive(Debug)]
struct Inner<T> {
    heap: BinaryHeap<Entry<T>>,
    /// The next push's sequence number; lower pops first among equal priorities.
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<T> {
    key: (Priority, Reverse<u64>),
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl<T> MutexHeap<T> {
    /// An empty heap that accepts up to `capacity` items, all of them reserved now.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        MutexHeap {
            inner: Mutex::new(Inner {
                heap: BinaryHeap::with_capacity(capacity),
                next_seq: 0,
            }),
            capacity,
        }
    }

    /// Pushes `item`; gives it back when the heap holds `capacity` items.
    ///
    /// # Errors
    ///
    /// `Err(item)` when full.
    pub fn push(&self, item: T, priority: Priority) -> Result<(), T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.heap.len() == self.capacity {
            return Err(item);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.heap.push(Entry {
            key: (priority, Reverse(seq)),
            item,
        });
        Ok(())
    }

    /// Takes the highest-priority item, the oldest among equals.
    pub fn pop(&self) -> Option<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.heap.pop().map(|entry| entry.item)
    }
}
