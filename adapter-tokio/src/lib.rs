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
//! use errand_tokio::{BoxError, Context, Priority, Task};
//!
//! # fn main() {
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! runtime.block_on(async {
//!     let manager = errand_tokio::builder().workers(4).build().unwrap();
//!     let handle = manager
//!         .submit(Task::new_async(|ctx: Context| async move {
//!             ctx.progress(50.0, "halfway")?;
//!             Ok::<_, BoxError>(21 * 2)
//!         }).priority(Priority::HIGH))
//!         .unwrap();
//!     assert_eq!(handle.await.unwrap(), 42);
//!     manager.stop_accepting();
//! });
//! # }
//! ```
//!
//! # Ctrl-C / SIGTERM
//!
//! With tokio's `signal` feature, await `tokio::signal::ctrl_c()` (or
//! `tokio::signal::unix::signal(SignalKind::terminate())`) in a task, then
//! [`shutdown_async`](errand_core::engine::Manager::shutdown_async) with a grace period
//! and log its report (`tests/sigterm.rs` runs this recipe):
//!
//! ```no_run
//! # async fn recipe(manager: std::sync::Arc<errand_tokio::Manager>) {
//! tokio::spawn(async move {
//!     tokio::signal::ctrl_c().await.expect("a Ctrl-C handler");
//!     let report = manager.shutdown_async(std::time::Duration::from_secs(30)).await;
//!     eprintln!("force stopped {} task(s)", report.unfinished.len());
//! });
//! # }
//! ```

pub use errand_core::engine::prelude::*;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use errand_core::engine::{AsyncRuntime, Driver, Runtime};

/// The tokio runtime: workers and the timer driver are tokio tasks spawned on a runtime
/// handle; blocking work runs on that runtime's blocking pool.
///
/// The runtime must have its time driver enabled (`enable_time`, or `enable_all` as
/// `#[tokio::main]` does): delays, retries and timeouts sleep on it.
#[derive(Clone, Debug)]
pub struct Tokio {
    handle: tokio::runtime::Handle,
}

impl Tokio {
    /// The runtime the caller is running in.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (as `tokio::runtime::Handle::current` does).
    #[must_use]
    pub fn current() -> Self {
        Self::from_handle(tokio::runtime::Handle::current())
    }

    /// The runtime behind `handle`.
    #[must_use]
    pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
        Self { handle }
    }
}

impl Runtime for Tokio {
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
        drop(self.handle.spawn(driver.run()));
        Ok(())
    }
}

impl AsyncRuntime for Tokio {
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
        drop(self.handle.spawn_blocking(job));
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
/// [`errand_core::engine::Builder::new`]).
///
/// # Panics
///
/// When called outside a tokio runtime; use [`builder_on`] with a handle there.
pub fn builder() -> Builder {
    Builder::new(Tokio::current())
}

/// A builder on the runtime behind `handle`.
pub fn builder_on(handle: tokio::runtime::Handle) -> Builder {
    Builder::new(Tokio::from_handle(handle))
}
