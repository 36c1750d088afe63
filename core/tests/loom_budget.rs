//! Loom model of the memory budget: usage never exceeds the limit in any interleaving, and
//! every byte comes back.
#![cfg(errand_loom)]

use loom::sync::Arc;
use loom::thread;

use errand_core::MemoryBudget;

#[test]
fn never_over_the_limit_and_all_returned() {
    loom::model(|| {
        let budget = Arc::new(MemoryBudget::new(10));
        let threads: Vec<_> = [(4, 3), (5, 2)]
            .into_iter()
            .map(|(first, more)| {
                let budget = Arc::clone(&budget);
                thread::spawn(move || {
                    let mut held = 0;
                    if let Ok(mut r) = budget.try_reserve(first) {
                        assert!(budget.used() <= budget.limit());
                        if r.try_grow(more).is_ok() {
                            assert!(budget.used() <= budget.limit());
                        }
                        held = r.bytes();
                        r.shrink(1);
                    }
                    held
                })
            })
            .collect();
        // The main thread competes too, with an owned reservation.
        let mine = MemoryBudget::try_reserve_owned(&budget, 3);
        assert!(budget.used() <= 10);
        drop(mine);
        for t in threads {
            assert!(t.join().unwrap() <= 7);
        }
        let s = budget.snapshot();
        assert_eq!(s.used, 0, "every byte returned");
        assert!(s.peak <= 10);
    });
}

#[test]
fn a_refusal_is_only_for_real() {
    // 4 of 6 bytes are held. A request for 5 must fail and one for 2 must succeed, in
    // every interleaving: an add-then-undo admission would, for an instant, show 9 in use
    // and refuse the 2 spuriously.
    loom::model(|| {
        let budget = Arc::new(MemoryBudget::new(6));
        let held = MemoryBudget::try_reserve_owned(&budget, 4).unwrap();
        let too_big = {
            let budget = Arc::clone(&budget);
            thread::spawn(move || budget.try_reserve(5).is_ok())
        };
        let fits = budget.try_reserve(2).map(|r| r.bytes());
        assert_eq!(fits, Ok(2));
        assert!(!too_big.join().unwrap());
        assert_eq!(budget.rejections(), 1);
        drop(held);
        assert_eq!(budget.used(), 0);
    });
}
