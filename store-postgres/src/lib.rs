//! errand's durable jobs on PostgreSQL: many processes, on many machines, share one
//! queue.
//!
//! [`PgStore`] implements errand's [`Store`] interface on a PostgreSQL database (9.5 or
//! later; tested on 15). Moving from errand-store-sqlite is a change of store: the job
//! types, the manager's API and the semantics (at-least-once, fencing by attempt, unique
//! keys, results' TTL — the table in [`errand_core::engine::durable`]) are the same.
//! What a shared store adds:
//!
//! | | how |
//! |---|---|
//! | claims | in batches, `FOR UPDATE SKIP LOCKED`: nodes never wait on each other's rows |
//! | leases | a claim holds for the lease (30 s by default); the node's heartbeats extend it every third of that; a node that dies stops extending, and any node rescues its jobs once the lease expires — within seconds, not the hours other queues wait |
//! | fencing | every write an attempt makes names its attempt number: a node that lost its lease (a pause, a partition) changes nothing when it wakes, and learns at its next heartbeat that the job is no longer its own |
//! | cancel | reaches a job running on another node: the row is cancelled at once, its node stops the attempt at its next heartbeat |
//! | wake-ups | a transaction that leaves claimable work sends one `NOTIFY` (not one per job); other nodes look at once, and every poll interval (1 s by default) in case a notification was lost |
//! | schedules | one node leads (a session advisory lock) and fires every schedule; a tick's job has a unique key and the schedule row is locked while its tick fires, so a tick runs once across all nodes |
//! | outages | a node that cannot reach the server keeps running what it holds, claims nothing, refuses enqueues with [`StoreErrorKind::Unavailable`] (nothing is acknowledged that was not committed), retries with backoff, and reconnects by itself; [`DurableStats::failing`](errand_core::engine::DurableStats::failing) shows it |
//! | migrations | versioned, applied at open under an advisory lock; a schema from a newer errand is refused |
//!
//! The driver is tokio-postgres, run on a current-thread runtime that belongs to the
//! store and is driven by the thread calling it: a smol or plain-threads program needs no
//! tokio of its own. One connection writes (the engine's keeper: group commit, each
//! batch's statements pipelined in one transaction), one reads, one listens. Connections
//! are plain TCP without TLS: keep the server on a private network.
//!
//! # Examples
//!
//! Two managers — think of two machines — on one database: one enqueues, either runs.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//! use errand_store_postgres::PgStore;
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
//! # let url = errand_conformance::postgres::url();
//! # let schema = errand_conformance::postgres::fresh_schema("doc");
//! // `url` is like "postgres://user@host:5432/db"; `schema` keeps this example's tables apart.
//! let open = || PgStore::options(&url).schema(&schema).open();
//! let a = builder().store(open()?).register::<Square>().build()?;
//! let b = builder().store(open()?).register::<Square>().build()?;
//! let id = a.enqueue(Square(12), JobOptions::new()).wait()?;
//! let done = b.wait_job(id, Duration::from_secs(10)).wait()?.expect("the job exists");
//! assert_eq!(done.job_state, JobState::Succeeded);
//! assert_eq!(b.job_result::<Square>(id)?, Some(144));
//! # drop((a, b));
//! # Ok::<(), BoxError>(())
//! ```

mod batch;
mod conn;
mod error;
mod listen;
mod read;
mod rows;
mod schema;
mod statements;
mod values;
mod write;

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use errand_core::engine::durable::Store;
use errand_core::engine::durable::{Hint, Op, ScheduleRow, Sharing, StoreReader, UnixMillis};
pub use errand_core::engine::{StoreError, StoreErrorKind};
use tokio_postgres::Config;

use crate::conn::Conn;
use crate::error::is_transient;
use crate::listen::Listener;
use crate::read::Reader;
pub use crate::statements::CLAIM_SQL;
use crate::statements::Statements;
use crate::write::Writer;

/// The schema errand's tables live in unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "errand";

/// How to open a [`PgStore`].
#[derive(Clone, Debug)]
#[must_use]
pub struct PgOptions {
    url: String,
    schema: String,
    lease: Duration,
    poll: Duration,
    timeout: Duration,
    node: Option<String>,
}

impl PgOptions {
    /// The schema errand's tables live in (created if missing; by default
    /// [`DEFAULT_SCHEMA`]): lowercase letters, digits and `_`, starting with a letter.
    /// Stores on different schemas of one database are separate queues.
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = schema.to_string();
        self
    }

    /// How long a claim holds without a heartbeat (by default 30 s, at least 1 s): the
    /// longest a dead node's jobs wait before another node rescues them. Heartbeats run
    /// every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often a node looks for work, rescues expired leases and tries to lead, even
    /// when no notification came (by default 1 s).
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The longest one call to the server may take before its connection is taken to be
    /// dead (by default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// This node's name in the jobs it claims (by default host name, process id and a
    /// random suffix).
    pub fn node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// Connects, creates or migrates the schema, and prepares the store.
    ///
    /// # Errors
    ///
    /// [`StoreError`]: [`Unavailable`](StoreErrorKind::Unavailable) when the server cannot
    /// be reached, [`NewerSchema`](StoreErrorKind::NewerSchema) for a schema from a newer
    /// errand, [`NotErrand`](StoreErrorKind::NotErrand) for tables errand did not make,
    /// [`Setting`](StoreErrorKind::Setting) for a URL, schema name, lease or poll that is
    /// not valid, [`Io`](StoreErrorKind::Io) otherwise.
    pub fn open(self) -> Result<PgStore, StoreError> {
        let setting = |message: String| StoreError::new(StoreErrorKind::Setting, message);
        let valid_schema = self.schema.len() <= 48
            && self.schema.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_schema {
            return Err(setting(format!(
                "schema {:?}: use 1 to 48 lowercase letters, digits and _, starting with a letter",
                self.schema
            )));
        }
        if self.lease < Duration::from_secs(1) || self.poll.is_zero() || self.timeout.is_zero() {
            return Err(setting(format!(
                "lease {:?} (at least 1 s), poll {:?} and timeout {:?} (above zero)",
                self.lease, self.poll, self.timeout
            )));
        }
        let mut config: Config = self
            .url
            .parse()
            .map_err(|error| setting(format!("the URL does not parse: {error}")))?;
        config
            .application_name("errand")
            .options(format!("-c search_path={}", self.schema))
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        let mut conn = Conn::open(config.clone(), self.timeout)?;
        schema::migrate(&mut conn, &self.schema)?;
        let reader = Conn::open(config.clone(), self.timeout)?;
        let node = self.node.unwrap_or_else(node_name);
        Ok(PgStore {
            conn,
            prepared: None,
            reader: Arc::new(Reader(Mutex::new(reader))),
            channel: format!("errand_{}", self.schema),
            lead_key: schema::lock_key(&self.schema, "leader"),
            leading: None,
            config,
            schema: self.schema,
            node,
            lease: self.lease,
            poll: self.poll,
            listener: None,
        })
    }
}

/// A node name: host, process and a random suffix (two processes never share one).
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

/// An errand store in a PostgreSQL database (see the [crate docs](crate)).
pub struct PgStore {
    conn: Conn,
    /// The statements, and the connection generation they were prepared on.
    prepared: Option<(u64, Statements)>,
    reader: Arc<Reader>,
    config: Config,
    schema: String,
    channel: String,
    node: String,
    lease: Duration,
    poll: Duration,
    lead_key: i64,
    /// The connection generation on which this node took the leader's lock.
    leading: Option<u64>,
    listener: Option<Listener>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("node", &self.node)
            .field("lease", &self.lease)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`)
    /// with the defaults.
    ///
    /// # Errors
    ///
    /// As [`PgOptions::open`].
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::options(url).open()
    }

    /// Options to connect to the database at `url` with.
    pub fn options(url: &str) -> PgOptions {
        PgOptions {
            url: url.to_string(),
            schema: DEFAULT_SCHEMA.to_string(),
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            node: None,
        }
    }

    /// This node's name, as the jobs it claims record it.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The schema its tables live in.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The most times a transaction that met a deadlock with another node runs again.
const TRANSIENT_TRIES: usize = 5;

impl Store for PgStore {
    fn commit(&mut self, ops: &mut [Op]) -> Result<(), StoreError> {
        let who = Writer {
            node: &self.node,
            lease_ms: self.lease_ms(),
            channel: &self.channel,
        };
        let prepared = &mut self.prepared;
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = self.conn.run_on("committing", async |client, generation| {
                // Statements belong to one connection: prepare them again after a new one.
                if prepared
                    .as_ref()
                    .is_none_or(|(made, _)| *made != generation)
                {
                    *prepared = None;
                }
                if prepared.is_none() {
                    *prepared = Some((generation, Statements::prepare(client).await?));
                }
                let Some((_, statements)) = prepared.as_ref() else {
                    unreachable!("prepared above");
                };
                let tx = client.transaction().await?;
                // `Err(None)`: a deadlock or serialization failure, worth running again.
                let outcome: Result<(), Option<StoreError>> =
                    match write::apply(&tx, statements, &who, ops).await {
                        Ok(Ok(())) => match tx.commit().await {
                            Ok(()) => Ok(()),
                            Err(error) if is_transient(&error) => Err(None),
                            Err(error) => return Err(error),
                        },
                        Ok(Err(error)) => Err(Some(error)),
                        Err(error) if is_transient(&error) => Err(None),
                        Err(error) => return Err(error),
                    };
                Ok(outcome)
            });
            match outcome {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Some(error))) => return Err(error),
                Ok(Err(None)) if tries < TRANSIENT_TRIES => {}
                Ok(Err(None)) => {
                    return Err(StoreError::new(
                        StoreErrorKind::Io,
                        "committing: deadlocked with another node, again and again",
                    ));
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn recover(&mut self, now: UnixMillis) -> Result<u64, StoreError> {
        let mut recovered = 0;
        loop {
            let mut ops = [Op::Rescue {
                now,
                limit: 5000,
                reply: 0,
                next_expiry: None,
            }];
            self.commit(&mut ops)?;
            let [Op::Rescue { reply, .. }] = ops else {
                unreachable!("one rescue op");
            };
            recovered += reply;
            if reply < 5000 {
                return Ok(recovered);
            }
        }
    }

    fn schedules(&mut self) -> Result<Vec<ScheduleRow>, StoreError> {
        read::schedules(&mut self.conn)
    }

    fn reader(&self) -> Arc<dyn StoreReader> {
        self.reader.clone()
    }

    fn sharing(&self) -> Sharing {
        Sharing::Shared {
            lease: self.lease,
            poll: self.poll,
        }
    }

    fn set_hint(&mut self, hint: Hint) {
        self.listener = Some(Listener::start(
            self.config.clone(),
            self.channel.clone(),
            self.node.clone(),
            hint,
        ));
    }

    fn lead(&mut self) -> Result<bool, StoreError> {
        // The lock is the session's: held while this connection lives.
        if self.leading == Some(self.conn.generation()) {
            return Ok(true);
        }
        let key = self.lead_key;
        let won = self.conn.run("trying to lead", async |client| {
            Ok(client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?
                .get::<_, bool>(0))
        })?;
        self.leading = won.then(|| self.conn.generation());
        Ok(won)
    }
}
