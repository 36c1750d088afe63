//! The constructors of [`SlotTable`]: inline (`new`), in place (`init_in`, the module's
//! only `unsafe` code) and on the heap (`with_capacity`), all to the initial state the
//! protocol starts from (every slot free on the pool, in index order; the returns empty).

use core::marker::PhantomData;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::{Entry, NIL, SlotTable, Words, assert_capacity, link, pack};
use crate::sync::{AtomicU32, AtomicUsize};

impl<T, const N: usize> SlotTable<T, [Entry<T>; N]> {
    /// Builds a table of `N` inline slots, calling `init(index)` for each slot's value.
    ///
    /// # Panics
    ///
    /// If `N` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    #[must_use]
    pub fn new(mut init: impl FnMut(usize) -> T) -> Self {
        assert_capacity(N);
        Self::from_entries(crate::storage::array_from_fn(|index| {
            Entry::new(index, N, init(index))
        }))
    }

    /// Builds a table, the same as [`new`](Self::new) would, directly in `place`, calling
    /// `init(index)` for each slot's value, and returns it.
    ///
    /// `new` returns the table by value, so it is built on the stack and moved, which for
    /// many slots needs several times the table's size in stack. This writes each slot,
    /// and each field, where it belongs: the stack holds one value at a time. Use it to
    /// build a table in a `static` (for example through
    /// [`static_cell`](https://docs.rs/static_cell)'s `StaticCell::uninit`) or in a heap
    /// allocation made with `Box::new_uninit`.
    ///
    /// Whatever `place` held before is overwritten, not dropped. The table is not dropped
    /// with `place` either (a `MaybeUninit` never drops its contents): the slots' values
    /// leak unless the owner of `place` drops it (`MaybeUninit::assume_init_drop`). If
    /// `init` panics, the values built so far are dropped, as `new` does, and `place` is
    /// left uninitialised.
    ///
    /// # Panics
    ///
    /// If `N` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY) (before anything is written),
    /// or if `init` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::mem::MaybeUninit;
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use errand_core::{Entry, SlotTable};
    ///
    /// type Table = SlotTable<AtomicU32, [Entry<AtomicU32>; 4096]>;
    ///
    /// // A firmware would pass a `static`; here the place is on the heap.
    /// let mut place: Box<MaybeUninit<Table>> = Box::new_uninit();
    /// let table: &mut Table = Table::init_in(&mut place, |index| AtomicU32::new(index as u32));
    /// assert_eq!(table.capacity(), 4096);
    ///
    /// let (id, counter) = table.acquire().unwrap();
    /// assert_eq!((id.index(), counter.load(Ordering::Relaxed)), (0, 0));
    /// table.release(id).unwrap();
    /// assert!(table.is_empty());
    /// ```
    pub fn init_in(place: &mut MaybeUninit<Self>, mut init: impl FnMut(usize) -> T) -> &mut Self {
        assert_capacity(N);
        // Every field is written below; a new field fails to compile here until it is.
        let _every_field = |table: &Self| {
            let Self {
                entries: _,
                words: _,
                returns: _,
                _value: _,
            } = table;
        };
        let this = place.as_mut_ptr();
        // SAFETY: `this` comes from a `&mut MaybeUninit<Self>`: valid for writes, aligned
        // and ours alone. `&raw mut` makes no reference to the memory not yet initialised,
        // and the pointer keeps the provenance of the whole table.
        let entries = unsafe { &raw mut (*this).entries }.cast::<Entry<T>>();
        let mut built = Built { entries, count: 0 };
        for index in 0..N {
            let value = init(index);
            // SAFETY: `entries` points to `N` consecutive `Entry<T>`s of the table, of which
            // `index < N` is one, not yet written (`built.count == index`); `&raw mut`
            // projects to its fields without a reference to uninitialised memory.
            unsafe {
                let entry = entries.add(index);
                (&raw mut (*entry).value).write(value);
                (&raw mut (*entry).stamp).write(AtomicU32::new(0));
                (&raw mut (*entry).next)
                    .write(AtomicU32::new(link(Entry::<T>::first_next(index, N))));
            }
            built.count = index + 1;
        }
        // Every entry is built: from here on they belong to the table.
        core::mem::forget(built);
        let first = if N == 0 { NIL } else { 0 };
        // SAFETY: as above, for the table's own fields; none holds anything to drop.
        unsafe {
            (&raw mut (*this).words).write(CachePadded::new(Words {
                head: AtomicUsize::new(pack(first, 0)),
                len: AtomicUsize::new(0),
            }));
            (&raw mut (*this).returns).write(CachePadded::new(AtomicUsize::new(NIL)));
            (&raw mut (*this)._value).write(PhantomData);
        }
        // SAFETY: every field of the table was initialised above (the destructuring in
        // `_every_field` lists them all), with the values `new` gives them.
        unsafe { place.assume_init_mut() }
    }
}

/// The entries [`SlotTable::init_in`] has built so far, dropped if `init` panics (as
/// `core::array::from_fn` drops the elements it has built).
struct Built<T> {
    /// The table's first entry.
    entries: *mut Entry<T>,
    /// How many entries, from the first, are fully written.
    count: usize,
}

impl<T> Drop for Built<T> {
    fn drop(&mut self) {
        let built = core::ptr::slice_from_raw_parts_mut(self.entries, self.count);
        // SAFETY: the first `count` entries were fully written by `init_in`, which panicked
        // before the table took them; nothing else owns or reads them, and the place they
        // are in is left uninitialised, so each is dropped exactly once.
        unsafe { core::ptr::drop_in_place(built) };
    }
}

#[cfg(feature = "alloc")]
impl<T> SlotTable<T, alloc::boxed::Box<[Entry<T>]>> {
    /// Builds a table of `capacity` slots on the heap, calling `init(index)` for each slot's
    /// value. This is the table's only allocation.
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    #[must_use]
    pub fn with_capacity(capacity: usize, mut init: impl FnMut(usize) -> T) -> Self {
        assert_capacity(capacity);
        Self::from_entries(crate::storage::boxed_from_fn(capacity, |index| {
            Entry::new(index, capacity, init(index))
        }))
    }

    /// Like [`with_capacity`](Self::with_capacity), but reports an allocation the system
    /// refuses instead of aborting.
    ///
    /// # Errors
    ///
    /// When the memory for `capacity` slots cannot be reserved.
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    pub fn try_with_capacity(
        capacity: usize,
        mut init: impl FnMut(usize) -> T,
    ) -> Result<Self, alloc::collections::TryReserveError> {
        assert_capacity(capacity);
        Ok(Self::from_entries(crate::storage::try_boxed_from_fn(
            capacity,
            |index| Entry::new(index, capacity, init(index)),
        )?))
    }
}
