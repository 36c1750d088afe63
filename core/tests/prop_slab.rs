//! `SlotTable` against a model: the set of live ids.

use std::collections::BTreeSet;

use errand_core::{Entry, SlotTable, SlotsExhausted, StaleId, TaskId};
use proptest::prelude::*;

const CAPACITY: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    /// Release the n-th live id (modulo the number live).
    ReleaseLive(usize),
    /// Release the n-th id ever released (a stale id or a double release).
    ReleaseStale(usize),
    /// Release an arbitrary id.
    ReleaseForeign(u32, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        3 => any::<usize>().prop_map(Op::ReleaseLive),
        1 => any::<usize>().prop_map(Op::ReleaseStale),
        1 => (0..CAPACITY as u32 + 2, any::<u32>()).prop_map(|(i, g)| Op::ReleaseForeign(i, g)),
    ]
}

fn check_model(
    table: &SlotTable<usize, [Entry<usize>; CAPACITY]>,
    live: &BTreeSet<TaskId>,
    dead: &[TaskId],
) {
    assert_eq!(table.len(), live.len());
    assert_eq!(table.capacity(), CAPACITY);
    for &id in live {
        assert_eq!(table.get(id), Some(&(id.index() as usize)));
        assert_eq!(table.id_at(id.index() as usize), Some(id));
    }
    for &id in dead {
        assert!(table.get(id).is_none(), "stale {id} still reaches its slot");
    }
    // At most one live id per slot.
    let indices: BTreeSet<u32> = live.iter().map(|id| id.index()).collect();
    assert_eq!(indices.len(), live.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_matches_live_set_model(ops in prop::collection::vec(op(), 0..200)) {
        let table: SlotTable<usize, [Entry<usize>; CAPACITY]> = SlotTable::new(|index| index);
        let mut live = BTreeSet::new();
        let mut dead: Vec<TaskId> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire => match table.acquire() {
                    Ok((id, value)) => {
                        prop_assert!(live.len() < CAPACITY);
                        prop_assert_eq!(*value, id.index() as usize);
                        prop_assert_eq!(id.generation() % 2, 1);
                        prop_assert!(!dead.contains(&id), "id {} reused", id);
                        prop_assert!(live.insert(id));
                    }
                    Err(err) => {
                        prop_assert_eq!(live.len(), CAPACITY);
                        prop_assert_eq!(err, table.acquire().unwrap_err());
                        prop_assert_eq!(err.to_string(), format!("slots exhausted: all {CAPACITY} slots are in use"));
                        let _: SlotsExhausted = err;
                    }
                },
                Op::ReleaseLive(n) => {
                    if let Some(&id) = live.iter().nth(n % live.len().max(1)) {
                        prop_assert_eq!(table.release(id), Ok(()));
                        live.remove(&id);
                        dead.push(id);
                        // A double release right away is rejected too.
                        prop_assert_eq!(table.release(id).map_err(|e: StaleId| e.id), Err(id));
                    }
                }
                Op::ReleaseStale(n) => {
                    if !dead.is_empty() {
                        let id = dead[n % dead.len()];
                        prop_assert_eq!(table.release(id).map_err(|e: StaleId| e.id), Err(id));
                    }
                }
                Op::ReleaseForeign(index, generation) => {
                    let id = TaskId::new(index, generation);
                    let result = table.release(id);
                    if live.remove(&id) {
                        prop_assert_eq!(result, Ok(()));
                        dead.push(id);
                    } else {
                        prop_assert_eq!(result.map_err(|e| e.id), Err(id));
                    }
                }
            }
            check_model(&table, &live, &dead);
        }
        // Everything goes back; then the whole capacity is available again.
        for id in std::mem::take(&mut live) {
            prop_assert_eq!(table.release(id), Ok(()));
        }
        prop_assert!(table.is_empty());
        let again: Vec<_> = (0..CAPACITY).map(|_| table.acquire().unwrap().0).collect();
        prop_assert!(table.acquire().is_err());
        prop_assert_eq!(again.iter().map(|id| id.index()).collect::<BTreeSet<_>>().len(), CAPACITY);
    }
}
