//! The writer's side: one transaction per batch of ops, its statements pipelined (sent
//! without waiting for each answer, executed in order). What they are is in
//! `statements.rs`, the values they carry in `values.rs`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use errand_core::engine::durable::{Finish, JobRow, Op, ScheduleRow};
use errand_core::engine::{JobId, JobState, StoreError, StoreErrorKind};
use futures_util::future::try_join_all;
use tokio_postgres::Transaction;

use crate::batch::{Groups, finish_many, insert_many, insert_rows};
use crate::rows::job_row;
pub(crate) use crate::statements::Statements;
use crate::values::{FinishValues, insert_params, schedule_body};

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
