//! How long a worker that ran out of work spins before it parks (parking rule 5 in
//! `crate::park` says who may spin; this says for how long).
//!
//! A spin pays when work arrives while it polls: the producer skips a futex wake and the
//! worker skips a reschedule (tens of µs on the 2-core machine of BENCHMARKS.md). It
//! costs when nothing comes: the spinner holds a core for the whole spin, and on a
//! machine with as many busy threads as cores that is the core a woken submitter — the
//! thread waiting on the task's handle — needed. Measured there (issue 15): a submitter
//! awaiting one task at a time got its result back 50 µs late, the full fixed spin, while
//! the task itself had started as fast as a bare `tokio::spawn`'s.
//!
//! So on the async adapters, whose spinner yields to its executor and so keeps its OS
//! thread, the length adapts to what the last spins found, per worker, with no shared
//! state (errand-threads' spinner yields its OS thread between rounds and keeps the
//! fixed length):
//!
//! 1. A spin that found work after polling for a while (not on its first round, where
//!    the work that woke the worker is found) shows spinning pays: the next one gets the
//!    full [`SpinBudget::FULL`].
//! 2. A spin that ran out its length finding nothing halves the next one's; below
//!    [`SpinBudget::FLOOR`] the next is a single round of polls (rule 5's look through
//!    the spinning slot, which a woken worker always takes).
//! 3. A worker woken less than [`SpinBudget::FULL`] after it parked would have caught
//!    that work by spinning: the next spin gets the full length again.
//!
//! Under a stream of submissions the spins keep finding work and stay full; one task at a
//! time, or a burst followed by quiet, and after a few empty spins the workers park at
//! once.

use std::time::Duration;

/// How a spin ended, for [`SpinBudget::spun`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Spun {
    /// Work on the first round (what woke the worker, or work already queued): says
    /// nothing about whether waiting pays.
    AtOnce,
    /// Work that came while the spin polled.
    Waited,
    /// Nothing within the spin's length.
    Nothing,
}

/// The length of a worker's next spin (the module docs' rules).
#[derive(Clone, Copy, Debug)]
pub(super) struct SpinBudget {
    next: Duration,
}

impl SpinBudget {
    /// The longest spin: long enough to catch the next push of a busy submitter, short
    /// enough that an idle pool burns at most one core for this long after its last task.
    pub(super) const FULL: Duration = Duration::from_micros(50);
    /// Below this the next spin is one round (rule 2).
    pub(super) const FLOOR: Duration = Duration::from_micros(2);

    pub(super) const fn new() -> Self {
        Self { next: Self::FULL }
    }

    /// How long the next spin may poll; zero means one round.
    pub(super) fn limit(&self) -> Duration {
        self.next
    }

    /// Whether the next spin is shorter than [`FULL`](Self::FULL) (only then can rule 3
    /// change anything).
    pub(super) fn is_short(&self) -> bool {
        self.next < Self::FULL
    }

    /// Rules 1 and 2.
    pub(super) fn spun(&mut self, how: Spun) {
        match how {
            Spun::AtOnce => {}
            Spun::Waited => self.next = Self::FULL,
            Spun::Nothing => {
                let half = self.next / 2;
                self.next = if half < Self::FLOOR {
                    Duration::ZERO
                } else {
                    half
                };
            }
        }
    }

    /// Rule 3: the worker was parked for `parked` before a wake-up.
    pub(super) fn woke_after(&mut self, parked: Duration) {
        if parked < Self::FULL {
            self.next = Self::FULL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn empty_spins_halve_down_to_one_round() {
        let mut budget = SpinBudget::new();
        let mut lengths = Vec::from([budget.limit()]);
        for _ in 0..6 {
            budget.spun(Spun::Nothing);
            lengths.push(budget.limit());
        }
        let micros: Vec<u128> = lengths.iter().map(|d| d.as_nanos()).collect();
        assert_eq!(
            micros,
            [50_000, 25_000, 12_500, 6_250, 3_125, 0, 0],
            "halved while at least FLOOR, then one round"
        );
    }

    #[test]
    fn work_found_at_once_changes_nothing() {
        let mut budget = SpinBudget::new();
        budget.spun(Spun::Nothing);
        budget.spun(Spun::AtOnce);
        assert_eq!(budget.limit(), SpinBudget::FULL / 2);
    }

    #[test]
    fn work_that_came_while_spinning_restores_the_full_spin() {
        let mut budget = SpinBudget::new();
        for _ in 0..10 {
            budget.spun(Spun::Nothing);
        }
        assert_eq!(budget.limit(), Duration::ZERO);
        budget.spun(Spun::Waited);
        assert_eq!(budget.limit(), SpinBudget::FULL);
    }

    #[test]
    fn a_quick_wake_up_restores_the_full_spin_a_slow_one_does_not() {
        let mut budget = SpinBudget::new();
        for _ in 0..10 {
            budget.spun(Spun::Nothing);
        }
        budget.woke_after(Duration::from_micros(500));
        assert_eq!(budget.limit(), Duration::ZERO);
        budget.woke_after(Duration::from_micros(20));
        assert_eq!(budget.limit(), SpinBudget::FULL);
    }
}
