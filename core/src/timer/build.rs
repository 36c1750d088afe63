//! The constructors of [`TimerWheel`]: inline (`new`), in place (`init_in`, the module's
//! only `unsafe` code) and on the heap (`with_capacity`, `try_with_capacity`), and the
//! heap wheel's `grow`.

use core::mem::MaybeUninit;

use super::{HEAD_BASE, HEADS, LEVELS, NIL, TimerEntry, TimerWheel};

impl<const N: usize> TimerWheel<[TimerEntry; N]> {
    /// An empty wheel with inline storage for `N` timers, at tick 0. Needs no heap.
    ///
    /// `N` must be below [`MAX_CAPACITY`](Self::MAX_CAPACITY) (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(N <= HEAD_BASE as usize, "timer wheel capacity too large") };
        Self::from_storage([TimerEntry::VACANT; N])
    }
}

impl<const N: usize> TimerWheel<[TimerEntry; N]> {
    /// Builds an empty wheel at tick 0, the same as [`new`](Self::new) would, directly in
    /// `place`, and returns it.
    ///
    /// `new` returns the wheel by value, so it is built on the stack and moved, which for
    /// a large `N` needs several times the wheel's size in stack. (`new` is a `const fn`,
    /// but a wheel built in a `static` initialiser lands in `.data`, and its initial
    /// value, mostly all-ones list heads, is then stored in flash.) This writes each
    /// field, and each entry and list head, where it belongs, so the wheel can live in
    /// zeroed or uninitialised memory (`.bss`, for example through
    /// [`static_cell`](https://docs.rs/static_cell)'s `StaticCell::uninit`, or a heap
    /// allocation made with `Box::new_uninit`) and the stack holds one entry at a time.
    /// Whatever `place` held before is overwritten.
    ///
    /// `N` must be below [`MAX_CAPACITY`](Self::MAX_CAPACITY) (checked at compile time).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::mem::MaybeUninit;
    /// use errand_core::{TimerEntry, TimerWheel};
    ///
    /// type Wheel = TimerWheel<[TimerEntry; 4096]>;
    ///
    /// // A firmware would pass a `static`; here the place is on the heap.
    /// let mut place: Box<MaybeUninit<Wheel>> = Box::new_uninit();
    /// let wheel: &mut Wheel = Wheel::init_in(&mut place);
    /// assert_eq!((wheel.capacity(), wheel.now()), (4096, 0));
    ///
    /// wheel.insert(4095, 10).unwrap();
    /// assert_eq!(wheel.poll(9), None);
    /// assert_eq!(wheel.poll(10), Some(4095));
    /// ```
    pub fn init_in(place: &mut MaybeUninit<Self>) -> &mut Self {
        const { assert!(N <= HEAD_BASE as usize, "timer wheel capacity too large") };
        // Every field is written below; a new field fails to compile here until it is.
        let _every_field = |wheel: &Self| {
            let Self {
                entries: _,
                elapsed: _,
                len: _,
                level_mask: _,
                occupied: _,
                heads: _,
            } = wheel;
        };
        let this = place.as_mut_ptr();
        // SAFETY: `this` comes from a `&mut MaybeUninit<Self>`: valid for writes, aligned
        // and ours alone. `&raw mut` projects to each field without a reference to memory
        // not yet initialised; the array pointers keep the provenance of the whole wheel
        // and each index stays below its array's length. Nothing written over needs a drop.
        unsafe {
            let entries = (&raw mut (*this).entries).cast::<TimerEntry>();
            for index in 0..N {
                entries.add(index).write(TimerEntry::VACANT);
            }
            (&raw mut (*this).elapsed).write(0);
            (&raw mut (*this).len).write(0);
            (&raw mut (*this).level_mask).write(0);
            let occupied = (&raw mut (*this).occupied).cast::<u64>();
            for level in 0..LEVELS {
                occupied.add(level).write(0);
            }
            let heads = (&raw mut (*this).heads).cast::<u32>();
            for id in 0..HEADS {
                heads.add(id).write(NIL);
            }
        }
        // SAFETY: every field of the wheel was initialised above (the destructuring in
        // `_every_field` lists them all), with the values `from_storage` gives them.
        unsafe { place.assume_init_mut() }
    }
}

impl<const N: usize> Default for TimerWheel<[TimerEntry; N]> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl TimerWheel<alloc::boxed::Box<[TimerEntry]>> {
    /// An empty wheel with heap storage for `capacity` timers, at tick 0. Allocates once.
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut wheel = errand_core::TimerWheel::with_capacity(1000);
    /// wheel.insert(999, 5).unwrap();
    /// assert_eq!(wheel.poll(5), Some(999));
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "timer wheel capacity {capacity} exceeds the maximum {}",
            Self::MAX_CAPACITY
        );
        Self::from_storage(crate::storage::boxed_from_fn(capacity, |_| {
            TimerEntry::VACANT
        }))
    }

    /// Like [`with_capacity`](Self::with_capacity), but reports an allocation the system
    /// refuses instead of aborting.
    ///
    /// # Errors
    ///
    /// When the memory for `capacity` timers cannot be reserved.
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    pub fn try_with_capacity(capacity: usize) -> Result<Self, alloc::collections::TryReserveError> {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "timer wheel capacity {capacity} exceeds the maximum {}",
            Self::MAX_CAPACITY
        );
        Ok(Self::from_storage(crate::storage::try_boxed_from_fn(
            capacity,
            |_| TimerEntry::VACANT,
        )?))
    }

    /// Grows the wheel to `capacity` indices (nothing happens if it has as many), keeping
    /// every pending timer: one allocation and a copy of the entries, O(capacity). Links
    /// are indices, so nothing else moves. A wheel whose indices are a table's slots can
    /// so start small and grow to the highest slot that arms a timer (the engine's), at
    /// the cost of the no-allocation-after-construction guarantee, which holds only while
    /// this is not called.
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut wheel = errand_core::TimerWheel::with_capacity(0);
    /// wheel.grow(10);
    /// wheel.insert(9, 3).unwrap();
    /// wheel.grow(1000);
    /// wheel.insert(999, 2).unwrap();
    /// assert_eq!((wheel.poll(5), wheel.poll(5), wheel.poll(5)), (Some(999), Some(9), None));
    /// ```
    pub fn grow(&mut self, capacity: usize) {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "timer wheel capacity {capacity} exceeds the maximum {}",
            Self::MAX_CAPACITY
        );
        let old = self.entries.len();
        if capacity <= old {
            return;
        }
        let mut entries = core::mem::take(&mut self.entries).into_vec();
        entries.reserve_exact(capacity - old);
        entries.resize(capacity, TimerEntry::VACANT);
        self.entries = entries.into_boxed_slice();
    }
}
