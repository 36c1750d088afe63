//! What a [`PriorityQueue`] tells about itself: lengths, emptiness, capacity, mode, and
//! its `Debug` form. Read-only; approximate while pushes and pops run.

use core::fmt;

use super::{Mode, PriorityQueue, RingStorage};
use crate::priority::Level;
use crate::sync::{Ordering, spin_hint};

impl<T, S: RingStorage<T>> PriorityQueue<T, S> {
    /// The number of items in `level`'s ring. Approximate while pushes and pops run
    /// concurrently (exact when the queue is not shared).
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::{InlinePriorityQueue, Level, Mode, Priority};
    ///
    /// let queue = InlinePriorityQueue::<u8, 4>::new(Mode::Strict);
    /// queue.push(1, Priority::HIGH).unwrap();
    /// assert_eq!(queue.level_len(Level::High), 1);
    /// assert_eq!(queue.level_len(Level::Low), 0);
    /// ```
    #[must_use]
    pub fn level_len(&self, level: Level) -> usize {
        let ring = &self.rings[level.index()];
        loop {
            let tail = ring.tail.load(Ordering::SeqCst);
            let head = ring.head.load(Ordering::SeqCst);
            // Only trust a `head` read between two equal reads of `tail`.
            if ring.tail.load(Ordering::SeqCst) == tail {
                let hix = head & (self.one_lap - 1);
                let tix = tail & (self.one_lap - 1);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.cap - hix + tix
                } else if tail == head {
                    0
                } else {
                    self.cap
                };
            }
            spin_hint();
        }
    }

    /// Whether `level`'s ring is empty. Approximate under concurrency, like
    /// [`level_len`](Self::level_len).
    #[must_use]
    pub fn level_is_empty(&self, level: Level) -> bool {
        self.ring_seen_empty(level.index())
    }

    /// The number of items on all levels. Approximate under concurrency: the four rings
    /// are read one after the other, not at one instant.
    #[must_use]
    pub fn len(&self) -> usize {
        Level::ALL.iter().map(|&level| self.level_len(level)).sum()
    }

    /// Whether every level is empty. Approximate under concurrency, like [`len`](Self::len).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        (0..Level::COUNT).all(|level| self.ring_seen_empty(level))
    }

    /// How many items each level holds at most.
    #[must_use]
    pub fn capacity_per_level(&self) -> usize {
        self.cap
    }

    /// How many items the queue holds at most: four times
    /// [`capacity_per_level`](Self::capacity_per_level).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.cap * Level::COUNT
    }

    /// The mode the queue was built with.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl<T, S: RingStorage<T>> fmt::Debug for PriorityQueue<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityQueue")
            .field("mode", &self.mode)
            .field("capacity_per_level", &self.cap)
            .field("len", &Level::ALL.map(|level| self.level_len(level)))
            .finish()
    }
}
