//! Registered job types, and how a claimed job becomes an engine task: its payload
//! decoded, its attempt run as an async task, its end written back through its hook.

use std::collections::HashMap;
use std::string::{String, ToString};
use std::sync::Arc;
use std::time::Duration;
use std::vec::Vec;

use super::job::{DurableJob, JobId, now_millis};
use super::keeper::Shared;
use super::store::{Finish, JobRow};
use crate::engine::ending::{Ending, OnEnd};
use crate::engine::guard;
use crate::engine::inner::Inner;
use crate::engine::{BoxError, Context, SubmitError, Task};
use crate::{RetryDecision, RetryPolicy, SplitMix64, State};

/// Why a claimed job did not start.
pub(crate) enum Refused {
    /// Its payload did not decode: it fails with this error.
    Decode(String),
    /// The engine had no room (its queue, its budget) or is stopping: it goes back.
    Busy,
}

/// Starts claimed jobs of one registered type.
pub(crate) trait Runner: Send + Sync {
    /// Submits attempt `row.attempt` of the claimed job `row` to the engine.
    fn start(&self, inner: &Arc<Inner>, shared: &Arc<Shared>, row: &JobRow) -> Result<(), Refused>;
}

/// The [`Runner`] of job type `J`.
struct RunnerOf<J>(core::marker::PhantomData<fn() -> J>);

/// The registered job types, by kind.
#[derive(Default, Clone)]
pub(crate) struct Registry {
    runners: HashMap<String, Arc<dyn Runner>>,
}

impl Registry {
    /// Registers `J` (a second registration of a kind replaces the first).
    pub(crate) fn register<J: DurableJob>(&mut self) {
        self.runners.insert(
            J::KIND.to_string(),
            Arc::new(RunnerOf::<J>(core::marker::PhantomData)),
        );
    }

    /// The runner of `kind`.
    pub(crate) fn runner(&self, kind: &str) -> Option<&Arc<dyn Runner>> {
        self.runners.get(kind)
    }

    /// The kinds registered, sorted.
    pub(crate) fn kinds(&self) -> Arc<[String]> {
        let mut kinds: Vec<String> = self.runners.keys().cloned().collect();
        kinds.sort();
        kinds.into()
    }
}

impl<J: DurableJob> Runner for RunnerOf<J> {
    fn start(&self, inner: &Arc<Inner>, shared: &Arc<Shared>, row: &JobRow) -> Result<(), Refused> {
        let job: J = serde_json::from_str(&row.payload).map_err(|error| {
            Refused::Decode(std::format!(
                "the payload of job kind {:?} did not decode: {error}",
                row.kind
            ))
        })?;
        let job = Arc::new(job);
        let hook = Arc::new(Hook {
            id: row.id,
            attempt: row.attempt,
            failures: row.failures,
            retry: row.retry,
            result_ttl_ms: row.result_ttl_ms,
            job: Arc::clone(&job),
            shared: Arc::clone(shared),
        });
        let mut task = Task::future(move |ctx: Context| {
            let job = Arc::clone(&job);
            async move {
                let output = job.run(ctx).await?;
                let json = serde_json::to_string(&output).map_err(|error| {
                    BoxError::from(std::format!("the job's output did not serialize: {error}"))
                })?;
                Ok::<Arc<str>, BoxError>(json.into())
            }
        })
        .priority(row.priority)
        // Its kind names it in task listings and updates (borrowed: no allocation).
        .label(J::KIND)
        // Retries are the store's: each attempt is one task.
        .retry(RetryPolicy::none())
        // The attempt the store counted is the one `ctx.attempt()` shows.
        .on_end(hook, row.attempt.saturating_sub(1));
        if let Some(ms) = row.timeout_ms {
            task = task.timeout(Duration::from_millis(ms.max(1)));
        }
        let mut refused = None;
        shared.start_task(row.id, row.attempt, || match inner.submit(task) {
            Ok(handle) => Some(handle.id()),
            Err(SubmitError::InvalidSpec { reason, .. }) => {
                refused = Some(Refused::Decode(reason.into()));
                None
            }
            Err(_) => {
                refused = Some(Refused::Busy);
                None
            }
        });
        refused.map_or(Ok(()), Err)
    }
}

/// A running attempt's end hook: writes the attempt's end to its row (through the
/// keeper), deciding about retries with the job's policy and handler.
struct Hook<J> {
    id: JobId,
    attempt: u32,
    failures: u32,
    retry: RetryPolicy,
    result_ttl_ms: u64,
    job: Arc<J>,
    shared: Arc<Shared>,
}

impl<J: DurableJob> Hook<J> {
    /// The delay before the next retry after `failures` failures, if the policy allows
    /// one. The jitter is seeded by the job's id, so a restart replays the same delays.
    fn retry_delay(&self, failures: u32) -> Option<Duration> {
        let mut backoff = self.retry.backoff();
        let mut rng = SplitMix64::new(self.id.get() ^ 0x6a6f_625f_7265_7472);
        for _ in 1..failures {
            backoff.next_delay(&mut rng)?;
        }
        backoff.next_delay(&mut rng)
    }
}

impl<J: DurableJob> OnEnd for Hook<J> {
    fn ended(&self, end: Ending<'_>) {
        let now = now_millis();
        let finish = match end.state {
            State::Succeeded => {
                let result = end
                    .value
                    .and_then(|value| value.downcast_ref::<Arc<str>>())
                    .map_or_else(|| String::from("null"), |json| json.to_string());
                Finish::Succeeded {
                    result,
                    expires_at: now
                        .saturating_add(i64::try_from(self.result_ttl_ms).unwrap_or(i64::MAX)),
                }
            }
            State::TimedOut => Finish::TimedOut,
            State::Cancelled if end.stopped => Finish::Release,
            State::Cancelled => Finish::Cancelled,
            _ => {
                let failures = self.failures.saturating_add(1);
                let (error, decision) = match end.error {
                    Some(error) => (
                        guard::run(|| error.to_string()).unwrap_or_else(|caught| {
                            std::format!("(the error's Display panicked: {})", caught.message())
                        }),
                        guard::run(|| self.job.on_error(error, failures))
                            .unwrap_or(RetryDecision::Fail),
                    ),
                    None => (String::from("task failed"), RetryDecision::Fail),
                };
                let delay = match decision {
                    RetryDecision::Fail => None,
                    RetryDecision::Retry => self.retry_delay(failures),
                    RetryDecision::RetryAfter(after) => self.retry_delay(failures).map(|_| after),
                };
                match delay {
                    Some(delay) => Finish::Retry {
                        error,
                        run_at: now
                            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                    },
                    None => Finish::Failed { error },
                }
            }
        };
        self.shared.ended(self.id, self.attempt, finish, now);
    }

    fn progress(&self, percent: f64, message: &str) {
        self.shared
            .progress(self.id, self.attempt, percent, message.into());
    }

    fn job(&self) -> u64 {
        self.id.get()
    }
}
