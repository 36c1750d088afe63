//! Arbitrary retry-policy inputs: building never panics, and a valid policy's delays obey
//! the cap and their jitter formula for any attempt count and seed.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use errand_core::{Jitter, RetryPolicy, SplitMix64};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    max_retries: u32,
    initial_ns: u64,
    cap_ns: u64,
    multiplier: f64,
    jitter: u8,
    seed: u64,
    probe_retry: u32,
    steps: u8,
}

fuzz_target!(|input: Input| {
    let jitter = [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ][usize::from(input.jitter % 4)];
    let built = RetryPolicy::builder()
        .max_retries(input.max_retries)
        .initial_delay(Duration::from_nanos(input.initial_ns))
        .max_delay(Duration::from_nanos(input.cap_ns))
        .multiplier(input.multiplier)
        .jitter(jitter)
        .build();
    let Ok(policy) = built else {
        let valid = input.multiplier.is_finite()
            && input.multiplier >= 1.0
            && input.multiplier <= errand_core::MAX_MULTIPLIER
            && input.cap_ns >= input.initial_ns;
        assert!(!valid, "a valid policy was refused: {input:?}");
        return;
    };
    assert!(policy.multiplier() >= 1.0 && input.cap_ns >= input.initial_ns);
    let cap = input.cap_ns;
    let probe = policy.base_delay_ns(input.probe_retry);
    assert!(probe <= cap);
    assert!(policy.base_delay_ns(input.probe_retry.saturating_add(1)) >= probe);

    let mut rng = SplitMix64::new(input.seed);
    let mut backoff = policy.backoff();
    let mut previous = input.initial_ns;
    for retry in 1..=u32::from(input.steps) {
        let Some(d) = backoff.next_delay_ns(&mut rng) else {
            assert_eq!(retry - 1, input.max_retries);
            break;
        };
        let t = policy.base_delay_ns(retry);
        let (low, high) = match jitter {
            Jitter::None => (t, t),
            Jitter::Full => (0, t),
            Jitter::Equal => (t / 2, t),
            _ => (
                input.initial_ns.min(cap),
                previous.saturating_mul(3).max(input.initial_ns).min(cap),
            ),
        };
        assert!(
            low <= d && d <= high,
            "retry {retry}: {d} outside {low}..={high}"
        );
        previous = d;
    }
});
