//! The constructors of [`PriorityQueue`]: inline (`new`), in place (`init_in`, the
//! module's only `unsafe` construction code), on the heap (`with_capacity`) and on the
//! heap in segments (`segmented`), all to the same empty state (every ring at position 0,
//! each slot stamped free for its index, or to be when its segment is allocated).

use core::marker::PhantomData;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::{MAX_LEVEL_CAPACITY, Mode, PriorityQueue, Ring, RingStorage, Slot};
use crate::priority::Level;
use crate::storage::array_from_fn;
use crate::sync::AtomicUsize;
impl<T, const N: usize> PriorityQueue<T, [Slot<T>; N]> {
    /// An empty queue holding up to `N` items per level, inline.
    ///
    /// # Panics
    ///
    /// Fails to compile (in a `const` assertion) when `N` is zero or above
    /// [`MAX_LEVEL_CAPACITY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{InlinePriorityQueue, Mode};
    ///
    /// let queue = InlinePriorityQueue::<u8, 4>::new(Mode::Strict);
    /// assert_eq!(queue.capacity_per_level(), 4);
    /// assert_eq!(queue.capacity(), 16);
    /// ```
    #[must_use]
    pub fn new(mode: Mode) -> Self {
        const { assert!(N > 0, "a priority queue level needs at least one slot") };
        const {
            assert!(
                N <= MAX_LEVEL_CAPACITY,
                "a priority queue level holds at most 2^31 - 1 items"
            )
        };
        Self::from_storage(N, mode, || array_from_fn(Slot::new))
    }

    /// Builds an empty queue, the same as [`new`](Self::new) would, directly in `place`,
    /// and returns it.
    ///
    /// `new` returns the queue by value, so it is built on the stack and moved, which for
    /// a large `N` needs several times the queue's size in stack. This writes each field,
    /// and each slot of each level, where it belongs: the stack holds one slot at a time.
    /// Use it to build a queue in a `static` (for example through
    /// [`static_cell`](https://docs.rs/static_cell)'s `StaticCell::uninit`) or in a heap
    /// allocation made with `Box::new_uninit`.
    ///
    /// Whatever `place` held before is overwritten, not dropped. The queue is not dropped
    /// with `place` either (a `MaybeUninit` never drops its contents): items left in it
    /// leak unless the owner of `place` drops it (`MaybeUninit::assume_init_drop`).
    ///
    /// # Panics
    ///
    /// Fails to compile (in a `const` assertion) when `N` is zero, like `new`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::mem::MaybeUninit;
    /// use errand_core::{InlinePriorityQueue, Level, Mode, Priority};
    ///
    /// type Ready = InlinePriorityQueue<u32, 1024>; // 4 levels of 1024: 64 KiB here
    ///
    /// // A firmware would pass a `static`; here the place is on the heap.
    /// let mut place: Box<MaybeUninit<Ready>> = Box::new_uninit();
    /// let queue: &mut Ready = Ready::init_in(&mut place, Mode::Strict);
    /// assert_eq!(queue.capacity_per_level(), 1024);
    ///
    /// queue.push(1, Priority::LOW).unwrap();
    /// queue.push(2, Priority::CRITICAL).unwrap();
    /// assert_eq!(queue.pop(), Some((2, Level::Critical)));
    /// assert_eq!(queue.pop(), Some((1, Level::Low)));
    /// assert_eq!(queue.pop(), None);
    /// ```
    pub fn init_in(place: &mut MaybeUninit<Self>, mode: Mode) -> &mut Self {
        const { assert!(N > 0, "a priority queue level needs at least one slot") };
        // Every field is written below; a new field fails to compile here until it is.
        let _every_field = |queue: &Self| {
            let Self {
                summary: _,
                turn: _,
                rings: _,
                cap: _,
                one_lap: _,
                mode: _,
                _items: _,
            } = queue;
        };
        // As in `from_storage`.
        let one_lap = (N + 1).next_power_of_two();
        let this = place.as_mut_ptr();
        for level in 0..Level::COUNT {
            // SAFETY: `this` comes from a `&mut MaybeUninit<Self>`, so it is valid for
            // writes, aligned and ours alone; `&raw mut` projects to the fields of ring
            // `level` without creating a reference to memory not yet initialised, and
            // `slots` (derived from `this`, so its provenance covers the whole queue)
            // points to `N` consecutive `Slot<T>`s, of which `index < N` is one. Each
            // write initialises a place that held nothing to drop.
            unsafe {
                let ring = &raw mut (*this).rings[level];
                (&raw mut (*ring).head).write(CachePadded::new(AtomicUsize::new(0)));
                (&raw mut (*ring).tail).write(CachePadded::new(AtomicUsize::new(0)));
                let slots = (&raw mut (*ring).slots).cast::<Slot<T>>();
                for index in 0..N {
                    slots.add(index).write(Slot::new(index));
                }
            }
        }
        // SAFETY: as above, for the queue's own fields.
        unsafe {
            (&raw mut (*this).summary).write(CachePadded::new(AtomicUsize::new(0)));
            (&raw mut (*this).turn).write(CachePadded::new(AtomicUsize::new(0)));
            (&raw mut (*this).cap).write(N);
            (&raw mut (*this).one_lap).write(one_lap);
            (&raw mut (*this).mode).write(mode);
            (&raw mut (*this)._items).write(PhantomData);
        }
        // SAFETY: every field of the queue was initialised above (the destructuring in
        // `_every_field` lists them all), with the values `from_storage` gives them.
        unsafe { place.assume_init_mut() }
    }
}

#[cfg(feature = "alloc")]
impl<T> PriorityQueue<T, alloc::boxed::Box<[Slot<T>]>> {
    /// An empty queue holding up to `capacity_per_level` items per level, on the heap.
    ///
    /// # Panics
    ///
    /// When `capacity_per_level` is zero or above [`MAX_LEVEL_CAPACITY`].
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{BoxedPriorityQueue, Mode};
    ///
    /// let queue = BoxedPriorityQueue::<String>::with_capacity(100, Mode::Weighted);
    /// assert_eq!(queue.capacity_per_level(), 100);
    /// assert!(queue.is_empty());
    /// ```
    #[must_use]
    pub fn with_capacity(capacity_per_level: usize, mode: Mode) -> Self {
        assert_level_capacity(capacity_per_level);
        Self::from_storage(capacity_per_level, mode, || {
            crate::storage::boxed_from_fn(capacity_per_level, Slot::new)
        })
    }

    /// Like [`with_capacity`](Self::with_capacity), but reports an allocation the system
    /// refuses instead of aborting.
    ///
    /// # Errors
    ///
    /// When the memory for the four levels cannot be reserved.
    ///
    /// # Panics
    ///
    /// As [`with_capacity`](Self::with_capacity).
    pub fn try_with_capacity(
        capacity_per_level: usize,
        mode: Mode,
    ) -> Result<Self, alloc::collections::TryReserveError> {
        assert_level_capacity(capacity_per_level);
        let mut levels = alloc::vec::Vec::with_capacity(Level::COUNT);
        for _ in 0..Level::COUNT {
            levels.push(crate::storage::try_boxed_from_fn(
                capacity_per_level,
                Slot::new,
            )?);
        }
        Ok(Self::from_storage(capacity_per_level, mode, || {
            levels.pop().expect("one storage per level")
        }))
    }
}

#[cfg(feature = "alloc")]
impl<T> PriorityQueue<T, super::Segments<T>> {
    /// An empty queue holding up to `capacity_per_level` items per level, on the heap, in
    /// segments of `segment_len` slots allocated as each level first reaches them: only
    /// the table of segment pointers (a word per segment) is allocated here.
    ///
    /// # Panics
    ///
    /// When `capacity_per_level` is zero or above [`MAX_LEVEL_CAPACITY`], or
    /// `segment_len` is not a power of two.
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{Level, Mode, Priority, SegmentedPriorityQueue};
    ///
    /// let queue = SegmentedPriorityQueue::<u32>::segmented(10_000, 256, Mode::Strict);
    /// assert_eq!(queue.allocated_slots(Level::Normal), 0);
    /// for i in 0..300 {
    ///     queue.push(i, Priority::NORMAL).unwrap();
    /// }
    /// // Two segments of the normal level; the other levels still hold none.
    /// assert_eq!(queue.allocated_slots(Level::Normal), 512);
    /// assert_eq!(queue.allocated_slots(Level::High), 0);
    /// ```
    #[must_use]
    pub fn segmented(capacity_per_level: usize, segment_len: usize, mode: Mode) -> Self {
        Self::try_segmented(capacity_per_level, segment_len, mode).unwrap_or_else(|_| {
            alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<usize>())
        })
    }

    /// Like [`segmented`](Self::segmented), but reports an allocation of the segment
    /// table the system refuses instead of aborting. (Growing later allocates with the
    /// global allocator, which aborts on refusal, as `Vec::push` does.)
    ///
    /// # Errors
    ///
    /// When the memory for the four tables cannot be reserved.
    ///
    /// # Panics
    ///
    /// As [`segmented`](Self::segmented).
    pub fn try_segmented(
        capacity_per_level: usize,
        segment_len: usize,
        mode: Mode,
    ) -> Result<Self, alloc::collections::TryReserveError> {
        assert_level_capacity(capacity_per_level);
        assert!(
            segment_len.is_power_of_two(),
            "a segment length is a power of two, not {segment_len}"
        );
        let mut levels = alloc::vec::Vec::with_capacity(Level::COUNT);
        for _ in 0..Level::COUNT {
            levels.push(super::Segments::try_new(capacity_per_level, segment_len)?);
        }
        Ok(Self::from_storage(capacity_per_level, mode, || {
            levels.pop().expect("one storage per level")
        }))
    }

    /// How many slots `level` has allocated so far: whole segments, up to the level's
    /// capacity. Approximate while pushes run.
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{Level, Mode, Priority, SegmentedPriorityQueue};
    ///
    /// let queue = SegmentedPriorityQueue::<u8>::segmented(100, 64, Mode::Strict);
    /// queue.push(1, Priority::LOW).unwrap();
    /// assert_eq!(queue.allocated_slots(Level::Low), 64);
    /// ```
    #[must_use]
    pub fn allocated_slots(&self, level: Level) -> usize {
        let segments = &self.rings[level.index()].slots;
        (segments.allocated() * segments.segment_len()).min(self.cap)
    }
}

impl<T, S: RingStorage<T>> PriorityQueue<T, S> {
    pub(super) fn from_storage(cap: usize, mode: Mode, mut storage: impl FnMut() -> S) -> Self {
        // `cap + 1` so that `index + 1` (a full stamp) never carries into the lap bits.
        let one_lap = (cap + 1).next_power_of_two();
        let rings = core::array::from_fn(|_| {
            let slots = storage();
            Ring {
                head: CachePadded::new(AtomicUsize::new(0)),
                tail: CachePadded::new(AtomicUsize::new(0)),
                slots,
            }
        });
        PriorityQueue {
            summary: CachePadded::new(AtomicUsize::new(0)),
            turn: CachePadded::new(AtomicUsize::new(0)),
            rings,
            cap,
            one_lap,
            mode,
            _items: PhantomData,
        }
    }
}

/// The run-time form of `new`'s `const` assertions, for the heap constructors.
#[cfg(feature = "alloc")]
fn assert_level_capacity(capacity_per_level: usize) {
    assert!(
        capacity_per_level > 0,
        "a priority queue level needs at least one slot"
    );
    assert!(
        capacity_per_level <= MAX_LEVEL_CAPACITY,
        "priority queue capacity {capacity_per_level} per level is above 2^31 - 1"
    );
}
