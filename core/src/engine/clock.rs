//! The engine's clock: instants as 8-byte stamps since the manager's epoch, and their
//! wall-clock times.

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
}

/// Converts the engine's `Instant`s to wall-clock times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) epoch: Instant,
    pub(crate) wall: SystemTime,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
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
        Stamp(NonZeroU64::MIN.saturating_add(nanos))
    }

    /// Now, as a [`Stamp`].
    pub(crate) fn now(&self) -> Stamp {
        self.stamp(Instant::now())
    }

    /// The `Instant` a stamp stands for.
    pub(crate) fn instant(&self, stamp: Stamp) -> Instant {
        self.epoch + Duration::from_nanos(stamp.0.get() - 1)
    }

    pub(crate) fn wall_of(&self, stamp: Stamp) -> SystemTime {
        self.wall + Duration::from_nanos(stamp.0.get() - 1)
    }
}
