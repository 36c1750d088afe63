//! The one place that imports atomics and `UnsafeCell`.
//!
//! Under `--cfg errand_loom` every primitive comes from [loom], so the model tests in
//! `core/tests/loom_*.rs` explore all interleavings of the real code. Nothing else in the
//! crate may import `core::sync::atomic` or `core::cell::UnsafeCell` directly.
//!
//! Only pointer-width and smaller atomics are used: `thumbv7em` has no 64-bit atomics.

#[cfg(not(errand_loom))]
pub(crate) use core::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
#[cfg(errand_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
// Only the engine's protocols (feature `std`) fence.
#[cfg(all(feature = "std", not(errand_loom)))]
pub(crate) use core::sync::atomic::fence;
#[cfg(all(feature = "std", errand_loom))]
pub(crate) use loom::sync::atomic::fence;

#[cfg(all(feature = "std", errand_loom))]
pub(crate) use loom::sync::Mutex;
#[cfg(all(feature = "std", not(errand_loom)))]
pub(crate) use std::sync::Mutex;

// The queue's segments (feature `alloc`).
#[cfg(all(feature = "alloc", not(errand_loom)))]
pub(crate) use core::sync::atomic::AtomicPtr;
#[cfg(all(feature = "alloc", errand_loom))]
pub(crate) use loom::sync::atomic::AtomicPtr;

#[cfg(all(feature = "alloc", not(errand_loom)))]
pub(crate) use alloc::sync::Arc;
#[cfg(all(feature = "alloc", errand_loom))]
pub(crate) use loom::sync::Arc;

/// Tells the scheduler (or loom) that this thread is waiting for another one.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(errand_loom))]
    core::hint::spin_loop();
    #[cfg(errand_loom)]
    loom::thread::yield_now();
}

/// Exponential backoff for a lost CAS or a wait on another thread: spinning longer after
/// each failure keeps two cores from bouncing a contended cache line back and forth.
pub(crate) struct SpinBackoff {
    step: u32,
}

impl SpinBackoff {
    /// Up to `2^LIMIT` spin hints per wait.
    const LIMIT: u32 = 6;

    #[inline]
    pub(crate) fn new() -> Self {
        SpinBackoff { step: 0 }
    }

    #[inline]
    pub(crate) fn spin(&mut self) {
        // Under loom each hint is a yield; one is enough to let other threads run.
        let hints = if cfg!(errand_loom) {
            1
        } else {
            1u32 << self.step
        };
        for _ in 0..hints {
            spin_hint();
        }
        if self.step < Self::LIMIT {
            self.step += 1;
        }
    }
}

/// `UnsafeCell` with loom's closure API, so the same code checks accesses under loom.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(
    #[cfg(not(errand_loom))] core::cell::UnsafeCell<T>,
    #[cfg(errand_loom)] loom::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(errand_loom))]
        return Self(core::cell::UnsafeCell::new(value));
        #[cfg(errand_loom)]
        return Self(loom::cell::UnsafeCell::new(value));
    }

    /// Gives `f` a shared raw pointer to the value.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(errand_loom))]
        return f(self.0.get());
        #[cfg(errand_loom)]
        return self.0.with(f);
    }

    /// Gives `f` a mutable raw pointer to the value.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(errand_loom))]
        return f(self.0.get());
        #[cfg(errand_loom)]
        return self.0.with_mut(f);
    }
}
