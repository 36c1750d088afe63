//! The writer's side: one transaction per batch of ops, every statement prepared once
//! and cached.

use errand_core::engine::durable::{
    Finish, JobRow, NewJob, Op, RetryColumns, ScheduleRow, UnixMillis,
};
use errand_core::engine::{JobId, JobState, StoreError};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::Context;
use crate::rows::{columns, job_row};

const PENDING: u8 = JobState::Pending.code();
const RUNNING: u8 = JobState::Running.code();

/// Who writes: the node's name and how long its claims hold.
pub(crate) struct Writer<'a> {
    pub(crate) node: &'a str,
    pub(crate) lease_ms: i64,
}

/// Runs every op of `ops` in `tx`, filling in their replies.
pub(crate) fn apply(
    tx: &Transaction<'_>,
    who: &Writer<'_>,
    ops: &mut [Op],
) -> Result<(), StoreError> {
    for op in ops {
        match op {
            Op::Insert { job, reply } => *reply = Some(insert(tx, who, job)?),
            Op::Claim {
                now,
                limit,
                kinds,
                reply,
                next_due,
            } => {
                *reply = claim(tx, who, *now, *limit, kinds)?;
                *next_due = if reply.len() < *limit {
                    next(tx, kinds)?
                } else {
                    None
                };
            }
            Op::Finish {
                id,
                attempt,
                finish,
                at,
                reply,
            } => *reply = finish_attempt(tx, *id, *attempt, finish, *at)?,
            Op::Progress {
                id,
                attempt,
                percent,
                message,
            } => {
                tx.prepare_cached(
                    "UPDATE errand_jobs SET progress = ?3, message = ?4 \
                     WHERE id = ?1 AND attempt = ?2 AND state = ?5",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        id.get() as i64,
                        *attempt,
                        *percent,
                        &*message,
                        RUNNING
                    ])
                })
                .doing("recording progress")?;
            }
            Op::Cancel { id, at, reply } => *reply = cancel(tx, *id, *at)?,
            Op::Retry {
                id,
                at,
                reply,
                requeued,
            } => (*reply, *requeued) = retry(tx, *id, *at)?,
            Op::Heartbeat { now, jobs, reply } => {
                let lease_until = now.saturating_add(who.lease_ms);
                let mut statement = tx
                    .prepare_cached(
                        "UPDATE errand_jobs SET lease_until = ?4 \
                         WHERE id = ?1 AND attempt = ?2 AND state = ?3",
                    )
                    .doing("extending leases")?;
                for (id, attempt) in jobs.iter() {
                    let held = statement
                        .execute(params![id.get() as i64, attempt, RUNNING, lease_until])
                        .doing("extending a lease")?;
                    if held == 0 {
                        reply.push(*id);
                    }
                }
            }
            Op::Rescue {
                now, limit, reply, ..
            } => {
                *reply = tx
                    .prepare_cached(
                        "UPDATE errand_jobs SET state = ?1, node = NULL, lease_until = NULL \
                         WHERE id IN (SELECT id FROM errand_jobs WHERE state = ?2 \
                         AND lease_until < ?3 LIMIT ?4)",
                    )
                    .and_then(|mut s| s.execute(params![PENDING, RUNNING, *now, *limit as i64]))
                    .doing("rescuing jobs whose lease expired")? as u64;
            }
            Op::Purge {
                now,
                before,
                limit,
                reply,
            } => {
                *reply = tx
                    .prepare_cached(
                        "DELETE FROM errand_jobs WHERE id IN (SELECT id FROM errand_jobs \
                         WHERE finished_at IS NOT NULL AND finished_at < ?1 \
                         AND (expires_at IS NULL OR expires_at <= ?2) \
                         ORDER BY finished_at LIMIT ?3)",
                    )
                    .and_then(|mut s| s.execute(params![*before, *now, *limit as i64]))
                    .doing("deleting old finished jobs")? as u64;
            }
            Op::Prune { now, limit, reply } => {
                *reply = tx
                    .prepare_cached(
                        "UPDATE errand_jobs SET result = NULL, expires_at = NULL WHERE id IN \
                         (SELECT id FROM errand_jobs WHERE expires_at IS NOT NULL \
                          AND expires_at <= ?1 LIMIT ?2)",
                    )
                    .and_then(|mut statement| statement.execute(params![*now, *limit as i64]))
                    .doing("pruning expired results")?;
            }
            Op::PutSchedule { schedule } => put_schedule(tx, schedule)?,
            Op::RemoveSchedule { name, reply } => {
                *reply = tx
                    .prepare_cached("DELETE FROM errand_schedules WHERE name = ?1")
                    .and_then(|mut statement| statement.execute([&*name]))
                    .doing("removing a schedule")?
                    > 0;
            }
            Op::FireSchedule {
                name,
                tick,
                next_tick,
                job,
                reply,
            } => {
                let body: Option<String> = tx
                    .prepare_cached("SELECT body FROM errand_schedules WHERE name = ?1")
                    .and_then(|mut statement| {
                        statement.query_row([&*name], |row| row.get(0)).optional()
                    })
                    .doing("reading a schedule")?;
                // Gone, or already past this tick (fired by another leader): nothing.
                let Some(Ok(mut schedule)) =
                    body.map(|body| serde_json::from_str::<ScheduleRow>(&body))
                else {
                    continue;
                };
                if schedule.next_tick > *tick {
                    continue;
                }
                let id = insert(tx, who, job)?;
                *reply = Some(id);
                schedule.next_tick = *next_tick;
                if id.is_ok() {
                    schedule.fired = schedule.fired.saturating_add(1);
                }
                schedule.last_job = Some(id.unwrap_or_else(|existing| existing));
                put_schedule(tx, &schedule)?;
            }
            _ => {
                return Err(StoreError::new(
                    errand_core::engine::StoreErrorKind::Io,
                    "an operation this store does not know (a newer errand-core?)",
                ));
            }
        }
    }
    Ok(())
}

/// Inserts `job`; its id, or `Err` with the id of the unfinished job holding its key.
fn insert(
    tx: &Transaction<'_>,
    who: &Writer<'_>,
    job: &NewJob,
) -> Result<Result<JobId, JobId>, StoreError> {
    let (state, attempt, started_at, node, lease_until) = if job.claimed {
        let lease_until = job.created_at.saturating_add(who.lease_ms);
        (
            RUNNING,
            1,
            Some(job.created_at),
            Some(who.node),
            Some(lease_until),
        )
    } else {
        (PENDING, 0, None, None, None)
    };
    let retry = RetryColumns::of(&job.retry);
    let id: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO errand_jobs (kind, payload, state, priority, run_at, attempt, failures, \
             retry_max, retry_initial_ms, retry_multiplier, retry_max_delay_ms, retry_jitter, \
             timeout_ms, result_ttl_ms, unique_key, schedule, created_at, started_at, node, \
             lease_until) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19) ON CONFLICT DO NOTHING RETURNING id",
        )
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![
                        &*job.kind,
                        job.payload,
                        state,
                        job.priority.0,
                        job.run_at,
                        attempt,
                        retry.max_retries,
                        retry.initial_ms,
                        retry.multiplier,
                        retry.max_delay_ms,
                        retry.jitter,
                        job.timeout_ms.map(|ms| ms as i64),
                        job.result_ttl_ms.min(i64::MAX as u64) as i64,
                        job.unique_key,
                        job.schedule,
                        job.created_at,
                        started_at,
                        node,
                        lease_until,
                    ],
                    |row| row.get(0),
                )
                .optional()
        })
        .doing("inserting a job")?;
    if let Some(id) = id {
        return Ok(Ok(JobId::new(id as u64)));
    }
    // The unique index refused it: name the holder.
    let holder: i64 = tx
        .prepare_cached("SELECT id FROM errand_jobs WHERE unique_key = ?1 AND state IN (?2, ?3)")
        .and_then(|mut statement| {
            statement.query_row(params![job.unique_key, PENDING, RUNNING], |row| row.get(0))
        })
        .doing("finding the holder of a unique key")?;
    Ok(Err(JobId::new(holder as u64)))
}

/// Claims up to `limit` due pending jobs of `kinds`, highest priority and earliest first.
fn claim(
    tx: &Transaction<'_>,
    who: &Writer<'_>,
    now: UnixMillis,
    limit: usize,
    kinds: &[String],
) -> Result<Vec<JobRow>, StoreError> {
    let kinds = serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into());
    const CLAIM: &str = concat!(
        "UPDATE errand_jobs SET state = ?1, attempt = attempt + 1, started_at = ?2, \
         progress = 0, message = NULL, node = ?6, lease_until = ?7 WHERE id IN \
         (SELECT id FROM errand_jobs WHERE state = ?3 AND run_at <= ?2 \
          AND kind IN (SELECT value FROM json_each(?4)) \
          ORDER BY priority DESC, run_at, id LIMIT ?5) \
         RETURNING ",
        columns!()
    );
    let mut rows = tx
        .prepare_cached(CLAIM)
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![
                        RUNNING,
                        now,
                        PENDING,
                        kinds,
                        limit as i64,
                        who.node,
                        now.saturating_add(who.lease_ms)
                    ],
                    job_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .doing("claiming jobs")?;
    // RETURNING does not keep the subquery's order.
    rows.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(rows)
}

/// When the next pending job of `kinds` is due.
fn next(tx: &Transaction<'_>, kinds: &[String]) -> Result<Option<UnixMillis>, StoreError> {
    let kinds = serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "SELECT run_at FROM errand_jobs WHERE state = ?1 \
         AND kind IN (SELECT value FROM json_each(?2)) ORDER BY run_at LIMIT 1",
    )
    .and_then(|mut statement| {
        statement
            .query_row(params![PENDING, kinds], |row| row.get(0))
            .optional()
    })
    .doing("finding the next due job")
}

/// Ends attempt `attempt` of job `id`, if it is still that attempt and running.
fn finish_attempt(
    tx: &Transaction<'_>,
    id: JobId,
    attempt: u32,
    finish: &Finish,
    at: UnixMillis,
) -> Result<bool, StoreError> {
    let id = id.get() as i64;
    // Every statement ends with the fence: this attempt, still running.
    macro_rules! fenced {
        ($set:literal) => {
            concat!(
                "UPDATE errand_jobs SET ",
                $set,
                " WHERE id = ?1 AND attempt = ?2 AND state = ?3"
            )
        };
    }
    let changed = match finish {
        Finish::Succeeded { result, expires_at } => tx
            .prepare_cached(fenced!(
                "state = ?4, result = ?5, expires_at = ?6, \
                 finished_at = ?7, progress = 100, error = NULL"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    attempt,
                    RUNNING,
                    JobState::Succeeded.code(),
                    result,
                    expires_at,
                    at
                ])
            }),
        Finish::Failed { error } => tx
            .prepare_cached(fenced!(
                "state = ?4, error = ?5, failures = failures + 1, \
                 finished_at = ?6"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    attempt,
                    RUNNING,
                    JobState::Failed.code(),
                    error,
                    at
                ])
            }),
        Finish::Retry { error, run_at } => tx
            .prepare_cached(fenced!(
                "state = ?4, error = ?5, failures = failures + 1, \
                 run_at = ?6"
            ))
            .and_then(|mut s| s.execute(params![id, attempt, RUNNING, PENDING, error, run_at])),
        Finish::TimedOut => tx
            .prepare_cached(fenced!("state = ?4, error = 'timed out', finished_at = ?5"))
            .and_then(|mut s| {
                s.execute(params![id, attempt, RUNNING, JobState::TimedOut.code(), at])
            }),
        Finish::Cancelled => tx
            .prepare_cached(fenced!("state = ?4, finished_at = ?5"))
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    attempt,
                    RUNNING,
                    JobState::Cancelled.code(),
                    at
                ])
            }),
        Finish::Release => tx
            .prepare_cached(fenced!("state = ?4, run_at = ?5"))
            .and_then(|mut s| s.execute(params![id, attempt, RUNNING, PENDING, at])),
        _ => Ok(0),
    }
    .doing("ending an attempt")?;
    Ok(changed > 0)
}

/// Cancels job `id` if it is pending or running; the state it was in.
fn cancel(tx: &Transaction<'_>, id: JobId, at: UnixMillis) -> Result<Option<JobState>, StoreError> {
    let id = id.get() as i64;
    let state: Option<u8> = tx
        .prepare_cached("SELECT state FROM errand_jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |row| row.get(0)).optional())
        .doing("reading a job's state")?;
    let Some(state) = state.and_then(JobState::from_code) else {
        return Ok(None);
    };
    if !state.is_finished() {
        tx.prepare_cached(
            "UPDATE errand_jobs SET state = ?2, finished_at = ?3, lease_until = NULL \
             WHERE id = ?1 AND state IN (?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                JobState::Cancelled.code(),
                at,
                PENDING,
                RUNNING
            ])
        })
        .doing("cancelling a job")?;
    }
    Ok(Some(state))
}

/// Puts a failed, cancelled or timed-out job back (`Op::Retry`): its state before, and
/// whether it is pending again. The unique key is checked in the statement, so a key now
/// held by another unfinished job leaves the row as it was rather than failing the batch
/// on the unique index.
fn retry(
    tx: &Transaction<'_>,
    id: JobId,
    at: UnixMillis,
) -> Result<(Option<JobState>, bool), StoreError> {
    let id = id.get() as i64;
    let state: Option<u8> = tx
        .prepare_cached("SELECT state FROM errand_jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |row| row.get(0)).optional())
        .doing("reading a job's state")?;
    let Some(state) = state.and_then(JobState::from_code) else {
        return Ok((None, false));
    };
    if !errand_core::engine::durable::is_retryable(state) {
        return Ok((Some(state), false));
    }
    let changed = tx
        .prepare_cached(
            "UPDATE errand_jobs SET state = ?2, run_at = ?3, failures = 0, result = NULL, \
             expires_at = NULL, finished_at = NULL, progress = 0, message = NULL, \
             node = NULL, lease_until = NULL \
             WHERE id = ?1 AND state IN (?4, ?5, ?6) AND (unique_key IS NULL OR NOT EXISTS \
             (SELECT 1 FROM errand_jobs AS other WHERE other.unique_key = errand_jobs.unique_key \
             AND other.state IN (?2, ?7)))",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                PENDING,
                at,
                JobState::Failed.code(),
                JobState::Cancelled.code(),
                JobState::TimedOut.code(),
                RUNNING
            ])
        })
        .doing("putting a job back")?;
    Ok((Some(state), changed > 0))
}

/// Creates or replaces a schedule.
fn put_schedule(tx: &Transaction<'_>, schedule: &ScheduleRow) -> Result<(), StoreError> {
    let body = serde_json::to_string(schedule).map_err(|error| {
        StoreError::new(
            errand_core::engine::StoreErrorKind::Io,
            format!("a schedule did not serialize: {error}"),
        )
    })?;
    tx.prepare_cached("INSERT OR REPLACE INTO errand_schedules (name, body) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![schedule.name, body]))
        .doing("storing a schedule")?;
    Ok(())
}
