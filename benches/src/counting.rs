//! A counting global allocator: how many allocations, and how many live bytes, a stretch of
//! code costs — counted on every thread.
//!
//! Install it in a binary with `#[global_allocator] static A: Counting = Counting;`, then
//! bracket the code with a [`Window`]. Counting is off outside windows: a contended counter
//! on every allocation would slow the other measurements of the same binary, so allocations
//! cost one relaxed load of a flag then.
//!
//! The live-byte figure of a window is bytes allocated minus bytes freed while it was open,
//! which is exactly the change in the heap's live bytes across it (whenever the freed
//! memory was allocated).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

static ON: AtomicBool = AtomicBool::new(false);
/// Calls to `alloc`, `alloc_zeroed` and `realloc` while on.
static ALLOCS: CachePadded<AtomicUsize> = CachePadded::new(AtomicUsize::new(0));
static ALLOCATED: CachePadded<AtomicUsize> = CachePadded::new(AtomicUsize::new(0));
static FREED: CachePadded<AtomicUsize> = CachePadded::new(AtomicUsize::new(0));
/// Any allocation at all, on or off: tells whether the allocator is installed.
static SEEN: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting while a [`Window`] is open.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counting;

impl Counting {
    fn allocated(size: usize) {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOCATED.fetch_add(size, Ordering::Relaxed);
        } else if !SEEN.load(Ordering::Relaxed) {
            SEEN.store(true, Ordering::Relaxed);
        }
    }

    fn freed(size: usize) {
        if ON.load(Ordering::Relaxed) {
            FREED.fetch_add(size, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and
// returns its result, so `System`'s guarantees are ours; the counting touches only atomics
// and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::allocated(layout.size());
        // SAFETY: forwarded with the caller's `layout`, which meets `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::allocated(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::freed(layout.size());
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::freed(layout.size());
        Self::allocated(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller vouches for
        // `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Whether [`Counting`] is the global allocator of this process.
#[must_use]
pub fn installed() -> bool {
    drop(std::hint::black_box(Box::new(0_u64)));
    SEEN.load(Ordering::Relaxed)
}

/// What a [`Window`] counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Allocator calls that allocated (a `realloc` counts as one).
    pub allocations: usize,
    /// Bytes allocated minus bytes freed: the change in live heap bytes.
    pub live_bytes: isize,
}

/// An open counting window. Only one may be open at a time.
#[derive(Debug)]
pub struct Window {
    allocs: usize,
    allocated: usize,
    freed: usize,
}

impl Window {
    /// Opens a window.
    ///
    /// # Panics
    ///
    /// If [`Counting`] is not the global allocator (the counts would read zero), or if
    /// another window is open.
    #[must_use]
    pub fn open() -> Self {
        assert!(
            installed(),
            "the counting allocator is not the global allocator of this binary"
        );
        assert!(
            !ON.swap(true, Ordering::SeqCst),
            "a counting window is already open"
        );
        Self {
            allocs: ALLOCS.load(Ordering::SeqCst),
            allocated: ALLOCATED.load(Ordering::SeqCst),
            freed: FREED.load(Ordering::SeqCst),
        }
    }

    /// What was counted since the window opened (it stays open).
    #[must_use]
    pub fn counted(&self) -> Counted {
        let allocated = ALLOCATED.load(Ordering::SeqCst) - self.allocated;
        let freed = FREED.load(Ordering::SeqCst) - self.freed;
        Counted {
            allocations: ALLOCS.load(Ordering::SeqCst) - self.allocs,
            live_bytes: allocated as isize - freed as isize,
        }
    }

    /// Closes the window; what it counted.
    #[must_use]
    pub fn close(self) -> Counted {
        self.counted()
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        ON.store(false, Ordering::SeqCst);
    }
}
