//! A task's settings, as carried by a [`Task`](super::Task).

use std::borrow::Cow;

use crate::Priority;

/// Everything about a task except its work.
#[derive(Clone, Debug, Default)]
pub(crate) struct Spec {
    pub(crate) priority: Priority,
    pub(crate) label: Option<Cow<'static, str>>,
}
