//! errand on tokio.
//!
//! Each worker is a tokio task running the engine's async worker loop
//! ([`Driver::run`](errand_core::engine::Driver::run)): async tasks are polled inside it,
//! blocking tasks go to tokio's blocking pool (`spawn_blocking`) so they never stall an
//! async worker, and an idle worker awaits an event until work arrives. Everything else —
//! queues, priorities, cancellation, results, shutdown — is the engine's, shared with
//! every other errand adapter.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use errand_tokio::prelude::*;
//!
//! # fn main() {
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! runtime.block_on(async {
//!     let manager = builder().workers(4).build().unwrap();
//!     let handle = manager
//!         .submit(Task::future(|ctx: Context| async move {
//!             ctx.progress(50.0, "halfway")?;
//!             ctx.sleep(Duration::from_millis(1)).await;
//!             Ok::<_, BoxError>(21 * 2)
//!         }).priority(Priority::HIGH))
//!         .unwrap();
//!     assert_eq!(handle.await.unwrap(), 42);
//!     let report = manager.shutdown(Duration::from_secs(5)).await;
//!     assert!(report.completed);
//! });
//! # }
//! ```
//!
//! The same code runs on errand-smol or errand-threads with the `use` changed to
//! `errand_smol::prelude::*` or `errand_threads::prelude::*`.
//!
//! # Ctrl-C / SIGTERM
//!
//! With tokio's `signal` feature, await `tokio::signal::ctrl_c()` (or
//! `tokio::signal::unix::signal(SignalKind::terminate())`) in a task, then await
//! [`shutdown`](errand_core::engine::Manager::shutdown) with a grace period and log its
//! report (`tests/sigterm.rs` runs this recipe):
//!
//! ```no_run
//! # async fn recipe(manager: std::sync::Arc<errand_tokio::Manager>) {
//! tokio::spawn(async move {
//!     tokio::signal::ctrl_c().await.expect("a Ctrl-C handler");
//!     let report = manager.shutdown(std::time::Duration::from_secs(30)).await;
//!     eprintln!("force stopped {} task(s)", report.unfinished.len());
//! });
//! # }
//! ```
//!
//! # The runtime's end
//!
//! If the tokio runtime is shut down (dropped) while the manager lives, its workers go
//! with it: the manager notices, ends every task (their handles resolve) and refuses later
//! submissions with `SubmitError::RuntimeGone`.

pub use errand_core::engine::prelude::*;

/// Everything a port of the guide needs on tokio: the engine's prelude, this adapter's
/// [`Manager`] and [`Builder`], and [`builder`]. Switching adapters is changing this `use`.
pub mod prelude {
    pub use super::{Builder, Manager, Tokio, builder};
    pub use errand_core::engine::prelude::*;
}

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use errand_core::engine::{AsyncRuntime, Driver, Runtime};

/// The tokio runtime: workers and the timer driver are tokio tasks spawned on a runtime
/// handle; blocking work runs on that runtime's blocking pool.
///
/// The runtime must have its time driver enabled (`enable_time`, or `enable_all` as
/// `#[tokio::main]` does): the timer driver sleeps on it.
#[derive(Clone, Debug)]
pub struct Tokio {
    /// `None` when made outside a runtime: building a manager on it then fails.
    handle: Option<tokio::runtime::Handle>,
}

impl Tokio {
    /// The runtime the caller is running in; outside one, a `Tokio` on which
    /// [`Builder::build`](errand_core::engine::Builder::build) fails with a
    /// [`BuildError`] (never a panic).
    #[must_use]
    pub fn current() -> Self {
        Self {
            handle: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// The runtime behind `handle`.
    #[must_use]
    pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
        Self {
            handle: Some(handle),
        }
    }

    fn handle(&self) -> std::io::Result<&tokio::runtime::Handle> {
        self.handle.as_ref().ok_or_else(|| {
            std::io::Error::other(
                "there is no tokio runtime: errand_tokio::builder() was called outside one; \
                 call it inside a runtime, or use errand_tokio::builder_on(handle)",
            )
        })
    }
}

impl Runtime for Tokio {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        drop(self.handle()?.spawn(driver.run()));
        Ok(())
    }
}

impl AsyncRuntime for Tokio {
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        // Workers run only on a runtime, so the handle is there; without one the job is
        // dropped unrun, which ends its attempt as lost.
        if let Ok(handle) = self.handle() {
            drop(handle.spawn_blocking(job));
        }
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// The task manager on tokio.
pub type Manager = errand_core::engine::Manager<Tokio>;

/// Configures a [`Manager`] on tokio.
pub type Builder = errand_core::engine::Builder<Tokio>;

/// A builder on the current tokio runtime, with the defaults (see
/// [`errand_core::engine::Builder::new`]). Outside a runtime it does not panic: its
/// [`build`](errand_core::engine::Builder::build) fails with a [`BuildError`] of kind
/// [`BuildErrorKind::Runtime`]; use [`builder_on`] with a handle there.
///
/// # Examples
///
/// ```
/// use errand_tokio::prelude::*;
///
/// let err = builder().build().unwrap_err();
/// assert_eq!(err.kind(), BuildErrorKind::Runtime);
///
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let manager = errand_tokio::builder_on(runtime.handle().clone()).build().unwrap();
/// # drop(manager);
/// ```
pub fn builder() -> Builder {
    Builder::new(Tokio::current())
}

/// A builder on the runtime behind `handle`.
pub fn builder_on(handle: tokio::runtime::Handle) -> Builder {
    Builder::new(Tokio::from_handle(handle))
}
