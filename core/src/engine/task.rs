//! Tasks as the user builds them: [`Task`], its work ([`Blocking`] or [`Async`]) and its
//! settings.

#![allow(
    private_interfaces,
    reason = "`sealed::Erase` is unnameable outside the crate; its methods name crate types"
)]

use std::any::Any;
use std::boxed::Box;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cell::{AsyncWork, Cell, Handle, JobRef};
use super::context::Context;
use super::ending::OnEnd;
use super::error::{BoxError, TaskError};
use super::spec::{Every, Spec, Start, Store};
use crate::{Priority, RetryDecision, RetryPolicy, TaskId};

/// A task ready to submit: the work plus how to run it (priority, and the other settings
/// of its spec).
///
/// Build one with [`Task::future`] (an async closure, as `tokio::spawn` takes a future) or
/// [`Task::blocking`] (a blocking closure, as `tokio::task::spawn_blocking` takes one), set
/// what you need, then give it to [`Manager::submit`](super::Manager::submit).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_core::engine::{BoxError, Context, Task};
/// use errand_core::Priority;
///
/// let sum = Task::blocking(|_ctx| Ok::<_, BoxError>(2 + 2))
///     .priority(Priority::HIGH)
///     .label("sum");
/// assert_eq!(sum.get_priority(), Priority::HIGH);
///
/// let fetch = Task::future(|ctx: Context| async move {
///     ctx.sleep(Duration::from_millis(1)).await;
///     Ok::<_, BoxError>("fetched")
/// })
/// .timeout(Duration::from_secs(30));
/// # drop((sum, fetch));
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
    /// worker; on the threads runtime it runs on a worker thread. A blocking closure
    /// cannot be stopped from outside: when its task times out or is cancelled, the
    /// handle resolves at once and the closure is *detached* (see
    /// [`Builder::max_detached`](super::Builder::max_detached)); it should watch
    /// [`Context::is_cancelled`] and return early.
    pub fn blocking(f: F) -> Self {
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
    /// A task running the future `f` returns, once per attempt (a closure rather than one
    /// future, so a retry or a recurring run gets a fresh one). A cancelled or timed-out
    /// attempt's future is dropped at once.
    pub fn future(f: F) -> Self {
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

    /// Starts the task no earlier than `at` (an instant in the past means now). A
    /// recurring task's schedule is anchored at `at`, even one in the past: its ticks are
    /// `at + k × interval`, and the missed-tick policy decides about those already past.
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
    /// policy's delay), [`RetryDecision::RetryAfter`] or [`RetryDecision::Fail`].
    ///
    /// Retries stay bounded by the task's [`retry`](Self::retry) policy, or else the
    /// manager's [`default_retry`](super::Builder::default_retry). A handler's `Retry`
    /// must be able to retry: a task with a handler, no policy of its own and a manager
    /// whose default allows no retries is refused at submission
    /// ([`SubmitError::InvalidSpec`](super::SubmitError::InvalidSpec)), never run once in
    /// silence. (A handler meant only to observe can say so with
    /// `.retry(RetryPolicy::none())`.)
    ///
    /// A panicking handler counts as `Fail`, and the task's error then carries the
    /// handler's panic message. It runs on the worker that ran the attempt: keep it short.
    #[must_use]
    pub fn on_error(
        mut self,
        handler: impl Fn(TaskId, &TaskError, u32) -> RetryDecision + Send + Sync + 'static,
    ) -> Self {
        self.spec_mut().on_error = Some(Arc::new(handler));
        self
    }

    /// States how many bytes the task owns beyond what `size_of` sees (a `String`'s or a
    /// `Vec`'s heap buffer, say), so the memory budget charges them too: the task is
    /// charged its allocation's size, plus 128 bytes of bookkeeping, plus `bytes`, while it
    /// lives (see [`Builder::memory_pool_mb`](super::Builder::memory_pool_mb)).
    ///
    /// # Examples
    ///
    /// ```
    /// use errand_core::engine::{BoxError, Task};
    ///
    /// let rows: Vec<u64> = (0..10_000).collect();
    /// let bytes = rows.capacity() * size_of::<u64>();
    /// let task = Task::blocking(move |_ctx| Ok::<_, BoxError>(rows.iter().sum::<u64>()))
    ///     .weight(bytes);
    /// # drop(task);
    /// ```
    #[must_use]
    pub fn weight(mut self, bytes: usize) -> Self {
        self.spec_mut().weight = bytes;
        self
    }

    /// Tells `hook` when the task ends, and of its progress (the durable layer's hook).
    #[cfg_attr(
        not(feature = "durable"),
        allow(dead_code, reason = "used by the durable layer")
    )]
    pub(crate) fn on_end(mut self, hook: Arc<dyn OnEnd>, attempts_before: u32) -> Self {
        let spec = self.spec_mut();
        spec.on_end = Some(hook);
        spec.attempts_before = attempts_before;
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

/// The [`StoreFn`](super::spec::StoreFn) of `T`.
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
