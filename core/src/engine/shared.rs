//! The engine's shared state and every task operation: submit, claim, finish (with
//! retries), cancel, timers, finalize, and the queries. Runtime-free: the loops in
//! `driver.rs` call in here.

use std::any::Any;
use std::boxed::Box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::string::{String, ToString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crossbeam_utils::CachePadded;
use event_listener::{Event, EventListener, IntoNotification, Listener};

use super::context::{Context, Seat};
use super::error::{CancelError, SubmitError, TaskError};
use super::handle::TaskHandle;
use super::history::History;
use super::job::{Job, JobRef, Outcome, Shell, Task};
use super::record::{Cold, Extra, Record};
use super::results::Results;
use super::snapshot::{
    Analytics, Clock, Counts, Finished, LevelLatency, Performance, QueueSizes, TaskInfo,
};
use super::spec::{Limit, MissedTicks, Overlap, Spec, Start, Store};
use crate::{
    BoxedPriorityQueue, Counter, Entry, Event as TaskEvent, Gate, Histogram, HistogramSnapshot,
    Level, MemoryBudget, Mode, Notify, Parked, Parking, Priority, Reservation, RetryDecision,
    RetryPolicy, Settle, SettleWaiter, SlotTable, SpinToken, SplitMix64, State, TaskId, TimerEntry,
    TimerWheel,
};

/// Bytes a task is charged beyond its one allocation's size (the job, its completion and
/// an async attempt's future): the allocator's own header and rounding, and the task's
/// share of the engine's fixed per-slot tables, rounded up. Documented on
/// `Builder::memory_pool_mb`.
pub(crate) const TASK_OVERHEAD: usize = 128;

/// The engine's counters and histograms (see [`Counts`] and [`Analytics`]).
///
/// The manager's counters. What a worker bumps on every task is sharded by thread
/// ([`Shard`]): two workers bumping one counter would pass its cache line back and forth
/// on every task (about 30 ns each on the 2-core machine of BENCHMARKS.md, and a worker
/// bumps four such words per task). Readers sum the shards. Submissions are counted by
/// the settling count (`Inner::unfinished`) and the running count, whose peak must be
/// exact, is one word ([`Tally`]).
struct Stats {
    shards: Box<[CachePadded<Shard>]>,
}

/// The words that workers write for every task, on one line of their own: a worker
/// starting and ending a task writes them in a row, so the line moves to its core once
/// per step instead of once per word.
struct Tally {
    /// Attempts running now.
    running: AtomicUsize,
    /// The most attempts ever running at once.
    peak: AtomicUsize,
    /// Tasks recorded in the history so far (the next entry's sequence number).
    recorded: AtomicUsize,
}

/// One thread's share of the counters (see [`Stats`]).
#[derive(Default)]
struct Shard {
    executed: Counter,
    succeeded: Counter,
    failed: Counter,
    retried: Counter,
    cancelled: Counter,
    timed_out: Counter,
    stopped: Counter,
    panicked: Counter,
    /// Attempt durations, when profiling.
    execution: Histogram,
    /// Ready-to-start latency per level (indexed by `Level::index`), when profiling.
    dispatch: [Histogram; Level::COUNT],
}

impl Stats {
    /// Shards: a power of two, at least the workers plus the timer driver and one
    /// submitting thread, so that threads rarely share one (at most 16: ~40 KB each).
    fn new(workers: usize) -> Self {
        let shards = (workers + 2).next_power_of_two().min(16);
        Self {
            shards: (0..shards).map(|_| CachePadded::default()).collect(),
        }
    }

    /// The calling thread's shard: threads are numbered on first use, round-robin.
    #[inline]
    fn mine(&self) -> &Shard {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        std::thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let index = INDEX.with(|index| *index);
        &self.shards[index & (self.shards.len() - 1)]
    }

    /// A counter summed over the shards.
    fn sum(&self, counter: impl Fn(&Shard) -> &Counter) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(shard).get() as u64)
            .sum()
    }

    /// A histogram merged over the shards.
    fn merged(&self, histogram: impl Fn(&Shard) -> &Histogram) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot::new();
        for shard in self.shards.iter() {
            merged.merge(&histogram(shard).snapshot());
        }
        merged
    }
}

/// How a task is being ended from outside its worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A user's cancel (counted as cancelled).
    Cancel,
    /// `stop_all` or a shutdown (counted as stopped).
    Shutdown,
}

/// Settings fixed at build time.
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) mode: Mode,
    pub(crate) history: usize,
    pub(crate) memory_pool: usize,
    pub(crate) profiling: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    pub(crate) result_ttl: Duration,
    pub(crate) seed: u64,
}

/// What a timer entry of a slot means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A waiting (`Scheduled`/`Retrying`) task becomes `Due`.
    Wake,
    /// A running attempt's timeout.
    Timeout,
}

/// The timer wheel (ticks are milliseconds since the manager's epoch) and what each
/// slot's entry means. One entry per slot suffices: a slot never waits for a delay and
/// runs at once.
struct Timers {
    wheel: TimerWheel<Box<[TimerEntry]>>,
    kinds: Box<[Kind]>,
}

/// A task a worker claimed: it won `Start` and owns the job until it applies an end event.
pub(crate) struct Claimed {
    pub(crate) meta: AttemptMeta,
    pub(crate) job: JobRef,
    /// The attempt's context: lent to a blocking job, given to an async job's future
    /// when it starts.
    pub(crate) ctx: Option<Context>,
}

/// What the engine needs to end an attempt, apart from its job.
#[derive(Clone, Copy)]
pub(crate) struct AttemptMeta {
    pub(crate) id: TaskId,
    /// Which attempt this is (1 for the first).
    attempt: u32,
    started: Instant,
    /// Whether a timeout timer was armed for this attempt.
    timed: bool,
    /// Whether the task is recurring (it has a schedule to consult after a success).
    recurring: bool,
    /// Where a success's value is stored, if it is.
    store: Option<Store>,
}

/// Everything the manager, its handles and its workers share.
pub(crate) struct Inner {
    records: SlotTable<Record, Box<[Entry<Record>]>>,
    queue: BoxedPriorityQueue<TaskId>,
    /// Idle workers, the event they wait on (notified when work arrives while one is
    /// idle, and when workers must stop) and the stop flag: workers exit once stopping
    /// and the queue is empty; the timer driver exits.
    parking: Parking<Event>,
    timers: Mutex<Timers>,
    /// Wakes the timer driver: an earlier deadline, or stopping.
    timer_event: Event,
    results: Results,
    budget: Arc<MemoryBudget>,
    /// Submissions pass it; `stop_accepting` closes it and waits until it is drained.
    admission: Gate,
    shutdown_initiated: AtomicBool,
    /// Accepted tasks that have not reached a terminal state, and the event notified when
    /// they drop to zero (and when the slot table empties). Its count of accepted tasks
    /// is also the `submitted` statistic.
    unfinished: Settle<Event>,
    /// The running count and the history's cursor (see [`Tally`]).
    tally: CachePadded<Tally>,
    history: History,
    stats: Stats,
    /// The previous `performance` sample: when, process CPU time, attempts executed.
    sample: Mutex<(Instant, Option<Duration>, u64)>,
    pub(crate) clock: Clock,
    pub(crate) config: Config,
}

/// A slot and budget charge taken for a task that is not published yet.
struct Prepared<'a> {
    id: TaskId,
    record: &'a Record,
    charge: Reservation<&'a MemoryBudget>,
}

/// Why preparing a task failed (turned into a [`SubmitError`] carrying the task).
enum Refusal {
    Full,
    Budget { requested: usize },
    ShuttingDown,
    Invalid(&'static str),
}

impl Refusal {
    fn into_error<T>(self, task: T, inner: &Inner) -> SubmitError<T> {
        match self {
            Refusal::Full => SubmitError::QueueFull {
                task,
                capacity: inner.config.capacity,
            },
            Refusal::Budget { requested } => SubmitError::BudgetExceeded {
                task,
                requested,
                budget: inner.budget.limit(),
            },
            Refusal::ShuttingDown => SubmitError::ShuttingDown { task },
            Refusal::Invalid(reason) => SubmitError::InvalidSpec {
                task,
                reason: reason.into(),
            },
        }
    }
}

/// Where a recurring task goes after a successful run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// It is over: it succeeds.
    Done,
    /// Its next run is already due.
    Now,
    /// Its next run is due then.
    At(Instant),
}

/// An instant far enough ahead to mean "never" (about 136 years).
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(u64::from(u32::MAX))
}

/// Milliseconds in `d`, rounded up, saturating.
fn ceil_ms(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl Inner {
    pub(crate) fn new(config: Config) -> Self {
        let clock = Clock::new();
        let capacity = config.capacity;
        Self {
            records: SlotTable::with_capacity(capacity, |_| Record::new(clock.stamp(clock.epoch))),
            queue: BoxedPriorityQueue::with_capacity(capacity, config.mode),
            parking: Parking::new(Event::new()),
            timers: Mutex::new(Timers {
                wheel: TimerWheel::with_capacity(capacity),
                kinds: (0..capacity).map(|_| Kind::Wake).collect(),
            }),
            timer_event: Event::new(),
            results: Results::default(),
            budget: Arc::new(MemoryBudget::new(config.memory_pool)),
            admission: Gate::new(),
            shutdown_initiated: AtomicBool::new(false),
            unfinished: Settle::new(Event::new()),
            tally: CachePadded::new(Tally {
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                recorded: AtomicUsize::new(0),
            }),
            history: History::new(config.history),
            stats: Stats::new(config.workers),
            sample: Mutex::new((clock.epoch, super::process::cpu_time(), 0)),
            clock,
            config,
        }
    }

    pub(crate) fn record(&self, id: TaskId) -> Option<&Record> {
        self.records.get(id)
    }

    fn lock_timers(&self) -> MutexGuard<'_, Timers> {
        // Timer state is only changed through the wheel's own methods, which leave it
        // consistent; a panic elsewhere cannot leave it half-updated.
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Task `id`'s jitter source: the manager's seed mixed with the slot and generation.
    fn task_rng(&self, id: TaskId) -> SplitMix64 {
        SplitMix64::new(
            self.config.seed ^ (u64::from(id.index()) << 32 | u64::from(id.generation())),
        )
    }

    /// Nanoseconds since the epoch (saturating).
    fn now_ns(&self) -> u64 {
        u64::try_from(self.clock.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The wheel tick at which `at` has passed: rounded up, so a timer never fires early.
    fn tick_at(&self, at: Instant) -> u64 {
        ceil_ms(at.saturating_duration_since(self.clock.epoch))
    }

    /// The current wheel tick (rounded down).
    fn now_tick(&self) -> u64 {
        u64::try_from(self.clock.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant of wheel tick `tick`.
    fn tick_instant(&self, tick: u64) -> Instant {
        self.clock
            .epoch
            .checked_add(Duration::from_millis(tick))
            .unwrap_or_else(|| self.clock.epoch + Duration::from_secs(u64::from(u32::MAX)))
    }

    // ----- submission ---------------------------------------------------------------

    /// Accepts `task` or gives it back.
    pub(crate) fn submit<J: Job>(
        self: &Arc<Self>,
        task: Task<J>,
    ) -> Result<TaskHandle<J::Output>, SubmitError<Task<J>>> {
        // Held until the task is published, so `stop_accepting` waits for it (gate rules).
        let Some(_pass) = self.admission.enter() else {
            return Err(Refusal::ShuttingDown.into_error(task, self));
        };
        match self.prepare(&task) {
            Ok(prepared) => Ok(self.publish(prepared, task)),
            Err(refusal) => Err(refusal.into_error(task, self)),
        }
    }

    /// Accepts every task of `tasks`, or none of them (all given back).
    #[allow(
        clippy::type_complexity,
        reason = "the error names the tasks it gives back"
    )]
    pub(crate) fn submit_batch<J: Job>(
        self: &Arc<Self>,
        tasks: Vec<Task<J>>,
    ) -> Result<Vec<TaskHandle<J::Output>>, SubmitError<Vec<Task<J>>>> {
        let Some(_pass) = self.admission.enter() else {
            return Err(Refusal::ShuttingDown.into_error(tasks, self));
        };
        let mut prepared = Vec::with_capacity(tasks.len());
        let mut refusal = None;
        for task in &tasks {
            match self.prepare(task) {
                Ok(one) => prepared.push(one),
                Err(why) => {
                    refusal = Some(why);
                    break;
                }
            }
        }
        match refusal {
            Some(why) => {
                // Nothing was published: give the slots back (their budget charges drop
                // with `prepared`).
                for one in &prepared {
                    self.records
                        .release(one.id)
                        .expect("an unpublished slot is ours to release");
                }
                // A budget refusal names what the whole batch needed.
                let why = match why {
                    Refusal::Budget { .. } => Refusal::Budget {
                        requested: tasks.iter().map(|task| Self::charge_of(task)).sum(),
                    },
                    other => other,
                };
                Err(why.into_error(tasks, self))
            }
            None => Ok(prepared
                .into_iter()
                .zip(tasks)
                .map(|(one, task)| self.publish(one, task))
                .collect()),
        }
    }

    fn charge_of<J: Job>(_task: &Task<J>) -> usize {
        J::erased_size() + TASK_OVERHEAD
    }

    /// Checks `task` and takes its budget charge and slot, publishing nothing.
    fn prepare<J: Job>(&self, task: &Task<J>) -> Result<Prepared<'_>, Refusal> {
        let default = Spec::default();
        let spec = task.spec.as_deref().unwrap_or(&default);
        if spec.timeout == Some(Duration::ZERO) {
            return Err(Refusal::Invalid("the timeout is 0 s"));
        }
        if spec.store.and_then(|store| store.ttl) == Some(Duration::ZERO) {
            return Err(Refusal::Invalid("the result ttl is 0 s"));
        }
        if let Some(every) = spec.every {
            if every.interval.is_zero() {
                return Err(Refusal::Invalid("the interval is 0 s"));
            }
            if every.limit == Limit::Runs(0) {
                return Err(Refusal::Invalid("a recurring task set to run 0 times"));
            }
        }
        let requested = Self::charge_of(task);
        let charge = self
            .budget
            .try_reserve(requested)
            .map_err(|_| Refusal::Budget { requested })?;
        let (id, record) = self.records.acquire().map_err(|_| Refusal::Full)?;
        Ok(Prepared { id, record, charge })
    }

    /// Makes a prepared task live: stores its job and settings, then queues it or arms
    /// its start timer.
    fn publish<J: Job>(
        self: &Arc<Self>,
        prepared: Prepared<'_>,
        task: Task<J>,
    ) -> TaskHandle<J::Output> {
        let Prepared { id, record, charge } = prepared;
        let Task {
            job,
            priority,
            spec,
        } = task;
        let spec = spec.map_or_else(Spec::default, |spec| *spec);
        let (job, completion) = job.erase();
        let now = Instant::now();
        let start = match spec.start {
            Start::Now => None,
            Start::After(delay) => Some(now.checked_add(delay).unwrap_or_else(|| far_future(now))),
            Start::At(at) => (at > now).then_some(at),
        };
        // Written in place under the slot's lock: every field, so nothing of the slot's
        // previous task survives.
        let rare = spec.on_error.is_some()
            || spec.store.is_some()
            || spec.every.is_some()
            || spec.retry.is_some();
        let extra = rare.then(|| {
            Box::new(Extra {
                on_error: spec.on_error,
                store: spec.store,
                every: spec.every,
                ..Extra::new(
                    spec.retry.unwrap_or(self.config.retry),
                    self.task_rng(id),
                    start.unwrap_or(now),
                )
            })
        });
        record.reset(priority, |cold| {
            *cold = Cold {
                label: spec.label,
                priority,
                // Given back by `finalize`, through the budget this engine owns.
                charge: charge.detach(),
                extra,
                ..Cold::empty(self.clock.stamp(now))
            };
            cold.set_timeout(spec.timeout.or(self.config.timeout));
        });
        // Settle rule 1: counted before it is published.
        self.unfinished.add();
        let start = start.map(|at| self.tick_at(at));
        match start {
            None => {
                // SAFETY: rule 2, we acquired the slot and have not published it.
                unsafe { record.state.publish(job, State::Queued) };
                self.enqueue(id, record);
            }
            Some(tick) => {
                // SAFETY: rule 2, as above.
                unsafe { record.state.publish(job, State::Scheduled) };
                // Rule 1: the token passes to the timer entry.
                self.arm(id, tick, Kind::Wake);
            }
        }
        TaskHandle::new(id, completion, Arc::clone(self))
    }

    /// Pushes a `Queued` task's id (handing its token to the queue, rule 1) and wakes an
    /// idle worker if there is one.
    fn enqueue(&self, id: TaskId, record: &Record) {
        if self.config.profiling {
            record.ready_at.store(self.now_ns(), Ordering::Relaxed);
        }
        let priority = Priority(record.priority.load(Ordering::Relaxed));
        if self.queue.push(id, priority).is_err() {
            // Each live task has at most one queue entry and a level holds as many entries
            // as there are slots: a push cannot find its level full.
            unreachable!("a queue level holds as many entries as there are task slots");
        }
        // Parking rule 2: either the idle worker's re-check sees this push, or this sees
        // the worker idle and notifies it.
        self.parking.notify_work();
    }

    /// Arms `id`'s timer at wheel tick `tick`, waking the driver if it is now the earliest.
    fn arm(&self, id: TaskId, tick: u64, kind: Kind) {
        let index = id.index() as usize;
        let mut timers = self.lock_timers();
        let earliest = timers.wheel.next_deadline().is_none_or(|next| tick < next);
        timers.kinds[index] = kind;
        timers
            .wheel
            .insert(index, tick)
            .expect("every slot index has a timer entry");
        drop(timers);
        if earliest {
            self.timer_event.notify(1);
        }
    }

    // ----- workers ------------------------------------------------------------------

    /// Takes the next startable task off the queue, finalizing cancelled entries on the
    /// way; `None` when the queue is empty.
    pub(crate) fn claim(&self, seat: &Seat) -> Option<Claimed> {
        loop {
            let (id, level) = self.queue.pop()?;
            // Rule 1: the queue entry is the task's token, so the slot is still this task's.
            let record = self.records.get(id).expect("a queued task's slot is live");
            // Rule 3: winning `Start` hands us the job (handoff rule 2).
            let Ok(taken) = record.state.apply(TaskEvent::Start) else {
                // Cancelled while queued: the canceller completed the handle; we hold the
                // token, so we finalize (rule 1).
                self.finalize(id, record);
                continue;
            };
            let started = Instant::now();
            // One clock reading for the dispatch latency and the start stamp.
            let started_stamp = self.clock.stamp(started);
            if self.config.profiling {
                let ready = record.ready_at.load(Ordering::Relaxed);
                let now_ns = started_stamp.nanos();
                self.stats.mine().dispatch[level.index()].record(now_ns.saturating_sub(ready));
            }
            let job = taken.value.expect("a queued task has its job");
            // The attempt's one look at the cold data: what its end will need is copied out
            // (none of it changes while the task lives).
            let (attempt, timeout, recurring, store) = {
                let mut cold = record.lock();
                cold.attempt += 1;
                cold.started_at = Some(started_stamp);
                let (recurring, store) = cold
                    .extra
                    .as_ref()
                    .map_or((false, None), |extra| (extra.every.is_some(), extra.store));
                (cold.attempt, cold.timeout(), recurring, store)
            };
            let timed = match timeout {
                Some(timeout) => {
                    let tick = self.tick_at(started).saturating_add(ceil_ms(timeout));
                    self.arm(id, tick, Kind::Timeout);
                    true
                }
                None => false,
            };
            let running = self.tally.running.fetch_add(1, Ordering::Relaxed) + 1;
            // Most starts set no new peak: a load spares the shared line a write.
            if running > self.tally.peak.load(Ordering::Relaxed) {
                self.tally.peak.fetch_max(running, Ordering::Relaxed);
            }
            let ctx = Context::new(Arc::clone(seat), id, attempt);
            return Some(Claimed {
                meta: AttemptMeta {
                    id,
                    attempt,
                    started,
                    timed,
                    recurring,
                    store,
                },
                job,
                ctx: Some(ctx),
            });
        }
    }

    /// Ends an attempt: decides about a failure (retry or not), applies the result to the
    /// state cell (or learns what beat it), publishes it to the handle, finalizes. The
    /// task's cell, if it ended and nothing else refers to it, is for the caller to free.
    pub(crate) fn finish(&self, claimed: Claimed, outcome: Outcome) -> Option<Shell> {
        let Claimed { meta, job, ctx } = claimed;
        drop(ctx);
        let AttemptMeta {
            id,
            attempt,
            started,
            timed,
            recurring,
            store,
        } = meta;
        self.end_attempt(id, started, timed, &outcome);
        let record = self.records.get(id).expect("a running task's slot is live");
        if record.state.load() != State::Running {
            // A cancel or timeout already ended the task (the attempt saw its signal):
            // no retry decision, no next run; `conclude` learns the winner's state.
            let event = if outcome.is_ok() {
                TaskEvent::Succeed
            } else {
                TaskEvent::Fail
            };
            return self.conclude(id, record, Some(job), event, outcome, None);
        }
        match outcome {
            Ok(()) => match if recurring {
                self.next_run(record, started)
            } else {
                Next::Done
            } {
                Next::Done => {
                    self.conclude(id, record, Some(job), TaskEvent::Succeed, Ok(()), store)
                }
                next => {
                    self.reschedule(id, record, job, next);
                    None
                }
            },
            Err(error) => match self.decide(id, record, &error, attempt) {
                Some(delay) => {
                    self.retry(id, record, job, delay, error);
                    None
                }
                None => self.conclude(id, record, Some(job), TaskEvent::Fail, Err(error), None),
            },
        }
    }

    /// Ends an attempt whose job the runtime lost (it dropped the blocking closure
    /// unrun): the job's drop resolved the handle as cancelled; the task fails.
    pub(crate) fn finish_lost(&self, meta: AttemptMeta) {
        let AttemptMeta {
            id, started, timed, ..
        } = meta;
        let error = TaskError::failed("the runtime dropped the blocking job without running it");
        self.end_attempt(id, started, timed, &Ok(()));
        let record = self.records.get(id).expect("a running task's slot is live");
        drop(self.conclude(id, record, None, TaskEvent::Fail, Err(error), None));
    }

    /// Bookkeeping common to every attempt's end.
    fn end_attempt(&self, id: TaskId, started: Instant, timed: bool, outcome: &Outcome) {
        if timed {
            // The timeout entry is ours to remove before the slot changes hands again.
            self.lock_timers().wheel.cancel(id.index() as usize);
        }
        self.tally.running.fetch_sub(1, Ordering::Relaxed);
        self.stats.mine().executed.inc();
        if self.config.profiling {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stats.mine().execution.record(ns);
        }
        if let Err(error) = outcome {
            if error.panic_message().is_some() {
                self.stats.mine().panicked.inc();
            }
        }
    }

    /// Whether (and after how long) a failed attempt is retried: the error handler's
    /// decision (if any), bounded by the retry policy.
    fn decide(
        &self,
        id: TaskId,
        record: &Record,
        error: &TaskError,
        attempt: u32,
    ) -> Option<Duration> {
        let handler = {
            let mut cold = record.lock();
            cold.error = Some(error.to_string().into());
            cold.extra.as_ref().and_then(|extra| extra.on_error.clone())
        };
        let decision = match handler {
            None => RetryDecision::Retry,
            // User code: never under a lock, and a panic in it is the task's failure.
            Some(handler) => match catch_unwind(AssertUnwindSafe(|| handler(id, error, attempt))) {
                Ok(decision) => decision,
                Err(payload) => {
                    self.stats.mine().panicked.inc();
                    let message = panic_text(&*payload);
                    record.lock().error =
                        Some(std::format!("{error}; the error handler panicked: {message}").into());
                    RetryDecision::Fail
                }
            },
        };
        if decision == RetryDecision::Fail {
            return None;
        }
        let mut cold = record.lock();
        if cold.extra.is_none() {
            if self.config.retry.max_retries() == 0 {
                return None;
            }
            // A plain task under a retrying default: its retry state starts now.
            let started = self.clock.instant(cold.submitted_at);
            cold.extra = Some(Box::new(Extra::new(
                self.config.retry,
                self.task_rng(id),
                started,
            )));
        }
        let extra = cold.extra.as_mut().expect("made just above");
        match decision {
            RetryDecision::Fail => None,
            RetryDecision::Retry => extra.next_retry(),
            RetryDecision::RetryAfter(delay) => extra.next_retry().map(|_| delay),
        }
    }

    /// Where a recurring task's schedule goes after a successful run that started at
    /// `started` (see [`Every`](super::Every), [`Overlap`] and [`MissedTicks`]).
    fn next_run(&self, record: &Record, started: Instant) -> Next {
        let mut cold = record.lock();
        let Cold { extra, runs, .. } = &mut *cold;
        let Some(extra) = extra.as_deref_mut() else {
            return Next::Done;
        };
        let Some(every) = extra.every else {
            return Next::Done;
        };
        *runs = runs.saturating_add(1);
        if let Limit::Runs(limit) = every.limit {
            if *runs >= limit {
                return Next::Done;
            }
        }
        let end = Instant::now();
        let (first, tick) = (extra.first_due, extra.tick);
        // Ticks due by the run's start (missed while it waited) and by its end (come
        // while it ran).
        let by_start = every.ticks_by(first, started).max(tick);
        let by_end = every.ticks_by(first, end).max(by_start);
        let next = if every.missed == MissedTicks::Burst && by_start > tick {
            tick + 1
        } else if every.overlap == Overlap::Queue && by_end > by_start {
            by_end
        } else {
            by_end.saturating_add(1)
        };
        let Some(due) = every.due(first, next) else {
            return Next::Done;
        };
        if let Limit::Until(deadline) = every.limit {
            if due > deadline {
                return Next::Done;
            }
        }
        extra.tick = next;
        if due <= end { Next::Now } else { Next::At(due) }
    }

    /// Sends a recurring task back to wait for its next run.
    fn reschedule(&self, id: TaskId, record: &Record, job: JobRef, next: Next) {
        // SAFETY: rule 3, we took the job by winning `Start` and applied no event since.
        if let Err((_, job)) = unsafe { record.state.apply_returning(TaskEvent::Reschedule, job) } {
            // A cancel or timeout won while the run ran: we got the job back (rule 3); the
            // `Fail` below loses too and the handle learns the winner's state.
            // A rare end: its cell (if unreferenced) is freed here.
            drop(self.conclude(
                id,
                record,
                Some(job),
                TaskEvent::Fail,
                Err(TaskError::cancelled()),
                None,
            ));
            return;
        }
        match next {
            Next::At(due) => self.arm(id, self.tick_at(due), Kind::Wake),
            // Still our token: queue it now, unless a cancel won from `Scheduled`.
            _ => {
                if record.state.apply(TaskEvent::Due).is_ok() {
                    self.enqueue(id, record);
                } else {
                    self.finalize(id, record);
                }
            }
        }
    }

    /// Sends a failed attempt back to wait for its retry.
    fn retry(&self, id: TaskId, record: &Record, job: JobRef, delay: Duration, error: TaskError) {
        // SAFETY: rule 3, we took the job by winning `Start` and applied no event since.
        if let Err((_, job)) = unsafe { record.state.apply_returning(TaskEvent::Retry, job) } {
            // A cancel or timeout won while the attempt ran: we got the job back (rule 3);
            // end as that state says.
            // A rare end: its cell (if unreferenced) is freed here.
            drop(self.conclude(id, record, Some(job), TaskEvent::Fail, Err(error), None));
            return;
        }
        self.stats.mine().retried.inc();
        if delay.is_zero() {
            // Still our token: queue it now, unless a cancel won from `Retrying`.
            if record.state.apply(TaskEvent::Due).is_ok() {
                self.enqueue(id, record);
            } else {
                self.finalize(id, record);
            }
        } else {
            let tick = self
                .now_tick()
                .saturating_add(1)
                .saturating_add(ceil_ms(delay));
            // Rule 1: the token passes to the timer entry.
            self.arm(id, tick, Kind::Wake);
        }
    }

    /// Applies an end `event` and publishes the result (storing a success's value in
    /// `store`), or learns what beat it; finalizes (the worker holds the token). Returns
    /// the job's emptied cell if nothing else refers to it ([`JobRef::complete`]).
    #[must_use = "dropping the shell frees the cell here and now"]
    fn conclude(
        &self,
        id: TaskId,
        record: &Record,
        mut job: Option<JobRef>,
        event: TaskEvent,
        result: Result<(), TaskError>,
        store: Option<Store>,
    ) -> Option<Shell> {
        match record.state.apply(event) {
            Ok(_) => {
                let shard = self.stats.mine();
                let counter = if result.is_ok() {
                    &shard.succeeded
                } else {
                    &shard.failed
                };
                counter.inc();
                // Stored before the handle learns the end, so the handle's owner finds it.
                if let (Ok(()), Some(store), Some(job)) = (&result, store, &mut job) {
                    self.store_result(id, job, store);
                }
                // One lock for the end: its error, the history entry, the slot's release.
                // The history has the task before its handle learns the end (a status
                // asked after `wait` finds it), and before it settles (once
                // `wait_for_completion` sees it settled, it is in the history).
                {
                    let mut cold = record.lock();
                    if let Err(error) = &result {
                        if cold.error.is_none() {
                            cold.error = Some(error.to_string().into());
                        }
                    }
                    self.finalize_locked(id, record, &mut cold);
                }
                let shell = job.and_then(|job| job.complete(result));
                self.settle();
                shell
            }
            // A cancel or timeout won while the attempt ran (state rules 1-2): the winner
            // counted and settled the task; the attempt's result is discarded.
            Err(lost) => {
                let shell =
                    job.and_then(|job| job.complete(Err(TaskError::for_state(lost.state()))));
                self.finalize(id, record);
                shell
            }
        }
    }

    /// Copies a succeeded task's value into the result store, if the budget has room.
    fn store_result(&self, id: TaskId, job: &mut JobRef, store: Store) {
        let Some((value, bytes)) = job.clone_staged(store.clone) else {
            return;
        };
        let Ok(charge) = MemoryBudget::try_reserve_owned(&self.budget, bytes) else {
            // Not stored: the budget is spent. The rejection shows in the budget's counts.
            return;
        };
        let ttl = store.ttl.unwrap_or(self.config.result_ttl);
        let now = Instant::now();
        let expires = now
            .checked_add(ttl)
            .unwrap_or(now + Duration::from_secs(u64::from(u32::MAX)));
        if self.results.insert(id, value, expires, charge) {
            self.timer_event.notify(1);
        }
    }

    /// Ends the use of a slot: records the task in the history and releases the slot
    /// (giving its budget charge back). Only the token holder calls it, once (rule 1).
    fn finalize(&self, id: TaskId, record: &Record) {
        let mut cold = record.lock();
        self.finalize_locked(id, record, &mut cold);
    }

    fn finalize_locked(&self, id: TaskId, record: &Record, cold: &mut Cold) {
        let state = record.state.load();
        debug_assert!(state.is_terminal());
        if cold.finished_at.is_none() {
            cold.finished_at = Some(self.clock.now());
        }
        let seq = self.tally.recorded.fetch_add(1, Ordering::Relaxed);
        self.history.push(seq, Finished::take(id, state, cold));
        self.budget.release(core::mem::take(&mut cold.charge));
        // The handler and the schedule go now, not when the slot is next used.
        cold.extra = None;
        // Rule 4: released under the cold lock.
        self.records
            .release(id)
            .expect("the token holder releases the slot once");
        if self.records.is_empty() {
            self.unfinished.notify_all();
        }
    }

    /// One fewer unfinished task.
    fn settle(&self) {
        self.unfinished.done();
    }

    /// Registers an idle worker and re-checks the queue (parking rule 1).
    pub(crate) fn idle_listener(&self) -> Parked<'_, EventListener> {
        self.parking.park(|| !self.queue.is_empty())
    }

    /// Takes the spinning slot, if free (parking rule 5).
    pub(crate) fn try_spin(&self) -> Option<SpinToken<'_, Event>> {
        self.parking.try_spin()
    }

    /// Whether the queue holds anything (a snapshot, for a spinning worker).
    pub(crate) fn has_work(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether shutdown told the workers to exit once the queue is empty.
    pub(crate) fn is_stopping(&self) -> bool {
        self.parking.is_stopping()
    }

    // ----- the timer driver ---------------------------------------------------------

    /// Fires every due timer and expires stored results. Returns `None` when the driver
    /// should exit, else when to run again (`None` inside: only when woken) and the
    /// listener that wakes it earlier (registered before the deadline was computed, so an
    /// earlier deadline inserted meanwhile is not missed).
    pub(crate) fn fire_timers(&self) -> Option<(Option<Instant>, EventListener)> {
        let listener = self.timer_event.listen();
        if self.parking.is_stopping() {
            return None;
        }
        let mut ended = Vec::new();
        let mut timers = self.lock_timers();
        let now = self.now_tick();
        while let Some(index) = timers.wheel.poll(now) {
            let kind = timers.kinds[index];
            // Rule 1: a Wake entry is its task's token, so the slot is live. A Timeout
            // entry is removed (under this lock) before its slot is released.
            let Some(id) = self.records.id_at(index) else {
                continue;
            };
            let record = self.records.get(id).expect("a timer's slot is live");
            match kind {
                Kind::Wake => match record.state.apply(TaskEvent::Due) {
                    Ok(_) => self.enqueue(id, record),
                    // Cancelled while waiting: we hold the token; finalize after unlocking
                    // (the cold lock comes before the timer lock).
                    Err(_) => ended.push(id),
                },
                Kind::Timeout => {
                    if record.state.apply(TaskEvent::Timeout).is_ok() {
                        self.stats.mine().timed_out.inc();
                        record.signal.raise();
                        self.settle();
                    }
                }
            }
        }
        let next = timers.wheel.next_deadline();
        drop(timers);
        for id in ended {
            let record = self
                .records
                .get(id)
                .expect("the token holder's slot is live");
            self.finalize(id, record);
        }
        let next_expiry = self.results.sweep(Instant::now());
        let next = next.map(|tick| self.tick_instant(tick));
        let deadline = match (next, next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some((deadline, listener))
    }

    // ----- control ------------------------------------------------------------------

    /// Cancels live task `id` on behalf of a user (`Stop::Cancel`) or a shutdown.
    fn stop(&self, id: TaskId, how: Stop) -> Result<State, CancelError> {
        let record = self.records.get(id).ok_or(CancelError::Unknown { id })?;
        let mut cold = record.lock();
        // Rule 4: under the cold lock the slot cannot be released; check it is still ours.
        if !self.records.contains(id) {
            drop(cold);
            return Err(match self.history.find(id, &self.clock) {
                Some(info) => CancelError::Finished {
                    id,
                    state: info.state,
                },
                None => CancelError::Unknown { id },
            });
        }
        let step = record
            .state
            .apply(TaskEvent::Cancel)
            .map_err(|lost| CancelError::Finished {
                id,
                state: lost.state(),
            })?;
        match how {
            Stop::Cancel => self.stats.mine().cancelled.inc(),
            Stop::Shutdown => self.stats.mine().stopped.inc(),
        }
        let from = step.transition.from;
        if from == State::Running {
            // The worker owns the job; tell it (cooperative for blocking work, the future
            // is dropped for async work).
            drop(cold);
            record.signal.raise();
        } else {
            cold.finished_at = Some(self.clock.now());
            // Rule 3: winning `Cancel` from a waiting state handed us the job.
            let job = step.value;
            if from != State::Queued {
                // Waiting on a timer: if we remove its entry we hold the token (rule 1).
                // Under the cold lock the slot cannot change hands meanwhile (rule 4).
                let removed = self
                    .lock_timers()
                    .wheel
                    .cancel(id.index() as usize)
                    .is_some();
                if removed {
                    self.finalize_locked(id, record, &mut cold);
                }
            }
            drop(cold);
            if let Some(job) = job {
                job.complete(Err(TaskError::cancelled()));
            }
        }
        self.settle();
        Ok(from)
    }

    pub(crate) fn cancel(&self, id: TaskId) -> Result<(), CancelError> {
        self.stop(id, Stop::Cancel).map(drop)
    }

    /// The state of task `id`: live, or in the history.
    pub(crate) fn status(&self, id: TaskId) -> Option<State> {
        if let Some(record) = self.records.get(id) {
            let _cold = record.lock();
            if self.records.contains(id) {
                return Some(record.state.load());
            }
        }
        self.history.find(id, &self.clock).map(|info| info.state)
    }

    /// The snapshot of task `id`: live, or in the history.
    pub(crate) fn info(&self, id: TaskId) -> Option<TaskInfo> {
        if let Some(record) = self.records.get(id) {
            let cold = record.lock();
            if self.records.contains(id) {
                return Some(self.clock.info(id, record.state.load(), &cold));
            }
        }
        self.history.find(id, &self.clock)
    }

    /// Snapshots of every live task that has not ended (queued, scheduled, retrying or
    /// running). O(capacity).
    pub(crate) fn active(&self) -> Vec<TaskInfo> {
        (0..self.records.capacity())
            .filter_map(|index| self.records.id_at(index))
            .filter_map(|id| self.info(id))
            .filter(|info| !info.state.is_terminal())
            .collect()
    }

    pub(crate) fn progress(&self, id: TaskId, percent: f64, message: Option<String>) -> bool {
        let Some(record) = self.records.get(id) else {
            return false;
        };
        let mut cold = record.lock();
        if !self.records.contains(id) || record.state.load().is_terminal() {
            return false;
        }
        cold.progress = percent;
        cold.message = message.map(String::into_boxed_str);
        true
    }

    /// Whether `id`'s attempt should stop: its signal is raised, or the task is no longer
    /// live (a context that outlived its task).
    pub(crate) fn is_cancelled(&self, id: TaskId) -> bool {
        match self.records.get(id) {
            // Read the flag, then check the slot is still this task's: if it is, the flag
            // was this task's when read.
            Some(record) => record.signal.is_raised() || !self.records.contains(id),
            None => true,
        }
    }

    /// The stored result of `id`, unless it expired (or was never stored).
    pub(crate) fn stored_result(&self, id: TaskId) -> Option<Arc<dyn Any + Send + Sync>> {
        self.results.get(id, Instant::now())
    }

    pub(crate) fn stop_accepting(&self) {
        self.shutdown_initiated.store(true, Ordering::SeqCst);
        self.admission.close();
        // Submissions that entered before the close finish publishing first, so a
        // `stop_all` after this sees them (gate rules 3-4). They are short (no user code
        // runs in them).
        while !self.admission.is_drained() {
            std::thread::yield_now();
        }
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.admission.is_open()
    }

    pub(crate) fn is_shutdown_initiated(&self) -> bool {
        self.shutdown_initiated.load(Ordering::SeqCst)
    }

    /// Whether every accepted task has ended and its slot was reclaimed (no worker is
    /// still running any of them, cancelled ones included).
    pub(crate) fn is_quiet(&self) -> bool {
        self.unfinished.is_settled() && self.records.is_empty()
    }

    /// `None` once [`is_quiet`](Self::is_quiet), else a listener notified when tasks
    /// settle or slots are reclaimed, created between two checks (settle rule 3).
    pub(crate) fn quiet_or_listener(&self) -> Option<SettleWaiter<'_, Event>> {
        self.unfinished.listen_unless(|| self.is_quiet())
    }

    /// Blocks until [`is_quiet`](Self::is_quiet) or `timeout` passes; whether it is quiet.
    pub(crate) fn wait_for_completion(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let Some(waiter) = self.quiet_or_listener() else {
                return true;
            };
            match deadline {
                Some(deadline) => {
                    if waiter
                        .wait_with(|listener| listener.wait_deadline(deadline))
                        .is_none()
                    {
                        return self.is_quiet();
                    }
                }
                None => waiter.wait_with(Listener::wait),
            }
        }
    }

    /// Cancels every live task (counted as stopped), returning their snapshots as they
    /// were just before.
    pub(crate) fn stop_all(&self) -> Vec<TaskInfo> {
        let mut stopped = Vec::new();
        for index in 0..self.records.capacity() {
            let Some(id) = self.records.id_at(index) else {
                continue;
            };
            let Some(before) = self.info(id) else {
                continue;
            };
            if before.state.is_terminal() {
                continue;
            }
            if let Ok(from) = self.stop(id, Stop::Shutdown) {
                stopped.push(TaskInfo {
                    state: from,
                    ..before
                });
            }
        }
        stopped
    }

    /// Tells the workers to exit once the queue is empty, and the timer driver to exit.
    pub(crate) fn stop_workers(&self) {
        self.parking.stop();
        self.timer_event.notify(usize::MAX);
    }

    pub(crate) fn counts(&self) -> Counts {
        let stats = &self.stats;
        Counts {
            submitted: self.unfinished.added() as u64,
            executed: stats.sum(|shard| &shard.executed),
            succeeded: stats.sum(|shard| &shard.succeeded),
            failed: stats.sum(|shard| &shard.failed),
            retried: stats.sum(|shard| &shard.retried),
            cancelled: stats.sum(|shard| &shard.cancelled),
            timed_out: stats.sum(|shard| &shard.timed_out),
            stopped: stats.sum(|shard| &shard.stopped),
            panicked: stats.sum(|shard| &shard.panicked),
            peak_concurrency: self.tally.peak.load(Ordering::Relaxed) as u64,
        }
    }

    pub(crate) fn analytics(&self) -> Analytics {
        let execution = self.stats.merged(|shard| &shard.execution);
        let nanos = |ns: Option<u64>| ns.map(Duration::from_nanos);
        Analytics {
            counts: self.counts(),
            profiling: self.config.profiling,
            avg_execution_time: execution.mean().map(|ns| Duration::from_nanos(ns as u64)),
            p50_execution_time: nanos(execution.p50()),
            p95_execution_time: nanos(execution.p95()),
            p99_execution_time: nanos(execution.p99()),
            queue_size: QueueSizes {
                low: self.queue.level_len(Level::Low),
                normal: self.queue.level_len(Level::Normal),
                high: self.queue.level_len(Level::High),
                critical: self.queue.level_len(Level::Critical),
            },
            waiting: self.waiting(),
            running: self.running(),
            uptime: self.clock.epoch.elapsed(),
            dispatch_latency: Level::ALL.map(|level| {
                let snap = self.stats.merged(|shard| &shard.dispatch[level.index()]);
                LevelLatency {
                    level,
                    count: snap.count(),
                    p50: nanos(snap.p50()),
                    p95: nanos(snap.p95()),
                    p99: nanos(snap.p99()),
                }
            }),
            memory: self.budget.snapshot(),
            stored_results: self.results.len(),
        }
    }

    pub(crate) fn performance(&self) -> Performance {
        let now = Instant::now();
        let cpu = super::process::cpu_time();
        let counts = self.counts();
        let (window, cpu_used, executed) = {
            let mut sample = self.sample.lock().unwrap_or_else(PoisonError::into_inner);
            let (at, cpu_before, executed_before) = *sample;
            *sample = (now, cpu, counts.executed);
            (
                now.saturating_duration_since(at),
                cpu.zip(cpu_before)
                    .map(|(now, before)| now.saturating_sub(before)),
                counts.executed.saturating_sub(executed_before),
            )
        };
        let seconds = window.as_secs_f64();
        let per_window = |amount: f64| if seconds > 0.0 { amount / seconds } else { 0.0 };
        let ended = counts.succeeded + counts.failed;
        let budget = self.budget.snapshot();
        Performance {
            cpu_percent: cpu_used.map(|used| per_window(used.as_secs_f64()) * 100.0),
            rss_bytes: super::process::rss_bytes(),
            memory_pool_used: budget.used,
            memory_pool_limit: budget.limit,
            active_workers: self.running(),
            workers: self.config.workers,
            throughput: per_window(executed as f64),
            error_rate: if ended == 0 {
                0.0
            } else {
                counts.failed as f64 * 100.0 / ended as f64
            },
            window,
        }
    }

    /// Tasks waiting for a timer (`Scheduled` or `Retrying`), read without locks.
    fn waiting(&self) -> usize {
        (0..self.records.capacity())
            .filter_map(|index| self.records.id_at(index))
            .filter_map(|id| self.records.get(id))
            .filter(|record| matches!(record.state.load(), State::Scheduled | State::Retrying))
            .count()
    }

    /// Attempts running right now.
    pub(crate) fn running(&self) -> usize {
        self.tally.running.load(Ordering::Relaxed)
    }

    /// Live tasks right now (queued, scheduled, running, and ended ones not yet reclaimed).
    pub(crate) fn live(&self) -> usize {
        self.records.len()
    }
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    TaskError::panicked(payload)
        .panic_message()
        .unwrap_or("a non-string panic payload")
        .into()
}

/// Idle workers wait on an `event_listener` event: a listener created before a
/// notification is woken by it, which is what [`Notify`] asks.
impl Notify for Event {
    type Listener = EventListener;

    fn listen(&self) -> EventListener {
        Event::listen(self)
    }

    fn notify_one(&self) {
        self.notify(1.additional());
    }

    fn notify_all(&self) {
        self.notify(usize::MAX);
    }
}
