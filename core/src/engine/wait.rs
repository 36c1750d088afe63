//! Waiting on this thread: the thread's waker, `block_on`, and waiting on an event until
//! a deadline. The bottom of the engine: it knows nothing of tasks.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use event_listener::{EventListener, Listener};

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

std::thread_local! {
    /// The current thread's waker, made once per thread rather than once per wait.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}

/// A waker that unparks the current thread. Callers park in a loop that re-checks their
/// condition, so a stale wake (meant for an earlier wait) costs one spurious re-check.
pub(crate) fn thread_waker() -> Waker {
    THREAD_WAKER.with(Waker::clone)
}

/// Polls `future` to completion on this thread, parking it while the future is pending.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let future = pin!(future);
    block_on_until(future, None).expect("no deadline to pass")
}

/// Polls `future` on this thread until it completes, or `deadline` passes (`None`; the
/// caller still has the future).
pub(crate) fn block_on_until<F: Future + ?Sized>(
    mut future: Pin<&mut F>,
    deadline: Option<Instant>,
) -> Option<F::Output> {
    let waker = thread_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

/// Waits on `listener` until it is notified or `deadline` passes; whether it was notified.
pub(crate) fn listen_until(listener: EventListener, deadline: Option<Instant>) -> bool {
    match deadline {
        Some(deadline) => listener.wait_deadline(deadline).is_some(),
        None => {
            listener.wait();
            true
        }
    }
}
