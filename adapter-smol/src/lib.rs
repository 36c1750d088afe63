//! errand on smol.
//!
//! Each worker is a task on smol's global executor running the engine's async worker
//! loop ([`Driver::run`](errand_core::engine::Driver::run)): async tasks are polled inside
//! it, blocking tasks go to smol's blocking pool (`smol::unblock`) so they never stall an
//! async worker, the timer driver sleeps on an `async-io` timer, and an idle worker awaits
//! an event until work arrives. Everything else — queues, priorities, cancellation,
//! results, shutdown — is the engine's, shared with every other errand adapter.
//!
//! smol's global executor runs on its own threads (set `SMOL_THREADS` to choose how
//! many), so the manager works from synchronous code too.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use errand_smol::prelude::*;
//!
//! let manager = builder().workers(4).build().unwrap();
//! let handle = manager
//!     .submit(Task::future(|ctx: Context| async move {
//!         ctx.progress(50.0, "halfway")?;
//!         ctx.sleep(Duration::from_millis(1)).await;
//!         Ok::<_, BoxError>(21 * 2)
//!     }).priority(Priority::HIGH))
//!     .unwrap();
//! assert_eq!(smol::block_on(handle).unwrap(), 42);
//! // `.wait()` in blocking code, `.await` in async code.
//! assert!(manager.shutdown(Duration::from_secs(5)).wait().completed);
//! ```
//!
//! # Ctrl-C / SIGTERM
//!
//! Await the signal with `async-signal` (`Signals::new([Signal::Term, Signal::Int])`),
//! then await [`shutdown`](errand_core::engine::Manager::shutdown) with a grace period,
//! and log its report; `tests/sigterm.rs` runs this recipe.

pub use errand_core::engine::prelude::*;

/// Everything a port of the guide needs on smol: the engine's prelude, this adapter's
/// [`Manager`] and [`Builder`], and [`builder`]. Switching adapters is changing this `use`.
pub mod prelude {
    pub use super::{Builder, Manager, Smol, builder};
    pub use errand_core::engine::prelude::*;
}

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use errand_core::engine::{AsyncRuntime, Driver, Runtime};

/// The smol runtime: workers and the timer driver are tasks on smol's global executor;
/// blocking work runs on smol's blocking pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

impl Runtime for Smol {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        smol::spawn(driver.run()).detach();
        Ok(())
    }
}

impl AsyncRuntime for Smol {
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        smol::unblock(job).detach();
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }
}

/// The task manager on smol.
pub type Manager = errand_core::engine::Manager<Smol>;

/// Configures a [`Manager`] on smol.
pub type Builder = errand_core::engine::Builder<Smol>;

/// A builder with the defaults (see [`errand_core::engine::Builder::new`]).
pub fn builder() -> Builder {
    Builder::new(Smol)
}
