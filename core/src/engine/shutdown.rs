//! Waiting for the manager as a value: [`WaitForCompletion`] and [`Shutdown`], each
//! awaited (`.await`) by async code or waited for (`.wait()`) by blocking code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use event_listener::Event;

use super::context::{Host, Sleep};
use super::inner::Inner;
use super::snapshot::ShutdownReport;
use crate::settle::SettleWaiter;

/// Waits until every accepted task has ended (see
/// [`Manager::wait_for_completion`](super::Manager::wait_for_completion)), or also every
/// detached closure has returned ([`Manager::wait_for_detached`](super::Manager::wait_for_detached)):
/// `.await` it in async code, or call [`wait`](Self::wait) in blocking code. Its output
/// is whether that point was reached before the timeout.
///
/// Awaiting needs no runtime timer: the manager's own timer driver ends the wait at the
/// timeout, on every adapter.
#[must_use = "it does nothing until awaited or waited for"]
pub struct WaitForCompletion<'a> {
    inner: &'a Arc<Inner>,
    /// Whether detached closures are waited for too.
    detached: bool,
    deadline: Option<Instant>,
    waiter: Option<SettleWaiter<'a, Event>>,
    sleep: Option<Sleep>,
}

impl std::fmt::Debug for WaitForCompletion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitForCompletion")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'a> WaitForCompletion<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>, timeout: Duration, detached: bool) -> Self {
        Self {
            inner,
            detached,
            deadline: Instant::now().checked_add(timeout),
            waiter: None,
            sleep: None,
        }
    }

    /// Blocks this thread until every accepted task has ended (and, for
    /// `wait_for_detached`, every detached closure returned) or the timeout passes;
    /// whether that point was reached.
    pub fn wait(self) -> bool {
        self.inner.wait_quiet(self.detached, self.deadline)
    }
}

impl Future for WaitForCompletion<'_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<bool> {
        let this = &mut *self;
        loop {
            let waiter = match &mut this.waiter {
                Some(waiter) => waiter,
                None => match this.inner.quiet_or_listener(this.detached) {
                    None => return Poll::Ready(true),
                    Some(waiter) => this.waiter.insert(waiter),
                },
            };
            if Pin::new(&mut **waiter).poll(cx).is_ready() {
                // Notified: look again (with a fresh listener, if still not quiet).
                this.waiter = None;
                continue;
            }
            if let Some(deadline) = this.deadline {
                let sleep = this.sleep.get_or_insert_with(|| {
                    let host: Arc<dyn Host> = Arc::new(Arc::clone(this.inner));
                    Sleep::new(host, deadline)
                });
                if Pin::new(sleep).poll(cx).is_ready() {
                    return Poll::Ready(this.inner.is_quiet(this.detached));
                }
            }
            return Poll::Pending;
        }
    }
}

/// An orderly shutdown (see [`Manager::shutdown`](super::Manager::shutdown)): `.await` it
/// in async code, or call [`wait`](Self::wait) in blocking code. It stops accepting when
/// first polled (or waited for), waits up to its timeout for the tasks to end, then stops
/// the rest and the workers, and reports.
#[must_use = "it does nothing until awaited or waited for"]
pub struct Shutdown<'a> {
    inner: &'a Arc<Inner>,
    start: Instant,
    wait: Option<WaitForCompletion<'a>>,
    timeout: Duration,
}

impl std::fmt::Debug for Shutdown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'a> Shutdown<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>, timeout: Duration) -> Self {
        Self {
            inner,
            start: Instant::now(),
            wait: None,
            timeout,
        }
    }

    /// Blocks this thread through the shutdown and returns its report.
    pub fn wait(mut self) -> ShutdownReport {
        self.inner.stop_accepting();
        let completed = WaitForCompletion::new(self.inner, self.timeout, false).wait();
        self.finish(completed)
    }

    /// Stops what is left and reports; the durable layer writes what it was sent (the
    /// jobs stopped are given back to the store) and stops.
    fn finish(&mut self, completed: bool) -> ShutdownReport {
        let unfinished = self.inner.stop_all();
        self.inner.stop_workers();
        self.inner.stop_durable();
        ShutdownReport {
            completed: completed && unfinished.is_empty(),
            unfinished,
            detached: self.inner.detached_tasks(),
            elapsed: self.start.elapsed(),
        }
    }
}

impl Future for Shutdown<'_> {
    type Output = ShutdownReport;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<ShutdownReport> {
        let this = &mut *self;
        let wait = match &mut this.wait {
            Some(wait) => wait,
            None => {
                this.inner.stop_accepting();
                this.wait
                    .insert(WaitForCompletion::new(this.inner, this.timeout, false))
            }
        };
        match Pin::new(wait).poll(cx) {
            Poll::Ready(completed) => Poll::Ready(this.finish(completed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
