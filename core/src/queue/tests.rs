//! Unit tests of the priority queue (the loom models are in `core/tests/loom_queue.rs`).

use super::schedule::FULL_MASK;
use super::*;
use crate::storage::Storage;
use std::rc::Rc;
use std::sync::Arc;
use std::vec::Vec;

/// Positions past 2^32: the 32-bit stamps wrap while `head` and `tail` do not, and the
/// ring stays FIFO, knows full from empty, and refuses a push only when full.
#[cfg(target_pointer_width = "64")]
#[test]
fn stamps_wrap_past_two_to_the_32() {
    let queue = InlinePriorityQueue::<usize, 3>::new(Mode::Strict);
    let one_lap = queue.one_lap;
    // The lap that ends exactly at 2^32, then a few more.
    let start = (1usize << 32) - one_lap;
    for ring in &queue.rings {
        ring.head.store(start, Ordering::Relaxed);
        ring.tail.store(start, Ordering::Relaxed);
        for (index, slot) in ring.slots.cells().iter().enumerate() {
            slot.stamp.store(stamp(start + index), Ordering::Relaxed);
        }
    }
    let mut next = 0;
    for _ in 0..8 {
        for item in next..next + 3 {
            queue.push(item, Priority::NORMAL).unwrap();
        }
        assert_eq!(queue.push(99, Priority::NORMAL), Err(PushError::Full(99)));
        for item in next..next + 3 {
            assert_eq!(queue.pop(), Some((item, Level::Normal)));
        }
        assert_eq!(queue.pop(), None);
        next += 3;
    }
    assert!(
        queue.rings[Level::Normal.index()]
            .tail
            .load(Ordering::Relaxed)
            > 1 << 32
    );
}

#[test]
fn schedule_has_the_weights() {
    let mut counts = [0u32; Level::COUNT];
    for &l in &SCHEDULE {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1, 5, 10, 20]);
    // Smooth: critical never waits more than one turn in a row.
    for w in SCHEDULE.windows(3) {
        assert!(w.contains(&3), "{SCHEDULE:?}");
    }
}

#[test]
fn send_and_sync_need_only_send_items() {
    fn shareable<Q: Send + Sync>() {}
    // `Cell` is `Send` but not `Sync`: a queue of them still crosses threads.
    shareable::<InlinePriorityQueue<core::cell::Cell<u8>, 1>>();
    shareable::<BoxedPriorityQueue<std::vec::Vec<u8>>>();
}

#[test]
fn first_scheduled_follows_the_schedule() {
    for start in 0..36 {
        for bits in 1..=FULL_MASK {
            let expected = (0..36)
                .map(|k| SCHEDULE[(start + k) % 36] as usize)
                .find(|&l| bits & (1 << l) != 0)
                .unwrap();
            assert_eq!(scheduled(bits, start), expected);
        }
    }
}

#[test]
fn strict_order_and_fifo() {
    let q = InlinePriorityQueue::<u32, 4>::new(Mode::Strict);
    q.push(1, Priority::LOW).unwrap();
    q.push(2, Priority::HIGH).unwrap();
    q.push(3, Priority::LOW).unwrap();
    q.push(4, Priority::HIGH).unwrap();
    q.push(5, Priority(0)).unwrap();
    assert_eq!(q.len(), 5);
    let order: Vec<_> = core::iter::from_fn(|| q.pop()).collect();
    assert_eq!(
        order,
        [
            (2, Level::High),
            (4, Level::High),
            (1, Level::Low),
            (3, Level::Low),
            (5, Level::Low)
        ]
    );
    assert!(q.is_empty());
}

#[test]
fn full_per_level_and_wraps_around() {
    let q = InlinePriorityQueue::<u32, 3>::new(Mode::Strict);
    for round in 0..5 {
        for i in 0..3 {
            q.push(round * 10 + i, Priority::NORMAL).unwrap();
        }
        assert_eq!(q.push(99, Priority::NORMAL), Err(PushError::Full(99)));
        assert_eq!(q.level_len(Level::Normal), 3);
        q.push(7, Priority::CRITICAL).unwrap();
        assert_eq!(q.pop(), Some((7, Level::Critical)));
        for i in 0..3 {
            assert_eq!(q.pop(), Some((round * 10 + i, Level::Normal)));
        }
        assert_eq!(q.pop(), None);
    }
}

#[test]
fn weighted_serves_every_level() {
    let q = BoxedPriorityQueue::<u32>::with_capacity(64, Mode::Weighted);
    for level in Level::ALL {
        for _ in 0..36 {
            q.push(level.index() as u32, level.priority()).unwrap();
        }
    }
    let mut counts = [0u32; Level::COUNT];
    for _ in 0..36 {
        let (item, level) = q.pop().unwrap();
        assert_eq!(item as usize, level.index());
        counts[level.index()] += 1;
    }
    assert_eq!(counts, [1, 5, 10, 20]);
    // Empty turns fall through: everything comes out.
    let mut rest = 0;
    while q.pop().is_some() {
        rest += 1;
    }
    assert_eq!(rest, 4 * 36 - 36);
}

#[test]
fn drop_drops_what_is_left() {
    let token = Rc::new(());
    {
        let q = InlinePriorityQueue::<Rc<()>, 2>::new(Mode::Strict);
        for level in Level::ALL {
            q.push(Rc::clone(&token), level.priority()).unwrap();
            q.push(Rc::clone(&token), level.priority()).unwrap();
            drop(q.pop());
            q.push(Rc::clone(&token), level.priority()).unwrap();
        }
        assert_eq!(Rc::strong_count(&token), 9);
    }
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn error_and_debug() {
    let e = PushError::Full(5);
    assert_eq!(
        std::format!("{e}"),
        "queue full: the item's level is at its capacity"
    );
    assert_eq!(std::format!("{e:?}"), "Full(..)");
    assert_eq!(e.into_inner(), 5);
    let q = InlinePriorityQueue::<u8, 1>::new(Mode::Weighted);
    q.push(1, Priority::LOW).unwrap();
    assert!(std::format!("{q:?}").contains("len: [1, 0, 0, 0]"));
}

/// Every field of two queues, slot by slot (the values are not compared: a slot's value
/// is only initialised while its stamp says so, and both queues must agree on that). A
/// slot whose segment is not allocated reads as stamped free for its lap-0 position, the
/// stamp it gets when it is (rule 8).
fn assert_same_state<T, A: RingStorage<T>, B: RingStorage<T>>(
    a: &PriorityQueue<T, A>,
    b: &PriorityQueue<T, B>,
) {
    let load = |word: &AtomicUsize| word.load(Ordering::Relaxed);
    assert_eq!(load(&a.summary), load(&b.summary));
    assert_eq!(load(&a.turn), load(&b.turn));
    assert_eq!((a.cap, a.one_lap, a.mode), (b.cap, b.one_lap, b.mode));
    for (ra, rb) in a.rings.iter().zip(&b.rings) {
        assert_eq!(load(&ra.head), load(&rb.head));
        assert_eq!(load(&ra.tail), load(&rb.tail));
        let stamps = |slots: &dyn Fn(usize) -> Option<u32>| -> Vec<u32> {
            (0..a.cap)
                .map(|index| slots(index).unwrap_or(stamp(index)))
                .collect()
        };
        let of = |slot: Option<&Slot<T>>| slot.map(|s| s.stamp.load(Ordering::Relaxed));
        assert_eq!(
            stamps(&|index| of(ra.slots.slot(index))),
            stamps(&|index| of(rb.slots.slot(index)))
        );
    }
}

/// Pushes and pops at random (the same sequence on both queues) and checks that they
/// answer alike and end in the same state.
fn assert_same_behaviour<A: RingStorage<u64>, B: RingStorage<u64>>(
    a: &PriorityQueue<u64, A>,
    b: &PriorityQueue<u64, B>,
    seed: u64,
    steps: usize,
) {
    use crate::backoff::{RandomSource, SplitMix64};
    let mut rng = SplitMix64::new(seed);
    for step in 0..steps as u64 {
        let word = rng.next_u64();
        if word % 3 == 0 {
            assert_eq!(a.pop(), b.pop(), "pop at step {step}");
        } else {
            let priority = Priority((word >> 8) as u8 % 25);
            assert_eq!(a.push(step, priority), b.push(step, priority));
        }
        assert_eq!(a.len(), b.len());
    }
    assert_same_state(a, b);
    loop {
        let (x, y) = (a.pop(), b.pop());
        assert_eq!(x, y);
        if x.is_none() {
            break;
        }
    }
}

#[test]
fn init_in_builds_what_new_builds() {
    for mode in [Mode::Strict, Mode::Weighted] {
        let by_value = InlinePriorityQueue::<u64, 5>::new(mode);
        let mut place = MaybeUninit::uninit();
        let in_place = InlinePriorityQueue::<u64, 5>::init_in(&mut place, mode);
        assert_same_state(&by_value, in_place);
        assert_eq!(in_place.capacity_per_level(), 5);
        assert_eq!(in_place.mode(), mode);
        assert!(in_place.is_empty());
        // Full levels, wrap-around and every level, in both modes.
        assert_same_behaviour(&by_value, in_place, 7, if cfg!(miri) { 300 } else { 5_000 });
        // SAFETY: `init_in` initialised `place`, and `in_place` is not used again.
        unsafe { place.assume_init_drop() };
    }
}

#[test]
fn init_in_on_the_heap_with_a_power_of_two_capacity() {
    // N = 8: `one_lap` is 16, the first power of two above N.
    type Queue = InlinePriorityQueue<u64, 8>;
    let by_value = Queue::new(Mode::Weighted);
    let mut place: std::boxed::Box<MaybeUninit<Queue>> = std::boxed::Box::new_uninit();
    let in_place = Queue::init_in(&mut place, Mode::Weighted);
    assert_eq!(in_place.one_lap, 16);
    assert_same_state(&by_value, in_place);
    assert_same_behaviour(
        &by_value,
        in_place,
        11,
        if cfg!(miri) { 300 } else { 5_000 },
    );
}

/// A segmented queue answers like a boxed one of the same capacity, through full levels
/// and wrap-around, whatever the segment length (one slot, a short last segment, one
/// segment for the whole level), and ends with the same stamps.
#[test]
fn segments_behave_like_boxed_storage() {
    let steps = if cfg!(miri) { 300 } else { 5_000 };
    for (cap, segment_len) in [(5, 1), (5, 2), (7, 4), (8, 8), (3, 16)] {
        for mode in [Mode::Strict, Mode::Weighted] {
            let boxed = BoxedPriorityQueue::<u64>::with_capacity(cap, mode);
            let segmented = SegmentedPriorityQueue::<u64>::segmented(cap, segment_len, mode);
            assert_same_state(&boxed, &segmented);
            assert_same_behaviour(&boxed, &segmented, cap as u64, steps);
        }
    }
}

/// Segments are allocated as a level first reaches them, whole, never more than the
/// level's capacity; dropping the queue drops what it still holds and frees them.
#[test]
fn segments_grow_as_a_level_fills_and_drop_their_items() {
    let queue = SegmentedPriorityQueue::<Rc<u8>>::segmented(10, 4, Mode::Strict);
    let item = Rc::new(0);
    assert_eq!(queue.allocated_slots(Level::Normal), 0);
    for n in 1..=10_usize {
        queue.push(Rc::clone(&item), Priority::NORMAL).unwrap();
        assert_eq!(
            queue.allocated_slots(Level::Normal),
            (n.div_ceil(4) * 4).min(10)
        );
    }
    assert!(queue.push(Rc::clone(&item), Priority::NORMAL).is_err());
    assert_eq!(queue.allocated_slots(Level::Critical), 0);
    drop(queue.pop());
    assert_eq!(Rc::strong_count(&item), 10);
    drop(queue);
    assert_eq!(Rc::strong_count(&item), 1);
}

#[test]
fn init_in_overwrites_without_reading() {
    // A place that already holds a queue (with items) is built over, not read.
    let mut place = MaybeUninit::new(InlinePriorityQueue::<u64, 2>::new(Mode::Weighted));
    // SAFETY: `place` holds an initialised queue.
    unsafe { place.assume_init_ref() }
        .push(1, Priority::HIGH)
        .unwrap();
    let queue = InlinePriorityQueue::<u64, 2>::init_in(&mut place, Mode::Strict);
    assert_eq!(queue.mode(), Mode::Strict);
    assert_eq!(queue.pop(), None);
}

#[test]
fn init_in_drops_nothing_but_the_owner_can() {
    let token = Rc::new(());
    let mut place = MaybeUninit::uninit();
    let queue = InlinePriorityQueue::<Rc<()>, 3>::init_in(&mut place, Mode::Strict);
    queue.push(Rc::clone(&token), Priority::LOW).unwrap();
    queue.push(Rc::clone(&token), Priority::HIGH).unwrap();
    drop(queue.pop());
    assert_eq!(Rc::strong_count(&token), 2);
    // SAFETY: `init_in` initialised `place`; the queue is not used after.
    unsafe { place.assume_init_drop() };
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a megabyte of slots is slow under miri; nothing to check"
)]
fn init_in_needs_no_stack_for_the_queue() {
    // 4 levels of 32768 slots of 16 bytes: 2 MiB, built by a thread with 64 KiB of
    // stack. `new` would overflow it (it builds the queue on the stack).
    type Big = InlinePriorityQueue<u64, 32_768>;
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut place: std::boxed::Box<MaybeUninit<Big>> = std::boxed::Box::new_uninit();
            let queue = Big::init_in(&mut place, Mode::Strict);
            for i in 0..32_768 {
                queue.push(i, Priority::NORMAL).unwrap();
            }
            assert!(queue.push(0, Priority::NORMAL).is_err());
            assert_eq!(queue.pop(), Some((0, Level::Normal)));
            assert_eq!(queue.level_len(Level::Normal), 32_767);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn threads_lose_nothing() {
    let q = Arc::new(BoxedPriorityQueue::<usize>::with_capacity(8, Mode::Strict));
    let per = if cfg!(miri) { 50 } else { 5_000 };
    let producers: Vec<_> = (0..2)
        .map(|t| {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for i in 0..per {
                    let mut item = t * per + i;
                    while let Err(PushError::Full(back)) = q.push(item, Priority((i % 25) as u8)) {
                        item = back;
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut seen = std::vec![false; 2 * per];
    let mut got = 0;
    while got < 2 * per {
        if let Some((i, _)) = q.pop() {
            assert!(!seen[i]);
            seen[i] = true;
            got += 1;
        } else {
            std::thread::yield_now();
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(q.is_empty());
}
