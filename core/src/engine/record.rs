//! One task slot's record: its state cell, the job hand-off cell, the cancellation signal
//! and the cold per-task data.
//!
//! The job cell is a [`Handoff`]: its rules (and the engine's rules 2-3 in the
//! [engine docs](super)) decide who may touch it.

use core::num::NonZeroU64;
use std::borrow::Cow;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use std::boxed::Box;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

use event_listener::Event;
#[cfg(not(miri))]
use parking_lot::RawMutex;
#[cfg(not(miri))]
use parking_lot::lock_api::RawMutex as _;

use super::cell::{JobRef, LatchRef};
use super::clock::Stamp;
use super::ending::OnEnd;
use super::packed::{StaticLabel, Tenure};
use super::snapshot::{Finished, TaskInfo};
use super::spec::{ErrorHandler, Every, Store};
use crate::flag::Bit;
use crate::handoff::Handoff;
use crate::waker::WakerSlot;
use crate::{Backoff, Priority, RetryPolicy, SplitMix64, State, TaskId};

/// What a worker's running task reaches it through: the waker it waits on the task's
/// signal with, and the latch of the blocking attempt it runs. One per worker, shared by
/// every task it runs (so a slot of the table holds a pointer to it, not a waker slot);
/// the running task's cold data holds it while the attempt runs (engine rule 8).
pub(crate) struct Desk {
    /// The worker's waker while it waits on its task's signal.
    pub(crate) waker: WakerSlot,
    /// The running blocking attempt's latch, null otherwise. Written by the worker and
    /// read by whoever ends its task, both under the task's cold lock, which orders them
    /// (rule 8): the atomic is only there to make the desk `Sync`.
    latch: AtomicPtr<crate::completion::Latch>,
}

impl Desk {
    pub(crate) fn new() -> Self {
        Self {
            waker: WakerSlot::new(),
            latch: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Sets the running attempt's latch (the worker, under its task's cold lock).
    pub(crate) fn set_latch(&self, latch: Option<LatchRef>) {
        let raw = latch.map_or(core::ptr::null_mut(), LatchRef::as_ptr);
        self.latch.store(raw, Ordering::Relaxed);
    }

    /// The running blocking attempt's latch, if any (under the task's cold lock, with
    /// this desk found in its cold data: rule 8).
    pub(crate) fn latch(&self) -> Option<LatchRef> {
        LatchRef::from_ptr(self.latch.load(Ordering::Relaxed))
    }
}

/// The cold per-task data: written at submission, start and end, and by progress reports.
///
/// What few tasks need (an error handler, a stored result, a schedule, a retry policy's
/// state) is boxed in [`Extra`], so a plain task's slot stays small.
pub(crate) struct Cold {
    /// A static label in one word; a label built at run time (or a static one too long
    /// to pack) is in [`Texts`] (8 bytes of the slot where an `Option<Cow<str>>` takes
    /// 24); see [`Cold::label`].
    pub(crate) label: Option<StaticLabel>,
    /// The progress (percent and message) and the last attempt's error, boxed together on
    /// the first write of either (most tasks write neither: 8 bytes of the slot where an
    /// `f64` and two `Option<Box<str>>` take 40); see [`Cold::progress`],
    /// [`Cold::message`], [`Cold::error`].
    pub(crate) texts: Option<Box<Texts>>,
    pub(crate) submitted_at: Stamp,
    pub(crate) started_at: Option<Stamp>,
    /// Each attempt's time limit in nanoseconds (never zero: submit refuses a zero
    /// timeout), 8 bytes where `Option<Duration>` takes 16; see [`Cold::timeout`].
    pub(crate) timeout_ns: Option<NonZeroU64>,
    /// Attempts started so far (the running attempt included; saturating).
    pub(crate) attempt: u32,
    /// Bytes the task holds from the memory budget (a detached reservation), given back
    /// when the slot is released; a charge too wide for 32 bits is in
    /// [`Extra::wide_charge`] instead (see [`Cold::set_charge`]).
    pub(crate) charge: u32,
    /// The settings and state few tasks have; `None` for a plain task.
    pub(crate) extra: Option<Box<Extra>>,
    /// While an attempt runs: the desk of its worker, through which a timeout or cancel
    /// wakes that worker and, for a blocking attempt, resolves the handle at once through
    /// its latch (engine rule 8). After the task ends: when it ended. One word for both.
    pub(crate) tenure: Tenure,
}

/// A task's texts, in [`Cold`] behind one pointer.
#[derive(Default)]
pub(crate) struct Texts {
    /// The last progress report's percent (a report always comes with its message, so
    /// it needs no allocation of its own).
    progress: f64,
    message: Option<Box<str>>,
    /// The last attempt's error.
    error: Option<Box<str>>,
    /// A label built at run time.
    label: Option<Box<str>>,
}

/// [`Record::flags`]: the running blocking attempt runs on its worker's own thread (so
/// detaching it takes that worker away).
pub(crate) const INLINE: u8 = 0b01;
/// [`Record::flags`]: the running blocking attempt was detached (its task ended while it
/// ran).
pub(crate) const DETACHED: u8 = 0b10;
/// [`Record::flags`]: a shutdown (not a user) stopped the running attempt.
pub(crate) const STOPPED: u8 = 0b100;

/// A task's rarer settings and the state that goes with them.
pub(crate) struct Extra {
    pub(crate) on_error: Option<ErrorHandler>,
    /// Told when the task ends; taken (so told once) by whoever ends it.
    pub(crate) on_end: Option<Arc<dyn OnEnd>>,
    pub(crate) store: Option<Store>,
    /// The recurrence, for a recurring task.
    pub(crate) every: Option<Every>,
    /// When a recurring task's first run was due (its schedule's anchor).
    pub(crate) first_due: Instant,
    /// Which tick of the schedule the current (or last) run is.
    pub(crate) tick: u64,
    /// Runs that ended successfully (for a recurring task).
    pub(crate) runs: u64,
    /// The retry policy (the task's, or the manager's default).
    pub(crate) retry: RetryPolicy,
    /// The retry policy's state, from the first failure on.
    pub(crate) backoff: Option<Backoff>,
    /// The jitter's random source, seeded per task.
    pub(crate) rng: SplitMix64,
    /// The budget charge of a task whose charge does not fit [`Cold`]'s 32 bits; 0
    /// otherwise.
    pub(crate) wide_charge: usize,
}

impl Extra {
    /// No handler, store or schedule; retries under `retry`, with jitter from `rng`.
    pub(crate) fn new(retry: RetryPolicy, rng: SplitMix64, first_due: Instant) -> Self {
        Self {
            on_error: None,
            on_end: None,
            store: None,
            every: None,
            first_due,
            tick: 0,
            runs: 0,
            retry,
            backoff: None,
            rng,
            wide_charge: 0,
        }
    }

    /// The delay before the next retry, or `None` when the policy allows no more.
    pub(crate) fn next_retry(&mut self) -> Option<Duration> {
        let backoff = self.backoff.get_or_insert_with(|| self.retry.backoff());
        backoff.next_delay(&mut self.rng)
    }
}

impl Cold {
    /// The task's label.
    pub(crate) fn label(&self) -> Option<&str> {
        self.label
            .map(StaticLabel::get)
            .or_else(|| self.texts.as_deref()?.label.as_deref())
    }

    /// Sets the task's label: a static one in the slot, one built at run time with the
    /// texts.
    pub(crate) fn set_label(&mut self, label: Option<Cow<'static, str>>) {
        match label {
            Some(Cow::Borrowed(text)) => match StaticLabel::new(text) {
                Some(packed) => self.label = Some(packed),
                None => self.texts.get_or_insert_default().label = Some(text.into()),
            },
            Some(Cow::Owned(text)) => {
                self.texts.get_or_insert_default().label = Some(text.into_boxed_str());
            }
            None => {}
        }
    }

    /// The last progress report's percent (0 before any).
    pub(crate) fn progress(&self) -> f64 {
        self.texts.as_deref().map_or(0.0, |texts| texts.progress)
    }

    /// Records a progress report.
    pub(crate) fn set_progress(&mut self, percent: f64, message: Box<str>) {
        let texts = self.texts.get_or_insert_default();
        texts.progress = percent;
        texts.message = Some(message);
    }

    /// The last progress message.
    pub(crate) fn message(&self) -> Option<&str> {
        self.texts.as_deref()?.message.as_deref()
    }

    /// The last attempt's error, as text.
    pub(crate) fn error(&self) -> Option<&str> {
        self.texts.as_deref()?.error.as_deref()
    }

    /// Sets the last attempt's error.
    pub(crate) fn set_error(&mut self, error: Box<str>) {
        self.texts.get_or_insert_default().error = Some(error);
    }

    /// Each attempt's time limit.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout_ns
            .map(|nanos| Duration::from_nanos(nanos.get()))
    }

    /// Sets each attempt's time limit (saturating at 584 years; zero means none).
    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout_ns = timeout
            .and_then(|limit| NonZeroU64::new(u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX)));
    }

    /// Successful runs of a recurring task.
    pub(crate) fn runs(&self) -> u64 {
        self.extra.as_ref().map_or(0, |extra| extra.runs)
    }

    /// Takes the task's end hook (so it is told once).
    pub(crate) fn take_hook(&mut self) -> Option<Arc<dyn OnEnd>> {
        self.extra.as_mut().and_then(|extra| extra.on_end.take())
    }

    /// The attempt's worker leaves the task (rule 8: before its job leaves the worker's
    /// hands): a cancel or timeout from now on neither wakes it nor finds a latch.
    pub(crate) fn leave(&mut self) {
        if let Some(desk) = self.tenure.take_desk() {
            desk.set_latch(None);
        }
    }

    /// Sets the budget charge the task holds: in the slot if it fits 32 bits, else in
    /// `extra` (which the caller made for it).
    pub(crate) fn set_charge(&mut self, bytes: usize) {
        match (u32::try_from(bytes), self.extra.as_deref_mut()) {
            (Ok(narrow), _) => self.charge = narrow,
            (Err(_), Some(extra)) => extra.wide_charge = bytes,
            (Err(_), None) => unreachable!("a wide charge comes with its extra settings"),
        }
    }

    /// Takes the budget charge, to give it back (the slot is being released).
    pub(crate) fn take_charge(&mut self) -> usize {
        let wide = self
            .extra
            .as_deref_mut()
            .map_or(0, |extra| core::mem::take(&mut extra.wide_charge));
        core::mem::take(&mut self.charge) as usize + wide
    }

    /// Appends `text` to the task's error (notes of panics caught around the task).
    pub(crate) fn note(&mut self, text: &str) {
        let error = &mut self.texts.get_or_insert_default().error;
        *error = Some(match error.take() {
            Some(error) => std::format!("{error}; {text}").into(),
            None => text.into(),
        });
    }

    /// Moves an ended task's record out of its cold data (the slot is being released:
    /// its text goes to the history rather than being copied).
    pub(crate) fn take_finished(
        &mut self,
        id: TaskId,
        state: State,
        priority: Priority,
    ) -> Finished {
        let Texts {
            progress,
            message,
            error,
            label,
        } = self.texts.take().map(|texts| *texts).unwrap_or_default();
        let label = match self.label.take() {
            Some(text) => Some(Cow::Borrowed(text.get())),
            None => label.map(|text| Cow::Owned(text.into_string())),
        };
        Finished {
            id,
            state,
            label,
            priority,
            attempt: self.attempt,
            runs: self.runs(),
            progress,
            message,
            error,
            submitted_at: self.submitted_at,
            started_at: self.started_at,
            finished_at: self.tenure.end(),
        }
    }

    /// Cold data of a task submitted at `now`, with every setting at its default.
    pub(crate) fn empty(now: Stamp) -> Self {
        Self {
            label: None,
            attempt: 0,
            texts: None,
            submitted_at: now,
            started_at: None,
            timeout_ns: None,
            charge: 0,
            extra: None,
            tenure: Tenure::new(),
        }
    }
}

/// What a record keeps in its state cell's padding (saving 16 bytes of every slot: a word
/// for the priority and the bit, another for a `Mutex`'s lock).
pub(crate) struct Side {
    /// The task's priority (read without the lock when it is queued from a timer).
    priority: AtomicU8,
    /// The task's cancellation signal: the worker racing the task's future waits on it
    /// (its waker is in the worker's desk: rule 8).
    cancel: Bit,
    /// The lock of the record's cold data: parking_lot's one-byte mutex (a `Mutex<Cold>`
    /// would take a word of its own), taken only through [`Record::lock`].
    lock: RawMutex,
    /// The running attempt's [`INLINE`], [`DETACHED`] and [`STOPPED`]: read and written
    /// only under the cold lock (which orders them), see [`Record::flags`].
    flags: AtomicU8,
}

impl Default for Side {
    fn default() -> Self {
        Self {
            priority: AtomicU8::new(Priority::NORMAL.0),
            cancel: Bit::new(),
            lock: RawMutex::INIT,
            flags: AtomicU8::new(0),
        }
    }
}

/// One slot of the engine's [`SlotTable`](crate::SlotTable).
pub(crate) struct Record {
    /// Every state change goes through this cell, and with it the job between runs
    /// (rules 2-3, which are [`Handoff`]'s rules 1-3): in the cell while the task waits,
    /// held by the worker while it runs, gone after the end.
    /// Its side bytes are the task's priority and cancellation bit ([`Side`]).
    pub(crate) state: Handoff<JobRef, Side>,
    /// When the task last became ready to run (`Queued`), in nanoseconds since the
    /// manager's epoch: the start of its dispatch latency.
    pub(crate) ready_at: AtomicU64,
    /// Touched only through a [`ColdGuard`], which holds `state.side.lock`.
    cold: UnsafeCell<Cold>,
}

// SAFETY: the cold data is reached only through a `ColdGuard`, which holds the side lock
// (so one thread at a time), and `Cold` is `Send`; every other field is `Sync`.
unsafe impl Sync for Record {}

/// The cold data of a record, locked; unlocks when dropped. Like a `MutexGuard`, it stays
/// on the thread that locked it.
pub(crate) struct ColdGuard<'a> {
    record: &'a Record,
    _not_send: PhantomData<*const ()>,
}

impl Deref for ColdGuard<'_> {
    type Target = Cold;

    fn deref(&self) -> &Cold {
        // SAFETY: this guard holds the lock (`Record::lock`), so no other reference to the
        // cold data exists.
        unsafe { &*self.record.cold.get() }
    }
}

impl DerefMut for ColdGuard<'_> {
    fn deref_mut(&mut self) -> &mut Cold {
        // SAFETY: as above; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.record.cold.get() }
    }
}

impl Drop for ColdGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard locked it and unlocks it once, on the thread that locked it.
        unsafe { self.record.state.side.lock.unlock() };
    }
}

/// `Record: Sync` rests on this.
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Cold>();
};

impl Record {
    pub(crate) fn new(now: Stamp) -> Self {
        Self {
            // A never-used slot looks like an ended task: no event applies to it (rule 2).
            state: Handoff::with_side(Side::default()),
            ready_at: AtomicU64::new(0),
            cold: UnsafeCell::new(Cold::empty(now)),
        }
    }

    /// Locks the cold data. Holding this lock pins the slot: it is released only under it
    /// (rule 4).
    pub(crate) fn lock(&self) -> ColdGuard<'_> {
        // No poisoning: cold data is plain values, never left half-updated by a panic in
        // our code (user code never runs under this lock).
        self.state.side.lock.lock();
        ColdGuard {
            record: self,
            _not_send: PhantomData,
        }
    }

    /// Raises the task's cancellation signal (flag rule 1): whoever won a `Cancel` or
    /// `Timeout` on the running task, under its cold lock, with the desk it took from the
    /// cold data (`None`: no worker waits on it). Then notifies `cancels`, the engine's
    /// one event for every `Context::cancelled` awaiter (each re-checks its own task's
    /// signal): 8 bytes of every slot saved for a wake-up of the few tasks awaiting a
    /// cancellation, at most one per worker unless a context outlives its attempt.
    pub(crate) fn raise(&self, desk: Option<&Desk>, cancels: &Event) {
        self.state.side.cancel.raise(desk.map(|desk| &desk.waker));
        cancels.notify(usize::MAX);
    }

    /// Whether the task's cancellation signal is raised (flag rule 2: a waiting worker
    /// registers in its desk first).
    #[inline]
    pub(crate) fn is_raised(&self) -> bool {
        self.state.side.cancel.is_raised()
    }

    /// The running attempt's flags ([`INLINE`], [`DETACHED`], [`STOPPED`]); call it under
    /// the cold lock.
    pub(crate) fn flags(&self) -> u8 {
        self.state.side.flags.load(Ordering::Relaxed)
    }

    /// Sets the running attempt's flags, under the cold lock.
    pub(crate) fn set_flags(&self, flags: u8) {
        self.state.side.flags.store(flags, Ordering::Relaxed);
    }

    /// Whether the running blocking attempt was detached (under the cold lock).
    pub(crate) fn is_detached(&self) -> bool {
        self.flags() & DETACHED != 0
    }

    /// The task's priority.
    pub(crate) fn priority(&self) -> Priority {
        Priority(self.state.side.priority.load(Ordering::Relaxed))
    }

    /// The snapshot of the live task `id` (call it under the cold lock, with the slot
    /// checked to be `id`'s).
    pub(crate) fn info(&self, id: TaskId, cold: &Cold, clock: &super::clock::Clock) -> TaskInfo {
        let raw = Finished {
            id,
            state: self.state.load(),
            label: match cold.label {
                Some(text) => Some(Cow::Borrowed(text.get())),
                None => cold.label().map(|text| Cow::Owned(text.into())),
            },
            priority: self.priority(),
            attempt: cold.attempt,
            runs: cold.runs(),
            progress: cold.progress(),
            message: cold.message().map(Box::from),
            error: cold.error().map(Box::from),
            submitted_at: cold.submitted_at,
            started_at: cold.started_at,
            finished_at: cold.tenure.end(),
        };
        let mut info = raw.info(clock);
        info.detached = self.is_detached();
        if let Some((extra, every)) = cold
            .extra
            .as_deref()
            .and_then(|extra| Some((extra, extra.every?)))
        {
            info.every = Some(every.interval());
            // Waiting for a run: the schedule's current tick is the one it waits for.
            if info.state == crate::State::Scheduled {
                info.next_run = every
                    .due(extra.first_due, extra.tick)
                    .map(|due| clock.wall(due));
            }
        }
        info
    }

    /// Prepares a just-acquired slot for a new task. The state stays terminal (rule 2)
    /// until [`Handoff::publish`].
    pub(crate) fn reset(&self, priority: Priority, fill: impl FnOnce(&mut Cold)) {
        self.state
            .side
            .priority
            .store(priority.0, Ordering::Relaxed);
        fill(&mut self.lock());
        // Flag rule 3: nobody sees the slot yet.
        self.state.side.cancel.lower();
    }
}

/// Under miri, the cold lock is a one-byte spin lock with the same interface:
/// parking_lot's slow path (a contended lock) packs pointers into integers, which miri's
/// strict-provenance check refuses, and that code is not ours to check. Our side of the
/// lock (the guard, the `UnsafeCell`) is the same either way.
#[cfg(miri)]
struct RawMutex(core::sync::atomic::AtomicBool);

#[cfg(miri)]
impl RawMutex {
    const INIT: Self = Self(core::sync::atomic::AtomicBool::new(false));

    fn lock(&self) {
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    /// # Safety
    ///
    /// Called by the holder, once per `lock` (as parking_lot's `unlock`).
    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::{Cold, Record};

    /// Every slot of the table is preallocated for the manager's capacity, so these sizes
    /// are paid per task even before it is submitted (BENCHMARKS.md, memory per queued
    /// task). A field that grows them should be a deliberate choice: move rare data to
    /// `Extra` instead.
    #[test]
    fn slot_sizes_stay_put() {
        std::println!(
            "Cold {} B, Record {} B",
            size_of::<Cold>(),
            size_of::<Record>()
        );
        assert!(size_of::<Cold>() <= 64, "Cold is {} B", size_of::<Cold>());
        assert!(
            size_of::<Record>() <= 96,
            "Record is {} B",
            size_of::<Record>()
        );
    }

    /// A static label too long to pack in one word is kept, whole, with the texts; the
    /// ended task's record carries it either way.
    #[test]
    fn a_static_label_too_long_to_pack_is_kept_whole() {
        use super::super::clock::Stamp;
        use crate::{Priority, State, TaskId};
        use std::borrow::Cow;

        static LONG: [u8; 70_000] = [b'y'; 70_000];
        let long: &'static str = core::str::from_utf8(&LONG).unwrap();
        for label in ["thumbnail", long] {
            let mut cold = Cold::empty(Stamp::from_nanos(0));
            cold.set_label(Some(Cow::Borrowed(label)));
            assert_eq!(cold.label(), Some(label));
            assert_eq!(cold.label.is_some(), label.len() < 1 << 16);
            let id = TaskId::new(0, 1);
            let finished = cold.take_finished(id, State::Succeeded, Priority::NORMAL);
            assert_eq!(finished.label.as_deref(), Some(label));
        }
    }
}
