//! [`Mode::Weighted`](super::Mode::Weighted)'s schedule, computed at compile time: the order of its 36 turns,
//! and for each turn and each set of non-empty levels the level that turn serves.

use crate::priority::Level;

/// The order of the 36 turns of [`Mode::Weighted`](super::Mode::Weighted): smooth weighted round-robin over the
/// weights 1, 5, 10, 20 (each turn every level gains its weight, the richest level is
/// served and pays 36), which spreads each level's turns evenly over the cycle.
pub(super) const SCHEDULE: [u8; 36] = weighted_schedule();

const fn weighted_schedule() -> [u8; 36] {
    let mut out = [0u8; 36];
    let mut credit = [0i32; Level::COUNT];
    let mut turn = 0;
    while turn < 36 {
        let mut best = 0;
        let mut l = 0;
        while l < Level::COUNT {
            credit[l] += Level::ALL[l].weight() as i32;
            // Ties go to the higher level.
            if credit[l] >= credit[best] {
                best = l;
            }
            l += 1;
        }
        credit[best] -= 36;
        out[turn] = best as u8;
        turn += 1;
    }
    out
}

/// The first level on the weighted schedule from turn `start` whose bit is set in the
/// non-zero `bits`: one lookup in [`FIRST_SCHEDULED`].
#[inline]
pub(super) fn scheduled(bits: usize, start: usize) -> usize {
    FIRST_SCHEDULED[start][bits & (FULL_MASK)] as usize
}

/// Every summary value: one bit per level.
pub(super) const FULL_MASK: usize = (1 << Level::COUNT) - 1;

/// `FIRST_SCHEDULED[turn][bits]`: the first level on [`SCHEDULE`], from `turn` on and
/// wrapping around, whose bit is set in `bits` (entries for `bits == 0` are unused).
const FIRST_SCHEDULED: [[u8; FULL_MASK + 1]; 36] = first_scheduled();

const fn first_scheduled() -> [[u8; FULL_MASK + 1]; 36] {
    let mut table = [[0u8; FULL_MASK + 1]; 36];
    let mut start = 0;
    while start < 36 {
        let mut bits = 1;
        while bits <= FULL_MASK {
            let mut turn = start;
            while bits & (1 << SCHEDULE[turn]) == 0 {
                turn = (turn + 1) % 36;
            }
            table[start][bits] = SCHEDULE[turn];
            bits += 1;
        }
        start += 1;
    }
    table
}
