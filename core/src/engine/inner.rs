//! The state every phase of the engine shares ([`Inner`]), how it is built, and the few
//! steps every phase takes: finalizing a task, settling it, noting what panicked around it.
//! The phases (`submit.rs`, `attempt.rs`, `timed.rs`, `control.rs`, `report.rs`) add
//! their methods to [`Inner`] in their own files.

use std::boxed::Box;
use std::collections::TryReserveError;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use event_listener::{Event, EventListener, IntoNotification};

use super::clock::Clock;
use super::context::Host;
use super::events::Events;
use super::guard::Notes;
use super::history::History;
use super::record::{Cold, Desk, Record};
use super::report::Sampler;
use super::results::Results;
use super::sleep::Sleepers;
use super::tally::{Stats, Tally};
use super::timers::Timers;
use crate::gate::Gate;
use crate::park::{Notify, Parking};
use crate::settle::Settle;
use crate::waitlist::Waitlist;
use crate::{
    Entry, MemoryBudget, Mode, RetryPolicy, SegmentedPriorityQueue, SlotTable, SplitMix64, TaskId,
};

/// Bytes a task is charged beyond its one allocation's size (the job, its completion and
/// an async attempt's future): the allocator's own header and rounding, and the task's
/// share of the engine's fixed per-slot tables, rounded up. Documented on
/// `Builder::memory_pool_mb`.
pub(crate) const TASK_OVERHEAD: usize = 128;

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
    pub(crate) max_detached: usize,
    pub(crate) seed: u64,
}

/// The worker threads a detached blocking closure holds (engine rule 9): counted so a
/// replacement can be started, and the replacement retired when the closure returns.
#[derive(Default)]
pub(crate) struct Pool {
    /// Workers stuck in a detached closure right now.
    pub(crate) stuck: usize,
    /// Replacement workers running (started for stuck ones, not yet retired).
    pub(crate) extra: usize,
}

/// A worker's own reference to the engine, and its desk (what a cancel or timeout of the
/// task it runs reaches it through, engine rule 8). Each attempt's `Context` clones the
/// seat, so the count it writes twice per attempt sits on a line only that worker writes;
/// cloning the engine's `Arc` instead would pass its count's line between the workers, the
/// submitters and the handles on every task. The desk is cloned into the running task's
/// cold data, on a line of its own that only this worker and that task's enders touch.
pub(crate) struct Chair {
    inner: Arc<Inner>,
    pub(crate) desk: Arc<Desk>,
}

impl Chair {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            desk: Arc::new(Desk::new()),
        }
    }
}

impl core::ops::Deref for Chair {
    type Target = Arc<Inner>;

    fn deref(&self) -> &Arc<Inner> {
        &self.inner
    }
}

/// A worker's seat: see [`Chair`].
pub(crate) type Seat = Arc<Chair>;

/// Slots per segment of a queue level: 8 KiB of slot indices and stamps, allocated the
/// first time the level's ring reaches them.
const QUEUE_SEGMENT: usize = 1024;

/// Everything the manager, its handles and its workers share.
pub(crate) struct Inner {
    pub(crate) records: SlotTable<Record, Box<[Entry<Record>]>>,
    /// Queued tasks by slot index (4 bytes an entry; the slot's live id is the queued
    /// task's, rule 1). Each level holds every slot, in segments allocated as it fills
    /// ([`QUEUE_SEGMENT`]), so a level no task uses costs its table of pointers.
    pub(crate) queue: SegmentedPriorityQueue<u32>,
    /// Idle workers, the list they wait on (notified when work arrives while one is
    /// idle, and when workers must stop) and the stop flag: workers exit once stopping
    /// and the queue is empty; the timer driver exits.
    pub(crate) parking: Parking<Waitlist>,
    /// The timer wheels, one per shard of threads ([`Inner::my_timers`]): a worker
    /// re-arming its recurring tasks takes a lock that stays in its own cache, the timer
    /// driver visits every shard when it fires. Each on cache lines of its own (a lock
    /// every arm writes must not evict what workers read per task). A slot's one entry
    /// is in one shard at a time: the arming thread's for a wake-up, the claiming
    /// worker's for a timeout (its shard is in the attempt's meta); a cancel looks in
    /// every shard.
    pub(crate) timers: Box<[CachePadded<Mutex<Timers>>]>,
    /// Wakes the timer driver: an earlier deadline, a sleeper, a worker to replace, or
    /// stopping.
    pub(crate) timer_event: Event,
    /// Notified whenever a running task's cancellation signal is raised: every
    /// `Context::cancelled` awaiter listens here and re-checks its own task.
    pub(crate) cancels: Event,
    /// The sleeps of `Context::sleep`, fired by the timer driver.
    pub(crate) sleepers: Sleepers,
    pub(crate) results: Results,
    pub(crate) budget: Arc<MemoryBudget>,
    /// Submissions pass it; `stop_accepting` closes it and waits until it is drained.
    /// On cache lines of its own: every submit writes it, which must not evict what
    /// workers read per task (the history sat on its line).
    pub(crate) admission: CachePadded<Gate>,
    pub(crate) shutdown_initiated: AtomicBool,
    /// Set when the runtime dropped a worker or the timer driver (it was shut down).
    pub(crate) runtime_gone: AtomicBool,
    /// Accepted tasks that have not reached a terminal state, and the event notified when
    /// they drop to zero (and when the live slots drop to the detached ones). Its count of
    /// accepted tasks is also the `submitted` statistic.
    pub(crate) unfinished: Settle<Event>,
    /// The running count and the history's cursor (see [`Tally`]).
    pub(crate) tally: CachePadded<Tally>,
    /// Detached blocking closures still running (their slots stay live until they return).
    pub(crate) detached: AtomicUsize,
    /// Inline workers stuck in detached closures, and their replacements.
    pub(crate) pool: Mutex<Pool>,
    pub(crate) history: History,
    pub(crate) stats: Stats,
    /// `performance`'s previous sample, and the profile's samples.
    pub(crate) sampler: Sampler,
    /// Task updates for subscribers (one relaxed load per step while nobody listens).
    pub(crate) events: Events,
    pub(crate) clock: Clock,
    pub(crate) config: Config,
    /// The durable layer, when the manager has a store.
    #[cfg(feature = "durable")]
    pub(crate) durable: std::sync::OnceLock<Arc<super::durable::Shared>>,
}

/// An instant far enough ahead to mean "never" (about 136 years).
pub(crate) fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(u64::from(u32::MAX))
}

/// Milliseconds in `d`, rounded up, saturating.
pub(crate) fn ceil_ms(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Locks `mutex`, ignoring poisoning: the engine's mutexes guard plain data that its own
/// code changes only through methods that leave it consistent, and user code never runs
/// under them.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// The engine for `config`, every structure sized and allocated now (fallibly: a
    /// refusal names the setting that sized it).
    pub(crate) fn try_new(config: Config) -> Result<Self, (&'static str, TryReserveError)> {
        let clock = Clock::new();
        let capacity = config.capacity;
        let sized = |setting: &'static str| move |error| (setting, error);
        Ok(Self {
            records: SlotTable::try_with_capacity(capacity, |_| {
                Record::new(clock.stamp(clock.epoch))
            })
            .map_err(sized("queue_capacity"))?,
            queue: SegmentedPriorityQueue::try_segmented(
                capacity,
                QUEUE_SEGMENT.min(capacity.next_power_of_two()),
                config.mode,
            )
            .map_err(sized("queue_capacity"))?,
            parking: Parking::new(Waitlist::with_capacity(
                config.workers.saturating_add(config.max_detached),
            )),
            timers: {
                let shards = config.workers.saturating_add(2).next_power_of_two().min(8);
                let mut wheels = std::vec::Vec::new();
                wheels.try_reserve_exact(shards).map_err(sized("workers"))?;
                for _ in 0..shards {
                    let wheel = Timers::try_new(capacity).map_err(sized("queue_capacity"))?;
                    wheels.push(CachePadded::new(Mutex::new(wheel)));
                }
                wheels.into_boxed_slice()
            },
            timer_event: Event::new(),
            cancels: Event::new(),
            sleepers: Sleepers::default(),
            results: Results::default(),
            budget: Arc::new(MemoryBudget::new(config.memory_pool)),
            admission: CachePadded::new(Gate::new()),
            shutdown_initiated: AtomicBool::new(false),
            runtime_gone: AtomicBool::new(false),
            unfinished: Settle::new(Event::new()),
            tally: CachePadded::new(Tally::new()),
            detached: AtomicUsize::new(0),
            pool: Mutex::new(Pool::default()),
            history: History::try_new(config.history).map_err(sized("history"))?,
            stats: Stats::try_new(config.workers).map_err(sized("workers"))?,
            sampler: Sampler::new(clock.epoch, config.profiling),
            events: Events::new(config.workers),
            clock,
            config,
            #[cfg(feature = "durable")]
            durable: std::sync::OnceLock::new(),
        })
    }

    /// Stops the durable layer's keeper after it committed what it was sent (no-op
    /// without a store).
    pub(crate) fn stop_durable(&self) {
        #[cfg(feature = "durable")]
        if let Some(durable) = self.durable.get() {
            durable.stop();
        }
    }

    pub(crate) fn record(&self, id: TaskId) -> Option<&Record> {
        self.records.get(id)
    }

    /// The timer shard of the calling thread, to arm a timer in.
    pub(crate) fn my_timers(&self) -> usize {
        super::tally::thread_index() & (self.timers.len() - 1)
    }

    /// Locks timer shard `shard`.
    pub(crate) fn lock_timers(&self, shard: usize) -> MutexGuard<'_, Timers> {
        lock(&self.timers[shard])
    }

    /// Task `id`'s jitter source: the manager's seed mixed with the slot and generation.
    pub(crate) fn task_rng(&self, id: TaskId) -> SplitMix64 {
        SplitMix64::new(
            self.config.seed ^ (u64::from(id.index()) << 32 | u64::from(id.generation())),
        )
    }

    /// Nanoseconds since the epoch (saturating).
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// The wheel tick at which `at` has passed: rounded up, so a timer never fires early.
    pub(crate) fn tick_at(&self, at: Instant) -> u64 {
        ceil_ms(at.saturating_duration_since(self.clock.epoch))
    }

    /// The current wheel tick (rounded down).
    pub(crate) fn now_tick(&self) -> u64 {
        self.now_ns() / 1_000_000
    }

    /// The instant of wheel tick `tick`.
    pub(crate) fn tick_instant(&self, tick: u64) -> Instant {
        self.clock
            .epoch
            .checked_add(Duration::from_millis(tick))
            .unwrap_or_else(|| far_future(self.clock.epoch))
    }

    /// Ends the use of a slot: records the task in the history and releases the slot
    /// (giving its budget charge back). Only the token holder calls it, once (rule 1).
    pub(crate) fn finalize(&self, id: TaskId, record: &Record) {
        let mut cold = record.lock();
        self.finalize_locked(id, record, &mut cold);
    }

    pub(crate) fn finalize_locked(&self, id: TaskId, record: &Record, cold: &mut Cold) {
        let state = record.state.load();
        debug_assert!(state.is_terminal());
        if cold.tenure.end().is_none() {
            cold.tenure.set_end(self.clock.now());
        }
        let seq = self.tally.recorded.fetch_add(1, Ordering::Relaxed);
        self.history
            .push(seq, cold.take_finished(id, state, record.priority()));
        self.budget.release(cold.take_charge());
        // The handler and the schedule go now, not when the slot is next used.
        cold.extra = None;
        // Rule 4: released under the cold lock.
        self.records
            .release(id)
            .expect("the token holder releases the slot once");
        // Settle rule 5: the quiet conditions read the live and detached counts.
        if self.records.len() <= self.detached.load(Ordering::Acquire) {
            self.unfinished.notify_all();
        }
    }

    /// One fewer unfinished task.
    pub(crate) fn settle(&self) {
        self.unfinished.done();
    }

    /// Counts the panics in `notes` and appends them to task `id`'s error: in its record
    /// while the slot is still `id`'s, else in its history entry.
    #[inline]
    pub(crate) fn note(&self, id: TaskId, notes: Notes) {
        if !notes.is_empty() {
            self.note_slow(id, notes);
        }
    }

    #[cold]
    fn note_slow(&self, id: TaskId, notes: Notes) {
        for _ in 0..notes.count() {
            self.stats.mine().panicked.inc();
        }
        let Some(text) = notes.into_text() else {
            return;
        };
        if let Some(record) = self.records.get(id) {
            let mut cold = record.lock();
            // Rule 4: under the cold lock the slot is pinned; is it still `id`'s?
            if self.records.contains(id) {
                cold.note(&text);
                return;
            }
        }
        self.history.annotate(id, &text);
    }

    /// Appends `notes` to the cold data of a task whose slot the caller pins (it holds the
    /// cold lock and the token).
    #[inline]
    pub(crate) fn note_locked(&self, cold: &mut Cold, notes: Notes) {
        if !notes.is_empty() {
            self.note_locked_slow(cold, notes);
        }
    }

    #[cold]
    fn note_locked_slow(&self, cold: &mut Cold, notes: Notes) {
        for _ in 0..notes.count() {
            self.stats.mine().panicked.inc();
        }
        if let Some(text) = notes.into_text() {
            cold.note(&text);
        }
    }

    /// Whether every accepted task has ended and its slot was reclaimed, but for the
    /// slots of detached closures still running (no worker runs any of them otherwise);
    /// with `detached`, whether those have returned too.
    pub(crate) fn is_quiet(&self, detached: bool) -> bool {
        let allowed = if detached {
            0
        } else {
            self.detached.load(Ordering::Acquire)
        };
        self.unfinished.is_settled() && self.records.len() <= allowed
    }
}

/// What an attempt's context asks of the engine (see [`Host`]), through a worker's own
/// reference.
impl Host for Arc<Inner> {
    fn progress(&self, id: TaskId, percent: f64, message: String) -> bool {
        Inner::progress(self, id, percent, message)
    }

    fn is_cancelled(&self, id: TaskId) -> bool {
        Inner::is_cancelled(self, id)
    }

    fn cancel_listener(&self, id: TaskId) -> Option<EventListener> {
        self.records.get(id)?;
        Some(self.cancels.listen())
    }

    fn sleepers(&self) -> &Sleepers {
        &self.sleepers
    }

    fn wake_timer(&self) {
        self.timer_event.notify(1);
    }
}

/// A worker's seat asks what its engine's reference would.
impl Host for Chair {
    fn progress(&self, id: TaskId, percent: f64, message: String) -> bool {
        self.inner.progress(id, percent, message)
    }

    fn is_cancelled(&self, id: TaskId) -> bool {
        self.inner.is_cancelled(id)
    }

    fn cancel_listener(&self, id: TaskId) -> Option<EventListener> {
        self.inner.cancel_listener(id)
    }

    fn sleepers(&self) -> &Sleepers {
        &self.inner.sleepers
    }

    fn wake_timer(&self) {
        self.inner.wake_timer();
    }
}

/// The settle count's waiters wait on an `event_listener` event: a listener created
/// before a notification is woken by it, which is what [`Notify`] asks.
impl Notify for Event {
    type Listener<'a> = EventListener;

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
