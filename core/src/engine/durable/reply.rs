//! Answers that come once the store committed: [`Committed`], to `.await` in async code
//! or `.wait()` in blocking code, and the keeper's side of it.

use std::boxed::Box;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use super::store::StoreError;
use crate::completion::{Completion, Taken};
use crate::engine::wait::block_on;

/// The slot an answer travels in: `None` published means the keeper dropped the request
/// unanswered (it stopped).
type Slot<T> = Completion<Option<T>>;

/// The keeper's side: answer once. Dropped unanswered, it answers "closed".
pub(crate) struct ReplyTx<T>(Option<Arc<Slot<T>>>);

impl<T> ReplyTx<T> {
    /// Answers with `value`.
    pub(crate) fn send(mut self, value: T) {
        if let Some(slot) = self.0.take() {
            // SAFETY: completion rule 1, this sender is the slot's only writer (it is not
            // `Clone`, and `send` consumes it), and it publishes once.
            unsafe {
                slot.with_slot(|answer| *answer = Some(value));
                slot.publish(0);
            }
        }
    }
}

impl<T> Drop for ReplyTx<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            // SAFETY: as in `send`: the only writer, publishing once (an empty answer).
            unsafe { slot.publish(0) };
        }
    }
}

impl<T> fmt::Debug for ReplyTx<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTx").finish_non_exhaustive()
    }
}

/// An answer from the durable store, ready once what was asked is committed: `.await` it
/// in async code, or call [`wait`](Committed::wait) in blocking code.
///
/// It owns what it needs (no borrow of the manager), so it can be moved into a task.
#[must_use = "an enqueue is acknowledged only once this is awaited or waited for"]
pub struct Committed<T> {
    slot: Arc<Slot<Raw>>,
    finish: Option<Finisher<T>>,
}

/// Turns the keeper's answer (or the store's closing) into a [`Committed`]'s output.
type Finisher<T> = Box<dyn FnOnce(Result<Raw, StoreError>) -> T + Send>;

/// What the keeper answers, before the waiter turns it into its `T`.
pub(crate) type Raw = Box<dyn std::any::Any + Send>;

impl<T> fmt::Debug for Committed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Committed")
            .field("done", &self.slot.latch().is_done())
            .finish_non_exhaustive()
    }
}

impl<T> Committed<T> {
    /// A pending answer and the keeper's side of it; `finish` turns the keeper's answer
    /// (or the store's closing) into `T`.
    pub(crate) fn pair(
        finish: impl FnOnce(Result<Raw, StoreError>) -> T + Send + 'static,
    ) -> (Self, ReplyTx<Raw>) {
        let slot = Arc::new(Completion::new(None));
        (
            Self {
                slot: Arc::clone(&slot),
                finish: Some(Box::new(finish)),
            },
            ReplyTx(Some(slot)),
        )
    }

    /// An answer that is ready now.
    pub(crate) fn ready(value: T) -> Self
    where
        T: Send + 'static,
    {
        let (committed, tx) = Self::pair(move |_| value);
        tx.send(Box::new(()));
        committed
    }

    /// Blocks this thread until the answer is ready.
    pub fn wait(self) -> T {
        block_on(self)
    }

    fn take(&mut self) -> Option<T> {
        let answer = match self.slot.take(Option::take)? {
            Taken::Published(Some(raw)) => Ok(raw),
            Taken::Published(None) | Taken::Aborted(_) => Err(StoreError::closed()),
        };
        let finish = self.finish.take().expect("an answer is taken once");
        Some(finish(answer))
    }
}

impl<T> Unpin for Committed<T> {}

impl<T> Future for Committed<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<T> {
        if let Some(answer) = self.take() {
            return Poll::Ready(answer);
        }
        // Register, then check again: an answer in between wakes this waker.
        self.slot.latch().register(cx.waker());
        match self.take() {
            Some(answer) => Poll::Ready(answer),
            None => Poll::Pending,
        }
    }
}
