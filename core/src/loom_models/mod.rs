//! Loom models of the crate's internal protocols (`--cfg errand_loom`, release mode,
//! bounded preemptions; `.ci/run` runs them). They live inside the crate, as tokio's do,
//! so the types they check stay `pub(crate)`. The public primitives' models are in
//! `core/tests/loom_*.rs`.
//!
//! A lost wake-up shows as a loom deadlock; a racy access to an `UnsafeCell` as a loom
//! causality error.

mod completion;
mod flag;
mod gate;
mod handoff;
mod park;
mod settle;
mod support;
mod waitlist;
