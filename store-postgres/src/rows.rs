//! Rows: the columns of a job and how they map to [`JobRow`].

use errand_core::Priority;
use errand_core::engine::durable::{JobRow, RetryColumns};
use errand_core::engine::{JobId, JobState};
use tokio_postgres::Row;

/// The columns of `errand_jobs` a [`JobRow`] is read from, in [`job_row`]'s order.
macro_rules! columns {
    () => {
        "id, kind, payload, state, priority, run_at, attempt, failures, retry_max, \
         retry_initial_ms, retry_multiplier, retry_max_delay_ms, retry_jitter, timeout_ms, \
         result_ttl_ms, unique_key, schedule, progress, message, error, result, created_at, \
         started_at, finished_at, expires_at, node, lease_until"
    };
}
pub(crate) use columns;

/// Reads a [`JobRow`] from a row of [`columns!`].
pub(crate) fn job_row(row: &Row) -> Result<JobRow, tokio_postgres::Error> {
    let state: i16 = row.try_get(3)?;
    let unsigned = |value: Option<i64>| value.map(|value| u64::try_from(value).unwrap_or(0));
    let count = |value: i32| u32::try_from(value).unwrap_or(0);
    Ok(JobRow {
        id: JobId::new(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0)),
        kind: row.try_get(1)?,
        payload: row.try_get(2)?,
        state: u8::try_from(state)
            .ok()
            .and_then(JobState::from_code)
            .unwrap_or(JobState::Failed),
        priority: Priority(u8::try_from(row.try_get::<_, i16>(4)?).unwrap_or(0)),
        run_at: row.try_get(5)?,
        attempt: count(row.try_get(6)?),
        failures: count(row.try_get(7)?),
        retry: RetryColumns::new(
            i64::from(row.try_get::<_, i32>(8)?),
            row.try_get(9)?,
            row.try_get(10)?,
            row.try_get(11)?,
            i64::from(row.try_get::<_, i16>(12)?),
        )
        .policy(),
        timeout_ms: unsigned(row.try_get(13)?),
        result_ttl_ms: unsigned(Some(row.try_get(14)?)).unwrap_or(0),
        unique_key: row.try_get(15)?,
        schedule: row.try_get(16)?,
        progress: row.try_get(17)?,
        message: row.try_get(18)?,
        error: row.try_get(19)?,
        result: row.try_get(20)?,
        created_at: row.try_get(21)?,
        started_at: row.try_get(22)?,
        finished_at: row.try_get(23)?,
        expires_at: row.try_get(24)?,
        node: row.try_get(25)?,
        lease_until: row.try_get(26)?,
    })
}

/// A job state's code in the `state` column.
pub(crate) fn code(state: JobState) -> i16 {
    i16::from(state.code())
}
