//! The values an op writes: an insert's nineteen, an attempt's end, a schedule's body.

use errand_core::engine::JobState;
use errand_core::engine::durable::{Finish, NewJob, RetryColumns, ScheduleRow};

use crate::rows::code;
use crate::write::Writer;

/// The nineteen values of an insert.
pub(crate) struct InsertParams {
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) state: i16,
    pub(crate) priority: i16,
    pub(crate) run_at: i64,
    pub(crate) attempt: i32,
    pub(crate) retry: RetryColumns,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) result_ttl_ms: i64,
    pub(crate) unique_key: Option<String>,
    pub(crate) schedule: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) node: Option<String>,
    pub(crate) lease_until: Option<i64>,
    pub(crate) retry_max: i32,
    pub(crate) retry_jitter: i16,
}

impl InsertParams {
    pub(crate) fn refs(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 19] {
        [
            &self.kind,
            &self.payload,
            &self.state,
            &self.priority,
            &self.run_at,
            &self.attempt,
            &self.retry_max,
            &self.retry.initial_ms,
            &self.retry.multiplier,
            &self.retry.max_delay_ms,
            &self.retry_jitter,
            &self.timeout_ms,
            &self.result_ttl_ms,
            &self.unique_key,
            &self.schedule,
            &self.created_at,
            &self.started_at,
            &self.node,
            &self.lease_until,
        ]
    }
}

pub(crate) fn insert_params(who: &Writer<'_>, job: &NewJob) -> InsertParams {
    let retry = RetryColumns::of(&job.retry);
    let claimed = job.claimed;
    InsertParams {
        kind: job.kind.to_string(),
        payload: job.payload.clone(),
        state: if claimed {
            code(JobState::Running)
        } else {
            code(JobState::Pending)
        },
        priority: i16::from(job.priority.0),
        run_at: job.run_at,
        attempt: i32::from(claimed),
        retry_max: i32::try_from(retry.max_retries).unwrap_or(i32::MAX),
        retry_jitter: i16::try_from(retry.jitter).unwrap_or(0),
        retry,
        timeout_ms: job
            .timeout_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        result_ttl_ms: i64::try_from(job.result_ttl_ms).unwrap_or(i64::MAX),
        unique_key: job.unique_key.clone(),
        schedule: job.schedule.clone(),
        created_at: job.created_at,
        started_at: claimed.then_some(job.created_at),
        node: claimed.then(|| who.node.to_string()),
        lease_until: claimed.then(|| job.created_at.saturating_add(who.lease_ms)),
    }
}

/// What the finish statement writes for one way an attempt ended.
pub(crate) struct FinishValues {
    pub(crate) state: i16,
    pub(crate) result: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) set_error: bool,
    pub(crate) error: Option<String>,
    pub(crate) failed: i32,
    pub(crate) run_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
}

impl FinishValues {
    pub(crate) fn of(finish: &Finish, at: i64) -> Self {
        let mut values = Self {
            state: code(JobState::Failed),
            result: None,
            expires_at: None,
            set_error: false,
            error: None,
            failed: 0,
            run_at: None,
            finished_at: Some(at),
        };
        match finish {
            Finish::Succeeded { result, expires_at } => {
                values.state = code(JobState::Succeeded);
                values.result = Some(result.clone());
                values.expires_at = Some(*expires_at);
                values.set_error = true;
            }
            Finish::Failed { error } => {
                values.set_error = true;
                values.error = Some(error.clone());
                values.failed = 1;
            }
            Finish::Retry { error, run_at } => {
                values.state = code(JobState::Pending);
                values.set_error = true;
                values.error = Some(error.clone());
                values.failed = 1;
                values.run_at = Some(*run_at);
                values.finished_at = None;
            }
            Finish::TimedOut => {
                values.state = code(JobState::TimedOut);
                values.set_error = true;
                values.error = Some("timed out".into());
            }
            Finish::Cancelled => values.state = code(JobState::Cancelled),
            Finish::Release => {
                values.state = code(JobState::Pending);
                values.run_at = Some(at);
                values.finished_at = None;
            }
            // A way of ending this store does not know: failed, said so.
            _ => {
                values.set_error = true;
                values.error = Some("ended in a way this store does not know".into());
            }
        }
        values
    }
}

/// A schedule as its row's body.
pub(crate) fn schedule_body(schedule: &ScheduleRow) -> String {
    serde_json::to_string(schedule).unwrap_or_default()
}
