//! The reader: queries from any thread, on a connection of its own (WAL lets it read
//! while the writer writes, and it sees only committed transactions).

use std::sync::Mutex;

use errand_core::engine::durable::{JobFilter, JobRow, ScheduleRow, StoreReader, UnixMillis};
use errand_core::engine::{JobId, JobState, StoreError, StoreErrorKind};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Context;
use crate::rows::{columns, job_row};

/// The store's read connection.
#[derive(Debug)]
pub(crate) struct Reader(pub(crate) Mutex<Connection>);

impl Reader {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StoreReader for Reader {
    fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError> {
        self.conn()
            .prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM errand_jobs WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id.get() as i64], job_row).optional())
            .doing("reading a job")
    }

    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();

        let after = filter.after.map_or(0, |id| id.get() as i64);
        let limit = filter.limit.unwrap_or(100) as i64;
        // One statement per state, the state a literal: SQLite uses a partial index only
        // when the query names its condition, so a filter on pending or running jobs reads
        // those (errand_jobs_pending, errand_jobs_running), not every finished job before
        // them.
        macro_rules! listing {
            ($state:literal) => {
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM errand_jobs WHERE id > ?1 AND (?2 IS NULL OR kind = ?2) \
                     AND (?4 IS NULL OR state = ?4) ",
                    $state,
                    " ORDER BY id LIMIT ?3"
                )
            };
        }
        let sql = match filter.state {
            None => listing!(""),
            Some(JobState::Pending) => listing!("AND state = 0"),
            Some(JobState::Running) => listing!("AND state = 1"),
            Some(_) => listing!(""),
        };
        let state = filter.state.map(JobState::code);
        conn.prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params![after, filter.kind, limit, state], job_row)?
                    .collect()
            })
            .doing("listing jobs")
    }

    fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        schedules(&self.conn())
    }

    fn pending_kinds(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT kind, count(*) FROM errand_jobs WHERE state = ?1 GROUP BY kind ORDER BY kind",
            )
            .and_then(|mut s| {
                s.query_map([JobState::Pending.code()], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
                })?
                .collect()
            })
            .doing("counting pending jobs by kind")
    }

    fn earliest_due(&self) -> Result<Option<UnixMillis>, StoreError> {
        self.conn()
            .prepare_cached(
                "SELECT run_at FROM errand_jobs INDEXED BY errand_jobs_next WHERE state = 0 \
                 ORDER BY run_at LIMIT 1",
            )
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .optional()
            .doing("reading the earliest due pending job")
    }
}

/// Every schedule on `conn`, by name (the writer's and the reader's query).
pub(crate) fn schedules(conn: &Connection) -> Result<Vec<ScheduleRow>, StoreError> {
    let bodies: Vec<String> = conn
        .prepare_cached("SELECT body FROM errand_schedules ORDER BY name")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .doing("reading the schedules")?;
    bodies
        .iter()
        .map(|body| {
            serde_json::from_str(body).map_err(|error| {
                StoreError::new(
                    StoreErrorKind::Decode,
                    format!("a stored schedule did not decode: {error}"),
                )
            })
        })
        .collect()
}
