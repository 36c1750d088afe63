//! Where a ring keeps its slots ([`RingStorage`]), and the storage that allocates them in
//! segments as the ring first reaches them ([`Segments`], feature `alloc`).
//!
//! # Why a ring can grow without a lock
//!
//! A ring's positions are taken in order: `tail` moves through every index of lap 0
//! before any position of lap 1 exists. So a segment that is still missing has never been
//! reached by any push, and the first slots it will ever serve are those of lap 0. That
//! gives the two rules [`Segments`] rests on (the queue's rules 1-3 are unchanged):
//!
//! 8. **A push installs before it claims.** A push looks up the slot of its position with
//!    [`slot_or_grow`](Sealed::slot_or_grow) *before* its `tail` CAS. If the segment is
//!    missing, the push allocates one with every slot stamped free for its lap-0 position
//!    (its index, as construction stamps them) and installs it with a `compare_exchange`
//!    (`AcqRel`) of the segment's pointer from null; a push that loses that race frees its
//!    own and uses the winner's, so each segment is installed once and never replaced.
//!    The stamps a newcomer finds are therefore the ones the ring would have had from the
//!    start.
//! 9. **A pop that finds no segment finds nothing.** A pop reads the slot of `head` with
//!    [`slot`](Sealed::slot) (an `Acquire` load of the segment's pointer). A missing segment
//!    means no push has claimed any of its positions *as far as this pop has seen*: the
//!    pop treats it like a slot stamped free for `head` (empty, or a push in progress), so
//!    it returns `None` only if `tail == head`, and otherwise loops, loading the pointer
//!    again. A push that moved `tail` past `head` installed the segment before its CAS, so
//!    a pop that saw that `tail` (a `SeqCst` load, which acquires the CAS) sees the
//!    segment on its next look.

use super::Slot;
use crate::storage::Storage;

/// Where each ring of a [`PriorityQueue`](super::PriorityQueue) keeps its slots: any
/// [`Storage`] of slots (inline or boxed: every slot there from construction), or
/// [`Segments`] (allocated in segments as the ring first reaches them). Sealed.
///
/// # Examples
///
/// ```
/// use errand_core::{RingStorage, Slot};
///
/// fn holds_slots<S: RingStorage<u32>>() {}
/// holds_slots::<[Slot<u32>; 8]>();
/// holds_slots::<Box<[Slot<u32>]>>();
/// holds_slots::<errand_core::Segments<u32>>();
/// ```
pub trait RingStorage<T>: Sealed<T> {}

impl<T, S: Sealed<T>> RingStorage<T> for S {}

/// The methods a ring uses; crate-private in effect (the module is private).
pub trait Sealed<T> {
    /// The slot at `index`, if its memory exists yet (rule 9).
    fn slot(&self, index: usize) -> Option<&Slot<T>>;
    /// The slot at `index`, its segment allocated first if need be (rule 8).
    fn slot_or_grow(&self, index: usize) -> &Slot<T>;
    /// The slot at `index` of a ring no one else holds; it exists (the position was pushed).
    fn slot_mut(&mut self, index: usize) -> &mut Slot<T>;
}

impl<T, S: Storage<Slot<T>>> Sealed<T> for S {
    #[inline]
    fn slot(&self, index: usize) -> Option<&Slot<T>> {
        Some(&self.cells()[index])
    }
    #[inline]
    fn slot_or_grow(&self, index: usize) -> &Slot<T> {
        &self.cells()[index]
    }
    #[inline]
    fn slot_mut(&mut self, index: usize) -> &mut Slot<T> {
        &mut self.cells_mut()[index]
    }
}

#[cfg(feature = "alloc")]
pub use grow::Segments;

#[cfg(feature = "alloc")]
mod grow {
    use alloc::boxed::Box;
    use core::fmt;
    use core::marker::PhantomData;
    use core::ptr;

    use super::{Sealed, Slot};
    use crate::sync::{AtomicPtr, Ordering};

    /// A ring's slots on the heap, in segments of a power-of-two length, each allocated
    /// the first time a push reaches it (rules 8-9 of the queue module). The pointers to
    /// segments not yet allocated cost one word each.
    ///
    /// A ring's positions go round all its slots, whatever it holds at once, so a level
    /// holds the segments of as many slots as it has accepted pushes, up to its capacity:
    /// a level no push uses costs its table alone, one that has taken `capacity` pushes
    /// holds every segment. Segments are never freed before the queue is. Growing
    /// allocates with the global allocator, which
    /// aborts when the system refuses (like `Vec::push`); the table of pointers is
    /// allocated at construction, fallibly with
    /// [`try_segmented`](super::super::PriorityQueue::try_segmented).
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{Mode, Priority, SegmentedPriorityQueue};
    ///
    /// // Up to a million items per level; a segment is allocated only as a level fills.
    /// let queue = SegmentedPriorityQueue::<u32>::segmented(1 << 20, 1024, Mode::Strict);
    /// queue.push(7, Priority::NORMAL).unwrap();
    /// assert_eq!(queue.pop().map(|(item, _)| item), Some(7));
    /// ```
    pub struct Segments<T> {
        /// One pointer per segment: null until installed (rule 8), then the first slot of
        /// a boxed slice of [`segment_len`](Self::segment_len) slots (fewer for the last).
        table: Box<[AtomicPtr<Slot<T>>]>,
        /// `log2` of the segment length.
        shift: u32,
        /// Slots in the ring.
        cap: usize,
        /// Owns the segments' slots: `Send` and `Sync` exactly when they are (`T: Send`).
        _slots: PhantomData<Box<[Slot<T>]>>,
    }

    impl<T> Segments<T> {
        /// The table for a ring of `cap` slots in segments of `segment_len` (a power of
        /// two), nothing allocated but the table.
        pub(in crate::queue) fn try_new(
            cap: usize,
            segment_len: usize,
        ) -> Result<Self, alloc::collections::TryReserveError> {
            debug_assert!(segment_len.is_power_of_two());
            let count = cap.div_ceil(segment_len);
            let table =
                crate::storage::try_boxed_from_fn(count, |_| AtomicPtr::new(ptr::null_mut()))?;
            Ok(Segments {
                table,
                shift: segment_len.trailing_zeros(),
                cap,
                _slots: PhantomData,
            })
        }

        /// The number of slots in segment `segment` (the last may be short).
        fn len_of(&self, segment: usize) -> usize {
            let start = segment << self.shift;
            (self.cap - start).min(1 << self.shift)
        }

        /// How many slots one segment holds (the last may hold fewer).
        pub(in crate::queue) fn segment_len(&self) -> usize {
            1 << self.shift
        }

        /// How many segments are allocated now. Approximate while pushes run.
        pub(in crate::queue) fn allocated(&self) -> usize {
            self.table
                .iter()
                .filter(|p| !p.load(Ordering::Acquire).is_null())
                .count()
        }

        /// Allocates segment `segment`, every slot stamped free for its lap-0 position,
        /// and installs it unless another push did first (rule 8); returns the installed
        /// segment's first slot.
        #[cold]
        fn grow(&self, segment: usize) -> *mut Slot<T> {
            let start = segment << self.shift;
            let fresh: Box<[Slot<T>]> =
                crate::storage::boxed_from_fn(self.len_of(segment), |i| Slot::new(start + i));
            let fresh = Box::into_raw(fresh).cast::<Slot<T>>();
            match self.table[segment].compare_exchange(
                ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => fresh,
                Err(installed) => {
                    // SAFETY: `fresh` came from `Box::into_raw` of a slice of this length
                    // just above and was never shared (the CAS failed).
                    drop(unsafe { Box::from_raw(self.as_slice(fresh, segment)) });
                    installed
                }
            }
        }

        /// The slice pointer of segment `segment`, from its first slot.
        fn as_slice(&self, first: *mut Slot<T>, segment: usize) -> *mut [Slot<T>] {
            ptr::slice_from_raw_parts_mut(first, self.len_of(segment))
        }
    }

    impl<T> Sealed<T> for Segments<T> {
        #[inline]
        fn slot(&self, index: usize) -> Option<&Slot<T>> {
            let segment = index >> self.shift;
            let first = self.table[segment].load(Ordering::Acquire);
            if first.is_null() {
                return None;
            }
            let offset = index & ((1 << self.shift) - 1);
            // SAFETY: an installed segment stays until the queue drops (rule 8), holds
            // `len_of(segment)` initialised slots, and `index < cap` puts `offset` in it;
            // the `Acquire` load saw the installing CAS, so the slots' construction too.
            Some(unsafe { &*first.add(offset) })
        }

        #[inline]
        fn slot_or_grow(&self, index: usize) -> &Slot<T> {
            let segment = index >> self.shift;
            let mut first = self.table[segment].load(Ordering::Acquire);
            if first.is_null() {
                first = self.grow(segment);
            }
            let offset = index & ((1 << self.shift) - 1);
            // SAFETY: as in `slot`; `grow` returns an installed segment.
            unsafe { &*first.add(offset) }
        }

        #[inline]
        fn slot_mut(&mut self, index: usize) -> &mut Slot<T> {
            let segment = index >> self.shift;
            let first = self.table[segment].load(Ordering::Relaxed);
            assert!(!first.is_null(), "a pushed position's segment is installed");
            let offset = index & ((1 << self.shift) - 1);
            // SAFETY: as in `slot`; `&mut self` makes this the only reference.
            unsafe { &mut *first.add(offset) }
        }
    }

    impl<T> Drop for Segments<T> {
        fn drop(&mut self) {
            for segment in 0..self.table.len() {
                let first = self.table[segment].load(Ordering::Relaxed);
                if !first.is_null() {
                    // SAFETY: installed by `grow` from `Box::into_raw` of a slice of this
                    // length, freed once, here. The slots' values were dropped (or moved
                    // out) by the queue; a `Slot` itself never drops its value.
                    drop(unsafe { Box::from_raw(self.as_slice(first, segment)) });
                }
            }
        }
    }

    impl<T> fmt::Debug for Segments<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Segments")
                .field("segment_len", &self.segment_len())
                .field("allocated", &self.allocated())
                .field("of", &self.table.len())
                .finish()
        }
    }
}
