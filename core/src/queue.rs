//! A bounded, lock-free MPMC priority queue: four rings and a summary word.
//!
//! [`PriorityQueue`] keeps one fixed-capacity ring per [`Level`]. Each ring is a
//! Vyukov-style array queue (the design of crossbeam's `ArrayQueue`): every slot carries a
//! *stamp*, and `head` and `tail` are positions that pack a lap number above the slot
//! index. A one-word *summary* bitmap (bit `l` for level `l`) tells a pop which levels may
//! hold items, so a strict pop goes straight to the highest non-empty ring instead of
//! probing four. There is no global length counter: a push touches its ring's `tail`, one
//! slot and (read-only, in the common case) the summary; a pop touches the summary, its
//! ring's `head` and one slot.
//!
//! # Positions and stamps
//!
//! `one_lap` is the smallest power of two greater than the ring's capacity. A position
//! `pos = lap + index` (with `index < capacity`, `lap` a multiple of `one_lap`) names slot
//! `index` in lap `lap`; the position after the last index of a lap is the first index of
//! the next lap. A slot's stamp is `pos` when the slot is free for the push at `pos`, and
//! `pos + 1` when it holds the value pushed at `pos`, ready for the pop at `pos`.
//!
//! A stamp is stored as 32 bits, the position modulo 2^32 ([`stamp`]), so a ring slot
//! costs 4 bytes beside its value rather than a word; `head` and `tail` stay full words,
//! and a level holds at most [`MAX_LEVEL_CAPACITY`] (`one_lap` at most 2^31). A truncated
//! stamp can match a position it does not belong to only for a thread holding a position
//! read many laps ago; every such match is checked against a full-width word before
//! anything is written (the push's and the pop's CAS on `tail` and `head`, and the
//! full-width `head`/`tail` comparisons that decide "full" and "empty"), so it costs that
//! thread one more turn of its loop, as a stale position always did.
//!
//! # Safety rules (cited by every `unsafe` block)
//!
//! 1. **Push ownership.** A push that reads stamp `t` in the slot of position `t` and then
//!    wins the CAS moving `tail` from `t` owns that slot exclusively: the slot is free (any
//!    earlier value was moved out by the pop that stored stamp `t`, with `Release`, read
//!    here with `Acquire`), and no other push can win position `t`, and no pop reads the
//!    slot until the stamp becomes `t + 1`. The push writes the value, then stores stamp
//!    `t + 1` with `Release`.
//! 2. **Pop ownership.** A pop that reads stamp `h + 1` (with `Acquire`, so it sees the
//!    value written under rule 1) in the slot of position `h` and then wins the CAS moving
//!    `head` from `h` owns the initialised value exclusively: no other pop can win position
//!    `h`, and no push writes the slot until its stamp becomes `h + one_lap`. The pop moves
//!    the value out, then stores stamp `h + one_lap` with `Release`, freeing the slot for
//!    the next lap.
//! 3. **Exclusive access.** With `&mut self` (in `Drop`) no push or pop is in flight, so
//!    every position from `head` up to `tail` of a ring holds an initialised value that is
//!    dropped exactly once.
//!
//! # Summary protocol (why no completed push is stranded)
//!
//! The summary bit of a level is only a hint that its ring *may* be non-empty; these rules
//! make sure it is never clear while the ring holds an item whose push completed, unless a
//! pop is about to look at that ring again anyway. Every access below is `SeqCst`.
//!
//! 4. **Push sets.** After winning its `tail` CAS (and publishing the value), a push loads
//!    the summary; only if its bit is clear does it `fetch_or` the bit. Pushes to a level
//!    whose bit is already set write no shared word besides the ring's own.
//! 5. **Pop clears, then re-checks.** A pop probes the rings whose bits it saw set, in
//!    its mode's order, and takes the first item it finds, leaving any stale bits it
//!    passed alone (clearing them would cost two writes of the shared summary per
//!    empty/non-empty transition; an idle stale ring is cheap to probe). Only a pop that
//!    found *every* ring whose bit it saw set empty clears those bits (one `fetch_and`),
//!    and right after it loads each such ring's `head` and `tail`; if they differ the pop
//!    sets that bit again.
//! 6. **Why 4 and 5 suffice.** The push does *CAS `tail`; load summary*, the clearing pop
//!    does *clear summary; load `tail`*, all `SeqCst`. In the single total order of these
//!    operations either the pop's `tail` load comes after the push's CAS (the pop sees the
//!    ring non-empty and sets the bit again), or the pop's clear comes before the push's
//!    summary load (the push sees its bit clear and sets it). Either way the bit ends up
//!    set (the Dekker / store-buffering pattern; on x86 both RMWs are locked instructions
//!    and the loads plain moves, so no fence instruction is needed).
//! 7. **None is checked.** A pop that finds the summary empty scans every ring's `head`
//!    and `tail` before it returns `None`, setting the bit of any ring it finds non-empty
//!    and trying again. So `pop` returns `None` only if each ring was seen empty during the
//!    call: an item whose push completed before the pop began is never missed, even while
//!    another pop sits between its clear and its re-check (rule 5).
//!
//! A pop whose ring has a reserved slot (a push between its `tail` CAS and its stamp
//! store) waits for that push, spinning with exponential backoff (`crate::sync::spin_hint`,
//! a yield under loom), as crossbeam's `ArrayQueue` does: that item's push has not
//! completed, but later ones in the same ring may have, and FIFO order forbids skipping it.
//! A push that finds the slot of the previous lap still being emptied waits the same way
//! rather than report `Full`.
//!
//! Rules 8 and 9, for rings whose slots are allocated in segments as they are first
//! reached, are in `queue/segments.rs`.
//!
//! Positions wrap around `usize`; on a 32-bit target a thread stalled inside one operation
//! while about 2^32 / `one_lap` laps pass could in theory be fooled by a recycled position
//! (the same bound as crossbeam's `ArrayQueue`).

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::priority::{Level, Priority};
use crate::sync::{AtomicU32, AtomicUsize, Ordering, SpinBackoff, UnsafeCell};

mod build;
mod inspect;
mod schedule;
mod segments;

use schedule::{SCHEDULE, scheduled};
pub use segments::RingStorage;
#[cfg(feature = "alloc")]
pub use segments::Segments;

/// The most items one level of a [`PriorityQueue`] holds: `2^31 - 1`, so that a ring's
/// lap (the power of two above its capacity) fits the 32 bits of a slot's stamp.
///
/// # Examples
///
/// ```
/// use errand_core::{BoxedPriorityQueue, MAX_LEVEL_CAPACITY, Mode};
///
/// assert_eq!(MAX_LEVEL_CAPACITY, (1 << 31) - 1);
/// let too_many = std::panic::catch_unwind(|| {
///     BoxedPriorityQueue::<u32>::with_capacity(MAX_LEVEL_CAPACITY + 1, Mode::Strict)
/// });
/// assert!(too_many.is_err());
/// ```
pub const MAX_LEVEL_CAPACITY: usize = (1 << 31) - 1;

/// Position `pos` as a slot stores it: modulo 2^32 ("Positions and stamps").
#[inline]
#[allow(
    clippy::cast_possible_truncation,
    reason = "the truncation is the point: stamps are positions modulo 2^32"
)]
const fn stamp(pos: usize) -> u32 {
    pos as u32
}

/// How a [`PriorityQueue`] chooses the level a pop serves.
///
/// # Examples
///
/// ```
/// use errand_core::Mode;
///
/// assert_eq!(Mode::default(), Mode::Strict);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Mode {
    /// Always the highest non-empty level; a steady stream of high-priority work starves
    /// the lower levels.
    #[default]
    Strict,
    /// Levels take turns in proportion to their [`weight`](Level::weight)s (20:10:5:1), on
    /// a fixed, smoothly interleaved schedule of 36 turns. A turn whose level is empty goes
    /// to the next non-empty level on the schedule, so a pop never comes back empty while
    /// any level holds items, and no level starves. Costs one shared turn word per pop
    /// (read and written, no locked instruction; two racing pops may share a turn, so
    /// under concurrency the shares are approximate).
    Weighted,
}

/// The error of [`PriorityQueue::push`]; it hands the item back.
///
/// # Examples
///
/// ```
/// use errand_core::{InlinePriorityQueue, Mode, Priority, PushError};
///
/// let queue = InlinePriorityQueue::<u32, 1>::new(Mode::Strict);
/// queue.push(1, Priority::HIGH).unwrap();
/// assert_eq!(queue.push(2, Priority::HIGH), Err(PushError::Full(2)));
/// // Capacity is per level: the low ring still has room.
/// assert_eq!(queue.push(3, Priority::LOW), Ok(()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The ring of the item's level held as many items as its capacity; here is the item.
    Full(T),
}

impl<T> PushError<T> {
    /// The item that was not pushed.
    #[inline]
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(item) => item,
        }
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("queue full: the item's level is at its capacity"),
        }
    }
}

impl<T> core::error::Error for PushError<T> {}

/// One cell of a [`PriorityQueue`] ring. Opaque: it only appears in storage types such as
/// `[Slot<T>; N]` and `Box<[Slot<T>]>`.
pub struct Slot<T> {
    /// See "Positions and stamps" in the module docs: the position modulo 2^32.
    stamp: AtomicU32,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    fn new(index: usize) -> Self {
        Slot {
            stamp: AtomicU32::new(stamp(index)),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

// SAFETY: a slot's value is only reached through the protocol of rules 1-3, which hands it
// to one thread at a time; moving a `T` between threads needs `T: Send` and nothing more.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot { .. }")
    }
}

/// One level's ring: its head and tail on cache lines of their own, then the slots.
struct Ring<S> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: S,
}

/// A bounded lock-free MPMC priority queue with four levels.
///
/// Items are pushed with a [`Priority`], which picks their [`Level`] (see
/// [`Priority::level`]). In [`Mode::Strict`] a pop takes the oldest item of the highest
/// non-empty level; in [`Mode::Weighted`] levels take turns 20:10:5:1. Within a level items
/// leave in the order they were pushed (under concurrency: in each producer's order).
///
/// **Capacity is per level**: each of the four rings holds up to
/// [`capacity_per_level`](Self::capacity_per_level) items, and a push fails with
/// [`PushError::Full`] (handing the item back) exactly when the ring of its level is full,
/// whatever the other levels hold. With inline or boxed storage nothing allocates after
/// construction; with [`Segments`] a push allocates the segment of its position the first
/// time a push reaches it.
///
/// The queue is `Send` and `Sync` when `T: Send` (items move between threads, they are
/// never shared), so a queue of `Rc`s stays on its thread:
///
/// ```compile_fail
/// use errand_core::{InlinePriorityQueue, Mode};
///
/// fn shareable<Q: Sync>(_: &Q) {}
/// shareable(&InlinePriorityQueue::<std::rc::Rc<u8>, 1>::new(Mode::Strict));
/// ```
///
/// `S` is where each ring keeps its slots: `[Slot<T>; N]` inline (see
/// [`InlinePriorityQueue`], built by [`new`](Self::new)) or, with feature `alloc`,
/// `Box<[Slot<T>]>` (see [`BoxedPriorityQueue`], built by
/// [`with_capacity`](Self::with_capacity)) or [`Segments`] (see
/// [`SegmentedPriorityQueue`], built by [`segmented`](Self::segmented)).
///
/// # Examples
///
/// ```
/// use errand_core::{InlinePriorityQueue, Level, Mode, Priority};
///
/// let queue = InlinePriorityQueue::<&str, 8>::new(Mode::Strict);
/// queue.push("report", Priority::LOW).unwrap();
/// queue.push("email", Priority::NORMAL).unwrap();
/// queue.push("payment", Priority::CRITICAL).unwrap();
/// queue.push("refund", Priority::CRITICAL).unwrap();
///
/// assert_eq!(queue.len(), 4);
/// assert_eq!(queue.pop(), Some(("payment", Level::Critical)));
/// assert_eq!(queue.pop(), Some(("refund", Level::Critical)));
/// assert_eq!(queue.pop(), Some(("email", Level::Normal)));
/// assert_eq!(queue.pop(), Some(("report", Level::Low)));
/// assert_eq!(queue.pop(), None);
/// ```
///
/// Shared between threads (here with heap storage sized at run time):
///
/// ```
/// use std::sync::Arc;
/// use errand_core::{BoxedPriorityQueue, Mode, Priority};
///
/// let queue = Arc::new(BoxedPriorityQueue::<u64>::with_capacity(1024, Mode::Weighted));
/// let producer = {
///     let queue = Arc::clone(&queue);
///     std::thread::spawn(move || {
///         for i in 0..100 {
///             queue.push(i, Priority(i as u8)).unwrap();
///         }
///     })
/// };
/// producer.join().unwrap();
/// let mut sum = 0;
/// while let Some((i, _level)) = queue.pop() {
///     sum += i;
/// }
/// assert_eq!(sum, 4950);
/// ```
pub struct PriorityQueue<T, S: RingStorage<T>> {
    /// Bit `l` set: ring `l` may hold items (rules 4-7).
    summary: CachePadded<AtomicUsize>,
    /// Weighted mode's next turn, `0..36`; never touched in strict mode.
    turn: CachePadded<AtomicUsize>,
    rings: [Ring<S>; Level::COUNT],
    /// Slots per ring.
    cap: usize,
    /// The smallest power of two greater than `cap`.
    one_lap: usize,
    mode: Mode,
    /// The items live in `S`; this only names `T` (and, unlike `PhantomData<T>`, does not
    /// make the queue `!Sync` for a `T: Send + !Sync`: the queue shares no `&T`).
    _items: PhantomData<fn() -> T>,
}

/// A [`PriorityQueue`] with `N` slots per level stored inline (no heap).
pub type InlinePriorityQueue<T, const N: usize> = PriorityQueue<T, [Slot<T>; N]>;

/// A [`PriorityQueue`] whose slots live on the heap, sized at run time.
#[cfg(feature = "alloc")]
pub type BoxedPriorityQueue<T> = PriorityQueue<T, alloc::boxed::Box<[Slot<T>]>>;

/// A [`PriorityQueue`] whose slots live on the heap in [`Segments`], allocated as each
/// level first fills that far: a level that holds few items costs few slots.
#[cfg(feature = "alloc")]
pub type SegmentedPriorityQueue<T> = PriorityQueue<T, Segments<T>>;

impl<T, S: RingStorage<T>> PriorityQueue<T, S> {
    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline]
    fn next_pos(&self, pos: usize) -> usize {
        let index = pos & (self.one_lap - 1);
        if index + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Pushes `item` onto the ring of `priority`'s level.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] with the item when that level's ring holds
    /// [`capacity_per_level`](Self::capacity_per_level) items. (A pop that has taken its
    /// position but not yet moved its value out still counts; the push waits for it rather
    /// than fail.)
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{InlinePriorityQueue, Mode, Priority, PushError};
    ///
    /// let queue = InlinePriorityQueue::<char, 2>::new(Mode::Strict);
    /// queue.push('a', Priority::NORMAL).unwrap();
    /// queue.push('b', Priority(4)).unwrap(); // 4 also maps to the normal level
    /// assert_eq!(queue.push('c', Priority::NORMAL).unwrap_err().into_inner(), 'c');
    /// ```
    pub fn push(&self, item: T, priority: Priority) -> Result<(), PushError<T>> {
        let level = priority.level().index();
        let ring = &self.rings[level];
        let mut tail = ring.tail.load(Ordering::Relaxed);
        let mut backoff = SpinBackoff::new();
        loop {
            let index = tail & (self.one_lap - 1);
            // Before the CAS: a segment not yet there is installed first (rule 8).
            let slot = ring.slots.slot_or_grow(index);
            let seen = slot.stamp.load(Ordering::Acquire);
            if seen == stamp(tail) {
                // The slot is free for position `tail`: claim it.
                let next = self.next_pos(tail);
                match ring.tail.compare_exchange_weak(
                    tail,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: we read stamp `tail` and won the CAS from `tail`, so the
                        // slot is ours and free (rule 1).
                        slot.value.with_mut(|p| unsafe { (*p).write(item) });
                        slot.stamp.store(stamp(tail + 1), Ordering::Release);
                        self.mark_nonempty(level);
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if seen.wrapping_add(stamp(self.one_lap)) == stamp(tail + 1) {
                // The slot still holds the value of the previous lap: full, or a pop has
                // taken that position and is still moving the value out.
                let head = ring.head.load(Ordering::SeqCst);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(PushError::Full(item));
                }
                backoff.spin();
                tail = ring.tail.load(Ordering::SeqCst);
            } else {
                // Another push moved `tail` on; catch up.
                backoff.spin();
                tail = ring.tail.load(Ordering::SeqCst);
            }
        }
    }

    /// Takes the next item and the level it came from, or `None` when every level is empty.
    ///
    /// [`Mode::Strict`]: the oldest item of the highest non-empty level. [`Mode::Weighted`]:
    /// the oldest item of the level whose turn it is, or of the next non-empty level on the
    /// schedule. `None` means each ring was seen empty during the call, so an item whose
    /// push completed before the call began is never missed.
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{InlinePriorityQueue, Level, Mode, Priority};
    ///
    /// let queue = InlinePriorityQueue::<u32, 4>::new(Mode::Strict);
    /// assert_eq!(queue.pop(), None);
    /// queue.push(7, Priority(3)).unwrap();
    /// assert_eq!(queue.pop(), Some((7, Level::Normal)));
    /// ```
    pub fn pop(&self) -> Option<(T, Level)> {
        // Weighted mode: where on the schedule this pop starts looking.
        let start = match self.mode {
            Mode::Strict => 0,
            Mode::Weighted => self.next_turn(),
        };
        loop {
            let bits = self.summary.load(Ordering::SeqCst);
            if bits == 0 {
                if self.rescan() {
                    continue;
                }
                return None;
            }
            // Probe the candidate levels in order; only if all of them are empty, clear
            // their bits (rule 5) and look again.
            let mut candidates = bits;
            while candidates != 0 {
                let level = match self.mode {
                    Mode::Strict => highest(candidates),
                    Mode::Weighted => scheduled(candidates, start),
                };
                if let Some(item) = self.pop_ring(level) {
                    return Some((item, Level::ALL[level]));
                }
                candidates &= !(1 << level);
            }
            self.mark_empty(bits);
        }
    }

    /// Weighted mode: takes the next turn of the schedule, `0..36`.
    ///
    /// A plain load and store rather than a read-modify-write (which costs a locked
    /// instruction on every pop): two pops racing here may take the same turn, which only
    /// nudges the schedule; with one consumer the order is exact.
    #[inline]
    fn next_turn(&self) -> usize {
        let turn = self.turn.load(Ordering::Relaxed);
        let next = if turn + 1 >= SCHEDULE.len() {
            0
        } else {
            turn + 1
        };
        self.turn.store(next, Ordering::Relaxed);
        turn
    }

    /// Rule 4: make sure bit `level` is set after a push to that ring.
    #[inline]
    fn mark_nonempty(&self, level: usize) {
        let bit = 1 << level;
        if self.summary.load(Ordering::SeqCst) & bit == 0 {
            self.summary.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Rule 5: clear the bits of `levels` (a mask) after their rings were seen empty, then
    /// re-check those rings and set the bits of any that are not empty.
    fn mark_empty(&self, levels: usize) {
        self.summary.fetch_and(!levels, Ordering::SeqCst);
        let mut refilled = 0;
        let mut rest = levels;
        while rest != 0 {
            let level = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if !self.ring_seen_empty(level) {
                refilled |= 1 << level;
            }
        }
        if refilled != 0 {
            self.summary.fetch_or(refilled, Ordering::SeqCst);
        }
    }

    /// Rule 7: before returning `None`, look at every ring; set the bits of non-empty ones
    /// and say whether there were any.
    #[cold]
    fn rescan(&self) -> bool {
        let mut found = 0;
        for level in 0..Level::COUNT {
            if !self.ring_seen_empty(level) {
                found |= 1 << level;
            }
        }
        if found != 0 {
            self.summary.fetch_or(found, Ordering::SeqCst);
        }
        found != 0
    }

    /// Whether ring `level` held nothing (not even a reserved slot) at the moment its
    /// `tail` was read. Reading `head` first makes a stale `head` err towards "non-empty".
    #[inline]
    fn ring_seen_empty(&self, level: usize) -> bool {
        let ring = &self.rings[level];
        let head = ring.head.load(Ordering::SeqCst);
        let tail = ring.tail.load(Ordering::SeqCst);
        head == tail
    }

    /// Takes the oldest item of ring `level`; `None` when the ring is empty.
    #[inline]
    fn pop_ring(&self, level: usize) -> Option<T> {
        let ring = &self.rings[level];
        let mut head = ring.head.load(Ordering::Relaxed);
        let mut backoff = SpinBackoff::new();
        loop {
            let index = head & (self.one_lap - 1);
            let slot = ring.slots.slot(index);
            // A segment not yet there reads as a slot free for `head` (rule 9).
            let seen = slot.map_or(stamp(head), |slot| slot.stamp.load(Ordering::Acquire));
            if let Some(slot) = slot.filter(|_| seen == stamp(head + 1)) {
                // The slot holds the value pushed at `head`: claim it.
                let next = self.next_pos(head);
                match ring.head.compare_exchange_weak(
                    head,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: we read stamp `head + 1` and won the CAS from `head`, so
                        // the value is initialised and ours alone (rule 2).
                        let item = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                        slot.stamp
                            .store(stamp(head.wrapping_add(self.one_lap)), Ordering::Release);
                        return Some(item);
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if seen == stamp(head) {
                // Nothing published at `head`: empty, or a push is between its CAS and its
                // stamp store.
                let tail = ring.tail.load(Ordering::SeqCst);
                if tail == head {
                    return None;
                }
                backoff.spin();
                head = ring.head.load(Ordering::SeqCst);
            } else {
                // Another pop moved `head` on; catch up.
                backoff.spin();
                head = ring.head.load(Ordering::SeqCst);
            }
        }
    }
}

/// The highest level whose bit is set in the non-zero `bits`.
#[inline]
fn highest(bits: usize) -> usize {
    (usize::BITS - 1 - bits.leading_zeros()) as usize
}

impl<T, S: RingStorage<T>> Drop for PriorityQueue<T, S> {
    fn drop(&mut self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        let one_lap = self.one_lap;
        let cap = self.cap;
        for ring in &mut self.rings {
            let mut pos = ring.head.load(Ordering::Relaxed);
            let tail = ring.tail.load(Ordering::Relaxed);
            while pos != tail {
                let index = pos & (one_lap - 1);
                // SAFETY: no push or pop is in flight, so every position from `head` to
                // `tail` holds an initialised value, each visited once (rule 3).
                ring.slots
                    .slot_mut(index)
                    .value
                    .with_mut(|p| unsafe { (*p).assume_init_drop() });
                pos = if index + 1 < cap {
                    pos + 1
                } else {
                    (pos & !(one_lap - 1)).wrapping_add(one_lap)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests;
