//! Many ops of one kind in one statement: the inserts of a batch that carry no unique key,
//! and the ends of attempts, each sent as arrays and spread over rows with `unnest`.
//!
//! One statement a job costs the server a parse of its parameters, an executor start and
//! a round of the protocol per job; a group commit of a thousand enqueues or completions
//! paid that a thousand times. Here it pays it once per kind per transaction; the rows
//! written are the same, and so is fencing (every completion still names its attempt).
//!
//! An insert with a unique key stays a statement of its own: its answer may be the holder
//! of the key, which only a per-job statement can say.

use std::collections::HashSet;

use errand_core::engine::JobId;
use errand_core::engine::durable::{NewJob, Op};
use tokio_postgres::Transaction;

use crate::statements::Statements;
use crate::values::{FinishValues, InsertParams, insert_params};
use crate::write::{Reply, Writer};

/// Inserts rows, one per element of its arrays, in the order of the arrays; answers the
/// new ids. No row can conflict (the only unique index is on the key these rows lack),
/// and the ids come from one sequence in one statement, so they rise in insertion order.
pub(crate) const INSERT_MANY_SQL: &str = "INSERT INTO errand_jobs (kind, payload, state, \
     priority, run_at, attempt, failures, retry_max, retry_initial_ms, retry_multiplier, \
     retry_max_delay_ms, retry_jitter, timeout_ms, result_ttl_ms, schedule, created_at, \
     started_at, node, lease_until) \
     SELECT kind, payload, state, priority, run_at, attempt, 0, retry_max, retry_initial_ms, \
     retry_multiplier, retry_max_delay_ms, retry_jitter, timeout_ms, result_ttl_ms, schedule, \
     created_at, started_at, node, lease_until \
     FROM unnest($1::text[], $2::text[], $3::smallint[], $4::smallint[], $5::bigint[], \
     $6::int[], $7::int[], $8::bigint[], $9::float8[], $10::bigint[], $11::smallint[], \
     $12::bigint[], $13::bigint[], $14::text[], $15::bigint[], $16::bigint[], $17::text[], \
     $18::bigint[]) WITH ORDINALITY AS t(kind, payload, state, priority, run_at, attempt, \
     retry_max, retry_initial_ms, retry_multiplier, retry_max_delay_ms, retry_jitter, \
     timeout_ms, result_ttl_ms, schedule, created_at, started_at, node, lease_until, ord) \
     ORDER BY ord RETURNING id";

/// Ends attempts, one per element of its arrays, as the single finish statement does each:
/// only a row still running the named attempt changes. Answers the ids that changed.
pub(crate) const FINISH_MANY_SQL: &str = "UPDATE errand_jobs AS j SET state = f.state, \
     result = f.result, expires_at = f.expires_at, \
     error = CASE WHEN f.set_error THEN f.error ELSE j.error END, \
     failures = j.failures + f.failed, run_at = COALESCE(f.run_at, j.run_at), \
     finished_at = f.finished_at, \
     progress = CASE WHEN f.state = 2 THEN 100 ELSE j.progress END, \
     node = CASE WHEN f.state = 0 THEN NULL ELSE j.node END, lease_until = NULL \
     FROM unnest($1::bigint[], $2::int[], $3::smallint[], $4::text[], $5::bigint[], \
     $6::bool[], $7::text[], $8::int[], $9::bigint[], $10::bigint[]) \
     AS f(id, attempt, state, result, expires_at, set_error, error, failed, run_at, \
     finished_at) \
     WHERE j.id = f.id AND j.attempt = f.attempt AND j.state = 1 RETURNING j.id";

/// Which ops of a run go out together, by their index in the run.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    /// Inserts with no unique key.
    pub(crate) inserts: Vec<usize>,
    /// Attempts' ends, at most one per job (a second end of one job goes alone, after).
    pub(crate) finishes: Vec<usize>,
}

impl Groups {
    /// The groups of `run`; a group of one op is no group (it goes out alone).
    pub(crate) fn of(run: &[Op]) -> Self {
        let mut groups = Self::default();
        let mut ended = HashSet::new();
        for (index, op) in run.iter().enumerate() {
            match op {
                Op::Insert { job, .. } if job.unique_key.is_none() => groups.inserts.push(index),
                Op::Finish { id, .. } if ended.insert(*id) => groups.finishes.push(index),
                _ => {}
            }
        }
        for group in [&mut groups.inserts, &mut groups.finishes] {
            if group.len() < 2 {
                group.clear();
            }
        }
        groups
    }

    /// Whether op `index` goes out in a group.
    pub(crate) fn holds(&self, index: usize) -> bool {
        self.inserts.binary_search(&index).is_ok() || self.finishes.binary_search(&index).is_ok()
    }
}

/// The arrays of [`INSERT_MANY_SQL`].
#[derive(Default)]
struct InsertColumns {
    kind: Vec<String>,
    payload: Vec<String>,
    state: Vec<i16>,
    priority: Vec<i16>,
    run_at: Vec<i64>,
    attempt: Vec<i32>,
    retry_max: Vec<i32>,
    retry_initial_ms: Vec<i64>,
    retry_multiplier: Vec<f64>,
    retry_max_delay_ms: Vec<i64>,
    retry_jitter: Vec<i16>,
    timeout_ms: Vec<Option<i64>>,
    result_ttl_ms: Vec<i64>,
    schedule: Vec<Option<String>>,
    created_at: Vec<i64>,
    started_at: Vec<Option<i64>>,
    node: Vec<Option<String>>,
    lease_until: Vec<Option<i64>>,
}

impl InsertColumns {
    fn push(&mut self, row: InsertParams) {
        self.kind.push(row.kind);
        self.payload.push(row.payload);
        self.state.push(row.state);
        self.priority.push(row.priority);
        self.run_at.push(row.run_at);
        self.attempt.push(row.attempt);
        self.retry_max.push(row.retry_max);
        self.retry_initial_ms.push(row.retry.initial_ms);
        self.retry_multiplier.push(row.retry.multiplier);
        self.retry_max_delay_ms.push(row.retry.max_delay_ms);
        self.retry_jitter.push(row.retry_jitter);
        self.timeout_ms.push(row.timeout_ms);
        self.result_ttl_ms.push(row.result_ttl_ms);
        self.schedule.push(row.schedule);
        self.created_at.push(row.created_at);
        self.started_at.push(row.started_at);
        self.node.push(row.node);
        self.lease_until.push(row.lease_until);
    }
}

/// The values of `jobs` for [`insert_many`].
pub(crate) fn insert_rows<'a>(
    who: &Writer<'_>,
    jobs: impl Iterator<Item = &'a NewJob>,
) -> Vec<InsertParams> {
    jobs.map(|job| insert_params(who, job)).collect()
}

/// Inserts `rows` in one statement; answers their ids, in order.
pub(crate) async fn insert_many(
    tx: &Transaction<'_>,
    st: &Statements,
    rows: Vec<InsertParams>,
) -> Result<Reply, tokio_postgres::Error> {
    let mut c = InsertColumns::default();
    for row in rows {
        c.push(row);
    }
    let rows = tx
        .query(
            &st.insert_many,
            &[
                &c.kind,
                &c.payload,
                &c.state,
                &c.priority,
                &c.run_at,
                &c.attempt,
                &c.retry_max,
                &c.retry_initial_ms,
                &c.retry_multiplier,
                &c.retry_max_delay_ms,
                &c.retry_jitter,
                &c.timeout_ms,
                &c.result_ttl_ms,
                &c.schedule,
                &c.created_at,
                &c.started_at,
                &c.node,
                &c.lease_until,
            ],
        )
        .await?;
    let mut ids = rows
        .iter()
        .map(|row| row.try_get::<_, i64>(0))
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING promises no order; the ids' order is the rows' (one sequence, one
    // statement, rows inserted in `ord` order).
    ids.sort_unstable();
    Ok(Reply::InsertedMany(ids))
}

/// Ends the attempts of `finishes` (each `(id, attempt, values)`) in one statement;
/// answers the ids whose row changed.
pub(crate) async fn finish_many(
    tx: &Transaction<'_>,
    st: &Statements,
    finishes: Vec<(JobId, u32, FinishValues)>,
) -> Result<Reply, tokio_postgres::Error> {
    let n = finishes.len();
    let (mut id, mut attempt, mut state) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut result, mut expires_at, mut set_error) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut error, mut failed, mut run_at, mut finished_at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (job, tried, values) in finishes {
        id.push(job.get() as i64);
        attempt.push(tried as i32);
        state.push(values.state);
        result.push(values.result);
        expires_at.push(values.expires_at);
        set_error.push(values.set_error);
        error.push(values.error);
        failed.push(values.failed);
        run_at.push(values.run_at);
        finished_at.push(values.finished_at);
    }
    let rows = tx
        .query(
            &st.finish_many,
            &[
                &id,
                &attempt,
                &state,
                &result,
                &expires_at,
                &set_error,
                &error,
                &failed,
                &run_at,
                &finished_at,
            ],
        )
        .await?;
    Ok(Reply::FinishedMany(
        rows.iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<HashSet<_>, _>>()?,
    ))
}
