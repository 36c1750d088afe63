//! [`Builder`]: the manager's settings, each with a documented limit, checked by
//! [`Builder::build`].

use std::sync::Arc;
use std::time::Duration;

use super::driver::{Driver, Role, Runtime};
use super::error::{BuildError, BuildErrorKind};
use super::inner::{Config, Inner};
use super::manager::Manager;
use crate::{Mode, RetryPolicy};

/// Configures and builds a [`Manager`] on runtime `R`.
///
/// Adapters re-export it with their runtime filled in (for example
/// `errand_threads::builder()`). Every setting has a limit, stated on its method; `build`
/// refuses a setting outside it with a [`BuildError`] naming the setting, and reserves the
/// memory the sizes ask for fallibly (an allocation the system refuses is an error, not an
/// abort).
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
/// use errand_core::engine::{Builder, BuildErrorKind};
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
///
/// // A setting past its limit is refused, by name.
/// let err = Builder::new(Threads).history(usize::MAX).build().unwrap_err();
/// assert_eq!((err.setting(), err.kind()), ("history", BuildErrorKind::OutOfRange));
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
    max_detached: Option<usize>,
    seed: Option<u64>,
    #[cfg(feature = "durable")]
    pub(crate) durable: super::durable::DurableConfig,
}

impl<R> Builder<R> {
    /// The most workers a manager may have.
    pub const MAX_WORKERS: usize = 1024;
    /// The largest queue capacity (live tasks): 2^24. Each slot costs a few hundred bytes
    /// reserved at build time (BENCHMARKS.md, memory per queued task), about 6 GiB at
    /// this limit.
    pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;
    /// The longest finished-task history: 2^20 entries (128 bytes each, reserved at build
    /// time).
    pub const MAX_HISTORY: usize = 1 << 20;
}

impl<R: Runtime> Builder<R> {
    /// Defaults: as many workers as the machine has cores, a queue capacity of 10 000 live
    /// tasks, strict priorities, a history of 1 024 finished tasks, a 512 MiB memory pool,
    /// profiling off, no retries, no timeout, results kept 24 hours, as many replacement
    /// workers for detached closures as there are workers.
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
            max_detached: None,
            seed: None,
            #[cfg(feature = "durable")]
            durable: super::durable::DurableConfig::default(),
        }
    }

    /// The memory budget, in MiB (2^20 bytes; any value, the byte count saturating at the
    /// address space). Each task is charged while it lives: the `size_of` of its one
    /// allocation (its closure, an async attempt's future, its completion and result slot,
    /// and the reference counts), plus 128 bytes for the allocator's bookkeeping and rare
    /// settings, plus the [`weight`](super::Task::weight) its submitter states for the heap
    /// memory it owns (a `Vec`'s buffer is not seen by `size_of`). Each stored result is
    /// charged `size_of` its value plus 96 bytes, until it expires. When the budget is
    /// spent, submissions fail with [`SubmitError::BudgetExceeded`](super::SubmitError)
    /// (giving the task back) and results are not stored.
    pub fn memory_pool_mb(mut self, megabytes: usize) -> Self {
        self.memory_pool_mb = megabytes;
        self
    }

    /// Samples the process's CPU and memory once a second on the timer driver, for
    /// [`Analytics::profile`](super::Analytics::profile). Execution times and dispatch
    /// latency are recorded either way.
    pub fn enable_profiling(mut self, on: bool) -> Self {
        self.profiling = on;
        self
    }

    /// The retry policy of tasks that set none (default: no retries).
    pub fn default_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The timeout of tasks that set none (default: none; zero is refused).
    pub fn default_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long stored results are kept when a task does not say (default: 24 hours; zero
    /// is refused).
    pub fn default_result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// Seeds the retry jitter, making its delays reproducible (default: from the clock).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How many tasks run at once: `1..=`[`MAX_WORKERS`](Self::MAX_WORKERS).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The most live tasks (queued, scheduled and running) at once:
    /// `1..=`[`MAX_QUEUE_CAPACITY`](Self::MAX_QUEUE_CAPACITY). A submission beyond it is
    /// rejected with [`SubmitError::QueueFull`](super::SubmitError). Memory for them is
    /// reserved now.
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

    /// How many finished tasks [`Manager::task`] and [`Manager::state`] still answer for
    /// (the most recent ones): `0..=`[`MAX_HISTORY`](Self::MAX_HISTORY). Memory for them
    /// is reserved now.
    pub fn history(mut self, finished_tasks: usize) -> Self {
        self.history = finished_tasks;
        self
    }

    /// How many replacement workers may run at once for workers stuck in detached
    /// blocking closures: `0..=`[`MAX_WORKERS`](Self::MAX_WORKERS), by default as many as
    /// [`workers`](Self::workers).
    ///
    /// A blocking closure cannot be stopped from outside. When its task times out or is
    /// cancelled, its handle resolves at once and the closure is *detached*: it runs on,
    /// its output is dropped, and analytics count it. On errand-threads the closure holds
    /// a worker thread, so the timer driver starts a replacement worker (up to this many
    /// at once) and the stuck one exits when its closure returns: capacity does not
    /// shrink, and at most `workers + max_detached` worker threads exist. On the async
    /// adapters the closure holds a thread of the runtime's blocking pool, not a worker,
    /// so no replacement is needed (the pool grows up to its own limit).
    pub fn max_detached(mut self, replacements: usize) -> Self {
        self.max_detached = Some(replacements);
        self
    }

    /// Builds the manager and starts its workers.
    ///
    /// # Errors
    ///
    /// [`BuildError`], naming the setting: one outside its limit
    /// ([`BuildErrorKind::OutOfRange`]), memory for the sizes it asks that the system
    /// refuses ([`BuildErrorKind::OutOfMemory`]), or a runtime that cannot start a worker
    /// ([`BuildErrorKind::Runtime`]).
    pub fn build(self) -> Result<Manager<R>, BuildError> {
        let config = self.config()?;
        let inner = Arc::new(Inner::try_new(config).map_err(|(setting, error)| {
            BuildError::new(
                setting,
                BuildErrorKind::OutOfMemory,
                std::format!("the memory it sizes could not be reserved: {error}"),
            )
        })?);
        #[cfg(feature = "durable")]
        if let Some(shared) = self
            .durable
            .start(&inner, self.queue_capacity)
            .map_err(|error| {
                BuildError::new(
                    "store",
                    BuildErrorKind::Runtime,
                    std::format!("the durable store could not start: {error}"),
                )
            })?
        {
            let _ = inner.durable.set(shared);
        }
        let roles =
            core::iter::once(Role::Timer).chain(core::iter::repeat_n(Role::Worker, self.workers));
        for (started, role) in roles.enumerate() {
            if let Err(error) =
                self.runtime
                    .spawn(Driver::new(Arc::clone(&inner), self.runtime.clone(), role))
            {
                inner.stop_workers();
                inner.stop_durable();
                return Err(BuildError::new(
                    "runtime",
                    BuildErrorKind::Runtime,
                    std::format!(
                        "the runtime could not start driver {} of {} (the timer driver and {} workers): {error}",
                        started + 1,
                        self.workers + 1,
                        self.workers
                    ),
                ));
            }
        }
        Ok(Manager::new(inner, self.runtime))
    }

    /// The settings, checked against their limits.
    fn config(&self) -> Result<Config, BuildError> {
        let out_of_range = |setting, reason: std::string::String| {
            Err(BuildError::new(setting, BuildErrorKind::OutOfRange, reason))
        };
        if !(1..=Self::MAX_WORKERS).contains(&self.workers) {
            return out_of_range(
                "workers",
                std::format!("{} is outside 1..={}", self.workers, Self::MAX_WORKERS),
            );
        }
        if !(1..=Self::MAX_QUEUE_CAPACITY).contains(&self.queue_capacity) {
            return out_of_range(
                "queue_capacity",
                std::format!(
                    "{} is outside 1..={}",
                    self.queue_capacity,
                    Self::MAX_QUEUE_CAPACITY
                ),
            );
        }
        if self.history > Self::MAX_HISTORY {
            return out_of_range(
                "history",
                std::format!("{} is above {}", self.history, Self::MAX_HISTORY),
            );
        }
        let max_detached = self.max_detached.unwrap_or(self.workers);
        if max_detached > Self::MAX_WORKERS {
            return out_of_range(
                "max_detached",
                std::format!("{max_detached} is above {}", Self::MAX_WORKERS),
            );
        }
        if self.timeout == Some(Duration::ZERO) {
            return out_of_range("default_timeout", "0 s; use None for no timeout".into());
        }
        if self.result_ttl.is_zero() {
            return out_of_range("default_result_ttl", "0 s".into());
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(Config {
            workers: self.workers,
            capacity: self.queue_capacity,
            mode: self.mode,
            history: self.history,
            memory_pool: self.memory_pool_mb.saturating_mul(1 << 20),
            profiling: self.profiling,
            retry: self.retry,
            timeout: self.timeout,
            result_ttl: self.result_ttl,
            max_detached,
            seed,
        })
    }
}
