//! A task's one allocation, as the engine runs it: its work (a blocking closure, or an
//! async closure and its running future) and its typed completion, behind the engine's
//! unique [`JobRef`] and the handle's [`Handle`] view.
//!
//! Every call into the task's code goes through [`guard`](super::guard): running it,
//! polling it, building its future, converting its error, dropping its closure, its
//! future and its value, cloning its value for the result store.

#![allow(
    private_interfaces,
    reason = "`sealed::Erase` (task.rs) is unnameable outside the crate; its methods name these types"
)]

use std::any::Any;
use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::Poll;

use super::context::Context;
use super::error::{BoxError, TaskError};
use super::guard::{self, Caught, Notes};
use super::spec::StoreFn;
use crate::State;
use crate::completion::{Completion, Latch, Taken};

/// What one attempt ended with: `Ok` when the task returned a value (staged in its
/// completion), the error otherwise.
pub(crate) type Outcome = Result<(), TaskError>;

/// A value cloned into the result store, and the bytes it is charged.
pub(crate) type StoredValue = (Arc<dyn Any + Send + Sync>, usize);

/// Where a task's value travels from the worker to its handle.
pub(crate) enum Slot<T> {
    /// Nothing yet.
    Empty,
    /// The last attempt returned this value; not published until the task ends.
    Staged(T),
    /// Published: the handle may take it.
    Ready(Result<T, TaskError>),
}

/// An async job's closure and the future of its running attempt (pinned in place: the
/// cell never moves).
pub(crate) struct AsyncWork<F, Fut> {
    pub(crate) f: F,
    pub(crate) future: Option<Fut>,
}

/// A task's one allocation: its work and its typed completion.
///
/// Two kinds of reference point at it. The engine's [`JobRef`] is unique (never cloned)
/// and moves with the task's job token (the state cell's hand-off rules): only its holder
/// touches `work`, and writes the completion (its rule 1). The handle touches only the
/// completion, as its taker. An aborter (a timeout or cancel of a running blocking
/// attempt) reaches only the completion's [`Latch`].
pub(crate) struct Cell<W, T> {
    completion: Completion<Slot<T>>,
    /// `None` once the job is released (the closure and any future dropped).
    work: UnsafeCell<Option<W>>,
}

// SAFETY: `work` is touched only by the unique `JobRef` holder (`&mut JobRef`, so one
// thread at a time), and the completion is `Sync` on its own rules; `W: Send` and
// `T: Send` because both move between threads with the job.
unsafe impl<W: Send, T: Send> Sync for Cell<W, T> {}

impl<W, T> Cell<W, T>
where
    W: Send + 'static,
    T: Send + 'static,
    Cell<W, T>: ErasedJob,
{
    /// One allocation, referenced by the engine's job and the task's handle.
    pub(crate) fn into_parts(work: W) -> (JobRef, Handle<T>) {
        let cell = Arc::new(Cell {
            completion: Completion::new(Slot::Empty),
            work: UnsafeCell::new(Some(work)),
        });
        let handle: Handle<T> = cell.clone();
        (JobRef(cell), handle)
    }
}

impl<W, T> Cell<W, T> {
    /// The work, for the `JobRef` holder.
    ///
    /// # Safety
    ///
    /// The caller holds the cell's `JobRef` mutably (so no other reference to the work
    /// exists), and the job is not released.
    #[allow(clippy::mut_from_ref, reason = "exclusive through the unique JobRef")]
    unsafe fn work(&self) -> &mut W {
        // SAFETY: the caller's contract.
        unsafe {
            (*self.work.get())
                .as_mut()
                .expect("a released job is not run")
        }
    }

    /// Keeps the value of a successful attempt until the task's end is decided. Runs in
    /// the attempt's guard: dropping an earlier run's value is the task's code too.
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder, before the end is published (completion rule 1).
    unsafe fn stage(&self, value: T) {
        // SAFETY: the caller's contract.
        let earlier = unsafe {
            self.completion
                .with_slot(|slot| core::mem::replace(slot, Slot::Staged(value)))
        };
        drop(earlier);
    }

    /// Publishes the end: the staged value on `Ok`, the error otherwise; drops whatever
    /// the handle will not get (a staged value of a failed task, or the whole end of an
    /// aborted one).
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder, once (completion rules 1-2).
    unsafe fn finish(&self, result: Outcome, notes: &mut Notes) {
        // SAFETY: the caller's contract.
        let (code, leftover) = unsafe {
            self.completion.with_slot(|slot| {
                let staged = core::mem::replace(slot, Slot::Empty);
                let (ready, leftover) = match (result, staged) {
                    (Ok(()), Slot::Staged(value)) => (Ok(value), None),
                    (Ok(()), other) => (
                        Err(TaskError::failed("the task produced no value")),
                        Some(other),
                    ),
                    (Err(error), other) => (Err(error), Some(other)),
                };
                let code = match &ready {
                    Ok(_) => State::Succeeded,
                    Err(error) => error.state(),
                } as u8;
                *slot = Slot::Ready(ready);
                (code, leftover)
            })
        };
        if let Some(leftover) = leftover {
            notes.check("dropping the task's value", guard::drop(leftover));
        }
        // SAFETY: the caller's contract.
        if !unsafe { self.completion.publish(code) } {
            // Aborted first (a detached attempt): the end stays ours to drop (rule 2).
            // SAFETY: completion rule 1, an aborted slot is the writer's.
            let end = unsafe {
                self.completion
                    .with_slot(|slot| core::mem::replace(slot, Slot::Empty))
            };
            notes.check("dropping the detached attempt's output", guard::drop(end));
        }
    }

    /// Clones the staged value for the result store.
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder, before the end is published.
    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<Result<StoredValue, Caught>>
    where
        T: 'static,
    {
        // SAFETY: the caller's contract.
        unsafe {
            self.completion.with_slot(|slot| match slot {
                Slot::Staged(value) => Some(guard::run(|| clone(value)).transpose()?),
                _ => None,
            })
        }
    }

    /// Lends the staged value, if any, to `f`.
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder, before the end is published.
    unsafe fn inspect_staged(&self, f: &mut dyn FnMut(&dyn Any))
    where
        T: 'static,
    {
        // SAFETY: the caller's contract.
        unsafe {
            self.completion.with_slot(|slot| {
                if let Slot::Staged(value) = slot {
                    f(value);
                }
            });
        }
    }

    /// Drops the work (the closure, and any future).
    ///
    /// # Safety
    ///
    /// Called by the `JobRef` holder; nothing borrows the work across this call.
    unsafe fn release(&self) -> Result<(), Caught> {
        // SAFETY: the caller's contract.
        let work = unsafe { (*self.work.get()).take() };
        guard::drop(work)
    }
}

/// The handle's side of a task's allocation.
pub(crate) type Handle<T> = Arc<dyn Completes<T>>;

/// Reaches the completion inside a task's allocation (whatever its work's type).
pub(crate) trait Completes<T>: Send + Sync {
    fn completion(&self) -> &Completion<Slot<T>>;
}

impl<W: Send, T: Send> Completes<T> for Cell<W, T> {
    fn completion(&self) -> &Completion<Slot<T>> {
        &self.completion
    }
}

/// Takes a task's end from its completion, as its handle: the value or the error, once;
/// `None` before the end (or once taken).
pub(crate) fn take_end<T>(completion: &Completion<Slot<T>>) -> Option<Result<T, TaskError>> {
    match completion.take(|slot| core::mem::replace(slot, Slot::Empty))? {
        Taken::Published(Slot::Ready(end)) => Some(end),
        Taken::Published(_) => unreachable!("a published completion holds its end"),
        Taken::Aborted(code) => Some(Err(TaskError::for_state(state_of(code)))),
    }
}

/// The terminal state a completion's code stands for.
pub(crate) fn state_of(code: u8) -> State {
    State::ALL
        .into_iter()
        .find(|state| *state as u8 == code)
        .unwrap_or(State::Cancelled)
}

/// The engine's side of a task's allocation, behind one object-safe interface for every
/// kind of job.
///
/// # Safety
///
/// Every `unsafe` method may be called only by the holder of the cell's unique
/// [`JobRef`], through `&mut JobRef` (or by value): that is what makes the work and the
/// staged value exclusively theirs.
pub(crate) trait ErasedJob: Send + Sync {
    /// Whether attempts are futures (polled by [`poll_attempt`](Self::poll_attempt)).
    fn is_async(&self) -> bool;
    /// The completion's latch, for an aborter.
    fn latch(&self) -> &Latch;
    /// Runs one attempt of a blocking job on the current thread; `None` for an async job.
    unsafe fn call(&self, ctx: &Context) -> Option<Outcome>;
    /// Polls the running attempt of an async job, starting it (taking `ctx`) on the first
    /// poll. A blocking job is ready at once with an error.
    unsafe fn poll_attempt(
        &self,
        ctx: &mut Option<Context>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome>;
    /// Drops the running attempt's future, if any (a cancelled or finished attempt).
    unsafe fn end_attempt(&self) -> Result<(), Caught>;
    /// Applies `clone` to the staged value (for the result store).
    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<Result<StoredValue, Caught>>;
    /// Lends the staged value, if any, to `f`.
    unsafe fn inspect_staged(&self, f: &mut dyn FnMut(&dyn Any));
    /// Publishes the task's end to its handle (the staged value when `result` is `Ok`),
    /// once; panics in what it drops go to `notes`.
    unsafe fn complete(&self, result: Outcome, notes: &mut Notes);
    /// Drops the work (the closure and any future); the job is never run again.
    unsafe fn release(&self) -> Result<(), Caught>;
    /// Drops the published end (nobody can take it: this is the cell's only reference).
    fn discard(&mut self) -> Result<(), Caught>;
}

/// The outcome of one attempt's user code, caught: its value staged, its error
/// converted, or its panic.
fn outcome_of<T, E: Into<BoxError>>(
    result: Result<Result<T, E>, Caught>,
    stage: impl FnOnce(T),
) -> Outcome {
    match result {
        Ok(Ok(value)) => {
            stage(value);
            Ok(())
        }
        Ok(Err(error)) => Err(TaskError::failed(error)),
        Err(caught) => Err(TaskError::panicked(caught)),
    }
}

impl<F, T, E> ErasedJob for Cell<F, T>
where
    F: FnMut(&Context) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    fn is_async(&self) -> bool {
        false
    }

    fn latch(&self) -> &Latch {
        self.completion.latch()
    }

    unsafe fn call(&self, ctx: &Context) -> Option<Outcome> {
        // SAFETY: the trait's contract.
        let f = unsafe { self.work() };
        // Staging (which drops an earlier run's value) and the error's conversion are the
        // task's code too: inside the guard.
        let attempt = guard::run(|| {
            // SAFETY: the trait's contract.
            outcome_of(Ok(f(ctx)), |value| unsafe { self.stage(value) })
        });
        Some(attempt.unwrap_or_else(|caught| Err(TaskError::panicked(caught))))
    }

    unsafe fn poll_attempt(
        &self,
        _ctx: &mut Option<Context>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome> {
        Poll::Ready(Err(TaskError::failed("a blocking job polled as async")))
    }

    unsafe fn end_attempt(&self) -> Result<(), Caught> {
        Ok(())
    }

    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<Result<StoredValue, Caught>> {
        // SAFETY: the trait's contract.
        unsafe { Cell::clone_staged(self, clone) }
    }

    unsafe fn inspect_staged(&self, f: &mut dyn FnMut(&dyn Any)) {
        // SAFETY: the trait's contract.
        unsafe { Cell::inspect_staged(self, f) }
    }

    unsafe fn complete(&self, result: Outcome, notes: &mut Notes) {
        // SAFETY: the trait's contract.
        unsafe { self.finish(result, notes) }
    }

    unsafe fn release(&self) -> Result<(), Caught> {
        // SAFETY: the trait's contract.
        unsafe { Cell::release(self) }
    }

    fn discard(&mut self) -> Result<(), Caught> {
        guard::drop(core::mem::replace(self.completion.get_mut(), Slot::Empty))
    }
}

impl<F, Fut, T, E> ErasedJob for Cell<AsyncWork<F, Fut>, T>
where
    F: FnMut(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    fn is_async(&self) -> bool {
        true
    }

    fn latch(&self) -> &Latch {
        self.completion.latch()
    }

    unsafe fn call(&self, _ctx: &Context) -> Option<Outcome> {
        None
    }

    unsafe fn poll_attempt(
        &self,
        ctx: &mut Option<Context>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome> {
        // SAFETY: the trait's contract.
        let work = unsafe { self.work() };
        let polled = guard::run(|| {
            if work.future.is_none() {
                let ctx = ctx
                    .take()
                    .expect("an attempt starts once, with its context");
                // Building the future runs the task's code too.
                work.future = Some((work.f)(ctx));
            }
            let future = work.future.as_mut().expect("started just above");
            // SAFETY: the future lives in the task's allocation, which never moves, and
            // it is only ever dropped in place (here, `end_attempt`, `release`, or the
            // cell's drop).
            let future = unsafe { Pin::new_unchecked(future) };
            let Poll::Ready(result) = future.poll(cx) else {
                return Poll::Pending;
            };
            // A finished attempt's future is dropped now: its drop is the attempt's too.
            work.future = None;
            // SAFETY: the trait's contract.
            Poll::Ready(outcome_of(Ok(result), |value| unsafe { self.stage(value) }))
        });
        match polled {
            Ok(poll) => poll,
            Err(caught) => {
                // Whatever panicked, the attempt is over: its future (if any) goes, under
                // the guard again (a second panic is only counted in the message).
                let dropped = guard::drop(work.future.take());
                let mut error = TaskError::panicked(caught);
                if let Err(again) = dropped {
                    error = TaskError::panicked_with(std::format!(
                        "{}; dropping its future panicked too: {}",
                        error.panic_message().unwrap_or_default(),
                        again.message()
                    ));
                }
                Poll::Ready(Err(error))
            }
        }
    }

    unsafe fn end_attempt(&self) -> Result<(), Caught> {
        // SAFETY: the trait's contract.
        match unsafe { (*self.work.get()).as_mut() } {
            Some(work) => guard::drop(work.future.take()),
            None => Ok(()),
        }
    }

    unsafe fn clone_staged(&self, clone: StoreFn) -> Option<Result<StoredValue, Caught>> {
        // SAFETY: the trait's contract.
        unsafe { Cell::clone_staged(self, clone) }
    }

    unsafe fn inspect_staged(&self, f: &mut dyn FnMut(&dyn Any)) {
        // SAFETY: the trait's contract.
        unsafe { Cell::inspect_staged(self, f) }
    }

    unsafe fn complete(&self, result: Outcome, notes: &mut Notes) {
        // SAFETY: the trait's contract.
        unsafe { self.finish(result, notes) }
    }

    unsafe fn release(&self) -> Result<(), Caught> {
        // SAFETY: the trait's contract; the future (if any) is dropped in place first.
        let future = unsafe { self.end_attempt() };
        // SAFETY: as above.
        let closure = unsafe { Cell::release(self) };
        future.and(closure)
    }

    fn discard(&mut self) -> Result<(), Caught> {
        guard::drop(core::mem::replace(self.completion.get_mut(), Slot::Empty))
    }
}

/// A pointer to a running blocking attempt's [`Latch`], kept in its worker's desk (which
/// the task's record points to while it runs) so a timeout or cancel can resolve the
/// handle at once.
///
/// It is valid while the attempt's `JobRef` lives. The engine sets it under the record's
/// cold lock when the attempt starts and clears it under that lock before the `JobRef`
/// completes or drops, and aborters read it only under that lock (engine rule 8).
#[derive(Clone, Copy)]
pub(crate) struct LatchRef(NonNull<Latch>);

// SAFETY: a `Latch` is `Sync` (atomics and a waker slot); the pointer is only
// dereferenced under the rule above, on any thread.
unsafe impl Send for LatchRef {}
// SAFETY: as above.
unsafe impl Sync for LatchRef {}

impl LatchRef {
    /// The latch.
    ///
    /// # Safety
    ///
    /// Engine rule 8: the caller holds the record's cold lock and found this pointer set.
    pub(crate) unsafe fn get(&self) -> &Latch {
        // SAFETY: the caller's contract: the JobRef, and so the cell, is alive.
        unsafe { self.0.as_ref() }
    }

    /// The pointer, to keep in an atomic (a worker's desk).
    pub(crate) fn as_ptr(self) -> *mut Latch {
        self.0.as_ptr()
    }

    /// Back from [`as_ptr`](Self::as_ptr); `None` for null.
    pub(crate) fn from_ptr(raw: *mut Latch) -> Option<Self> {
        NonNull::new(raw).map(Self)
    }
}

/// The engine's unique reference to a task's job: whoever holds it may run the job and
/// publish its end. Never cloned; it moves with the task's job token.
///
/// Dropped without [`complete`](Self::complete) (a runtime that discarded the job), it
/// still resolves the handle, as cancelled.
pub(crate) struct JobRef(Arc<dyn ErasedJob>);

impl JobRef {
    pub(crate) fn is_async(&self) -> bool {
        self.0.is_async()
    }

    /// A pointer to the completion's latch (see [`LatchRef`]).
    pub(crate) fn latch(&self) -> LatchRef {
        LatchRef(NonNull::from(self.0.latch()))
    }

    /// Runs one attempt of a blocking job here; `None` for an async job.
    pub(crate) fn call(&mut self, ctx: &Context) -> Option<Outcome> {
        // SAFETY: `&mut self` on the unique JobRef (ErasedJob's contract).
        unsafe { self.0.call(ctx) }
    }

    /// Polls an async job's running attempt (started on the first poll, taking `ctx`).
    pub(crate) fn poll_attempt(
        &mut self,
        ctx: &mut Option<Context>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Outcome> {
        // SAFETY: as in `call`.
        unsafe { self.0.poll_attempt(ctx, cx) }
    }

    /// Drops the attempt's future, if it is still there (cancelled or timed out).
    pub(crate) fn end_attempt(&mut self) -> Result<(), Caught> {
        // SAFETY: as in `call`.
        unsafe { self.0.end_attempt() }
    }

    /// Clones the staged value for the result store, if there is one.
    pub(crate) fn clone_staged(&mut self, clone: StoreFn) -> Option<Result<StoredValue, Caught>> {
        // SAFETY: as in `call`.
        unsafe { self.0.clone_staged(clone) }
    }

    /// Lends the staged value, if there is one, to `f`.
    pub(crate) fn inspect_staged(&mut self, f: &mut dyn FnMut(&dyn Any)) {
        // SAFETY: as in `call`.
        unsafe { self.0.inspect_staged(f) }
    }

    /// Publishes the task's end to its handle and drops the work. If the handle is gone,
    /// the end is dropped too and the emptied cell comes back as a [`Shell`], for the
    /// caller to free when it suits it; otherwise the handle frees the cell. Panics in
    /// what it drops are noted in `notes`.
    pub(crate) fn complete(self, result: Outcome, notes: &mut Notes) -> Option<Shell> {
        // SAFETY: we own the unique JobRef (ErasedJob's contract).
        unsafe {
            self.0.complete(result, notes);
            notes.check("dropping the task's closure", self.0.release());
        }
        // `Drop` would complete and release again: both are done, so it is skipped.
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Arc` moves out once.
        let mut cell = unsafe { core::ptr::read(&this.0) };
        // Most handles outlive their task's end: a load spares them `get_mut`'s writes to
        // the counts' line (no `Weak` of a cell exists, so this is the whole check).
        if Arc::strong_count(&cell) != 1 {
            return None;
        }
        let job = Arc::get_mut(&mut cell)?;
        notes.check("dropping the unclaimed result", job.discard());
        Some(Shell(cell))
    }
}

/// A finished task's cell that nothing refers to any more, its work and result already
/// dropped: only memory, freed when the shell drops.
///
/// Workers free these in batches ([`Driver`](super::Driver)): the cell was allocated by
/// the submitting thread, and freeing it on a worker one task at a time moves the
/// allocator's free-list line between the cores on every task.
pub(crate) struct Shell(#[allow(dead_code, reason = "held to be dropped")] Arc<dyn ErasedJob>);

impl Drop for JobRef {
    fn drop(&mut self) {
        // A last resort (the engine completes every job it holds): the handle resolves as
        // cancelled, and panics in the drops are contained.
        let mut notes = Notes::new();
        // SAFETY: we own the unique JobRef (ErasedJob's contract).
        unsafe {
            self.0.complete(Err(TaskError::cancelled()), &mut notes);
            drop(self.0.release());
        }
    }
}
