//! [`Manager`]: the user's handle on the engine.

use std::sync::Arc;
use std::time::Duration;
use std::vec::Vec;

use super::context::Context;
use super::driver::Runtime;
use super::error::{BoxError, CancelError, SubmitError};
use super::events::Updates;
use super::handle::TaskHandle;
use super::inner::Inner;
use super::shutdown::{Shutdown, WaitForCompletion};
use super::snapshot::{Analytics, Counts, Latency, Performance, TaskInfo};
use super::task::{Async, Blocking, Job, Task};
use crate::{State, TaskId};

/// The task manager: submit work, ask about it, shut down.
///
/// Built by a [`Builder`](super::Builder); adapters name it with their runtime filled in
/// (`errand_tokio::Manager`, `errand_smol::Manager`, `errand_threads::Manager`), so code
/// moves between adapters by changing one `use`. Every method takes `&self`: share it
/// with an `Arc`.
///
/// # Dropping
///
/// Dropping the manager stops accepting tasks, cancels every task that has not ended
/// (their handles resolve as cancelled; running blocking work is detached, told through
/// [`Context::is_cancelled`], and finishes in the background) and lets the workers exit.
/// It does not wait: call [`shutdown`](Self::shutdown) first for an orderly end.
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
/// use errand_core::Priority;
/// use errand_core::engine::{BoxError, Builder, Context, Task};
///
/// let manager = Builder::new(Threads).workers(2).build().unwrap();
/// let urgent = manager
///     .submit(Task::blocking(|_ctx: &Context| Ok::<_, BoxError>("done")).priority(Priority::HIGH))
///     .unwrap();
/// let id = urgent.id();
/// assert_eq!(urgent.wait().unwrap(), "done");
///
/// // Ask about it later, by id (ids print and parse as `t-<slot>-<generation>`).
/// let info = manager.task(id.to_string().parse().unwrap()).unwrap();
/// assert_eq!(info.progress, 100.0);
///
/// // Results kept for later, as the guide's `schedule_with_storage`.
/// let sum = manager
///     .submit(
///         Task::blocking(|_ctx: &Context| Ok::<_, BoxError>((1..=1000_u64).map(|i| i * i).sum::<u64>()))
///             .store_result_for(Duration::from_secs(24 * 3600)),
///     )
///     .unwrap();
/// let sum_id = sum.id();
/// sum.wait().unwrap();
/// assert_eq!(manager.stored_result::<u64>(sum_id).as_deref(), Some(&333_833_500));
///
/// // In blocking code `.wait()`; in async code `.await`.
/// let report = manager.shutdown(Duration::from_secs(30)).wait();
/// assert!(report.completed);
/// assert_eq!(manager.counts().succeeded, 2);
/// ```
pub struct Manager<R: Runtime> {
    pub(crate) inner: Arc<Inner>,
    runtime: R,
}

impl<R: Runtime> Manager<R> {
    pub(crate) fn new(inner: Arc<Inner>, runtime: R) -> Self {
        Self { inner, runtime }
    }
}

impl<R: Runtime> std::fmt::Debug for Manager<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("workers", &self.inner.config.workers)
            .field("capacity", &self.inner.config.capacity)
            .field("live", &self.inner.live())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Manager<R> {
    /// Submits `task`.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the task given back: the queue is full, the manager is shutting
    /// down, or the task's spec is invalid.
    pub fn submit<J: Job>(
        &self,
        task: Task<J>,
    ) -> Result<TaskHandle<J::Output>, SubmitError<Task<J>>> {
        self.inner.submit(task)
    }

    /// Submits the async closure `f` with default settings (`Task::future(f)`): the
    /// future it returns runs on a worker, as `tokio::spawn` runs a future.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    #[allow(
        clippy::type_complexity,
        reason = "the error names the task it gives back"
    )]
    pub fn spawn<F, Fut, T, E>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<Task<Async<F>>>>
    where
        F: FnMut(Context) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        self.submit(Task::future(f))
    }

    /// Submits the blocking closure `f` with default settings (`Task::blocking(f)`): it
    /// runs where it may block, as `tokio::task::spawn_blocking` runs a closure.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    #[allow(
        clippy::type_complexity,
        reason = "the error names the task it gives back"
    )]
    pub fn spawn_blocking<F, T, E>(
        &self,
        f: F,
    ) -> Result<TaskHandle<T>, SubmitError<Task<Blocking<F>>>>
    where
        F: FnMut(&Context) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        self.submit(Task::blocking(f))
    }

    /// Submits every task of `tasks`, or none: if one is refused, every task comes back
    /// in the error (in order) and nothing was started.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), for the first task refused (a budget error names what
    /// the whole batch needed); the error carries all the tasks.
    #[allow(
        clippy::type_complexity,
        reason = "the error names the tasks it gives back"
    )]
    pub fn submit_batch<J: Job>(
        &self,
        tasks: Vec<Task<J>>,
    ) -> Result<Vec<TaskHandle<J::Output>>, SubmitError<Vec<Task<J>>>> {
        self.inner.submit_batch(tasks)
    }

    /// The stored value of task `id` (see [`Task::store_result`]) while its TTL lasts;
    /// `None` once it expired (expired results are freed), if the task stored none, or if
    /// `T` is not its type.
    #[must_use]
    pub fn stored_result<T: Send + Sync + 'static>(&self, id: TaskId) -> Option<Arc<T>> {
        self.inner.stored_result(id)?.downcast::<T>().ok()
    }

    /// Analytics: counts, execution times, queue sizes per priority, peak concurrency,
    /// uptime, dispatch latency per priority, memory.
    #[must_use]
    pub fn analytics(&self) -> Analytics {
        self.inner.analytics()
    }

    /// The dispatch and execution latency histograms per priority level that
    /// [`analytics`](Self::analytics)' percentiles come from (for a metrics exporter).
    #[must_use]
    pub fn latency(&self) -> Latency {
        self.inner.latency()
    }

    /// The finished tasks still in the history (see
    /// [`Builder::history`](super::Builder::history)), most recently finished first: a
    /// dashboard's recent failures, say.
    #[must_use]
    pub fn finished_tasks(&self) -> Vec<TaskInfo> {
        self.inner.history.list(&self.inner.clock, |_| true)
    }

    /// Performance: process CPU and memory, active workers, throughput and error rate.
    /// CPU and throughput are measured over the window since the previous call (since the
    /// manager was built, for the first call).
    #[must_use]
    pub fn performance(&self) -> Performance {
        self.inner.performance()
    }

    /// Cancels task `id`: a task that has not started never will; a running async task's
    /// future is dropped; running blocking work is detached (it is told through
    /// [`Context::is_cancelled`], runs on, and its output is dropped; see
    /// [`Builder::max_detached`](super::Builder::max_detached)). Either way the task ends
    /// `Cancelled` now and its handle resolves with a cancellation error at once.
    ///
    /// # Errors
    ///
    /// [`CancelError::Finished`] if it had already ended, [`CancelError::Unknown`] if no
    /// task has this id (or it is no longer in the history).
    pub fn cancel(&self, id: TaskId) -> Result<(), CancelError> {
        self.inner.cancel(id)
    }

    /// The state of task `id`, if it is live or still in the finished-task history.
    #[must_use]
    pub fn state(&self, id: TaskId) -> Option<State> {
        self.inner.state(id)
    }

    /// State and progress of task `id` (percent, message, state, started at, estimated
    /// completion), if it is live or still in the finished-task history.
    #[must_use]
    pub fn task(&self, id: TaskId) -> Option<TaskInfo> {
        self.inner.info(id)
    }

    /// Every task that has not ended: queued, scheduled, retrying and running ones.
    #[must_use]
    pub fn active_tasks(&self) -> Vec<TaskInfo> {
        self.inner.active()
    }

    /// A subscription to task updates from now on: every transition (submitted, started,
    /// retrying, rescheduled, ended) and every progress report, for an event stream or a
    /// progress bar. While no subscription lives, the engine publishes nothing (a relaxed
    /// load per step); see [`Updates`].
    #[must_use]
    pub fn subscribe(&self) -> Updates {
        Updates::new(Arc::clone(&self.inner))
    }

    /// Counts of what the manager did so far.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.inner.counts()
    }

    /// Stops accepting tasks: later submissions fail with [`SubmitError::ShuttingDown`].
    /// Tasks already accepted go on.
    pub fn stop_accepting(&self) {
        self.inner.stop_accepting();
    }

    /// Whether submissions are accepted.
    #[must_use]
    pub fn is_accepting(&self) -> bool {
        self.inner.is_accepting()
    }

    /// Whether [`stop_accepting`](Self::stop_accepting) or a shutdown has begun.
    #[must_use]
    pub fn is_shutdown_initiated(&self) -> bool {
        self.inner.is_shutdown_initiated()
    }

    /// Waits until every accepted task has ended (a detached blocking closure's task has
    /// ended: it is not waited for), or until `timeout` passes. `.await` the value in async
    /// code, or call [`wait`](WaitForCompletion::wait) in blocking code; either gives
    /// whether that point was reached. (It does not stop new submissions: call
    /// [`stop_accepting`](Self::stop_accepting) first for that.)
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(manager: errand_core::engine::Manager<impl errand_core::engine::Runtime>) {
    /// use std::time::Duration;
    /// let all_done = manager.wait_for_completion(Duration::from_secs(5)).await;
    /// // or, in blocking code:
    /// let all_done = manager.wait_for_completion(Duration::from_secs(5)).wait();
    /// # }
    /// ```
    pub fn wait_for_completion(&self, timeout: Duration) -> WaitForCompletion<'_> {
        WaitForCompletion::new(&self.inner, timeout, false)
    }

    /// Waits, as [`wait_for_completion`](Self::wait_for_completion), until every accepted
    /// task has ended *and* every detached blocking closure has returned (see
    /// [`Builder::max_detached`](super::Builder::max_detached)), or until `timeout`
    /// passes: after a shutdown whose report lists detached closures, before the process
    /// exits under them, say.
    pub fn wait_for_detached(&self, timeout: Duration) -> WaitForCompletion<'_> {
        WaitForCompletion::new(&self.inner, timeout, true)
    }

    /// Cancels every task that has not ended and returns them as they were just before
    /// (the same list a [`shutdown`](Self::shutdown)'s report gives). They count as
    /// `stopped` in [`counts`](Self::counts).
    pub fn stop_all(&self) -> Vec<TaskInfo> {
        self.inner.stop_all()
    }

    /// The tasks whose blocking closures run detached (see
    /// [`Builder::max_detached`](super::Builder::max_detached)).
    #[must_use]
    pub fn detached(&self) -> Vec<TaskInfo> {
        self.inner.detached_tasks()
    }

    /// Stops accepting, waits up to `timeout` for every task to end, then stops the rest
    /// and the workers. `.await` the value in async code (the recipe for Ctrl-C / SIGTERM
    /// on an async runtime: await the signal, then this), or call
    /// [`wait`](Shutdown::wait) in blocking code. The report lists every task that had not
    /// ended, as it was then, and the detached closures still running.
    ///
    /// Afterwards `submitted = succeeded + failed + cancelled + timed_out + stopped` in
    /// [`counts`](Self::counts), and `stopped` is the report's `unfinished` length.
    pub fn shutdown(&self, timeout: Duration) -> Shutdown<'_> {
        Shutdown::new(&self.inner, timeout)
    }

    /// The runtime the manager runs on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }
}

impl<R: Runtime> Drop for Manager<R> {
    fn drop(&mut self) {
        self.inner.stop_accepting();
        drop(self.inner.stop_all());
        self.inner.stop_workers();
        self.inner.stop_durable();
    }
}
