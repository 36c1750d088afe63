//! A task's settings, as carried by a [`Task`](super::Task).

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::TaskError;
use crate::{Priority, RetryDecision, RetryPolicy, TaskId};

/// When a task may start.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Start {
    /// As soon as a worker is free.
    #[default]
    Now,
    /// No earlier than this long after submission.
    After(Duration),
    /// No earlier than this instant.
    At(Instant),
}

/// Decides about a failed attempt: `(task, error, attempt) -> decision`.
pub(crate) type ErrorHandler = Arc<dyn Fn(TaskId, &TaskError, u32) -> RetryDecision + Send + Sync>;

/// Clones a task's value (given as `&dyn Any`) into the result store; returns the shared
/// value and the bytes it is charged.
pub(crate) type StoreFn = fn(&dyn Any) -> Option<(Arc<dyn Any + Send + Sync>, usize)>;

/// Keeping a task's value after it ends.
#[derive(Clone, Copy)]
pub(crate) struct Store {
    /// How long; `None`: the manager's default result TTL.
    pub(crate) ttl: Option<Duration>,
    pub(crate) clone: StoreFn,
}

/// Everything about a task except its work.
#[derive(Clone, Default)]
pub(crate) struct Spec {
    pub(crate) priority: Priority,
    pub(crate) label: Option<Cow<'static, str>>,
    pub(crate) start: Start,
    /// `None`: the manager's default timeout.
    pub(crate) timeout: Option<Duration>,
    /// `None`: the manager's default retry policy.
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) on_error: Option<ErrorHandler>,
    pub(crate) store: Option<Store>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("priority", &self.priority)
            .field("label", &self.label)
            .field("start", &self.start)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("on_error", &self.on_error.is_some())
            .field("store", &self.store.map(|store| store.ttl))
            .finish()
    }
}
