//! Tasks as the user builds them ([`Task`]) and as the engine runs them (type-erased jobs),
//! plus the typed completion a [`TaskHandle`](super::TaskHandle) waits on.

#![allow(
    private_interfaces,
    reason = "`sealed::Erase` is unnameable outside the crate; its methods name crate types"
)]

use std::any::Any;
use std::boxed::Box;
use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use atomic_waker::AtomicWaker;

use super::context::Context;
use super::error::{BoxError, TaskError};
use super::spec::{Every, Spec, Start, Store, StoreFn};
use crate::State;
use crate::{Priority, RetryDecision, RetryPolicy, TaskId};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// `Completion::ended` before the end is published.
const NOT_ENDED: u8 = u8::MAX;

/// What one attempt ended with: `Ok` when the task returned a value (staged in its
/// completion), the error otherwise.
pub(crate) type Outcome = Result<(), TaskError>;

/// A task ready to submit: the work plus how to run it (priority, and the other settings
/// of its spec).
///
/// Build one with [`Task::new`] (a blocking closure) or [`Task::new_async`] (an async
/// closure), set what you need, then give it to [`Manager::submit`](super::Manager::submit).
///
/// # Examples
///
/// ```
/// use errand_core::engine::{BoxError, Task};
/// use errand_core::Priority;
///
/// let task = Task::new(|_ctx| Ok::<_, BoxError>(2 + 2))
///     .priority(Priority::HIGH)
///     .label("sum");
/// assert_eq!(task.get_priority(), Priority::HIGH);
/// ```
pub struct Task<J> {
    pub(crate) job: J,
    pub(crate) priority: Priority,
    /// Every other setting; `None` while all are defaults, so a plain task allocates
    /// nothing for its settings (and stays small when a refusal hands it back).
    pub(crate) spec: Option<Box<Spec>>,
}

impl<J> std::fmt::Debug for Task<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("priority", &self.priority)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A blocking closure as a job: `FnMut(&Context) -> Result<T, E>`.
#[derive(Debug)]
pub struct Blocking<F>(F);

/// An async closure as a job: `FnMut(Context) -> impl Future<Output = Result<T, E>>`.
#[derive(Debug)]
pub struct Async<F>(F);

impl<F, T, E> Task<Blocking<F>>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    /// A task running the blocking closure `f`. It is called once per attempt (again on a
    /// retry or a recurring run), with the attempt's [`Context`].
    ///
    /// On an async runtime it runs on the runtime's blocking pool, never on an async
    /// worker; on the threads runtime it runs on a worker thread.
    pub fn new(f: F) -> Self {
        Task {
            job: Blocking(f),
            priority: Priority::NORMAL,
            spec: None,
        }
    }
}

impl<F, Fut, T, E> Task<Async<F>>
where
    F: FnMut(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    /// A task running the future `f` returns, once per attempt. A cancelled or timed-out
    /// attempt's future is dropped at once.
    pub fn new_async(f: F) -> Self {
        Task {
            job: Async(f),
            priority: Priority::NORMAL,
            spec: None,
        }
    }
}

impl<J> Task<J> {
    /// The settings, allocated on first change.
    fn spec_mut(&mut self) -> &mut Spec {
        self.spec.get_or_insert_with(Box::default)
    }

    /// Sets the priority (default [`Priority::NORMAL`]).
    #[must_use]
    pub fn priority(mut self, priority: impl Into<Priority>) -> Self {
        self.priority = priority.into();
        self
    }

    /// The priority set so far.
    #[must_use]
    pub fn get_priority(&self) -> Priority {
        self.priority
    }

    /// Sets a label, shown in task snapshots.
    #[must_use]
    pub fn label(mut self, label: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.spec_mut().label = Some(label.into());
        self
    }

    /// Starts the task no earlier than `delay` after submission (it waits `Scheduled`).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.spec_mut().start = Start::After(delay);
        self
    }

    /// Starts the task no earlier than `at` (an instant in the past means now).
    #[must_use]
    pub fn at(mut self, at: Instant) -> Self {
        self.spec_mut().start = Start::At(at);
        self
    }

    /// Gives each attempt at most `timeout` (instead of the manager's default): at the
    /// deadline an async attempt's future is dropped, a blocking attempt is told through
    /// [`Context::is_cancelled`], and the task ends `TimedOut` (a timeout is final, never
    /// retried). Zero is an invalid spec.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.spec_mut().timeout = Some(timeout);
        self
    }

    /// Makes the task recurring: it runs on the schedule of `every` (first at submission,
    /// or after its [`delay`](Self::delay) / at its [`at`](Self::at) instant).
    #[must_use]
    pub fn every(mut self, every: Every) -> Self {
        self.spec_mut().every = Some(every);
        self
    }

    /// Retries failed attempts under `policy` (instead of the manager's default).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.spec_mut().retry = Some(policy);
        self
    }

    /// Lets `handler` decide about each failed attempt (an error or a panic): it gets the
    /// task's id, the error (downcast it with [`TaskError::downcast_ref`]) and the attempt
    /// number (1 for the first), and returns [`RetryDecision::Retry`] (after the retry
    /// policy's delay), [`RetryDecision::RetryAfter`] or [`RetryDecision::Fail`]. Retries
    /// stay bounded by the policy's `max_retries`; with no policy set, the manager's
    /// default applies. A panicking handler counts as `Fail`, and the task's error then
    /// carries the handler's panic message.
    ///
    /// It runs on the worker that ran the attempt: keep it short.
    #[must_use]
    pub fn on_error(
        mut self,
        handler: impl Fn(TaskId, &TaskError, u32) -> RetryDecision + Send + Sync + 'static,
    ) -> Self {
        self.spec_mut().on_error = Some(Arc::new(handler));
        self
    }

    /// The work, without its settings.
    pub fn into_inner(self) -> J {
        self.job
    }
}

impl<J: Job> Task<J>
where
    J::Output: Clone + Sync,
{
    /// Keeps a copy of the task's value after it succeeds, for
    /// [`Manager::stored_result`](super::Manager::stored_result), during the manager's
    /// default result TTL. The copy is charged to the memory budget and freed (its bytes
    /// returned) when the TTL expires.
    #[must_use]
    pub fn store_result(mut self) -> Self {
        self.spec_mut().store = Some(Store {
            ttl: None,
            clone: clone_into_store::<J::Output>,
        });
        self
    }

    /// Like [`store_result`](Self::store_result), kept for `ttl`.
    #[must_use]
    pub fn store_result_for(mut self, ttl: Duration) -> Self {
        self.spec_mut().store = Some(Store {
            ttl: Some(ttl),
            clone: clone_into_store::<J::Output>,
        });
        self
    }
}

/// Bytes a stored result is charged beyond `size_of::<T>()`: the `Arc`'s counts, the
/// store's map entry and expiry-queue entry, rounded up.
pub(crate) const STORED_RESULT_OVERHEAD: usize = 96;

/// The [`StoreFn`] of `T`.
fn clone_into_store<T: Clone + Send + Sync + 'static>(
    value: &dyn Any,
) -> Option<(Arc<dyn Any + Send + Sync>, usize)> {
    let value = value.downcast_ref::<T>()?;
    Some((
        Arc::new(value.clone()),
        core::mem::size_of::<T>() + STORED_RESULT_OVERHEAD,
    ))
}

/// The work of a [`Task`]: [`Blocking`] or [`Async`]. Sealed; its `Output` is the
/// task's value.
pub trait Job: sealed::Erase {}

pub(crate) mod sealed {
    use super::{Handle, JobRef};

    /// How the engine erases a job; not nameable outside the crate.
    pub trait Erase: Send + 'static {
        /// The task's value.
        type Output: Send + 'static;
        /// The task's one allocation: the engine's side of it (the job) and the handle's
        /// side (the completion).
        #[doc(hidden)]
        fn erase(self) -> (JobRef, Handle<Self::Output>);
        /// Bytes the task's allocation occupies (charged to the memory budget).
        #[doc(hidden)]
        fn erased_size() -> usize;
    }
}

use sealed::Erase;

impl<F, T, E> Job for Blocking<F>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
}

impl<F, Fut, T, E> Job for Async<F>
where
    F: FnMut(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
}

/// Bytes of an `Arc`'s allocation beyond its value: the strong and weak counts.
const ARC_COUNTS: usize = 2 * core::mem::size_of::<usize>();

impl<F, T, E> Erase for Blocking<F>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    type Output = T;
    fn erase(self) -> (JobRef, Handle<T>) {
        Cell::into_parts(self.0)
    }
    fn erased_size() -> usize {
        core::mem::size_of::<Cell<F, T>>() + ARC_COUNTS
    }
}

impl<F, Fut, T, E> Erase for Async<F>
where
    F: FnMut(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    type Output = T;
    fn erase(self) -> (JobRef, Handle<T>) {
        Cell::into_parts(AsyncWork {
            f: self.0,
            future: None,
        })
    }
    fn erased_size() -> usize {
        core::mem::size_of::<Cell<AsyncWork<F, Fut>, T>>() + ARC_COUNTS
    }
}

/// An async job's closure and the future of its running attempt (pinned in place: the
/// cell never moves).
struct AsyncWork<F, Fut> {
    f: F,
    future: Option<Fut>,
}

/// A task's one allocation: its work (the closure, and an async attempt's future) and its
/// typed completion.
///
/// Two kinds of reference point at it. The engine's [`JobRef`] is unique (never cloned)
/// and moves with the task's job token (the state cell's hand-off rules): only its holder
/// touches `work`, and the completion's slot until the end is published. The
/// [`Handle`]s (a task's handle) touch only the completion's atomics, and its slot after
/// the end is published (completion rules in [`Completion`]).
struct Cell<W, T> {
    completion: Completion<T>,
    /// `None` once the job is released (the closure and any future dropped).
    work: UnsafeCell<Option<W>>,
}

// SAFETY: `work` is touched only by the unique `JobRef` holder (`&mut JobRef`, so one
// thread at a time), and the completion is `Sync` on its own rules; `W: Send` and
// `T: Send` because both move between threads with the job.
unsafe impl<W: Send, T: Send> Sync for Cell<W, T> {}

impl<W, T> Cell<W, T>
where
    W: Send + 'static,
    T: Send + 'static,
    Cell<W, T>: ErasedJob,
{
    /// One allocation, referenced by the engine's job and the task's handle.
    fn into_parts(work: W) -> (JobRef, Handle<T>) {
        let cell = Arc::new(Cell {
            completion: Completion::new(),
            work: UnsafeCell::new(Some(work)),
        });
        let handle: Handle<T> = cell.clone();
        (JobRef(cell), handle)
    }

    /// The work, for the `JobRef` holder.
    ///
    /// # Safety
    ///
    /// The caller holds the cell's `JobRef` mutably (so no other reference to the work
    /// exists), and the job is not released.
    #[allow(clippy::mut_from_ref, reason = "exclusive through the unique JobRef")]
    unsafe fn work(&self) -> &mut W {
        // SAFETY: the caller's contract.
        unsafe {
            (*self.work.get())
                .as_mut()
                .expect("a released job is not run")
        }
    }
}

/// The handle's side of a task's allocation.
pub(crate) type Handle<T> = Arc<dyn Completes<T>>;

/// Reaches the completion inside a task's allocation (whatever its work's type).
pub(crate) trait Completes<T>: Send + Sync {
    fn completion(&self) -> &Completion<T>;
}

impl<W: Send, T: Send> Completes<T> for Cell<W, T> {
    fn completion(&self) -> &Completion<T> {
        &self.completion
    }
}

/// The engine's side of a task's allocation, behind one object-safe interface for every
/// kind of job.
///
/// # Safety
///
/// Every method but `is_async` may be called only by the holder of the cell's unique
/// [`JobRef`], through `&mut JobRef` (or by value): that is what makes the work and the
/// staged value exclusively theirs.
pub(crate) trait ErasedJob: Send + Sync {
    /// Whether attempts are futures (polled by [`poll_attempt`](Self::poll_attempt)).
    fn is_async(&self) -> bool;
    /// Runs one attempt of a blocking job on the current thread; `None` for an async job.
    unsafe fn call(&self, ctx: &Context) -> Option<Outcome>;
    /// Polls the running attempt of an async job, starting it (taking `ctx`) on the first
    /// poll. A blocking job is ready at once with an error.
    unsafe fn poll_attempt(
        &self,
        ctx: &mut Option<Context>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome>;
    /// Drops the running attempt's future, if any (a cancelled or finished attempt).
    unsafe fn end_attempt(&self);
    /// Applies `clone` to the staged value (for the result store).
    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)>;
    /// Publishes the task's end to its handle (the staged value when `result` is `Ok`),
    /// unless it is already published.
    unsafe fn complete(&self, result: Result<(), TaskError>);
    /// Drops the work (the closure and any future); the job is never run again.
    unsafe fn release(&self);
    /// Drops the published result (nobody can take it: this is the cell's only
    /// reference).
    fn discard(&mut self);
}

impl<F, T, E> ErasedJob for Cell<F, T>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    fn is_async(&self) -> bool {
        false
    }

    unsafe fn call(&self, ctx: &Context) -> Option<Outcome> {
        // SAFETY: the trait's contract.
        let f = unsafe { self.work() };
        let result = catch_unwind(AssertUnwindSafe(|| f(ctx)));
        Some(match result {
            Ok(Ok(value)) => {
                // SAFETY: the trait's contract.
                unsafe { self.completion.stage(value) };
                Ok(())
            }
            Ok(Err(error)) => Err(TaskError::failed(error)),
            Err(payload) => Err(TaskError::panicked(&*payload)),
        })
    }

    unsafe fn poll_attempt(
        &self,
        _ctx: &mut Option<Context>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome> {
        Poll::Ready(Err(TaskError::failed("a blocking job polled as async")))
    }

    unsafe fn end_attempt(&self) {}

    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)> {
        // SAFETY: the trait's contract.
        unsafe { self.completion.clone_staged(clone) }
    }

    unsafe fn complete(&self, result: Result<(), TaskError>) {
        // SAFETY: the trait's contract.
        unsafe { self.completion.finish(result) }
    }

    unsafe fn release(&self) {
        // SAFETY: the trait's contract; nothing borrows the work across this call.
        drop(unsafe { (*self.work.get()).take() });
    }

    fn discard(&mut self) {
        self.completion.discard();
    }
}

impl<F, Fut, T, E> ErasedJob for Cell<AsyncWork<F, Fut>, T>
where
    F: FnMut(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    fn is_async(&self) -> bool {
        true
    }

    unsafe fn call(&self, _ctx: &Context) -> Option<Outcome> {
        None
    }

    unsafe fn poll_attempt(
        &self,
        ctx: &mut Option<Context>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome> {
        // SAFETY: the trait's contract.
        let work = unsafe { self.work() };
        if work.future.is_none() {
            let ctx = ctx
                .take()
                .expect("an attempt starts once, with its context");
            // Building the future runs user code too: a panic there is the attempt's
            // failure.
            match catch_unwind(AssertUnwindSafe(|| (work.f)(ctx))) {
                Ok(future) => work.future = Some(future),
                Err(payload) => return Poll::Ready(Err(TaskError::panicked(&*payload))),
            }
        }
        let future = work.future.as_mut().expect("started just above");
        // SAFETY: the future lives in the task's allocation, which never moves, and it is
        // only ever dropped in place (`end_attempt`, `release`, or the cell's drop).
        let future = unsafe { Pin::new_unchecked(future) };
        let polled = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => {
                // SAFETY: the trait's contract.
                unsafe { self.completion.stage(value) };
                Ok(())
            }
            Ok(Poll::Ready(Err(error))) => Err(TaskError::failed(error)),
            Err(payload) => Err(TaskError::panicked(&*payload)),
        };
        work.future = None;
        Poll::Ready(outcome)
    }

    unsafe fn end_attempt(&self) {
        // SAFETY: the trait's contract.
        if let Some(work) = unsafe { (*self.work.get()).as_mut() } {
            work.future = None;
        }
    }

    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)> {
        // SAFETY: the trait's contract.
        unsafe { self.completion.clone_staged(clone) }
    }

    unsafe fn complete(&self, result: Result<(), TaskError>) {
        // SAFETY: the trait's contract.
        unsafe { self.completion.finish(result) }
    }

    unsafe fn release(&self) {
        // SAFETY: the trait's contract; the future (if any) is dropped in place first.
        unsafe {
            self.end_attempt();
            drop((*self.work.get()).take());
        }
    }

    fn discard(&mut self) {
        self.completion.discard();
    }
}

/// The engine's unique reference to a task's job: whoever holds it may run the job and
/// publish its end. Never cloned; it moves with the task's job token.
///
/// Dropped without [`complete`](Self::complete) (a runtime that discarded the job), it
/// still resolves the handle, as cancelled.
pub(crate) struct JobRef(Arc<dyn ErasedJob>);

impl JobRef {
    pub(crate) fn is_async(&self) -> bool {
        self.0.is_async()
    }

    /// Runs one attempt of a blocking job here; `None` for an async job.
    pub(crate) fn call(&mut self, ctx: &Context) -> Option<Outcome> {
        // SAFETY: `&mut self` on the unique JobRef (ErasedJob's contract).
        unsafe { self.0.call(ctx) }
    }

    /// Polls an async job's running attempt (started on the first poll, taking `ctx`).
    pub(crate) fn poll_attempt(
        &mut self,
        ctx: &mut Option<Context>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome> {
        // SAFETY: as in `call`.
        unsafe { self.0.poll_attempt(ctx, cx) }
    }

    /// Drops the attempt's future, if it is still there (cancelled or timed out).
    pub(crate) fn end_attempt(&mut self) {
        // SAFETY: as in `call`.
        unsafe { self.0.end_attempt() }
    }

    /// Applies `clone` to the staged value, if there is one.
    pub(crate) fn clone_staged(
        &mut self,
        clone: StoreFn,
    ) -> Option<(Arc<dyn Any + Send + Sync>, usize)> {
        // SAFETY: as in `call`.
        unsafe { self.0.clone_staged(clone) }
    }

    /// Publishes the task's end to its handle and drops the work. If the handle is gone,
    /// the result is dropped too and the emptied cell comes back as a [`Shell`], for the
    /// caller to free when it suits it; otherwise the handle frees the cell.
    pub(crate) fn complete(self, result: Result<(), TaskError>) -> Option<Shell> {
        // SAFETY: we own the unique JobRef (ErasedJob's contract).
        unsafe {
            self.0.complete(result);
            self.0.release();
        }
        // `Drop` would complete and release again: both are done, so it is skipped.
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Arc` moves out once.
        let mut cell = unsafe { core::ptr::read(&this.0) };
        // Most handles outlive their task's end: a load spares them `get_mut`'s writes to
        // the counts' line (no `Weak` of a cell exists, so this is the whole check).
        if Arc::strong_count(&cell) != 1 {
            return None;
        }
        Arc::get_mut(&mut cell)
            .map(|job| job.discard())
            .map(|()| Shell(cell))
    }
}

/// A finished task's cell that nothing refers to any more, its work and result already
/// dropped: only memory, freed when the shell drops.
///
/// Workers free these in batches ([`Driver`](super::Driver)): the cell was allocated by
/// the submitting thread, and freeing it on a worker one task at a time moves the
/// allocator's free-list line between the cores on every task.
pub(crate) struct Shell(#[allow(dead_code, reason = "held to be dropped")] Arc<dyn ErasedJob>);

impl Drop for JobRef {
    fn drop(&mut self) {
        // SAFETY: we own the unique JobRef (ErasedJob's contract).
        unsafe {
            self.0.complete(Err(TaskError::cancelled()));
            self.0.release();
        }
    }
}

/// `Completion::state`: nothing published yet.
const PENDING: u8 = 0;
/// `Completion::state`: the end is in the slot; the handle may take it.
const READY: u8 = 1;
/// `Completion::state`: the handle took the end.
const TAKEN: u8 = 2;

/// Where a task's value travels from the worker to its handle.
enum Slot<T> {
    /// Nothing yet.
    Empty,
    /// The last attempt returned this value; not published until the task ends.
    Staged(T),
    /// Published: the handle may take it.
    Ready(Result<T, TaskError>),
}

/// A task's typed completion, shared by its job and its handle, without a lock.
///
/// Its rules:
/// 1. While `state` is `PENDING`, only the `JobRef` holder touches `slot` (staging a
///    value, reading it for the store, publishing the end).
/// 2. The holder publishes once: it writes `Ready` into the slot, then stores `READY`
///    (`Release`); it never touches the slot again.
/// 3. A handle takes the end by winning `READY → TAKEN` (`Acquire`), which happens once:
///    the slot is then the handle's alone.
pub(crate) struct Completion<T> {
    state: AtomicU8,
    /// The terminal state the end stands for (`State as u8`), `NOT_ENDED` before.
    ended: AtomicU8,
    /// The waker of the (single) handle waiting for the end.
    waker: AtomicWaker,
    slot: UnsafeCell<Slot<T>>,
}

// SAFETY: the slot is only touched by one side at a time (the rules above), and `T: Send`
// because the value moves from the worker's thread to the handle's.
unsafe impl<T: Send> Sync for Completion<T> {}

impl<T> Completion<T> {
    /// Drops whatever the slot holds (`&mut`: no handle can reach it).
    fn discard(&mut self) {
        *self.slot.get_mut() = Slot::Empty;
    }

    fn new() -> Self {
        Self {
            state: AtomicU8::new(PENDING),
            ended: AtomicU8::new(NOT_ENDED),
            waker: AtomicWaker::new(),
            slot: UnsafeCell::new(Slot::Empty),
        }
    }

    /// Keeps the value of a successful attempt until the task's end is decided.
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder (rule 1).
    unsafe fn stage(&self, value: T) {
        if self.state.load(Ordering::Relaxed) == PENDING {
            // SAFETY: rule 1.
            unsafe { *self.slot.get() = Slot::Staged(value) };
        }
    }

    /// Publishes the end: the staged value on `Ok`, the error otherwise (dropping any
    /// staged value), unless it is already published. Wakes the waiting handle.
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder (rules 1-2).
    unsafe fn finish(&self, result: Result<(), TaskError>) {
        // Only the holder ever leaves PENDING, so its own earlier publish is visible here.
        if self.state.load(Ordering::Relaxed) != PENDING {
            return;
        }
        // SAFETY: rule 1, still PENDING.
        let slot = unsafe { &mut *self.slot.get() };
        let staged = core::mem::replace(slot, Slot::Empty);
        let result = match (result, staged) {
            (Ok(()), Slot::Staged(value)) => Ok(value),
            (Ok(()), _) => Err(TaskError::failed("the task produced no value")),
            (Err(error), _) => Err(error),
        };
        let state = match &result {
            Ok(_) => State::Succeeded,
            Err(error) => error.state(),
        };
        self.ended.store(state as u8, Ordering::Relaxed);
        *slot = Slot::Ready(result);
        // Rule 2.
        self.state.store(READY, Ordering::Release);
        self.waker.wake();
    }

    /// Applies `clone` to the staged value, if there is one.
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder (rule 1).
    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)>
    where
        T: 'static,
    {
        if self.state.load(Ordering::Relaxed) != PENDING {
            return None;
        }
        // SAFETY: rule 1.
        match unsafe { &*self.slot.get() } {
            Slot::Staged(value) => clone(value),
            _ => None,
        }
    }

    /// Registers the handle's waker (re-check [`is_done`](Self::is_done) afterwards).
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Whether the end is published.
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) != PENDING
    }

    /// Takes the published end, once; `None` before it is published or after it was taken.
    pub(crate) fn take(&self) -> Option<Result<T, TaskError>> {
        self.state
            .compare_exchange(READY, TAKEN, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // SAFETY: rule 3, we won READY → TAKEN: the slot is ours alone.
        match core::mem::replace(unsafe { &mut *self.slot.get() }, Slot::Empty) {
            Slot::Ready(result) => Some(result),
            _ => unreachable!("a READY completion holds its end"),
        }
    }

    /// The terminal state the published end stands for; `None` before it is published.
    pub(crate) fn ended_state(&self) -> Option<State> {
        if !self.is_done() {
            return None;
        }
        let ended = self.ended.load(Ordering::Relaxed);
        State::ALL.into_iter().find(|state| *state as u8 == ended)
    }
}
