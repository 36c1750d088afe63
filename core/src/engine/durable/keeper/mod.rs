//! The keeper: the one thread that owns the store. It commits in groups (every request
//! that arrived while the previous transaction committed goes into the next one), hands
//! claimed jobs to the engine, fires schedules, prunes expired results and old finished
//! jobs, and flushes throttled progress. On a store of its own it never polls: it sleeps
//! until a request arrives or its next deadline (a due job, a schedule's tick, the next
//! prune). On a shared store it also heartbeats the leases of the jobs it runs, rescues
//! jobs whose lease expired, and looks for work other nodes added when the store hints
//! and at least every poll interval.
//!
//! `mod.rs` holds the shared state and the loop; `round.rs` turns requests and deadlines
//! into one transaction's ops; `commit.rs` acts on its outcome; `schedules.rs` fires
//! recurring schedules.

mod commit;
mod round;
mod schedules;

use std::boxed::Box;
use std::collections::HashMap;
use std::string::String;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::vec::Vec;

use event_listener::Event;

use super::job::{JobId, now_millis};
use super::reply::{Raw, ReplyTx};
use super::runner::Registry;
use super::store::{
    Finish, NewJob, Op, ScheduleRow, Sharing, Store, StoreError, StoreReader, UnixMillis,
};
use crate::TaskId;
use crate::engine::inner::{Inner, lock};
pub(crate) use schedules::due_of;

/// The most ops one transaction takes (the rest wait for the next).
const MAX_BATCH: usize = 4096;
/// How often progress is written, at most, per job (the last value wins).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often expired results are pruned (at once again while a pass finds its limit).
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// Expired results dropped per transaction.
const PRUNE_LIMIT: usize = 5000;
/// How long to wait before claiming again after the engine had no room.
const BUSY_BACKOFF: Duration = Duration::from_millis(5);
/// How long to wait before retrying writes that failed, at first (it doubles while
/// commits keep failing, up to [`RETRY_MAX`]).
const RETRY_WRITES: Duration = Duration::from_millis(100);
/// The longest wait between tries while the store fails.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Finished jobs deleted per transaction.
const PURGE_LIMIT: usize = 5000;
/// Expired leases rescued per transaction.
const RESCUE_LIMIT: usize = 5000;
/// The soonest a rescue looks again for a lease that has already run out.
const RESCUE_AGAIN: Duration = Duration::from_millis(10);

/// A request to the keeper.
pub(crate) enum Request {
    /// Insert jobs (one transaction); answers `Vec<Result<JobId, JobId>>` (a held unique
    /// key gives the holder's id).
    Insert {
        jobs: Vec<NewJob>,
        reply: ReplyTx<Raw>,
    },
    /// An attempt ended (from its hook).
    Finish {
        id: JobId,
        attempt: u32,
        finish: Finish,
        at: UnixMillis,
    },
    /// Cancel a pending job; answers `Option<JobState>` (its state before).
    Cancel { id: JobId, reply: ReplyTx<Raw> },
    /// Put a finished job back; answers `(Option<JobState>, bool)` (its state before,
    /// whether it is pending again).
    Retry { id: JobId, reply: ReplyTx<Raw> },
    /// Store a schedule; answers `()`.
    PutSchedule {
        schedule: Box<ScheduleRow>,
        reply: ReplyTx<Raw>,
    },
    /// Remove a schedule; answers `bool`.
    RemoveSchedule { name: String, reply: ReplyTx<Raw> },
    /// Another node may have added work (the store's hint): look for due jobs.
    Poke,
    /// Commit what is queued, then stop.
    Stop,
}

/// A job's progress not yet written: its attempt, percent and message.
type Progress = (u32, f64, Option<String>);

/// Counters of the keeper's work.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) ops: AtomicU64,
    pub(crate) enqueued: AtomicU64,
    pub(crate) claimed: AtomicU64,
    /// Claims that returned at least one job.
    pub(crate) claims: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) recovered: AtomicU64,
    pub(crate) rescued: AtomicU64,
    pub(crate) purged: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    /// Attempts stopped because their job was no longer this node's (cancelled or
    /// rescued elsewhere).
    pub(crate) lost: AtomicU64,
}

/// How the keeper is doing with its store, for [`DurableStats`](super::DurableStats).
#[derive(Default)]
pub(crate) struct Health {
    /// Commits failed in a row now (0: the last one succeeded).
    pub(crate) failing: AtomicU64,
    /// Whether this node leads (fires the schedules).
    pub(crate) leader: core::sync::atomic::AtomicBool,
}

/// What the engine, the manager and the keeper share of the durable layer.
pub(crate) struct Shared {
    tx: Sender<Request>,
    pub(crate) reader: Arc<dyn StoreReader>,
    /// Durable jobs in memory (claimed by this node) now.
    window: AtomicUsize,
    /// The most durable jobs in memory at once.
    pub(crate) capacity: usize,
    /// The jobs in memory: their tasks and attempts.
    live: Mutex<HashMap<JobId, (TaskId, u32)>>,
    /// Progress not yet written, by job.
    progress: Mutex<HashMap<JobId, Progress>>,
    /// Notified after every commit.
    pub(crate) committed: Event,
    pub(crate) counters: Counters,
    pub(crate) health: Health,
    pub(crate) registry: Registry,
    pub(crate) kinds: Arc<[String]>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    /// Sends `request` to the keeper; `false` if it has stopped.
    pub(crate) fn send(&self, request: Request) -> bool {
        self.tx.send(request).is_ok()
    }

    /// Submits a job's attempt with `submit` under the live map's lock, and records the
    /// task it became: a `cancel_job` (which reads the map under the same lock) never
    /// misses a job between its submission and its record.
    pub(crate) fn start_task(
        &self,
        id: JobId,
        attempt: u32,
        submit: impl FnOnce() -> Option<TaskId>,
    ) -> Option<TaskId> {
        let mut live = lock(&self.live);
        let task = submit()?;
        live.insert(id, (task, attempt));
        Some(task)
    }

    /// The task running job `id` in this process, if one is.
    pub(crate) fn task_of(&self, id: JobId) -> Option<TaskId> {
        lock(&self.live).get(&id).map(|(task, _)| *task)
    }

    /// The attempts running in this process now.
    fn live_attempts(&self) -> Vec<(JobId, u32)> {
        lock(&self.live)
            .iter()
            .map(|(id, (_, attempt))| (*id, *attempt))
            .collect()
    }

    /// Progress of job `id` not yet written (its live value in this process).
    pub(crate) fn live_progress(&self, id: JobId) -> Option<(f64, Option<String>)> {
        lock(&self.progress)
            .get(&id)
            .map(|(_, percent, message)| (*percent, message.clone()))
    }

    /// An attempt of job `id` ended: frees its place in memory and sends its end to be
    /// written.
    pub(crate) fn ended(&self, id: JobId, attempt: u32, finish: Finish, at: UnixMillis) {
        lock(&self.live).remove(&id);
        lock(&self.progress).remove(&id);
        self.window.fetch_sub(1, Ordering::AcqRel);
        // A stopped keeper leaves the row `Running`: the next start recovers it.
        self.send(Request::Finish {
            id,
            attempt,
            finish,
            at,
        });
    }

    /// Records progress of job `id`'s attempt, to be written (throttled).
    pub(crate) fn progress(&self, id: JobId, attempt: u32, percent: f64, message: String) {
        lock(&self.progress).insert(id, (attempt, percent, Some(message)));
    }

    /// Durable jobs in memory now.
    pub(crate) fn in_memory(&self) -> usize {
        self.window.load(Ordering::Acquire)
    }

    /// Stops the keeper after it committed what it was sent, and waits for it.
    pub(crate) fn stop(&self) {
        self.send(Request::Stop);
        if let Some(thread) = lock(&self.thread).take() {
            drop(thread.join());
        }
    }
}

/// Starts the keeper on a thread of its own for `store`: recovers what a previous run
/// left running, loads the schedules, and returns the shared state. Finished jobs are
/// deleted `retention` after they finished (once their result expired).
///
/// # Errors
///
/// What the store's recovery or schedule read returned, or the thread could not start.
pub(crate) fn start(
    mut store: Box<dyn Store>,
    registry: Registry,
    capacity: usize,
    retention: Duration,
    inner: &Arc<Inner>,
) -> Result<Arc<Shared>, StoreError> {
    let now = now_millis();
    let (tx, rx) = std::sync::mpsc::channel();
    let hint_tx = std::sync::Mutex::new(tx.clone());
    store.set_hint(Arc::new(move || {
        drop(lock(&hint_tx).send(Request::Poke));
    }));
    let recovered = store.recover(now)?;
    let sharing = store.sharing();
    let leader = store.lead()?;
    let schedules = if leader {
        store.schedules()?
    } else {
        Vec::new()
    };
    let kinds = registry.kinds();
    let shared = Arc::new(Shared {
        tx,
        reader: store.reader(),
        window: AtomicUsize::new(0),
        capacity,
        live: Mutex::new(HashMap::new()),
        progress: Mutex::new(HashMap::new()),
        committed: Event::new(),
        counters: Counters::default(),
        health: Health::default(),
        registry,
        kinds,
        thread: Mutex::new(None),
    });
    shared
        .counters
        .recovered
        .store(recovered, Ordering::Relaxed);
    shared.health.leader.store(leader, Ordering::Relaxed);
    let started = Instant::now();
    let mut keeper = Keeper {
        store,
        rx,
        shared: Arc::clone(&shared),
        inner: Arc::clone(inner),
        schedules,
        sharing,
        leader,
        retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
        maybe_pending: true,
        next_due: None,
        busy_until: None,
        next_prune: started,
        next_progress: started,
        next_poll: started,
        next_heartbeat: started,
        retry_writes: Vec::new(),
        retry_at: None,
        next_try: None,
        stopping: false,
    };
    let thread = std::thread::Builder::new()
        .name("errand-keeper".into())
        .spawn(move || keeper.run())
        .map_err(|error| {
            StoreError::new(
                super::store::StoreErrorKind::Io,
                std::format!("the keeper's thread could not start: {error}"),
            )
        })?;
    *lock(&shared.thread) = Some(thread);
    Ok(shared)
}

/// What a request in a batch is waiting for, to answer it after the commit.
enum Awaiting {
    /// Ops `range` are its inserts.
    Insert(core::ops::Range<usize>, ReplyTx<Raw>),
    Cancel(usize, ReplyTx<Raw>),
    Retry(usize, ReplyTx<Raw>),
    Put(ReplyTx<Raw>),
    Remove(usize, ReplyTx<Raw>),
    /// A write of the engine's own (a finish, a tick), retried if the commit fails.
    Own(usize),
}

/// The keeper thread's state.
struct Keeper {
    store: Box<dyn Store>,
    rx: Receiver<Request>,
    shared: Arc<Shared>,
    inner: Arc<Inner>,
    /// The schedules this node fires (none unless it leads).
    schedules: Vec<ScheduleRow>,
    sharing: Sharing,
    /// Whether this node fires the schedules.
    leader: bool,
    /// How long finished jobs are kept (their results as their TTL says).
    retention_ms: i64,
    /// Whether pending jobs may be due in the store (set by anything that makes one).
    maybe_pending: bool,
    /// When the next pending job the store knows of is due.
    next_due: Option<UnixMillis>,
    /// No claims before this (the engine had no room).
    busy_until: Option<Instant>,
    next_prune: Instant,
    next_progress: Instant,
    /// On a shared store: the next look for others' work, rescue and election.
    next_poll: Instant,
    /// On a shared store: the next heartbeat of this node's leases.
    next_heartbeat: Instant,
    /// Writes of our own whose commit failed, to try again.
    retry_writes: Vec<Op>,
    retry_at: Option<Instant>,
    /// While the store fails: when to try again (backing off).
    next_try: Option<Instant>,
    stopping: bool,
}

impl Keeper {
    fn run(&mut self) {
        loop {
            let mut requests = Vec::new();
            match self.next_request() {
                Some(request) => requests.push(request),
                None if self.stopping => {}
                None => {}
            }
            while requests.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(request) => requests.push(request),
                    Err(_) => break,
                }
            }
            let more = !requests.is_empty();
            self.round(requests);
            if self.stopping && !more {
                return;
            }
        }
    }

    /// Waits for a request until the next deadline; `None` at the deadline (or when every
    /// sender is gone, or stopping).
    fn next_request(&mut self) -> Option<Request> {
        if self.stopping {
            return self.rx.try_recv().ok();
        }
        match self.deadline() {
            None => self.rx.recv().ok(),
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait) {
                    Ok(request) => Some(request),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        self.stopping = true;
                        None
                    }
                }
            }
        }
    }

    /// When the keeper must act without a request: a due job it could claim, a schedule's
    /// tick, a prune, progress to write, writes to retry.
    fn deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let wall = now_millis();
        let in_millis =
            |at: UnixMillis| now + Duration::from_millis(at.saturating_sub(wall).max(0) as u64);
        let mut deadline = Some(self.next_prune);
        let mut earliest = |at: Option<Instant>| {
            if let Some(at) = at {
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        };
        // Claims only for kinds this node runs, never while stopping, and while the store
        // fails only at the next try.
        if self.room() > 0 && !self.shared.kinds.is_empty() && !self.stopping {
            let wanted = if self.maybe_pending {
                Some(self.busy_until.unwrap_or(now))
            } else {
                self.next_due.map(in_millis)
            };
            earliest(wanted.map(|at| self.next_try.map_or(at, |next| next.max(at))));
        }
        for schedule in &self.schedules {
            earliest(due_of(schedule).map(in_millis));
        }
        if !lock(&self.shared.progress).is_empty() {
            earliest(Some(self.next_progress));
        }
        if matches!(self.sharing, Sharing::Shared { .. }) && !self.stopping {
            earliest(Some(self.next_poll));
            if self.shared.in_memory() > 0 {
                earliest(Some(self.next_heartbeat));
            }
        }
        earliest(self.retry_at);
        deadline
    }

    /// Whether the store failed and its next try has not come: no claims until then
    /// (a node that cannot write does not take work).
    fn blocked(&self) -> bool {
        self.next_try.is_some_and(|next| Instant::now() < next)
    }

    /// Places for durable jobs in memory now.
    fn room(&self) -> usize {
        self.shared.capacity.saturating_sub(self.shared.in_memory())
    }

    /// Reserves a place in memory for a job, if there is one.
    fn reserve(&self) -> bool {
        let window = &self.shared.window;
        let mut current = window.load(Ordering::Acquire);
        loop {
            if current >= self.shared.capacity {
                return false;
            }
            match window.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}
