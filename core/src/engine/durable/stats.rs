//! The durable layer's counts: [`DurableStats`], from [`Manager::durable_stats`].

use std::string::String;
use std::time::Duration;
use std::vec::Vec;

use serde::Serialize;

use super::job::now_millis;
use super::store::StoreError;
use crate::engine::{Manager, Runtime};

/// The durable layer's counts.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct DurableStats {
    /// Durable jobs in memory (claimed by this process) now.
    pub in_memory: usize,
    /// The most durable jobs in memory at once.
    pub window: usize,
    /// Jobs a previous run left running, recovered at start.
    pub recovered: u64,
    /// Jobs enqueued by this process.
    pub enqueued: u64,
    /// Jobs claimed from the store (jobs enqueued straight into memory are not claimed).
    pub claimed: u64,
    /// Claims that returned jobs (`claimed / claims` is the mean claim's size: the
    /// store's statements are per claim, not per job).
    pub claims: u64,
    /// Attempts whose end was written.
    pub finished: u64,
    /// Writes refused by fencing (a stale attempt changed nothing).
    pub stale: u64,
    /// Transactions committed or tried.
    pub transactions: u64,
    /// Operations in them (a transaction holds many: group commit).
    pub ops: u64,
    /// Transactions that failed (their writes were retried or refused).
    pub failed_commits: u64,
    /// Transactions failed in a row now: above 0, the store is failing (an outage, a
    /// full disk); this node claims nothing until a commit succeeds.
    pub failing: u64,
    /// Jobs whose lease expired (their node died), made pending again by this node.
    pub rescued: u64,
    /// Finished jobs deleted after the retention.
    pub purged: u64,
    /// Heartbeats committed (a shared store).
    pub heartbeats: u64,
    /// Attempts this node stopped because their job was no longer its own (cancelled
    /// from elsewhere, or rescued after a lost lease).
    pub lost: u64,
    /// Whether this node leads: fires the recurring schedules.
    pub leader: bool,
    /// Pending jobs of kinds no type registered here knows: kind and count (empty while
    /// the store cannot be read).
    pub unknown_kinds: Vec<(String, u64)>,
    /// How long the earliest-due pending job has waited past its due time (zero when it
    /// is not yet due; `None` with none pending, or while the store cannot be read): the
    /// workers' lag behind the store, over every node and kind.
    pub lag: Option<Duration>,
}

impl<R: Runtime> Manager<R> {
    /// The durable layer's counts, and the pending kinds nobody here runs.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot be read, or there is none.
    pub fn durable_stats(&self) -> Result<DurableStats, StoreError> {
        let shared = self.durable()?;
        let counters = &shared.counters;
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        let unknown_kinds = shared
            .reader
            .pending_kinds()
            .unwrap_or_default()
            .into_iter()
            .filter(|(kind, _)| shared.registry.runner(kind).is_none())
            .collect();
        Ok(DurableStats {
            in_memory: shared.in_memory(),
            window: shared.capacity,
            recovered: load(&counters.recovered),
            enqueued: load(&counters.enqueued),
            claimed: load(&counters.claimed),
            claims: load(&counters.claims),
            finished: load(&counters.finished),
            stale: load(&counters.stale),
            transactions: load(&counters.transactions),
            ops: load(&counters.ops),
            failed_commits: load(&counters.failed_commits),
            failing: load(&shared.health.failing),
            rescued: load(&counters.rescued),
            purged: load(&counters.purged),
            heartbeats: load(&counters.heartbeats),
            lost: load(&counters.lost),
            leader: shared
                .health
                .leader
                .load(std::sync::atomic::Ordering::Relaxed),
            unknown_kinds,
            lag: shared
                .reader
                .earliest_due()
                .ok()
                .flatten()
                .map(|due| Duration::from_millis(u64::try_from(now_millis() - due).unwrap_or(0))),
        })
    }
}
