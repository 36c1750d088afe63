//! The reader: queries from any thread, on a connection of its own.

use std::sync::Mutex;

use errand_core::engine::durable::{JobFilter, JobRow, ScheduleRow, StoreReader, UnixMillis};
use errand_core::engine::{JobId, JobState, StoreError, StoreErrorKind};

use crate::conn::Conn;
use crate::rows::{code, columns, job_row};

/// The listing query, with `$state` added to its condition.
macro_rules! listing {
    ($state:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM errand_jobs WHERE id > $1 AND ($2::text IS NULL OR kind = $2) \
             AND ($4::smallint IS NULL OR state = $4) ",
            $state,
            " ORDER BY id LIMIT $3"
        )
    };
}

/// The store's read connection.
#[derive(Debug)]
pub(crate) struct Reader(pub(crate) Mutex<Conn>);

impl Reader {
    fn conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StoreReader for Reader {
    fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError> {
        let id = id.get() as i64;
        self.conn().run_again("reading a job", async |client| {
            let row = client
                .query_opt(
                    concat!("SELECT ", columns!(), " FROM errand_jobs WHERE id = $1"),
                    &[&id],
                )
                .await?;
            row.as_ref().map(job_row).transpose()
        })
    }

    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
        let after = filter.after.map_or(0, |id| id.get() as i64);
        let limit = filter.limit.unwrap_or(100) as i64;
        let kind = filter.kind.clone();
        let state = filter.state.map(code);
        // The state a literal where a partial index serves it (pending, running).
        let sql = match filter.state {
            Some(JobState::Pending) => listing!("AND state = 0"),
            Some(JobState::Running) => listing!("AND state = 1"),
            _ => listing!(""),
        };
        self.conn().run_again("listing jobs", async |client| {
            client
                .query(sql, &[&after, &kind, &limit, &state])
                .await?
                .iter()
                .map(job_row)
                .collect()
        })
    }

    fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        schedules(&mut self.conn())
    }

    fn pending_kinds(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.conn()
            .run("counting pending jobs by kind", async |client| {
                Ok(client
                    .query(
                        "SELECT kind, count(*) FROM errand_jobs WHERE state = 0 \
                     GROUP BY kind ORDER BY kind",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|row| {
                        let (kind, count): (String, i64) = (row.get(0), row.get(1));
                        (kind, u64::try_from(count).unwrap_or(0))
                    })
                    .collect())
            })
    }

    fn earliest_due(&self) -> Result<Option<UnixMillis>, StoreError> {
        self.conn()
            .run_again("reading the earliest due pending job", async |client| {
                Ok(client
                    .query_opt(
                        "SELECT run_at FROM errand_jobs WHERE state = 0 ORDER BY run_at LIMIT 1",
                        &[],
                    )
                    .await?
                    .map(|row| row.get(0)))
            })
    }
}

/// Every schedule, by name, read on `conn` (the writer's and the reader's query).
pub(crate) fn schedules(conn: &mut Conn) -> Result<Vec<ScheduleRow>, StoreError> {
    let bodies: Vec<String> = conn.run("reading the schedules", async |client| {
        Ok(client
            .query("SELECT body FROM errand_schedules ORDER BY name", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    })?;
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
