//! The writer's side: one transaction per batch of ops, its statements pipelined (sent
//! without waiting for each answer, executed in order), prepared once per connection.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use errand_core::engine::durable::{Finish, JobRow, NewJob, Op, RetryColumns, ScheduleRow};
use errand_core::engine::{JobId, JobState, StoreError, StoreErrorKind};
use futures_util::future::try_join_all;
use tokio_postgres::{Client, Statement, Transaction};

use crate::batch::{
    FINISH_MANY_SQL, Groups, INSERT_MANY_SQL, finish_many, insert_many, insert_rows,
};
use crate::rows::{code, columns, job_row};

/// The statements a batch may use, prepared on one connection.
#[derive(Debug)]
pub(crate) struct Statements {
    insert: Statement,
    claim: Statement,
    next_due: Statement,
    finish: Statement,
    progress: Statement,
    cancel: Statement,
    retry: Statement,
    heartbeat: Statement,
    rescue: Statement,
    prune: Statement,
    purge: Statement,
    put_schedule: Statement,
    remove_schedule: Statement,
    schedule_for_update: Statement,
    notify: Statement,
    pub(crate) insert_many: Statement,
    pub(crate) finish_many: Statement,
}

impl Statements {
    /// Prepares every statement on `client`.
    pub(crate) async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            insert: client
                .prepare(
                    "WITH ins AS (INSERT INTO errand_jobs (kind, payload, state, priority, run_at, \
                     attempt, failures, retry_max, retry_initial_ms, retry_multiplier, \
                     retry_max_delay_ms, retry_jitter, timeout_ms, result_ttl_ms, unique_key, \
                     schedule, created_at, started_at, node, lease_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19) ON CONFLICT DO NOTHING RETURNING id) \
                     SELECT id, true FROM ins \
                     UNION ALL \
                     SELECT id, false FROM errand_jobs WHERE $14::text IS NOT NULL \
                     AND unique_key = $14 AND state IN (0, 1) AND NOT EXISTS (SELECT 1 FROM ins) \
                     LIMIT 1",
                )
                .await?,
            claim: client.prepare(CLAIM_SQL).await?,
            next_due: client
                .prepare(
                    "SELECT run_at FROM errand_jobs WHERE state = 0 AND kind = ANY($1) \
                     ORDER BY run_at LIMIT 1",
                )
                .await?,
            finish: client
                .prepare(
                    "UPDATE errand_jobs SET state = $3::smallint, result = $4, expires_at = $5, \
                     error = CASE WHEN $6 THEN $7 ELSE error END, failures = failures + $8::int, \
                     run_at = COALESCE($9::bigint, run_at), finished_at = $10, \
                     progress = CASE WHEN $3::smallint = 2 THEN 100 ELSE progress END, \
                     node = CASE WHEN $3::smallint = 0 THEN NULL ELSE node END, lease_until = NULL \
                     WHERE id = $1 AND attempt = $2 AND state = 1",
                )
                .await?,
            progress: client
                .prepare(
                    "UPDATE errand_jobs SET progress = $3, message = $4 \
                     WHERE id = $1 AND attempt = $2 AND state = 1",
                )
                .await?,
            cancel: client
                .prepare(
                    "WITH old AS (SELECT id, state FROM errand_jobs WHERE id = $1 FOR UPDATE), \
                     upd AS (UPDATE errand_jobs j SET state = 4, finished_at = $2, \
                     lease_until = NULL FROM old WHERE j.id = old.id AND old.state IN (0, 1) \
                     RETURNING j.id) SELECT state FROM old",
                )
                .await?,
            // The unique key is checked in the statement: a key another unfinished job
            // holds now leaves the row as it was instead of failing the batch on the index.
            retry: client
                .prepare(
                    "WITH old AS (SELECT id, state, unique_key FROM errand_jobs WHERE id = $1 \
                     FOR UPDATE), \
                     upd AS (UPDATE errand_jobs j SET state = 0, run_at = $2, failures = 0, \
                     result = NULL, expires_at = NULL, finished_at = NULL, progress = 0, \
                     message = NULL, node = NULL, lease_until = NULL FROM old \
                     WHERE j.id = old.id AND old.state IN (3, 4, 5) \
                     AND (old.unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM errand_jobs o \
                     WHERE o.unique_key = old.unique_key AND o.state IN (0, 1))) \
                     RETURNING j.id) \
                     SELECT old.state, EXISTS (SELECT 1 FROM upd) FROM old",
                )
                .await?,
            heartbeat: client
                .prepare(
                    "WITH held AS (SELECT j.id FROM errand_jobs j \
                     JOIN unnest($2::bigint[], $3::int[]) AS h(id, attempt) \
                     ON j.id = h.id AND j.attempt = h.attempt WHERE j.state = 1 \
                     ORDER BY j.id FOR UPDATE OF j) \
                     UPDATE errand_jobs SET lease_until = $1 WHERE id IN (SELECT id FROM held) \
                     RETURNING id",
                )
                .await?,
            rescue: client
                .prepare(
                    "WITH rescued AS (UPDATE errand_jobs SET state = 0, node = NULL, \
                     lease_until = NULL WHERE id IN (SELECT id FROM errand_jobs WHERE state = 1 \
                     AND lease_until < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                     RETURNING id) \
                     SELECT (SELECT count(*) FROM rescued), (SELECT min(lease_until) \
                     FROM errand_jobs WHERE state = 1 AND node IS DISTINCT FROM $3 \
                     AND id NOT IN (SELECT id FROM rescued))",
                )
                .await?,
            prune: client
                .prepare(
                    "UPDATE errand_jobs SET result = NULL, expires_at = NULL WHERE id IN \
                     (SELECT id FROM errand_jobs WHERE expires_at IS NOT NULL \
                     AND expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                )
                .await?,
            purge: client
                .prepare(
                    "DELETE FROM errand_jobs WHERE id IN (SELECT id FROM errand_jobs \
                     WHERE finished_at IS NOT NULL AND finished_at < $1 \
                     AND (expires_at IS NULL OR expires_at <= $2) \
                     ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED)",
                )
                .await?,
            put_schedule: client
                .prepare(
                    "INSERT INTO errand_schedules (name, body) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body",
                )
                .await?,
            remove_schedule: client
                .prepare("DELETE FROM errand_schedules WHERE name = $1")
                .await?,
            schedule_for_update: client
                .prepare("SELECT body FROM errand_schedules WHERE name = $1 FOR UPDATE")
                .await?,
            notify: client.prepare("SELECT pg_notify($1, $2)").await?,
            insert_many: client.prepare(INSERT_MANY_SQL).await?,
            finish_many: client.prepare(FINISH_MANY_SQL).await?,
        })
    }
}

/// The claim: up to `$3` due pending jobs of the kinds `$2`, highest priority first, then
/// earliest due, skipping rows another node has locked, made running for node `$4` with
/// a lease until `$5` (all times in Unix milliseconds; `$1` is now).
///
/// Public so that it can be `EXPLAIN`ed on a real table, or run on its own to find the
/// server's ceiling (the comparison runner's `pg_ceiling_*` cases drive it with
/// `pgbench`). It runs with the schema first on the `search_path`.
///
/// # Examples
///
/// ```
/// use errand_store_postgres::CLAIM_SQL;
///
/// assert!(CLAIM_SQL.starts_with("UPDATE errand_jobs SET state = 1"));
/// assert!(CLAIM_SQL.contains("FOR UPDATE SKIP LOCKED"));
/// ```
pub const CLAIM_SQL: &str = concat!(
    "UPDATE errand_jobs SET state = 1, attempt = attempt + 1, started_at = $1, \
     progress = 0, message = NULL, node = $4, lease_until = $5 \
     WHERE id IN (SELECT id FROM errand_jobs WHERE state = 0 AND run_at <= $1 \
     AND kind = ANY($2) ORDER BY priority DESC, run_at, id LIMIT $3 \
     FOR UPDATE SKIP LOCKED) RETURNING ",
    columns!()
);

/// Who writes: the node's name, how long its claims hold, and where it tells other
/// nodes about new work.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    pub(crate) node: &'a str,
    pub(crate) lease_ms: i64,
    pub(crate) channel: &'a str,
}

/// An op's answer from the server, before it is written back into the op.
pub(crate) enum Reply {
    Inserted(Option<(i64, bool)>),
    /// The ids of a group of inserts, in their order.
    InsertedMany(Vec<i64>),
    /// The ids a group of finishes changed.
    FinishedMany(HashSet<i64>),
    Claimed(Vec<JobRow>),
    NextDue(Option<i64>),
    Changed(u64),
    Rescued(u64, Option<i64>),
    Cancelled(Option<i16>),
    Retried(Option<(i16, bool)>),
    Held(Vec<i64>),
    Nothing,
}

/// Whose reply a statement's is: one op's, or a group's.
enum Owner {
    One(usize),
    Inserts,
    Finishes,
}

type Pending<'t> = Pin<Box<dyn Future<Output = Result<Reply, tokio_postgres::Error>> + 't>>;

/// Runs `ops` in `tx`, filling in their replies. Runs of ops go to the server pipelined;
/// a schedule's tick (read, decide, write) runs on its own between them.
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    st: &Statements,
    who: &Writer<'_>,
    ops: &mut [Op],
) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
    let mut start = 0;
    let mut wakes_others = false;
    while start < ops.len() {
        let end = ops[start..]
            .iter()
            .position(|op| matches!(op, Op::FireSchedule { .. }))
            .map_or(ops.len(), |at| start + at);
        let run = &mut ops[start..end];
        let groups = Groups::of(run);
        let mut pending: Vec<Pending<'_>> = Vec::with_capacity(run.len() + 1);
        let mut owners: Vec<Owner> = Vec::with_capacity(run.len() + 1);
        for (index, op) in run.iter().enumerate() {
            wakes_others |= makes_work(op);
            // A group goes out where its first op stands.
            if groups.inserts.first() == Some(&index) {
                let jobs = groups.inserts.iter().filter_map(|&i| match &run[i] {
                    Op::Insert { job, .. } => Some(job),
                    _ => None,
                });
                pending.push(Box::pin(insert_many(tx, st, insert_rows(who, jobs))));
                owners.push(Owner::Inserts);
            }
            if groups.finishes.first() == Some(&index) {
                let finishes = groups
                    .finishes
                    .iter()
                    .filter_map(|&i| match &run[i] {
                        Op::Finish {
                            id,
                            attempt,
                            finish,
                            at,
                            ..
                        } => Some((*id, *attempt, FinishValues::of(finish, *at))),
                        _ => None,
                    })
                    .collect();
                pending.push(Box::pin(finish_many(tx, st, finishes)));
                owners.push(Owner::Finishes);
            }
            if groups.holds(index) {
                continue;
            }
            for future in send(tx, st, who, op) {
                pending.push(future);
                owners.push(Owner::One(index));
            }
        }
        let replies = try_join_all(pending).await?;
        for (owner, reply) in owners.into_iter().zip(replies) {
            match (owner, reply) {
                (Owner::One(index), reply) => take(&mut run[index], reply),
                (Owner::Inserts, Reply::InsertedMany(ids)) => {
                    if ids.len() != groups.inserts.len() {
                        return Ok(Err(StoreError::new(
                            StoreErrorKind::Io,
                            format!(
                                "a group of {} inserts answered {} ids",
                                groups.inserts.len(),
                                ids.len()
                            ),
                        )));
                    }
                    for (&index, id) in groups.inserts.iter().zip(ids) {
                        if let Op::Insert { reply, .. } = &mut run[index] {
                            *reply = Some(Ok(JobId::new(u64::try_from(id).unwrap_or(0))));
                        }
                    }
                }
                (Owner::Finishes, Reply::FinishedMany(changed)) => {
                    for &index in &groups.finishes {
                        if let Op::Finish { id, reply, .. } = &mut run[index] {
                            *reply = changed.contains(&(id.get() as i64));
                        }
                    }
                }
                _ => {}
            }
        }
        // An insert that met a unique key another transaction committed meanwhile found
        // no holder in its snapshot: ask again (a new statement sees the new row).
        for op in run.iter_mut() {
            if let Op::Insert { job, reply } = op {
                for _ in 0..3 {
                    if reply.is_some() {
                        break;
                    }
                    *reply = inserted(
                        tx.query_opt(&st.insert, &insert_params(who, job).refs())
                            .await?,
                    );
                }
                if reply.is_none() {
                    return Ok(Err(StoreError::new(
                        StoreErrorKind::Io,
                        "an insert neither inserted nor found the holder of its unique key",
                    )));
                }
            }
        }
        if let Some(op) = ops.get_mut(end) {
            fire_schedule(tx, st, who, op).await?;
            wakes_others = true;
        }
        start = end + 1;
    }
    if wakes_others {
        tx.query_one(&st.notify, &[&who.channel, &who.node]).await?;
    }
    Ok(Ok(()))
}

/// Whether `op` may leave work another node could claim (so the batch notifies).
fn makes_work(op: &Op) -> bool {
    match op {
        Op::Insert { job, .. } => !job.claimed,
        Op::Finish { finish, .. } => matches!(finish, Finish::Retry { .. } | Finish::Release),
        Op::Rescue { .. } | Op::Retry { .. } => true,
        _ => false,
    }
}

/// The statements op `op` sends (its reply comes from them, in order).
fn send<'t>(
    tx: &'t Transaction<'_>,
    st: &'t Statements,
    who: &Writer<'_>,
    op: &Op,
) -> Vec<Pending<'t>> {
    let node = who.node.to_string();
    let futures: Vec<Pending<'t>> = match op {
        Op::Insert { job, .. } => {
            let params = insert_params(who, job);
            vec![Box::pin(async move {
                Ok(Reply::Inserted(
                    tx.query_opt(&st.insert, &params.refs())
                        .await?
                        .map(|row| (row.get(0), row.get(1))),
                ))
            })]
        }
        Op::Claim {
            now, limit, kinds, ..
        } => {
            let (now, limit) = (*now, *limit as i64);
            let kinds: Vec<String> = kinds.iter().cloned().collect();
            let lease_until = now.saturating_add(who.lease_ms);
            let kinds_again = kinds.clone();
            vec![
                Box::pin(async move {
                    let rows = tx
                        .query(&st.claim, &[&now, &kinds, &limit, &node, &lease_until])
                        .await?;
                    let mut claimed = rows.iter().map(job_row).collect::<Result<Vec<_>, _>>()?;
                    // RETURNING does not keep the subquery's order.
                    claimed.sort_by(|a, b| {
                        b.priority
                            .cmp(&a.priority)
                            .then(a.run_at.cmp(&b.run_at))
                            .then(a.id.cmp(&b.id))
                    });
                    Ok(Reply::Claimed(claimed))
                }),
                Box::pin(async move {
                    Ok(Reply::NextDue(
                        tx.query_opt(&st.next_due, &[&kinds_again])
                            .await?
                            .map(|row| row.get(0)),
                    ))
                }),
            ]
        }
        Op::Finish {
            id,
            attempt,
            finish,
            at,
            ..
        } => {
            let values = FinishValues::of(finish, *at);
            let (id, attempt) = (id.get() as i64, *attempt as i32);
            vec![Box::pin(async move {
                let changed = tx
                    .execute(
                        &st.finish,
                        &[
                            &id,
                            &attempt,
                            &values.state,
                            &values.result,
                            &values.expires_at,
                            &values.set_error,
                            &values.error,
                            &values.failed,
                            &values.run_at,
                            &values.finished_at,
                        ],
                    )
                    .await?;
                Ok(Reply::Changed(changed))
            })]
        }
        Op::Progress {
            id,
            attempt,
            percent,
            message,
        } => {
            let (id, attempt, percent, message) =
                (id.get() as i64, *attempt as i32, *percent, message.clone());
            vec![Box::pin(async move {
                tx.execute(&st.progress, &[&id, &attempt, &percent, &message])
                    .await?;
                Ok(Reply::Nothing)
            })]
        }
        Op::Cancel { id, at, .. } => {
            let (id, at) = (id.get() as i64, *at);
            vec![Box::pin(async move {
                Ok(Reply::Cancelled(
                    tx.query_opt(&st.cancel, &[&id, &at])
                        .await?
                        .map(|row| row.get(0)),
                ))
            })]
        }
        Op::Retry { id, at, .. } => {
            let (id, at) = (id.get() as i64, *at);
            vec![Box::pin(async move {
                Ok(Reply::Retried(
                    tx.query_opt(&st.retry, &[&id, &at])
                        .await?
                        .map(|row| (row.get(0), row.get(1))),
                ))
            })]
        }
        Op::Heartbeat { now, jobs, .. } => {
            let lease_until = now.saturating_add(who.lease_ms);
            let ids: Vec<i64> = jobs.iter().map(|(id, _)| id.get() as i64).collect();
            let attempts: Vec<i32> = jobs.iter().map(|(_, attempt)| *attempt as i32).collect();
            vec![Box::pin(async move {
                let rows = tx
                    .query(&st.heartbeat, &[&lease_until, &ids, &attempts])
                    .await?;
                Ok(Reply::Held(rows.iter().map(|row| row.get(0)).collect()))
            })]
        }
        Op::Rescue { now, limit, .. } => {
            let (now, limit) = (*now, *limit as i64);
            vec![Box::pin(async move {
                let row = tx.query_one(&st.rescue, &[&now, &limit, &node]).await?;
                let rescued: i64 = row.try_get(0)?;
                Ok(Reply::Rescued(
                    u64::try_from(rescued).unwrap_or(0),
                    row.try_get(1)?,
                ))
            })]
        }
        Op::Prune { now, limit, .. } => {
            let (now, limit) = (*now, *limit as i64);
            vec![Box::pin(async move {
                Ok(Reply::Changed(
                    tx.execute(&st.prune, &[&now, &limit]).await?,
                ))
            })]
        }
        Op::Purge {
            now, before, limit, ..
        } => {
            let (now, before, limit) = (*now, *before, *limit as i64);
            vec![Box::pin(async move {
                Ok(Reply::Changed(
                    tx.execute(&st.purge, &[&before, &now, &limit]).await?,
                ))
            })]
        }
        Op::PutSchedule { schedule } => {
            let body = schedule_body(schedule);
            let name = schedule.name.clone();
            vec![Box::pin(async move {
                tx.execute(&st.put_schedule, &[&name, &body]).await?;
                Ok(Reply::Nothing)
            })]
        }
        Op::RemoveSchedule { name, .. } => {
            let name = name.clone();
            vec![Box::pin(async move {
                Ok(Reply::Changed(
                    tx.execute(&st.remove_schedule, &[&name]).await?,
                ))
            })]
        }
        // Schedule ticks run apart; an op this store does not know changes nothing.
        _ => Vec::new(),
    };
    futures
}

/// Writes `reply` into `op`.
fn take(op: &mut Op, reply: Reply) {
    match (op, reply) {
        (Op::Insert { reply, .. }, Reply::Inserted(row)) => *reply = inserted_of(row),
        (Op::Claim { reply, .. }, Reply::Claimed(rows)) => *reply = rows,
        (
            Op::Claim {
                reply,
                limit,
                next_due,
                ..
            },
            Reply::NextDue(due),
        ) => *next_due = if reply.len() < *limit { due } else { None },
        (Op::Finish { reply, .. }, Reply::Changed(changed)) => *reply = changed > 0,
        (Op::Cancel { reply, .. }, Reply::Cancelled(state)) => {
            *reply = state
                .and_then(|state| u8::try_from(state).ok())
                .and_then(JobState::from_code);
        }
        (
            Op::Retry {
                reply, requeued, ..
            },
            Reply::Retried(row),
        ) => {
            *reply = row
                .and_then(|(state, _)| u8::try_from(state).ok())
                .and_then(JobState::from_code);
            *requeued = row.is_some_and(|(_, changed)| changed);
        }
        (Op::Heartbeat { jobs, reply, .. }, Reply::Held(held)) => {
            *reply = jobs
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !held.contains(&(id.get() as i64)))
                .collect();
        }
        (
            Op::Rescue {
                reply, next_expiry, ..
            },
            Reply::Rescued(rescued, expiry),
        ) => {
            *reply = rescued;
            *next_expiry = expiry;
        }
        (Op::Purge { reply, .. }, Reply::Changed(changed)) => *reply = changed,
        (Op::Prune { reply, .. }, Reply::Changed(changed)) => *reply = changed as usize,
        (Op::RemoveSchedule { reply, .. }, Reply::Changed(changed)) => *reply = changed > 0,
        _ => {}
    }
}

/// An insert's answer: the new id, or the holder of its unique key.
fn inserted_of(row: Option<(i64, bool)>) -> Option<Result<JobId, JobId>> {
    row.map(|(id, new)| {
        let id = JobId::new(u64::try_from(id).unwrap_or(0));
        if new { Ok(id) } else { Err(id) }
    })
}

fn inserted(row: Option<tokio_postgres::Row>) -> Option<Result<JobId, JobId>> {
    inserted_of(row.map(|row| (row.get(0), row.get(1))))
}

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
    fn refs(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 19] {
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

/// Fires one tick of a schedule, unless it is gone or already past the tick: the row is
/// locked, read, and written back advanced, with the tick's job inserted in between.
async fn fire_schedule(
    tx: &Transaction<'_>,
    st: &Statements,
    who: &Writer<'_>,
    op: &mut Op,
) -> Result<(), tokio_postgres::Error> {
    let Op::FireSchedule {
        name,
        tick,
        next_tick,
        job,
        reply,
    } = op
    else {
        return Ok(());
    };
    // A transaction run again after a deadlock starts from no answer.
    *reply = None;
    let body: Option<String> = tx
        .query_opt(&st.schedule_for_update, &[&*name])
        .await?
        .map(|row| row.get(0));
    let Some(Ok(mut schedule)) = body.map(|body| serde_json::from_str::<ScheduleRow>(&body)) else {
        return Ok(());
    };
    if schedule.next_tick > *tick {
        return Ok(());
    }
    let Some(id) = inserted(
        tx.query_opt(&st.insert, &insert_params(who, job).refs())
            .await?,
    ) else {
        return Ok(());
    };
    *reply = Some(id);
    schedule.next_tick = *next_tick;
    if id.is_ok() {
        schedule.fired = schedule.fired.saturating_add(1);
    }
    schedule.last_job = Some(id.unwrap_or_else(|existing| existing));
    tx.execute(
        &st.put_schedule,
        &[&schedule.name, &schedule_body(&schedule)],
    )
    .await?;
    Ok(())
}
