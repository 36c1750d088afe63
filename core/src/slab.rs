//! A fixed-capacity slot table with lock-free release and (all but lock-free) acquire.
//!
//! [`SlotTable`]'s public contract is in its docs; this module comment states the protocol
//! that implements it, as numbered rules the code cites.
//!
//! # Protocol
//!
//! Each slot has a `stamp` (an `AtomicU32`) and a `next` link; the table has two stacks of
//! free slots: the *pool* that acquires pop, whose `head` (an `AtomicUsize`) packs the
//! index of its first slot with an ABA tag, and the *returns* that releases push, whose
//! head `returns` is a bare index.
//!
//! 1. **Stamps.** A slot's stamp is even while the slot is free and odd while it is in use.
//!    Acquiring moves it from even `s` to `s + 1`; releasing moves it from odd `g` to `g + 1`
//!    (both wrapping). A live id's generation is the odd stamp of its use, so live ids always
//!    have odd generations, and every use of a slot gets a new one.
//! 2. **Release is one CAS.** `release(id)` compare-exchanges the stamp from
//!    `id.generation()` to `id.generation() + 1`. Of any number of racing releases of the same
//!    id exactly one succeeds; a second (or a stale) release finds a different stamp and
//!    returns [`StaleId`] without touching anything.
//! 3. **Only the owner writes a free slot.** A slot whose stamp is even is on the free list or
//!    being moved on or off it by exactly one thread; no release can succeed on it (rule 2
//!    needs an odd stamp), so its stamp and `next` link are written only by that thread.
//! 4. **Two free lists.** The free slots form two Treiber stacks linked through `next`.
//!    `release` pushes its slot on the returns (a CAS of `returns`). `acquire` pops from the
//!    pool; when the pool is empty it takes the whole returns stack with one swap (to
//!    empty), keeps the first slot and moves the rest to the pool: one CAS of `head` if the
//!    pool is still empty, else after linking the chain's last slot to the pool's first.
//!    Every CAS of `head` (pop or move) also increments its tag, so a popper whose view of
//!    `head` went stale (the ABA case: the slot it read was popped, reused and came back
//!    meanwhile) fails its CAS and retries instead of installing a stale `next`. `returns`
//!    needs no tag: a push links its slot to the head it read and succeeds only if that is
//!    still the head, which is then the right link whatever happened in between, and a
//!    swap takes whatever is there. A successful pop makes the popper the slot's only owner
//!    (rule 3) until it stamps the slot live; a swap makes the taker the owner of every slot
//!    of the chain until the move publishes them.
//!
//!    So a freed slot is handed out again only after the pool has been used up, not by the
//!    next acquire: a slot a worker just freed has time to leave that core's cache, and
//!    releasing threads and acquiring threads write different lines (`returns`, `head`).
//! 5. **Orderings.** `head` and `returns` are only changed by read-modify-writes: `AcqRel`
//!    when they succeed, loads `Acquire`. A swap of `returns` therefore synchronises with
//!    every push of the chain it takes (one release sequence), the move's CAS with the pop
//!    that finds the slots, and a pop with the pop or move that put its slot at the head.
//!    Everything a thread did before `release` (its writes into `T` included) therefore
//!    happens before the next `acquire` of that slot returns. A live stamp is stored with
//!    `Release` and read by `get` with `Acquire`.
//! 6. **Count first.** `acquire` first raises `len` by one with a CAS that refuses to pass
//!    the capacity (`Acquire`); failing that, every slot is in use and it reports
//!    [`SlotsExhausted`]. `release` lowers `len` (`Release`) only after its push. So the
//!    free slots on the stacks or in a chain being moved always number at least the
//!    acquires past their count, and such an acquire always gets a slot: from the pool,
//!    from the returns, or, if both are empty, after the move that holds one finishes
//!    (it spins for it: the only place where one thread waits for another, for the few
//!    instructions between a swap of the returns and its move).
//!
//! The limits that follow from this (capacity, tag width, generation wrap) are stated on
//! [`SlotTable`]. The protocol has no `unsafe` code: values are only ever shared (`&T`), and
//! it decides who may write a slot's bookkeeping, not whether memory is valid. The only
//! `unsafe` code is [`SlotTable::init_in`], which builds a table field by field in memory
//! the caller provides, with the same initial state as [`SlotTable::new`].

use core::fmt;
use core::marker::PhantomData;

use crossbeam_utils::CachePadded;

use crate::id::TaskId;
use crate::storage::Storage;
use crate::sync::{AtomicU32, AtomicUsize, Ordering, spin_hint};

mod build;

/// Bits of `head` holding the slot index (the low half of a `usize`).
const INDEX_BITS: u32 = usize::BITS / 2;
/// Mask of the index bits of `head`; the all-ones index (this value) means "no slot".
const NIL: usize = (1 << INDEX_BITS) - 1;

/// Packs a free-list head: slot index (or [`NIL`]) in the low half, tag in the high half.
#[inline]
fn pack(index: usize, tag: usize) -> usize {
    (tag << INDEX_BITS) | (index & NIL)
}

/// The slot index (or [`NIL`]) of a packed head.
#[inline]
fn head_index(head: usize) -> usize {
    head & NIL
}

/// The tag of a packed head, incremented (wrapping within its half) for the next CAS.
#[inline]
fn next_tag(head: usize) -> usize {
    // The tag half is as wide as the index half, so `NIL` also masks a tag.
    (head >> INDEX_BITS).wrapping_add(1) & NIL
}

/// Converts an index below the capacity to `u32`. The capacity assert at construction makes
/// every index fit.
#[inline]
fn index_u32(index: usize) -> u32 {
    debug_assert!(index < NIL);
    index as u32
}

/// One slot of a [`SlotTable`]: the value plus the bookkeeping of the protocol.
///
/// Storage for a table is an array or boxed slice of entries; they are built by the table's
/// constructors and cannot be made or inspected from outside.
pub struct Entry<T> {
    value: T,
    /// Even while free, odd while live (protocol rule 1).
    stamp: AtomicU32,
    /// Next free slot (or `NIL`) while on the free list (rule 4). 32 bits: an index, or
    /// `NIL`, fits them on every target (`INDEX_BITS` is at most 32).
    next: AtomicU32,
}

impl<T> Entry<T> {
    fn new(index: usize, capacity: usize, value: T) -> Self {
        Self {
            value,
            stamp: AtomicU32::new(0),
            next: AtomicU32::new(link(Self::first_next(index, capacity))),
        }
    }

    /// The `next` link of slot `index` in a new table: every slot is in the pool, in
    /// index order (rule 4).
    #[inline]
    fn first_next(index: usize, capacity: usize) -> usize {
        if index + 1 < capacity { index + 1 } else { NIL }
    }

    /// The `next` link.
    #[inline]
    fn next(&self, order: Ordering) -> usize {
        self.next.load(order) as usize
    }

    /// Sets the `next` link.
    #[inline]
    fn set_next(&self, next: usize, order: Ordering) {
        self.next.store(link(next), order);
    }
}

/// A slot index or [`NIL`] as a 32-bit link (both fit: `INDEX_BITS` is at most 32).
#[inline]
#[allow(
    clippy::cast_possible_truncation,
    reason = "indices and NIL are below 2^32 (INDEX_BITS <= 32)"
)]
fn link(index: usize) -> u32 {
    debug_assert!(index <= NIL);
    index as u32
}

impl<T: fmt::Debug> fmt::Debug for Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value", &self.value)
            .field("stamp", &self.stamp.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// No free slot was left: every slot of the table is in use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct SlotsExhausted {
    /// The table's capacity, all of it in use.
    pub capacity: usize,
}

impl fmt::Display for SlotsExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slots exhausted: all {} slots are in use", self.capacity)
    }
}

impl core::error::Error for SlotsExhausted {}

/// The id given to [`SlotTable::release`] was not live: already released, from an earlier use
/// of its slot, or out of range. Nothing was changed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub struct StaleId {
    /// The rejected id, given back.
    pub id: TaskId,
}

impl fmt::Display for StaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stale task id {}: slot {} is not in this use",
            self.id,
            self.id.index()
        )
    }
}

impl core::error::Error for StaleId {}

/// A fixed-capacity table of slots with lock-free [`acquire`](Self::acquire) and
/// [`release`](Self::release) (but for one short wait, see `acquire`), addressed by
/// generation-checked [`TaskId`]s.
///
/// Each slot owns a `T` built once at construction and kept until the table drops.
/// `acquire` hands out a free slot with the [`TaskId`] of this use of it; `release` gives it
/// back; [`get`](Self::get) finds a slot's value from its id only while that use is live.
/// The values are shared (`&T`), never moved or dropped by acquire and release: put atomics
/// or cells inside `T` and reset them after acquiring a slot. Everything a thread did before
/// `release` happens before the next `acquire` of that slot returns.
///
/// The storage `S` is `[Entry<T>; N]` (inline, built by [`new`](Self::new)) or, with the
/// `alloc` feature, `Box<[Entry<T>]>` (built by [`with_capacity`](Self::with_capacity)).
/// Nothing allocates after construction.
///
/// # Ids and generations
///
/// A slot's generation advances on every acquire and every release, so a live id's
/// generation is always odd and every use of a slot gets a new one. Releasing an id that is
/// not live (a second release, an id from an earlier use, an index out of range) is a
/// [`StaleId`] error and changes nothing; of two racing releases of one id exactly one
/// succeeds.
///
/// # Limits
///
/// - The pool of free slots keeps its head in one pointer-width atomic: a slot index in
///   the low half, an ABA tag in the high half, the all-ones index meaning "empty" (no 64-bit
///   atomics needed on 32-bit targets). Capacity is therefore at most
///   [`MAX_CAPACITY`](SlotTable::MAX_CAPACITY): `2^32 - 1` on 64-bit targets but only
///   `2^16 - 1 = 65535` on 32-bit targets (such as `thumbv7em`). Construction panics above it.
/// - The tag has as many bits as the index (16 on 32-bit targets). An acquire stalled inside
///   its compare-and-swap while exactly a multiple of `2^16` other acquires and releases
///   complete could be fooled; that many operations inside one CAS window is not a
///   realistic schedule.
/// - Generations wrap: after `2^31` uses of one slot its stamps repeat, so an id kept across
///   that many reuses of its slot would match again. Ids are meant to be dropped long before.
/// - [`len`](SlotTable::len) is a counter, incremented when an acquire starts (it decides
///   exhaustion: an acquire fails exactly when every slot is counted) and decremented when
///   a release ends. Under concurrency it may count operations in flight, but it never
///   leaves `0..=capacity`.
/// - A freed slot is not reused by the next acquire: it waits on a second stack until the
///   never-used and earlier freed slots are handed out (so it has left the releasing
///   core's cache by then, and releasing and acquiring threads write different lines).
/// - A value returned by `get` stays valid memory for the table's lifetime (values are never
///   dropped early), but the slot may be released and reused right after `get` returns:
///   `get` tells whether the id was live at one instant; holders that need longer keep their
///   own reference counts.
///
/// # Examples
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use errand_core::{Entry, SlotTable};
///
/// // Four slots, each holding a counter built from its index.
/// let table: SlotTable<AtomicU32, [Entry<AtomicU32>; 4]> =
///     SlotTable::new(|index| AtomicU32::new(index as u32));
///
/// let (id, counter) = table.acquire().unwrap();
/// counter.store(42, Ordering::Relaxed);
/// assert_eq!(table.get(id).unwrap().load(Ordering::Relaxed), 42);
/// assert_eq!(table.len(), 1);
///
/// table.release(id).unwrap();
/// // The old id never reaches the slot again, even once it is reused.
/// assert!(table.get(id).is_none());
/// assert!(table.release(id).is_err());
/// // A freed slot is reused once the never-used ones are gone.
/// let ids: Vec<_> = (0..4).map(|_| table.acquire().unwrap().0).collect();
/// assert!(ids.iter().any(|again| again.index() == id.index()));
/// assert!(ids.iter().all(|&again| again != id));
/// assert!(table.get(id).is_none());
/// ```
pub struct SlotTable<T, S: Storage<Entry<T>>> {
    entries: S,
    /// The pool's head and the count, on one line: every acquire writes both.
    words: CachePadded<Words>,
    /// The returns' head: the index of the last slot released (or `NIL`), on a line that
    /// releases write and acquires touch only when the pool runs dry (rule 4).
    returns: CachePadded<AtomicUsize>,
    _value: PhantomData<T>,
}

/// The pool's words (see [`SlotTable::returns`] for the other stack).
struct Words {
    /// The pool's head: index of its first free slot (or `NIL`) and the ABA tag (rule 4).
    head: AtomicUsize,
    /// Slots in use, updated after each acquire and release.
    len: AtomicUsize,
}

/// Checks the capacity limit stated on [`SlotTable`] (`# Limits`).
fn assert_capacity(capacity: usize) {
    assert!(
        capacity <= NIL,
        "slot table capacity {capacity} exceeds the maximum {NIL} on this target"
    );
}

impl<T, S: Storage<Entry<T>>> SlotTable<T, S> {
    /// The largest capacity a table can have on this target: `2^32 - 1` with 64-bit
    /// pointers, `65535` with 32-bit ones (see `# Limits` on [`SlotTable`]).
    pub const MAX_CAPACITY: usize = NIL;

    fn from_entries(entries: S) -> Self {
        let first = if entries.cells().is_empty() { NIL } else { 0 };
        Self {
            entries,
            words: CachePadded::new(Words {
                head: AtomicUsize::new(pack(first, 0)),
                len: AtomicUsize::new(0),
            }),
            returns: CachePadded::new(AtomicUsize::new(NIL)),
            _value: PhantomData,
        }
    }

    /// The number of slots.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.entries.cells().len()
    }

    /// The number of slots in use. Exact when no acquire or release is in flight; otherwise
    /// it may lag them (see `# Limits` on [`SlotTable`]).
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.words.len.load(Ordering::Relaxed)
    }

    /// Whether no slot is in use (with the same caveat as [`len`](Self::len)).
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a free slot, returning the id of this use of it and its value.
    ///
    /// Lock-free but for one case: it retries when another thread's acquire or release won
    /// a race on a free list, and when the only free slots are being moved between the two
    /// free lists by another acquire, it waits for that move (a few instructions, unless
    /// that thread is descheduled inside them). The value is the same `T` the slot held
    /// before: reset what needs resetting.
    ///
    /// # Errors
    ///
    /// [`SlotsExhausted`] when every slot is in use.
    pub fn acquire(&self) -> Result<(TaskId, &T), SlotsExhausted> {
        let cells = self.entries.cells();
        // Rule 6: count the slot first.
        let mut len = self.words.len.load(Ordering::Relaxed);
        loop {
            if len >= cells.len() {
                return Err(SlotsExhausted {
                    capacity: cells.len(),
                });
            }
            match self.words.len.compare_exchange_weak(
                len,
                len + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => len = current,
            }
        }
        let mut head = self.words.head.load(Ordering::Acquire);
        let index = loop {
            let index = head_index(head);
            let Some(entry) = cells.get(index) else {
                // Rule 4: the pool is empty; take the returns.
                let first = self.returns.swap(NIL, Ordering::AcqRel);
                let Some(entry) = cells.get(first) else {
                    // Rule 6: the slot our count guarantees is in a chain another acquire
                    // is moving to the pool.
                    spin_hint();
                    head = self.words.head.load(Ordering::Acquire);
                    continue;
                };
                // Rule 3: the chain is ours; its links are those its releases wrote.
                let rest = entry.next(Ordering::Relaxed);
                if rest != NIL {
                    self.move_to_pool(cells, rest);
                }
                break first;
            };
            // Relaxed: the Acquire load of `head` saw the pop or move that made this slot
            // the first (rule 5); a newer `next` can only come from a reuse, which changes
            // the tag and fails the CAS below (rule 4).
            let next = entry.next(Ordering::Relaxed);
            match self.words.head.compare_exchange_weak(
                head,
                pack(next, next_tag(head)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break index,
                Err(current) => head = current,
            }
        };
        let entry = &cells[index];
        // Rule 3: the slot is ours alone, so a plain load-and-store of the stamp is exact.
        let generation = entry.stamp.load(Ordering::Relaxed).wrapping_add(1);
        debug_assert!(generation % 2 == 1, "a free slot's stamp is even");
        entry.stamp.store(generation, Ordering::Release);
        Ok((TaskId::new(index_u32(index), generation), &entry.value))
    }

    /// Puts the chain starting at `first` (taken from the returns, ours alone: rule 3) on
    /// the pool (rule 4). Its last slot is looked for only if the pool is not empty.
    fn move_to_pool(&self, cells: &[Entry<T>], first: usize) {
        let mut last = None;
        let mut head = self.words.head.load(Ordering::Acquire);
        loop {
            let pool = head_index(head);
            if pool != NIL || last.is_some() {
                let last = *last.get_or_insert_with(|| {
                    let mut at = first;
                    loop {
                        match cells[at].next(Ordering::Relaxed) {
                            NIL => break at,
                            next => at = next,
                        }
                    }
                });
                cells[last].set_next(pool, Ordering::Relaxed);
            }
            match self.words.head.compare_exchange_weak(
                head,
                pack(first, next_tag(head)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Gives back the slot of `id`, ending this use: `get(id)` and `release(id)` fail from
    /// now on, and the slot can be acquired again (under a new id).
    ///
    /// # Errors
    ///
    /// [`StaleId`] when `id` is not live: released already, from an earlier use of the slot,
    /// or out of range. Nothing changes then: a double release is an error, never corruption.
    pub fn release(&self, id: TaskId) -> Result<(), StaleId> {
        let stale = StaleId { id };
        let index = id.index() as usize;
        let entry = self.entries.cells().get(index).ok_or(stale)?;
        let generation = id.generation();
        if generation % 2 == 0 {
            // No live stamp is even (rule 1).
            return Err(stale);
        }
        // Rule 2: exactly one release of a live id wins.
        entry
            .stamp
            .compare_exchange(
                generation,
                generation.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .map_err(|_| stale)?;
        // Push the slot on the returns (rule 4); only we write its `next` now (rule 3).
        let mut head = self.returns.load(Ordering::Acquire);
        loop {
            entry.set_next(head, Ordering::Relaxed);
            match self.returns.compare_exchange_weak(
                head,
                index,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        // Rule 6: the slot is on the returns before the count says it is free.
        self.words.len.fetch_sub(1, Ordering::Release);
        Ok(())
    }

    /// The value of `id`'s slot, if `id` is live (its generation is the slot's current one).
    ///
    /// The answer holds at one instant: the slot may be released right after (see
    /// `# Limits` on [`SlotTable`]).
    #[inline]
    #[must_use]
    pub fn get(&self, id: TaskId) -> Option<&T> {
        let entry = self.entries.cells().get(id.index() as usize)?;
        (id.generation() % 2 == 1 && entry.stamp.load(Ordering::Acquire) == id.generation())
            .then_some(&entry.value)
    }

    /// Whether `id` is live.
    #[inline]
    #[must_use]
    pub fn contains(&self, id: TaskId) -> bool {
        self.get(id).is_some()
    }

    /// The live id at slot `index`, if that slot is in use; `None` if it is free or out of
    /// range. Useful to structures that store bare slot indices (such as a timer wheel).
    #[must_use]
    pub fn id_at(&self, index: usize) -> Option<TaskId> {
        let entry = self.entries.cells().get(index)?;
        let stamp = entry.stamp.load(Ordering::Acquire);
        (stamp % 2 == 1).then(|| TaskId::new(index_u32(index), stamp))
    }
}

impl<T: fmt::Debug, S: Storage<Entry<T>>> fmt::Debug for SlotTable<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(errand_loom)))]
mod tests;
