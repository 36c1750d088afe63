//! Loom model for the statistics: concurrent `Relaxed` counter increments are never lost.
//!
//! The histogram is not modelled: its 976 atomic buckets make every execution thousands
//! of loom operations (a two-thread model did not finish in minutes). Its records are the
//! same single `Relaxed` `fetch_add` as the counter's, and `prop_stats.rs` checks with
//! real threads that concurrent records add up.
#![cfg(errand_loom)]

use errand_core::Counter;
use loom::sync::Arc;
use loom::thread;

#[test]
fn counter_increments_add_up() {
    loom::model(|| {
        let counter = Arc::new(Counter::new());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    counter.inc();
                    counter.add(2);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.get(), 6);
    });
}
