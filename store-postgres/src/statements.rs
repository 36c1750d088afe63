//! The statements a writer sends, prepared once per connection, and the claim statement
//! itself ([`CLAIM_SQL`]).

use tokio_postgres::{Client, Statement};

use crate::batch::{FINISH_MANY_SQL, INSERT_MANY_SQL};
use crate::rows::columns;

/// The statements a batch may use, prepared on one connection.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) insert: Statement,
    pub(crate) claim: Statement,
    pub(crate) next_due: Statement,
    pub(crate) finish: Statement,
    pub(crate) progress: Statement,
    pub(crate) cancel: Statement,
    pub(crate) retry: Statement,
    pub(crate) heartbeat: Statement,
    pub(crate) rescue: Statement,
    pub(crate) prune: Statement,
    pub(crate) purge: Statement,
    pub(crate) put_schedule: Statement,
    pub(crate) remove_schedule: Statement,
    pub(crate) schedule_for_update: Statement,
    pub(crate) notify: Statement,
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
