//! Property tests: the priority queue against a model of one `VecDeque` per level.

use std::collections::VecDeque;

use errand_core::{
    BoxedPriorityQueue, InlinePriorityQueue, Level, Mode, Priority, PriorityQueue, PushError,
    RingStorage, SegmentedPriorityQueue,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[derive(Clone, Debug)]
enum Op {
    Push(u8),
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![any::<u8>().prop_map(Op::Push), Just(Op::Pop)]
}

/// The reference: one FIFO per level, each holding at most `capacity` items.
struct Model {
    levels: [VecDeque<u32>; Level::COUNT],
    capacity: usize,
}

impl Model {
    fn new(capacity: usize) -> Self {
        Model {
            levels: Default::default(),
            capacity,
        }
    }

    fn push(&mut self, item: u32, priority: Priority) -> Result<(), u32> {
        let level = &mut self.levels[priority.level().index()];
        if level.len() == self.capacity {
            return Err(item);
        }
        level.push_back(item);
        Ok(())
    }

    fn pop_strict(&mut self) -> Option<(u32, Level)> {
        Level::ALL
            .iter()
            .rev()
            .find_map(|&l| self.levels[l.index()].pop_front().map(|i| (i, l)))
    }
}

/// Runs `ops` on a strict `queue` of `capacity` per level and on the model, checking every
/// answer; returns how many pushes each level accepted.
fn matches_strict_model<S: RingStorage<u32>>(
    queue: &PriorityQueue<u32, S>,
    capacity: usize,
    ops: Vec<Op>,
) -> Result<[usize; Level::COUNT], TestCaseError> {
    let mut model = Model::new(capacity);
    let mut pushed = [0; Level::COUNT];
    for (n, op) in ops.into_iter().enumerate() {
        let item = n as u32;
        match op {
            Op::Push(p) => {
                let got = queue.push(item, Priority(p)).map_err(PushError::into_inner);
                prop_assert_eq!(got, model.push(item, Priority(p)));
                pushed[Priority(p).level().index()] += usize::from(got.is_ok());
            }
            Op::Pop => prop_assert_eq!(queue.pop(), model.pop_strict()),
        }
        for level in Level::ALL {
            prop_assert_eq!(queue.level_len(level), model.levels[level.index()].len());
        }
        prop_assert_eq!(
            queue.is_empty(),
            model.levels.iter().all(VecDeque::is_empty)
        );
    }
    Ok(pushed)
}

proptest! {
    /// Strict mode behaves exactly like the model: same items, same order, same `Full`s.
    #[test]
    fn strict_matches_model(capacity in 1usize..6, ops in prop::collection::vec(op(), 0..300)) {
        let queue = BoxedPriorityQueue::<u32>::with_capacity(capacity, Mode::Strict);
        matches_strict_model(&queue, capacity, ops)?;
    }

    /// Segmented storage behaves the same, whatever the segment length, and holds the
    /// slots of the positions each level has reached: as many as it accepted pushes,
    /// rounded up to whole segments, at most its capacity.
    #[test]
    fn segmented_strict_matches_model(
        capacity in 1usize..12,
        shift in 0u32..4,
        ops in prop::collection::vec(op(), 0..300),
    ) {
        let segment_len = 1 << shift;
        let queue = SegmentedPriorityQueue::<u32>::segmented(capacity, segment_len, Mode::Strict);
        let pushed = matches_strict_model(&queue, capacity, ops)?;
        for level in Level::ALL {
            let whole = pushed[level.index()].div_ceil(segment_len) * segment_len;
            prop_assert_eq!(queue.allocated_slots(level), whole.min(capacity));
        }
    }

    /// Inline storage behaves the same (capacity 3 per level).
    #[test]
    fn inline_strict_matches_model(ops in prop::collection::vec(op(), 0..200)) {
        let queue = InlinePriorityQueue::<u32, 3>::new(Mode::Strict);
        let mut model = Model::new(3);
        for (n, op) in ops.into_iter().enumerate() {
            let item = n as u32;
            match op {
                Op::Push(p) => {
                    let got = queue.push(item, Priority(p)).map_err(PushError::into_inner);
                    prop_assert_eq!(got, model.push(item, Priority(p)));
                }
                Op::Pop => prop_assert_eq!(queue.pop(), model.pop_strict()),
            }
        }
        prop_assert_eq!(queue.len(), model.levels.iter().map(VecDeque::len).sum::<usize>());
    }

    /// Weighted mode: each pop returns the front of some non-empty model level (FIFO within
    /// a level, `Full` exactly at capacity), `None` only when the model is empty.
    #[test]
    fn weighted_is_fifo_per_level(capacity in 1usize..6, ops in prop::collection::vec(op(), 0..300)) {
        let queue = BoxedPriorityQueue::<u32>::with_capacity(capacity, Mode::Weighted);
        let mut model = Model::new(capacity);
        for (n, op) in ops.into_iter().enumerate() {
            let item = n as u32;
            match op {
                Op::Push(p) => {
                    let got = queue.push(item, Priority(p)).map_err(PushError::into_inner);
                    prop_assert_eq!(got, model.push(item, Priority(p)));
                }
                Op::Pop => match queue.pop() {
                    Some((got, level)) => {
                        prop_assert_eq!(model.levels[level.index()].pop_front(), Some(got));
                    }
                    None => prop_assert!(model.levels.iter().all(VecDeque::is_empty)),
                },
            }
        }
    }

    /// Weighted mode over a long run with every level kept busy: pops follow the weights
    /// 20:10:5:1 exactly per 36 turns, and no level starves.
    #[test]
    fn weighted_follows_the_weights(cycles in 1usize..8, refill in prop::collection::vec(0u8..=255, 36)) {
        let queue = BoxedPriorityQueue::<u32>::with_capacity(64, Mode::Weighted);
        // Keep each level non-empty: 36 items per level to start.
        for level in Level::ALL {
            for _ in 0..36 {
                queue.push(0, level.priority()).unwrap();
            }
        }
        let mut counts = [0usize; Level::COUNT];
        for _ in 0..cycles {
            for &p in &refill {
                let (_, level) = queue.pop().unwrap();
                counts[level.index()] += 1;
                // Put one back on the level just served, so every level stays busy.
                queue.push(u32::from(p), level.priority()).unwrap();
            }
        }
        let expected: Vec<usize> = Level::ALL.iter().map(|l| l.weight() as usize * cycles).collect();
        prop_assert_eq!(counts.to_vec(), expected);
    }

    /// Weighted mode with levels that empty and refill at random: no non-empty level waits
    /// more than 36 pops.
    #[test]
    fn weighted_starves_nobody(ops in prop::collection::vec(op(), 0..400)) {
        let queue = BoxedPriorityQueue::<u32>::with_capacity(8, Mode::Weighted);
        // Pops since each level was last served while non-empty.
        let mut waited = [0usize; Level::COUNT];
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(p) => {
                    let _ = queue.push(n as u32, Priority(p));
                }
                Op::Pop => {
                    let busy: Vec<bool> = Level::ALL.iter().map(|&l| !queue.level_is_empty(l)).collect();
                    if let Some((_, served)) = queue.pop() {
                        for level in Level::ALL {
                            if level == served || !busy[level.index()] {
                                waited[level.index()] = 0;
                            } else {
                                waited[level.index()] += 1;
                                prop_assert!(waited[level.index()] <= 36, "{level} waited {} pops", waited[level.index()]);
                            }
                        }
                    }
                }
            }
        }
    }
}
