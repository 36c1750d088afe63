//! What a running task sees of itself: [`Context`].

use std::future::Future;
use std::pin::Pin;
use std::string::String;
use std::sync::Arc;
use std::task::{Poll, ready};

use event_listener::EventListener;

use super::error::ProgressError;
use super::shared::Inner;
use crate::TaskId;

/// A worker's own reference to the engine. Each attempt's [`Context`] clones this one, so
/// the count it writes twice per attempt sits on a line only that worker writes; cloning
/// the engine's `Arc` instead would pass its count's line between the workers, the
/// submitters and the handles on every task.
pub(crate) type Seat = Arc<Arc<Inner>>;

/// A running attempt's view of its task: id, attempt number, progress reports and
/// cancellation.
///
/// Blocking tasks get `&Context`, async tasks an owned `Context` (it is cheap to clone).
///
/// # Examples
///
/// ```
/// use errand_core::engine::{BoxError, Context, Task};
///
/// let task = Task::new(|ctx: &Context| {
///     for step in 1..=4 {
///         if ctx.is_cancelled() {
///             return Err(BoxError::from("stopped early"));
///         }
///         ctx.progress(f64::from(step) * 25.0, format!("step {step} of 4"))?;
///     }
///     Ok(ctx.attempt())
/// });
/// # drop(task);
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Seat,
    id: TaskId,
    attempt: u32,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(inner: Seat, id: TaskId, attempt: u32) -> Self {
        Self { inner, id, attempt }
    }

    /// The task's id.
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, and so on.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Reports progress: `percent` in `0.0..=100.0` and a message describing the step.
    ///
    /// # Errors
    ///
    /// [`ProgressError::OutOfRange`] for NaN or a value outside `0..=100` (nothing is
    /// recorded); [`ProgressError::Finished`] if the task has already ended.
    pub fn progress(&self, percent: f64, message: impl Into<String>) -> Result<(), ProgressError> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(ProgressError::OutOfRange { percent });
        }
        if self.inner.progress(self.id, percent, Some(message.into())) {
            Ok(())
        } else {
            Err(ProgressError::Finished { id: self.id })
        }
    }

    /// Whether the task was cancelled or timed out: blocking work should return soon
    /// after this turns `true` (its result is discarded either way).
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled(self.id)
    }

    /// Completes once the task is cancelled or times out.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled {
            ctx: self.clone(),
            listener: None,
        }
    }
}

/// The future of [`Context::cancelled`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Cancelled {
    ctx: Context,
    listener: Option<EventListener>,
}

impl Future for Cancelled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        loop {
            if self.ctx.is_cancelled() {
                return Poll::Ready(());
            }
            let this = &mut *self;
            match &mut this.listener {
                Some(listener) => {
                    ready!(Pin::new(listener).poll(cx));
                    this.listener = None;
                }
                None => {
                    let Some(record) = this.ctx.inner.record(this.ctx.id) else {
                        return Poll::Ready(());
                    };
                    // Listen, then re-check (at the top of the loop): no raise is missed.
                    this.listener = Some(record.signal.event.listen());
                }
            }
        }
    }
}
