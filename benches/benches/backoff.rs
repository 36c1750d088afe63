//! Retry and backoff math: errand's integer fixed-point delays against the obvious float
//! formula.
//!
//! - `backoff/base_delay`: the base delay of retry 1, 8 and 40 of an exponential policy
//!   (100 ms × 2ⁿ⁻¹, capped at one hour; retry 40 is far into the cap), and of retry 8
//!   with a multiplier of 1.5 (`m1.5/8`). errand computes `min(cap, initial ×
//!   multiplierⁿ⁻¹)` in integers: a shift for a power-of-two multiplier, else
//!   square-and-multiply in 32.32 fixed point, saturating. The baseline is
//!   `(initial as f64 * multiplier.powi(n - 1)).min(cap)` (which needs `std` or libm; the
//!   core is `no_std`).
//! - `backoff/sequence`: a whole task's delays, a fresh backoff asked for its next delay
//!   until the policy's 10 retries are spent, for each jitter; the baseline is the float
//!   formula with full jitter drawn from the same random source.
//!
//! `cargo bench -p errand-benches --bench backoff -- backoff/base_delay`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use errand_core::{Jitter, RandomSource, RetryPolicy, SplitMix64};

const INITIAL: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(3600);
const MULTIPLIER: f64 = 2.0;
const RETRIES: u32 = 10;

fn policy(jitter: Jitter) -> RetryPolicy {
    policy_with(jitter, MULTIPLIER)
}

fn policy_with(jitter: Jitter, multiplier: f64) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(RETRIES)
        .initial_delay(INITIAL)
        .multiplier(multiplier)
        .max_delay(CAP)
        .jitter(jitter)
        .build()
        .expect("a valid policy")
}

/// The float formula a hand-written retry loop would use, in nanoseconds.
fn float_base_delay_ns(retry: u32, multiplier: f64) -> u64 {
    let exponent = i32::try_from(retry - 1).unwrap_or(i32::MAX);
    let delay = INITIAL.as_nanos() as f64 * multiplier.powi(exponent);
    // `as` saturates a too-large float to u64::MAX.
    (delay as u64).min(CAP.as_nanos() as u64)
}

fn base_delay(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff/base_delay");
    let errand = policy(Jitter::None);
    for retry in [1_u32, 8, 40] {
        assert_eq!(
            errand.base_delay_ns(retry),
            float_base_delay_ns(retry, MULTIPLIER)
        );
        group.bench_with_input(BenchmarkId::new("errand", retry), &retry, |b, &retry| {
            b.iter(|| errand.base_delay_ns(black_box(retry)));
        });
        group.bench_with_input(BenchmarkId::new("float", retry), &retry, |b, &retry| {
            b.iter(|| float_base_delay_ns(black_box(retry), MULTIPLIER));
        });
    }
    let slower = policy_with(Jitter::None, 1.5);
    let retry = 8_u32;
    // 100 ms × 1.5⁷ is a whole number of nanoseconds: both sides agree exactly.
    assert_eq!(slower.base_delay_ns(retry), float_base_delay_ns(retry, 1.5));
    group.bench_with_input(BenchmarkId::new("errand", "m1.5/8"), &retry, |b, &retry| {
        b.iter(|| slower.base_delay_ns(black_box(retry)));
    });
    group.bench_with_input(BenchmarkId::new("float", "m1.5/8"), &retry, |b, &retry| {
        b.iter(|| float_base_delay_ns(black_box(retry), 1.5));
    });
    group.finish();
}

fn sequence(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff/sequence");
    let jitters = [
        ("errand_none", Jitter::None),
        ("errand_full", Jitter::Full),
        ("errand_equal", Jitter::Equal),
        ("errand_decorrelated", Jitter::Decorrelated),
    ];
    for (name, jitter) in jitters {
        let policy = policy(jitter);
        group.bench_function(name, |b| {
            let mut rng = SplitMix64::new(7);
            b.iter(|| {
                let mut backoff = black_box(policy).backoff();
                let mut total = 0_u64;
                while let Some(ns) = backoff.next_delay_ns(&mut rng) {
                    total = total.wrapping_add(ns);
                }
                total
            });
        });
    }
    group.bench_function("float_full", |b| {
        let mut rng = SplitMix64::new(7);
        b.iter(|| {
            let mut total = 0_u64;
            for retry in 1..=black_box(RETRIES) {
                let base = float_base_delay_ns(retry, MULTIPLIER);
                // Full jitter: uniform in 0..=base, from a float in [0, 1).
                let unit = (rng.next_u64() >> 11) as f64 / (1_u64 << 53) as f64;
                total = total.wrapping_add((base as f64 * unit) as u64);
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, base_delay, sequence);
criterion_main!(benches);
