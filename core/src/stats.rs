//! Statistics without allocation: atomic counters and a log-linear latency histogram.
//!
//! - [`Counter`]: a pointer-width atomic counter with `Relaxed` increments.
//! - [`Histogram`]: fixed buckets over `u64` nanoseconds, recorded with one `Relaxed`
//!   `fetch_add`; [`Histogram::snapshot`] copies it into a plain [`HistogramSnapshot`]
//!   (a fixed array, no heap) that answers count, min, max, mean and percentiles.
//!
//! # Bucket layout and error bound
//!
//! Values `0..16` each have their own bucket. Every power of two `[2^e, 2^(e+1))` with
//! `e >= 4` is split into `16 = 2^k` (`k = 4`) equal sub-buckets of width `2^(e-4)`: the
//! layout of HdrHistogram with one significant hex digit. That makes `16 + 60 * 16 = 976`
//! buckets, covering all of `u64` with no overflow bucket.
//!
//! A snapshot reports a value by the **midpoint** of the bucket that holds it (buckets
//! below 16 are exact). Any `v` in a bucket `[low, high]` of width `w = 2^(e-4)` has
//! `v >= low >= 2^e = 16 w`, and the midpoint is within `w / 2` of it, so:
//!
//! > `|reported - v| <= v / 32`: a relative error of at most **3.125 %** (`2^-(k+1)`).
//!
//! Percentiles use the nearest-rank definition (the `ceil(q * n)`-th smallest sample,
//! at least the first), and the histogram finds the bucket holding exactly that sample,
//! so a reported percentile is within 3.125 % of the exact sample percentile. The mean is
//! computed from midpoints, so it too is within 3.125 % of the exact mean: no running sum
//! is kept, and nothing can wrap except the bucket counts themselves. `min`/`max` are
//! the 0th and 100th percentiles, with the same bound. The unit tests check the bound for
//! every bucket, and `core/tests/prop_stats.rs` against sorted samples.
//!
//! # Counts and wrapping
//!
//! Counters are `AtomicUsize`: on 64-bit targets they never wrap in practice; on 32-bit
//! targets (`thumbv7em`) a [`Counter`] wraps modulo `2^32`, and so does a histogram bucket
//! after `2^32` samples in that one bucket. Snapshots widen counts to `u64`.
//!
//! # Memory
//!
//! `size_of::<Histogram>()` is `976 * size_of::<usize>()`: 7808 bytes on 64-bit targets,
//! 3904 on 32-bit. `size_of::<HistogramSnapshot>()` is 7816 bytes everywhere.
//!
//! # Consistency
//!
//! Recording is `Relaxed` and a snapshot reads bucket by bucket: concurrent records may or
//! may not be included, but each bucket's count is one it really had, and the snapshot's
//! count is the sum of its buckets, so its own figures always agree with each other.

use core::fmt;

use crate::sync::{AtomicUsize, Ordering};

/// A pointer-width atomic event counter. Increments are `Relaxed`; it wraps modulo
/// `2^32` on 32-bit targets such as `thumbv7em` (and modulo `2^64` on 64-bit ones).
///
/// # Examples
///
/// ```
/// use errand_core::Counter;
///
/// static EXECUTED: Counter = Counter::new();
/// EXECUTED.inc();
/// EXECUTED.add(2);
/// assert_eq!(EXECUTED.get(), 3);
/// ```
#[derive(Debug, Default)]
pub struct Counter(AtomicUsize);

impl Counter {
    /// A counter at zero.
    #[cfg(not(errand_loom))]
    pub const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// A counter at zero.
    #[cfg(errand_loom)]
    pub fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n` (wrapping).
    #[inline]
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// `k`: bits of linear sub-buckets per power of two.
const SUB_BITS: u32 = 4;
/// Sub-buckets per power of two (and the exact buckets below it).
const SUB: usize = 1 << SUB_BITS;
/// Number of buckets: `0..16` exact, then 16 per power of two `2^4 ..= 2^63`.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// The bucket holding `value`.
#[inline]
fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        value as usize
    } else {
        let e = 63 - value.leading_zeros();
        let sub = (value >> (e - SUB_BITS)) as usize & (SUB - 1);
        (e - SUB_BITS + 1) as usize * SUB + sub
    }
}

/// The smallest value of bucket `index`.
#[inline]
fn bucket_low(index: usize) -> u64 {
    if index < SUB {
        index as u64
    } else {
        let e = (index / SUB) as u32 + SUB_BITS - 1;
        (1u64 << e) + (((index % SUB) as u64) << (e - SUB_BITS))
    }
}

/// The largest value of bucket `index`.
#[inline]
fn bucket_high(index: usize) -> u64 {
    bucket_low(index) + (bucket_width(index) - 1)
}

#[inline]
fn bucket_width(index: usize) -> u64 {
    if index < SUB {
        1
    } else {
        1u64 << ((index / SUB) as u32 - 1)
    }
}

/// The value a snapshot reports for a sample in bucket `index` (its midpoint).
#[inline]
fn bucket_mid(index: usize) -> u64 {
    bucket_low(index) + bucket_width(index) / 2
}

/// A fixed-bucket log-linear latency histogram over `u64` nanoseconds.
///
/// Recording is one `Relaxed` atomic add, from any number of threads; nothing allocates.
///
/// Values `0..16` have exact buckets; each power of two `[2^e, 2^(e+1))` above is split
/// into 16 linear sub-buckets (976 buckets in all, covering every `u64`). A snapshot reports
/// a sample by its bucket's midpoint, so **every reported value `r` for a true value `v`
/// satisfies `|r - v| <= v / 32`** (3.125 %): percentiles (nearest rank), min, max and mean
/// alike. Each bucket is an `AtomicUsize` (it wraps after `2^32` samples in one bucket on
/// 32-bit targets); `size_of::<Histogram>()` is 7808 bytes on 64-bit targets, 3904 on
/// 32-bit.
///
/// # Examples
///
/// ```
/// use errand_core::Histogram;
///
/// static LATENCY: Histogram = Histogram::new();
/// let latency = &LATENCY;
/// for ns in 1..=1000 {
///     latency.record(ns * 1_000); // 1 µs ..= 1 ms
/// }
/// let snap = latency.snapshot();
/// assert_eq!(snap.count(), 1000);
/// let p99 = snap.p99().unwrap() as f64;
/// assert!((p99 - 990_000.0).abs() <= 990_000.0 * Histogram::RELATIVE_ERROR);
/// ```
pub struct Histogram {
    buckets: [AtomicUsize; BUCKETS],
}

impl Histogram {
    /// Number of buckets (976).
    pub const BUCKETS: usize = BUCKETS;
    /// Bits of linear sub-buckets per power of two (`k = 4`, 16 sub-buckets).
    pub const SUB_BUCKET_BITS: u32 = SUB_BITS;
    /// Bound on the relative error of every reported value: `2^-(k+1) = 1/32`.
    pub const RELATIVE_ERROR: f64 = 1.0 / (2 * SUB) as f64;

    /// An empty histogram (usable in a `static`).
    #[cfg(not(errand_loom))]
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicUsize::new(0) }; BUCKETS],
        }
    }

    /// An empty histogram.
    #[cfg(errand_loom)]
    pub fn new() -> Self {
        Self {
            buckets: core::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }

    /// Records one sample of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counts into a plain snapshot (see the module docs on consistency).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut snap = HistogramSnapshot::new();
        for (out, bucket) in snap.buckets.iter_mut().zip(&self.buckets) {
            *out = bucket.load(Ordering::Relaxed) as u64;
            snap.count += *out;
        }
        snap
    }

    /// Sets every count back to zero (samples recorded meanwhile may survive or not).
    pub fn reset(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// A plain copy of a [`Histogram`]'s counts: count, min, max, mean and percentiles.
///
/// A fixed array, no heap. Every value it reports is within
/// [`Histogram::RELATIVE_ERROR`] (3.125 %) of the exact figure over the samples it holds.
///
/// With feature `serde` it serializes as its summary (`count`, `min`, `max`, `mean`,
/// `p50`, `p95`, `p99`) plus its non-empty buckets as `[low, high, count]` triples;
/// deserializing reads the buckets back (the summary is recomputed from them).
///
/// # Examples
///
/// ```
/// use errand_core::{Histogram, HistogramSnapshot};
///
/// let h = Histogram::new();
/// h.record(5);
/// h.record(7);
/// let mut snap = h.snapshot();
/// assert_eq!((snap.min(), snap.max()), (Some(5), Some(7))); // exact below 16
///
/// snap.merge(&HistogramSnapshot::new());
/// assert_eq!(snap.count(), 2);
/// assert_eq!(snap.mean(), Some(6.0));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    count: u64,
    buckets: [u64; BUCKETS],
}

impl HistogramSnapshot {
    /// An empty snapshot.
    pub const fn new() -> Self {
        Self {
            count: 0,
            buckets: [0; BUCKETS],
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The smallest sample (within 3.125 %), `None` if empty.
    pub fn min(&self) -> Option<u64> {
        self.percentile(0.0)
    }

    /// The largest sample (within 3.125 %), `None` if empty.
    pub fn max(&self) -> Option<u64> {
        self.percentile(1.0)
    }

    /// The mean (within 3.125 %), `None` if empty.
    pub fn mean(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let total: u128 = self
            .nonzero()
            .map(|(index, count)| u128::from(count) * u128::from(bucket_mid(index)))
            .fold(0, u128::saturating_add);
        Some(total as f64 / self.count as f64)
    }

    /// The nearest-rank `q`-quantile (`q` in `[0, 1]`, clamped; NaN counts as 0): the
    /// `max(1, ceil(q * count))`-th smallest sample, within 3.125 %. `None` if empty.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q >= 0.0 { q.min(1.0) } else { 0.0 };
        let exact = q * self.count as f64;
        // `ceil` without `std`: the cast truncates a non-negative value.
        let mut rank = exact as u64;
        if (rank as f64) < exact {
            rank += 1;
        }
        let rank = rank.clamp(1, self.count);
        let mut seen = 0u64;
        for (index, count) in self.nonzero() {
            seen += count;
            if seen >= rank {
                return Some(bucket_mid(index));
            }
        }
        // Unreachable while `count` is the sum of the buckets; answer the largest.
        self.nonzero().last().map(|(index, _)| bucket_mid(index))
    }

    /// The median (within 3.125 %).
    pub fn p50(&self) -> Option<u64> {
        self.percentile(0.50)
    }

    /// The 95th percentile (within 3.125 %).
    pub fn p95(&self) -> Option<u64> {
        self.percentile(0.95)
    }

    /// The 99th percentile (within 3.125 %).
    pub fn p99(&self) -> Option<u64> {
        self.percentile(0.99)
    }

    /// Adds `other`'s samples to these (saturating counts).
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count = self.count.saturating_add(other.count);
    }

    /// The non-empty buckets in increasing order, as `(low, high, count)`: `count`
    /// samples lay in `low..=high`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.nonzero()
            .map(|(index, count)| (bucket_low(index), bucket_high(index), count))
    }

    fn nonzero(&self) -> impl DoubleEndedIterator<Item = (usize, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c != 0)
            .map(|(i, &c)| (i, c))
    }
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("mean", &self.mean())
            .field("p50", &self.p50())
            .field("p95", &self.p95())
            .field("p99", &self.p99())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use core::fmt;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

    use super::{BUCKETS, HistogramSnapshot, bucket_high, bucket_low, bucket_of};

    /// The non-empty buckets as a sequence of `[low, high, count]`.
    struct NonZero<'a>(&'a HistogramSnapshot);

    impl Serialize for NonZero<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.0.nonzero().count()))?;
            for bucket in self.0.buckets() {
                seq.serialize_element(&bucket)?;
            }
            seq.end()
        }
    }

    impl Serialize for HistogramSnapshot {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut s = serializer.serialize_struct("HistogramSnapshot", 8)?;
            s.serialize_field("count", &self.count)?;
            s.serialize_field("min", &self.min())?;
            s.serialize_field("max", &self.max())?;
            s.serialize_field("mean", &self.mean())?;
            s.serialize_field("p50", &self.p50())?;
            s.serialize_field("p95", &self.p95())?;
            s.serialize_field("p99", &self.p99())?;
            s.serialize_field("buckets", &NonZero(self))?;
            s.end()
        }
    }

    /// Reads `[low, high, count]` triples into a fixed array.
    struct Buckets([u64; BUCKETS]);

    impl<'de> Deserialize<'de> for Buckets {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Buckets;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a sequence of [low, high, count] histogram buckets")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Buckets, A::Error> {
                    let mut buckets = [0u64; BUCKETS];
                    while let Some((low, high, count)) = seq.next_element::<(u64, u64, u64)>()? {
                        let index = bucket_of(low);
                        if bucket_low(index) != low || bucket_high(index) != high {
                            return Err(A::Error::custom(format_args!(
                                "no histogram bucket spans {low}..={high}"
                            )));
                        }
                        buckets[index] = buckets[index].saturating_add(count);
                    }
                    Ok(Buckets(buckets))
                }
            }
            deserializer.deserialize_seq(V)
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(rename = "HistogramSnapshot")]
    struct Repr {
        buckets: Buckets,
    }

    impl<'de> Deserialize<'de> for HistogramSnapshot {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let Repr {
                buckets: Buckets(buckets),
            } = Repr::deserialize(deserializer)?;
            let count = buckets.iter().fold(0u64, |sum, &c| sum.saturating_add(c));
            Ok(HistogramSnapshot { count, buckets })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_partition_u64() {
        assert_eq!(bucket_low(0), 0);
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
        for i in 0..BUCKETS {
            assert_eq!(bucket_of(bucket_low(i)), i);
            assert_eq!(bucket_of(bucket_high(i)), i);
            if i + 1 < BUCKETS {
                assert_eq!(bucket_high(i) + 1, bucket_low(i + 1));
            }
        }
    }

    /// The proof of the error bound: every value `v` of bucket `i` has `v >= low(i)`, and
    /// the reported midpoint is within `low(i) / 32` of both ends of the bucket, hence of
    /// `v`. With the partition above, this covers every `u64`.
    #[test]
    fn midpoint_within_one_32nd_of_every_value() {
        for i in 0..BUCKETS {
            let (low, mid, high) = (bucket_low(i), bucket_mid(i), bucket_high(i));
            assert!(low <= mid && mid <= high);
            let spread = (mid - low).max(high - mid);
            assert!(
                spread as u128 * 32 <= low as u128,
                "bucket {i}: {low}..={high}"
            );
            if i < SUB {
                assert_eq!((low, mid, high), (i as u64, i as u64, i as u64));
            }
        }
        assert_eq!(Histogram::RELATIVE_ERROR, 1.0 / 32.0);
    }

    #[test]
    fn sizes() {
        assert_eq!(
            core::mem::size_of::<Histogram>(),
            976 * core::mem::size_of::<usize>()
        );
        assert_eq!(core::mem::size_of::<HistogramSnapshot>(), 7816);
    }

    #[test]
    fn percentiles_small() {
        let h = Histogram::new();
        assert_eq!(h.snapshot().p50(), None);
        assert_eq!(h.snapshot().mean(), None);
        for v in [1, 2, 3, 4, 10] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 5);
        assert_eq!(s.p50(), Some(3));
        assert_eq!(s.percentile(0.8), Some(4));
        assert_eq!(s.percentile(0.81), Some(10));
        assert_eq!(s.percentile(f64::NAN), Some(1));
        assert_eq!(s.percentile(7.0), Some(10));
        assert_eq!(s.mean(), Some(4.0));
        h.record(u64::MAX);
        assert!(h.snapshot().max().unwrap() >= u64::MAX - u64::MAX / 32);
        h.reset();
        assert!(h.snapshot().is_empty());
    }

    #[test]
    fn counter_adds() {
        let c = Counter::new();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip() {
        let h = Histogram::new();
        for v in [0, 3, 1000, 1000, 123_456_789, u64::MAX] {
            h.record(v);
        }
        let snap = h.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.starts_with(r#"{"count":6,"min":0,"#), "{json}");
        assert!(json.contains(r#"[992,1023,2]"#), "{json}");
        let back: HistogramSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        let bad = r#"{"buckets":[[5,6,1]]}"#;
        assert!(serde_json::from_str::<HistogramSnapshot>(bad).is_err());
    }
}
