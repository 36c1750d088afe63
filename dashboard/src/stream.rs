//! The event stream: one engine subscription, started when the first stream opens and
//! dropped when the last one closes, fanned out to every stream as frames of at most
//! [`MAX_FRAME`] updates, at most every [`FRAME_EVERY`] (every [`FRAME_EVERY_BUSY`] while
//! the manager outruns them).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use errand_core::TaskId;
use errand_core::engine::{Manager, Runtime, TaskUpdate, UpdateKind};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::{Notify, broadcast};

use crate::Shared;

/// The most updates one frame carries: the latest of each task that changed, newest
/// first kept.
pub const MAX_FRAME: usize = 100;

/// The shortest time between two frames.
pub(crate) const FRAME_EVERY: Duration = Duration::from_millis(100);

/// The shortest time after a frame that was full or lost updates (the manager outruns
/// its streams: fewer, fuller frames bound what the streams cost it).
pub(crate) const FRAME_EVERY_BUSY: Duration = Duration::from_millis(500);

/// Frames a stream may fall behind by before it is told it lagged.
const BACKLOG: usize = 32;

/// How often an idle stream gets a keep-alive comment (which also finds a client that
/// went away).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// What the streams share: the frames, how many streams are open, whether the pump runs.
pub(crate) struct Hub {
    frames: broadcast::Sender<Arc<str>>,
    streams: AtomicUsize,
    pumping: Mutex<bool>,
    /// Told when the last stream closes.
    idle: Notify,
}

/// One frame, as sent.
#[derive(Serialize)]
struct Frame<'a> {
    /// Updates the engine wrote over before the pump read them.
    lost: u64,
    /// Updates left out of this frame: older ones of a task with a newer one here, those
    /// of tasks submitted and ended since the last frame, and any beyond [`MAX_FRAME`].
    coalesced: usize,
    updates: &'a [TaskUpdate],
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            frames: broadcast::channel(BACKLOG).0,
            streams: AtomicUsize::new(0),
            pumping: Mutex::new(false),
            idle: Notify::new(),
        }
    }

    /// Streams open now.
    pub(crate) fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }

    /// Opens a stream: counted (until its guard drops), and the pump started if it was
    /// not running.
    fn open<R: Runtime>(self: &Arc<Self>, manager: &Arc<Manager<R>>) -> Open {
        let frames = self.frames.subscribe();
        self.streams.fetch_add(1, Ordering::SeqCst);
        let mut pumping = self.pumping.lock().unwrap_or_else(PoisonError::into_inner);
        if !*pumping {
            *pumping = true;
            tokio::spawn(pump(Arc::clone(self), Arc::clone(manager)));
        }
        Open {
            frames,
            _guard: Guard(Arc::clone(self)),
        }
    }

    /// Whether the pump should stop (no stream is open); if so, it is marked stopped
    /// under the same lock an opening stream takes, so one of the two starts the next.
    fn stop_if_idle(&self) -> bool {
        let mut pumping = self.pumping.lock().unwrap_or_else(PoisonError::into_inner);
        if self.streams.load(Ordering::SeqCst) == 0 {
            *pumping = false;
            true
        } else {
            false
        }
    }
}

/// Counts a stream as open until dropped (the client went away, or the server stopped).
struct Guard(Arc<Hub>);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.streams.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_one();
        }
    }
}

struct Open {
    frames: broadcast::Receiver<Arc<str>>,
    _guard: Guard,
}

/// The pump: reads the manager's updates while a stream is open, and sends them on as
/// frames.
async fn pump<R: Runtime>(hub: Arc<Hub>, manager: Arc<Manager<R>>) {
    let mut updates = manager.subscribe();
    let mut batch = Vec::new();
    loop {
        if hub.stop_if_idle() {
            return;
        }
        tokio::select! {
            () = updates.changed() => {}
            () = hub.idle.notified() => continue,
        }
        batch.clear();
        let lost = updates.drain(&mut batch);
        let (mut kept, mut coalesced) = coalesce(&batch);
        let busy = lost > 0 || kept.len() >= MAX_FRAME;
        if lost > 0 {
            // Overloaded: the stream is incomplete anyway, and its readers resynchronise
            // from the snapshots; only progress, what they cannot poll smoothly, goes on.
            let before = kept.len();
            kept.retain(|update| matches!(update.kind, UpdateKind::Progress { .. }));
            coalesced += before - kept.len();
        }
        let frame = Frame {
            lost,
            coalesced,
            updates: &kept,
        };
        if let Ok(text) = serde_json::to_string(&frame) {
            // No receiver: the last stream just closed; the loop's check stops the pump.
            drop(hub.frames.send(text.into()));
        }
        tokio::time::sleep(if busy { FRAME_EVERY_BUSY } else { FRAME_EVERY }).await;
    }
}

/// What a frame carries of `batch` (oldest first): the latest update of each task that
/// changed, but none of a task that was submitted and ended within the batch (it was never
/// there to show; the counts say it happened), at most [`MAX_FRAME`] of them (the newest),
/// and how many updates were left out.
fn coalesce(batch: &[TaskUpdate]) -> (Vec<TaskUpdate>, usize) {
    let mut latest: HashMap<TaskId, usize> = HashMap::with_capacity(batch.len());
    let mut began: HashSet<TaskId> = HashSet::new();
    for (index, update) in batch.iter().enumerate() {
        latest.insert(update.id, index);
        if matches!(update.kind, UpdateKind::Submitted { .. }) {
            began.insert(update.id);
        }
    }
    let mut indices: Vec<usize> = latest
        .into_values()
        .filter(|&index| {
            let update = &batch[index];
            !(update.state.is_terminal() && began.contains(&update.id))
        })
        .collect();
    indices.sort_unstable();
    let skip = indices.len().saturating_sub(MAX_FRAME);
    let kept: Vec<TaskUpdate> = indices[skip..]
        .iter()
        .map(|&index| batch[index].clone())
        .collect();
    let left_out = batch.len() - kept.len();
    (kept, left_out)
}

/// `GET api/events`: the event stream. `event: updates` frames (JSON: `lost`,
/// `coalesced`, `updates`), `event: lagged` when this stream fell behind (its data: how
/// many frames it missed), a comment every few seconds while idle.
pub(crate) async fn events<R: Runtime>(
    State(shared): State<Arc<Shared<R>>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let open = shared.hub.open(&shared.manager);
    let hello = Event::default()
        .event("hello")
        .data(shared.hub.streams().to_string());
    let first = futures_util::stream::once(async move { Ok(hello) });
    let rest = futures_util::stream::unfold(open, |mut open| async move {
        let event = match open.frames.recv().await {
            Ok(frame) => Event::default().event("updates").data(&*frame),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), open))
    });
    Sse::new(futures_util::StreamExt::chain(first, rest))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}
