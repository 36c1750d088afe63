//! The durable layer's side of the user's API: the builder's store and job types, and
//! the manager's `enqueue`, queries, cancel, wait and schedules.

use std::boxed::Box;
use std::fmt;
use std::string::{String, ToString};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use std::vec;
use std::vec::Vec;

use serde::Serialize;

use super::job::{
    DurableJob, EnqueueError, JobId, JobInfo, JobOptions, JobState, now_millis, system_time,
    unix_millis,
};
use super::keeper::{Request, Shared, due_of};
use super::reply::{Committed, Raw};
use super::runner::Registry;
use super::store::{
    JobFilter, NewJob, ScheduleRow, Store, StoreError, StoreErrorKind, is_retryable,
};
use crate::engine::guard;
use crate::engine::inner::{Inner, lock};
use crate::engine::{Builder, Every, Manager, MissedTicks, Overlap, Runtime};

/// A store given to a builder, taken by the first `build` (a builder is `Clone`; a
/// store is not).
type StoreCell = Arc<Mutex<Option<Box<dyn Store>>>>;

/// How long finished jobs are kept by default: a week.
const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The builder's durable settings: a store, the job types, the window.
#[derive(Clone, Default)]
pub(crate) struct DurableConfig {
    store: Option<StoreCell>,
    registry: Registry,
    window: Option<usize>,
    retention: Option<Duration>,
}

impl fmt::Debug for DurableConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableConfig")
            .field("store", &self.store.is_some())
            .field("kinds", &self.registry.kinds())
            .field("window", &self.window)
            .field("retention", &self.retention)
            .finish()
    }
}

impl DurableConfig {
    /// Starts the keeper for the configured store, if there is one. `queue_capacity`
    /// bounds the window's default.
    pub(crate) fn start(
        &self,
        inner: &Arc<Inner>,
        queue_capacity: usize,
    ) -> Result<Option<Arc<Shared>>, StoreError> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let Some(store) = lock(store).take() else {
            return Err(StoreError::new(
                StoreErrorKind::Io,
                "the store was already used by another manager built from this builder",
            ));
        };
        let window = self
            .window
            .unwrap_or_else(|| (queue_capacity / 2).clamp(1, 1024));
        let retention = self.retention.unwrap_or(DEFAULT_RETENTION);
        super::keeper::start(store, self.registry.clone(), window, retention, inner).map(Some)
    }
}

impl<R: Runtime> Builder<R> {
    /// Makes the manager durable on `store` (errand-store-sqlite's `SqliteStore`, say):
    /// [`enqueue`](Manager::enqueue)d jobs, their state and results, and
    /// [`schedule`](Manager::schedule)s survive restarts and crashes. At build, jobs a
    /// previous run left running are recovered at once.
    pub fn store(mut self, store: impl Store) -> Self {
        self.durable.store = Some(Arc::new(Mutex::new(Some(Box::new(store)))));
        self
    }

    /// Registers durable job type `J`: this manager runs jobs of its kind. Jobs of kinds
    /// no registered type knows stay pending in the store, for a process that knows them
    /// ([`Manager::durable_stats`] reports them).
    pub fn register<J: DurableJob>(mut self) -> Self {
        self.durable.registry.register::<J>();
        self
    }

    /// The most durable jobs held in memory (claimed) at once: `1..=queue_capacity`, by
    /// default half the queue capacity, at most 1024. Others wait in the store, claimed as
    /// room frees, so memory stays flat however many jobs are pending.
    pub fn durable_window(mut self, jobs: usize) -> Self {
        self.durable.window = Some(jobs);
        self
    }

    /// How long a finished durable job's row is kept (by default a week): a background
    /// pass deletes rows that finished longer ago than this and whose result expired, in
    /// bounded batches, so the table does not grow without end. Until then the job, its
    /// state, attempts and error answer [`Manager::job`]; its result is kept for its own
    /// [`result_ttl`](JobOptions::result_ttl).
    pub fn durable_retention(mut self, retention: Duration) -> Self {
        self.durable.retention = Some(retention);
        self
    }
}

/// What [`Manager::retry_job`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Retried {
    /// The job had failed, been cancelled or timed out (`from`); it is pending again, due
    /// now, with a fresh retry budget.
    Requeued {
        /// The state it was in.
        from: JobState,
    },
    /// The job is pending, running or succeeded: a retry does not apply to it.
    NotRetryable {
        /// The state it is in.
        state: JobState,
    },
    /// Another unfinished job holds the job's unique key: it stays as it was.
    KeyHeld {
        /// The state it stays in.
        state: JobState,
    },
}

/// A recurring durable schedule, as [`Manager::schedules`] lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// Its name.
    pub name: String,
    /// The kind of job each tick enqueues.
    pub kind: String,
    /// Time between ticks.
    pub interval: Duration,
    /// When its next tick is due; `None` once it has fired its last.
    pub next_run: Option<SystemTime>,
    /// Jobs it fired so far.
    pub fired: u64,
    /// Jobs it fires in all (`None`: forever).
    pub max_ticks: Option<u64>,
    /// No tick after this.
    pub until: Option<SystemTime>,
    /// The job its last tick made.
    pub last_job: Option<JobId>,
}

impl ScheduleInfo {
    fn of(row: &ScheduleRow) -> Self {
        Self {
            name: row.name.clone(),
            kind: row.job.kind.clone().into_owned(),
            interval: Duration::from_millis(row.interval_ms),
            next_run: due_of(row).map(system_time),
            fired: row.fired,
            max_ticks: row.max_ticks,
            until: row.until.map(system_time),
            last_job: row.last_job,
        }
    }
}

impl<R: Runtime> Manager<R> {
    pub(super) fn durable(&self) -> Result<&Arc<Shared>, StoreError> {
        self.inner.durable.get().ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::Closed,
                "the manager was built without a store",
            )
        })
    }

    /// The row to insert for `job` under `options`, or why it cannot be.
    fn new_job<J: DurableJob>(&self, job: &J, options: JobOptions) -> Result<NewJob, String> {
        let payload = guard::run(|| serde_json::to_string(job))
            .map_err(|caught| std::format!("its Serialize panicked: {}", caught.message()))?
            .map_err(|error| error.to_string())?;
        let now = now_millis();
        let run_at = match options.run_at {
            Some(at) => unix_millis(at),
            None => {
                now.saturating_add(i64::try_from(options.delay.as_millis()).unwrap_or(i64::MAX))
            }
        };
        let config = &self.inner.config;
        Ok(NewJob {
            kind: J::KIND.into(),
            payload,
            priority: options.priority,
            run_at,
            retry: options.retry.unwrap_or(config.retry),
            timeout_ms: options.timeout.or(config.timeout).map(|timeout| {
                u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1)
            }),
            result_ttl_ms: u64::try_from(
                options.result_ttl.unwrap_or(config.result_ttl).as_millis(),
            )
            .unwrap_or(u64::MAX),
            unique_key: options.unique,
            schedule: None,
            claimed: false,
            created_at: now,
        })
    }

    /// Enqueues durable job `job`, as `options` say. The answer comes once the job is
    /// committed to the store (`.await` it, or `.wait()`): its id, stable across restarts
    /// and the key to make its effects idempotent. A job due now starts at once if this
    /// process has room for it (no polling: the enqueue hands it to a worker).
    ///
    /// # Errors
    ///
    /// [`EnqueueError`], with the job given back: no store, a unique key held by an
    /// unfinished job, a payload that does not serialize, a store that refused the write.
    ///
    /// # Examples
    ///
    /// See the [durable module](crate::engine::durable).
    pub fn enqueue<J: DurableJob>(
        &self,
        job: J,
        options: JobOptions,
    ) -> Committed<Result<JobId, EnqueueError<J>>> {
        let shared = match self.durable() {
            Ok(shared) => shared,
            Err(_) => return Committed::ready(Err(EnqueueError::NoStore { job })),
        };
        let new = match self.new_job(&job, options) {
            Ok(new) => new,
            Err(reason) => return Committed::ready(Err(EnqueueError::Encode { job, reason })),
        };
        let (committed, reply) = Committed::pair(move |answer| {
            match answer.and_then(inserted).map(|ids| ids.into_iter().next()) {
                Ok(Some(Ok(id))) => Ok(id),
                Ok(Some(Err(existing))) => Err(EnqueueError::Duplicate { job, existing }),
                Ok(None) => Err(EnqueueError::Store {
                    job,
                    error: StoreError::closed(),
                }),
                Err(error) => Err(EnqueueError::Store { job, error }),
            }
        });
        shared.send(Request::Insert {
            jobs: vec![new],
            reply,
        });
        committed
    }

    /// Enqueues every job of `jobs` in one transaction (one commit for them all): each
    /// gets its own answer, in order (a job whose unique key is held is refused, the
    /// others are enqueued). A store that refuses the write refuses them all.
    pub fn enqueue_batch<J: DurableJob>(
        &self,
        jobs: Vec<(J, JobOptions)>,
    ) -> Committed<Vec<Result<JobId, EnqueueError<J>>>> {
        let shared = match self.durable() {
            Ok(shared) => shared,
            Err(_) => {
                return Committed::ready(
                    jobs.into_iter()
                        .map(|(job, _)| Err(EnqueueError::NoStore { job }))
                        .collect(),
                );
            }
        };
        let mut rows = Vec::with_capacity(jobs.len());
        let mut kept = Vec::with_capacity(jobs.len());
        let mut refused = Vec::new();
        for (index, (job, options)) in jobs.into_iter().enumerate() {
            match self.new_job(&job, options) {
                Ok(row) => {
                    rows.push(row);
                    kept.push((index, job));
                }
                Err(reason) => refused.push((index, EnqueueError::Encode { job, reason })),
            }
        }
        let (committed, reply) = Committed::pair(move |answer| {
            let mut out: Vec<Option<Result<JobId, EnqueueError<J>>>> =
                (0..kept.len() + refused.len()).map(|_| None).collect();
            for (index, error) in refused {
                out[index] = Some(Err(error));
            }
            match answer.and_then(inserted) {
                Ok(ids) if ids.len() == kept.len() => {
                    for ((index, job), id) in kept.into_iter().zip(ids) {
                        out[index] =
                            Some(id.map_err(|existing| EnqueueError::Duplicate { job, existing }));
                    }
                }
                Ok(_) => {
                    for (index, job) in kept {
                        out[index] = Some(Err(EnqueueError::Store {
                            job,
                            error: StoreError::closed(),
                        }));
                    }
                }
                Err(error) => {
                    for (index, job) in kept {
                        out[index] = Some(Err(EnqueueError::Store {
                            job,
                            error: error.clone(),
                        }));
                    }
                }
            }
            out.into_iter().flatten().collect()
        });
        shared.send(Request::Insert { jobs: rows, reply });
        committed
    }

    /// Durable job `id` as its row says now (with live progress if it runs in this
    /// process), if it exists.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read, or there is none.
    pub fn job(&self, id: JobId) -> Result<Option<JobInfo>, StoreError> {
        let shared = self.durable()?;
        let row = shared.reader.job(id)?;
        Ok(row.map(|row| {
            let mut info = JobInfo::of(row, now_millis());
            if let Some((percent, message)) = shared.live_progress(id) {
                info.progress = percent;
                info.message = message;
            }
            info
        }))
    }

    /// The result of durable job `id`, once it succeeded and while its TTL lasts.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read, or the stored result does not
    /// deserialize as `J::Output` ([`StoreErrorKind::Decode`]).
    pub fn job_result<J: DurableJob>(&self, id: JobId) -> Result<Option<J::Output>, StoreError> {
        let Some(row) = self.durable()?.reader.job(id)? else {
            return Ok(None);
        };
        let Some(result) = row.result else {
            return Ok(None);
        };
        serde_json::from_str(&result).map(Some).map_err(|error| {
            StoreError::new(
                StoreErrorKind::Decode,
                std::format!("the result of {id} did not decode: {error}"),
            )
        })
    }

    /// The durable jobs `filter` selects, by id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read, or there is none.
    pub fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobInfo>, StoreError> {
        let now = now_millis();
        Ok(self
            .durable()?
            .reader
            .jobs(filter)?
            .into_iter()
            .map(|row| JobInfo::of(row, now))
            .collect())
    }

    /// Cancels durable job `id`: a pending job never runs; one running in this process is
    /// cancelled as a task is (its end is written as it ends). The answer is the state it
    /// was in (`None` if there is no such job).
    pub fn cancel_job(&self, id: JobId) -> Committed<Result<Option<JobState>, StoreError>> {
        let shared = match self.durable() {
            Ok(shared) => shared,
            Err(error) => return Committed::ready(Err(error)),
        };
        if let Some(task) = shared.task_of(id) {
            if self.inner.cancel(task).is_ok() {
                return Committed::ready(Ok(Some(JobState::Running)));
            }
        }
        let (committed, reply) = Committed::pair(|answer| {
            answer.and_then(|raw| match raw.downcast::<Option<JobState>>() {
                Ok(state) => Ok(*state),
                Err(raw) => Err(store_error(raw)),
            })
        });
        shared.send(Request::Cancel { id, reply });
        committed
    }

    /// Puts durable job `id` back after it failed, was cancelled or timed out: pending
    /// again, due now, with a fresh retry budget (its attempt count goes on, so writes of
    /// an older attempt stay fenced off). The answer comes once committed: what it did, or
    /// `None` if there is no such job.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store refused the write, or there is none.
    pub fn retry_job(&self, id: JobId) -> Committed<Result<Option<Retried>, StoreError>> {
        let shared = match self.durable() {
            Ok(shared) => shared,
            Err(error) => return Committed::ready(Err(error)),
        };
        let (committed, reply) = Committed::pair(|answer| {
            answer.and_then(|raw| match raw.downcast::<(Option<JobState>, bool)>() {
                Ok(answer) => Ok(match *answer {
                    (None, _) => None,
                    (Some(from), true) => Some(Retried::Requeued { from }),
                    (Some(state), false) if is_retryable(state) => Some(Retried::KeyHeld { state }),
                    (Some(state), false) => Some(Retried::NotRetryable { state }),
                }),
                Err(raw) => Err(store_error(raw)),
            })
        });
        shared.send(Request::Retry { id, reply });
        committed
    }

    /// Every recurring durable schedule, by name, with its next run.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read, or there is none.
    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>, StoreError> {
        Ok(self
            .durable()?
            .reader
            .schedules()?
            .iter()
            .map(ScheduleInfo::of)
            .collect())
    }

    /// Stores recurring schedule `name`: every tick of `every` enqueues `job` (as
    /// `options` say, with a unique key per tick, so a tick runs once). Replaces a
    /// schedule of the same name. A restart resumes it, and `every`'s missed-tick policy
    /// decides about the ticks missed while the process was down (`Skip`: one run for them
    /// all; `Burst`: one each). With `Overlap::Skip` (the default) a tick whose previous
    /// tick's job has not finished is skipped. The schedule starts now, or at
    /// `options`' run-at time.
    pub fn schedule<J: DurableJob>(
        &self,
        name: impl Into<String>,
        job: J,
        every: Every,
        options: JobOptions,
    ) -> Committed<Result<(), StoreError>> {
        let shared = match self.durable() {
            Ok(shared) => shared,
            Err(error) => return Committed::ready(Err(error)),
        };
        let job = match self.new_job(&job, options) {
            Ok(job) => job,
            Err(reason) => {
                return Committed::ready(Err(StoreError::new(StoreErrorKind::Decode, reason)));
            }
        };
        let (max_ticks, until) = every.durable_limits();
        let schedule = ScheduleRow {
            name: name.into(),
            interval_ms: u64::try_from(every.interval().as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            anchor: job.run_at,
            next_tick: 0,
            max_ticks,
            fired: 0,
            until: until.map(unix_millis),
            burst: every.missed == MissedTicks::Burst,
            overlap: every.overlap == Overlap::Queue,
            last_job: None,
            job,
        };
        let (committed, reply) = Committed::pair(|answer: Result<Raw, StoreError>| {
            answer.and_then(|raw| match raw.downcast::<()>() {
                Ok(_) => Ok(()),
                Err(raw) => Err(store_error(raw)),
            })
        });
        shared.send(Request::PutSchedule {
            schedule: Box::new(schedule),
            reply,
        });
        committed
    }

    /// Removes schedule `name` (jobs it already enqueued stay); whether it existed.
    pub fn unschedule(&self, name: impl Into<String>) -> Committed<Result<bool, StoreError>> {
        let shared = match self.durable() {
            Ok(shared) => shared,
            Err(error) => return Committed::ready(Err(error)),
        };
        let (committed, reply) = Committed::pair(|answer: Result<Raw, StoreError>| {
            answer.and_then(|raw| match raw.downcast::<bool>() {
                Ok(existed) => Ok(*existed),
                Err(raw) => Err(store_error(raw)),
            })
        });
        shared.send(Request::RemoveSchedule {
            name: name.into(),
            reply,
        });
        committed
    }
}

/// The ids (or holders' ids) an insert answered, or the store's error (a commit that
/// failed: a full disk, a server away).
fn inserted(raw: Raw) -> Result<Vec<Result<JobId, JobId>>, StoreError> {
    match raw.downcast::<Vec<Result<JobId, JobId>>>() {
        Ok(ids) => Ok(*ids),
        Err(raw) => Err(store_error(raw)),
    }
}

/// The store error a keeper answered instead of a value.
fn store_error(raw: Raw) -> StoreError {
    match raw.downcast::<StoreError>() {
        Ok(error) => *error,
        Err(_) => StoreError::closed(),
    }
}

impl Every {
    /// The schedule's limits in the store's terms: ticks in all, and the last instant
    /// (as wall-clock time: an `Instant` does not survive a restart).
    fn durable_limits(&self) -> (Option<u64>, Option<SystemTime>) {
        match self.limit {
            crate::engine::spec::Limit::Forever => (None, None),
            crate::engine::spec::Limit::Runs(runs) => (Some(u64::from(runs)), None),
            crate::engine::spec::Limit::Until(deadline) => {
                let now = Instant::now();
                let wall = SystemTime::now();
                let until = match deadline.checked_duration_since(now) {
                    Some(ahead) => wall + ahead,
                    None => wall - now.duration_since(deadline),
                };
                (None, Some(until))
            }
        }
    }
}
