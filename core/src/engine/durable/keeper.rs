//! The keeper: the one thread that owns the store. It commits in groups (every request
//! that arrived while the previous transaction committed goes into the next one), hands
//! claimed jobs to the engine, fires schedules, prunes expired results and flushes
//! throttled progress. Nothing polls the database in a loop: the keeper sleeps until a
//! request arrives or its next deadline (a due job, a schedule's tick, the next prune).

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

use super::job::{JobId, JobState, now_millis};
use super::reply::{Raw, ReplyTx};
use super::runner::{Refused, Registry};
use super::store::{
    Finish, JobRow, NewJob, Op, ScheduleRow, Store, StoreError, StoreReader, UnixMillis,
};
use crate::TaskId;
use crate::engine::inner::{Inner, lock};

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
/// How long to wait before retrying writes that failed.
const RETRY_WRITES: Duration = Duration::from_millis(100);

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
    /// Store a schedule; answers `()`.
    PutSchedule {
        schedule: Box<ScheduleRow>,
        reply: ReplyTx<Raw>,
    },
    /// Remove a schedule; answers `bool`.
    RemoveSchedule { name: String, reply: ReplyTx<Raw> },
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
    pub(crate) finished: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) recovered: AtomicU64,
}

/// What the engine, the manager and the keeper share of the durable layer.
pub(crate) struct Shared {
    tx: Sender<Request>,
    pub(crate) reader: Arc<dyn StoreReader>,
    /// Durable jobs in memory (claimed by this node) now.
    window: AtomicUsize,
    /// The most durable jobs in memory at once.
    pub(crate) capacity: usize,
    /// The jobs in memory, and their tasks.
    live: Mutex<HashMap<JobId, TaskId>>,
    /// Progress not yet written, by job.
    progress: Mutex<HashMap<JobId, Progress>>,
    /// Notified after every commit.
    pub(crate) committed: Event,
    pub(crate) counters: Counters,
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
        submit: impl FnOnce() -> Option<TaskId>,
    ) -> Option<TaskId> {
        let mut live = lock(&self.live);
        let task = submit()?;
        live.insert(id, task);
        Some(task)
    }

    /// The task running job `id` in this process, if one is.
    pub(crate) fn task_of(&self, id: JobId) -> Option<TaskId> {
        lock(&self.live).get(&id).copied()
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
/// left running, loads the schedules, and returns the shared state.
///
/// # Errors
///
/// What the store's recovery or schedule read returned, or the thread could not start.
pub(crate) fn start(
    mut store: Box<dyn Store>,
    registry: Registry,
    capacity: usize,
    inner: &Arc<Inner>,
) -> Result<Arc<Shared>, StoreError> {
    let now = now_millis();
    let recovered = store.recover(now)?;
    let schedules = store.schedules()?;
    let (tx, rx) = std::sync::mpsc::channel();
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
        registry,
        kinds,
        thread: Mutex::new(None),
    });
    shared
        .counters
        .recovered
        .store(recovered, Ordering::Relaxed);
    let mut keeper = Keeper {
        store,
        rx,
        shared: Arc::clone(&shared),
        inner: Arc::clone(inner),
        schedules,
        maybe_pending: true,
        next_due: None,
        busy_until: None,
        next_prune: Instant::now(),
        next_progress: Instant::now(),
        retry_writes: Vec::new(),
        retry_at: None,
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
    schedules: Vec<ScheduleRow>,
    /// Whether pending jobs may be due in the store (set by anything that makes one).
    maybe_pending: bool,
    /// When the next pending job the store knows of is due.
    next_due: Option<UnixMillis>,
    /// No claims before this (the engine had no room).
    busy_until: Option<Instant>,
    next_prune: Instant,
    next_progress: Instant,
    /// Writes of our own whose commit failed, to try again.
    retry_writes: Vec<Op>,
    retry_at: Option<Instant>,
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
        // Claims only for kinds this node runs, and never while stopping.
        if self.room() > 0 && !self.shared.kinds.is_empty() && !self.stopping {
            if self.maybe_pending {
                earliest(Some(self.busy_until.unwrap_or(now)));
            } else {
                earliest(self.next_due.map(in_millis));
            }
        }
        for schedule in &self.schedules {
            earliest(due_of(schedule).map(in_millis));
        }
        if !lock(&self.shared.progress).is_empty() {
            earliest(Some(self.next_progress));
        }
        earliest(self.retry_at);
        deadline
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

    /// One transaction: the requests, plus what the keeper must do now.
    fn round(&mut self, requests: Vec<Request>) {
        let now = now_millis();
        let mut ops: Vec<Op> = core::mem::take(&mut self.retry_writes);
        let mut awaiting: Vec<Awaiting> = (0..ops.len()).map(Awaiting::Own).collect();
        self.retry_at = None;
        for request in requests {
            self.add(request, now, &mut ops, &mut awaiting);
        }
        self.add_schedules(now, &mut ops, &mut awaiting);
        self.add_upkeep(now, &mut ops);
        let claim = self.add_claim(now, &mut ops);
        if ops.is_empty() {
            return;
        }
        let result = self.store.commit(&mut ops);
        let counters = &self.shared.counters;
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => self.committed(ops, awaiting, claim),
            Err(error) => self.failed(ops, awaiting, &error),
        }
    }

    /// Turns `request` into ops (and what to answer).
    fn add(
        &mut self,
        request: Request,
        now: UnixMillis,
        ops: &mut Vec<Op>,
        awaiting: &mut Vec<Awaiting>,
    ) {
        match request {
            Request::Insert { jobs, reply } => {
                let start = ops.len();
                for mut job in jobs {
                    let runnable =
                        job.run_at <= now && self.shared.registry.runner(&job.kind).is_some();
                    job.claimed = runnable && self.reserve();
                    if !job.claimed {
                        self.note_pending(job.run_at, now);
                    }
                    ops.push(Op::Insert { job, reply: None });
                }
                awaiting.push(Awaiting::Insert(start..ops.len(), reply));
            }
            Request::Finish {
                id,
                attempt,
                finish,
                at,
            } => {
                if matches!(finish, Finish::Retry { .. } | Finish::Release) {
                    let run_at = match &finish {
                        Finish::Retry { run_at, .. } => *run_at,
                        _ => now,
                    };
                    self.note_pending(run_at, now);
                }
                awaiting.push(Awaiting::Own(ops.len()));
                ops.push(Op::Finish {
                    id,
                    attempt,
                    finish,
                    at,
                    reply: false,
                });
            }
            Request::Cancel { id, reply } => {
                awaiting.push(Awaiting::Cancel(ops.len(), reply));
                ops.push(Op::Cancel {
                    id,
                    at: now,
                    reply: None,
                });
            }
            Request::PutSchedule { schedule, reply } => {
                let name = schedule.name.clone();
                self.schedules.retain(|known| known.name != name);
                self.schedules.push((*schedule).clone());
                awaiting.push(Awaiting::Put(reply));
                ops.push(Op::PutSchedule { schedule });
            }
            Request::RemoveSchedule { name, reply } => {
                self.schedules.retain(|known| known.name != name);
                awaiting.push(Awaiting::Remove(ops.len(), reply));
                ops.push(Op::RemoveSchedule { name, reply: false });
            }
            Request::Stop => self.stopping = true,
        }
    }

    /// A pending job is due at `run_at`: claim it when it is.
    fn note_pending(&mut self, run_at: UnixMillis, now: UnixMillis) {
        if run_at <= now {
            self.maybe_pending = true;
        } else {
            self.next_due = Some(self.next_due.map_or(run_at, |due| due.min(run_at)));
        }
    }

    /// Fires every schedule tick that is due (the missed-tick policy decides how many).
    fn add_schedules(&mut self, now: UnixMillis, ops: &mut Vec<Op>, awaiting: &mut Vec<Awaiting>) {
        if self.stopping {
            return;
        }
        for index in 0..self.schedules.len() {
            let Some(due) = due_of(&self.schedules[index]) else {
                continue;
            };
            let previous_running = self.previous_running(self.schedules[index].last_job);
            let schedule = &mut self.schedules[index];
            if due > now {
                continue;
            }
            let interval = i64::try_from(schedule.interval_ms.max(1)).unwrap_or(i64::MAX);
            // The latest tick due now.
            let latest = u64::try_from((now - schedule.anchor) / interval).unwrap_or(0);
            let tick = if schedule.burst {
                schedule.next_tick
            } else {
                latest.max(schedule.next_tick)
            };
            let next_tick = tick.saturating_add(1);
            if !schedule.overlap && previous_running {
                // The previous tick's job has not finished: skip this one.
                schedule.next_tick = next_tick;
                awaiting.push(Awaiting::Own(ops.len()));
                ops.push(Op::PutSchedule {
                    schedule: Box::new(schedule.clone()),
                });
                continue;
            }
            let mut job = schedule.job.clone();
            job.run_at = schedule.anchor.saturating_add(
                i64::try_from(tick)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(interval),
            );
            job.created_at = now;
            job.unique_key = Some(std::format!("errand-schedule:{}:{tick}", schedule.name));
            job.schedule = Some(schedule.name.clone());
            job.claimed = false;
            schedule.next_tick = next_tick;
            schedule.fired = schedule.fired.saturating_add(1);
            self.maybe_pending = true;
            awaiting.push(Awaiting::Own(ops.len()));
            ops.push(Op::FireSchedule {
                name: schedule.name.clone(),
                tick,
                next_tick,
                job,
                reply: None,
            });
        }
    }

    /// Whether the job a schedule's previous tick made has not finished.
    fn previous_running(&self, last: Option<JobId>) -> bool {
        let Some(last) = last else {
            return false;
        };
        if self.shared.task_of(last).is_some() {
            return true;
        }
        matches!(self.shared.reader.job(last), Ok(Some(row)) if !row.state.is_finished())
    }

    /// Progress to write, and a prune pass, when their time has come.
    fn add_upkeep(&mut self, now: UnixMillis, ops: &mut Vec<Op>) {
        let instant = Instant::now();
        if instant >= self.next_progress {
            let dirty: Vec<_> = lock(&self.shared.progress)
                .iter()
                .map(|(id, (attempt, percent, message))| (*id, *attempt, *percent, message.clone()))
                .collect();
            for (id, attempt, percent, message) in dirty {
                ops.push(Op::Progress {
                    id,
                    attempt,
                    percent,
                    message,
                });
            }
            self.next_progress = instant + PROGRESS_EVERY;
        }
        if instant >= self.next_prune && !self.stopping {
            ops.push(Op::Prune {
                now,
                limit: PRUNE_LIMIT,
                reply: 0,
            });
            self.next_prune = instant + PRUNE_EVERY;
        }
    }

    /// A claim of due jobs, if there is room and some may be due. The index of its op.
    fn add_claim(&mut self, now: UnixMillis, ops: &mut Vec<Op>) -> Option<usize> {
        if self.stopping || self.shared.kinds.is_empty() {
            return None;
        }
        if self.busy_until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        let due = self.maybe_pending || self.next_due.is_some_and(|due| due <= now);
        let room = self.room();
        if !due || room == 0 {
            return None;
        }
        // Reserve the places now; the claim returns at most this many.
        let reserved = (0..room).take_while(|_| self.reserve()).count();
        if reserved == 0 {
            return None;
        }
        self.maybe_pending = false;
        ops.push(Op::Claim {
            now,
            limit: reserved,
            kinds: Arc::clone(&self.shared.kinds),
            reply: Vec::new(),
            next_due: None,
        });
        Some(ops.len() - 1)
    }

    /// After a commit: answers, starts the claimed jobs, learns what is due next.
    fn committed(&mut self, ops: Vec<Op>, awaiting: Vec<Awaiting>, claim: Option<usize>) {
        let mut ops: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
        let counters = &self.shared.counters;
        let mut to_start: Vec<JobRow> = Vec::new();
        if let Some(index) = claim {
            if let Some(Op::Claim {
                reply,
                limit,
                next_due,
                ..
            }) = ops[index].take()
            {
                // Places reserved and not claimed go back.
                self.shared
                    .window
                    .fetch_sub(limit - reply.len(), Ordering::AcqRel);
                if reply.len() == limit {
                    self.maybe_pending = true;
                }
                self.next_due = next_due;
                counters
                    .claimed
                    .fetch_add(reply.len() as u64, Ordering::Relaxed);
                to_start.extend(reply);
            }
        }
        for waiting in awaiting {
            match waiting {
                Awaiting::Insert(range, reply) => {
                    let mut ids = Vec::with_capacity(range.len());
                    for index in range {
                        if let Some(Op::Insert {
                            job,
                            reply: Some(id),
                        }) = ops[index].take()
                        {
                            if job.claimed {
                                match id {
                                    Ok(id) => to_start.push(claimed_row(id, job)),
                                    // A held key: nothing was inserted; free the place.
                                    Err(_) => {
                                        self.shared.window.fetch_sub(1, Ordering::AcqRel);
                                    }
                                }
                            }
                            if id.is_ok() {
                                counters.enqueued.fetch_add(1, Ordering::Relaxed);
                            }
                            ids.push(id);
                        }
                    }
                    reply.send(Box::new(ids));
                }
                Awaiting::Cancel(index, reply) => {
                    if let Some(Op::Cancel { reply: state, .. }) = ops[index].take() {
                        reply.send(Box::new(state));
                    }
                }
                Awaiting::Put(reply) => reply.send(Box::new(())),
                Awaiting::Remove(index, reply) => {
                    if let Some(Op::RemoveSchedule { reply: existed, .. }) = ops[index].take() {
                        reply.send(Box::new(existed));
                    }
                }
                Awaiting::Own(index) => match ops[index].take() {
                    Some(Op::Finish { reply, .. }) => {
                        counters.finished.fetch_add(1, Ordering::Relaxed);
                        if !reply {
                            counters.stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Op::FireSchedule {
                        name,
                        reply: Some(id),
                        ..
                    }) => {
                        let id = id.unwrap_or_else(|existing| existing);
                        if let Some(schedule) = self.schedules.iter_mut().find(|s| s.name == name) {
                            schedule.last_job = Some(id);
                        }
                    }
                    _ => {}
                },
            }
        }
        // A prune pass that hit its limit left more expired results: the next round prunes
        // again, so pruning keeps up with any completion rate.
        let more_to_prune = ops
            .iter()
            .flatten()
            .any(|op| matches!(op, Op::Prune { limit, reply, .. } if *reply >= *limit));
        if more_to_prune {
            self.next_prune = Instant::now();
        }
        self.shared.committed.notify(usize::MAX);
        self.start_all(to_start);
    }

    /// Hands claimed jobs to the engine; a payload that does not decode fails its job, a
    /// full engine gives the rest back.
    fn start_all(&mut self, rows: Vec<JobRow>) {
        let now = now_millis();
        for row in rows {
            let Some(runner) = self.shared.registry.runner(&row.kind).cloned() else {
                self.give_back(&row, Finish::Release, now);
                continue;
            };
            match runner.start(&self.inner, &self.shared, &row) {
                Ok(()) => {}
                Err(Refused::Decode(error)) => self.give_back(&row, Finish::Failed { error }, now),
                Err(Refused::Busy) => {
                    self.busy_until = Some(Instant::now() + BUSY_BACKOFF);
                    self.give_back(&row, Finish::Release, now);
                }
            }
        }
    }

    /// Ends a claimed job that did not start (it never entered the engine).
    fn give_back(&mut self, row: &JobRow, finish: Finish, now: UnixMillis) {
        self.shared.window.fetch_sub(1, Ordering::AcqRel);
        if matches!(finish, Finish::Release) {
            self.maybe_pending = true;
        }
        self.retry_writes.push(Op::Finish {
            id: row.id,
            attempt: row.attempt,
            finish,
            at: now,
            reply: false,
        });
        self.retry_at = Some(Instant::now());
    }

    /// After a failed commit: every waiter learns the error; the engine's own writes are
    /// tried again shortly (a finish lost for good leaves its row `Running`, which the
    /// next start recovers).
    fn failed(&mut self, ops: Vec<Op>, awaiting: Vec<Awaiting>, error: &StoreError) {
        self.shared
            .counters
            .failed_commits
            .fetch_add(1, Ordering::Relaxed);
        let mut ops: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
        for op in ops.iter_mut() {
            match op {
                Some(Op::Claim { limit, .. }) => {
                    self.shared.window.fetch_sub(*limit, Ordering::AcqRel);
                    self.maybe_pending = true;
                }
                Some(Op::Insert { job, .. }) if job.claimed => {
                    self.shared.window.fetch_sub(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
        for waiting in awaiting {
            match waiting {
                Awaiting::Insert(_, reply)
                | Awaiting::Cancel(_, reply)
                | Awaiting::Put(reply)
                | Awaiting::Remove(_, reply) => reply.send(Box::new(error.clone())),
                Awaiting::Own(index) => {
                    if let Some(op @ Op::Finish { .. }) = ops[index].take() {
                        self.retry_writes.push(op);
                    }
                }
            }
        }
        if !self.retry_writes.is_empty() && !self.stopping {
            self.retry_at = Some(Instant::now() + RETRY_WRITES);
        }
        // Schedules advanced in memory for ticks that did not commit: read them again.
        if let Ok(schedules) = self.store.schedules() {
            self.schedules = schedules;
        }
    }
}

/// When a schedule's next tick is due (`None` once it has fired its last).
fn due_of(schedule: &ScheduleRow) -> Option<UnixMillis> {
    if schedule.max_ticks.is_some_and(|max| schedule.fired >= max) {
        return None;
    }
    let interval = i64::try_from(schedule.interval_ms.max(1)).unwrap_or(i64::MAX);
    let due = schedule.anchor.saturating_add(
        i64::try_from(schedule.next_tick)
            .unwrap_or(i64::MAX)
            .saturating_mul(interval),
    );
    match schedule.until {
        Some(until) if due > until => None,
        _ => Some(due),
    }
}

/// The row of a job inserted already claimed (attempt 1, running).
fn claimed_row(id: JobId, job: NewJob) -> JobRow {
    JobRow {
        id,
        kind: job.kind.into_owned(),
        payload: job.payload,
        state: JobState::Running,
        priority: job.priority,
        run_at: job.run_at,
        attempt: 1,
        failures: 0,
        retry: job.retry,
        timeout_ms: job.timeout_ms,
        result_ttl_ms: job.result_ttl_ms,
        unique_key: job.unique_key,
        schedule: job.schedule,
        progress: 0.0,
        message: None,
        error: None,
        result: None,
        created_at: job.created_at,
        started_at: Some(job.created_at),
        finished_at: None,
        expires_at: None,
    }
}
