//! [`Builder`] and [`Manager`]: the user's entry points.

use std::sync::Arc;
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::context::Context;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::driver::{AsyncRuntime, Driver, Role, Runtime};
use super::error::{BoxError, BuildError, CancelError, SubmitError};
use super::handle::TaskHandle;
use super::job::{Async, Blocking, Job, Task};
use super::shared::{Config, Inner};
use super::snapshot::{Analytics, Counts, Performance, ShutdownReport, TaskInfo};
use crate::{Mode, RetryPolicy, State, TaskId};

/// Configures and builds a [`Manager`] on runtime `R`.
///
/// Adapters re-export it with their runtime filled in (for example
/// `errand_threads::builder()`).
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
/// use errand_core::engine::Builder;
/// use errand_core::{Mode, RetryPolicy};
///
/// // The guide's `enable_background_tasks(workers=4, enable_profiling=True,
/// // memory_pool_mb=500)`, plus the other settings.
/// let manager = Builder::new(Threads)
///     .workers(4)
///     .enable_profiling(true)
///     .memory_pool_mb(500)
///     .queue_capacity(10_000)
///     .priority_mode(Mode::Weighted)
///     .default_retry(RetryPolicy::default())
///     .default_timeout(Some(Duration::from_secs(60)))
///     .default_result_ttl(Duration::from_secs(24 * 3600))
///     .build()
///     .unwrap();
/// assert_eq!(manager.performance().workers, 4);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct Builder<R> {
    runtime: R,
    workers: usize,
    queue_capacity: usize,
    mode: Mode,
    history: usize,
    memory_pool_mb: usize,
    profiling: bool,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    result_ttl: Duration,
    seed: Option<u64>,
}

impl<R> Builder<R> {
    fn default_timeout_is_zero(&self) -> bool {
        self.timeout == Some(Duration::ZERO)
    }
}

impl<R: Runtime> Builder<R> {
    /// Defaults: as many workers as the machine has cores, a queue capacity of 10 000 live
    /// tasks, strict priorities, a history of 1 024 finished tasks, a 512 MB memory pool,
    /// profiling off, no retries, no timeout, results kept 24 hours.
    pub fn new(runtime: R) -> Self {
        Self {
            runtime,
            workers: std::thread::available_parallelism().map_or(4, usize::from),
            queue_capacity: 10_000,
            mode: Mode::Strict,
            history: 1024,
            memory_pool_mb: 512,
            profiling: false,
            retry: RetryPolicy::none(),
            timeout: None,
            result_ttl: Duration::from_secs(24 * 60 * 60),
            seed: None,
        }
    }

    /// The memory budget, in MiB (2^20 bytes). Each task is charged while it lives: the
    /// `size_of` of its one allocation (its closure, an async attempt's future, its
    /// completion and result slot, and the reference counts) plus 128 bytes for the
    /// allocator's bookkeeping and rare settings; each stored result `size_of` its value plus 96 bytes,
    /// until it expires. When the budget is spent, submissions fail with
    /// [`SubmitError::BudgetExceeded`] (giving the task back) and results are not stored.
    /// Heap memory a value owns (a `Vec`'s buffer) is not seen by `size_of` and is not
    /// charged.
    pub fn memory_pool_mb(mut self, megabytes: usize) -> Self {
        self.memory_pool_mb = megabytes;
        self
    }

    /// Records execution times and dispatch latency per priority (two histogram updates
    /// per task), reported by [`Manager::analytics`].
    pub fn enable_profiling(mut self, on: bool) -> Self {
        self.profiling = on;
        self
    }

    /// The retry policy of tasks that set none (default: no retries).
    pub fn default_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The timeout of tasks that set none (default: none).
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long stored results are kept when a task does not say (default: 24 hours).
    pub fn default_result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// Seeds the retry jitter, making its delays reproducible (default: from the clock).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How many tasks run at once (at least 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The most live tasks (queued, scheduled and running) at once; a submission beyond
    /// it is rejected with [`SubmitError::QueueFull`]. Memory for them is reserved now.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Strict priorities (a higher priority never waits behind a lower one) or weighted
    /// (levels served 20:10:5:1, nothing starves).
    pub fn priority_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// How many finished tasks [`Manager::task`] and [`Manager::status`] still answer for
    /// (the most recent ones). Memory for them is reserved now.
    pub fn history(mut self, finished_tasks: usize) -> Self {
        self.history = finished_tasks;
        self
    }

    /// Builds the manager and starts its workers.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for zero workers, a zero queue capacity or one above
    /// [`SlotTable::MAX_CAPACITY`](crate::SlotTable::MAX_CAPACITY), or when the runtime
    /// cannot start a worker.
    pub fn build(self) -> Result<Manager<R>, BuildError> {
        if self.workers == 0 {
            return Err(BuildError::new("workers is 0; at least 1 is needed"));
        }
        let max = crate::SlotTable::<(), std::boxed::Box<[crate::Entry<()>]>>::MAX_CAPACITY;
        if self.queue_capacity == 0 || self.queue_capacity > max {
            return Err(BuildError::new(std::format!(
                "queue capacity {} is outside 1..={max}",
                self.queue_capacity
            )));
        }
        if self.default_timeout_is_zero() {
            return Err(BuildError::new("the default timeout is 0 s"));
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let inner = Arc::new(Inner::new(Config {
            workers: self.workers,
            capacity: self.queue_capacity,
            mode: self.mode,
            history: self.history,
            memory_pool: self.memory_pool_mb.saturating_mul(1 << 20),
            profiling: self.profiling,
            retry: self.retry,
            timeout: self.timeout,
            result_ttl: self.result_ttl,
            seed,
        }));
        let roles =
            core::iter::once(Role::Timer).chain(core::iter::repeat_n(Role::Worker, self.workers));
        for (started, role) in roles.enumerate() {
            if let Err(error) =
                self.runtime
                    .spawn(Driver::new(Arc::clone(&inner), self.runtime.clone(), role))
            {
                inner.stop_workers();
                return Err(BuildError::new(std::format!(
                    "the runtime could not start driver {} of {} (the timer driver and {} workers): {error}",
                    started + 1,
                    self.workers + 1,
                    self.workers
                )));
            }
        }
        Ok(Manager {
            inner,
            runtime: self.runtime,
        })
    }
}

/// The task manager: submit work, ask about it, shut down.
///
/// Built by a [`Builder`]; adapters name it with their runtime filled in (for example
/// `errand_threads::Manager`). Every method takes `&self`: share it with an `Arc`.
///
/// # Dropping
///
/// Dropping the manager stops accepting tasks, cancels every task that has not ended
/// (their handles resolve as cancelled; running blocking work is told through
/// [`Context::is_cancelled`] and finishes in the background) and lets the workers exit. It
/// does not wait: call [`shutdown`](Self::shutdown) first for an orderly end.
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
///     .submit(Task::new(|_ctx: &Context| Ok::<_, BoxError>("done")).priority(Priority::HIGH))
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
///         Task::new(|_ctx: &Context| Ok::<_, BoxError>((1..=1000_u64).map(|i| i * i).sum::<u64>()))
///             .store_result_for(Duration::from_secs(24 * 3600)),
///     )
///     .unwrap();
/// let sum_id = sum.id();
/// sum.wait().unwrap();
/// assert_eq!(manager.stored_result::<u64>(sum_id).as_deref(), Some(&333_833_500));
///
/// let report = manager.shutdown(Duration::from_secs(30));
/// assert!(report.completed);
/// assert_eq!(manager.counts().succeeded, 2);
/// ```
pub struct Manager<R: Runtime> {
    inner: Arc<Inner>,
    runtime: R,
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

    /// Submits the blocking closure `f` with default settings (`Task::new(f)`).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    #[allow(
        clippy::type_complexity,
        reason = "the error names the task it gives back"
    )]
    pub fn spawn<F, T, E>(&self, f: F) -> Result<TaskHandle<T>, SubmitError<Task<Blocking<F>>>>
    where
        F: FnMut(&Context) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        self.submit(Task::new(f))
    }

    /// Submits the async closure `f` with default settings (`Task::new_async(f)`).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    #[allow(
        clippy::type_complexity,
        reason = "the error names the task it gives back"
    )]
    pub fn spawn_async<F, Fut, T, E>(
        &self,
        f: F,
    ) -> Result<TaskHandle<T>, SubmitError<Task<Async<F>>>>
    where
        F: FnMut(Context) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<BoxError>,
    {
        self.submit(Task::new_async(f))
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

    /// Performance: process CPU and memory, active workers, throughput and error rate.
    /// CPU and throughput are measured over the window since the previous call (since the
    /// manager was built, for the first call).
    #[must_use]
    pub fn performance(&self) -> Performance {
        self.inner.performance()
    }

    /// Cancels task `id`: a task that has not started never will; a running async task's
    /// future is dropped; running blocking work is told through
    /// [`Context::is_cancelled`]. Either way the task ends `Cancelled` now and its handle
    /// resolves with a cancellation error.
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
    pub fn status(&self, id: TaskId) -> Option<State> {
        self.inner.status(id)
    }

    /// Status and progress of task `id` (percent, message, status, started at, estimated
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

    /// Blocks until every accepted task has ended and no worker is still running any of
    /// them (a cancelled blocking task that ignores [`Context::is_cancelled`] keeps its
    /// worker until it returns), or until `timeout` passes. Returns whether that point was
    /// reached. (It does not stop new submissions: call
    /// [`stop_accepting`](Self::stop_accepting) first for that.)
    pub fn wait_for_completion(&self, timeout: Duration) -> bool {
        self.inner.wait_for_completion(timeout)
    }

    /// Cancels every task that has not ended and returns their ids. They count as
    /// `stopped` in [`counts`](Self::counts).
    pub fn stop_all(&self) -> Vec<TaskId> {
        self.inner
            .stop_all()
            .into_iter()
            .map(|info| info.id)
            .collect()
    }

    /// Stops accepting, waits up to `timeout` for every task to end, then stops the rest
    /// and the workers. The report lists every task that had not ended, as it was then.
    ///
    /// Afterwards `submitted = succeeded + failed + cancelled + timed_out + stopped` in
    /// [`counts`](Self::counts), and `stopped` is the report's length.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        self.inner.stop_accepting();
        let completed = self.inner.wait_for_completion(timeout);
        let unfinished = self.inner.stop_all();
        self.inner.stop_workers();
        ShutdownReport {
            completed: completed && unfinished.is_empty(),
            unfinished,
            elapsed: start.elapsed(),
        }
    }

    /// The runtime the manager runs on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }
}

impl<R: AsyncRuntime> Manager<R> {
    /// [`wait_for_completion`](Manager::wait_for_completion) for async code: awaits
    /// instead of blocking the executor's thread.
    pub async fn wait_for_completion_async(&self, timeout: Duration) -> bool {
        let mut sleep = Instant::now()
            .checked_add(timeout)
            .map(|deadline| self.runtime.sleep_until(deadline));
        loop {
            let Some(mut waiter) = self.inner.quiet_or_listener() else {
                return true;
            };
            let woken = std::future::poll_fn(|cx| {
                if Pin::new(&mut *waiter).poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                match &mut sleep {
                    Some(sleep) => sleep.as_mut().poll(cx).map(|()| false),
                    None => Poll::Pending,
                }
            })
            .await;
            if !woken {
                return self.inner.is_quiet();
            }
        }
    }

    /// [`shutdown`](Manager::shutdown) for async code: awaits the grace period instead of
    /// blocking the executor's thread. The recipe for Ctrl-C / SIGTERM on an async
    /// runtime: await the signal, then this.
    pub async fn shutdown_async(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        self.inner.stop_accepting();
        let completed = self.wait_for_completion_async(timeout).await;
        let unfinished = self.inner.stop_all();
        self.inner.stop_workers();
        ShutdownReport {
            completed: completed && unfinished.is_empty(),
            unfinished,
            elapsed: start.elapsed(),
        }
    }
}

impl<R: Runtime> Drop for Manager<R> {
    fn drop(&mut self) {
        self.inner.stop_accepting();
        self.inner.stop_all();
        self.inner.stop_workers();
    }
}
