//! Unit tests of the slot table (the loom models are in `core/tests/loom_slab.rs`).

use super::*;
use core::mem::MaybeUninit;
use std::string::ToString;
use std::vec::Vec;

type Table<const N: usize> = SlotTable<usize, [Entry<usize>; N]>;

#[test]
fn hands_out_every_slot_once_then_exhausts() {
    let table: Table<3> = SlotTable::new(|index| index * 10);
    let mut ids = Vec::new();
    for expected in 0..3 {
        let (id, value) = table.acquire().unwrap();
        assert_eq!(id.index() as usize, expected);
        assert_eq!(*value, expected * 10);
        ids.push(id);
    }
    assert_eq!(table.len(), 3);
    let err = table.acquire().unwrap_err();
    assert_eq!(err, SlotsExhausted { capacity: 3 });
    assert_eq!(err.to_string(), "slots exhausted: all 3 slots are in use");
    for id in ids {
        table.release(id).unwrap();
    }
    assert!(table.is_empty());
}

#[test]
fn stale_and_double_release_are_errors() {
    let table: Table<1> = SlotTable::new(|index| index);
    let (id, _) = table.acquire().unwrap();
    table.release(id).unwrap();
    assert_eq!(table.release(id), Err(StaleId { id }));
    let (reused, _) = table.acquire().unwrap();
    assert_eq!(reused.index(), id.index());
    assert_eq!(reused.generation(), id.generation() + 2);
    assert_eq!(table.release(id), Err(StaleId { id }));
    assert!(table.get(id).is_none());
    assert_eq!(table.get(reused), Some(&0));
    assert_eq!(table.id_at(0), Some(reused));
    assert_eq!(table.id_at(1), None, "out of range");
    assert_eq!(table.len(), 1);
}

#[test]
fn foreign_ids_are_rejected() {
    let table: Table<2> = SlotTable::new(|index| index);
    let (id, _) = table.acquire().unwrap();
    for bad in [
        TaskId::new(2, 1),
        TaskId::new(u32::MAX, 1),
        TaskId::new(0, 0),
        TaskId::new(0, 3),
    ] {
        assert!(table.get(bad).is_none());
        assert_eq!(table.release(bad), Err(StaleId { id: bad }));
    }
    assert!(table.contains(id));
    assert_eq!(
        StaleId {
            id: TaskId::new(2, 1)
        }
        .to_string(),
        "stale task id t-2-1: slot 2 is not in this use"
    );
}

#[test]
fn empty_table_is_always_exhausted() {
    let table: Table<0> = SlotTable::new(|index| index);
    assert_eq!(table.acquire().unwrap_err().capacity, 0);
    assert_eq!(table.capacity(), 0);
}

#[test]
fn generation_wraps_and_stays_odd_when_live() {
    let table: Table<1> = SlotTable::new(|index| index);
    table.entries[0]
        .stamp
        .store(u32::MAX - 1, Ordering::Relaxed);
    let (id, _) = table.acquire().unwrap();
    assert_eq!(id.generation(), u32::MAX);
    table.release(id).unwrap();
    let (next, _) = table.acquire().unwrap();
    assert_eq!(next.generation(), 1);
    assert!(table.get(id).is_none());
}

#[test]
fn freed_slots_wait_until_the_pool_is_used_up() {
    let table: Table<4> = SlotTable::new(|index| index);
    let a = table.acquire().unwrap().0;
    let b = table.acquire().unwrap().0;
    table.release(a).unwrap();
    table.release(b).unwrap();
    // The never-used slots first, then the returns, last freed first.
    let order: Vec<_> = (0..4).map(|_| table.acquire().unwrap().0.index()).collect();
    assert_eq!(order, [2, 3, b.index(), a.index()]);
    assert!(table.acquire().is_err());
}

#[test]
fn a_chain_moved_onto_a_non_empty_pool_goes_in_front() {
    let table: Table<4> = SlotTable::new(|index| index);
    let a = table.acquire().unwrap().0;
    let b = table.acquire().unwrap().0;
    table.release(a).unwrap();
    table.release(b).unwrap();
    // As if another acquire had refilled the pool (2, 3) while this one held the
    // returns' chain (b, a): the chain is linked in front of it.
    let first = table.returns.swap(NIL, Ordering::AcqRel);
    assert_eq!(first, b.index() as usize);
    table.move_to_pool(table.entries.cells(), first);
    let order: Vec<_> = (0..4).map(|_| table.acquire().unwrap().0.index()).collect();
    assert_eq!(order, [b.index(), a.index(), 2, 3]);
    assert!(table.acquire().is_err());
}

#[cfg(feature = "alloc")]
#[test]
fn boxed_storage_sized_at_run_time() {
    let table = SlotTable::with_capacity(5, |index| index);
    assert_eq!(table.capacity(), 5);
    let ids: Vec<_> = (0..5).map(|_| table.acquire().unwrap().0).collect();
    assert!(table.acquire().is_err());
    for id in ids {
        table.release(id).unwrap();
    }
}

#[test]
#[should_panic(expected = "exceeds the maximum")]
fn capacity_above_the_limit_is_refused() {
    assert_capacity(SlotTable::<u8, [Entry<u8>; 0]>::MAX_CAPACITY + 1);
}

/// Every field of two tables, slot by slot.
fn assert_same_state<T: PartialEq + fmt::Debug, S: Storage<Entry<T>>>(
    a: &SlotTable<T, S>,
    b: &SlotTable<T, S>,
) {
    let load = |word: &AtomicUsize| word.load(Ordering::Relaxed);
    assert_eq!(load(&a.words.head), load(&b.words.head));
    assert_eq!(load(&a.words.len), load(&b.words.len));
    assert_eq!(load(&a.returns), load(&b.returns));
    let slots = |table: &SlotTable<T, S>| -> Vec<(u32, usize)> {
        table
            .entries
            .cells()
            .iter()
            .map(|e| (e.stamp.load(Ordering::Relaxed), e.next(Ordering::Relaxed)))
            .collect()
    };
    assert_eq!(slots(a), slots(b));
    let (va, vb) = (a.entries.cells().iter(), b.entries.cells().iter());
    assert!(va.map(|e| &e.value).eq(vb.map(|e| &e.value)));
}

/// Acquires and releases at random (the same sequence on both tables) and checks that
/// they answer alike and end in the same state.
fn assert_same_behaviour<S: Storage<Entry<usize>>>(
    a: &SlotTable<usize, S>,
    b: &SlotTable<usize, S>,
    seed: u64,
    steps: usize,
) {
    use crate::backoff::{RandomSource, SplitMix64};
    let mut rng = SplitMix64::new(seed);
    let mut live = Vec::new();
    for step in 0..steps {
        let word = rng.next_u64();
        if word % 5 < 3 {
            let (x, y) = (a.acquire(), b.acquire());
            assert_eq!(
                x.map(|(id, v)| (id, *v)),
                y.map(|(id, v)| (id, *v)),
                "{step}"
            );
            if let Ok((id, _)) = x {
                live.push(id);
            }
        } else if !live.is_empty() {
            let id = live.swap_remove((word >> 8) as usize % live.len());
            assert_eq!(a.release(id), b.release(id));
            // Released twice: stale on both.
            assert_eq!(a.release(id), b.release(id));
        }
        let probe = TaskId::new((word >> 16) as u32 % 8, (word >> 24) as u32 % 8);
        assert_eq!(a.get(probe), b.get(probe));
        assert_eq!(
            a.id_at(probe.index() as usize),
            b.id_at(probe.index() as usize)
        );
        assert_eq!(a.len(), b.len());
    }
    assert_same_state(a, b);
}

#[test]
fn init_in_builds_what_new_builds() {
    let by_value: Table<6> = SlotTable::new(|index| index * 3);
    let mut place = MaybeUninit::uninit();
    let in_place: &mut Table<6> = SlotTable::init_in(&mut place, |index| index * 3);
    assert_same_state(&by_value, in_place);
    assert_eq!((in_place.capacity(), in_place.len()), (6, 0));
    let steps = if cfg!(miri) { 400 } else { 10_000 };
    assert_same_behaviour(&by_value, in_place, 3, steps);
}

#[test]
fn init_in_empty_and_single_slot_tables() {
    let mut empty = MaybeUninit::uninit();
    let table: &mut Table<0> = SlotTable::init_in(&mut empty, |index| index);
    assert_same_state(&Table::<0>::new(|index| index), table);
    assert_eq!(table.acquire().unwrap_err().capacity, 0);

    let by_value: Table<1> = SlotTable::new(|index| index + 7);
    let mut one: std::boxed::Box<MaybeUninit<Table<1>>> = std::boxed::Box::new_uninit();
    let in_place = SlotTable::init_in(&mut one, |index| index + 7);
    assert_same_state(&by_value, in_place);
    assert_same_behaviour(&by_value, in_place, 5, 200);
}

#[test]
fn init_in_values_are_dropped_by_the_owner() {
    let token = std::rc::Rc::new(());
    let mut place = MaybeUninit::uninit();
    let table: &mut SlotTable<std::rc::Rc<()>, [Entry<std::rc::Rc<()>>; 4]> =
        SlotTable::init_in(&mut place, |_| std::rc::Rc::clone(&token));
    assert_eq!(std::rc::Rc::strong_count(table.acquire().unwrap().1), 5);
    // SAFETY: `init_in` initialised `place`; the table is not used after.
    unsafe { place.assume_init_drop() };
    assert_eq!(std::rc::Rc::strong_count(&token), 1);
}

#[test]
fn init_in_drops_the_values_built_before_a_panic() {
    let token = std::rc::Rc::new(());
    let mut place =
        MaybeUninit::<SlotTable<std::rc::Rc<()>, [Entry<std::rc::Rc<()>>; 5]>>::uninit();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SlotTable::init_in(&mut place, |index| {
            assert!(index < 3, "no value for slot {index}");
            std::rc::Rc::clone(&token)
        });
    }));
    assert!(outcome.is_err());
    // The three values built are dropped again, as `new` drops them.
    assert_eq!(std::rc::Rc::strong_count(&token), 1);
    let by_value = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SlotTable::<_, [_; 5]>::new(|index| {
            assert!(index < 3, "no value for slot {index}");
            std::rc::Rc::clone(&token)
        })
    }));
    assert!(by_value.is_err());
    assert_eq!(std::rc::Rc::strong_count(&token), 1);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a megabyte of slots is slow under miri; nothing to check"
)]
fn init_in_needs_no_stack_for_the_table() {
    // 65535 slots of 24 bytes (1.5 MiB), built by a thread with 64 KiB of stack. `new`
    // would overflow it (it builds the table on the stack).
    type Big = SlotTable<u64, [Entry<u64>; 65_535]>;
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut place: std::boxed::Box<MaybeUninit<Big>> = std::boxed::Box::new_uninit();
            let table = Big::init_in(&mut place, |index| index as u64);
            for expected in 0..65_535u64 {
                let (id, value) = table.acquire().unwrap();
                assert_eq!((u64::from(id.index()), *value), (expected, expected));
            }
            assert!(table.acquire().is_err());
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn packing_round_trips() {
    let head = pack(NIL, usize::MAX >> INDEX_BITS);
    assert_eq!(head_index(head), NIL);
    assert_eq!(next_tag(head), 0);
    assert_eq!(head_index(pack(7, 3)), 7);
    assert_eq!(next_tag(pack(7, 3)), 4);
}
