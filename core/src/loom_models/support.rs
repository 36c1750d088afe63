//! Shared by the loom models: a loom stand-in for `event_listener::Event`.

use std::vec::Vec;

use crate::park::Notify;
use loom::sync::{Arc, Condvar, Mutex};

/// A stand-in for `event_listener::Event` with its exact wake-up semantics, so a model
/// that needs one more wake-up than it gets deadlocks:
///
/// - `notify_one` marks one more listener notified (the oldest not yet notified), as
///   `event.notify(1.additional())` does; `notify_all` marks them all;
/// - a listener's wait returns once it is marked, whenever the wait starts;
/// - a listener dropped while marked (notified but never waited on) passes its mark to
///   the oldest unmarked listener, as `EventListener`'s drop does.
#[derive(Default)]
pub(crate) struct Bell {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    ring: Condvar,
}

#[derive(Default)]
struct State {
    next: usize,
    /// Registered listeners, oldest first: (id, notified).
    listeners: Vec<(usize, bool)>,
}

impl State {
    /// Marks the oldest unmarked listener; false if there is none.
    fn mark_one(&mut self) -> bool {
        match self.listeners.iter_mut().find(|(_, marked)| !*marked) {
            Some(entry) => {
                entry.1 = true;
                true
            }
            None => false,
        }
    }
}

/// One registration on a [`Bell`].
pub(crate) struct Ticket {
    id: usize,
    inner: Arc<Inner>,
}

impl Bell {
    /// Blocks until `ticket` is notified, then consumes the notification.
    pub(crate) fn wait(&self, ticket: Ticket) {
        let mut state = self.inner.state.lock().unwrap();
        loop {
            let at = state
                .listeners
                .iter()
                .position(|(id, _)| *id == ticket.id)
                .expect("a live ticket is registered");
            if state.listeners[at].1 {
                state.listeners.remove(at);
                break;
            }
            state = self.inner.ring.wait(state).unwrap();
        }
        drop(state);
        // Consumed: the drop below finds no entry and passes nothing on.
        drop(ticket);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.inner.state.lock().unwrap();
        if let Some(at) = state.listeners.iter().position(|(id, _)| *id == self.id) {
            let (_, marked) = state.listeners.remove(at);
            if marked && state.mark_one() {
                self.inner.ring.notify_all();
            }
        }
    }
}

impl Notify for Bell {
    type Listener<'a> = Ticket;

    fn listen(&self) -> Ticket {
        let mut state = self.inner.state.lock().unwrap();
        let id = state.next;
        state.next += 1;
        state.listeners.push((id, false));
        Ticket {
            id,
            inner: Arc::clone(&self.inner),
        }
    }

    fn notify_one(&self) {
        if self.inner.state.lock().unwrap().mark_one() {
            self.inner.ring.notify_all();
        }
    }

    fn notify_all(&self) {
        let mut state = self.inner.state.lock().unwrap();
        for entry in &mut state.listeners {
            entry.1 = true;
        }
        drop(state);
        self.inner.ring.notify_all();
    }
}
