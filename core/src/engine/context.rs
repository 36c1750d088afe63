//! What a running task sees of itself: [`Context`], and the futures it hands out
//! ([`Cancelled`], [`Sleep`]).
//!
//! A context reaches the engine through the [`Host`] trait, so this module sits below the
//! engine's state in the module tree.

use std::future::Future;
use std::pin::Pin;
use std::string::String;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::{Duration, Instant};

use event_listener::EventListener;

use super::error::ProgressError;
use super::sleep::{SleepKey, Sleepers};
use crate::TaskId;

/// What a [`Context`] needs from the engine. The engine implements it on each worker's own
/// reference to itself, so a context's clone counts on a line only that worker writes.
pub(crate) trait Host: Send + Sync {
    /// Records task `id`'s progress; `false` if the task has ended.
    fn progress(&self, id: TaskId, percent: f64, message: String) -> bool;
    /// Whether task `id`'s attempt should stop (or the task is gone).
    fn is_cancelled(&self, id: TaskId) -> bool;
    /// A listener notified when task `id` is cancelled or times out; `None` if the task is
    /// gone (the caller then counts it as cancelled).
    fn cancel_listener(&self, id: TaskId) -> Option<EventListener>;
    /// The engine's sleepers.
    fn sleepers(&self) -> &Sleepers;
    /// Wakes the timer driver (a sleeper came before every other deadline).
    fn wake_timer(&self);
}

/// A running attempt's view of its task: id, attempt number, progress reports,
/// cancellation, and a sleep that works on every adapter.
///
/// Blocking tasks get `&Context`, async tasks an owned `Context` (it is cheap to clone).
///
/// # Examples
///
/// ```
/// use errand_core::engine::{BoxError, Context, Task};
///
/// let task = Task::blocking(|ctx: &Context| {
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
    host: Arc<dyn Host>,
    id: TaskId,
    attempt: u32,
    /// The durable job this attempt runs (0 for a plain task).
    job: u64,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(host: Arc<dyn Host>, id: TaskId, attempt: u32, job: u64) -> Self {
        Self {
            host,
            id,
            attempt,
            job,
        }
    }

    /// The durable job this attempt runs, if it runs one: the job's id stays the same
    /// across its attempts and restarts, so it is the key that makes the job's effects
    /// idempotent.
    #[cfg(feature = "durable")]
    #[must_use]
    pub fn job_id(&self) -> Option<super::durable::JobId> {
        (self.job != 0).then(|| super::durable::JobId::new(self.job))
    }

    /// The task's id.
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Which attempt this is: 1 for the first run, 2 for the first retry, and so on (every
    /// run of a recurring task counts; saturating at `u32::MAX`).
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
        if self.host.progress(self.id, percent, message.into()) {
            Ok(())
        } else {
            Err(ProgressError::Finished { id: self.id })
        }
    }

    /// Whether the task was cancelled or timed out: blocking work should return soon
    /// after this turns `true` (its result is discarded either way).
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.host.is_cancelled(self.id)
    }

    /// Completes once the task is cancelled or times out.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled {
            ctx: self.clone(),
            listener: None,
        }
    }

    /// Completes after `duration`, on any adapter: the manager's timer driver wakes it
    /// (about a millisecond's precision), so it needs no runtime timer. A cancelled or
    /// timed-out async attempt's future is dropped, and its sleep with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use errand_core::engine::{BoxError, Context, Task};
    ///
    /// let poll_later = Task::future(|ctx: Context| async move {
    ///     ctx.sleep(Duration::from_millis(5)).await;
    ///     Ok::<_, BoxError>("checked")
    /// });
    /// # drop(poll_later);
    /// ```
    pub fn sleep(&self, duration: Duration) -> Sleep {
        let now = Instant::now();
        self.sleep_until(now.checked_add(duration).unwrap_or(now + FAR))
    }

    /// Completes at `deadline` (at once if it has passed); see [`sleep`](Self::sleep).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(Arc::clone(&self.host), deadline)
    }
}

/// A deadline far enough ahead to mean "never" (about 136 years).
const FAR: Duration = Duration::from_secs(u32::MAX as u64);

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
                    let Some(listener) = this.ctx.host.cancel_listener(this.ctx.id) else {
                        return Poll::Ready(());
                    };
                    // Listen, then re-check (at the top of the loop): no raise is missed.
                    this.listener = Some(listener);
                }
            }
        }
    }
}

/// The future of [`Context::sleep`] and [`Context::sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    host: Arc<dyn Host>,
    deadline: Instant,
    key: Option<SleepKey>,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Sleep {
    pub(crate) fn new(host: Arc<dyn Host>, deadline: Instant) -> Self {
        Self {
            host,
            deadline,
            key: None,
        }
    }

    /// When it completes.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(key) = self.key.take() {
                self.host.sleepers().cancel(key);
            }
            return Poll::Ready(());
        }
        let this = &mut *self;
        match this
            .host
            .sleepers()
            .register(&mut this.key, this.deadline, cx.waker())
        {
            // Fired: the driver only fires due sleepers.
            None => {
                this.key = None;
                Poll::Ready(())
            }
            Some(earliest) => {
                if earliest {
                    this.host.wake_timer();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.host.sleepers().cancel(key);
        }
    }
}
