//! Fuzz target `timer`: timer-wheel operations against a `BTreeMap` model.
//!
//! Every advance must fire exactly the model's due set (nothing early, twice or lost), and
//! `next_deadline()` must lie between `now()` and the earliest pending deadline.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use errand_core::TimerWheel;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 64;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Arm `index` at `now + delta` (saturating).
    Insert {
        index: u8,
        delta: u64,
    },
    /// Arm `index` at an absolute tick (possibly in the past).
    InsertAt {
        index: u8,
        tick: u64,
    },
    Cancel {
        index: u8,
    },
    Advance {
        delta: u64,
    },
    /// Advance by `2^shift`.
    Jump {
        shift: u8,
    },
    /// Advance exactly to `next_deadline()`.
    Sleep,
    /// Fire at most `count` timers through `poll`, then stop.
    PollSome {
        delta: u32,
        count: u8,
    },
}

fuzz_target!(|ops: Vec<Op>| {
    let mut wheel = TimerWheel::with_capacity(CAP);
    let mut model: BTreeMap<usize, u64> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert { index, delta } => {
                let index = index % 72;
                let deadline = wheel.now().saturating_add(delta);
                insert(&mut wheel, &mut model, index.into(), deadline);
            }
            Op::InsertAt { index, tick } => {
                insert(&mut wheel, &mut model, (index % 72).into(), tick)
            }
            Op::Cancel { index } => {
                let index = usize::from(index % 72);
                assert_eq!(wheel.cancel(index), model.remove(&index));
            }
            Op::Advance { delta } => {
                let target = wheel.now().saturating_add(delta);
                advance(&mut wheel, &mut model, target);
            }
            Op::Jump { shift } => {
                let target = wheel.now().saturating_add(1u64 << (shift % 64));
                advance(&mut wheel, &mut model, target);
            }
            Op::Sleep => {
                if let Some(next) = wheel.next_deadline() {
                    advance(&mut wheel, &mut model, next);
                }
            }
            Op::PollSome { delta, count } => {
                let now = wheel.now().saturating_add(delta.into());
                for _ in 0..count {
                    let Some(index) = wheel.poll(now) else { break };
                    let deadline = model
                        .remove(&index)
                        .expect("fired a timer that was not pending");
                    assert!(
                        deadline <= now,
                        "fired {index} (deadline {deadline}) at {now}"
                    );
                }
            }
        }
        assert_eq!(wheel.len(), model.len());
        let now = wheel.now();
        match model.values().min() {
            None => assert_eq!(wheel.next_deadline(), None),
            Some(&earliest) => {
                let next = wheel.next_deadline().expect("a timer is pending");
                assert!(next >= now && next <= earliest.max(now));
            }
        }
    }
    advance(&mut wheel, &mut model, u64::MAX);
    assert!(model.is_empty() && wheel.is_empty());
});

fn insert(
    wheel: &mut TimerWheel<Box<[errand_core::TimerEntry]>>,
    model: &mut BTreeMap<usize, u64>,
    index: usize,
    deadline: u64,
) {
    match wheel.insert(index, deadline) {
        Ok(old) => assert_eq!(old, model.insert(index, deadline)),
        Err(e) => assert!(index >= CAP && e.index() == index && e.deadline() == deadline),
    }
}

fn advance(
    wheel: &mut TimerWheel<Box<[errand_core::TimerEntry]>>,
    model: &mut BTreeMap<usize, u64>,
    target: u64,
) {
    let now = target.max(wheel.now());
    let mut fired = Vec::new();
    wheel.advance(target, |i| fired.push(i));
    assert_eq!(wheel.now(), now);
    let fired_set: BTreeSet<usize> = fired.iter().copied().collect();
    assert_eq!(fired_set.len(), fired.len(), "fired twice: {fired:?}");
    let due: BTreeSet<usize> = model
        .iter()
        .filter(|&(_, &d)| d <= now)
        .map(|(&i, _)| i)
        .collect();
    assert_eq!(fired_set, due);
    for i in &fired {
        model.remove(i);
    }
}
