//! Unit tests of the timer wheel.

use core::mem::MaybeUninit;
use std::vec::Vec;

use super::*;

fn drain<S: Storage<TimerEntry>>(wheel: &mut TimerWheel<S>, now: u64) -> Vec<usize> {
    let mut fired = Vec::new();
    wheel.advance(now, |i| fired.push(i));
    fired.sort_unstable();
    fired
}

/// Timers pending on every level survive a growth mid-way, a re-arm and a cancel
/// after it, and fire at their deadlines beside those armed at the new indices.
#[cfg(feature = "alloc")]
#[test]
fn growing_keeps_every_pending_timer() {
    let mut wheel = TimerWheel::with_capacity(3);
    wheel.insert(0, 5).unwrap();
    wheel.insert(1, 70).unwrap();
    wheel.insert(2, 300_000).unwrap();
    assert_eq!(drain(&mut wheel, 2), Vec::<usize>::new());
    assert!(wheel.insert(3, 9).is_err(), "out of range before growing");
    wheel.grow(2);
    assert_eq!(wheel.capacity(), 3, "never shrinks");
    wheel.grow(200);
    assert_eq!((wheel.capacity(), wheel.len()), (200, 3));
    wheel.insert(199, 70).unwrap();
    wheel.insert(3, 4).unwrap();
    assert_eq!(wheel.insert(1, 71), Ok(Some(70)));
    assert_eq!(wheel.cancel(0), Some(5));
    assert_eq!(drain(&mut wheel, 5), [3]);
    assert_eq!(drain(&mut wheel, 70), [199]);
    assert_eq!(drain(&mut wheel, 71), [1]);
    assert_eq!(drain(&mut wheel, 299_999), Vec::<usize>::new());
    assert_eq!(drain(&mut wheel, 300_000), [2]);
    assert!(wheel.is_empty());
}

#[test]
fn entry_is_16_bytes() {
    assert_eq!(core::mem::size_of::<TimerEntry>(), 16);
}

#[test]
fn fires_at_deadline_not_before() {
    let mut wheel: TimerWheel<[TimerEntry; 4]> = TimerWheel::new();
    for (i, d) in [(0, 1), (1, 63), (2, 64), (3, 4097)].into_iter() {
        wheel.insert(i, d).unwrap();
    }
    for (i, d) in [(0, 1), (1, 63), (2, 64), (3, 4097)].into_iter() {
        assert!(wheel.next_deadline().unwrap() <= d);
        assert_eq!(drain(&mut wheel, d - 1), Vec::<usize>::new());
        assert_eq!(drain(&mut wheel, d), [i]);
    }
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
    assert_eq!(wheel.now(), 4097);
}

#[test]
fn lone_timer_wakes_once_at_its_deadline() {
    let mut wheel: TimerWheel<[TimerEntry; 2]> = TimerWheel::new();
    wheel.insert(0, 1_000_000).unwrap();
    assert_eq!(wheel.next_deadline(), Some(1_000_000));
    assert_eq!(wheel.poll(999_999), None);
    assert_eq!(wheel.poll(1_000_000), Some(0));
    // Two in one slot: the slot start comes first, then the exact deadlines.
    wheel.insert(0, 1_000_000 + 4096 + 7).unwrap();
    wheel.insert(1, 1_000_000 + 4096 + 9).unwrap();
    let mut wakeups = 0;
    while wheel.next_deadline() != Some(1_004_103) {
        let wake = wheel.next_deadline().unwrap();
        assert!(wake < 1_004_103);
        assert_eq!(wheel.poll(wake), None);
        wakeups += 1;
    }
    assert!(wakeups <= 2, "{wakeups} cascade wake-ups");
    assert_eq!(drain(&mut wheel, 1_004_103), [0]);
    assert_eq!(wheel.next_deadline(), Some(1_004_105));
}

#[test]
fn past_deadline_fires_at_next_poll() {
    let mut wheel: TimerWheel<[TimerEntry; 2]> = TimerWheel::new();
    assert_eq!(wheel.poll(100), None);
    wheel.insert(1, 50).unwrap();
    assert_eq!(wheel.next_deadline(), Some(100));
    assert_eq!(wheel.poll(0), Some(1));
    assert_eq!(wheel.now(), 100);
}

#[test]
fn rearm_and_cancel() {
    let mut wheel: TimerWheel<[TimerEntry; 3]> = TimerWheel::new();
    assert_eq!(wheel.insert(0, 10), Ok(None));
    assert_eq!(wheel.insert(0, 1_000_000), Ok(Some(10)));
    assert_eq!(wheel.len(), 1);
    assert_eq!(drain(&mut wheel, 10), Vec::<usize>::new());
    assert_eq!(wheel.deadline(0), Some(1_000_000));
    assert_eq!(wheel.cancel(0), Some(1_000_000));
    assert_eq!(wheel.cancel(0), None);
    assert_eq!(wheel.cancel(7), None);
    assert!(wheel.is_empty());
    let err = wheel.insert(3, 5).unwrap_err();
    assert_eq!((err.index(), err.deadline(), err.capacity()), (3, 5, 3));
    assert_eq!(
        std::format!("{err}"),
        "timer index 3 out of range: the wheel holds 3 timers (deadline 5)"
    );
}

#[test]
fn cancel_middle_of_slot_list() {
    let mut wheel: TimerWheel<[TimerEntry; 3]> = TimerWheel::new();
    for i in 0..3 {
        wheel.insert(i, 7).unwrap();
    }
    assert_eq!(wheel.cancel(1), Some(7));
    assert_eq!(drain(&mut wheel, 7), [0, 2]);
}

#[test]
fn huge_jumps_and_extreme_deadlines() {
    let mut wheel: TimerWheel<[TimerEntry; 4]> = TimerWheel::new();
    wheel.insert(0, u64::MAX).unwrap();
    wheel.insert(1, 1 << 40).unwrap();
    wheel.insert(2, (1 << 40) + 1).unwrap();
    wheel.insert(3, u64::MAX - 1).unwrap();
    assert_eq!(drain(&mut wheel, (1 << 40) - 1), Vec::<usize>::new());
    assert_eq!(drain(&mut wheel, 1 << 40), [1]);
    assert_eq!(drain(&mut wheel, u64::MAX - 2), [2]);
    assert_eq!(wheel.next_deadline(), Some(u64::MAX - 1));
    assert_eq!(drain(&mut wheel, u64::MAX), [0, 3]);
}

#[test]
fn rearm_inside_poll_loop() {
    let mut wheel: TimerWheel<[TimerEntry; 1]> = TimerWheel::new();
    wheel.insert(0, 10).unwrap();
    let mut fires = 0;
    while let Some(i) = wheel.poll(100) {
        fires += 1;
        let next = wheel.now() + 30;
        wheel.insert(i, next).unwrap();
    }
    // Fired at 10, 40, 70, 100.
    assert_eq!(fires, 4);
    assert_eq!(wheel.deadline(0), Some(130));
}

/// Every field of two wheels.
fn assert_same_state<S: Storage<TimerEntry>>(a: &TimerWheel<S>, b: &TimerWheel<S>) {
    assert_eq!(a.entries.cells(), b.entries.cells());
    assert_eq!(
        (a.elapsed, a.len, a.level_mask),
        (b.elapsed, b.len, b.level_mask)
    );
    assert_eq!(a.occupied, b.occupied);
    assert_eq!(a.heads, b.heads);
}

/// Inserts, cancels and polls at random (the same sequence on both wheels) and checks
/// that they answer alike and stay in the same state.
fn assert_same_behaviour<S: Storage<TimerEntry>>(
    a: &mut TimerWheel<S>,
    b: &mut TimerWheel<S>,
    seed: u64,
    steps: usize,
) {
    use crate::backoff::{RandomSource, SplitMix64};
    let mut rng = SplitMix64::new(seed);
    let capacity = a.capacity() + 1; // one index out of range
    for step in 0..steps {
        let word = rng.next_u64();
        let index = (word >> 8) as usize % capacity;
        // Deadlines near and far, so timers fall through several levels.
        let ahead = (word >> 16) % (1 << ((word >> 56) % 40));
        match word % 8 {
            0..=3 => {
                let deadline = a.now() + ahead;
                assert_eq!(a.insert(index, deadline), b.insert(index, deadline));
            }
            4 => assert_eq!(a.cancel(index), b.cancel(index)),
            _ => {
                let now = a.now() + ahead / 4;
                let (mut fa, mut fb) = (Vec::new(), Vec::new());
                a.advance(now, |i| fa.push(i));
                b.advance(now, |i| fb.push(i));
                assert_eq!(fa, fb, "step {step}");
            }
        }
        assert_eq!(a.next_deadline(), b.next_deadline());
        assert_eq!(a.deadline(index), b.deadline(index));
        assert_same_state(a, b);
    }
}

#[test]
fn init_in_builds_what_new_builds() {
    let mut by_value: TimerWheel<[TimerEntry; 16]> = TimerWheel::new();
    let mut place = MaybeUninit::uninit();
    let in_place: &mut TimerWheel<[TimerEntry; 16]> = TimerWheel::init_in(&mut place);
    assert_same_state(&by_value, in_place);
    assert_eq!((in_place.capacity(), in_place.now()), (16, 0));
    assert!(in_place.is_empty());
    let steps = if cfg!(miri) { 300 } else { 20_000 };
    assert_same_behaviour(&mut by_value, in_place, 13, steps);
}

#[test]
fn init_in_overwrites_a_used_wheel() {
    let mut place = MaybeUninit::new(TimerWheel::<[TimerEntry; 3]>::new());
    // SAFETY: `place` holds an initialised wheel.
    let used = unsafe { place.assume_init_mut() };
    used.insert(1, 500).unwrap();
    used.poll(100);
    let wheel = TimerWheel::init_in(&mut place);
    assert_same_state(&TimerWheel::new(), wheel);
    let mut empty: TimerWheel<[TimerEntry; 0]> = TimerWheel::new();
    let mut zero = MaybeUninit::uninit();
    let in_place = TimerWheel::init_in(&mut zero);
    assert_same_state(&empty, in_place);
    assert_same_behaviour(&mut empty, in_place, 17, 50);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a megabyte of entries is slow under miri; nothing to check"
)]
fn init_in_needs_no_stack_for_the_wheel() {
    // 65536 entries of 16 bytes (1 MiB), built by a thread with 64 KiB of stack. `new`
    // would overflow it (it builds the wheel on the stack).
    type Big = TimerWheel<[TimerEntry; 65_536]>;
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut place: std::boxed::Box<MaybeUninit<Big>> = std::boxed::Box::new_uninit();
            let wheel = Big::init_in(&mut place);
            for index in 0..65_536 {
                wheel.insert(index, index as u64 * 7).unwrap();
            }
            let mut fired = 0;
            wheel.advance(u64::MAX, |_| fired += 1);
            assert_eq!(fired, 65_536);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[cfg(feature = "alloc")]
#[test]
fn boxed_storage() {
    let mut wheel = TimerWheel::with_capacity(100);
    for i in 0..100 {
        wheel.insert(i, (i as u64) * 977).unwrap();
    }
    let mut order = Vec::new();
    wheel.advance(u64::MAX, |i| order.push(i));
    assert_eq!(order, (0..100).collect::<Vec<_>>());
}
