//! Fuzz the priority queue against one `VecDeque` per level: strict mode must match the
//! model exactly; weighted mode must pop the front of some non-empty level; `Full` exactly
//! when the model's level is at capacity.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use errand_core::{BoxedPriorityQueue, Level, Mode, Priority, PushError};
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
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 16) + 1;
    let mode = if input.weighted {
        Mode::Weighted
    } else {
        Mode::Strict
    };
    let queue = BoxedPriorityQueue::<u32>::with_capacity(capacity, mode);
    let mut model: [VecDeque<u32>; Level::COUNT] = Default::default();
    for (n, op) in input.ops.into_iter().enumerate() {
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
});
