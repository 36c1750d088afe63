//! The firmware's task system: errand-core's primitives in static storage, a SysTick
//! handler that fires timers and makes their tasks ready, and a main-loop executor.
//!
//! # Who touches what
//!
//! | structure | main loop | SysTick handler |
//! |---|---|---|
//! | [`Table`] (slot table of [`Task`]s) | acquire, release, get | `id_at`, `get` (loads only) |
//! | [`Ready`] (priority queue of ids) | push, pop | push |
//! | [`Wheel`] (timer wheel) | insert, cancel, in a critical section | advance, in a critical section |
//! | [`MemoryBudget`] | reserve, release | — |
//! | a task's `StateCell` | every event but `Due` | `Due` |
//!
//! The queue is lock-free and multi-producer, so the handler pushes without a critical
//! section. One property makes that safe on a single core, where the handler cannot wait
//! for the code it interrupted: a push never finds its level full, because every level
//! holds [`TASKS`] ids and a task is in the queue at most once (so a push never waits for
//! a pop that the handler has interrupted). The handler never pops and never acquires a
//! slot (an acquire may wait for another acquire's move between free lists).
//!
//! The timer wheel is single-owner (`&mut self`), so both sides use it inside
//! `critical_section::with` (interrupts masked on this single core).

use core::cell::{OnceCell, RefCell};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, Ordering};

use critical_section::Mutex;
use errand_core::{
    Entry, Event, InlinePriorityQueue, MemoryBudget, Mode, PushError, SlotTable, TaskId,
    TimerEntry, TimerWheel,
};
use static_cell::StaticCell;

mod executor;
mod task;

pub use executor::{End, Executor, Ran};
pub use task::{Job, Refusal, Rejected, Task, Work};

/// How many tasks every structure is sized for.
#[cfg(not(feature = "tasks-32"))]
pub const TASKS: usize = 256;
/// How many tasks every structure is sized for (feature `tasks-32`).
#[cfg(feature = "tasks-32")]
pub const TASKS: usize = 32;

/// Timer ticks per second: one SysTick interrupt, one wheel tick, per millisecond.
pub const TICK_HZ: u32 = 1_000;

/// The slot table: one [`Task`] record per slot, inline.
pub type Table = SlotTable<Task, [Entry<Task>; TASKS]>;
/// The ready queue: four levels of `TASKS` ids each, inline.
pub type Ready = InlinePriorityQueue<TaskId, TASKS>;
/// The timer wheel: one timer per slot index, inline.
pub type Wheel = TimerWheel<[TimerEntry; TASKS]>;

/// Milliseconds since SysTick started, the low 32 bits of the timer wheel's tick (this
/// core has no 64-bit atomics); only the SysTick handler writes it.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Tasks taken off the ready queue so far (main loop).
static DISPATCHED: AtomicU32 = AtomicU32::new(0);
/// Tasks the SysTick handler made ready and pushed.
static ISR_PUSHES: AtomicU32 = AtomicU32::new(0);
/// Timers the handler could not turn into a ready task (must stay 0).
static ISR_FAULTS: AtomicU32 = AtomicU32::new(0);
/// A sink for the work's results, so the compiler cannot drop the work.
static CHECKSUM: AtomicU32 = AtomicU32::new(0);

/// Where the shared structures live: `.bss`, initialised at run time by [`install`].
static STORAGE: StaticCell<Shared> = StaticCell::new();
/// Where the timer wheel lives (`.bss` too): on its own, so that it is built in place
/// and then handed to the critical-section mutex in [`Shared::timers`] by reference.
static WHEEL: StaticCell<Wheel> = StaticCell::new();
/// How the SysTick handler finds them once they are installed.
static SHARED: Mutex<OnceCell<&'static Shared>> = Mutex::new(OnceCell::new());

/// The current tick: milliseconds since SysTick started, wrapping after 49 days (the timer
/// wheel itself counts in `u64` and does not wrap).
#[inline]
pub fn ticks() -> u32 {
    TICKS.load(Ordering::Relaxed)
}

/// Tasks the SysTick handler has made ready so far, and timers it failed to.
pub fn isr_counts() -> (u32, u32) {
    (
        ISR_PUSHES.load(Ordering::Relaxed),
        ISR_FAULTS.load(Ordering::Relaxed),
    )
}

/// The running checksum of every `Compute` job's result.
pub fn checksum() -> u32 {
    CHECKSUM.load(Ordering::Relaxed)
}

/// Everything the main loop and the SysTick handler share.
#[derive(Debug)]
pub struct Shared {
    /// Task records, by slot.
    pub tasks: Table,
    /// Ready task ids, by priority level.
    pub ready: Ready,
    /// Timers of scheduled and retrying tasks, by slot index (the wheel itself is in
    /// its own static).
    pub timers: Mutex<RefCell<&'static mut Wheel>>,
    /// The byte budget every task's payload is charged to.
    pub budget: MemoryBudget,
}

impl Shared {
    /// Marks `task` ready and pushes its id (main loop or SysTick handler).
    fn enqueue(&self, id: TaskId, task: &Task) -> Result<(), PushError<TaskId>> {
        task.mark
            .store(DISPATCHED.load(Ordering::Relaxed) as u16, Ordering::Relaxed);
        self.ready.push(id, task.priority())
    }

    /// SysTick side: the timer of slot `index` fired; make its task ready.
    fn timer_fired(&self, index: usize) {
        let pushed = self.tasks.id_at(index).is_some_and(|id| {
            self.tasks.get(id).is_some_and(|task| {
                task.state.apply(Event::Due).is_ok() && self.enqueue(id, task).is_ok()
            })
        });
        let counter = if pushed { &ISR_PUSHES } else { &ISR_FAULTS };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of timers pending.
    pub fn timers_pending(&self) -> usize {
        critical_section::with(|cs| self.timers.borrow_ref(cs).len())
    }
}

/// Builds the shared structures in their static homes and publishes them to the SysTick
/// handler. Call once, before SysTick is enabled.
///
/// Each structure is built in place (`init_in`), slot by slot, so start-up needs almost
/// no stack: built by value and moved, the three would need several times their size in
/// stack at once (see the README on start-up stack).
///
/// # Panics
///
/// On a second call.
#[inline(never)]
pub fn install(budget_bytes: usize) -> &'static Shared {
    let wheel: &'static mut Wheel = Wheel::init_in(WHEEL.uninit());
    let cell = STORAGE.uninit();
    let home = cell.as_mut_ptr();
    // SAFETY: `home` points to memory for a `Shared` that is ours alone (`uninit` hands it
    // out once); each field is written once, in place, and none is read before. A
    // `MaybeUninit<T>` has the layout of `T`, so a field's place may be viewed as one.
    unsafe {
        Table::init_in(
            &mut *(&raw mut (*home).tasks).cast::<MaybeUninit<Table>>(),
            |_| Task::vacant(),
        );
        Ready::init_in(
            &mut *(&raw mut (*home).ready).cast::<MaybeUninit<Ready>>(),
            Mode::Strict,
        );
        (&raw mut (*home).timers).write(Mutex::new(RefCell::new(wheel)));
        (&raw mut (*home).budget).write(MemoryBudget::new(budget_bytes));
    }
    // SAFETY: every field was initialised above.
    let shared: &'static Shared = unsafe { cell.assume_init_ref() };
    critical_section::with(|cs| {
        assert!(SHARED.borrow(cs).set(shared).is_ok(), "installed twice");
    });
    shared
}

/// The SysTick handler's work: advance the clock by one tick, fire every timer now due and
/// push the tasks they belong to onto the ready queue.
pub fn on_tick() {
    critical_section::with(|cs| {
        let Some(shared) = SHARED.borrow(cs).get().copied() else {
            return;
        };
        let mut wheel = shared.timers.borrow_ref_mut(cs);
        let now = wheel.now() + 1;
        TICKS.store(now as u32, Ordering::Relaxed);
        wheel.advance(now, |index| shared.timer_fired(index));
    });
}
