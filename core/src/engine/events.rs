//! Task updates for whoever listens: a [`TaskUpdate`] for every transition a task makes
//! (submitted, started, retrying, rescheduled, ended) and every progress report, read
//! through an [`Updates`] subscription (a dashboard's event stream, a progress bar).
//!
//! # Costs and bounds
//!
//! 1. **Nobody listens: one relaxed load.** Every place that could publish an update first
//!    reads the count of live subscriptions (`Relaxed`: a subscription that begins
//!    concurrently may miss the updates of that instant, which is what beginning means);
//!    at zero it builds nothing and writes nothing.
//! 2. **Somebody listens: no shared line per update.** Updates are written to one of a
//!    few rings, picked by the writing thread (as the engine's counters are sharded), each
//!    behind a lock of its own that only its threads and a draining reader take, so
//!    workers do not contend. A reader merges the rings by the updates' timestamps.
//! 3. **Bounded.** Each ring keeps its last [`RING`] updates, allocated when the first
//!    subscription begins; a writer overwrites the oldest, it never waits for a reader.
//!    A reader that fell behind learns how many updates it lost ([`Updates::drain`]).
//! 4. **Many readers cost the writers nothing more.** Readers keep their own cursors;
//!    writers do not know how many there are.
//!
//! 5. **A writer wakes readers only while one waits.** A reader about to wait counts
//!    itself in `waiting` (`SeqCst`), listens, and only then looks at the rings (under
//!    their locks); a writer, after releasing its ring's lock, notifies only if it reads
//!    a waiter. Either the reader's look comes after the write in the ring's lock order
//!    and sees it, or the write comes after the look: the reader's count, made before the
//!    look, happens-before the writer's read through the lock, which then sees it and
//!    notifies. So a write costs a plain load, not event-listener's fence.
//!
//! Updates of one task from different threads (its submission, its worker, a cancel) may
//! reach a reader in different drains; each carries its time ([`TaskUpdate::at`]), so a
//! reader that keeps the latest per task never goes back.

use std::borrow::Cow;
use std::boxed::Box;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::string::String;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use std::vec::Vec;

use crossbeam_utils::CachePadded;
use event_listener::{Event, EventListener};

use super::clock::Stamp;
use super::inner::{Inner, lock};
use super::wait::listen_until;
use crate::{Priority, State, TaskId};

/// Updates each ring keeps (the last ones written through it).
pub(crate) const RING: usize = 1024;

/// What happened to a task (see [`TaskUpdate`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum UpdateKind {
    /// Accepted: queued, or waiting for its start time.
    Submitted {
        /// Its priority.
        priority: Priority,
        /// Its label, if it was given one.
        label: Option<Cow<'static, str>>,
    },
    /// An attempt started.
    Started {
        /// Which attempt (1 for the first).
        attempt: u32,
    },
    /// The running attempt reported progress.
    Progress {
        /// Percent, `0.0..=100.0`.
        percent: f64,
        /// The message of the report.
        message: String,
    },
    /// An attempt failed and the task waits for its retry.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// Its error, as text.
        error: Option<String>,
        /// When the retry is due.
        next_run: SystemTime,
    },
    /// A recurring task's run succeeded and the task waits for its next run.
    Rescheduled {
        /// When the next run is due (now, if it is queued already).
        next_run: SystemTime,
    },
    /// The task ended: succeeded, failed, cancelled, timed out (the update's state says
    /// which).
    Ended {
        /// Attempts it started.
        attempt: u32,
        /// Its last error, as text, if it did not succeed.
        error: Option<String>,
    },
}

/// One change of one task, as an [`Updates`] subscription reads it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TaskUpdate {
    /// The task.
    pub id: TaskId,
    /// When it happened.
    pub at: SystemTime,
    /// The task's state after it.
    pub state: State,
    /// What happened.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: UpdateKind,
}

/// An update as a ring keeps it: engine time, text shared between readers.
#[derive(Clone)]
struct Raw {
    id: TaskId,
    at: Stamp,
    state: State,
    kind: RawKind,
}

#[derive(Clone)]
enum RawKind {
    Submitted(Priority, Option<Cow<'static, str>>),
    Started(u32),
    Progress(f64, Arc<str>),
    Retrying(u32, Option<Arc<str>>, Stamp),
    Rescheduled(Stamp),
    Ended(u32, Option<Arc<str>>),
}

/// One ring: the last [`RING`] updates its threads wrote, and how many were ever written
/// (the sequence number of the next).
struct Ring {
    written: u64,
    kept: VecDeque<Raw>,
}

/// The engine's side: the subscription count, the rings, the event readers wait on.
pub(crate) struct Events {
    /// Live subscriptions (rule 1).
    listeners: AtomicUsize,
    rings: OnceLock<Box<[CachePadded<Mutex<Ring>>]>>,
    /// Rings to make: a power of two.
    count: usize,
    /// Notified after an update is written, while a reader waits (rule 5).
    written: Event,
    /// Readers waiting for an update now (rule 5).
    waiting: AtomicUsize,
}

impl Events {
    /// Room for `workers` workers, the timer driver and a submitting thread, rarely two
    /// threads per ring (at most 16 rings).
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            listeners: AtomicUsize::new(0),
            rings: OnceLock::new(),
            count: workers.saturating_add(2).next_power_of_two().min(16),
            written: Event::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Whether anyone listens (rule 1): the one load the hot path pays.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) != 0
    }

    fn rings(&self) -> &[CachePadded<Mutex<Ring>>] {
        self.rings.get_or_init(|| {
            (0..self.count)
                .map(|_| {
                    CachePadded::new(Mutex::new(Ring {
                        written: 0,
                        kept: VecDeque::with_capacity(RING),
                    }))
                })
                .collect()
        })
    }

    /// Writes `raw` to the calling thread's ring (rule 2), dropping the oldest update
    /// there if it is full (rule 3).
    #[cold]
    fn write(&self, raw: Raw) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        std::thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let rings = self.rings();
        let index = INDEX.with(|index| *index) & (rings.len() - 1);
        {
            let mut ring = lock(&rings[index]);
            if ring.kept.len() == RING {
                ring.kept.pop_front();
            }
            ring.kept.push_back(raw);
            ring.written += 1;
        }
        // Rule 5: a reader that waits counted itself before it looked at the rings.
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.written.notify(usize::MAX);
        }
    }
}

/// A text shared by every reader of an update.
fn shared(text: Option<&str>) -> Option<Arc<str>> {
    text.map(Arc::from)
}

impl Inner {
    /// Task `id` was accepted at `at`, into `state` (queued or scheduled). The caller
    /// checked [`Events::on`] (it cloned the label only then).
    pub(crate) fn tell_submitted(
        &self,
        id: TaskId,
        at: Stamp,
        state: State,
        priority: Priority,
        label: Option<Cow<'static, str>>,
    ) {
        self.events.write(Raw {
            id,
            at,
            state,
            kind: RawKind::Submitted(priority, label),
        });
    }

    /// Attempt `attempt` of task `id` started at `at` (nanoseconds since the epoch).
    #[inline]
    pub(crate) fn tell_started(&self, id: TaskId, at: u64, attempt: u32) {
        if self.events.on() {
            self.events.write(Raw {
                id,
                at: Stamp::from_nanos(at),
                state: State::Running,
                kind: RawKind::Started(attempt),
            });
        }
    }

    /// The running task `id` reported progress.
    #[inline]
    pub(crate) fn tell_progress(&self, id: TaskId, percent: f64, message: &str) {
        if self.events.on() {
            self.events.write(Raw {
                id,
                at: self.clock.now(),
                state: State::Running,
                kind: RawKind::Progress(percent, Arc::from(message)),
            });
        }
    }

    /// Attempt `attempt` of task `id` failed with `error`; its retry is due after `delay`.
    pub(crate) fn tell_retrying(
        &self,
        id: TaskId,
        attempt: u32,
        error: Option<&str>,
        delay: Duration,
    ) {
        #[cfg(feature = "tracing")]
        tracing::warn!(task = %id, attempt, error = error.unwrap_or(""), delay_ms = delay.as_millis() as u64, "errand: attempt failed, retrying");
        if self.events.on() {
            let at = self.clock.now();
            let due = Stamp::from_nanos(
                at.nanos()
                    .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)),
            );
            self.events.write(Raw {
                id,
                at,
                state: State::Retrying,
                kind: RawKind::Retrying(attempt, shared(error), due),
            });
        }
    }

    /// A run of the recurring task `id` succeeded; the next is due at `due` (`None`: now).
    pub(crate) fn tell_rescheduled(&self, id: TaskId, due: Option<Instant>) {
        if self.events.on() {
            let at = self.clock.now();
            let next = due.map_or(at, |due| self.clock.stamp(due));
            let state = if due.is_some() {
                State::Scheduled
            } else {
                State::Queued
            };
            self.events.write(Raw {
                id,
                at,
                state,
                kind: RawKind::Rescheduled(next),
            });
        }
    }

    /// Task `id` ended in `state` after `attempt` attempts, with `error` unless it
    /// succeeded. `at`: when, if the caller read the clock.
    #[inline]
    pub(crate) fn tell_ended(
        &self,
        id: TaskId,
        state: State,
        attempt: u32,
        error: Option<&str>,
        at: Option<Stamp>,
    ) {
        #[cfg(feature = "tracing")]
        match state {
            State::Failed => {
                tracing::error!(task = %id, attempt, error = error.unwrap_or(""), "errand: task failed")
            }
            State::TimedOut => tracing::warn!(task = %id, attempt, "errand: task timed out"),
            State::Cancelled => tracing::info!(task = %id, attempt, "errand: task cancelled"),
            _ => tracing::trace!(task = %id, attempt, state = %state, "errand: task ended"),
        }
        if self.events.on() {
            self.events.write(Raw {
                id,
                at: at.unwrap_or_else(|| self.clock.now()),
                state,
                kind: RawKind::Ended(attempt, shared(error)),
            });
        }
    }
}

/// A subscription to a manager's task updates (see
/// [`Manager::subscribe`](super::Manager::subscribe)): it sees what happens after it
/// began, as long as it keeps up; [`drain`](Self::drain) says how many it missed.
///
/// Dropping it ends the subscription; with none left, the engine goes back to publishing
/// nothing.
///
/// # Examples
///
/// ```
/// # use errand_core::engine::{Driver, Runtime};
/// # #[derive(Clone)]
/// # struct Threads;
/// # impl Runtime for Threads {
/// #     fn spawn(&self, driver: Driver<Self>) -> std::io::Result<()> {
/// #         std::thread::Builder::new().spawn(move || driver.run_blocking()).map(drop)
/// #     }
/// # }
/// use std::time::Duration;
/// use errand_core::State;
/// use errand_core::engine::{BoxError, Builder, Context, Task, UpdateKind};
///
/// let manager = Builder::new(Threads).workers(1).build().unwrap();
/// let mut updates = manager.subscribe();
/// let handle = manager
///     .submit(Task::blocking(|ctx: &Context| {
///         ctx.progress(50.0, "halfway")?;
///         Ok::<_, BoxError>(())
///     }))
///     .unwrap();
/// let id = handle.id();
/// handle.wait().unwrap();
///
/// // Gather updates until the task's end shows up (each wait is for the next write).
/// let mut seen = Vec::new();
/// while !seen.iter().any(|u: &errand_core::engine::TaskUpdate| u.state == State::Succeeded) {
///     assert_eq!(updates.drain(&mut seen), 0, "nothing lost");
///     if !seen.iter().any(|u| u.state == State::Succeeded) {
///         assert!(updates.wait(Duration::from_secs(10)), "the end arrives");
///     }
/// }
/// let kinds: Vec<_> = seen.iter().filter(|u| u.id == id).map(|u| &u.kind).collect();
/// assert!(matches!(kinds[0], UpdateKind::Submitted { .. }));
/// assert!(matches!(kinds[1], UpdateKind::Started { attempt: 1 }));
/// assert!(matches!(kinds[2], UpdateKind::Progress { percent, .. } if *percent == 50.0));
/// assert!(matches!(kinds[3], UpdateKind::Ended { attempt: 1, error: None }));
/// ```
pub struct Updates {
    inner: Arc<Inner>,
    /// Per ring: the sequence number of the next update to read.
    cursors: Box<[u64]>,
}

impl std::fmt::Debug for Updates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates")
            .field("rings", &self.cursors.len())
            .finish_non_exhaustive()
    }
}

impl Updates {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let events = &inner.events;
        events.listeners.fetch_add(1, Ordering::SeqCst);
        let cursors = events
            .rings()
            .iter()
            .map(|ring| lock(ring).written)
            .collect();
        Self { inner, cursors }
    }

    /// Appends every update written since the last drain to `into`, oldest first; how
    /// many were lost meanwhile (written over before this subscription read them: it fell
    /// more than a ring's worth behind).
    pub fn drain(&mut self, into: &mut Vec<TaskUpdate>) -> u64 {
        let mut raws = Vec::new();
        let mut lost = 0;
        for (ring, cursor) in self
            .inner
            .events
            .rings()
            .iter()
            .zip(self.cursors.iter_mut())
        {
            let ring = lock(ring);
            let oldest = ring.written - ring.kept.len() as u64;
            if *cursor < oldest {
                lost += oldest - *cursor;
                *cursor = oldest;
            }
            let skip = usize::try_from(*cursor - oldest).unwrap_or(usize::MAX);
            raws.extend(ring.kept.iter().skip(skip).cloned());
            *cursor = ring.written;
        }
        raws.sort_by_key(|raw| raw.at);
        let clock = &self.inner.clock;
        let text = |text: &Option<Arc<str>>| text.as_deref().map(String::from);
        into.extend(raws.into_iter().map(|raw| TaskUpdate {
            id: raw.id,
            at: clock.wall_of(raw.at),
            state: raw.state,
            kind: match raw.kind {
                RawKind::Submitted(priority, label) => UpdateKind::Submitted { priority, label },
                RawKind::Started(attempt) => UpdateKind::Started { attempt },
                RawKind::Progress(percent, message) => UpdateKind::Progress {
                    percent,
                    message: String::from(&*message),
                },
                RawKind::Retrying(attempt, error, due) => UpdateKind::Retrying {
                    attempt,
                    error: text(&error),
                    next_run: clock.wall_of(due),
                },
                RawKind::Rescheduled(due) => UpdateKind::Rescheduled {
                    next_run: clock.wall_of(due),
                },
                RawKind::Ended(attempt, error) => UpdateKind::Ended {
                    attempt,
                    error: text(&error),
                },
            },
        }));
        lost
    }

    /// Whether an update was written since the last drain (or lost since).
    #[must_use]
    pub fn has_new(&self) -> bool {
        let rings = self.inner.events.rings();
        rings
            .iter()
            .zip(self.cursors.iter())
            .any(|(ring, cursor)| lock(ring).written != *cursor)
    }

    /// Blocks this thread until an update is written after the last drain, or `timeout`
    /// passes; whether one was.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.has_new() {
                return true;
            }
            let waiting = Waiting::new(&self.inner);
            let listener = self.inner.events.written.listen();
            // Listen, then check again: a write between the two notifies the listener.
            if self.has_new() {
                return true;
            }
            let woken = listen_until(listener, deadline);
            drop(waiting);
            if !woken {
                return self.has_new();
            }
        }
    }

    /// Completes once an update is written after the last drain (at once if one was).
    pub fn changed(&mut self) -> Changed<'_> {
        Changed {
            updates: self,
            listener: None,
        }
    }
}

impl Drop for Updates {
    fn drop(&mut self) {
        self.inner.events.listeners.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The future of [`Updates::changed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'a> {
    updates: &'a mut Updates,
    listener: Option<(EventListener, Waiting)>,
}

/// A reader counted as waiting (rule 5) while this lives.
struct Waiting(Arc<Inner>);

impl Waiting {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.events.waiting.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(inner))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.events.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Changed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changed").finish_non_exhaustive()
    }
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if this.updates.has_new() {
                return Poll::Ready(());
            }
            match &mut this.listener {
                Some((listener, _)) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
                None => {
                    // Count, listen, then check again (at the top of the loop): rule 5.
                    let waiting = Waiting::new(&this.updates.inner);
                    let listener = this.updates.inner.events.written.listen();
                    this.listener = Some((listener, waiting));
                }
            }
        }
    }
}
