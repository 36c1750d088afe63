//! Retry/backoff math against its formulas, for arbitrary (valid and invalid) inputs.

use std::time::Duration;

use errand_core::{Jitter, RetryPolicy, RetryPolicyBuilder, SplitMix64};
use proptest::prelude::*;

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated)
    ]
}

fn nanos() -> impl Strategy<Value = u64> {
    prop_oneof![0..1_000u64, 0..u64::MAX, Just(u64::MAX)]
}

prop_compose! {
    fn builder()(
        max_retries in prop_oneof![0..10u32, Just(u32::MAX)],
        initial in nanos(),
        extra in nanos(),
        multiplier in prop_oneof![1.0..8.0f64, Just(1.0), Just(errand_core::MAX_MULTIPLIER)],
        jitter in jitter(),
    ) -> RetryPolicyBuilder {
        RetryPolicy::builder()
            .max_retries(max_retries)
            .initial_delay(Duration::from_nanos(initial))
            .max_delay(Duration::from_nanos(initial.saturating_add(extra)))
            .multiplier(multiplier)
            .jitter(jitter)
    }
}

proptest! {
    #[test]
    fn base_delays_are_monotone_and_capped(b in builder(), retry in 1..200u32) {
        let p = b.build().unwrap();
        let cap = p.max_delay().as_nanos() as u64;
        let (now, next) = (p.base_delay_ns(retry), p.base_delay_ns(retry + 1));
        prop_assert!(now <= next);
        prop_assert!(next <= cap);
        prop_assert!(p.base_delay_ns(1) == (p.initial_delay().as_nanos() as u64).min(cap));
    }

    #[test]
    fn jittered_delays_respect_their_formula(b in builder(), seed: u64) {
        let p = b.max_retries(b.max_retries.min(50)).build().unwrap();
        let initial = p.initial_delay().as_nanos() as u64;
        let cap = p.max_delay().as_nanos() as u64;
        let mut rng = SplitMix64::new(seed);
        let mut backoff = p.backoff();
        let mut previous = initial;
        let mut retry = 0;
        while let Some(d) = backoff.next_delay_ns(&mut rng) {
            retry += 1;
            let t = p.base_delay_ns(retry);
            let (low, high) = match p.jitter() {
                Jitter::None => (t, t),
                Jitter::Full => (0, t),
                Jitter::Equal => (t / 2, t),
                Jitter::Decorrelated => (initial.min(cap), previous.saturating_mul(3).max(initial).min(cap)),
            };
            prop_assert!(low <= d && d <= high, "retry {retry}: {d} not in {low}..={high}");
            prop_assert!(d <= cap);
            previous = d;
        }
        prop_assert_eq!(retry, p.max_retries());
        prop_assert_eq!(backoff.retries(), p.max_retries());
    }

    #[test]
    fn same_seed_same_delays(b in builder(), seed: u64) {
        let p = b.max_retries(b.max_retries.min(20)).build().unwrap();
        let run = || {
            let (mut rng, mut backoff) = (SplitMix64::new(seed), p.backoff());
            std::iter::from_fn(move || backoff.next_delay_ns(&mut rng)).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(), run());
    }

    #[test]
    fn no_input_panics(
        retries: u32, initial: u64, cap: u64, multiplier: f64, retry: u32, seed: u64,
        jitter in jitter(),
    ) {
        let built = RetryPolicy::builder()
            .max_retries(retries)
            .initial_delay(Duration::from_nanos(initial))
            .max_delay(Duration::from_nanos(cap))
            .multiplier(multiplier)
            .jitter(jitter)
            .build();
        match built {
            Ok(p) => {
                prop_assert!(multiplier >= 1.0 && cap >= initial);
                prop_assert!(p.base_delay_ns(retry) <= cap);
                let mut rng = SplitMix64::new(seed);
                let mut backoff = p.backoff();
                for _ in 0..4 {
                    if let Some(d) = backoff.next_delay_ns(&mut rng) {
                        prop_assert!(d <= cap);
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("invalid retry policy: ")),
        }
    }

    #[test]
    fn serde_round_trip(b in builder()) {
        let p = b.build().unwrap();
        let json = serde_json::to_string(&p).unwrap();
        prop_assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), p);
    }
}

#[test]
fn the_guides_policy_waits_5_10_20_seconds() {
    let p = RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_secs(5))
        .multiplier(2.0)
        .build()
        .unwrap();
    let mut rng = SplitMix64::new(0);
    let mut b = p.backoff();
    let delays: Vec<_> = std::iter::from_fn(|| b.next_delay(&mut rng)).collect();
    assert_eq!(delays, [5, 10, 20].map(Duration::from_secs));
}

#[test]
fn deserializing_an_invalid_policy_fails() {
    let json = r#"{"max_retries":1,"initial_delay":{"secs":1,"nanos":0},"multiplier":0.5,
                  "max_delay":{"secs":2,"nanos":0},"jitter":"none"}"#;
    let err = serde_json::from_str::<RetryPolicy>(json).unwrap_err();
    assert!(
        err.to_string().contains("multiplier 0.5 is below 1"),
        "{err}"
    );
}

#[test]
fn full_jitter_is_spread_over_its_range() {
    // 4000 draws of random(0, 99): every decile gets a fair share (a loose check of
    // uniformity that a biased or constant draw fails).
    let p = RetryPolicy::builder()
        .max_retries(u32::MAX)
        .initial_delay(Duration::from_nanos(99))
        .max_delay(Duration::from_nanos(99))
        .jitter(Jitter::Full)
        .build()
        .unwrap();
    let (mut rng, mut b) = (SplitMix64::new(11), p.backoff());
    let mut deciles = [0u32; 10];
    for _ in 0..4000 {
        deciles[(b.next_delay_ns(&mut rng).unwrap() / 10) as usize] += 1;
    }
    assert!(
        deciles.iter().all(|&n| (300..=500).contains(&n)),
        "{deciles:?}"
    );
}
