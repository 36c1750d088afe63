//! Loom models of concurrent `SlotTable` acquire/release: no slot is handed out twice at
//! once, every slot comes back, and stale ids are rejected.
#![cfg(errand_loom)]

use errand_core::{Entry, SlotTable, TaskId};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

/// What each slot holds: a busy mark, and plain data only the holder may touch. Loom checks
/// every access to `data` for a happens-before edge from the previous one, so a release ->
/// acquire hand-off without proper ordering fails the model.
struct Slot {
    busy: AtomicBool,
    data: UnsafeCell<usize>,
}

// SAFETY: `data` is only accessed by the thread holding the slot's live id (`take`/`give`),
// and the table orders one holder's `release` before the next holder's `acquire`; loom
// verifies exactly that.
unsafe impl Sync for Slot {}

type Table<const N: usize = 2> = SlotTable<Slot, [Entry<Slot>; N]>;

fn table<const N: usize>() -> Arc<Table<N>> {
    Arc::new(SlotTable::new(|_| Slot {
        busy: AtomicBool::new(false),
        data: UnsafeCell::new(0),
    }))
}

/// Acquires a slot, checks nobody else holds it, and writes its data.
fn take<const N: usize>(table: &Table<N>) -> Option<TaskId> {
    let (id, slot) = table.acquire().ok()?;
    // The in-use counter may lag, but never leaves 0..=capacity.
    assert!(table.len() <= table.capacity());
    let was_busy = slot.busy.swap(true, Ordering::Relaxed);
    assert!(!was_busy, "slot {} handed out twice", id.index());
    // SAFETY: we hold `id`, the slot's only live id (see `impl Sync for Slot`).
    slot.data.with_mut(|data| unsafe { *data += 1 });
    Some(id)
}

/// Reads the data, clears the busy mark and releases the slot.
fn give<const N: usize>(table: &Table<N>, id: TaskId) {
    let slot = table.get(id).expect("a held id is live");
    // SAFETY: we still hold `id` (see `impl Sync for Slot`).
    let uses = slot.data.with(|data| unsafe { *data });
    assert!(uses > 0);
    slot.busy.store(false, Ordering::Relaxed);
    table.release(id).expect("a held id releases once");
}

/// After all threads finished: nothing in use, every slot comes back, the old ids are
/// stale.
fn check_all_back<const N: usize>(table: &Table<N>, old: &[TaskId]) {
    assert_eq!(table.len(), 0);
    let mut back: Vec<_> = (0..N)
        .map(|_| take(table).expect("every slot back").index())
        .collect();
    back.sort_unstable();
    back.dedup();
    assert_eq!(back.len(), N);
    assert!(table.acquire().is_err());
    for &id in old {
        assert!(table.get(id).is_none());
        assert!(table.release(id).is_err());
    }
}

#[test]
fn two_threads_cycle_two_slots() {
    loom::model(|| {
        let table = table::<2>();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let table = Arc::clone(&table);
                thread::spawn(move || {
                    let mut used = Vec::new();
                    for _ in 0..2 {
                        let id = take(&table).expect("two threads, two slots");
                        give(&table, id);
                        used.push(id);
                    }
                    used
                })
            })
            .collect();
        let old: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        check_all_back(&table, &old);
    });
}

#[test]
fn three_threads_contend_for_two_slots() {
    loom::model(|| {
        let table = table::<2>();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let table = Arc::clone(&table);
                thread::spawn(move || {
                    let id = take(&table)?;
                    give(&table, id);
                    Some(id)
                })
            })
            .collect();
        let old: Vec<_> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        // A thread fails only while both others hold a slot, so at most one fails; nobody
        // was handed a busy slot (checked in `take`).
        assert!(old.len() >= 2, "{old:?}");
        check_all_back(&table, &old);
    });
}

#[test]
fn racing_double_release_one_wins_and_reuse_is_safe() {
    loom::model(|| {
        let table = table::<2>();
        let id = take(&table).unwrap();
        table.get(id).unwrap().busy.store(false, Ordering::Relaxed);
        let releaser = {
            let table = Arc::clone(&table);
            thread::spawn(move || table.release(id).is_ok())
        };
        // Meanwhile: release the same id too, then try to reuse a slot.
        let mine = table.release(id).is_ok();
        let reused = table.acquire().ok().map(|(new, _)| new);
        let theirs = releaser.join().unwrap();
        assert!(mine ^ theirs, "exactly one release of an id wins");
        if let Some(new) = reused {
            assert_ne!(new, id);
            assert!(table.get(id).is_none());
            table.release(new).unwrap();
        }
        check_all_back(&table, &[id]);
    });
}

/// Slab rule 4's slow path: an acquire that took a chain from the returns finds the pool
/// refilled by another acquire before it moves its chain there, so it links the chain in
/// front of the pool. Four slots: two are released before the threads start (a chain of
/// two), the other thread releases the other two (another chain of two), and both acquire.
#[test]
fn chains_moved_to_the_pool_concurrently_are_linked_not_lost() {
    loom::model(|| {
        let table = table::<4>();
        let held: Vec<_> = (0..4).map(|_| take(&table).unwrap()).collect();
        give(&table, held[0]);
        give(&table, held[1]);
        let other = {
            let table = Arc::clone(&table);
            let (c, d) = (held[2], held[3]);
            thread::spawn(move || {
                give(&table, c);
                give(&table, d);
                take(&table).expect("three slots are free")
            })
        };
        let mine = take(&table).expect("two slots are free");
        let theirs = other.join().unwrap();
        assert_ne!(mine.index(), theirs.index());
        give(&table, mine);
        give(&table, theirs);
        let mut old = held;
        old.extend([mine, theirs]);
        check_all_back(&table, &old);
    });
}
