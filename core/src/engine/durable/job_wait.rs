//! Waiting for a durable job to finish: [`Manager::wait_job`] and its [`JobWait`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use event_listener::EventListener;

use super::job::{JobId, JobInfo, now_millis};
use super::store::StoreError;
use crate::engine::context::{Host, Sleep};
use crate::engine::inner::Inner;
use crate::engine::{Manager, Runtime};

impl<R: Runtime> Manager<R> {
    /// Waits until durable job `id` has finished (its end committed) or `timeout` passes:
    /// `.await` it, or `.wait()`. Its output is the job as it is then (finished or not),
    /// `None` if there is no such job.
    pub fn wait_job(&self, id: JobId, timeout: Duration) -> JobWait<'_> {
        JobWait {
            inner: &self.inner,
            id,
            deadline: Instant::now().checked_add(timeout),
            listener: None,
            sleep: None,
        }
    }
}

/// Waits for a durable job to finish (see [`Manager::wait_job`]): `.await` it, or call
/// [`wait`](JobWait::wait).
#[must_use = "it does nothing until awaited or waited for"]
pub struct JobWait<'a> {
    inner: &'a Arc<Inner>,
    id: JobId,
    deadline: Option<Instant>,
    listener: Option<EventListener>,
    sleep: Option<Sleep>,
}

impl fmt::Debug for JobWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobWait")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl JobWait<'_> {
    /// The job's row, if it has finished (or does not exist): `None` to keep waiting.
    fn check(&self) -> Option<Result<Option<JobInfo>, StoreError>> {
        let Some(shared) = self.inner.durable.get() else {
            return Some(Err(StoreError::closed()));
        };
        match shared.reader.job(self.id) {
            Ok(Some(row)) if !row.state.is_finished() => None,
            Ok(row) => Some(Ok(row.map(|row| JobInfo::of(row, now_millis())))),
            Err(error) => Some(Err(error)),
        }
    }

    /// The job as it is now, after the deadline.
    fn now(&self) -> Result<Option<JobInfo>, StoreError> {
        let shared = self.inner.durable.get().ok_or_else(StoreError::closed)?;
        Ok(shared
            .reader
            .job(self.id)?
            .map(|row| JobInfo::of(row, now_millis())))
    }

    /// Blocks this thread until the job finishes or the timeout passes.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read.
    pub fn wait(self) -> Result<Option<JobInfo>, StoreError> {
        loop {
            if let Some(done) = self.check() {
                return done;
            }
            let Some(shared) = self.inner.durable.get() else {
                return Err(StoreError::closed());
            };
            let listener = shared.committed.listen();
            if let Some(done) = self.check() {
                return done;
            }
            if !crate::engine::wait::listen_until(listener, self.deadline) {
                return self.now();
            }
        }
    }
}

impl Future for JobWait<'_> {
    type Output = Result<Option<JobInfo>, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Some(listener) = &mut this.listener {
                if Pin::new(listener).poll(cx).is_pending() {
                    if let Some(deadline) = this.deadline {
                        let sleep = this.sleep.get_or_insert_with(|| {
                            let host: Arc<dyn Host> = Arc::new(Arc::clone(this.inner));
                            Sleep::new(host, deadline)
                        });
                        if Pin::new(sleep).poll(cx).is_ready() {
                            return Poll::Ready(this.now());
                        }
                    }
                    return Poll::Pending;
                }
                this.listener = None;
            }
            if let Some(done) = this.check() {
                return Poll::Ready(done);
            }
            let Some(shared) = this.inner.durable.get() else {
                return Poll::Ready(Err(StoreError::closed()));
            };
            // Listen, then check again (at the top of the loop): no commit is missed.
            this.listener = Some(shared.committed.listen());
            if let Some(done) = this.check() {
                return Poll::Ready(done);
            }
        }
    }
}
