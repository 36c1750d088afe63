//! Durable jobs as users define, enqueue and see them: [`DurableJob`], [`JobOptions`],
//! [`JobId`], [`JobInfo`], and the errors of enqueueing.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::string::String;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::store::{JobRow, StoreError, UnixMillis};
use crate::engine::{BoxError, Context, TaskError};
use crate::{Priority, RetryDecision, RetryPolicy, State};

/// A job type whose jobs survive restarts: its value is the job's data (a serde
/// payload), its [`KIND`](DurableJob::KIND) names it in the store, and
/// [`run`](DurableJob::run) does the work.
///
/// Register each type on the builder
/// ([`Builder::register`](crate::engine::Builder::register)); enqueue with
/// [`Manager::enqueue`](crate::engine::Manager::enqueue).
///
/// The kind string is what the store keeps, not the Rust type's name: renaming the type
/// (or moving it) orphans nothing. Change the kind only with a migration of your own. A
/// payload that no longer deserializes (the type's fields changed incompatibly) fails that
/// one job with the decode error in its row.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use errand_core::engine::{BoxError, Context, DurableJob};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendReport {
///     user: u64,
/// }
///
/// impl DurableJob for SendReport {
///     const KIND: &'static str = "send-report";
///     type Output = String;
///
///     async fn run(&self, ctx: Context) -> Result<String, BoxError> {
///         ctx.progress(50.0, "rendering")?;
///         Ok(format!("report for {} sent", self.user))
///     }
/// }
/// ```
pub trait DurableJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job type's stable name in the store.
    const KIND: &'static str;
    /// What a successful run returns (kept serialized in the store until its TTL).
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Runs one attempt. A job can run more than once (at-least-once: see the
    /// [module docs](crate::engine::durable)); its [`JobId`]
    /// ([`Context::job_id`](crate::engine::Context::job_id)) is the stable idempotency
    /// key to make its effects safe to repeat. `ctx.attempt()` is the attempt the store
    /// counted (claims across restarts included).
    fn run(&self, ctx: Context) -> impl Future<Output = Result<Self::Output, BoxError>> + Send;

    /// Decides about a failed attempt (attempt numbers count failures, 1 for the first):
    /// by default, retry as the job's retry policy allows.
    fn on_error(&self, error: &TaskError, failures: u32) -> RetryDecision {
        let _ = (error, failures);
        RetryDecision::Retry
    }
}

/// A durable job's id: the store's row id, stable across restarts. Prints and parses as
/// `j-<number>`.
///
/// # Examples
///
/// ```
/// use errand_core::engine::JobId;
///
/// let id = JobId::new(42);
/// assert_eq!(id.to_string(), "j-42");
/// assert_eq!("j-42".parse::<JobId>(), Ok(id));
/// assert!("42".parse::<JobId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u64);

impl JobId {
    /// The id of row `n`.
    #[must_use]
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The row number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "j-{}", self.0)
    }
}

/// A string that is not a job id (`j-<number>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseJobIdError(String);

impl fmt::Display for ParseJobIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid job id {:?}: expected j-<number>", self.0)
    }
}

impl std::error::Error for ParseJobIdError {}

impl FromStr for JobId {
    type Err = ParseJobIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_prefix("j-")
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .map(JobId)
            .ok_or_else(|| ParseJobIdError(text.into()))
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a durable job is, as its row says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting to run (due now, delayed, or waiting for a retry).
    Pending,
    /// Claimed by a node, running or about to.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Ran past its timeout.
    TimedOut,
}

impl JobState {
    /// Every state, in code order.
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
    ];

    /// Whether the job has finished.
    #[must_use]
    pub const fn is_finished(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }

    /// The state's code in a store (0 to 5).
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The state of code `code`.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

/// How to run an enqueued job: priority, when, retries, timeout, result TTL, unique key.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_core::engine::JobOptions;
/// use errand_core::{Priority, RetryPolicy};
///
/// let options = JobOptions::new()
///     .priority(Priority::HIGH)
///     .delay(Duration::from_secs(60))
///     .retry(RetryPolicy::default())
///     .timeout(Duration::from_secs(30))
///     .result_ttl(Duration::from_secs(3600))
///     .unique("report:user-7");
/// # drop(options);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct JobOptions {
    pub(crate) priority: Priority,
    pub(crate) run_at: Option<SystemTime>,
    pub(crate) delay: Duration,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) result_ttl: Option<Duration>,
    pub(crate) unique: Option<String>,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl JobOptions {
    /// Normal priority, due now, the manager's default retry policy, timeout and result
    /// TTL, no unique key.
    pub fn new() -> Self {
        Self {
            priority: Priority::NORMAL,
            run_at: None,
            delay: Duration::ZERO,
            retry: None,
            timeout: None,
            result_ttl: None,
            unique: None,
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: impl Into<Priority>) -> Self {
        self.priority = priority.into();
        self
    }

    /// Runs it no earlier than `delay` from now.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self.run_at = None;
        self
    }

    /// Runs it no earlier than `at` (wall-clock time: it survives a restart).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self.delay = Duration::ZERO;
        self
    }

    /// Retries failed attempts under `policy` (instead of the manager's default).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Gives each attempt at most `timeout` (a timeout is final, as for tasks).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keeps the result this long after success (instead of the manager's default).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = Some(ttl);
        self
    }

    /// At most one job not yet finished may hold `key`: enqueueing another while one does
    /// is refused with [`EnqueueError::Duplicate`], naming the holder.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique = Some(key.into());
        self
    }
}

/// What a durable job looks like now: its row, read from the store (with live progress
/// for a job running in this process).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobInfo {
    /// Its id.
    pub id: JobId,
    /// Its kind string.
    pub kind: String,
    /// Where it is, in the store's words.
    pub job_state: JobState,
    /// Where it is, in a task's words (`Queued`, `Scheduled`, `Retrying` for a pending
    /// job, as it waits).
    pub state: State,
    /// Its priority.
    pub priority: Priority,
    /// Claims so far (every attempt started counts; so does one claimed and lost to a
    /// crash before it started).
    pub attempt: u32,
    /// Failed attempts so far.
    pub failures: u32,
    /// The last progress reported (100 once it succeeded).
    pub progress: f64,
    /// The message of the last progress report.
    pub message: Option<String>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// Its unique key.
    pub unique_key: Option<String>,
    /// The schedule that made it.
    pub schedule: Option<String>,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When it may run (pending) or last became due.
    pub run_at: SystemTime,
    /// When its last attempt started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Whether its result is kept (it succeeded, and the result has not expired).
    pub has_result: bool,
    /// The node that claimed it last (on a shared store, which process runs it).
    pub node: Option<String>,
}

/// `ms` after the Unix epoch.
pub(crate) fn system_time(ms: UnixMillis) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// `at` in milliseconds after the Unix epoch (saturating).
pub(crate) fn unix_millis(at: SystemTime) -> UnixMillis {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Now, in milliseconds after the Unix epoch.
pub(crate) fn now_millis() -> UnixMillis {
    #[cfg(not(miri))]
    return unix_millis(SystemTime::now());
    #[cfg(miri)]
    return 0;
}

impl JobInfo {
    /// The snapshot of `row`, as of `now`.
    pub(crate) fn of(row: JobRow, now: UnixMillis) -> Self {
        let state = match row.state {
            JobState::Pending if row.failures > 0 => State::Retrying,
            JobState::Pending if row.run_at > now => State::Scheduled,
            JobState::Pending => State::Queued,
            JobState::Running => State::Running,
            JobState::Succeeded => State::Succeeded,
            JobState::Failed => State::Failed,
            JobState::Cancelled => State::Cancelled,
            JobState::TimedOut => State::TimedOut,
        };
        JobInfo {
            id: row.id,
            kind: row.kind,
            job_state: row.state,
            state,
            priority: row.priority,
            attempt: row.attempt,
            failures: row.failures,
            progress: if row.state == JobState::Succeeded {
                100.0
            } else {
                row.progress
            },
            message: row.message,
            error: row.error,
            unique_key: row.unique_key,
            schedule: row.schedule,
            created_at: system_time(row.created_at),
            run_at: system_time(row.run_at),
            started_at: row.started_at.map(system_time),
            finished_at: row.finished_at.map(system_time),
            has_result: row.result.is_some(),
            node: row.node,
        }
    }
}

/// Why a durable job was not enqueued. The job comes back ([`EnqueueError::into_job`]):
/// nothing is acknowledged that was not committed.
#[non_exhaustive]
pub enum EnqueueError<J> {
    /// The manager has no store (see [`Builder::store`](crate::engine::Builder::store)).
    NoStore {
        /// The job, given back.
        job: J,
    },
    /// A job not yet finished holds its unique key.
    Duplicate {
        /// The job, given back.
        job: J,
        /// The job holding the key.
        existing: JobId,
    },
    /// It could not be serialized.
    Encode {
        /// The job, given back.
        job: J,
        /// Why.
        reason: String,
    },
    /// The store refused the write (disk full, read-only, …); nothing was committed.
    Store {
        /// The job, given back.
        job: J,
        /// Why.
        error: StoreError,
    },
}

impl<J> EnqueueError<J> {
    /// The job that was not enqueued.
    pub fn into_job(self) -> J {
        match self {
            EnqueueError::NoStore { job }
            | EnqueueError::Duplicate { job, .. }
            | EnqueueError::Encode { job, .. }
            | EnqueueError::Store { job, .. } => job,
        }
    }

    /// The same error carrying `f(job)` instead of the job.
    pub fn map<U>(self, f: impl FnOnce(J) -> U) -> EnqueueError<U> {
        match self {
            EnqueueError::NoStore { job } => EnqueueError::NoStore { job: f(job) },
            EnqueueError::Duplicate { job, existing } => EnqueueError::Duplicate {
                job: f(job),
                existing,
            },
            EnqueueError::Encode { job, reason } => EnqueueError::Encode {
                job: f(job),
                reason,
            },
            EnqueueError::Store { job, error } => EnqueueError::Store { job: f(job), error },
        }
    }
}

impl<J> fmt::Debug for EnqueueError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnqueueError({self})")
    }
}

impl<J> fmt::Display for EnqueueError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnqueueError::NoStore { .. } => {
                f.write_str("cannot enqueue: the manager was built without a store")
            }
            EnqueueError::Duplicate { existing, .. } => write!(
                f,
                "cannot enqueue: job {existing} holds the unique key and has not finished"
            ),
            EnqueueError::Encode { reason, .. } => {
                write!(f, "cannot enqueue: the job did not serialize: {reason}")
            }
            EnqueueError::Store { error, .. } => write!(f, "cannot enqueue: {error}"),
        }
    }
}

impl<J> std::error::Error for EnqueueError<J> {}
