//! Fuzz the priority queue against one `VecDeque` per level: strict mode must match the
//! model exactly; weighted mode must pop the front of some non-empty level; `Full` exactly
//! when the model's level is at capacity. The queue is boxed, or segmented with segments
//! of 1 to 16 slots.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use errand_core::{
    BoxedPriorityQueue, Level, Mode, Priority, PriorityQueue, PushError, RingStorage,
    SegmentedPriorityQueue,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Push(u8),
    Pop,
    Len,
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    weighted: bool,
    /// 0: boxed; otherwise segments of `2^(n % 5)` slots.
    segments: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 16) + 1;
    let mode = if input.weighted {
        Mode::Weighted
    } else {
        Mode::Strict
    };
    if input.segments == 0 {
        let queue = BoxedPriorityQueue::<u32>::with_capacity(capacity, mode);
        run(&queue, capacity, mode, input.ops);
    } else {
        let segment_len = 1 << (input.segments % 5);
        let queue = SegmentedPriorityQueue::<u32>::segmented(capacity, segment_len, mode);
        run(&queue, capacity, mode, input.ops);
    }
});

fn run<S: RingStorage<u32>>(
    queue: &PriorityQueue<u32, S>,
    capacity: usize,
    mode: Mode,
    ops: Vec<Op>,
) {
    let mut model: [VecDeque<u32>; Level::COUNT] = Default::default();
    for (n, op) in ops.into_iter().enumerate() {
        let item = n as u32;
        match op {
            Op::Push(p) => {
                let level = &mut model[Priority(p).level().index()];
                match queue.push(item, Priority(p)) {
                    Ok(()) => {
                        assert!(level.len() < capacity);
                        level.push_back(item);
                    }
                    Err(PushError::Full(back)) => {
                        assert_eq!(back, item);
                        assert_eq!(level.len(), capacity);
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            Op::Pop => match queue.pop() {
                Some((got, level)) => {
                    if mode == Mode::Strict {
                        let highest = Level::ALL
                            .iter()
                            .rev()
                            .find(|l| !model[l.index()].is_empty());
                        assert_eq!(Some(&level), highest);
                    }
                    assert_eq!(model[level.index()].pop_front(), Some(got));
                }
                None => assert!(model.iter().all(VecDeque::is_empty)),
            },
            Op::Len => {
                for level in Level::ALL {
                    assert_eq!(queue.level_len(level), model[level.index()].len());
                }
                assert_eq!(queue.len(), model.iter().map(VecDeque::len).sum::<usize>());
            }
        }
    }
}
