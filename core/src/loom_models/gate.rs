//! Loom model of the shutdown handshake ([`Gate`], the engine's admission of
//! submissions): once a closer saw the gate drained, no submission is accepted, and every
//! one accepted before is visible to it.

use std::vec::Vec;

use crate::gate::Gate;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Two submitters race a shutdown. Each accepted submission records itself (a relaxed
/// write, published by dropping its pass). The closer, once drained, snapshots what it
/// sees: that must be every submission ever accepted.
#[test]
fn no_accept_after_drained_close() {
    loom::model(|| {
        let gate = Arc::new(Gate::new());
        let accepted = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let submitters: Vec<_> = (0..2)
            .map(|me| {
                let gate = Arc::clone(&gate);
                let accepted = Arc::clone(&accepted);
                thread::spawn(move || {
                    if let Some(pass) = gate.enter() {
                        accepted[me].store(1, Ordering::Relaxed);
                        drop(pass);
                    }
                })
            })
            .collect();
        gate.close();
        while !gate.is_drained() {
            thread::yield_now();
        }
        let seen: Vec<usize> = accepted.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        assert!(gate.enter().is_none(), "closed");
        for submitter in submitters {
            submitter.join().unwrap();
        }
        let total: Vec<usize> = accepted.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        assert_eq!(
            seen, total,
            "a submission was accepted after the drained close"
        );
    });
}
