//! Retry and backoff math: how many times to retry a failed task, and how long to wait.
//!
//! A [`RetryPolicy`] is validated once, when it is built; after that every computation is
//! integer arithmetic on nanoseconds (`u64`), saturating, so no input can panic, overflow or
//! depend on the platform's floating point. The multiplier is given as an `f64` (the guide's
//! `backoff_multiplier=2`) and converted once into 32.32 fixed point.

use core::fmt;
use core::time::Duration;

/// 1.0 in the 32.32 fixed point the multiplier is kept in.
const FX_ONE: u128 = 1 << 32;
/// The largest multiplier accepted. Larger ones reach any cap in a retry or two anyway.
pub const MAX_MULTIPLIER: f64 = 65_536.0;

/// Converts a `Duration` to whole nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How retries of one task are spread in time.
///
/// # The delays
///
/// Retry `n` (the first retry is `n = 1`) has the *base delay*
/// `t(n) = min(cap, initial × multiplierⁿ⁻¹)`, so `initial = 5 s, multiplier = 2` waits
/// 5 s, 10 s, 20 s… [`Jitter`] then spreads the retries of many tasks apart, following the
/// formulas of Marc Brooker's "Exponential Backoff and Jitter" (AWS Architecture Blog, 2015),
/// where `random(a, b)` is uniform over the integers `a..=b`:
///
/// | jitter | delay of retry `n` |
/// |---|---|
/// | [`None`](Jitter::None) | `t(n)` |
/// | [`Full`](Jitter::Full) | `random(0, t(n))` |
/// | [`Equal`](Jitter::Equal) | `t(n)/2 + random(0, t(n)/2)` (integer halves; `t(n) - t(n)/2` for the upper one) |
/// | [`Decorrelated`](Jitter::Decorrelated) | `min(cap, random(initial, 3 × previous))`, `previous` starting at `initial` |
///
/// Decorrelated jitter grows by its own factor of 3, as in the article; the multiplier does
/// not apply to it. Randomness comes from a [`RandomSource`] the caller passes in, so a
/// given seed always yields the same delays ([`SplitMix64`] is provided).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Jitter {
    /// Exactly the base delay.
    #[default]
    None,
    /// Uniform between zero and the base delay.
    Full,
    /// Half the base delay, plus uniform up to the other half.
    Equal,
    /// Uniform between the initial delay and three times the previous delay, capped.
    Decorrelated,
}

/// What an error handler decides about a failed attempt.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_core::RetryDecision;
///
/// // The guide's custom handler: retry connection errors, fail validation errors.
/// fn decide(is_connection_error: bool) -> RetryDecision {
///     if is_connection_error { RetryDecision::Retry } else { RetryDecision::Fail }
/// }
/// assert_eq!(decide(false), RetryDecision::Fail);
/// let _later = RetryDecision::RetryAfter(Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RetryDecision {
    /// Retry after the delay the task's [`RetryPolicy`] gives, if it has retries left.
    Retry,
    /// Retry after exactly this delay (still counted against the policy's retries).
    RetryAfter(Duration),
    /// Do not retry: the task fails with this error.
    Fail,
}

/// A validated retry policy: how many retries, and the delays between them.
///
/// Build one with [`RetryPolicy::builder`]; [`RetryPolicy::none`] never retries. Per task,
/// [`RetryPolicy::backoff`] starts the sequence of delays.
///
/// # Examples
///
/// The guide's `max_retries=3, retry_delay=5, backoff_multiplier=2`:
///
/// ```
/// use std::time::Duration;
/// use errand_core::{RetryPolicy, SplitMix64};
///
/// let policy = RetryPolicy::builder()
///     .max_retries(3)
///     .initial_delay(Duration::from_secs(5))
///     .multiplier(2.0)
///     .build()
///     .unwrap();
///
/// let mut rng = SplitMix64::new(7);
/// let mut backoff = policy.backoff();
/// let delays: Vec<_> = std::iter::from_fn(|| backoff.next_delay(&mut rng)).collect();
/// assert_eq!(delays, [5, 10, 20].map(Duration::from_secs));
/// ```
///
/// Invalid policies are refused with a reason:
///
/// ```
/// use errand_core::RetryPolicy;
///
/// let err = RetryPolicy::builder().multiplier(0.5).build().unwrap_err();
/// assert_eq!(err.to_string(), "invalid retry policy: multiplier 0.5 is below 1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(into = "RetryPolicyBuilder", try_from = "RetryPolicyBuilder")
)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_ns: u64,
    /// The multiplier in 32.32 fixed point, `>= 1 << 32`.
    multiplier_fx: u64,
    max_delay_ns: u64,
    jitter: Jitter,
}

impl RetryPolicy {
    /// A policy that never retries.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            max_retries: 0,
            initial_ns: 0,
            multiplier_fx: FX_ONE as u64,
            max_delay_ns: 0,
            jitter: Jitter::None,
        }
    }

    /// Starts building a policy; see [`RetryPolicyBuilder`] for the defaults.
    #[must_use]
    pub const fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::new()
    }

    /// How many times a failed task is retried (attempts = retries + 1).
    #[must_use]
    pub const fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The delay before the first retry.
    #[must_use]
    pub const fn initial_delay(&self) -> Duration {
        Duration::from_nanos(self.initial_ns)
    }

    /// The factor each delay grows by, as stored (32.32 fixed point, so within 2⁻³² of the
    /// value given to the builder).
    #[must_use]
    pub fn multiplier(&self) -> f64 {
        self.multiplier_fx as f64 / FX_ONE as f64
    }

    /// The cap no base delay exceeds.
    #[must_use]
    pub const fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.max_delay_ns)
    }

    /// How delays are spread.
    #[must_use]
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The base delay of retry `retry` (the first retry is 1), in nanoseconds, before
    /// jitter: `min(cap, initial × multiplier^(retry-1))`. Retry 0 has no delay.
    ///
    /// Computed by square-and-multiply in fixed point: `O(log retry)`, saturating; a
    /// power-of-two multiplier (such as the default 2.0) takes an exact shift instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use errand_core::RetryPolicy;
    ///
    /// let p = RetryPolicy::builder()
    ///     .initial_delay(Duration::from_millis(100))
    ///     .max_delay(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(p.base_delay_ns(1), 100_000_000);
    /// assert_eq!(p.base_delay_ns(4), 800_000_000);
    /// assert_eq!(p.base_delay_ns(u32::MAX), 1_000_000_000); // capped, no overflow
    /// ```
    #[must_use]
    pub fn base_delay_ns(&self, retry: u32) -> u64 {
        if retry == 0 || self.initial_ns == 0 {
            return 0;
        }
        if let Some(bits) = self.shift_per_retry() {
            // A power-of-two multiplier (2.0 is the default) is a shift, and exact: the
            // same value as the general path below, in a few instructions.
            let shift = u64::from(bits) * u64::from(retry - 1);
            let fits = shift <= u64::from(self.initial_ns.leading_zeros());
            let delay = if fits {
                self.initial_ns << shift
            } else {
                u64::MAX
            };
            return delay.min(self.max_delay_ns);
        }
        self.base_delay_general(retry)
    }

    /// `log2(multiplier)` when the multiplier is a power of two (1, 2, 4, …).
    fn shift_per_retry(&self) -> Option<u32> {
        let m = self.multiplier_fx;
        (m.is_power_of_two() && u128::from(m) >= FX_ONE).then(|| m.trailing_zeros() - 32)
    }

    /// [`base_delay_ns`](Self::base_delay_ns) for any multiplier, by square-and-multiply.
    fn base_delay_general(&self, retry: u32) -> u64 {
        let factor = pow_fx(u128::from(self.multiplier_fx), retry - 1);
        let scaled = u128::from(self.initial_ns).saturating_mul(factor) >> 32;
        u64::try_from(scaled)
            .unwrap_or(u64::MAX)
            .min(self.max_delay_ns)
    }

    /// A fresh sequence of delays for one task.
    #[must_use]
    pub const fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            retries: 0,
            previous_ns: self.initial_ns,
        }
    }
}

impl Default for RetryPolicy {
    /// The builder's defaults: 3 retries, 1 s, ×2, capped at 1 h, no jitter.
    fn default() -> Self {
        // The builder's defaults, already valid (pinned by a unit test).
        Self {
            max_retries: 3,
            initial_ns: 1_000_000_000,
            multiplier_fx: 2 << 32,
            max_delay_ns: 3_600_000_000_000,
            jitter: Jitter::None,
        }
    }
}

/// `base^exp` for a 32.32 fixed-point `base >= 1`, saturating at `u64::MAX` as an integer
/// part (ample: any delay times that saturates `u64` nanoseconds).
fn pow_fx(mut base: u128, mut exp: u32) -> u128 {
    const SATURATED: u128 = (u64::MAX as u128) << 32;
    let mul = |a: u128, b: u128| {
        a.checked_mul(b)
            .map_or(SATURATED, |p| (p >> 32).min(SATURATED))
    };
    let mut acc = FX_ONE;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        exp >>= 1;
        if exp > 0 {
            base = mul(base, base);
        }
    }
    acc
}

/// Builds a [`RetryPolicy`]; [`build`](Self::build) validates it.
///
/// Defaults: 3 retries, initial delay 1 s, multiplier 2.0, max delay 1 hour, no jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct RetryPolicyBuilder {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Growth factor of the delay per retry (finite, `1.0..=MAX_MULTIPLIER`).
    pub multiplier: f64,
    /// Cap on the base delay (not below `initial_delay`).
    pub max_delay: Duration,
    /// How delays are spread.
    pub jitter: Jitter,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicyBuilder {
    /// The defaults.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            max_retries: 3,
            initial_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: Jitter::None,
        }
    }

    /// Sets the number of retries.
    #[must_use]
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the delay before the first retry.
    #[must_use]
    pub const fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets the growth factor.
    #[must_use]
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the cap on the base delay.
    #[must_use]
    pub const fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = cap;
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// [`InvalidPolicy`] if the multiplier is NaN, infinite, below 1 or above
    /// [`MAX_MULTIPLIER`], or the cap is below the initial delay.
    pub fn build(self) -> Result<RetryPolicy, InvalidPolicy> {
        let m = self.multiplier;
        let kind = if m.is_nan() || m.is_infinite() {
            Some(InvalidPolicyKind::MultiplierNotFinite)
        } else if m < 1.0 {
            Some(InvalidPolicyKind::MultiplierBelowOne)
        } else if m > MAX_MULTIPLIER {
            Some(InvalidPolicyKind::MultiplierTooLarge)
        } else if self.max_delay < self.initial_delay {
            Some(InvalidPolicyKind::CapBelowInitial)
        } else {
            None
        };
        if let Some(kind) = kind {
            return Err(InvalidPolicy {
                kind,
                multiplier: m,
                initial_delay: self.initial_delay,
                max_delay: self.max_delay,
            });
        }
        Ok(RetryPolicy {
            max_retries: self.max_retries,
            initial_ns: duration_ns(self.initial_delay),
            // In range 2^32..=2^48 after the checks above; `as` rounds toward zero.
            multiplier_fx: (m * FX_ONE as f64) as u64,
            max_delay_ns: duration_ns(self.max_delay),
            jitter: self.jitter,
        })
    }
}

impl From<RetryPolicy> for RetryPolicyBuilder {
    fn from(p: RetryPolicy) -> Self {
        Self {
            max_retries: p.max_retries,
            initial_delay: p.initial_delay(),
            multiplier: p.multiplier(),
            max_delay: p.max_delay(),
            jitter: p.jitter,
        }
    }
}

impl TryFrom<RetryPolicyBuilder> for RetryPolicy {
    type Error = InvalidPolicy;
    fn try_from(b: RetryPolicyBuilder) -> Result<Self, InvalidPolicy> {
        b.build()
    }
}

/// The delays of one task's retries, in order; carries the state decorrelated jitter needs.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_core::{Jitter, RetryPolicy, SplitMix64};
///
/// let policy = RetryPolicy::builder()
///     .max_retries(5)
///     .initial_delay(Duration::from_millis(10))
///     .max_delay(Duration::from_millis(100))
///     .jitter(Jitter::Full)
///     .build()
///     .unwrap();
/// let run = |seed| {
///     let (mut rng, mut b) = (SplitMix64::new(seed), policy.backoff());
///     std::iter::from_fn(move || b.next_delay(&mut rng)).collect::<Vec<_>>()
/// };
/// assert_eq!(run(42), run(42)); // deterministic for a seed
/// assert_eq!(run(42).len(), 5);
/// assert!(run(42).iter().all(|d| *d <= Duration::from_millis(100)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    policy: RetryPolicy,
    retries: u32,
    previous_ns: u64,
}

impl Backoff {
    /// Retries handed out so far.
    #[must_use]
    pub const fn retries(&self) -> u32 {
        self.retries
    }

    /// Whether another retry is allowed.
    #[must_use]
    pub const fn has_retries_left(&self) -> bool {
        self.retries < self.policy.max_retries
    }

    /// The delay before the next retry in nanoseconds, or `None` once the policy's retries
    /// are spent.
    pub fn next_delay_ns<R: RandomSource + ?Sized>(&mut self, rng: &mut R) -> Option<u64> {
        if !self.has_retries_left() {
            return None;
        }
        self.retries += 1;
        let p = &self.policy;
        let t = p.base_delay_ns(self.retries);
        let delay = match p.jitter {
            Jitter::None => t,
            Jitter::Full => random_between(rng, 0, t),
            Jitter::Equal => t / 2 + random_between(rng, 0, t - t / 2),
            Jitter::Decorrelated => {
                let high = self.previous_ns.saturating_mul(3).max(p.initial_ns);
                random_between(rng, p.initial_ns, high).min(p.max_delay_ns)
            }
        };
        self.previous_ns = delay;
        Some(delay)
    }

    /// [`next_delay_ns`](Self::next_delay_ns) as a `Duration`.
    pub fn next_delay<R: RandomSource + ?Sized>(&mut self, rng: &mut R) -> Option<Duration> {
        self.next_delay_ns(rng).map(Duration::from_nanos)
    }
}

/// A source of random 64-bit words for jitter. Inject one to make delays reproducible.
pub trait RandomSource {
    /// The next uniformly distributed word.
    fn next_u64(&mut self) -> u64;
}

/// Sebastiano Vigna's SplitMix64: tiny, fast, statistically fine for jitter, and fully
/// determined by its seed. Not for cryptography.
///
/// # Examples
///
/// ```
/// use errand_core::{RandomSource, SplitMix64};
///
/// let (mut a, mut b) = (SplitMix64::new(1), SplitMix64::new(1));
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Uniform over `low..=high` (`low` if `high <= low`), without modulo bias: Lemire's
/// multiply-and-reject method ("Fast Random Integer Generation in an Interval", 2019).
fn random_between<R: RandomSource + ?Sized>(rng: &mut R, low: u64, high: u64) -> u64 {
    if high <= low {
        return low;
    }
    let span = high - low;
    if span == u64::MAX {
        return rng.next_u64();
    }
    let range = span + 1;
    // Reject the `2^64 mod range` lowest products so every outcome is equally likely.
    let threshold = range.wrapping_neg() % range;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(range);
        if (product as u64) >= threshold {
            return low + (product >> 64) as u64;
        }
    }
}

/// Why a retry policy was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidPolicyKind {
    /// The multiplier is NaN or infinite.
    MultiplierNotFinite,
    /// The multiplier is below 1: delays would shrink.
    MultiplierBelowOne,
    /// The multiplier is above [`MAX_MULTIPLIER`].
    MultiplierTooLarge,
    /// The cap (max delay) is below the initial delay.
    CapBelowInitial,
}

/// A retry policy refused by [`RetryPolicyBuilder::build`], with the offending values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InvalidPolicy {
    kind: InvalidPolicyKind,
    multiplier: f64,
    initial_delay: Duration,
    max_delay: Duration,
}

impl InvalidPolicy {
    /// What was wrong.
    #[must_use]
    pub const fn kind(&self) -> InvalidPolicyKind {
        self.kind
    }
}

impl fmt::Display for InvalidPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid retry policy: ")?;
        match self.kind {
            InvalidPolicyKind::MultiplierNotFinite => {
                write!(f, "multiplier {} is not a finite number", self.multiplier)
            }
            InvalidPolicyKind::MultiplierBelowOne => {
                write!(f, "multiplier {} is below 1", self.multiplier)
            }
            InvalidPolicyKind::MultiplierTooLarge => write!(
                f,
                "multiplier {} is above the maximum {MAX_MULTIPLIER}",
                self.multiplier
            ),
            InvalidPolicyKind::CapBelowInitial => write!(
                f,
                "max delay {:?} is below the initial delay {:?}",
                self.max_delay, self.initial_delay
            ),
        }
    }
}

impl core::error::Error for InvalidPolicy {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that replays fixed words, to pin exact jitter outcomes.
    struct Fixed(u64);
    impl RandomSource for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    /// The shift taken for power-of-two multipliers gives exactly what square-and-multiply
    /// gives, saturation and cap included.
    #[test]
    fn power_of_two_shift_matches_the_general_path() {
        let initials = [1, 7, 100_000_000, 1 << 40, u64::MAX / 3, u64::MAX];
        let retries = (1..=70).chain([100, 1_000, u32::MAX - 1, u32::MAX]);
        let retries: std::vec::Vec<u32> = retries.collect();
        for bits in 0..=16_u32 {
            for initial_ns in initials {
                for max_delay_ns in [initial_ns, initial_ns.saturating_mul(1000), u64::MAX] {
                    let policy = RetryPolicy {
                        max_retries: 3,
                        initial_ns,
                        multiplier_fx: (FX_ONE as u64) << bits,
                        max_delay_ns,
                        jitter: Jitter::None,
                    };
                    assert_eq!(policy.shift_per_retry(), Some(bits));
                    for &retry in &retries {
                        assert_eq!(
                            policy.base_delay_ns(retry),
                            policy.base_delay_general(retry),
                            "2^{bits}, initial {initial_ns}, cap {max_delay_ns}, retry {retry}"
                        );
                    }
                }
            }
        }
        let non_power = RetryPolicy {
            multiplier_fx: 3 << 31,
            ..policy(Jitter::None)
        };
        assert_eq!(non_power.shift_per_retry(), None);
    }

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy::builder()
            .max_retries(4)
            .initial_delay(Duration::from_nanos(100))
            .multiplier(2.0)
            .max_delay(Duration::from_nanos(500))
            .jitter(jitter)
            .build()
            .unwrap()
    }

    #[test]
    fn base_delays_grow_and_cap() {
        let p = policy(Jitter::None);
        let got: [u64; 5] = core::array::from_fn(|i| p.base_delay_ns(i as u32));
        assert_eq!(got, [0, 100, 200, 400, 500]);
        let mut rng = Fixed(0);
        let mut b = p.backoff();
        let seq: [Option<u64>; 5] = core::array::from_fn(|_| b.next_delay_ns(&mut rng));
        assert_eq!(seq, [Some(100), Some(200), Some(400), Some(500), None]);
    }

    #[test]
    fn jitter_extremes() {
        // The word 2^32 draws the bottom of every small range, u64::MAX the top.
        for (word, full, equal) in [(1 << 32, 0, 50), (u64::MAX, 100, 100)] {
            let mut rng = Fixed(word);
            assert_eq!(
                policy(Jitter::Full).backoff().next_delay_ns(&mut rng),
                Some(full)
            );
            assert_eq!(
                policy(Jitter::Equal).backoff().next_delay_ns(&mut rng),
                Some(equal)
            );
        }
        let mut top = Fixed(u64::MAX);
        let mut b = policy(Jitter::Decorrelated).backoff();
        let seq: [Option<u64>; 3] = core::array::from_fn(|_| b.next_delay_ns(&mut top));
        assert_eq!(seq, [Some(300), Some(500), Some(500)]);
    }

    #[test]
    fn fractional_multiplier_and_saturation() {
        let p = RetryPolicy::builder()
            .initial_delay(Duration::from_nanos(1000))
            .multiplier(1.5)
            .max_delay(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(p.base_delay_ns(3), 2250);
        assert_eq!(p.base_delay_ns(u32::MAX), u64::MAX);
        assert_eq!(p.multiplier(), 1.5);
    }

    #[test]
    fn invalid_policies_are_named() {
        let b = RetryPolicy::builder();
        let kind = |b: RetryPolicyBuilder| b.build().unwrap_err().kind();
        assert_eq!(
            kind(b.multiplier(f64::NAN)),
            InvalidPolicyKind::MultiplierNotFinite
        );
        assert_eq!(
            kind(b.multiplier(-2.0)),
            InvalidPolicyKind::MultiplierBelowOne
        );
        assert_eq!(
            kind(b.multiplier(1e9)),
            InvalidPolicyKind::MultiplierTooLarge
        );
        assert_eq!(
            kind(b.max_delay(Duration::ZERO)),
            InvalidPolicyKind::CapBelowInitial
        );
        assert!(b.multiplier(1.0).build().is_ok());
        assert!(b.multiplier(MAX_MULTIPLIER).build().is_ok());
    }

    #[test]
    fn default_is_the_builders_default() {
        assert_eq!(
            Ok(RetryPolicy::default()),
            RetryPolicyBuilder::new().build()
        );
    }

    #[test]
    fn splitmix_matches_the_reference_implementation() {
        // Vigna's splitmix64.c, seed 1234567: the first outputs it prints.
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(r.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn lemire_is_within_bounds() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..1000 {
            let v = random_between(&mut rng, 10, 13);
            assert!((10..=13).contains(&v));
        }
        assert_eq!(random_between(&mut rng, 7, 7), 7);
        assert_eq!(random_between(&mut rng, 9, 2), 9);
    }
}
