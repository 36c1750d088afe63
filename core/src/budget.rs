//! Memory-pool accounting: a byte budget handed out as RAII [`Reservation`]s.
//!
//! errand charges every queued task (its boxed closure or future) and every stored result
//! to a [`MemoryBudget`]. When the budget is spent, submission fails with a typed error and
//! the caller keeps the task: back-pressure instead of unbounded growth.
//!
//! # Protocol
//!
//! 1. **Admission is one CAS.** `try_reserve(n)` loads `used`, computes `used + n` with
//!    `checked_add`, and installs it with a compare-exchange only if it is within the limit;
//!    on a stale read it retries with the value the CAS returned. It never adds first and
//!    undoes after a refusal: a `fetch_add` that overshoots would, for an instant, show a
//!    usage above the limit to every other thread and make them refuse reservations that
//!    fit. So `used <= limit` holds at every point of every interleaving (checked by
//!    `core/tests/loom_budget.rs`).
//! 2. **Release is one `fetch_sub`.** Only a live reservation gives bytes back, and only the
//!    bytes it holds, so `used` is always the sum of the live reservations and never wraps
//!    below zero.
//! 3. **Peak and rejections are statistics.** After a successful admission the new `used` is
//!    folded into `peak` with `fetch_max`; every refusal increments `rejections`. Both are
//!    `Relaxed`: they order nothing, and `peak <= limit` follows from rule 1.
//!
//! The counters are pointer-width (`usize`) atomics, so the budget works on 32-bit targets
//! too, where it can account for at most `usize::MAX` bytes.

use core::fmt;
use core::ops::Deref;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Ordering};

/// A byte budget: reservations are admitted while their sum stays within the limit.
///
/// Reserve with [`try_reserve`](Self::try_reserve) (a [`Reservation`] borrowing the budget)
/// or, with the `alloc` feature, [`MemoryBudget::try_reserve_owned`] (one holding
/// an `Arc`, to store beside a task). Dropping a reservation gives its bytes back.
///
/// # Examples
///
/// ```
/// use errand_core::MemoryBudget;
///
/// let budget = MemoryBudget::new(1024);
/// let task = budget.try_reserve(600).unwrap();
/// assert_eq!(budget.used(), 600);
///
/// // A second task does not fit: the error says why, nothing is taken.
/// let err = budget.try_reserve(500).unwrap_err();
/// assert_eq!(err.to_string(), "memory budget exceeded: 500 bytes requested, 600 of 1024 in use");
///
/// drop(task);
/// assert_eq!(budget.used(), 0);
/// assert_eq!(budget.peak(), 600);
/// assert_eq!(budget.rejections(), 1);
/// ```
#[derive(Debug)]
pub struct MemoryBudget {
    /// Bytes held by live reservations (rule 1, rule 2). Hot: on its own cache line.
    used: CachePadded<AtomicUsize>,
    /// The most `used` has ever been (rule 3).
    peak: AtomicUsize,
    /// Reservations refused (rule 3).
    rejections: AtomicUsize,
    /// The budget in bytes; fixed at construction.
    limit: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none of them in use.
    ///
    /// A `const fn`, so a budget can be a plain `static`.
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::MemoryBudget;
    ///
    /// static PAYLOADS: MemoryBudget = MemoryBudget::new(16 * 1024);
    ///
    /// let held = PAYLOADS.try_reserve(4096).unwrap();
    /// assert_eq!(PAYLOADS.available(), 12 * 1024);
    /// drop(held);
    /// assert_eq!(PAYLOADS.used(), 0);
    /// ```
    #[cfg(not(errand_loom))]
    #[must_use]
    pub const fn new(limit: usize) -> Self {
        Self {
            used: CachePadded::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
            rejections: AtomicUsize::new(0),
            limit,
        }
    }

    /// A budget of `limit` bytes, none of them in use (not `const` under loom, whose
    /// atomics are not).
    #[cfg(errand_loom)]
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            used: CachePadded::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
            rejections: AtomicUsize::new(0),
            limit,
        }
    }

    /// The budget in bytes.
    #[inline]
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held by live reservations right now.
    #[inline]
    #[must_use]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Bytes that could be reserved right now (`limit - used`).
    #[inline]
    #[must_use]
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// The largest `used` has been since construction. Never above [`limit`](Self::limit).
    #[inline]
    #[must_use]
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// How many reservations (and growths) have been refused since construction.
    #[inline]
    #[must_use]
    pub fn rejections(&self) -> usize {
        self.rejections.load(Ordering::Relaxed)
    }

    /// All the counters at once (each read separately: a consistent view only when quiet).
    #[must_use]
    pub fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot {
            limit: self.limit,
            used: self.used(),
            peak: self.peak(),
            rejections: self.rejections(),
        }
    }

    /// Reserves `bytes`, or refuses without blocking if they do not fit.
    ///
    /// A reservation of zero bytes always succeeds. The bytes come back when the
    /// [`Reservation`] is dropped.
    ///
    /// # Errors
    ///
    /// [`BudgetExceeded`] if `used + bytes` would exceed the limit; nothing is reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::MemoryBudget;
    ///
    /// let budget = MemoryBudget::new(100);
    /// let r = budget.try_reserve(100).unwrap();
    /// assert_eq!(r.bytes(), 100);
    /// assert!(budget.try_reserve(1).is_err());
    /// ```
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation<&Self>, BudgetExceeded> {
        self.admit(bytes)?;
        Ok(Reservation {
            budget: self,
            bytes,
        })
    }

    /// Like [`try_reserve`](Self::try_reserve), but the reservation holds an `Arc` of the
    /// budget, so it can live as long as the task it pays for (`'static`). An associated
    /// function (`MemoryBudget::try_reserve_owned(&budget, n)`), like `Arc::clone`.
    ///
    /// # Errors
    ///
    /// [`BudgetExceeded`] if the bytes do not fit; nothing is reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use errand_core::MemoryBudget;
    ///
    /// let budget = Arc::new(MemoryBudget::new(64));
    /// let held = MemoryBudget::try_reserve_owned(&budget, 48).unwrap();
    /// std::thread::spawn(move || drop(held)).join().unwrap();
    /// assert_eq!(budget.used(), 0);
    /// ```
    #[cfg(feature = "alloc")]
    pub fn try_reserve_owned(
        budget: &crate::sync::Arc<Self>,
        bytes: usize,
    ) -> Result<OwnedReservation, BudgetExceeded> {
        budget.admit(bytes)?;
        Ok(Reservation {
            budget: crate::sync::Arc::clone(budget),
            bytes,
        })
    }

    /// Adds `bytes` to `used` if the result stays within the limit (rule 1).
    fn admit(&self, bytes: usize) -> Result<(), BudgetExceeded> {
        let mut current = self.used.load(Ordering::Relaxed);
        loop {
            let next = match current.checked_add(bytes) {
                Some(next) if next <= self.limit => next,
                _ => {
                    self.rejections.fetch_add(1, Ordering::Relaxed);
                    return Err(BudgetExceeded {
                        requested: bytes,
                        used: current,
                        limit: self.limit,
                    });
                }
            };
            // Acquire pairs with the Release of `give_back`, so memory freed by the holder
            // of the bytes happens before they are handed out again.
            match self.used.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // Most admissions set no new peak: a load spares the shared line a
                    // write.
                    if next > self.peak.load(Ordering::Relaxed) {
                        self.peak.fetch_max(next, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back bytes of a reservation that was turned into a count with
    /// [`Reservation::detach`]: for holders that keep many charges beside a budget they
    /// already reach (a slot table inside the budget's owner), without a handle per charge.
    ///
    /// Giving back more than was detached is a logic error: it corrupts the accounting
    /// (and panics in debug builds).
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::MemoryBudget;
    ///
    /// let budget = MemoryBudget::new(100);
    /// let bytes = budget.try_reserve(30).unwrap().detach();
    /// assert_eq!(budget.used(), 30);
    /// budget.release(bytes);
    /// assert_eq!(budget.used(), 0);
    /// ```
    pub fn release(&self, bytes: usize) {
        self.give_back(bytes);
    }

    /// Returns `bytes` held by a live reservation (rule 2).
    fn give_back(&self, bytes: usize) {
        if bytes != 0 {
            let before = self.used.fetch_sub(bytes, Ordering::Release);
            debug_assert!(
                before >= bytes,
                "returned {bytes} bytes, only {before} in use"
            );
        }
    }
}

/// Bytes held from a [`MemoryBudget`]; given back when dropped.
///
/// `B` is how the reservation reaches its budget: `&MemoryBudget` from
/// [`MemoryBudget::try_reserve`], or an `Arc` ([`OwnedReservation`]) from
/// [`MemoryBudget::try_reserve_owned`].
///
/// # Examples
///
/// ```
/// use errand_core::MemoryBudget;
///
/// let budget = MemoryBudget::new(100);
/// let mut r = budget.try_reserve(10).unwrap();
/// r.try_grow(50).unwrap();          // a result arrived: charge it too
/// assert!(r.try_grow(41).is_err()); // 101 would not fit; r still holds 60
/// r.shrink(20);
/// assert_eq!((r.bytes(), budget.used()), (40, 40));
/// ```
#[derive(Debug)]
#[must_use = "dropping a reservation gives its bytes back at once"]
pub struct Reservation<B: Deref<Target = MemoryBudget>> {
    budget: B,
    bytes: usize,
}

/// A [`Reservation`] that owns a handle to its budget, for storing beside a task.
#[cfg(feature = "alloc")]
pub type OwnedReservation = Reservation<crate::sync::Arc<MemoryBudget>>;

impl<B: Deref<Target = MemoryBudget>> Reservation<B> {
    /// The bytes this reservation holds.
    #[inline]
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget the bytes are held from.
    #[inline]
    #[must_use]
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Reserves `more` bytes in addition, under the same rule as
    /// [`MemoryBudget::try_reserve`].
    ///
    /// # Errors
    ///
    /// [`BudgetExceeded`] if they do not fit; the reservation keeps what it held.
    pub fn try_grow(&mut self, more: usize) -> Result<(), BudgetExceeded> {
        self.budget.admit(more)?;
        // Cannot overflow: `admit` checked `used + more`, and `used >= self.bytes`.
        self.bytes += more;
        Ok(())
    }

    /// Keeps the bytes reserved but forgets the reservation, returning how many bytes it
    /// held: the caller now owes them back through [`MemoryBudget::release`].
    #[must_use = "the detached bytes stay reserved until released"]
    pub fn detach(self) -> usize {
        let bytes = self.bytes;
        core::mem::forget(self);
        bytes
    }

    /// Gives back `less` bytes now (all of them if it holds fewer) and keeps the rest.
    pub fn shrink(&mut self, less: usize) {
        let less = less.min(self.bytes);
        self.budget.give_back(less);
        self.bytes -= less;
    }
}

impl<B: Deref<Target = MemoryBudget>> Drop for Reservation<B> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// A reservation refused: the requested bytes would take the budget over its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetExceeded {
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes in use when the request was refused.
    pub used: usize,
    /// The budget's limit.
    pub limit: usize,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory budget exceeded: {} bytes requested, {} of {} in use",
            self.requested, self.used, self.limit
        )
    }
}

impl core::error::Error for BudgetExceeded {}

/// The counters of a [`MemoryBudget`] at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BudgetSnapshot {
    /// The budget in bytes.
    pub limit: usize,
    /// Bytes in use.
    pub used: usize,
    /// The most ever in use.
    pub peak: usize,
    /// Reservations refused so far.
    pub rejections: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_grow_shrink_drop_balance() {
        let budget = MemoryBudget::new(10);
        let mut a = budget.try_reserve(4).unwrap();
        let b = budget.try_reserve(6).unwrap();
        assert_eq!(budget.used(), 10);
        assert_eq!(budget.available(), 0);
        assert!(a.try_grow(1).is_err());
        a.shrink(3);
        assert_eq!(budget.used(), 7);
        a.try_grow(3).unwrap();
        drop(b);
        a.shrink(100);
        assert_eq!((a.bytes(), budget.used()), (0, 0));
        drop(a);
        assert_eq!(
            budget.snapshot(),
            BudgetSnapshot {
                limit: 10,
                used: 0,
                peak: 10,
                rejections: 1
            }
        );
    }

    #[test]
    fn zero_and_huge_requests() {
        let budget = MemoryBudget::new(0);
        assert_eq!(budget.try_reserve(0).unwrap().bytes(), 0);
        let err = budget.try_reserve(usize::MAX).unwrap_err();
        assert_eq!((err.requested, err.used, err.limit), (usize::MAX, 0, 0));

        let full = MemoryBudget::new(usize::MAX);
        let mut r = full.try_reserve(usize::MAX - 1).unwrap();
        assert!(r.try_grow(2).is_err(), "overflowing sum must be refused");
        r.try_grow(1).unwrap();
        assert_eq!(full.used(), usize::MAX);
    }

    // Loom's atomics have no const constructor, so under loom the budget is not const.
    #[cfg(not(errand_loom))]
    #[test]
    fn a_const_budget_starts_like_a_new_one() {
        static BUDGET: MemoryBudget = MemoryBudget::new(10);
        const FRESH: BudgetSnapshot = BudgetSnapshot {
            limit: 10,
            used: 0,
            peak: 0,
            rejections: 0,
        };
        assert_eq!(BUDGET.snapshot(), FRESH);
        assert_eq!(MemoryBudget::new(10).snapshot(), FRESH);
        let held = BUDGET.try_reserve(7).unwrap();
        assert!(BUDGET.try_reserve(4).is_err());
        drop(held);
        assert_eq!(
            BUDGET.snapshot(),
            BudgetSnapshot {
                peak: 7,
                rejections: 1,
                ..FRESH
            }
        );
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn owned_reservation_outlives_the_borrow() {
        let budget = crate::sync::Arc::new(MemoryBudget::new(8));
        let held = MemoryBudget::try_reserve_owned(&budget, 8).unwrap();
        assert!(MemoryBudget::try_reserve_owned(&budget, 1).is_err());
        drop(held);
        assert_eq!(budget.used(), 0);
    }
}
