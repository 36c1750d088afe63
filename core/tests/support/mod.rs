//! Shared by the loom models: a loom stand-in for `event_listener::Event`.

use errand_core::Notify;
use loom::sync::{Condvar, Mutex};

/// An event count standing in for `event_listener::Event`: a listener is the number of
/// notifications made when it was created; its wait returns once that number moved, so a
/// notification after `listen` is never missed, whenever the wait starts.
#[derive(Default)]
pub(crate) struct Bell {
    rung: Mutex<usize>,
    ring: Condvar,
}

impl Bell {
    pub(crate) fn wait(&self, listener: usize) {
        let mut rung = self.rung.lock().unwrap();
        while *rung == listener {
            rung = self.ring.wait(rung).unwrap();
        }
    }

    fn bump(&self) {
        *self.rung.lock().unwrap() += 1;
        self.ring.notify_all();
    }
}

impl Notify for Bell {
    type Listener = usize;

    fn listen(&self) -> usize {
        *self.rung.lock().unwrap()
    }

    fn notify_one(&self) {
        self.bump();
    }

    fn notify_all(&self) {
        self.bump();
    }
}
