//! The engine/runtime boundary: the [`Runtime`] and [`AsyncRuntime`] traits an adapter
//! implements, and the [`Driver`] loops the engine hands it to run.

use std::boxed::Box;
use std::future::Future;
use std::hint;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};
use std::vec::Vec;

use event_listener::{Event, Listener};

use super::context::Seat;
use super::error::TaskError;
use super::job::{Outcome, Shell};
use super::shared::{Claimed, Inner};
use crate::Parked;

/// What the engine needs from a runtime: a way to start its loops.
///
/// The engine hands the runtime [`Driver`]s (one per worker). A runtime built on OS
/// threads runs each on a thread of its own with [`Driver::run_blocking`]; an async
/// runtime also implements [`AsyncRuntime`] and spawns [`Driver::run`] as a task. That is
/// the whole boundary: queues, parking, state, timers and results are the engine's.
///
/// # Examples
///
/// A runtime of plain threads (what `errand-threads` does):
///
/// ```
/// use errand_core::engine::{Driver, Runtime};
///
/// #[derive(Clone, Debug)]
/// struct Threads;
///
/// impl Runtime for Threads {
///     fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
///         std::thread::Builder::new().spawn(move || driver.run_blocking()).map(drop)
///     }
/// }
/// ```
pub trait Runtime: Clone + Send + Sync + Sized + 'static {
    /// Starts `driver` so it runs until it returns: [`Driver::run_blocking`] on a thread it
    /// may block, or (for an [`AsyncRuntime`]) [`Driver::run`] as a task.
    ///
    /// # Errors
    ///
    /// When the runtime cannot start it (an OS thread that could not be created);
    /// [`Builder::build`](super::Builder::build) reports it.
    fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()>;
}

/// What async drivers additionally need: somewhere to run blocking closures.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::time::{Duration, Instant};
/// use errand_core::engine::{AsyncRuntime, Driver, Runtime};
///
/// /// A toy runtime: one OS thread per driver, each driving its async loop itself, and a
/// /// new thread per blocking closure.
/// #[derive(Clone, Debug)]
/// struct ThreadPerTask;
///
/// impl Runtime for ThreadPerTask {
///     fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
///         std::thread::Builder::new().spawn(move || driver.run_blocking()).map(drop)
///     }
/// }
///
/// impl AsyncRuntime for ThreadPerTask {
///     fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>) {
///         std::thread::spawn(job);
///     }
///
///     fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         // Good enough for a toy: the drivers here run on threads of their own.
///         Box::pin(async move { std::thread::sleep(deadline - Instant::now()) })
///     }
/// }
/// ```
pub trait AsyncRuntime: Runtime {
    /// Runs `job` where it may block (a blocking pool), never on an async worker. The
    /// engine awaits its end itself; if the runtime drops `job` without running it, the
    /// task fails (and its handle resolves as cancelled).
    fn spawn_blocking(&self, job: Box<dyn FnOnce() + Send>);

    /// A future that completes at `deadline` (the timer driver sleeps on it, and is woken
    /// earlier by the engine when an earlier deadline arrives).
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// One of the engine's loops, handed to [`Runtime::spawn`]: a worker, or the timer
/// driver.
///
/// A worker claims queued tasks one at a time and runs them; when the queue is empty it
/// parks (registers as idle, re-checks the queue, then waits on an event: no wakeup is
/// lost and an idle manager uses no CPU). It returns when the manager shuts down (or is
/// dropped) and the queue is empty.
///
/// The timer driver fires due timers (delayed starts, retry delays, timeouts), expires
/// stored results, and sleeps until the next deadline; an earlier deadline wakes it early.
/// It returns when the manager shuts down or is dropped.
#[must_use = "a driver does nothing unless run"]
pub struct Driver<R> {
    inner: Arc<Inner>,
    runtime: R,
    role: Role,
}

/// Which loop a driver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Worker,
    Timer,
}

impl<R> std::fmt::Debug for Driver<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl<R: Runtime> Driver<R> {
    pub(crate) fn new(inner: Arc<Inner>, runtime: R, role: Role) -> Self {
        Self {
            inner,
            runtime,
            role,
        }
    }

    /// Runs the loop on the current thread, blocking it: a worker runs blocking tasks
    /// right here and polls async tasks here (the thread parks while they are pending);
    /// the timer driver sleeps here until its next deadline.
    pub fn run_blocking(self) {
        let inner = &self.inner;
        if self.role == Role::Timer {
            while let Some((deadline, listener)) = inner.fire_timers() {
                match deadline {
                    Some(deadline) => drop(listener.wait_deadline(deadline)),
                    None => listener.wait(),
                }
            }
            return;
        }
        let seat: Seat = Arc::new(Arc::clone(inner));
        let seat = &seat;
        let mut graves = Graves::new();
        let mut woken = false;
        loop {
            // Parking rule 5: a woken worker looks through the spinning slot first.
            let claimed = if woken {
                spin_blocking(seat).or_else(|| inner.claim(seat))
            } else {
                inner.claim(seat).or_else(|| spin_blocking(seat))
            };
            woken = false;
            if let Some(mut claimed) = claimed {
                let outcome = run_here(inner, &mut claimed);
                graves.keep(inner.finish(claimed, outcome));
                continue;
            }
            graves.free();
            match inner.idle_listener() {
                Parked::Work => {}
                Parked::Exit => return,
                Parked::Wait(listener, token) => {
                    listener.wait();
                    drop(token);
                    woken = true;
                }
            }
        }
    }

    /// Whether this is the timer driver (it sleeps most of the time) rather than a worker.
    #[must_use]
    pub fn is_timer(&self) -> bool {
        self.role == Role::Timer
    }

    /// The runtime the driver was started by.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }
}

impl<R: AsyncRuntime> Driver<R> {
    /// Runs the loop as a future. A worker polls async tasks inside it and sends blocking
    /// tasks to [`AsyncRuntime::spawn_blocking`], awaiting them (so a worker runs one task
    /// at a time, whatever its kind, and never blocks its executor); the timer driver
    /// sleeps with [`AsyncRuntime::sleep_until`].
    pub async fn run(self) {
        let inner = &self.inner;
        if self.role == Role::Timer {
            while let Some((deadline, mut listener)) = inner.fire_timers() {
                match deadline {
                    Some(deadline) => {
                        let mut sleep = self.runtime.sleep_until(deadline);
                        std::future::poll_fn(|cx| {
                            if Pin::new(&mut listener).poll(cx).is_ready()
                                || sleep.as_mut().poll(cx).is_ready()
                            {
                                Poll::Ready(())
                            } else {
                                Poll::Pending
                            }
                        })
                        .await;
                    }
                    None => listener.await,
                }
            }
            return;
        }
        let seat: Seat = Arc::new(Arc::clone(inner));
        let seat = &seat;
        let mut graves = Graves::new();
        let mut woken = false;
        loop {
            // Parking rule 5: a woken worker looks through the spinning slot first.
            let claimed = if woken {
                match spin_async(seat).await {
                    Some(claimed) => Some(claimed),
                    None => inner.claim(seat),
                }
            } else {
                match inner.claim(seat) {
                    Some(claimed) => Some(claimed),
                    None => spin_async(seat).await,
                }
            };
            woken = false;
            if let Some(claimed) = claimed {
                graves.keep(run_async(inner, &self.runtime, claimed).await);
                continue;
            }
            graves.free();
            match inner.idle_listener() {
                Parked::Work => {}
                Parked::Exit => return,
                Parked::Wait(listener, token) => {
                    listener.await;
                    drop(token);
                    woken = true;
                }
            }
        }
    }
}

/// The emptied cells of tasks a worker ended whose handles were gone ([`Shell`]), freed
/// [`Graves::BATCH`] at a time and whenever the worker runs out of work. Freeing a block
/// the submitting thread allocated takes the allocator's shared free list; in a batch, its
/// line moves to this core once per batch rather than once per task (errand-threads'
/// fire-and-forget throughput, BENCHMARKS.md). At most `BATCH - 1` cells of about 100
/// bytes wait, and never once the worker has parked.
struct Graves(Vec<Shell>);

impl Graves {
    const BATCH: usize = 64;

    fn new() -> Self {
        Self(Vec::with_capacity(Self::BATCH))
    }

    /// Keeps `shell` to free with the batch.
    fn keep(&mut self, shell: Option<Shell>) {
        if let Some(shell) = shell {
            self.0.push(shell);
            if self.0.len() == Self::BATCH {
                self.free();
            }
        }
    }

    /// Frees every kept cell.
    fn free(&mut self) {
        self.0.clear();
    }
}

/// How long a worker that ran out of work polls for more before it parks (parking rule
/// 5). Waking a parked worker costs a futex wake plus a reschedule, tens of µs on the
/// 2-core machine of BENCHMARKS.md; a spinner picks a push up within one poll round. Only
/// one worker spins at a time, so an idle pool burns at most one core for this long after
/// its last task, then sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// Queue polls between two checks of the clock (and yields) while spinning.
const SPIN_ROUND: u32 = 32;

/// Spins for work (parking rule 5), calling `pause` between rounds. `None` if another
/// worker holds the slot (it is responsible for the queued work), or nothing came within
/// [`SPIN`]: park next.
async fn spin<P: Future<Output = ()>>(
    seat: &Seat,
    mut pause: impl FnMut() -> P,
) -> Option<Claimed> {
    let inner: &Inner = seat;
    let token = inner.try_spin()?;
    let start = Instant::now();
    loop {
        let claimed = poll_round(seat);
        if claimed.is_some() || inner.is_stopping() || start.elapsed() >= SPIN {
            // Rule 5: pass on the wake-ups producers skipped while this worker spun.
            token.release(|| inner.has_work());
            return claimed;
        }
        pause().await;
    }
}

/// [`spin`] on this thread, yielding the thread between rounds (the future never waits,
/// so `block_on` never parks).
fn spin_blocking(seat: &Seat) -> Option<Claimed> {
    block_on(spin(seat, || {
        thread::yield_now();
        std::future::ready(())
    }))
}

/// [`spin`] in a worker future: it yields to its executor between rounds, so tasks
/// sharing the executor thread still run while it spins.
async fn spin_async(seat: &Seat) -> Option<Claimed> {
    spin(seat, yield_now).await
}

/// Up to [`SPIN_ROUND`] looks at the queue (a load each), then a claim if one saw work.
fn poll_round(seat: &Seat) -> Option<Claimed> {
    for _ in 0..SPIN_ROUND {
        if seat.has_work() {
            return seat.claim(seat);
        }
        hint::spin_loop();
    }
    None
}

/// Returns `Pending` once, waking itself: the executor runs its other ready tasks first.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Runs one attempt on the current thread: a blocking job directly, an async job by
/// polling its future here, raced against the task's signal.
fn run_here(inner: &Inner, claimed: &mut Claimed) -> Outcome {
    if !claimed.job.is_async() {
        let ctx = claimed
            .ctx
            .as_ref()
            .expect("a claimed task has its context");
        return claimed
            .job
            .call(ctx)
            .unwrap_or_else(|| Err(TaskError::failed("the job is neither blocking nor async")));
    }
    let outcome = block_on(race(inner, claimed));
    // A cancelled or timed-out attempt's future is dropped at once.
    claimed.job.end_attempt();
    outcome
}

/// Runs one attempt from an async worker: an async job's future is raced against the
/// task's signal right here; a blocking job goes to the runtime's blocking pool and the
/// worker awaits it there.
async fn run_async<R: AsyncRuntime>(
    inner: &Inner,
    runtime: &R,
    mut claimed: Claimed,
) -> Option<Shell> {
    if claimed.job.is_async() {
        let outcome = race(inner, &mut claimed).await;
        claimed.job.end_attempt();
        return inner.finish(claimed, outcome);
    }
    let meta = claimed.meta;
    let channel = Oneshot::new();
    let sender = Sender(Arc::clone(&channel));
    runtime.spawn_blocking(Box::new(move || {
        let mut claimed = claimed;
        let ctx = claimed
            .ctx
            .as_ref()
            .expect("a claimed task has its context");
        let outcome = claimed
            .job
            .call(ctx)
            .unwrap_or_else(|| Err(TaskError::failed("the job is neither blocking nor async")));
        sender.0.send((claimed, outcome));
    }));
    match channel.recv().await {
        Some((claimed, outcome)) => inner.finish(claimed, outcome),
        None => {
            inner.finish_lost(meta);
            None
        }
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

std::thread_local! {
    /// The current thread's waker, made once per thread rather than once per wait.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}

/// A waker that unparks the current thread. Callers park in a loop that re-checks their
/// condition, so a stale wake (meant for an earlier wait) costs one spurious re-check.
pub(crate) fn thread_waker() -> Waker {
    THREAD_WAKER.with(Waker::clone)
}

/// Polls `future` to completion on this thread, parking it while the future is pending.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = thread_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// The claimed async attempt, polled until it ends, unless the task's signal is raised
/// first (then it is left unfinished; the caller drops its future).
pub(crate) async fn race(inner: &Inner, claimed: &mut Claimed) -> Outcome {
    let Some(record) = inner.record(claimed.meta.id) else {
        return Err(TaskError::cancelled());
    };
    let Claimed { job, ctx, .. } = claimed;
    let mut registered = false;
    let outcome = std::future::poll_fn(|cx| {
        if record.signal.is_raised() {
            return Poll::Ready(Err(TaskError::cancelled()));
        }
        // The attempt first: most end in their first poll and need no wake-up from the
        // signal, so their worker's waker is neither cloned nor left in the record.
        if let Poll::Ready(outcome) = job.poll_attempt(ctx, cx) {
            return Poll::Ready(outcome);
        }
        // Register, then re-check: a raise after the check above is seen here, one after
        // the registration wakes this worker.
        record.signal.register(cx.waker());
        registered = true;
        if record.signal.is_raised() {
            return Poll::Ready(Err(TaskError::cancelled()));
        }
        Poll::Pending
    })
    .await;
    if registered {
        // Dropped here, where it was cloned, rather than by the slot's next submitter.
        record.signal.unregister();
    }
    outcome
}

/// A one-value channel from a blocking closure back to its async worker.
pub(crate) struct Oneshot<T> {
    value: Mutex<Option<T>>,
    /// Set when the value is in, or when the sender was dropped without one.
    closed: std::sync::atomic::AtomicBool,
    event: Event,
}

impl<T> Oneshot<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            value: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            event: Event::new(),
        })
    }

    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.event.notify(usize::MAX);
    }

    pub(crate) fn send(&self, value: T) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        self.close();
    }

    /// The value, or `None` if the sender was dropped without sending.
    pub(crate) async fn recv(&self) -> Option<T> {
        loop {
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                return self
                    .value
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
            }
            let listener = self.event.listen();
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                continue;
            }
            listener.await;
        }
    }
}

/// Closes its oneshot when dropped (sent or not), so the receiver never waits forever.
pub(crate) struct Sender<T>(pub(crate) Arc<Oneshot<T>>);

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}
