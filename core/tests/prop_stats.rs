//! Histogram percentiles against exact percentiles of the sorted samples, and counters
//! that add up under concurrent increments.

use errand_core::{Counter, Histogram, HistogramSnapshot};
use proptest::prelude::*;

/// Samples spread over many orders of magnitude: a random bit length, then random bits.
fn sample() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u32..=64, any::<u64>()).prop_map(|(bits, v)| if bits == 0 {
            0
        } else {
            v >> (64 - bits)
        }),
        0u64..40,
        1_000u64..2_000_000,
    ]
}

/// The nearest-rank `q`-quantile of sorted samples, as the histogram defines it.
fn exact_percentile(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len() as f64;
    let rank = ((q * n).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `|reported - exact| <= exact / 32`, in exact integer arithmetic.
fn within_bound(reported: u64, exact: u64) -> bool {
    (reported.abs_diff(exact) as u128) * 32 <= exact as u128
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn percentiles_within_bound(
        mut samples in prop::collection::vec(sample(), 1..400),
        qs in prop::collection::vec(0.0f64..=1.0, 1..8),
    ) {
        let h = Histogram::new();
        for &s in &samples {
            h.record(s);
        }
        let snap = h.snapshot();
        samples.sort_unstable();
        prop_assert_eq!(snap.count(), samples.len() as u64);
        let fixed = [0.0, 0.5, 0.95, 0.99, 1.0];
        for &q in qs.iter().chain(&fixed) {
            let exact = exact_percentile(&samples, q);
            let reported = snap.percentile(q).unwrap();
            prop_assert!(within_bound(reported, exact), "q {}: reported {} exact {}", q, reported, exact);
        }
        prop_assert!(within_bound(snap.min().unwrap(), samples[0]));
        prop_assert!(within_bound(snap.max().unwrap(), *samples.last().unwrap()));
        prop_assert_eq!(snap.p99(), snap.percentile(0.99));

        let exact_mean = samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len() as f64;
        let mean = snap.mean().unwrap();
        prop_assert!(
            (mean - exact_mean).abs() <= exact_mean * Histogram::RELATIVE_ERROR * (1.0 + 1e-9),
            "mean {} exact {}", mean, exact_mean
        );
    }

    #[test]
    fn merge_equals_recording_both(
        a in prop::collection::vec(sample(), 0..100),
        b in prop::collection::vec(sample(), 0..100),
    ) {
        let (ha, hb, hab) = (Histogram::new(), Histogram::new(), Histogram::new());
        for &s in &a { ha.record(s); hab.record(s); }
        for &s in &b { hb.record(s); hab.record(s); }
        let mut merged = ha.snapshot();
        merged.merge(&hb.snapshot());
        prop_assert_eq!(&merged, &hab.snapshot());
        let bucket_total: u64 = merged.buckets().map(|(_, _, c)| c).sum();
        prop_assert_eq!(bucket_total, (a.len() + b.len()) as u64);
        let json = serde_json::to_string(&merged).unwrap();
        let back: HistogramSnapshot = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, merged);
    }
}

#[test]
fn counters_and_histogram_add_up_across_threads() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 10_000;
    let counter = Counter::new();
    let histogram = Histogram::new();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (counter, histogram) = (&counter, &histogram);
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    if i % 2 == 0 {
                        counter.inc();
                    } else {
                        counter.add(2);
                    }
                    histogram.record((t * PER_THREAD + i) as u64);
                }
            });
        }
    });
    assert_eq!(counter.get(), THREADS * PER_THREAD / 2 * 3);
    let snap = histogram.snapshot();
    assert_eq!(snap.count(), (THREADS * PER_THREAD) as u64);
    let total = (THREADS * PER_THREAD) as u64;
    let exact_median = total / 2 - 1; // values 0..total, rank total/2
    assert!(snap.p50().unwrap().abs_diff(exact_median) * 32 <= exact_median);
}
