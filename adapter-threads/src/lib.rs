//! errand on plain OS threads.
//!
//! Each worker is an OS thread running the engine's worker loop
//! ([`Driver::run_blocking`](errand_core::engine::Driver::run_blocking)): blocking tasks run
//! on it, async tasks are polled on it (the thread parks while their future is pending),
//! and an idle worker sleeps on an event until work arrives. Everything else — queues,
//! priorities, cancellation, results, shutdown — is the engine's, shared with every other
//! errand adapter.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use errand_threads::prelude::*;
//!
//! let manager = builder().workers(2).build().unwrap();
//!
//! let handle = manager
//!     .submit(Task::blocking(|ctx| {
//!         ctx.progress(50.0, "halfway")?;
//!         Ok::<_, BoxError>(21 * 2)
//!     }).priority(Priority::HIGH))
//!     .unwrap();
//! assert_eq!(handle.wait().unwrap(), 42);
//!
//! // Async tasks run here too, their futures polled on the worker threads.
//! let later = manager
//!     .spawn(|ctx: Context| async move {
//!         ctx.sleep(Duration::from_millis(1)).await;
//!         Ok::<_, BoxError>("slept")
//!     })
//!     .unwrap();
//! assert_eq!(later.wait().unwrap(), "slept");
//!
//! let report = manager.shutdown(Duration::from_secs(5)).wait();
//! assert!(report.completed);
//! ```
//!
//! # Ctrl-C / SIGTERM
//!
//! Wait for the signal on a thread of its own (with `signal-hook`:
//! `Signals::new([SIGINT, SIGTERM])?.forever().next()`), then call
//! [`Manager::shutdown`](errand_core::engine::Manager::shutdown) with a grace period,
//! `.wait()` for its report, and log it; `tests/sigterm.rs` runs this recipe.
//!
//! # Detached closures
//!
//! A blocking closure that outlives its task's timeout or cancel holds its worker thread
//! until it returns; the manager starts a replacement worker meanwhile (see
//! [`Builder::max_detached`](errand_core::engine::Builder::max_detached)).

pub use errand_core::engine::prelude::*;

/// Everything a port of the guide needs on threads: the engine's prelude, this adapter's
/// [`Manager`] and [`Builder`], and [`builder`]. Switching adapters is changing this `use`.
pub mod prelude {
    pub use super::{Builder, Manager, Threads, builder};
    pub use errand_core::engine::prelude::*;
}

/// The workspace README's examples (this crate and `errand-core`), compiled and run as
/// doctests here so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

use errand_core::engine::{Driver, Runtime};

/// The OS-threads runtime: one named thread (`errand-worker`) per worker, and one
/// (`errand-timer`) for the timer driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads;

impl Runtime for Threads {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name(
                if driver.is_timer() {
                    "errand-timer"
                } else {
                    "errand-worker"
                }
                .into(),
            )
            .spawn(move || driver.run_blocking())
            .map(drop)
    }
}

/// The task manager on OS threads.
pub type Manager = errand_core::engine::Manager<Threads>;

/// Configures a [`Manager`] on OS threads.
pub type Builder = errand_core::engine::Builder<Threads>;

/// A builder with the defaults (see [`errand_core::engine::Builder::new`]).
pub fn builder() -> Builder {
    Builder::new(Threads)
}
