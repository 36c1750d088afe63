//! Rows: the columns of a job, how they map to [`JobRow`], and a retry policy's columns.

use std::time::Duration;

use errand_core::engine::durable::JobRow;
use errand_core::engine::{JobId, JobState};
use errand_core::{Jitter, Priority, RetryPolicy};

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

/// The code of a jitter in the `retry_jitter` column.
pub(crate) fn jitter_code(jitter: Jitter) -> i64 {
    match jitter {
        Jitter::Full => 1,
        Jitter::Equal => 2,
        Jitter::Decorrelated => 3,
        _ => 0,
    }
}

fn jitter_of(code: i64) -> Jitter {
    match code {
        1 => Jitter::Full,
        2 => Jitter::Equal,
        3 => Jitter::Decorrelated,
        _ => Jitter::None,
    }
}

/// Milliseconds in `d`, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A retry policy from its columns (a policy that no longer validates becomes "none").
fn retry_of(
    max: i64,
    initial_ms: i64,
    multiplier: f64,
    max_delay_ms: i64,
    jitter: i64,
) -> RetryPolicy {
    let ms = |value: i64| Duration::from_millis(u64::try_from(value).unwrap_or(0));
    RetryPolicy::builder()
        .max_retries(u32::try_from(max).unwrap_or(0))
        .initial_delay(ms(initial_ms))
        .multiplier(multiplier)
        .max_delay(ms(max_delay_ms))
        .jitter(jitter_of(jitter))
        .build()
        .unwrap_or_else(|_| RetryPolicy::none())
}

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
        retry: retry_of(
            row.get(8)?,
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
            row.get(12)?,
        ),
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
