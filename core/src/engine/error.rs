//! The engine's error types: rejected submissions, failed tasks, bad progress reports.

use std::borrow::Cow;
use std::boxed::Box;
use std::error::Error;
use std::fmt;
use std::string::String;

use super::guard::Caught;
use crate::{State, TaskId};

/// The error type a task may fail with: anything that converts into a boxed error.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why a submission was rejected. The task always comes back with the error
/// ([`SubmitError::into_task`]): a rejected task is never dropped.
///
/// # Examples
///
/// ```
/// use errand_core::engine::{SubmitError, Task};
///
/// # let _: Option<SubmitError<()>> = None;
/// fn retry_later<T>(err: SubmitError<T>) -> T {
///     eprintln!("{err}"); // for example "queue full: all 1024 task slots are live"
///     err.into_task()
/// }
/// ```
#[non_exhaustive]
pub enum SubmitError<T> {
    /// Every task slot holds a live (queued, scheduled or running) task.
    QueueFull {
        /// The task, given back.
        task: T,
        /// The manager's queue capacity (maximum live tasks).
        capacity: usize,
    },
    /// The memory budget has no room for the task's closure or future.
    BudgetExceeded {
        /// The task, given back.
        task: T,
        /// Bytes the task needed.
        requested: usize,
        /// The budget, in bytes.
        budget: usize,
    },
    /// The manager stopped accepting tasks (shutdown began).
    ShuttingDown {
        /// The task, given back.
        task: T,
    },
    /// The runtime the manager ran on is gone (a tokio runtime was dropped, say): its
    /// workers were dropped with it, so nothing could run the task.
    RuntimeGone {
        /// The task, given back.
        task: T,
    },
    /// The task's specification is invalid (the message says which field and why).
    InvalidSpec {
        /// The task, given back.
        task: T,
        /// What is wrong with the specification.
        reason: Cow<'static, str>,
    },
}

impl<T> SubmitError<T> {
    /// The rejected task.
    pub fn into_task(self) -> T {
        match self {
            SubmitError::QueueFull { task, .. }
            | SubmitError::BudgetExceeded { task, .. }
            | SubmitError::ShuttingDown { task }
            | SubmitError::RuntimeGone { task }
            | SubmitError::InvalidSpec { task, .. } => task,
        }
    }

    /// A reference to the rejected task.
    pub fn task(&self) -> &T {
        match self {
            SubmitError::QueueFull { task, .. }
            | SubmitError::BudgetExceeded { task, .. }
            | SubmitError::ShuttingDown { task }
            | SubmitError::RuntimeGone { task }
            | SubmitError::InvalidSpec { task, .. } => task,
        }
    }

    /// The same error carrying `f(task)` instead of the task.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> SubmitError<U> {
        match self {
            SubmitError::QueueFull { task, capacity } => SubmitError::QueueFull {
                task: f(task),
                capacity,
            },
            SubmitError::BudgetExceeded {
                task,
                requested,
                budget,
            } => SubmitError::BudgetExceeded {
                task: f(task),
                requested,
                budget,
            },
            SubmitError::ShuttingDown { task } => SubmitError::ShuttingDown { task: f(task) },
            SubmitError::RuntimeGone { task } => SubmitError::RuntimeGone { task: f(task) },
            SubmitError::InvalidSpec { task, reason } => SubmitError::InvalidSpec {
                task: f(task),
                reason,
            },
        }
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The task is usually a closure: show the error, not the task.
        write!(f, "SubmitError({self})")
    }
}

impl<T> fmt::Display for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::QueueFull { capacity, .. } => write!(
                f,
                "queue full: all {capacity} task slots hold live tasks (queued, scheduled or running)"
            ),
            SubmitError::BudgetExceeded {
                requested, budget, ..
            } => write!(
                f,
                "memory budget exceeded: the task needs {requested} bytes and the {budget}-byte budget has no room for them"
            ),
            SubmitError::ShuttingDown { .. } => {
                f.write_str("shutting down: the manager no longer accepts tasks")
            }
            SubmitError::RuntimeGone { .. } => f.write_str(
                "runtime gone: the runtime the manager ran on was shut down, and its workers with it",
            ),
            SubmitError::InvalidSpec { reason, .. } => write!(f, "invalid task spec: {reason}"),
        }
    }
}

impl<T> Error for SubmitError<T> {}

/// How a task ended without a value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// The task returned an error.
    Failed,
    /// The task (or its error handler) panicked.
    Panicked,
    /// The task was cancelled.
    Cancelled,
    /// The task ran past its timeout.
    TimedOut,
}

/// Why a task produced no value: the error it returned (downcastable to its own type), a
/// panic (with its message), a cancellation or a timeout.
///
/// # Examples
///
/// ```
/// use errand_core::engine::{TaskError, TaskErrorKind};
///
/// let err = TaskError::failed(std::io::Error::other("disk full"));
/// assert_eq!(err.kind(), TaskErrorKind::Failed);
/// assert!(err.downcast_ref::<std::io::Error>().is_some());
/// assert_eq!(err.to_string(), "task failed: disk full");
/// ```
#[derive(Debug)]
pub struct TaskError {
    kind: TaskErrorKind,
    /// The task's own error (`Failed`) or the panic message as a `String` (`Panicked`).
    source: Option<BoxError>,
}

/// A panic message carried as an error, so a `Panicked` error has a source too.
#[derive(Debug)]
struct PanicMessage(String);

impl fmt::Display for PanicMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for PanicMessage {}

impl TaskError {
    /// A failure carrying the task's own error.
    pub fn failed(error: impl Into<BoxError>) -> Self {
        Self {
            kind: TaskErrorKind::Failed,
            source: Some(error.into()),
        }
    }

    /// A panic caught in the task's code (or in its error's conversion or handler).
    pub(crate) fn panicked(caught: Caught) -> Self {
        Self::panicked_with(caught.into_message())
    }

    /// A panic with this message.
    pub(crate) fn panicked_with(message: String) -> Self {
        Self {
            kind: TaskErrorKind::Panicked,
            source: Some(Box::new(PanicMessage(message))),
        }
    }

    /// A cancellation.
    pub(crate) fn cancelled() -> Self {
        Self {
            kind: TaskErrorKind::Cancelled,
            source: None,
        }
    }

    /// A timeout.
    pub(crate) fn timed_out() -> Self {
        Self {
            kind: TaskErrorKind::TimedOut,
            source: None,
        }
    }

    /// The error for a task that ended in terminal `state` without its own outcome (a
    /// cancel or timeout that beat the worker).
    pub(crate) fn for_state(state: State) -> Self {
        match state {
            State::TimedOut => Self::timed_out(),
            _ => Self::cancelled(),
        }
    }

    /// How the task ended.
    #[must_use]
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The terminal state this error corresponds to.
    #[must_use]
    pub fn state(&self) -> State {
        match self.kind {
            TaskErrorKind::Failed | TaskErrorKind::Panicked => State::Failed,
            TaskErrorKind::Cancelled => State::Cancelled,
            TaskErrorKind::TimedOut => State::TimedOut,
        }
    }

    /// The task's own error as `E`, if it failed with an `E`.
    #[must_use]
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        match self.kind {
            TaskErrorKind::Failed => self.source.as_ref()?.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The panic message, if the task panicked.
    #[must_use]
    pub fn panic_message(&self) -> Option<&str> {
        match self.kind {
            TaskErrorKind::Panicked => self
                .source
                .as_ref()?
                .downcast_ref::<PanicMessage>()
                .map(|message| message.0.as_str()),
            _ => None,
        }
    }

    /// Whether the task was cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.kind == TaskErrorKind::Cancelled
    }

    /// Whether the task timed out.
    #[must_use]
    pub fn is_timed_out(&self) -> bool {
        self.kind == TaskErrorKind::TimedOut
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.source) {
            (TaskErrorKind::Failed, Some(source)) => write!(f, "task failed: {source}"),
            (TaskErrorKind::Panicked, Some(source)) => write!(f, "task panicked: {source}"),
            (TaskErrorKind::Cancelled, _) => f.write_str("task cancelled"),
            (TaskErrorKind::TimedOut, _) => f.write_str("task timed out"),
            (_, None) => f.write_str("task failed"),
        }
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.source {
            Some(source) => Some(&**source as &(dyn Error + 'static)),
            None => None,
        }
    }
}

/// A progress report a task's [`Context`](super::Context) refused.
#[derive(Clone, Copy, PartialEq, Debug)]
#[non_exhaustive]
pub enum ProgressError {
    /// The percentage was NaN or outside `0.0..=100.0`.
    OutOfRange {
        /// The rejected percentage.
        percent: f64,
    },
    /// The task has already ended (the context outlived its attempt).
    Finished {
        /// The task.
        id: TaskId,
    },
}

impl fmt::Display for ProgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgressError::OutOfRange { percent } => write!(
                f,
                "invalid progress: {percent} is not a percentage in 0..=100"
            ),
            ProgressError::Finished { id } => {
                write!(f, "invalid progress: task {id} has already finished")
            }
        }
    }
}

impl Error for ProgressError {}

/// A [`cancel`](super::Manager::cancel) that did not apply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum CancelError {
    /// No live task has this id (never existed, or its record has been reused).
    Unknown {
        /// The id asked for.
        id: TaskId,
    },
    /// The task had already ended in `state`.
    Finished {
        /// The id asked for.
        id: TaskId,
        /// The terminal state it ended in.
        state: State,
    },
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelError::Unknown { id } => write!(f, "cannot cancel: no live task {id}"),
            CancelError::Finished { id, state } => {
                write!(f, "cannot cancel: task {id} has already ended ({state})")
            }
        }
    }
}

impl Error for CancelError {}

/// Why [`Builder::build`](super::Builder::build) refused: a setting outside its documented
/// limit, memory that could not be reserved for it, or a runtime that could not start the
/// manager's workers. The error names the setting.
///
/// # Examples
///
/// ```
/// use errand_core::engine::{BuildError, BuildErrorKind};
///
/// # fn check(err: BuildError) {
/// if err.kind() == BuildErrorKind::OutOfRange {
///     eprintln!("fix the setting {}: {err}", err.setting());
/// }
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BuildError {
    setting: &'static str,
    kind: BuildErrorKind,
    reason: Cow<'static, str>,
}

/// What kind of [`BuildError`] it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum BuildErrorKind {
    /// The setting is outside its documented limit.
    OutOfRange,
    /// Memory for the structures the setting sizes could not be reserved.
    OutOfMemory,
    /// The runtime could not start a worker (or there is no runtime).
    Runtime,
}

impl BuildError {
    pub(crate) fn new(
        setting: &'static str,
        kind: BuildErrorKind,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            setting,
            kind,
            reason: reason.into(),
        }
    }

    /// The builder setting at fault (its method's name, such as `"queue_capacity"`), or
    /// `"runtime"` for a runtime that could not start the workers.
    #[must_use]
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// What kind of error it is.
    #[must_use]
    pub fn kind(&self) -> BuildErrorKind {
        self.kind
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid manager configuration: {}: {}",
            self.setting, self.reason
        )
    }
}

impl Error for BuildError {}
