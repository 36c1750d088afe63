//! The report phase: counts, analytics and performance, read from the counters, and the
//! profile's samples of the process taken by the timer driver.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::inner::{Inner, lock};
use super::process::{cpu_time, rss_bytes};
use super::snapshot::{
    Analytics, Counts, Latency, LevelLatency, Performance, Profile, QueueSizes, Sample,
};
use crate::{HistogramSnapshot, Level, State};

/// How often the timer driver samples the process while profiling.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The previous `performance` call's reading, and the profile's samples.
pub(crate) struct Sampler {
    /// When `performance` was last asked, the process CPU time then, attempts executed.
    last: Mutex<(Instant, Option<Duration>, u64)>,
    /// `None` unless profiling.
    profile: Option<Mutex<Samples>>,
}

/// The profile's samples so far.
struct Samples {
    /// When the next sample is due, and the CPU time at the previous one.
    due: Instant,
    cpu_before: Option<Duration>,
    at_before: Instant,
    ring: VecDeque<Sample>,
    peak_rss: Option<u64>,
}

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Sampler {
    pub(crate) fn new(epoch: Instant, profiling: bool) -> Self {
        Self {
            last: Mutex::new((epoch, cpu_time(), 0)),
            profile: profiling.then(|| {
                Mutex::new(Samples {
                    due: epoch,
                    cpu_before: cpu_time(),
                    at_before: epoch,
                    ring: VecDeque::with_capacity(Profile::CAPACITY),
                    peak_rss: None,
                })
            }),
        }
    }
}

impl Inner {
    /// Takes a profile sample if one is due; when the next one is (`None` without
    /// profiling).
    pub(crate) fn sample_if_due(&self, now: Instant) -> Option<Instant> {
        let mut samples = lock(self.sampler.profile.as_ref()?);
        if now >= samples.due {
            let cpu = cpu_time();
            let window = now
                .saturating_duration_since(samples.at_before)
                .as_secs_f64();
            let cpu_percent = cpu.zip(samples.cpu_before).and_then(|(now, before)| {
                (window > 0.0).then(|| {
                    (now.saturating_sub(before).as_secs_f64() / window / cores() as f64 * 100.0)
                        .min(100.0)
                })
            });
            let rss = rss_bytes();
            samples.peak_rss = samples.peak_rss.max(rss);
            if samples.ring.len() == Profile::CAPACITY {
                samples.ring.pop_front();
            }
            samples.ring.push_back(Sample {
                at: self.clock.wall(now),
                cpu_percent,
                rss_bytes: rss,
            });
            samples.cpu_before = cpu;
            samples.at_before = now;
            samples.due = now + SAMPLE_EVERY;
        }
        Some(samples.due)
    }

    pub(crate) fn counts(&self) -> Counts {
        let stats = &self.stats;
        Counts {
            submitted: self.unfinished.added() as u64,
            executed: stats.sum(|shard| &shard.executed),
            succeeded: stats.sum(|shard| &shard.succeeded),
            failed: stats.sum(|shard| &shard.failed),
            retried: stats.sum(|shard| &shard.retried),
            cancelled: stats.sum(|shard| &shard.cancelled),
            timed_out: stats.sum(|shard| &shard.timed_out),
            stopped: stats.sum(|shard| &shard.stopped),
            panicked: stats.sum(|shard| &shard.panicked),
            detached: stats.sum(|shard| &shard.detached),
            peak_concurrency: self.tally.peak.load(Ordering::Relaxed) as u64,
        }
    }

    pub(crate) fn analytics(&self) -> Analytics {
        let mut execution = HistogramSnapshot::new();
        for level in Level::ALL {
            execution.merge(&self.stats.merged(|shard| &shard.execution[level.index()]));
        }
        let nanos = |ns: Option<u64>| ns.map(Duration::from_nanos);
        Analytics {
            counts: self.counts(),
            avg_execution_time: execution.mean().map(|ns| Duration::from_nanos(ns as u64)),
            p50_execution_time: nanos(execution.p50()),
            p95_execution_time: nanos(execution.p95()),
            p99_execution_time: nanos(execution.p99()),
            queue_size: QueueSizes {
                low: self.queue.level_len(Level::Low),
                normal: self.queue.level_len(Level::Normal),
                high: self.queue.level_len(Level::High),
                critical: self.queue.level_len(Level::Critical),
            },
            waiting: self.waiting(),
            running: self.running(),
            detached: self.detached.load(Ordering::Acquire),
            uptime: self.clock.epoch.elapsed(),
            dispatch_latency: Level::ALL.map(|level| {
                let snap = self.stats.merged(|shard| &shard.dispatch[level.index()]);
                LevelLatency {
                    level,
                    count: snap.count(),
                    p50: nanos(snap.p50()),
                    p95: nanos(snap.p95()),
                    p99: nanos(snap.p99()),
                }
            }),
            memory: self.budget.snapshot(),
            stored_results: self.results.len(),
            profile: self.sampler.profile.as_ref().map(|samples| {
                let samples = lock(samples);
                Profile {
                    samples: samples.ring.iter().copied().collect(),
                    peak_rss_bytes: samples.peak_rss,
                }
            }),
        }
    }

    pub(crate) fn performance(&self) -> Performance {
        let now = Instant::now();
        let cpu = cpu_time();
        let counts = self.counts();
        let (window, cpu_used, executed) = {
            let mut last = lock(&self.sampler.last);
            let (at, cpu_before, executed_before) = *last;
            *last = (now, cpu, counts.executed);
            (
                now.saturating_duration_since(at),
                cpu.zip(cpu_before)
                    .map(|(now, before)| now.saturating_sub(before)),
                counts.executed.saturating_sub(executed_before),
            )
        };
        let seconds = window.as_secs_f64();
        let per_window = |amount: f64| if seconds > 0.0 { amount / seconds } else { 0.0 };
        let ended = counts.succeeded + counts.failed;
        let budget = self.budget.snapshot();
        let cores = cores();
        // Clamped: a cgroup quota below the cores the process runs on can let it use more
        // than `cores` (which counts the quota) for a while.
        let one_core =
            cpu_used.map(|used| (per_window(used.as_secs_f64()) * 100.0).min(100.0 * cores as f64));
        Performance {
            cpu_percent: one_core.map(|percent| percent / cores as f64),
            cpu_percent_of_one_core: one_core,
            cores,
            rss_bytes: rss_bytes(),
            memory_pool_used: budget.used,
            memory_pool_limit: budget.limit,
            active_workers: self.running(),
            workers: self.config.workers,
            throughput: per_window(executed as f64),
            error_rate: if ended == 0 {
                0.0
            } else {
                counts.failed as f64 * 100.0 / ended as f64
            },
            window,
        }
    }

    /// The dispatch and execution histograms per level (see [`Latency`]).
    pub(crate) fn latency(&self) -> Latency {
        Latency {
            dispatch: Level::ALL
                .map(|level| self.stats.merged(|shard| &shard.dispatch[level.index()])),
            execution: Level::ALL
                .map(|level| self.stats.merged(|shard| &shard.execution[level.index()])),
        }
    }

    /// Tasks waiting for a timer (`Scheduled` or `Retrying`), read without locks.
    fn waiting(&self) -> usize {
        (0..self.records.capacity())
            .filter_map(|index| self.records.id_at(index))
            .filter_map(|id| self.records.get(id))
            .filter(|record| matches!(record.state.load(), State::Scheduled | State::Retrying))
            .count()
    }

    /// Attempts running right now.
    pub(crate) fn running(&self) -> usize {
        self.tally.running.load(Ordering::Relaxed)
    }

    /// Live tasks right now (queued, scheduled, running, and ended ones not yet reclaimed).
    pub(crate) fn live(&self) -> usize {
        self.records.len()
    }
}
