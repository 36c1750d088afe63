//! The engine/runtime boundary: the [`Runtime`] and [`AsyncRuntime`] traits an adapter
//! implements, and the [`Driver`] loops the engine hands it to run: one worker loop,
//! generic over how a blocking job runs (on the worker's own thread, or on the runtime's
//! blocking pool), and the timer driver.

use std::boxed::Box;
use std::future::Future;
use std::hint;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::Instant;
use std::vec::Vec;

use super::attempt::{Claimed, End};
use super::cell::{Outcome, Shell};
use super::error::TaskError;
use super::guard::Notes;
use super::inner::{Chair, Inner, Seat};
use super::spin::{SpinBudget, Spun};
use super::wait::{block_on, listen_until};
use crate::completion::{Completion, Taken};
use crate::park::{Parked, SpinToken};
use crate::waitlist::{Listener, Waitlist};

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
    /// engine learns its end itself; if the runtime drops `job` without running it, the
    /// task fails and its handle resolves. The pool should grow as needed: a blocking
    /// closure detached at a timeout or cancel keeps its thread until it returns (tokio's
    /// and smol's pools do, up to about 500 threads).
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
/// dropped) and the queue is empty, or when it was a worker stuck in a detached blocking
/// closure whose replacement took its place.
///
/// The timer driver fires due timers (delayed starts, retry delays, timeouts), wakes
/// sleeping tasks, expires stored results, samples the process when profiling, starts
/// replacement workers, and sleeps until the next deadline; an earlier deadline wakes it
/// early. It returns when the manager shuts down or is dropped.
///
/// A driver future dropped before it returns (its runtime was shut down) tells the
/// manager its runtime is gone: submissions fail from then on
/// ([`SubmitError::RuntimeGone`](super::SubmitError::RuntimeGone)) and every task ends.
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
        if self.role == Role::Timer {
            while let Some((deadline, listener)) = self.inner.fire_timers() {
                self.supervise();
                listen_until(listener, deadline);
            }
            return;
        }
        block_on(work(&self.inner, Inline));
    }

    /// Starts the replacement workers the engine wants (rule 9).
    fn supervise(&self) {
        for _ in 0..self.inner.workers_wanted() {
            let driver = Driver::new(Arc::clone(&self.inner), self.runtime.clone(), Role::Worker);
            if self.runtime.spawn(driver).is_err() {
                self.inner.worker_not_started();
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
    /// tasks to [`AsyncRuntime::spawn_blocking`], awaiting their end (so a worker runs one
    /// task at a time, whatever its kind, and never blocks its executor); the timer driver
    /// sleeps with [`AsyncRuntime::sleep_until`].
    pub async fn run(self) {
        // Dropped before the loop returns: the runtime is being shut down.
        let mut lost = Lost(&self.inner, true);
        if self.role == Role::Timer {
            while let Some((deadline, mut listener)) = self.inner.fire_timers() {
                self.supervise();
                let mut sleep = deadline.map(|deadline| self.runtime.sleep_until(deadline));
                std::future::poll_fn(|cx| {
                    let woken = Pin::new(&mut listener).poll(cx).is_ready();
                    let due = sleep
                        .as_mut()
                        .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
                    if woken || due {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
        } else {
            work(&self.inner, Offload(&self.runtime)).await;
        }
        lost.1 = false;
    }
}

/// Tells the engine its runtime is gone when a driver future is dropped before it
/// returned (armed until then).
struct Lost<'a>(&'a Inner, bool);

impl Drop for Lost<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.runtime_lost();
        }
    }
}

/// How a worker runs a blocking job, and how it pauses while it spins.
trait Runs {
    /// Whether blocking jobs run on the worker's own thread (so detaching one takes the
    /// worker away, rule 9).
    const INLINE: bool;
    /// Whether a spin's length adapts to what spinning found (`spin.rs`). Async workers
    /// pause by yielding to their executor, so a spinner keeps its OS thread, and the
    /// core, from a submitter waiting for it; an inline worker yields the OS thread
    /// between rounds, so the fixed spin costs the submitter nothing (measured, BENCHMARKS.md
    /// "round trip").
    const ADAPTIVE_SPIN: bool;
    /// Runs a claimed blocking attempt here and now to its end, or gives it back to be
    /// run by [`offload`](Self::offload).
    #[cfg_attr(
        feature = "tracing",
        allow(
            clippy::result_large_err,
            reason = "with tracing, a claimed attempt carries its span; it is moved once"
        )
    )]
    fn here(&self, seat: &Seat, claimed: Claimed) -> Result<End, Claimed>;
    /// Runs a blocking attempt [`here`](Self::here) gave back, to its end.
    fn offload(&self, seat: &Seat, claimed: Claimed) -> impl Future<Output = End>;
    /// Lets others run between two polling rounds of a spinning worker.
    fn pause(&self) -> impl Future<Output = ()>;
}

/// Blocking jobs run on the worker's thread (`run_blocking`).
struct Inline;

impl Runs for Inline {
    const INLINE: bool = true;
    const ADAPTIVE_SPIN: bool = false;

    fn here(&self, seat: &Seat, mut claimed: Claimed) -> Result<End, Claimed> {
        let outcome = call(&mut claimed);
        Ok(seat.finish(claimed, outcome))
    }

    async fn offload(&self, seat: &Seat, mut claimed: Claimed) -> End {
        // `here` runs every blocking job; should one come here anyway, it runs here too.
        let outcome = call(&mut claimed);
        seat.finish(claimed, outcome)
    }

    async fn pause(&self) {
        thread::yield_now();
    }
}

/// Blocking jobs go to the runtime's blocking pool (`run`).
struct Offload<'a, R>(&'a R);

impl<R: AsyncRuntime> Runs for Offload<'_, R> {
    const INLINE: bool = false;
    const ADAPTIVE_SPIN: bool = true;

    fn here(&self, _seat: &Seat, claimed: Claimed) -> Result<End, Claimed> {
        Err(claimed)
    }

    fn offload(&self, seat: &Seat, claimed: Claimed) -> impl Future<Output = End> {
        offload(self.0, seat, claimed)
    }

    fn pause(&self) -> impl Future<Output = ()> {
        yield_now()
    }
}

/// The worker loop.
async fn work<M: Runs>(inner: &Arc<Inner>, runs: M) {
    let seat: Seat = Arc::new(Chair::new(Arc::clone(inner)));
    let seat = &seat;
    let mut graves = Graves::new();
    let mut woken = false;
    let mut budget = SpinBudget::new();
    // When the previous attempt ended, if this worker claims the next one right away.
    let mut last = None;
    loop {
        // Parking rule 5: a woken worker looks through the spinning slot first.
        let claimed = if woken {
            match spin(seat, &runs, &mut budget).await {
                Some(claimed) => Some(claimed),
                None => inner.claim(seat, M::INLINE, None),
            }
        } else {
            match inner.claim(seat, M::INLINE, last.take()) {
                Some(claimed) => Some(claimed),
                None => spin(seat, &runs, &mut budget).await,
            }
        };
        woken = false;
        if let Some(claimed) = claimed {
            let end = if claimed.job.is_async() {
                run_async(seat, claimed).await
            } else {
                match runs.here(seat, claimed) {
                    Ok(end) => end,
                    Err(claimed) => runs.offload(seat, claimed).await,
                }
            };
            graves.keep(end.shell);
            if end.retire {
                return;
            }
            last = end.at;
            continue;
        }
        graves.free();
        match inner.idle_listener() {
            Parked::Work => {}
            Parked::Exit => return,
            Parked::Wait(listener, token) => {
                // Rule 3 of `spin.rs` can only lengthen a shortened spin: no clock
                // reading (tens of ns here) while the spin is full.
                let parked = budget.is_short().then(Instant::now);
                listener.await;
                drop(token);
                if let Some(parked) = parked {
                    budget.woke_after(parked.elapsed());
                }
                woken = true;
            }
        }
    }
}

impl Inner {
    /// Registers an idle worker and re-checks the queue (parking rule 1).
    fn idle_listener(&self) -> Parked<'_, Listener<'_>> {
        self.parking.park(|| !self.queue.is_empty())
    }

    /// Takes the spinning slot, if free (parking rule 5).
    fn try_spin(&self) -> Option<SpinToken<'_, Waitlist>> {
        self.parking.try_spin()
    }

    /// Whether the queue holds anything (a snapshot, for a spinning worker).
    fn has_work(&self) -> bool {
        !self.queue.is_empty()
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

/// Queue polls between two checks of the clock (and pauses) while spinning.
const SPIN_ROUND: u32 = 32;

/// Spins for work (parking rule 5) for up to `budget`'s length, pausing between rounds,
/// and tells `budget` how it went. `None` if another worker holds the slot (it is
/// responsible for the queued work), or nothing came in time: park next.
async fn spin<M: Runs>(seat: &Seat, runs: &M, budget: &mut SpinBudget) -> Option<Claimed> {
    let inner: &Inner = seat;
    let token = inner.try_spin()?;
    let (start, limit) = (Instant::now(), budget.limit());
    let mut first = true;
    loop {
        let claimed = poll_round(seat, M::INLINE);
        let stopping = inner.parking.is_stopping();
        if claimed.is_some() || stopping || start.elapsed() >= limit {
            // Rule 5: pass on the wake-ups producers skipped while this worker spun.
            token.release(|| inner.has_work());
            if M::ADAPTIVE_SPIN {
                budget.spun(match (&claimed, first || stopping) {
                    (Some(_), false) => Spun::Waited,
                    (Some(_), true) | (None, true) => Spun::AtOnce,
                    (None, false) => Spun::Nothing,
                });
            }
            return claimed;
        }
        first = false;
        runs.pause().await;
    }
}

/// Up to [`SPIN_ROUND`] looks at the queue (a load each), then a claim if one saw work.
fn poll_round(seat: &Seat, inline: bool) -> Option<Claimed> {
    for _ in 0..SPIN_ROUND {
        if seat.has_work() {
            return seat.claim(seat, inline, None);
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

/// Runs one attempt of a claimed blocking job on this thread.
fn call(claimed: &mut Claimed) -> Outcome {
    #[cfg(feature = "tracing")]
    let _span = claimed.span.clone().entered();
    let ctx = claimed
        .ctx
        .as_ref()
        .expect("a claimed task has its context");
    claimed
        .job
        .call(ctx)
        .unwrap_or_else(|| Err(TaskError::failed("the job is neither blocking nor async")))
}

/// Runs one attempt of a claimed async job: its future is raced against the task's
/// signal; a cancelled or timed-out attempt's future is dropped at once.
async fn run_async(seat: &Seat, claimed: Claimed) -> End {
    let inner: &Inner = seat;
    let mut attempt = Attempt(inner, Some(claimed));
    let claimed = attempt.1.as_mut().expect("just put");
    let outcome = race(seat, claimed).await;
    let dropped = claimed.job.end_attempt();
    let claimed = attempt.1.take().expect("still ours");
    let id = claimed.meta.id;
    let end = inner.finish(claimed, outcome);
    let mut notes = Notes::new();
    notes.check("dropping the stopped attempt's future", dropped);
    inner.note(id, notes);
    end
}

/// A claimed attempt held across an await: if the future holding it is dropped (its
/// runtime shut down), the attempt is ended as lost, so the task still ends and its slot
/// is reclaimed.
struct Attempt<'a>(&'a Inner, Option<Claimed>);

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(claimed) = self.1.take() {
            drop(self.0.lost(claimed).shell);
        }
    }
}

/// The claimed async attempt, polled until it ends, unless the task's signal is raised
/// first (then it is left unfinished; the caller drops its future).
async fn race(seat: &Seat, claimed: &mut Claimed) -> Outcome {
    let inner: &Inner = seat;
    let desk = &seat.desk;
    let Some(record) = inner.record(claimed.meta.id) else {
        return Err(TaskError::cancelled());
    };
    #[cfg(feature = "tracing")]
    let span = claimed.span.clone();
    let Claimed { job, ctx, .. } = claimed;
    let mut registered = false;
    let outcome = std::future::poll_fn(|cx| {
        #[cfg(feature = "tracing")]
        let _span = span.enter();
        if record.is_raised() {
            return Poll::Ready(Err(TaskError::cancelled()));
        }
        // The attempt first: most end in their first poll and need no wake-up from the
        // signal, so their worker's waker is neither cloned nor left in the desk.
        if let Poll::Ready(outcome) = job.poll_attempt(ctx, cx) {
            return Poll::Ready(outcome);
        }
        // Register (in this worker's desk, which the task's cold data points to: rule 8),
        // then re-check: a raise after the check above is seen here, one after the
        // registration wakes this worker.
        desk.waker.register(cx.waker());
        registered = true;
        if record.is_raised() {
            return Poll::Ready(Err(TaskError::cancelled()));
        }
        Poll::Pending
    })
    .await;
    if registered {
        // Dropped here, where it was cloned, rather than left in the desk.
        drop(desk.waker.take());
    }
    outcome
}

/// The hand-back of a blocking attempt from the runtime's blocking pool to its worker: a
/// [`Completion`] whose writer is the pool's thread (it publishes the attempt and its
/// outcome) and whose taker is the worker, which may also abort it: give up waiting when
/// the task's signal says the attempt was detached (completion rules 2-3). Whichever wins
/// ends the attempt; the loser does nothing more.
type Handback = Completion<Option<(Claimed, Outcome)>>;

/// A blocking attempt on its way to the runtime's blocking pool.
struct Offloaded {
    seat: Seat,
    /// `None` once run.
    claimed: Option<Claimed>,
    handback: Arc<Handback>,
}

impl Offloaded {
    /// Runs the attempt on this (blocking) thread, and hands it back to the worker, or ends
    /// it here if the worker gave up waiting.
    fn run(mut self) {
        let mut claimed = self.claimed.take().expect("run once");
        let outcome = call(&mut claimed);
        // SAFETY: completion rule 1, this thread is the hand-back's only writer.
        unsafe {
            self.handback
                .with_slot(|slot| *slot = Some((claimed, outcome)))
        };
        // SAFETY: as above, once.
        if !unsafe { self.handback.publish(0) } {
            // The worker gave up (the attempt was detached): the attempt is ours to end.
            // SAFETY: completion rule 1, an aborted slot is the writer's.
            let taken = unsafe { self.handback.with_slot(Option::take) };
            let (claimed, outcome) = taken.expect("just put");
            drop(self.seat.finish(claimed, outcome).shell);
        }
    }
}

impl Drop for Offloaded {
    fn drop(&mut self) {
        if let Some(claimed) = self.claimed.take() {
            // The runtime dropped the job unrun: end the attempt as lost, and let the
            // worker move on (an empty hand-back).
            drop(self.seat.lost(claimed).shell);
            // SAFETY: completion rule 1, the only writer; nothing was published.
            unsafe { self.handback.publish(0) };
        }
    }
}

/// Sends a claimed blocking attempt to the runtime's blocking pool and waits for it to
/// come back, or for its task's signal (a timeout or cancel detached it: the handle has
/// resolved, and the pool's thread will end the attempt itself).
async fn offload<R: AsyncRuntime>(runtime: &R, seat: &Seat, claimed: Claimed) -> End {
    let inner: &Inner = seat;
    let id = claimed.meta.id;
    let handback = Arc::new(Handback::new(None));
    let job = Offloaded {
        seat: Arc::clone(seat),
        claimed: Some(claimed),
        handback: Arc::clone(&handback),
    };
    runtime.spawn_blocking(Box::new(move || job.run()));
    let mut waiting = Waiting {
        inner,
        handback,
        done: false,
    };
    // The pool's thread holds the task's token until it publishes, so the record is
    // this task's while we wait (rule 1).
    let record = inner.record(id).expect("a running task's slot is live");
    let received = std::future::poll_fn(|cx| {
        if let Some(taken) = waiting.try_take() {
            return Poll::Ready(Some(taken));
        }
        waiting.handback.latch().register(cx.waker());
        seat.desk.waker.register(cx.waker());
        if let Some(taken) = waiting.try_take() {
            return Poll::Ready(Some(taken));
        }
        if record.is_raised() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    waiting.done = true;
    match received {
        Some(Some((claimed, outcome))) => {
            drop(seat.desk.waker.take());
            inner.finish(claimed, outcome)
        }
        // The runtime dropped the job; `Offloaded::drop` ended the attempt and released
        // the slot.
        Some(None) => {
            drop(seat.desk.waker.take());
            End::NONE
        }
        // Detached: give up waiting; whoever wins the hand-back ends the attempt. Pinned
        // until then: the pool's thread holds the token, or we do.
        None => {
            drop(seat.desk.waker.take());
            waiting.abandon()
        }
    }
}

/// A worker's wait for a hand-back; dropped while waiting (its runtime shut down), it
/// abandons it, so the attempt still ends.
struct Waiting<'a> {
    inner: &'a Inner,
    handback: Arc<Handback>,
    done: bool,
}

impl Waiting<'_> {
    /// The hand-back's value, once published.
    fn try_take(&self) -> Option<Option<(Claimed, Outcome)>> {
        match self.handback.take(Option::take)? {
            Taken::Published(value) => Some(value),
            Taken::Aborted(_) => unreachable!("only this waiter aborts"),
        }
    }

    /// Gives up waiting: if the pool's thread has not handed the attempt back, it ends the
    /// attempt itself; if it has, the attempt is ended here.
    fn abandon(&self) -> End {
        if self.handback.latch().abort(0) {
            return End::NONE;
        }
        match self.try_take() {
            Some(Some((claimed, outcome))) => self.inner.finish(claimed, outcome),
            _ => End::NONE,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            drop(self.abandon().shell);
        }
    }
}
