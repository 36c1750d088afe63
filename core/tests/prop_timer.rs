//! The timer wheel against a reference model (a `BTreeMap` of index → deadline).
//!
//! Random insert / cancel / advance sequences, with deadlines near, far, beyond any
//! "horizon" and at `u64::MAX`, and `now` jumping by small steps or by astronomic amounts.
//! At every advance the fired set must equal the model's due set: nothing early, nothing
//! twice, nothing lost.

use std::collections::{BTreeMap, BTreeSet};

use errand_core::{Storage, TimerEntry, TimerWheel};
use proptest::prelude::*;

const CAP: usize = 16;

#[derive(Clone, Debug)]
enum Op {
    /// Arm `index` at `now + delta` (saturating), or `now - back` when `back` is set.
    Insert {
        index: usize,
        delta: u64,
        back: Option<u64>,
    },
    Cancel {
        index: usize,
    },
    Advance {
        delta: u64,
    },
    /// Advance exactly to `next_deadline()`.
    Sleep,
    /// Grow a heap wheel to `to` indices (a no-op below its capacity).
    Grow {
        to: usize,
    },
}

fn delta() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..130,
        3 => 0u64..70_000,
        2 => 0u64..(1 << 40),
        1 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => (0u32..64).prop_map(|b| 1u64 << b),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..CAP + 1, delta(), prop::option::weighted(0.1, 0u64..1000))
            .prop_map(|(index, delta, back)| Op::Insert { index, delta, back }),
        2 => (0..CAP + 1).prop_map(|index| Op::Cancel { index }),
        3 => delta().prop_map(|delta| Op::Advance { delta }),
        2 => Just(Op::Sleep),
    ]
}

/// The same operations, plus growth of a heap wheel up to `CAP`.
fn op_or_grow() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => op(),
        1 => (0..CAP + 1).prop_map(|to| Op::Grow { to }),
    ]
}

/// Checks `next_deadline` against the model.
fn check_next<S: Storage<TimerEntry>>(wheel: &TimerWheel<S>, model: &BTreeMap<usize, u64>) {
    let now = wheel.now();
    match model.values().min() {
        None => assert_eq!(wheel.next_deadline(), None),
        Some(&earliest) => {
            let next = wheel.next_deadline().expect("a timer is pending");
            assert!(
                next >= now,
                "next_deadline {next} is in the past (now {now})"
            );
            assert!(
                next <= earliest.max(now),
                "next_deadline {next} later than earliest pending deadline {earliest} (now {now})"
            );
        }
    }
}

/// Advances both to `target` and compares what fired.
fn advance<S: Storage<TimerEntry>>(
    wheel: &mut TimerWheel<S>,
    model: &mut BTreeMap<usize, u64>,
    target: u64,
) {
    let before = wheel.now();
    let now = target.max(before);
    let mut fired = Vec::new();
    wheel.advance(target, |i| fired.push(i));
    assert_eq!(wheel.now(), now);
    let due: BTreeSet<usize> = model
        .iter()
        .filter(|&(_, &d)| d <= now)
        .map(|(&i, _)| i)
        .collect();
    let fired_set: BTreeSet<usize> = fired.iter().copied().collect();
    assert_eq!(
        fired_set.len(),
        fired.len(),
        "a timer fired twice: {fired:?}"
    );
    assert_eq!(
        fired_set, due,
        "fired set differs from due set at now {now}"
    );
    // Timers come out in the order they became due.
    let keys: Vec<u64> = fired.iter().map(|i| model[i].max(before)).collect();
    assert!(
        keys.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {keys:?}"
    );
    for i in &fired {
        model.remove(i);
    }
}

fn run(ops: &[Op]) {
    let wheel: TimerWheel<[TimerEntry; CAP]> = TimerWheel::new();
    run_on(wheel, ops, |_, _| {
        unreachable!("an inline wheel does not grow")
    });
}

/// As [`run`], on a heap wheel that starts with 2 indices and grows.
fn run_growing(ops: &[Op]) {
    let wheel = TimerWheel::with_capacity(2);
    run_on(
        wheel,
        ops,
        |wheel: &mut TimerWheel<Box<[TimerEntry]>>, to| wheel.grow(to),
    );
}

fn run_on<S: Storage<TimerEntry>>(
    mut wheel: TimerWheel<S>,
    ops: &[Op],
    grow: impl Fn(&mut TimerWheel<S>, usize),
) {
    let mut model: BTreeMap<usize, u64> = BTreeMap::new();
    for op in ops {
        match *op {
            Op::Insert { index, delta, back } => {
                let now = wheel.now();
                let deadline = match back {
                    Some(back) => now.saturating_sub(back),
                    None => now.saturating_add(delta),
                };
                match wheel.insert(index, deadline) {
                    Ok(old) => assert_eq!(old, model.insert(index, deadline)),
                    Err(e) => {
                        let capacity = wheel.capacity();
                        assert!(index >= capacity);
                        assert_eq!(
                            (e.index(), e.deadline(), e.capacity()),
                            (index, deadline, capacity)
                        );
                    }
                }
            }
            Op::Cancel { index } => assert_eq!(wheel.cancel(index), model.remove(&index)),
            Op::Advance { delta } => {
                let target = wheel.now().saturating_add(delta);
                advance(&mut wheel, &mut model, target);
            }
            Op::Sleep => {
                if let Some(next) = wheel.next_deadline() {
                    advance(&mut wheel, &mut model, next);
                }
            }
            Op::Grow { to } => {
                let before = wheel.capacity();
                grow(&mut wheel, to);
                assert_eq!(wheel.capacity(), before.max(to));
            }
        }
        assert_eq!(wheel.len(), model.len());
        for i in 0..CAP {
            assert_eq!(wheel.deadline(i), model.get(&i).copied());
        }
        check_next(&wheel, &model);
    }
    // Nothing is lost: everything fires by the end of time.
    advance(&mut wheel, &mut model, u64::MAX);
    assert!(model.is_empty() && wheel.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_model(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops);
    }

    /// A heap wheel grown between operations keeps every pending timer.
    #[test]
    fn a_growing_wheel_matches_model(ops in prop::collection::vec(op_or_grow(), 1..80)) {
        run_growing(&ops);
    }

    /// An engine that sleeps exactly until `next_deadline()` sees every timer fire at its
    /// own deadline (zero lateness), with at most 10 extra wake-ups per timer.
    #[test]
    fn sleeping_until_next_deadline_is_exact(
        start in delta(),
        deadlines in prop::collection::vec(delta(), 1..CAP),
    ) {
        let mut wheel: TimerWheel<[TimerEntry; CAP]> = TimerWheel::new();
        wheel.advance(start, |_| unreachable!());
        for (i, d) in deadlines.iter().enumerate() {
            wheel.insert(i, start.saturating_add(*d)).unwrap();
        }
        let mut wakeups = 0;
        let mut fired = 0;
        while let Some(next) = wheel.next_deadline() {
            wakeups += 1;
            wheel.advance(next, |i| {
                assert_eq!(start.saturating_add(deadlines[i]), next);
                fired += 1;
            });
        }
        prop_assert_eq!(fired, deadlines.len());
        prop_assert!(wakeups <= 11 * deadlines.len(), "{} wake-ups", wakeups);
    }
}

#[test]
fn rearm_many_in_one_slot() {
    let mut ops = Vec::new();
    for index in 0..CAP {
        ops.push(Op::Insert {
            index,
            delta: 5000,
            back: None,
        });
    }
    for index in (0..CAP).step_by(3) {
        ops.push(Op::Insert {
            index,
            delta: 1 << 50,
            back: None,
        });
    }
    ops.push(Op::Sleep);
    ops.push(Op::Advance { delta: 4999 });
    ops.push(Op::Sleep);
    ops.push(Op::Advance { delta: u64::MAX });
    run(&ops);
}
