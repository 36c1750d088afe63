//! errand's durable jobs on an embedded SQLite file: no server to run, nothing to set up.
//!
//! [`SqliteStore`] implements errand's [`Store`] interface on one SQLite database file
//! (rusqlite with SQLite compiled in: no system library). Give it to a manager's builder
//! and register your job types; enqueued jobs, their state, progress and results, and
//! recurring schedules survive restarts and crashes. The semantics (at-least-once, fencing,
//! recovery, unique keys, results' TTL) are the engine's, in
//! [`errand_core::engine::durable`].
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL` by default: a commit returns
//! once the WAL is synced, so an acknowledged enqueue survives a power cut. Both pragmas
//! are read back at open, and a value SQLite did not take is an error
//! ([`StoreErrorKind::Setting`]), never a silent downgrade. [`Synchronous::Normal`] is
//! the documented opt-in for speed: WAL stays consistent, but a power cut (not a process
//! crash) may lose the last transactions, acknowledged or not.
//!
//! The engine's keeper thread owns the write connection and commits in groups (many
//! enqueues, claims and attempt ends per transaction and sync); queries use a second,
//! read connection.
//!
//! One process at a time: the store takes an exclusive lock on a file beside the database
//! (`<database>.lock`), so a second process opening it gets [`StoreErrorKind::Locked`].
//!
//! # Examples
//!
//! A job enqueued, the manager dropped and built again on the same file, its result still
//! there (the README's demo):
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use errand_store_sqlite::SqliteStore;
//! use errand_threads::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Square(u64);
//!
//! impl DurableJob for Square {
//!     const KIND: &'static str = "square";
//!     type Output = u64;
//!
//!     async fn run(&self, _ctx: Context) -> Result<u64, BoxError> {
//!         Ok(self.0 * self.0)
//!     }
//! }
//!
//! # let dir = std::env::temp_dir().join(format!("errand-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("errand.db");
//! let manager = builder()
//!     .store(SqliteStore::open(&path)?)
//!     .register::<Square>()
//!     .build()?;
//! let id = manager.enqueue(Square(12), JobOptions::new()).wait()?;
//! manager.wait_job(id, Duration::from_secs(10)).wait()?;
//! drop(manager);
//!
//! let manager = builder().store(SqliteStore::open(&path)?).build()?;
//! assert_eq!(manager.job_result::<Square>(id)?, Some(144));
//! # drop(manager);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), BoxError>(())
//! ```

mod error;
mod read;
mod rows;
mod schema;
mod write;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use errand_core::engine::durable::Store;
use errand_core::engine::durable::{Op, ScheduleRow, StoreReader, UnixMillis};
pub use errand_core::engine::{StoreError, StoreErrorKind};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use crate::error::Context;
use crate::read::Reader;

/// How SQLite syncs a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit syncs the WAL: what is acknowledged survives a power cut (the default).
    #[default]
    Full,
    /// Commits sync only at checkpoints: a process crash loses nothing, a power cut may
    /// lose the last transactions, acknowledged ones included. Faster.
    Normal,
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SqliteOptions {
    path: PathBuf,
    synchronous: Synchronous,
}

impl SqliteOptions {
    /// `synchronous` (default [`Synchronous::Full`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Opens (or creates) the database: checks that it is an errand database of a schema
    /// this crate knows (migrating an older one), sets and verifies the pragmas, and takes
    /// the process lock.
    ///
    /// # Errors
    ///
    /// [`StoreError`]: [`NotErrand`](StoreErrorKind::NotErrand) for a file that is not an
    /// errand database, [`NewerSchema`](StoreErrorKind::NewerSchema),
    /// [`Locked`](StoreErrorKind::Locked) when another process has it open,
    /// [`ReadOnly`](StoreErrorKind::ReadOnly), [`Setting`](StoreErrorKind::Setting) when a
    /// pragma does not take, [`Io`](StoreErrorKind::Io).
    pub fn open(self) -> Result<SqliteStore, StoreError> {
        let lock = lock(&self.path)?;
        let mut conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .doing("opening the database")?;
        schema::migrate(&mut conn)?;
        schema::configure(&conn, self.synchronous)?;
        // A read-only file shows itself at the first write: make it now.
        conn.execute(
            "INSERT OR REPLACE INTO errand_meta (key, value) VALUES ('opened_at', ?1)",
            params![errand_millis()],
        )
        .doing("writing to the database")?;
        let reader = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .doing("opening the read connection")?;
        reader
            .busy_timeout(std::time::Duration::from_secs(5))
            .doing("setting the read connection's busy timeout")?;
        Ok(SqliteStore {
            conn,
            node: format!("pid-{}", std::process::id()),
            reader: Arc::new(Reader(Mutex::new(reader))),
            path: self.path,
            _lock: lock,
        })
    }
}

/// How long a claim's lease says it holds. A store alone never needs it (a restart
/// recovers every running job at once); it is kept so the rows read the same as a shared
/// store's, and so the store interface behaves the same on both.
const LEASE_MS: i64 = 30_000;

/// Now in milliseconds since the Unix epoch.
fn errand_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Takes the exclusive process lock beside `path`.
fn lock(path: &Path) -> Result<File, StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&name)
        .map_err(|error| {
            let kind = if error.kind() == std::io::ErrorKind::PermissionDenied {
                StoreErrorKind::ReadOnly
            } else {
                StoreErrorKind::Io
            };
            StoreError::new(kind, format!("opening the lock file {name:?}: {error}"))
        })?;
    // SAFETY: `file` is open for the call; flock only reads the descriptor.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let error = std::io::Error::last_os_error();
        let kind = if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            StoreErrorKind::Locked
        } else {
            StoreErrorKind::Io
        };
        return Err(StoreError::new(
            kind,
            format!("another process has {path:?} open (its lock {name:?} is held): {error}"),
        ));
    }
    Ok(file)
}

/// An errand store in one SQLite database file (see the [crate docs](crate)).
pub struct SqliteStore {
    conn: Connection,
    /// This process's name in the `node` column.
    node: String,
    reader: Arc<Reader>,
    path: PathBuf,
    /// Held while the store lives: the process lock.
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with the defaults (`synchronous=FULL`).
    ///
    /// # Errors
    ///
    /// As [`SqliteOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::options(path).open()
    }

    /// Options to open the database at `path` with.
    pub fn options(path: impl AsRef<Path>) -> SqliteOptions {
        SqliteOptions {
            path: path.as_ref().to_path_buf(),
            synchronous: Synchronous::Full,
        }
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `error`, as [`Full`](StoreErrorKind::Full) when the write failed for want of room:
    /// SQLite says "disk full" only for `ENOSPC`; a quota (`EDQUOT`) or a file-size limit
    /// (`EFBIG`) reach it as an I/O error, with the reason in the system errno.
    fn full_if_no_room(&self, error: StoreError) -> StoreError {
        if error.kind() != StoreErrorKind::Io {
            return error;
        }
        // SAFETY: the handle is this open connection's, used on the thread that owns it;
        // `sqlite3_system_errno` only reads the connection's last OS error.
        let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(self.conn.handle()) };
        if [libc::ENOSPC, libc::EDQUOT, libc::EFBIG].contains(&errno) {
            StoreError::new(StoreErrorKind::Full, error.message().to_string())
        } else {
            error
        }
    }
}

impl Store for SqliteStore {
    fn commit(&mut self, ops: &mut [Op]) -> Result<(), StoreError> {
        let who = write::Writer {
            node: &self.node,
            lease_ms: LEASE_MS,
        };
        let outcome = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .doing("starting a transaction")
            .and_then(|tx| {
                write::apply(&tx, &who, ops)?;
                tx.commit().doing("committing")
            });
        outcome.map_err(|error| self.full_if_no_room(error))
    }

    fn recover(&mut self, now: UnixMillis) -> Result<u64, StoreError> {
        let _ = now;
        let recovered = self
            .conn
            .execute(
                "UPDATE errand_jobs SET state = 0, node = NULL, lease_until = NULL WHERE state = 1",
                [],
            )
            .doing("recovering the jobs left running")?;
        Ok(recovered as u64)
    }

    fn schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        read::schedules(&self.conn)
    }

    fn reader(&self) -> Arc<dyn StoreReader> {
        self.reader.clone()
    }
}
