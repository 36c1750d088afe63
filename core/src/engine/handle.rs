//! [`TaskHandle`]: a submitted task's id, result, status and cancellation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::cell::{Handle, Slot, state_of, take_end};
use super::error::{CancelError, TaskError};
use super::inner::Inner;
use super::wait::{block_on, thread_waker};
use crate::completion::Completion;
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
/// let handle = manager.submit(Task::blocking(|_ctx| Ok::<_, BoxError>(6 * 7))).unwrap();
/// println!("submitted {}", handle.id());
/// assert_eq!(handle.wait().unwrap(), 42);
///
/// // A delayed task is still scheduled: waiting a moment gives the handle back.
/// let later = manager
///     .submit(Task::blocking(|_ctx| Ok::<_, BoxError>(())).delay(Duration::from_secs(60)))
///     .unwrap();
/// let later = later.wait_timeout(Duration::from_millis(1)).unwrap_err();
/// assert_eq!(later.state(), State::Scheduled);
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
    fn completion(&self) -> &Completion<Slot<T>> {
        self.cell.completion()
    }

    /// The terminal state of the published end, if there is one.
    fn ended(&self) -> Option<State> {
        self.completion().latch().code().map(state_of)
    }

    /// The task's id.
    #[must_use]
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Cancels the task (see [`Manager::cancel`](super::Manager::cancel)).
    ///
    /// `Ok` means this cancel won: by the time it returns the handle has its end
    /// ([`is_finished`](Self::is_finished)), whether the task was waiting, queued, or
    /// running a blocking closure (which runs on, detached).
    ///
    /// # Errors
    ///
    /// [`CancelError::Finished`] if it had already ended. Its end is then published, but
    /// the handle may learn it a moment after this returns: its worker may still be
    /// storing the result.
    pub fn cancel(&self) -> Result<(), CancelError> {
        self.inner.cancel(self.id)
    }

    /// Where the task is now. Once it has ended this is its terminal state.
    #[must_use]
    pub fn state(&self) -> State {
        if let Some(state) = self.ended() {
            return state;
        }
        self.inner
            .state(self.id)
            .or_else(|| self.ended())
            .unwrap_or(State::Cancelled)
    }

    /// Whether the result is ready.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.completion().latch().is_done()
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
    /// machine of BENCHMARKS.md). Between rounds it yields its core: the worker it waits
    /// for may have been woken onto this very core (the other one busy), and would
    /// otherwise wait for the spin to end before it starts the task. Whether it ended.
    fn spin_until_done(&self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if self.is_finished() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::yield_now();
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
            self.completion().latch().register(&waker);
            if let Some(result) = take_end(self.completion()) {
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
        if !this.is_finished() {
            // Register, then re-check: a completion in between wakes this waker.
            this.completion().latch().register(cx.waker());
            if !this.is_finished() {
                return Poll::Pending;
            }
        }
        Poll::Ready(take_end(this.completion()).expect("a TaskHandle polled after it completed"))
    }
}
