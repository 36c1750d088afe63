//! Tasks as the user builds them ([`Task`]) and as the engine runs them (type-erased jobs),
//! plus the typed completion a [`TaskHandle`](super::TaskHandle) waits on.

#![allow(
    private_interfaces,
    reason = "`sealed::Erase` is unnameable outside the crate; its methods name crate types"
)]

use std::any::Any;
use std::boxed::Box;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use atomic_waker::AtomicWaker;

use super::context::Context;
use super::error::{BoxError, TaskError};
use super::spec::{Every, Spec, Start, Store, StoreFn};
use crate::State;
use crate::{Priority, RetryDecision, RetryPolicy, TaskId};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// `Completion::ended` before the end is published.
const NOT_ENDED: u8 = u8::MAX;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What one attempt ended with: `Ok` when the task returned a value (staged in its
/// completion), the error otherwise.
pub(crate) type Outcome = Result<(), TaskError>;

/// Work the engine runs: a closure or an async closure behind one object-safe interface.
///
/// A job is re-runnable (`&mut self`): retries and recurring runs call it again.
pub(crate) trait ErasedJob: Send {
    /// Runs one attempt of a blocking job on the current thread; `None` for an async job.
    fn call(&mut self, ctx: &Context) -> Option<Outcome>;
    /// The future of one attempt of an async job; `None` for a blocking job.
    fn future(&mut self, ctx: Context) -> Option<BoxFuture<Outcome>>;
    /// Publishes the task's end to its handle: the staged value when `result` is `Ok`.
    fn complete(self: Box<Self>, result: Result<(), TaskError>);
    /// Applies `clone` to the staged value (for the result store).
    fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)>;
}

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
    use super::{Completion, ErasedJob};
    use std::boxed::Box;
    use std::sync::Arc;

    /// How the engine erases a job; not nameable outside the crate.
    pub trait Erase: Send + 'static {
        /// The task's value.
        type Output: Send + 'static;
        /// The boxed job, bound to the completion its handle waits on.
        #[doc(hidden)]
        fn erase(self, completion: Arc<Completion<Self::Output>>) -> Box<dyn ErasedJob>;
        /// Bytes the boxed job occupies (charged to the memory budget).
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

struct BlockingJob<F, T> {
    f: F,
    completion: Arc<Completion<T>>,
}

struct AsyncJob<F, T> {
    f: F,
    completion: Arc<Completion<T>>,
}

impl<F, T, E> Erase for Blocking<F>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    type Output = T;
    fn erase(self, completion: Arc<Completion<T>>) -> Box<dyn ErasedJob> {
        Box::new(BlockingJob {
            f: self.0,
            completion,
        })
    }
    fn erased_size() -> usize {
        core::mem::size_of::<BlockingJob<F, T>>()
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
    fn erase(self, completion: Arc<Completion<T>>) -> Box<dyn ErasedJob> {
        Box::new(AsyncJob {
            f: self.0,
            completion,
        })
    }
    fn erased_size() -> usize {
        core::mem::size_of::<AsyncJob<F, T>>() + core::mem::size_of::<Fut>()
    }
}

impl<F, T, E> ErasedJob for BlockingJob<F, T>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    fn call(&mut self, ctx: &Context) -> Option<Outcome> {
        let result = catch_unwind(AssertUnwindSafe(|| (self.f)(ctx)));
        Some(match result {
            Ok(Ok(value)) => {
                self.completion.stage(value);
                Ok(())
            }
            Ok(Err(error)) => Err(TaskError::failed(error)),
            Err(payload) => Err(TaskError::panicked(&*payload)),
        })
    }

    fn future(&mut self, _ctx: Context) -> Option<BoxFuture<Outcome>> {
        None
    }

    fn complete(self: Box<Self>, result: Result<(), TaskError>) {
        self.completion.finish(result);
    }

    fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)> {
        self.completion.clone_staged(clone)
    }
}

impl<F, Fut, T, E> ErasedJob for AsyncJob<F, T>
where
    F: FnMut(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    fn call(&mut self, _ctx: &Context) -> Option<Outcome> {
        None
    }

    fn future(&mut self, ctx: Context) -> Option<BoxFuture<Outcome>> {
        // Building the future runs user code too: a panic there is the attempt's failure.
        let future = match catch_unwind(AssertUnwindSafe(|| (self.f)(ctx))) {
            Ok(future) => future,
            Err(payload) => {
                let error = TaskError::panicked(&*payload);
                return Some(Box::pin(async move { Err(error) }));
            }
        };
        let completion = Arc::clone(&self.completion);
        // One allocation per attempt: the future is pinned inside the boxed async block.
        Some(Box::pin(async move {
            let mut future = std::pin::pin!(future);
            std::future::poll_fn(move |cx| {
                match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(Ok(value))) => {
                        completion.stage(value);
                        Poll::Ready(Ok(()))
                    }
                    Ok(Poll::Ready(Err(error))) => Poll::Ready(Err(TaskError::failed(error))),
                    Err(payload) => Poll::Ready(Err(TaskError::panicked(&*payload))),
                }
            })
            .await
        }))
    }

    fn complete(self: Box<Self>, result: Result<(), TaskError>) {
        self.completion.finish(result);
    }

    fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)> {
        self.completion.clone_staged(clone)
    }
}

/// Where a task's value travels from the worker to its handle.
enum Slot<T> {
    /// Nothing yet.
    Pending,
    /// The last attempt returned this value; not published until the task ends.
    Staged(T),
    /// Published: the handle may take it.
    Ready(Result<T, TaskError>),
    /// The handle took it.
    Taken,
}

/// A task's typed completion, shared by its job and its handle.
pub(crate) struct Completion<T> {
    slot: Mutex<Slot<T>>,
    /// Set (with `Release`) once the slot is `Ready`.
    done: AtomicBool,
    /// The terminal state the end stands for (`State as u8`), `NOT_ENDED` before.
    ended: AtomicU8,
    /// The waker of the (single) handle waiting for `done`.
    waker: AtomicWaker,
}

impl<T> Completion<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Mutex::new(Slot::Pending),
            done: AtomicBool::new(false),
            ended: AtomicU8::new(NOT_ENDED),
            waker: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        // The slot is only replaced wholesale, never left half-written: a poisoned lock
        // still holds a coherent value.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the value of a successful attempt until the task's end is decided.
    fn stage(&self, value: T) {
        *self.lock() = Slot::Staged(value);
    }

    /// Publishes the end: the staged value on `Ok`, the error otherwise (dropping any
    /// staged value). Wakes every waiter.
    fn finish(&self, result: Result<(), TaskError>) {
        {
            let mut slot = self.lock();
            if matches!(*slot, Slot::Ready(_) | Slot::Taken) {
                return;
            }
            let staged = core::mem::replace(&mut *slot, Slot::Pending);
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
        }
        self.done.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Applies `clone` to the staged value, if there is one.
    fn clone_staged(&self, clone: StoreFn) -> Option<(Arc<dyn Any + Send + Sync>, usize)>
    where
        T: 'static,
    {
        match &*self.lock() {
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
        self.done.load(Ordering::Acquire)
    }

    /// Takes the published end, once; `None` before it is published or after it was taken.
    pub(crate) fn take(&self) -> Option<Result<T, TaskError>> {
        if !self.is_done() {
            return None;
        }
        let mut slot = self.lock();
        match core::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Ready(result) => Some(result),
            other => {
                *slot = other;
                None
            }
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

impl<F, T> Drop for BlockingJob<F, T> {
    fn drop(&mut self) {
        // A job dropped without an end (a runtime that discarded it) still resolves its
        // handle, as cancelled; after `complete` this does nothing.
        self.completion.finish(Err(TaskError::cancelled()));
    }
}

impl<F, T> Drop for AsyncJob<F, T> {
    fn drop(&mut self) {
        self.completion.finish(Err(TaskError::cancelled()));
    }
}
