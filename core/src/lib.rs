//! The `no_std` core of errand, a background-task system.
//!
//! This crate holds the primitives every errand engine and adapter stands on. Each one is
//! small, bounded by a capacity fixed at construction, free of locks, and verified on its
//! own (unit and property tests, loom models, fuzz targets):
//!
//! - [`Priority`]: the guide's priorities (`LOW = 1`, `NORMAL = 5`, `HIGH = 10`,
//!   `CRITICAL = 20`), any `u8` valid, mapped onto four queue [`Level`]s.
//! - [`TaskId`]: slot index + generation; a stale id never matches a reused slot.
//! - [`SlotTable`]: a fixed-capacity slab with lock-free release and acquire (one short
//!   wait aside), freed slots reused only after the pool runs dry.
//! - [`PriorityQueue`]: a bounded lock-free MPMC queue, strict (or weighted) across levels,
//!   FIFO within one.
//! - [`State`], [`Event`], [`transition`], [`StateCell`]: the task state machine.
//! - [`RetryPolicy`]: retry and backoff math with jitter, in integer nanoseconds.
//! - [`MemoryBudget`]: byte-budget accounting with RAII reservations.
//! - [`TimerWheel`]: a hierarchical timer wheel over slot indices.
//! - [`Counter`], [`Histogram`]: statistics without allocation.
//!
//! With the `std` feature it also holds [`engine`]: the runtime-agnostic task manager that
//! the adapter crates (`errand-tokio`, `errand-smol`, `errand-threads`) bind to a runtime.
//! Applications use an adapter; the engine's docs are for adapter authors and the curious.
//!
//! # Crate features
//!
//! - *(none)*: no heap at all; storage is inline and sized by const generics.
//! - `alloc`: heap storage sized at run time (`Box<[_]>`) and owned handles.
//! - `std`: implies `alloc`; the [`engine`] (task manager), which needs threads, clocks and
//!   `catch_unwind`.
//! - `serde`: `Serialize`/`Deserialize` for ids, priorities, states and snapshots.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod sync;

mod storage;
pub use storage::Storage;

mod priority;
pub use priority::{Level, Priority};

mod id;
pub use id::{ParseTaskIdError, ParseTaskIdErrorKind, TaskId};

mod slab;
pub use slab::{Entry, SlotTable, SlotsExhausted, StaleId};

mod queue;
#[cfg(feature = "alloc")]
pub use queue::{BoxedPriorityQueue, SegmentedPriorityQueue, Segments};
pub use queue::{
    InlinePriorityQueue, MAX_LEVEL_CAPACITY, Mode, PriorityQueue, PushError, RingStorage, Slot,
};

mod state;
pub use state::{Event, InvalidTransition, State, StateCell, Transition, transition};

mod backoff;
pub use backoff::{
    Backoff, InvalidPolicy, InvalidPolicyKind, Jitter, MAX_MULTIPLIER, RandomSource, RetryDecision,
    RetryPolicy, RetryPolicyBuilder, SplitMix64,
};

mod budget;
#[cfg(feature = "alloc")]
pub use budget::OwnedReservation;
pub use budget::{BudgetExceeded, BudgetSnapshot, MemoryBudget, Reservation};

mod timer;
pub use timer::{TimerEntry, TimerInsertError, TimerWheel};

mod stats;
pub use stats::{Counter, Histogram, HistogramSnapshot};

// The engine's own protocols, crate-internal: the engine names them by path, and the loom
// models in `loom_models/` check them from inside the crate, so none needs to be public.
// Under loom the engine is not built and only the models use them.
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod completion;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod flag;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod gate;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod handoff;
#[cfg(all(test, errand_loom))]
mod loom_models;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod park;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod settle;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod waitlist;
#[cfg(feature = "std")]
#[cfg_attr(
    errand_loom,
    allow(dead_code, reason = "only the loom models use it under loom")
)]
mod waker;

#[cfg(all(feature = "std", not(errand_loom)))]
pub mod engine;
