//! [`TaskHandle`]: a submitted task's id, result, status and cancellation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::driver::{block_on, thread_waker};
use super::error::{CancelError, TaskError};
use super::job::{Completion, Handle};
use super::shared::Inner;
use crate::{State, TaskId};

/// A submitted task: its id, its typed result, its status, and a way to cancel it.
///
/// Wait for the result with [`wait`](Self::wait) (blocking), [`wait_timeout`](Self::wait_timeout)
/// or `.await`. Dropping the handle does not cancel the task; the result is then dropped
/// when the task ends.
///
/// # Examples
///
/// ```
/// # use errand_core::engine::{Driver, Runtime};
/// # #[derive(Clone)]
/// # struct Threads; // what `errand-threads` provides
/// # impl Runtime for Threads {
/// #     fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
/// #         std::thread::Builder::new().spawn(move || driver.run_blocking()).map(drop)
/// #     }
/// # }
/// use std::time::Duration;
/// use errand_core::State;
/// use errand_core::engine::{BoxError, Builder, Task};
///
/// let manager = Builder::new(Threads).workers(1).build().unwrap();
/// let handle = manager.submit(Task::new(|_ctx| Ok::<_, BoxError>(6 * 7))).unwrap();
/// println!("submitted {}", handle.id());
/// assert_eq!(handle.wait().unwrap(), 42);
///
/// // A delayed task is still scheduled: waiting a moment gives the handle back.
/// let later = manager
///     .submit(Task::new(|_ctx| Ok::<_, BoxError>(())).delay(Duration::from_secs(60)))
///     .unwrap();
/// let later = later.wait_timeout(Duration::from_millis(1)).unwrap_err();
/// assert_eq!(later.status(), State::Scheduled);
/// later.cancel().unwrap();
/// assert!(later.wait().unwrap_err().is_cancelled());
/// ```
pub struct TaskHandle<T> {
    id: TaskId,
    cell: Handle<T>,
    inner: Arc<Inner>,
}

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How long a blocking wait on a handle polls before it parks the thread (see
/// `TaskHandle::spin_until_done`): a waiter burns at most this much CPU more than a
/// parking one, and a short task's round trip skips the wake-up.
const WAIT_SPIN: Duration = Duration::from_micros(20);

impl<T> TaskHandle<T> {
    pub(crate) fn new(id: TaskId, cell: Handle<T>, inner: Arc<Inner>) -> Self {
        Self { id, cell, inner }
    }

    /// The task's completion, inside its allocation.
    fn completion(&self) -> &Completion<T> {
        self.cell.completion()
    }

    /// The task's id.
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Cancels the task (see [`Manager::cancel`](super::Manager::cancel)).
    ///
    /// # Errors
    ///
    /// [`CancelError::Finished`] if it had already ended.
    pub fn cancel(&self) -> Result<(), CancelError> {
        self.inner.cancel(self.id)
    }

    /// Where the task is now. Once it has ended this is its terminal state.
    #[must_use]
    pub fn status(&self) -> State {
        if let Some(state) = self.completion().ended_state() {
            return state;
        }
        self.inner
            .status(self.id)
            .or_else(|| self.completion().ended_state())
            .unwrap_or(State::Cancelled)
    }

    /// Whether the result is ready.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.completion().is_done()
    }

    /// Blocks until the task ends; its value, or why there is none.
    ///
    /// # Errors
    ///
    /// The task's [`TaskError`]: its own error, a panic, a cancellation or a timeout.
    pub fn wait(self) -> Result<T, TaskError> {
        self.spin_until_done(WAIT_SPIN);
        block_on(self)
    }

    /// Polls the completion (a load each time) for up to `limit` before a blocking wait
    /// parks: a short task ends within a few µs of a busy-enough worker picking it up,
    /// and parking then costs a futex wait plus a wake-up (tens of µs on the 2-core
    /// machine of BENCHMARKS.md). Whether it ended.
    fn spin_until_done(&self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if self.completion().is_done() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= limit {
                return false;
            }
        }
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`, handing the handle back.
    ///
    /// # Errors
    ///
    /// The outer `Err` is the handle, when the task has not ended in time.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, Self> {
        let deadline = Instant::now().checked_add(timeout);
        self.spin_until_done(WAIT_SPIN.min(timeout));
        let waker = thread_waker();
        loop {
            // Register first, then check: a completion after the check unparks us.
            self.completion().register(&waker);
            if let Some(result) = self.completion().take() {
                return Ok(result);
            }
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(self);
                    }
                    std::thread::park_timeout(deadline - now);
                }
                None => std::thread::park(),
            }
        }
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    /// # Panics
    ///
    /// If polled again after it returned `Ready`.
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.completion().is_done() {
            // Register, then re-check: a completion in between wakes this waker.
            this.completion().register(cx.waker());
            if !this.completion().is_done() {
                return Poll::Pending;
            }
        }
        Poll::Ready(
            this.completion()
                .take()
                .expect("a TaskHandle polled after it completed"),
        )
    }
}
