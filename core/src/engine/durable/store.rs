//! The store interface: what a durable store (errand-store-sqlite, errand-store-postgres)
//! implements. The engine speaks to it from one thread of its own (the *keeper*), in
//! batches: every call to [`Store::commit`] is one transaction, committed (and synced)
//! before it returns, so the engine acknowledges nothing that is not on disk.

use std::borrow::Cow;
use std::boxed::Box;
use std::fmt;
use std::string::String;
use std::sync::Arc;
use std::time::Duration;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::job::{JobId, JobState};
use crate::{Priority, RetryPolicy};

/// Milliseconds since the Unix epoch: how a store keeps time (an `Instant` does not
/// survive a restart).
pub type UnixMillis = i64;

/// A job to insert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewJob {
    /// The job type's stable kind string.
    pub kind: Cow<'static, str>,
    /// The serialized job (JSON).
    pub payload: String,
    /// Its priority.
    pub priority: Priority,
    /// When it may run.
    pub run_at: UnixMillis,
    /// Its retry policy.
    pub retry: RetryPolicy,
    /// Each attempt's time limit, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// How long its result is kept once it succeeded, in milliseconds.
    pub result_ttl_ms: u64,
    /// At most one job not yet finished may hold a given key (the database enforces it).
    pub unique_key: Option<String>,
    /// The schedule that made it, if one did.
    pub schedule: Option<String>,
    /// Insert it already claimed (`Running`, attempt 1), for this node to run at once.
    pub claimed: bool,
    /// When it was enqueued.
    pub created_at: UnixMillis,
}

/// A job as a store returns it: its row. (Not `non_exhaustive`: stores build it.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    /// Its id.
    pub id: JobId,
    /// Its kind string.
    pub kind: String,
    /// The serialized job.
    pub payload: String,
    /// Where it is.
    pub state: JobState,
    /// Its priority.
    pub priority: Priority,
    /// When it may run (for a pending job), or last became due.
    pub run_at: UnixMillis,
    /// Claims so far: every attempt started, plus any claimed and lost to a crash before
    /// it started.
    pub attempt: u32,
    /// Attempts that failed so far (what the retry policy counts).
    pub failures: u32,
    /// Its retry policy.
    pub retry: RetryPolicy,
    /// Each attempt's time limit, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// How long its result is kept, in milliseconds.
    pub result_ttl_ms: u64,
    /// Its unique key.
    pub unique_key: Option<String>,
    /// The schedule that made it.
    pub schedule: Option<String>,
    /// The last progress reported.
    pub progress: f64,
    /// The message of the last progress report.
    pub message: Option<String>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// The serialized result, once it succeeded (until it expires).
    pub result: Option<String>,
    /// When it was enqueued.
    pub created_at: UnixMillis,
    /// When its last attempt started.
    pub started_at: Option<UnixMillis>,
    /// When it ended.
    pub finished_at: Option<UnixMillis>,
    /// When its result expires.
    pub expires_at: Option<UnixMillis>,
    /// The node that claimed it last (a store's own name for the process).
    pub node: Option<String>,
    /// Until when its claim holds without a heartbeat (while it runs).
    pub lease_until: Option<UnixMillis>,
}

/// How an attempt ended, as written to its row.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Finish {
    /// Succeeded with this serialized result, kept until `expires_at`.
    Succeeded {
        /// The serialized result.
        result: String,
        /// When it expires.
        expires_at: UnixMillis,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: String,
    },
    /// Failed; runs again at `run_at`.
    Retry {
        /// Why it failed.
        error: String,
        /// When it runs again.
        run_at: UnixMillis,
    },
    /// Ran past its timeout.
    TimedOut,
    /// Cancelled.
    Cancelled,
    /// Given back unfinished (a shutdown stopped it): pending again, due now.
    Release,
}

/// A retry policy as a store keeps it: five plain columns.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use errand_core::RetryPolicy;
/// use errand_core::engine::durable::RetryColumns;
///
/// let policy = RetryPolicy::builder()
///     .max_retries(3)
///     .initial_delay(Duration::from_secs(5))
///     .multiplier(2.0)
///     .build()
///     .unwrap();
/// let columns = RetryColumns::of(&policy);
/// assert_eq!((columns.max_retries, columns.initial_ms), (3, 5_000));
/// assert_eq!(columns.policy(), policy);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetryColumns {
    /// Retries after the first attempt.
    pub max_retries: i64,
    /// The first delay, in milliseconds.
    pub initial_ms: i64,
    /// What each delay is multiplied by.
    pub multiplier: f64,
    /// The longest delay, in milliseconds.
    pub max_delay_ms: i64,
    /// The jitter: 0 none, 1 full, 2 equal, 3 decorrelated.
    pub jitter: i64,
}

impl RetryColumns {
    /// The columns of `policy`.
    #[must_use]
    pub fn of(policy: &RetryPolicy) -> Self {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            max_retries: i64::from(policy.max_retries()),
            initial_ms: millis(policy.initial_delay()),
            multiplier: policy.multiplier(),
            max_delay_ms: millis(policy.max_delay()),
            jitter: match policy.jitter() {
                crate::Jitter::Full => 1,
                crate::Jitter::Equal => 2,
                crate::Jitter::Decorrelated => 3,
                _ => 0,
            },
        }
    }

    /// The columns as they were read back.
    #[must_use]
    pub fn new(
        max_retries: i64,
        initial_ms: i64,
        multiplier: f64,
        max_delay_ms: i64,
        jitter: i64,
    ) -> Self {
        Self {
            max_retries,
            initial_ms,
            multiplier,
            max_delay_ms,
            jitter,
        }
    }

    /// The policy these columns hold (one that no longer validates becomes "none").
    #[must_use]
    pub fn policy(&self) -> RetryPolicy {
        let ms = |value: i64| Duration::from_millis(u64::try_from(value).unwrap_or(0));
        let jitter = match self.jitter {
            1 => crate::Jitter::Full,
            2 => crate::Jitter::Equal,
            3 => crate::Jitter::Decorrelated,
            _ => crate::Jitter::None,
        };
        RetryPolicy::builder()
            .max_retries(u32::try_from(self.max_retries).unwrap_or(0))
            .initial_delay(ms(self.initial_ms))
            .multiplier(self.multiplier)
            .max_delay(ms(self.max_delay_ms))
            .jitter(jitter)
            .build()
            .unwrap_or_else(|_| RetryPolicy::none())
    }
}

/// A recurring schedule, stored by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleRow {
    /// Its name (unique).
    pub name: String,
    /// The job each tick enqueues (its `run_at`, `unique_key` and `claimed` are set per
    /// tick).
    pub job: NewJob,
    /// Milliseconds between ticks.
    pub interval_ms: u64,
    /// When tick 0 was due.
    pub anchor: UnixMillis,
    /// The next tick to fire.
    pub next_tick: u64,
    /// Jobs to fire in all (`None`: forever); a skipped tick does not count.
    pub max_ticks: Option<u64>,
    /// Jobs fired so far.
    #[serde(default)]
    pub fired: u64,
    /// No tick due after this.
    pub until: Option<UnixMillis>,
    /// Run each tick missed (while the process was down) rather than one for them all.
    pub burst: bool,
    /// Fire a tick even while the previous tick's job has not finished.
    pub overlap: bool,
    /// The job the last fired tick made.
    pub last_job: Option<JobId>,
}

/// One operation of a batch, with room for its reply (filled by [`Store::commit`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Op {
    /// Inserts a job, unless a job not yet finished holds its unique key.
    Insert {
        /// The job.
        job: NewJob,
        /// The new job's id, or `Err` with the id of the job holding the key.
        reply: Option<Result<JobId, JobId>>,
    },
    /// Claims up to `limit` due pending jobs of `kinds` (highest priority, then earliest,
    /// first): each becomes `Running` with one more attempt.
    Claim {
        /// Now.
        now: UnixMillis,
        /// The most to claim.
        limit: usize,
        /// The kinds this node runs.
        kinds: Arc<[String]>,
        /// The claimed rows.
        reply: Vec<JobRow>,
        /// When the next pending job of `kinds` is due, after the claim (`None`: none).
        next_due: Option<UnixMillis>,
    },
    /// Ends attempt `attempt` of job `id`, if it is still that attempt and running
    /// (fencing: a stale attempt changes nothing).
    Finish {
        /// The job.
        id: JobId,
        /// The attempt ending.
        attempt: u32,
        /// How.
        finish: Finish,
        /// When.
        at: UnixMillis,
        /// Whether the row changed.
        reply: bool,
    },
    /// Records progress of a running attempt (fenced like `Finish`).
    Progress {
        /// The job.
        id: JobId,
        /// Its attempt.
        attempt: u32,
        /// Percent.
        percent: f64,
        /// The message.
        message: Option<String>,
    },
    /// Cancels a job that has not finished: a pending one, or a running one (whose
    /// attempt's own writes are then stale, and whose node learns it at its next
    /// [`Heartbeat`](Op::Heartbeat)).
    Cancel {
        /// The job.
        id: JobId,
        /// When.
        at: UnixMillis,
        /// The state it was in, if it exists; it is cancelled only if it was pending or
        /// running.
        reply: Option<JobState>,
    },
    /// Makes a job that failed, was cancelled or timed out pending again, due `at`, with
    /// a fresh retry budget (its failures counted from zero; its attempt count, which
    /// fences, goes on), unless another unfinished job holds its unique key. Its last error
    /// stays until a new attempt ends.
    Retry {
        /// The job.
        id: JobId,
        /// When it is due again (now).
        at: UnixMillis,
        /// The state it was in, if it exists.
        reply: Option<JobState>,
        /// Whether it is pending again.
        requeued: bool,
    },
    /// Extends the lease of each of this node's running attempts (`(job, attempt)`) to now
    /// plus the store's lease. The reply lists those no longer running with that attempt
    /// (cancelled, or rescued and claimed elsewhere): the node stops them.
    Heartbeat {
        /// Now.
        now: UnixMillis,
        /// The attempts this node runs.
        jobs: Vec<(JobId, u32)>,
        /// The jobs of `jobs` this node no longer holds.
        reply: Vec<JobId>,
    },
    /// Makes up to `limit` running jobs whose lease expired before `now` (their node died
    /// or lost the database) pending again, due now. How many, and when the next lease
    /// of another node's running job expires.
    Rescue {
        /// Now.
        now: UnixMillis,
        /// The most to rescue.
        limit: usize,
        /// How many were rescued.
        reply: u64,
        /// The earliest lease of the running jobs left, other than the writing node's own
        /// (`None`: none, or a store that does not say). The keeper looks again as it
        /// expires, so a dead node's jobs are rescued when their lease ends, not up to a
        /// poll interval later.
        next_expiry: Option<UnixMillis>,
    },
    /// Deletes up to `limit` finished jobs that finished before `before` and whose result
    /// (if any) has expired at `now`, oldest first. How many.
    Purge {
        /// Now.
        now: UnixMillis,
        /// Finished before this.
        before: UnixMillis,
        /// The most to delete.
        limit: usize,
        /// How many were deleted.
        reply: u64,
    },
    /// Drops up to `limit` results expired at `now` (their rows stay, without results).
    Prune {
        /// Now.
        now: UnixMillis,
        /// The most to drop.
        limit: usize,
        /// How many were dropped.
        reply: usize,
    },
    /// Creates or replaces a schedule.
    PutSchedule {
        /// The schedule.
        schedule: Box<ScheduleRow>,
    },
    /// Removes a schedule; whether it existed.
    RemoveSchedule {
        /// Its name.
        name: String,
        /// Whether it existed.
        reply: bool,
    },
    /// Fires one tick of a schedule: inserts its job (unique per tick) and advances the
    /// schedule, in the same transaction — unless the stored schedule is already past
    /// `tick` (another node fired it), when nothing changes and the reply stays `None`.
    FireSchedule {
        /// The schedule's name.
        name: String,
        /// The tick fired.
        tick: u64,
        /// The schedule's next tick after it.
        next_tick: u64,
        /// The tick's job.
        job: NewJob,
        /// The job's id (or the existing one's, if its unique key was held); `None` if the
        /// schedule was gone or past `tick`.
        reply: Option<Result<JobId, JobId>>,
    },
}

/// Whether a store is one node's alone or shared by many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sharing {
    /// One process at a time (errand-store-sqlite holds a lock): at start, every job left
    /// running is this node's own, and recovered at once.
    Alone,
    /// Many nodes at once (errand-store-postgres): each claim holds a lease that the
    /// node's heartbeats extend; jobs whose lease expired are rescued by any node; work
    /// other nodes add is found by the store's hint and by polling.
    Shared {
        /// How long a claim holds without a heartbeat (heartbeats every third of it).
        lease: Duration,
        /// How often to look for work, rescue expired leases and elect the schedules'
        /// leader, whatever the hints say.
        poll: Duration,
    },
}

/// What a store calls when another node may have added work (a PostgreSQL notification,
/// say): the keeper looks for due jobs at once. Cheap and callable from any thread.
pub type Hint = Arc<dyn Fn() + Send + Sync>;

/// A durable store. Implementations keep jobs and schedules in a database; the engine
/// calls [`commit`](Store::commit) from one thread, and reads through
/// [`reader`](Store::reader) from any.
pub trait Store: Send + 'static {
    /// Runs every op of `ops` in one transaction, filling in their replies, and commits it
    /// (durably, as the store was opened) before returning. On an error nothing of the
    /// batch is committed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the transaction fails (disk full, read-only, I/O).
    fn commit(&mut self, ops: &mut [Op]) -> Result<(), StoreError>;

    /// Makes every job a previous run of this node left `Running` pending again, due now
    /// (called once, before anything else): a store [`Alone`](Sharing::Alone) recovers
    /// them all; a [`Shared`](Sharing::Shared) one those whose lease expired. How many.
    ///
    /// # Errors
    ///
    /// As [`commit`](Store::commit).
    fn recover(&mut self, now: UnixMillis) -> Result<u64, StoreError>;

    /// Every schedule.
    ///
    /// # Errors
    ///
    /// As [`commit`](Store::commit).
    fn schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError>;

    /// Whether the store is this node's alone (the default) or shared by many.
    fn sharing(&self) -> Sharing {
        Sharing::Alone
    }

    /// Gives the store the hint to call when another node may have added work (called
    /// once, before anything else). By default, dropped: a store alone hears only its
    /// own node.
    fn set_hint(&mut self, hint: Hint) {
        drop(hint);
    }

    /// Whether this node leads: only the leader fires schedules. A shared store elects
    /// one node (PostgreSQL: an advisory lock held by its session); alone, it is `true`.
    ///
    /// # Errors
    ///
    /// As [`commit`](Store::commit).
    fn lead(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// A reader for queries from any thread.
    fn reader(&self) -> Arc<dyn StoreReader>;
}

/// Which jobs [`StoreReader::jobs`] lists.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs with an id above this (for paging).
    pub after: Option<JobId>,
    /// At most this many (by id); 100 if `None`.
    pub limit: Option<usize>,
}

impl JobFilter {
    /// Every job (the first 100 by id).
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Only jobs in `state`.
    #[must_use]
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only jobs of `kind`.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only jobs after `id` (the last of the previous page).
    #[must_use]
    pub fn after(mut self, id: JobId) -> Self {
        self.after = Some(id);
        self
    }

    /// At most `limit` jobs.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Queries a store answers from any thread (a read connection, say).
pub trait StoreReader: Send + Sync + 'static {
    /// The row of job `id`.
    ///
    /// # Errors
    ///
    /// As [`Store::commit`].
    fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError>;

    /// The rows `filter` selects, by id.
    ///
    /// # Errors
    ///
    /// As [`Store::commit`].
    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>, StoreError>;

    /// Every schedule, by name (what a dashboard lists; the keeper reads them through
    /// [`Store::schedules`]).
    ///
    /// # Errors
    ///
    /// As [`Store::commit`].
    fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError>;

    /// Pending jobs per kind (to report kinds no registered type knows).
    ///
    /// # Errors
    ///
    /// As [`Store::commit`].
    fn pending_kinds(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// When the earliest-due pending job was due (Unix milliseconds), whatever its kind;
    /// `None` with none pending. Now minus this, when positive, is how far the store's
    /// workers lag behind it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read.
    fn earliest_due(&self) -> Result<Option<UnixMillis>, StoreError>;
}

/// Why a store could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: Cow<'static, str>,
}

/// What kind of [`StoreError`] it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The file is not an errand database.
    NotErrand,
    /// The database was written by a newer errand (its schema version is newer).
    NewerSchema,
    /// Another process has the database open.
    Locked,
    /// The database cannot be written (a read-only file or directory).
    ReadOnly,
    /// The disk (or the database's size limit) is full.
    Full,
    /// A setting the store asked for did not take (a pragma the database ignored).
    Setting,
    /// A stored value did not deserialize into the type asked for.
    Decode,
    /// The database cannot be reached now (a lost connection, a server restarting):
    /// worth trying again.
    Unavailable,
    /// Any other I/O or database error.
    Io,
    /// The store's thread is gone (the manager shut down).
    Closed,
}

impl StoreError {
    /// A new error.
    pub fn new(kind: StoreErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of error it is.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The store's own message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn closed() -> Self {
        Self::new(
            StoreErrorKind::Closed,
            "the store's thread has stopped (the manager shut down)",
        )
    }
}

/// Whether a job in `state` is one [`Op::Retry`] puts back: failed, cancelled or timed
/// out.
#[must_use]
pub fn is_retryable(state: JobState) -> bool {
    matches!(
        state,
        JobState::Failed | JobState::Cancelled | JobState::TimedOut
    )
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::NotErrand => "not an errand database",
            StoreErrorKind::NewerSchema => "written by a newer errand",
            StoreErrorKind::Locked => "locked by another process",
            StoreErrorKind::ReadOnly => "read-only",
            StoreErrorKind::Full => "full",
            StoreErrorKind::Setting => "a setting did not take",
            StoreErrorKind::Decode => "value did not decode",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Io => "i/o error",
            StoreErrorKind::Closed => "closed",
        };
        write!(f, "store {what}: {}", self.message)
    }
}

impl std::error::Error for StoreError {}
