//! A task's end, told to whoever asked (the durable layer, which writes it to its store).
//! A leaf: the phases that end tasks (`attempt.rs`, `control.rs`) call it.

use std::any::Any;

use super::error::TaskError;
use crate::State;

/// How a task ended, for its [`OnEnd`] hook.
#[cfg_attr(
    not(feature = "durable"),
    allow(dead_code, reason = "read by the durable layer's hook only")
)]
pub(crate) struct Ending<'a> {
    /// Its terminal state.
    pub(crate) state: State,
    /// Whether a shutdown (or the runtime's end) stopped it, rather than a user's cancel.
    pub(crate) stopped: bool,
    /// Its value, when it succeeded.
    pub(crate) value: Option<&'a dyn Any>,
    /// Its error, when it failed.
    pub(crate) error: Option<&'a TaskError>,
}

/// Told once when its task ends, and of its progress reports. The engine calls it outside
/// its locks (progress aside: keep that cheap), exactly once per task for `ended`.
pub(crate) trait OnEnd: Send + Sync {
    /// The task ended.
    fn ended(&self, end: Ending<'_>);
    /// The task reported progress.
    fn progress(&self, percent: f64, message: &str);
    /// The durable job the task runs (0 for none): what `Context::job_id` gives.
    fn job(&self) -> u64;
}
