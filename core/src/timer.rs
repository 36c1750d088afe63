//! A hierarchical timer wheel over slot indices.
//!
//! [`TimerWheel`] keeps one timer per slot index (`0..capacity`, the engine's task slot
//! indices) and fires each one, exactly once, at the first [`poll`](TimerWheel::poll) or
//! [`advance`](TimerWheel::advance) whose `now` has reached its deadline. Insert and cancel
//! are O(1); firing costs O(1) per timer plus at most one move per level it falls through.
//!
//! # Ticks
//!
//! The wheel counts abstract `u64` ticks and never reads a clock. errand's engine uses
//! **1 tick = 1 ms** since its start and converts; nothing in this module depends on that.
//! Every `u64` is a valid deadline: the wheel has [`LEVELS`](TimerWheel::LEVELS) = 11 levels
//! of 64 slots, and `64^11 = 2^66 > 2^64`, so there is no horizon and nothing is clamped.
//! (Six levels would reach `64^6` ms ≈ 2.2 years; a wheel that stops there must park later
//! deadlines in its farthest slot and move them again every 2.2 years of elapsed time,
//! so a huge jump of `now` would cost one pass per horizon crossed. Five more levels cost
//! 1.3 KiB of slot heads and remove that case: a timer moves at most 10 times in its life.)
//!
//! # Layout
//!
//! Level `L` has 64 slots, each `64^L` ticks wide; together they span `64^(L+1)` ticks, one
//! *rotation* of the level. A timer with deadline `d` is filed, relative to the wheel's
//! current tick `e`, at the level of the highest 6-bit digit in which `d` and `e` differ,
//! in the slot given by `d`'s digit at that level. When time reaches the start of that slot
//! the slot is emptied: timers whose deadline has come move to the *ready list*, the rest
//! are filed again, always at a lower level. Each level has a `u64` occupancy bitmap, so
//! finding the next non-empty slot is a mask and a `trailing_zeros`, however far away it
//! is: there is no per-tick loop, and a jump of `now` by any amount costs only the slots
//! that really hold timers.
//!
//! The lists are intrusive and doubly linked through the entry array (`u32` links), so a
//! cancel unlinks in O(1) without searching. A link that points "before the first entry"
//! names the list's head instead, which is how an entry finds its slot without storing it.
//! An entry is 16 bytes: one million pending timers take 16 MB, plus the fixed
//! ≈ 2.9 KiB of the wheel itself (see [`TimerWheel::MEMORY_PER_TIMER`]).
//!
//! # Invariants
//!
//! Let `e` be the wheel's current tick ([`TimerWheel::now`]).
//!
//! 1. An entry is *pending* iff its `prev` link is not `VACANT`; a pending entry is in
//!    exactly one list (one wheel slot or the ready list), and `len` counts them.
//! 2. Bit `s` of level `L`'s bitmap is set iff slot `(L, s)` has a non-empty list; bit `L`
//!    of the level mask is set iff level `L`'s bitmap is non-zero.
//! 3. An entry in slot `(L, s)` has a deadline `d` that agrees with `e` on every digit above
//!    `L`, and whose digit `L` is `s`, with `s >= digit_L(e)`. So the slot's start tick
//!    (`e` with digits `L` and below replaced by `s, 0, …, 0`) is `>= e` once the slot is
//!    in the future, and is `<= d` always.
//! 4. `e` only moves forward, and only to: the start tick of the earliest non-empty slot;
//!    a `now` passed to [`poll`](TimerWheel::poll) that is earlier than every non-empty
//!    slot's start; or, when the earliest slot holds a *lone* entry whose deadline `d` is
//!    `<= now` and `<=` the start of every other non-empty slot, to `d` (the entry then
//!    goes straight to the ready list, skipping the levels below). Each way it passes no
//!    non-empty slot, which keeps 3 true.
//! 5. An entry enters the ready list only when `d <= e` (4 keeps `e <= ` the largest `now`
//!    seen), and leaves the wheel as "fired" only from the ready list: nothing fires early.
//!    By 3 and 4 every slot is emptied by the time `e` reaches its start `<= d`, and a
//!    refiled entry goes to a strictly lower level: nothing is lost, nothing fires twice.
//! 6. Every non-empty slot of level `L` starts before every non-empty slot of a level
//!    above `L`: by 3, a slot of level `M > L` lies after `e`'s current `M`-slot, which
//!    contains all of level `L`'s current rotation. So the earliest slot is the first set
//!    bit of the lowest non-empty level, found in O(1) (checked in debug builds). Each
//!    level-0 slot is one tick wide, so all its entries are due together when it is
//!    reached.
//!
//! The only `unsafe` code is [`TimerWheel::init_in`], which builds a wheel field by field
//! in memory the caller provides, with the same initial state as [`TimerWheel::new`].

use core::fmt;

use crate::storage::Storage;

mod build;

/// Bits of a tick consumed per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels: `SLOT_BITS * LEVELS >= 64`, so every `u64` deadline has a slot.
const LEVELS: usize = 11;
/// Slot id of the ready list (the wheel's slots are `0..LEVELS * SLOTS`).
const READY: usize = LEVELS * SLOTS;
/// List heads: one per wheel slot plus the ready list.
const HEADS: usize = READY + 1;
/// `next` / head value meaning "no entry".
const NIL: u32 = u32::MAX;
/// `prev` value of an entry that is not pending.
const VACANT: u32 = u32::MAX;
/// `prev` values `HEAD_BASE + slot` mean "first in list `slot`"; entry indices stay below.
const HEAD_BASE: u32 = u32::MAX - 1024;

/// One timer's cell in a [`TimerWheel`]'s storage: its deadline and its list links.
///
/// Opaque; build storage for a wheel with [`TimerWheel::new`] or
/// `TimerWheel::with_capacity` (feature `alloc`), or from [`TimerEntry::VACANT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerEntry {
    deadline: u64,
    next: u32,
    prev: u32,
}

impl TimerEntry {
    /// An entry with no timer armed.
    pub const VACANT: Self = Self {
        deadline: 0,
        next: NIL,
        prev: VACANT,
    };

    #[inline]
    fn is_pending(&self) -> bool {
        self.prev != VACANT
    }
}

impl Default for TimerEntry {
    fn default() -> Self {
        Self::VACANT
    }
}

/// The error of [`TimerWheel::insert`]: the index is not one of the wheel's slots.
///
/// It gives back the index and the deadline that were rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimerInsertError {
    index: usize,
    deadline: u64,
    capacity: usize,
}

impl TimerInsertError {
    /// The rejected index.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The rejected deadline.
    pub fn deadline(&self) -> u64 {
        self.deadline
    }
    /// The wheel's capacity (valid indices are `0..capacity`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Display for TimerInsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timer index {} out of range: the wheel holds {} timers (deadline {})",
            self.index, self.capacity, self.deadline
        )
    }
}

impl core::error::Error for TimerInsertError {}

/// A hierarchical timer wheel: at most one pending timer per slot index `0..capacity`.
///
/// Single owner (`&mut self` for every change), no atomics, no allocation after
/// construction.
///
/// - **Ticks** are abstract `u64`s; errand's engine uses 1 tick = 1 ms. Every `u64` is a
///   valid deadline: 11 levels of 64 slots cover all of `u64`, so nothing is clamped and
///   a timer moves between levels at most 10 times, however far `now` jumps.
/// - **O(1)** [`insert`](Self::insert) (re-arms an index already pending),
///   [`cancel`](Self::cancel) and [`next_deadline`](Self::next_deadline); firing costs
///   O(1) per timer plus its moves between levels. Empty slots are skipped with per-level
///   occupancy bitmaps: there is no per-tick loop.
/// - **Exactly once, never early**: [`poll`](Self::poll) / [`advance`](Self::advance)
///   fire each timer once, at the first call whose `now` has reached its deadline, in
///   deadline order.
/// - **Memory**: 16 bytes per index ([`MEMORY_PER_TIMER`](Self::MEMORY_PER_TIMER)) plus
///   about 2.9 KiB for the wheel: 16 MB for one million timers.
///
/// # Examples
///
/// ```
/// use errand_core::{TimerEntry, TimerWheel};
///
/// let mut wheel: TimerWheel<[TimerEntry; 8]> = TimerWheel::new();
/// wheel.insert(3, 250).unwrap(); // task slot 3 is due at tick 250 (ms)
/// wheel.insert(5, 100).unwrap();
/// wheel.insert(7, 100).unwrap();
/// assert_eq!(wheel.cancel(7), Some(100));
///
/// // The engine may sleep until this tick; nothing fires before it.
/// let wake = wheel.next_deadline().unwrap();
/// assert!(wake <= 100);
/// assert_eq!(wheel.poll(99), None);
///
/// let mut fired = Vec::new();
/// wheel.advance(1_000, |index| fired.push(index));
/// assert_eq!(fired, [5, 3]);
/// assert!(wheel.is_empty());
/// ```
pub struct TimerWheel<S> {
    /// The entries, one per index (invariant 1).
    entries: S,
    /// The current tick `e` (invariants 3, 4).
    elapsed: u64,
    /// Pending entries (invariant 1).
    len: usize,
    /// Bit `L` set iff `occupied[L] != 0` (invariant 2).
    level_mask: u16,
    /// Per level, bit `s` set iff slot `s` is non-empty (invariant 2).
    occupied: [u64; LEVELS],
    /// First entry of each wheel slot's list, then of the ready list; `NIL` when empty.
    heads: [u32; HEADS],
}

impl<S> fmt::Debug for TimerWheel<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("now", &self.elapsed)
            .field("len", &self.len)
            .field("level_mask", &format_args!("{:#013b}", self.level_mask))
            .finish_non_exhaustive()
    }
}

impl<S> TimerWheel<S> {
    /// The largest capacity a wheel can have (`u32::MAX - 1024`; links are `u32`).
    pub const MAX_CAPACITY: usize = HEAD_BASE as usize;
    /// Levels of 64 slots: 11, enough for every `u64` deadline (no horizon).
    pub const LEVELS: usize = LEVELS;
    /// Bytes of storage per timer slot (`size_of::<TimerEntry>()`, 16): one million
    /// timers take 16 MB plus the wheel's fixed [`size_of`](core::mem::size_of) part.
    pub const MEMORY_PER_TIMER: usize = core::mem::size_of::<TimerEntry>();

    const fn from_storage(entries: S) -> Self {
        Self {
            entries,
            elapsed: 0,
            len: 0,
            level_mask: 0,
            occupied: [0; LEVELS],
            heads: [NIL; HEADS],
        }
    }

    /// The wheel's current tick: the latest `now` it has been advanced to (never decreases).
    #[inline]
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// How many timers are pending.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<S: Storage<TimerEntry>> TimerWheel<S> {
    /// How many indices the wheel has (`0..capacity`).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.entries.cells().len()
    }

    /// Whether `index` has a pending timer (false for an index out of range).
    #[inline]
    pub fn is_pending(&self, index: usize) -> bool {
        self.entries
            .cells()
            .get(index)
            .is_some_and(TimerEntry::is_pending)
    }

    /// The deadline of `index`'s pending timer, if it has one.
    #[inline]
    pub fn deadline(&self, index: usize) -> Option<u64> {
        let entry = self.entries.cells().get(index)?;
        entry.is_pending().then_some(entry.deadline)
    }

    /// Arms `index` to fire at tick `deadline`. O(1).
    ///
    /// If `index` is already pending it is **re-armed**: its old deadline is replaced and
    /// returned as `Ok(Some(old))`. A deadline at or before [`now`](Self::now) is accepted
    /// and fires at the next [`poll`](Self::poll), whatever its `now`.
    ///
    /// # Errors
    ///
    /// [`TimerInsertError`] (giving back index and deadline) if `index >= capacity`.
    pub fn insert(&mut self, index: usize, deadline: u64) -> Result<Option<u64>, TimerInsertError> {
        let capacity = self.capacity();
        if index >= capacity {
            return Err(TimerInsertError {
                index,
                deadline,
                capacity,
            });
        }
        let old = self.unlink(index);
        if old.is_none() {
            self.len += 1;
        }
        self.entries.cells_mut()[index].deadline = deadline;
        self.file(index);
        Ok(old)
    }

    /// Disarms `index`, returning the deadline it had; `None` if it was not pending (or
    /// is out of range). O(1).
    pub fn cancel(&mut self, index: usize) -> Option<u64> {
        if index >= self.capacity() {
            return None;
        }
        let old = self.unlink(index);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The earliest tick at which a pending timer may fire, `None` if none is pending.
    ///
    /// It is never later than the earliest pending deadline, and never earlier than
    /// [`now`](Self::now). If some timer is already due, it is `now()`. It is the earliest
    /// deadline itself when the earliest slot holds one timer (the common case when timers
    /// are sparse); otherwise it may be earlier than every deadline: it is then the start
    /// of a slot whose timers must be refiled, and a [`poll`](Self::poll) at that tick
    /// fires nothing and moves this value forward (at most 10 times per timer).
    /// Cost: O(1).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.heads[READY] != NIL {
            return Some(self.elapsed);
        }
        let (level, slot, tick) = self.next_expiration()?;
        Some(self.lone_deadline(level, slot).unwrap_or(tick))
    }

    /// If slot `(level, slot)` (the earliest) holds a single entry whose deadline is no
    /// later than the start of every other non-empty slot, that deadline (invariant 4).
    #[inline]
    fn lone_deadline(&self, level: usize, slot: usize) -> Option<u64> {
        if level == 0 {
            return None;
        }
        let head = self.heads[level * SLOTS + slot];
        let entry = &self.entries.cells()[head as usize];
        if entry.next != NIL {
            return None;
        }
        // The earliest other non-empty slot (invariant 6): the next one on this level,
        // else the first one of the lowest non-empty level above.
        let rest = self.occupied[level] & !(1u64 << slot);
        let other = if rest != 0 {
            let shift = SLOT_BITS * level as u32;
            rotation_start(self.elapsed, level) + (u64::from(rest.trailing_zeros()) << shift)
        } else {
            let above = self.level_mask & !((2u16 << level) - 1);
            if above == 0 {
                u64::MAX
            } else {
                self.slot_expiration(above.trailing_zeros() as usize).2
            }
        };
        (entry.deadline <= other).then_some(entry.deadline)
    }

    /// Fires one due timer: advances the wheel towards `now` and returns the index of a
    /// timer whose deadline is `<= now`, or `None` once there is none left (the wheel is
    /// then at `max(now, self.now())`).
    ///
    /// Call it until it returns `None`. Between calls the wheel may be changed freely (a
    /// recurring timer can be re-armed from inside the loop; if it is re-armed at a tick
    /// `<= now` it fires again in the same loop). Timers become due in deadline order;
    /// timers due at the same tick come out in an unspecified order.
    pub fn poll(&mut self, now: u64) -> Option<usize> {
        loop {
            let ready = self.heads[READY];
            if ready != NIL {
                let index = ready as usize;
                self.unlink(index);
                self.len -= 1;
                return Some(index);
            }
            match self.next_expiration() {
                Some((level, slot, tick)) if tick <= now => {
                    // Invariant 4: `tick` is the earliest non-empty slot's start, >= e.
                    debug_assert!(tick >= self.elapsed);
                    match self.lone_deadline(level, slot) {
                        Some(deadline) if deadline <= now => {
                            // Invariant 4, lone entry: e moves to its deadline, no further
                            // than any other non-empty slot, and it becomes due.
                            let index = self.heads[level * SLOTS + slot] as usize;
                            self.unlink(index);
                            self.elapsed = deadline;
                            self.file(index);
                        }
                        _ => {
                            self.elapsed = tick;
                            self.refile_slot(level, slot);
                        }
                    }
                }
                _ => {
                    // Invariant 4: every non-empty slot starts after `now`.
                    self.elapsed = self.elapsed.max(now);
                    return None;
                }
            }
        }
    }

    /// Fires every timer whose deadline is `<= now`, calling `fire(index)` once for each,
    /// and returns how many fired. Same as calling [`poll`](Self::poll) until `None`.
    pub fn advance(&mut self, now: u64, mut fire: impl FnMut(usize)) -> usize {
        let mut fired = 0;
        while let Some(index) = self.poll(now) {
            fire(index);
            fired += 1;
        }
        fired
    }

    /// The earliest non-empty wheel slot: `(level, slot, start tick)`. O(1).
    ///
    /// It is the first non-empty slot of the lowest non-empty level (invariant 6).
    #[inline]
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        if self.level_mask == 0 {
            return None;
        }
        let level = self.level_mask.trailing_zeros() as usize;
        let found = self.slot_expiration(level);
        #[cfg(debug_assertions)]
        for higher in level + 1..LEVELS {
            if self.occupied[higher] != 0 {
                debug_assert!(self.slot_expiration(higher).2 > found.2, "invariant 6");
            }
        }
        Some(found)
    }

    /// The first non-empty slot of non-empty `level` and its start tick.
    #[inline]
    fn slot_expiration(&self, level: usize) -> (usize, usize, u64) {
        let shift = SLOT_BITS * level as u32;
        let slot = self.occupied[level].trailing_zeros() as usize;
        // Invariant 3: no occupied slot lies below the current one.
        debug_assert!(
            slot >= (self.elapsed >> shift) as usize & (SLOTS - 1),
            "invariant 3"
        );
        (
            level,
            slot,
            rotation_start(self.elapsed, level) + ((slot as u64) << shift),
        )
    }

    /// Empties slot `(level, slot)`, whose start is now, refiling each entry.
    fn refile_slot(&mut self, level: usize, slot: usize) {
        let id = level * SLOTS + slot;
        let first = self.heads[id];
        self.heads[id] = NIL;
        self.clear_bit(level, slot);
        if level == 0 && self.heads[READY] == NIL {
            // A level-0 slot is one tick wide: every entry in it is due now. Splice the
            // whole list onto the (empty) ready list in O(1).
            self.heads[READY] = first;
            self.entries.cells_mut()[first as usize].prev = HEAD_BASE + READY as u32;
            return;
        }
        let mut index = first;
        while index != NIL {
            let next = self.entries.cells()[index as usize].next;
            self.file(index as usize);
            index = next;
        }
    }

    /// Links the (unlinked) entry `index` into the list its deadline belongs to now.
    #[inline]
    fn file(&mut self, index: usize) {
        let deadline = self.entries.cells()[index].deadline;
        let id = if deadline <= self.elapsed {
            READY
        } else {
            // The highest digit in which deadline and e differ (at least digit 0).
            let differ = (self.elapsed ^ deadline) | (SLOTS as u64 - 1);
            let level = ((63 - differ.leading_zeros()) / SLOT_BITS) as usize;
            let slot = (deadline >> (SLOT_BITS * level as u32)) as usize & (SLOTS - 1);
            self.occupied[level] |= 1 << slot;
            self.level_mask |= 1 << level;
            level * SLOTS + slot
        };
        let head = self.heads[id];
        let entries = self.entries.cells_mut();
        entries[index].next = head;
        entries[index].prev = HEAD_BASE + id as u32;
        if head != NIL {
            entries[head as usize].prev = index as u32;
        }
        self.heads[id] = index as u32;
    }

    /// Unlinks `index` if pending, marking it vacant; returns its deadline.
    #[inline]
    fn unlink(&mut self, index: usize) -> Option<u64> {
        let entries = self.entries.cells_mut();
        let TimerEntry {
            deadline,
            next,
            prev,
        } = entries[index];
        if prev == VACANT {
            return None;
        }
        entries[index].prev = VACANT;
        entries[index].next = NIL;
        if next != NIL {
            entries[next as usize].prev = prev;
        }
        if prev >= HEAD_BASE {
            let id = (prev - HEAD_BASE) as usize;
            self.heads[id] = next;
            if next == NIL && id != READY {
                self.clear_bit(id / SLOTS, id % SLOTS);
            }
        } else {
            entries[prev as usize].next = next;
        }
        Some(deadline)
    }

    #[inline]
    fn clear_bit(&mut self, level: usize, slot: usize) {
        self.occupied[level] &= !(1 << slot);
        if self.occupied[level] == 0 {
            self.level_mask &= !(1 << level);
        }
    }
}

/// The first tick of `tick`'s rotation at `level` (`tick` with digits `level` and below zeroed).
#[inline]
fn rotation_start(tick: u64, level: usize) -> u64 {
    let shift = SLOT_BITS * (level as u32 + 1);
    if shift >= 64 {
        0
    } else {
        tick >> shift << shift
    }
}

#[cfg(test)]
mod tests;
