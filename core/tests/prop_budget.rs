//! The memory budget against a model: used is the sum of live reservations.

use errand_core::MemoryBudget;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Reserve(usize),
    Grow(usize, usize),
    Shrink(usize, usize),
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..80usize).prop_map(Op::Reserve),
        (any::<usize>(), 0..80usize).prop_map(|(i, n)| Op::Grow(i, n)),
        (any::<usize>(), 0..80usize).prop_map(|(i, n)| Op::Shrink(i, n)),
        any::<usize>().prop_map(Op::Drop),
    ]
}

proptest! {
    #[test]
    fn matches_the_model(limit in 0..200usize, ops in prop::collection::vec(op(), 0..60)) {
        let budget = MemoryBudget::new(limit);
        let mut live = Vec::new();
        let (mut peak, mut rejections) = (0usize, 0usize);
        for op in ops {
            let model_used: usize = live.iter().map(|r: &errand_core::Reservation<_>| r.bytes()).sum();
            match op {
                Op::Reserve(n) => match budget.try_reserve(n) {
                    Ok(r) => { prop_assert!(model_used + n <= limit); live.push(r); }
                    Err(e) => {
                        prop_assert!(model_used + n > limit);
                        prop_assert_eq!((e.requested, e.used, e.limit), (n, model_used, limit));
                        rejections += 1;
                    }
                },
                Op::Grow(i, n) if !live.is_empty() => {
                    let i = i % live.len();
                    let before = live[i].bytes();
                    match live[i].try_grow(n) {
                        Ok(()) => prop_assert_eq!(live[i].bytes(), before + n),
                        Err(_) => { prop_assert!(model_used + n > limit); prop_assert_eq!(live[i].bytes(), before); rejections += 1; }
                    }
                }
                Op::Shrink(i, n) if !live.is_empty() => {
                    let i = i % live.len();
                    let before = live[i].bytes();
                    live[i].shrink(n);
                    prop_assert_eq!(live[i].bytes(), before.saturating_sub(n));
                }
                Op::Drop(i) if !live.is_empty() => { let i = i % live.len(); drop(live.swap_remove(i)); }
                _ => {}
            }
            let used: usize = live.iter().map(|r| r.bytes()).sum();
            peak = peak.max(used);
            prop_assert_eq!(budget.used(), used);
            prop_assert!(budget.used() <= limit);
            prop_assert!(budget.peak() >= peak && budget.peak() <= limit);
            prop_assert_eq!(budget.rejections(), rejections);
        }
        drop(live);
        prop_assert_eq!(budget.used(), 0);
    }
}

#[test]
fn snapshot_serializes() {
    let budget = MemoryBudget::new(10);
    let _r = budget.try_reserve(3).unwrap();
    let json = serde_json::to_string(&budget.snapshot()).unwrap();
    assert_eq!(json, r#"{"limit":10,"used":3,"peak":3,"rejections":0}"#);
}
