//! The engine's clock: instants as 8-byte stamps since the manager's epoch, and their
//! wall-clock times.
//!
//! The hot path reads it as nanoseconds since the epoch ([`Clock::now_ns`]): on Linux one
//! `clock_gettime(CLOCK_MONOTONIC)`, the clock `Instant` reads too, without `Instant`'s
//! `Timespec` arithmetic (it costs more than the reading itself on the workers' path).

use core::num::NonZeroU64;
use std::time::{Duration, Instant, SystemTime};

/// An engine instant in 8 bytes: nanoseconds since the manager's epoch, plus one (so
/// `Option<Stamp>` is 8 bytes too, where `Option<Instant>` takes 16). Enough for 584 years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    /// Nanoseconds since the epoch.
    pub(crate) fn nanos(self) -> u64 {
        self.0.get() - 1
    }

    /// The stamp `nanos` after the epoch (saturating).
    pub(crate) fn from_nanos(nanos: u64) -> Self {
        Self(NonZeroU64::MIN.saturating_add(nanos))
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `Instant` reads on Linux).
#[cfg(all(target_os = "linux", not(miri)))]
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// Converts the engine's `Instant`s to wall-clock times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) epoch: Instant,
    pub(crate) wall: SystemTime,
    /// [`monotonic_ns`] at the epoch (read right after it: they agree within a reading).
    #[cfg(all(target_os = "linux", not(miri)))]
    monotonic_epoch: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            #[cfg(all(target_os = "linux", not(miri)))]
            monotonic_epoch: monotonic_ns(),
            // Miri's isolation has no wall clock; snapshots there count from 1970.
            #[cfg(not(miri))]
            wall: SystemTime::now(),
            #[cfg(miri)]
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    pub(crate) fn wall(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.epoch)
    }

    /// `at` as a [`Stamp`] (saturating: before the epoch is the epoch).
    pub(crate) fn stamp(&self, at: Instant) -> Stamp {
        let nanos = u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX - 1);
        Stamp::from_nanos(nanos)
    }

    /// Now, in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        #[cfg(all(target_os = "linux", not(miri)))]
        return monotonic_ns().saturating_sub(self.monotonic_epoch);
        #[cfg(not(all(target_os = "linux", not(miri))))]
        return u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    }

    /// Now, as a [`Stamp`].
    pub(crate) fn now(&self) -> Stamp {
        Stamp::from_nanos(self.now_ns())
    }

    /// The `Instant` a stamp stands for.
    pub(crate) fn instant(&self, stamp: Stamp) -> Instant {
        self.epoch + Duration::from_nanos(stamp.0.get() - 1)
    }

    pub(crate) fn wall_of(&self, stamp: Stamp) -> SystemTime {
        self.wall + Duration::from_nanos(stamp.0.get() - 1)
    }
}
