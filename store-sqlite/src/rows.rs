//! Rows: the columns of a job and how they map to [`JobRow`].

use errand_core::Priority;
use errand_core::engine::durable::{JobRow, RetryColumns};
use errand_core::engine::{JobId, JobState};

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

/// Reads a [`JobRow`] from a row of [`COLUMNS`].
pub(crate) fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let state: u8 = row.get(3)?;
    let unsigned = |value: Option<i64>| value.map(|value| u64::try_from(value).unwrap_or(0));
    Ok(JobRow {
        id: JobId::new(row.get::<_, i64>(0)?.try_into().unwrap_or(0)),
        kind: row.get(1)?,
        payload: row.get(2)?,
        state: JobState::from_code(state).unwrap_or(JobState::Failed),
        priority: Priority(row.get(4)?),
        run_at: row.get(5)?,
        attempt: row.get(6)?,
        failures: row.get(7)?,
        retry: RetryColumns::new(
            row.get(8)?,
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
            row.get(12)?,
        )
        .policy(),
        timeout_ms: unsigned(row.get(13)?),
        result_ttl_ms: unsigned(row.get(14)?).unwrap_or(0),
        unique_key: row.get(15)?,
        schedule: row.get(16)?,
        progress: row.get(17)?,
        message: row.get(18)?,
        error: row.get(19)?,
        result: row.get(20)?,
        created_at: row.get(21)?,
        started_at: row.get(22)?,
        finished_at: row.get(23)?,
        expires_at: row.get(24)?,
        node: row.get(25)?,
        lease_until: row.get(26)?,
    })
}
