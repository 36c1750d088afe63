//! Task priorities and the four queue levels they map onto.
//!
//! A [`Priority`] is any `u8`; the guide names four of them ([`Priority::LOW`] = 1,
//! [`Priority::NORMAL`] = 5, [`Priority::HIGH`] = 10, [`Priority::CRITICAL`] = 20). The
//! [`PriorityQueue`](crate::PriorityQueue) keeps one ring per [`Level`], and
//! [`Priority::level`] puts every `u8` on one of them:
//!
//! | priorities  | level                 | holds the named priority |
//! |-------------|-----------------------|--------------------------|
//! | `0..=2`     | [`Level::Low`]        | `LOW` (1)                |
//! | `3..=7`     | [`Level::Normal`]     | `NORMAL` (5)             |
//! | `8..=14`    | [`Level::High`]       | `HIGH` (10)              |
//! | `15..=255`  | [`Level::Critical`]   | `CRITICAL` (20)          |
//!
//! The mapping is monotonic (a higher priority never lands on a lower level) and keeps the
//! four named priorities on four distinct, strictly ordered levels.

use core::fmt;

/// How urgent a task is: any `u8`, higher runs first.
///
/// Every value is valid; [`level`](Priority::level) maps it onto one of the four queue
/// [`Level`]s. The default is [`Priority::NORMAL`].
///
/// # Examples
///
/// ```
/// use errand_core::{Level, Priority};
///
/// assert_eq!(Priority::HIGH.level(), Level::High);
/// assert_eq!(Priority(200).level(), Level::Critical);
/// assert!(Priority::CRITICAL > Priority::LOW);
/// assert_eq!(Priority::NORMAL.to_string(), "normal");
/// assert_eq!(Priority(7).to_string(), "7");
/// assert_eq!(Priority::default(), Priority::NORMAL);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Priority(pub u8);

impl Priority {
    /// Background work that may wait: 1.
    pub const LOW: Priority = Priority(1);
    /// The default: 5.
    pub const NORMAL: Priority = Priority(5);
    /// Work that should overtake normal tasks: 10.
    pub const HIGH: Priority = Priority(10);
    /// Work that overtakes everything else: 20.
    pub const CRITICAL: Priority = Priority(20);

    /// The queue level this priority is served from: `0..=2` low, `3..=7` normal,
    /// `8..=14` high, `15..=255` critical (monotonic, and each named priority on its own
    /// level).
    #[inline]
    #[must_use]
    pub const fn level(self) -> Level {
        match self.0 {
            0..=2 => Level::Low,
            3..=7 => Level::Normal,
            8..=14 => Level::High,
            _ => Level::Critical,
        }
    }

    /// The name of a named priority (`"low"`, `"normal"`, `"high"`, `"critical"`), `None`
    /// for any other value.
    #[inline]
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        match self {
            Priority::LOW => Some("low"),
            Priority::NORMAL => Some("normal"),
            Priority::HIGH => Some("high"),
            Priority::CRITICAL => Some("critical"),
            _ => None,
        }
    }
}

impl Default for Priority {
    #[inline]
    fn default() -> Self {
        Priority::NORMAL
    }
}

impl From<u8> for Priority {
    #[inline]
    fn from(value: u8) -> Self {
        Priority(value)
    }
}

impl From<Level> for Priority {
    /// The named priority of a level (`Level::High` gives `Priority::HIGH`).
    #[inline]
    fn from(level: Level) -> Self {
        level.priority()
    }
}

impl fmt::Display for Priority {
    /// Named priorities print their name, others their number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => fmt::Display::fmt(&self.0, f),
        }
    }
}

/// One of the four queue levels, from [`Low`](Level::Low) (index 0) to
/// [`Critical`](Level::Critical) (index 3).
///
/// # Examples
///
/// ```
/// use errand_core::{Level, Priority};
///
/// assert_eq!(Level::ALL.map(Level::index), [0, 1, 2, 3]);
/// assert_eq!(Level::Critical.weight(), 20);
/// assert_eq!(Level::Normal.priority(), Priority::NORMAL);
/// assert_eq!(Level::from_index(2), Some(Level::High));
/// assert_eq!(Level::High.to_string(), "high");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum Level {
    /// Priorities `0..=2`.
    Low = 0,
    /// Priorities `3..=7`.
    Normal = 1,
    /// Priorities `8..=14`.
    High = 2,
    /// Priorities `15..=255`.
    Critical = 3,
}

impl Level {
    /// The number of levels.
    pub const COUNT: usize = 4;

    /// Every level, lowest first (so `Level::ALL[l.index()] == l`).
    pub const ALL: [Level; Level::COUNT] =
        [Level::Low, Level::Normal, Level::High, Level::Critical];

    /// The level's position, `0` (low) to `3` (critical).
    #[inline]
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The level at `index`, `None` when `index > 3`.
    #[inline]
    #[must_use]
    pub const fn from_index(index: usize) -> Option<Level> {
        match index {
            0 => Some(Level::Low),
            1 => Some(Level::Normal),
            2 => Some(Level::High),
            3 => Some(Level::Critical),
            _ => None,
        }
    }

    /// The named priority that lives on this level.
    #[inline]
    #[must_use]
    pub const fn priority(self) -> Priority {
        match self {
            Level::Low => Priority::LOW,
            Level::Normal => Priority::NORMAL,
            Level::High => Priority::HIGH,
            Level::Critical => Priority::CRITICAL,
        }
    }

    /// The level's share in weighted mode: its named priority's value (1, 5, 10, 20), so
    /// out of every 36 pops of a busy weighted queue, 20 serve critical, 10 high, 5 normal
    /// and 1 low.
    #[inline]
    #[must_use]
    pub const fn weight(self) -> u32 {
        self.priority().0 as u32
    }

    /// The level's lowercase name (`"low"`, `"normal"`, `"high"`, `"critical"`).
    #[inline]
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Normal => "normal",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn mapping_matches_the_table() {
        for p in 0..=u8::MAX {
            let expected = match p {
                0..=2 => Level::Low,
                3..=7 => Level::Normal,
                8..=14 => Level::High,
                _ => Level::Critical,
            };
            assert_eq!(Priority(p).level(), expected, "priority {p}");
        }
    }

    #[test]
    fn mapping_is_monotonic_and_keeps_named_priorities_apart() {
        for p in 0..u8::MAX {
            assert!(Priority(p).level() <= Priority(p + 1).level());
        }
        for level in Level::ALL {
            assert_eq!(level.priority().level(), level);
            assert_eq!(Level::from_index(level.index()), Some(level));
            assert_eq!(Priority::from(level), level.priority());
        }
        assert_eq!(Level::from_index(4), None);
    }

    #[test]
    fn weights_sum_to_36() {
        let sum: u32 = Level::ALL.iter().map(|l| l.weight()).sum();
        assert_eq!(sum, 36);
    }

    #[test]
    fn display_names_or_numbers() {
        assert_eq!(Priority::LOW.to_string(), "low");
        assert_eq!(Priority::CRITICAL.to_string(), "critical");
        assert_eq!(Priority(0).to_string(), "0");
        assert_eq!(Priority(255).to_string(), "255");
        assert_eq!(Level::Critical.to_string(), "critical");
    }

    #[test]
    fn serde_round_trip() {
        let json = serde_json::to_string(&Priority::HIGH).unwrap();
        assert_eq!(json, "10");
        assert_eq!(
            serde_json::from_str::<Priority>(&json).unwrap(),
            Priority::HIGH
        );
        let json = serde_json::to_string(&Level::Normal).unwrap();
        assert_eq!(serde_json::from_str::<Level>(&json).unwrap(), Level::Normal);
    }
}
