//! One round: the requests that arrived, and what the keeper's deadlines ask for, as the
//! ops of one transaction.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::{
    Awaiting, Keeper, PROGRESS_EVERY, PRUNE_EVERY, PRUNE_LIMIT, PURGE_LIMIT, RESCUE_AGAIN,
    RESCUE_LIMIT, Request,
};
use crate::engine::durable::job::now_millis;
use crate::engine::durable::store::{Finish, Op, Sharing, UnixMillis};
use crate::engine::inner::lock;

impl Keeper {
    /// One transaction: the requests, plus what the keeper must do now.
    pub(super) fn round(&mut self, requests: Vec<Request>) {
        let now = now_millis();
        let mut ops: Vec<Op> = core::mem::take(&mut self.retry_writes);
        let mut awaiting: Vec<Awaiting> = (0..ops.len()).map(Awaiting::Own).collect();
        self.retry_at = None;
        for request in requests {
            self.add(request, now, &mut ops, &mut awaiting);
        }
        self.add_cluster(now, &mut ops);
        self.add_schedules(now, &mut ops, &mut awaiting);
        self.add_upkeep(now, &mut ops);
        let claim = self.add_claim(now, &mut ops);
        if ops.is_empty() {
            return;
        }
        let result = self.store.commit(&mut ops);
        let counters = &self.shared.counters;
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => self.committed(ops, awaiting, claim),
            Err(error) => self.failed(ops, awaiting, &error),
        }
    }

    /// Turns `request` into ops (and what to answer).
    pub(super) fn add(
        &mut self,
        request: Request,
        now: UnixMillis,
        ops: &mut Vec<Op>,
        awaiting: &mut Vec<Awaiting>,
    ) {
        match request {
            Request::Insert { jobs, reply } => {
                let start = ops.len();
                for mut job in jobs {
                    let runnable =
                        job.run_at <= now && self.shared.registry.runner(&job.kind).is_some();
                    job.claimed = runnable && self.reserve();
                    if !job.claimed {
                        self.note_pending(job.run_at, now);
                    }
                    ops.push(Op::Insert { job, reply: None });
                }
                awaiting.push(Awaiting::Insert(start..ops.len(), reply));
            }
            Request::Finish {
                id,
                attempt,
                finish,
                at,
            } => {
                if matches!(finish, Finish::Retry { .. } | Finish::Release) {
                    let run_at = match &finish {
                        Finish::Retry { run_at, .. } => *run_at,
                        _ => now,
                    };
                    self.note_pending(run_at, now);
                }
                awaiting.push(Awaiting::Own(ops.len()));
                ops.push(Op::Finish {
                    id,
                    attempt,
                    finish,
                    at,
                    reply: false,
                });
            }
            Request::Cancel { id, reply } => {
                awaiting.push(Awaiting::Cancel(ops.len(), reply));
                ops.push(Op::Cancel {
                    id,
                    at: now,
                    reply: None,
                });
            }
            Request::Retry { id, reply } => {
                // Due now: claimed in this round's claim or the next.
                self.maybe_pending = true;
                awaiting.push(Awaiting::Retry(ops.len(), reply));
                ops.push(Op::Retry {
                    id,
                    at: now,
                    reply: None,
                    requeued: false,
                });
            }
            Request::PutSchedule { schedule, reply } => {
                let name = schedule.name.clone();
                self.schedules.retain(|known| known.name != name);
                // Only the leader fires schedules; another node's leader reads it from
                // the store at its next poll.
                if self.leader {
                    self.schedules.push((*schedule).clone());
                }
                awaiting.push(Awaiting::Put(reply));
                ops.push(Op::PutSchedule { schedule });
            }
            Request::RemoveSchedule { name, reply } => {
                self.schedules.retain(|known| known.name != name);
                awaiting.push(Awaiting::Remove(ops.len(), reply));
                ops.push(Op::RemoveSchedule { name, reply: false });
            }
            Request::Poke => self.maybe_pending = true,
            Request::Stop => self.stopping = true,
        }
    }

    /// A pending job is due at `run_at`: claim it when it is.
    pub(super) fn note_pending(&mut self, run_at: UnixMillis, now: UnixMillis) {
        if run_at <= now {
            self.maybe_pending = true;
        } else {
            self.next_due = Some(self.next_due.map_or(run_at, |due| due.min(run_at)));
        }
    }

    /// On a shared store: a heartbeat of this node's leases, and at each poll a rescue of
    /// expired leases, an election, and a look for work other nodes added.
    pub(super) fn add_cluster(&mut self, now: UnixMillis, ops: &mut Vec<Op>) {
        let Sharing::Shared { lease, poll } = self.sharing else {
            return;
        };
        if self.stopping {
            return;
        }
        let instant = Instant::now();
        if instant >= self.next_heartbeat {
            let jobs = self.shared.live_attempts();
            if !jobs.is_empty() {
                ops.push(Op::Heartbeat {
                    now,
                    jobs,
                    reply: Vec::new(),
                });
            }
            self.next_heartbeat = instant + lease / 3;
        }
        if instant >= self.next_poll {
            self.next_poll = instant + poll;
            self.maybe_pending = true;
            ops.push(Op::Rescue {
                now,
                limit: RESCUE_LIMIT,
                reply: 0,
                next_expiry: None,
            });
            self.elect();
        }
    }

    /// Brings the next poll forward to just after `expiry` (Unix milliseconds), when
    /// another node's lease runs out before the poll would come: its jobs are then
    /// rescued as the lease ends. At least [`RESCUE_AGAIN`] ahead: a lease already over
    /// is on a row another node is rescuing (or past this pass's limit).
    pub(super) fn look_again_at_expiry(&mut self, expiry: UnixMillis) {
        // The rescue takes leases that ended strictly before its `now`: one more ms.
        let ahead = u64::try_from(expiry.saturating_sub(now_millis()).saturating_add(1))
            .map_or(RESCUE_AGAIN, Duration::from_millis)
            .max(RESCUE_AGAIN);
        let at = Instant::now() + ahead;
        if at < self.next_poll {
            self.next_poll = at;
        }
    }

    /// Asks the store whether this node leads; a leader reads the schedules again (other
    /// nodes may have changed them), a node that does not lead fires none.
    pub(super) fn elect(&mut self) {
        let leader = self.store.lead().unwrap_or(false);
        if leader {
            if let Ok(schedules) = self.store.schedules() {
                self.schedules = schedules;
            }
        } else {
            self.schedules.clear();
        }
        self.leader = leader;
        self.shared.health.leader.store(leader, Ordering::Relaxed);
    }

    /// Progress to write, and a pass pruning expired results and old finished jobs, when
    /// their time has come.
    pub(super) fn add_upkeep(&mut self, now: UnixMillis, ops: &mut Vec<Op>) {
        let instant = Instant::now();
        if instant >= self.next_progress {
            let dirty: Vec<_> = lock(&self.shared.progress)
                .iter()
                .map(|(id, (attempt, percent, message))| (*id, *attempt, *percent, message.clone()))
                .collect();
            for (id, attempt, percent, message) in dirty {
                ops.push(Op::Progress {
                    id,
                    attempt,
                    percent,
                    message,
                });
            }
            self.next_progress = instant + PROGRESS_EVERY;
        }
        if instant >= self.next_prune && !self.stopping {
            ops.push(Op::Prune {
                now,
                limit: PRUNE_LIMIT,
                reply: 0,
            });
            ops.push(Op::Purge {
                now,
                before: now.saturating_sub(self.retention_ms),
                limit: PURGE_LIMIT,
                reply: 0,
            });
            self.next_prune = instant + PRUNE_EVERY;
        }
    }

    /// A claim of due jobs, if there is room and some may be due. The index of its op.
    pub(super) fn add_claim(&mut self, now: UnixMillis, ops: &mut Vec<Op>) -> Option<usize> {
        if self.stopping || self.shared.kinds.is_empty() {
            return None;
        }
        if self.busy_until.is_some_and(|until| Instant::now() < until) || self.blocked() {
            return None;
        }
        let due = self.maybe_pending || self.next_due.is_some_and(|due| due <= now);
        let room = self.room();
        if !due || room == 0 {
            return None;
        }
        // Reserve the places now; the claim returns at most this many.
        let reserved = (0..room).take_while(|_| self.reserve()).count();
        if reserved == 0 {
            return None;
        }
        self.maybe_pending = false;
        ops.push(Op::Claim {
            now,
            limit: reserved,
            kinds: Arc::clone(&self.shared.kinds),
            reply: Vec::new(),
            next_due: None,
        });
        Some(ops.len() - 1)
    }
}
