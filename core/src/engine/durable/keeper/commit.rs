//! After a transaction: answer its requests, start what it claimed, stop what is no longer
//! this node's — or, when it failed, tell every waiter and try the engine's own writes
//! again later.

use std::boxed::Box;
use std::sync::atomic::Ordering;
use std::time::Instant;
use std::vec::Vec;

use super::{Awaiting, BUSY_BACKOFF, Keeper, RETRY_MAX, RETRY_WRITES};
use crate::engine::durable::job::{JobId, JobState, now_millis};
use crate::engine::durable::runner::Refused;
use crate::engine::durable::store::{Finish, JobRow, NewJob, Op, StoreError, UnixMillis};

impl Keeper {
    /// After a commit: answers, starts the claimed jobs, learns what is due next.
    pub(super) fn committed(
        &mut self,
        ops: Vec<Op>,
        awaiting: Vec<Awaiting>,
        claim: Option<usize>,
    ) {
        self.shared.health.failing.store(0, Ordering::Relaxed);
        self.next_try = None;
        let mut ops: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
        let counters = &self.shared.counters;
        let mut to_start: Vec<JobRow> = Vec::new();
        // Jobs this node must stop: cancelled while running, or no longer its own.
        let mut to_stop: Vec<JobId> = Vec::new();
        let mut reload = false;
        if let Some(index) = claim {
            if let Some(Op::Claim {
                reply,
                limit,
                next_due,
                ..
            }) = ops[index].take()
            {
                // Places reserved and not claimed go back.
                self.shared
                    .window
                    .fetch_sub(limit - reply.len(), Ordering::AcqRel);
                if reply.len() == limit {
                    self.maybe_pending = true;
                }
                self.next_due = next_due;
                counters
                    .claimed
                    .fetch_add(reply.len() as u64, Ordering::Relaxed);
                if !reply.is_empty() {
                    counters.claims.fetch_add(1, Ordering::Relaxed);
                }
                to_start.extend(reply);
            }
        }
        for waiting in awaiting {
            match waiting {
                Awaiting::Insert(range, reply) => {
                    let mut ids = Vec::with_capacity(range.len());
                    for index in range {
                        if let Some(Op::Insert {
                            job,
                            reply: Some(id),
                        }) = ops[index].take()
                        {
                            if job.claimed {
                                match id {
                                    Ok(id) => to_start.push(claimed_row(id, job)),
                                    // A held key: nothing was inserted; free the place.
                                    Err(_) => {
                                        self.shared.window.fetch_sub(1, Ordering::AcqRel);
                                    }
                                }
                            }
                            if id.is_ok() {
                                counters.enqueued.fetch_add(1, Ordering::Relaxed);
                            }
                            ids.push(id);
                        }
                    }
                    reply.send(Box::new(ids));
                }
                Awaiting::Cancel(index, reply) => {
                    if let Some(Op::Cancel {
                        id, reply: state, ..
                    }) = ops[index].take()
                    {
                        if state == Some(JobState::Running) {
                            to_stop.push(id);
                        }
                        reply.send(Box::new(state));
                    }
                }
                Awaiting::Retry(index, reply) => {
                    if let Some(Op::Retry {
                        reply: state,
                        requeued,
                        ..
                    }) = ops[index].take()
                    {
                        reply.send(Box::new((state, requeued)));
                    }
                }
                Awaiting::Put(reply) => reply.send(Box::new(())),
                Awaiting::Remove(index, reply) => {
                    if let Some(Op::RemoveSchedule { reply: existed, .. }) = ops[index].take() {
                        reply.send(Box::new(existed));
                    }
                }
                Awaiting::Own(index) => match ops[index].take() {
                    Some(Op::Finish { reply, .. }) => {
                        counters.finished.fetch_add(1, Ordering::Relaxed);
                        if !reply {
                            counters.stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Op::FireSchedule {
                        name,
                        reply: Some(id),
                        ..
                    }) => {
                        let id = id.unwrap_or_else(|existing| existing);
                        if let Some(schedule) = self.schedules.iter_mut().find(|s| s.name == name) {
                            schedule.last_job = Some(id);
                        }
                    }
                    // The schedule was gone, or another node had fired the tick: read the
                    // schedules again.
                    Some(Op::FireSchedule { reply: None, .. }) => reload = true,
                    _ => {}
                },
            }
        }
        let mut more_to_prune = false;
        let mut next_expiry = None;
        for op in ops.into_iter().flatten() {
            match op {
                Op::Heartbeat { reply, .. } => {
                    counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                    to_stop.extend(reply);
                }
                Op::Rescue {
                    reply,
                    next_expiry: expiry,
                    ..
                } => {
                    if reply > 0 {
                        counters.rescued.fetch_add(reply, Ordering::Relaxed);
                        self.maybe_pending = true;
                    }
                    next_expiry = next_expiry.or(expiry);
                }
                // A pass that hit its limit left more: the next round goes on, so pruning
                // keeps up with any completion rate.
                Op::Prune { limit, reply, .. } => more_to_prune |= reply >= limit,
                Op::Purge { limit, reply, .. } => {
                    counters.purged.fetch_add(reply, Ordering::Relaxed);
                    more_to_prune |= reply >= limit as u64;
                }
                _ => {}
            }
        }
        if reload {
            if let Ok(schedules) = self.store.schedules() {
                self.schedules = schedules;
            }
        }
        if more_to_prune {
            self.next_prune = Instant::now();
        }
        if let Some(expiry) = next_expiry {
            self.look_again_at_expiry(expiry);
        }
        self.shared.committed.notify(usize::MAX);
        self.start_all(to_start);
        // After the starts: a job claimed and cancelled in the same transaction is stopped
        // too. Its attempt's end will be stale.
        for id in to_stop {
            if let Some(task) = self.shared.task_of(id) {
                if self.inner.cancel(task).is_ok() {
                    self.shared.counters.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Hands claimed jobs to the engine; a payload that does not decode fails its job, a
    /// full engine gives the rest back.
    pub(super) fn start_all(&mut self, rows: Vec<JobRow>) {
        let now = now_millis();
        for row in rows {
            let Some(runner) = self.shared.registry.runner(&row.kind).cloned() else {
                self.give_back(&row, Finish::Release, now);
                continue;
            };
            match runner.start(&self.inner, &self.shared, &row) {
                Ok(()) => {}
                Err(Refused::Decode(error)) => self.give_back(&row, Finish::Failed { error }, now),
                Err(Refused::Busy) => {
                    self.busy_until = Some(Instant::now() + BUSY_BACKOFF);
                    self.give_back(&row, Finish::Release, now);
                }
            }
        }
    }

    /// Ends a claimed job that did not start (it never entered the engine).
    pub(super) fn give_back(&mut self, row: &JobRow, finish: Finish, now: UnixMillis) {
        self.shared.window.fetch_sub(1, Ordering::AcqRel);
        if matches!(finish, Finish::Release) {
            self.maybe_pending = true;
        }
        self.retry_writes.push(Op::Finish {
            id: row.id,
            attempt: row.attempt,
            finish,
            at: now,
            reply: false,
        });
        self.retry_at = Some(Instant::now());
    }

    /// After a failed commit: every waiter learns the error; the engine's own writes are
    /// tried again shortly (a finish lost for good leaves its row `Running`, which the
    /// next start recovers).
    pub(super) fn failed(&mut self, ops: Vec<Op>, awaiting: Vec<Awaiting>, error: &StoreError) {
        self.shared
            .counters
            .failed_commits
            .fetch_add(1, Ordering::Relaxed);
        // Back off: 100 ms, doubling while commits keep failing, at most 5 s.
        let failing = self.shared.health.failing.fetch_add(1, Ordering::Relaxed) + 1;
        let backoff = RETRY_WRITES
            .saturating_mul(1 << failing.saturating_sub(1).min(16))
            .min(RETRY_MAX);
        self.next_try = Some(Instant::now() + backoff);
        let mut ops: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
        for op in ops.iter_mut() {
            match op {
                Some(Op::Claim { limit, .. }) => {
                    self.shared.window.fetch_sub(*limit, Ordering::AcqRel);
                    self.maybe_pending = true;
                }
                Some(Op::Insert { job, .. }) if job.claimed => {
                    self.shared.window.fetch_sub(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
        for waiting in awaiting {
            match waiting {
                Awaiting::Insert(_, reply)
                | Awaiting::Cancel(_, reply)
                | Awaiting::Retry(_, reply)
                | Awaiting::Put(reply)
                | Awaiting::Remove(_, reply) => reply.send(Box::new(error.clone())),
                Awaiting::Own(index) => {
                    if let Some(op @ Op::Finish { .. }) = ops[index].take() {
                        self.retry_writes.push(op);
                    }
                }
            }
        }
        if !self.retry_writes.is_empty() && !self.stopping {
            self.retry_at = self.next_try;
        }
        // Schedules advanced in memory for ticks that did not commit: read them again.
        if let Ok(schedules) = self.store.schedules() {
            self.schedules = schedules;
        }
    }
}

/// The row of a job inserted already claimed (attempt 1, running).
fn claimed_row(id: JobId, job: NewJob) -> JobRow {
    JobRow {
        id,
        kind: job.kind.into_owned(),
        payload: job.payload,
        state: JobState::Running,
        priority: job.priority,
        run_at: job.run_at,
        attempt: 1,
        failures: 0,
        retry: job.retry,
        timeout_ms: job.timeout_ms,
        result_ttl_ms: job.result_ttl_ms,
        unique_key: job.unique_key,
        schedule: job.schedule,
        progress: 0.0,
        message: None,
        error: None,
        result: None,
        created_at: job.created_at,
        started_at: Some(job.created_at),
        finished_at: None,
        expires_at: None,
        node: None,
        lease_until: None,
    }
}
