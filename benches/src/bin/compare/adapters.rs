//! The three errand adapters behind one small trait, so a case written once runs on each;
//! plus the pieces every errand-side measurement uses (a manager of two workers, blockers
//! that hold both workers while a queue is filled).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use errand_core::Mode;
use errand_core::Priority;
use errand_core::engine::{BoxError, Builder, Context, Manager, Runtime, Task, TaskHandle};

/// Every errand manager and every baseline in the runner has this many workers.
pub(crate) const WORKERS: usize = 2;

/// How long a wait on something the runner set in motion may take before it fails loudly.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// One errand adapter: how to build its manager, submit its natural no-op task, and wait.
pub(crate) trait Adapter {
    /// The adapter's runtime.
    type Rt: Runtime;

    /// Short name used in case names: `tokio`, `smol`, `threads`.
    fn short(&self) -> &'static str;

    /// A builder on this adapter's runtime.
    fn builder(&self) -> Builder<Self::Rt>;

    /// Drives `future` to completion from the calling (non-worker) thread, the way a user of
    /// this runtime would (`Runtime::block_on` on tokio, `smol::block_on` elsewhere).
    fn block_on<F: Future>(&self, future: F) -> F::Output;

    /// Submits the adapter's natural no-op task (async on tokio and smol, a blocking closure
    /// on threads).
    fn submit_noop(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<()>;

    /// Submits a task whose first act is to read the clock; its value is that instant.
    fn submit_stamp(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<Instant>;

    /// The adapter's crate name, `errand-<short>`.
    fn name(&self) -> String {
        format!("errand-{}", self.short())
    }

    /// A manager of [`WORKERS`] workers, strict priorities, room for `capacity` live tasks.
    fn manager(&self, capacity: usize) -> Manager<Self::Rt> {
        self.builder()
            .workers(WORKERS)
            .queue_capacity(capacity)
            .priority_mode(Mode::Strict)
            .build()
            .expect("a manager")
    }
}

/// errand on tokio, on a multi-thread runtime of [`WORKERS`] threads shared with the
/// `tokio::spawn` baselines.
pub(crate) struct TokioAdapter {
    pub(crate) runtime: tokio::runtime::Runtime,
}

impl TokioAdapter {
    pub(crate) fn new() -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .enable_time()
                .build()
                .expect("a tokio runtime"),
        }
    }
}

impl Adapter for TokioAdapter {
    type Rt = errand_tokio::Tokio;

    fn short(&self) -> &'static str {
        "tokio"
    }

    fn builder(&self) -> Builder<Self::Rt> {
        errand_tokio::builder_on(self.runtime.handle().clone())
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn submit_noop(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<()> {
        let task = Task::future(|_ctx: Context| async { Ok::<_, BoxError>(()) });
        manager
            .submit(task.priority(priority))
            .expect("a submission")
    }

    fn submit_stamp(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<Instant> {
        let task = Task::future(|_ctx: Context| async { Ok::<_, BoxError>(Instant::now()) });
        manager
            .submit(task.priority(priority))
            .expect("a submission")
    }
}

/// errand on smol's global executor (`SMOL_THREADS` = [`WORKERS`], set by `main`).
pub(crate) struct SmolAdapter;

impl Adapter for SmolAdapter {
    type Rt = errand_smol::Smol;

    fn short(&self) -> &'static str {
        "smol"
    }

    fn builder(&self) -> Builder<Self::Rt> {
        errand_smol::builder()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }

    fn submit_noop(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<()> {
        let task = Task::future(|_ctx: Context| async { Ok::<_, BoxError>(()) });
        manager
            .submit(task.priority(priority))
            .expect("a submission")
    }

    fn submit_stamp(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<Instant> {
        let task = Task::future(|_ctx: Context| async { Ok::<_, BoxError>(Instant::now()) });
        manager
            .submit(task.priority(priority))
            .expect("a submission")
    }
}

/// errand on OS threads: blocking closures run on the worker threads.
pub(crate) struct ThreadsAdapter;

impl Adapter for ThreadsAdapter {
    type Rt = errand_threads::Threads;

    fn short(&self) -> &'static str {
        "threads"
    }

    fn builder(&self) -> Builder<Self::Rt> {
        errand_threads::builder()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::future::block_on(future)
    }

    fn submit_noop(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<()> {
        let task = Task::blocking(|_ctx: &Context| Ok::<_, BoxError>(()));
        manager
            .submit(task.priority(priority))
            .expect("a submission")
    }

    fn submit_stamp(&self, manager: &Manager<Self::Rt>, priority: Priority) -> TaskHandle<Instant> {
        let task = Task::blocking(|_ctx: &Context| Ok::<_, BoxError>(Instant::now()));
        manager
            .submit(task.priority(priority))
            .expect("a submission")
    }
}

/// Holds every worker of a manager with a task that waits on a gate, so tasks submitted
/// meanwhile stay queued; [`release`](Self::release) opens the gate.
///
/// The blockers are async tasks awaiting a semaphore: on the async adapters they hold the
/// worker without blocking the executor's thread; on errand-threads the worker thread
/// parks in the task's poll.
pub(crate) struct Blockers {
    gate: Arc<tokio::sync::Semaphore>,
    handles: Vec<TaskHandle<()>>,
}

impl Blockers {
    /// Submits one blocker per worker and waits until each has started.
    pub(crate) fn occupy<R: Runtime>(manager: &Manager<R>) -> Self {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let handles = (0..WORKERS)
            .map(|_| {
                let gate = Arc::clone(&gate);
                let started = Arc::clone(&started);
                let task = Task::future(move |_ctx: Context| {
                    let gate = Arc::clone(&gate);
                    let started = Arc::clone(&started);
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        let permit = gate.acquire().await?;
                        permit.forget();
                        Ok::<_, BoxError>(())
                    }
                });
                manager
                    .submit(task.priority(Priority::CRITICAL))
                    .expect("a blocker")
            })
            .collect();
        wait_until("both workers hold a blocker", || {
            started.load(Ordering::SeqCst) == WORKERS
        });
        Self { gate, handles }
    }

    /// Lets the blockers end (the workers then take the queue).
    pub(crate) fn release(self) {
        self.gate.add_permits(WORKERS);
        drop(self.handles);
    }
}

/// Waits (sleeping 50 µs between looks) until `done` holds; panics after [`PATIENCE`].
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Waits until `manager` has no unfinished task; panics after [`PATIENCE`].
pub(crate) fn settle<R: Runtime>(manager: &Manager<R>) {
    assert!(
        manager.wait_for_completion(PATIENCE).wait(),
        "the manager did not settle within {PATIENCE:?}"
    );
}

/// Shuts `manager` down, expecting nothing left to stop.
pub(crate) fn finish<R: Runtime>(manager: Manager<R>) {
    let report = manager.shutdown(PATIENCE).wait();
    assert!(
        report.completed,
        "{} task(s) unfinished at shutdown",
        report.unfinished.len()
    );
}
