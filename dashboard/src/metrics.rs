//! `GET metrics`: the manager's counts, latency histograms per priority, queue depth,
//! memory budget and durable store, in the OpenMetrics text format (prometheus-client's
//! encoder), read from the manager's snapshots at each scrape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use errand_core::engine::{Analytics, DurableStats, Latency, Runtime};
use errand_core::{HistogramSnapshot, Level};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::{ApiError, Shared};

/// Upper bounds of the latency histograms' buckets, in seconds (then `+Inf`).
const BOUNDS: [f64; 21] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Everything one scrape reports, read before encoding.
#[derive(Debug)]
struct Scrape {
    analytics: Analytics,
    latency: Latency,
    durable: Option<DurableStats>,
    /// Age of the oldest due pending durable job (among the first 100 by id).
    store_lag: Option<Duration>,
    streams: usize,
}

/// The level's label value.
fn priority(level: Level) -> &'static str {
    match level {
        Level::Low => "low",
        Level::Normal => "normal",
        Level::High => "high",
        _ => "critical",
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One histogram of `snapshot` (nanoseconds) in seconds, on [`BOUNDS`].
fn histogram(
    encoder: &mut MetricEncoder<'_>,
    snapshot: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = BOUNDS.iter().map(|&bound| (bound, 0)).collect();
    buckets.push((f64::INFINITY, 0));
    for (_, high, count) in snapshot.buckets() {
        let seconds = high as f64 / 1e9;
        let slot = BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BOUNDS.len());
        buckets[slot].1 += count;
    }
    let count = snapshot.count();
    let sum = snapshot.mean().unwrap_or(0.0) * count as f64 / 1e9;
    encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts = &self.analytics.counts;
        for (name, help, value) in [
            (
                "errand_tasks_submitted",
                "Tasks accepted.",
                counts.submitted,
            ),
            (
                "errand_attempts_executed",
                "Attempts run to their end.",
                counts.executed,
            ),
            (
                "errand_tasks_succeeded",
                "Tasks that succeeded.",
                counts.succeeded,
            ),
            (
                "errand_tasks_failed",
                "Tasks that failed for good.",
                counts.failed,
            ),
            (
                "errand_tasks_retried",
                "Failed attempts sent back for a retry.",
                counts.retried,
            ),
            (
                "errand_tasks_cancelled",
                "Tasks cancelled.",
                counts.cancelled,
            ),
            (
                "errand_tasks_timed_out",
                "Tasks that timed out.",
                counts.timed_out,
            ),
            (
                "errand_tasks_stopped",
                "Tasks stopped by a shutdown.",
                counts.stopped,
            ),
            (
                "errand_panics",
                "Panics caught in user code.",
                counts.panicked,
            ),
            (
                "errand_attempts_detached",
                "Blocking attempts detached.",
                counts.detached,
            ),
        ] {
            counter(&mut encoder, name, help, value)?;
        }
        for (name, help, histograms) in [
            (
                "errand_dispatch_latency",
                "Time from ready to started, per priority level.",
                &self.latency.dispatch,
            ),
            (
                "errand_execution_latency",
                "Attempt durations, per priority level.",
                &self.latency.execution,
            ),
        ] {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for level in Level::ALL {
                let labels = [("priority", priority(level))];
                histogram(
                    &mut family.encode_family(&labels)?,
                    &histograms[level.index()],
                )?;
            }
        }
        let queue = &self.analytics.queue_size;
        let mut depth = encoder.encode_descriptor(
            "errand_queue_depth",
            "Tasks queued now, per priority level.",
            None,
            MetricType::Gauge,
        )?;
        for (level, value) in [
            (Level::Low, queue.low),
            (Level::Normal, queue.normal),
            (Level::High, queue.high),
            (Level::Critical, queue.critical),
        ] {
            depth
                .encode_family(&[("priority", priority(level))])?
                .encode_gauge(&(value as i64))?;
        }
        let memory = &self.analytics.memory;
        let bytes = Some(&Unit::Bytes);
        for (name, help, unit, value) in [
            (
                "errand_tasks_running",
                "Attempts running now.",
                None,
                self.analytics.running as f64,
            ),
            (
                "errand_tasks_waiting",
                "Tasks waiting for a delay or a retry.",
                None,
                self.analytics.waiting as f64,
            ),
            (
                "errand_peak_concurrency",
                "The most attempts ever running at once.",
                None,
                counts.peak_concurrency as f64,
            ),
            (
                "errand_memory_budget_used",
                "Bytes of the memory budget in use.",
                bytes,
                memory.used as f64,
            ),
            (
                "errand_memory_budget_limit",
                "The memory budget.",
                bytes,
                memory.limit as f64,
            ),
            (
                "errand_memory_budget_peak",
                "The most bytes of the budget ever in use.",
                bytes,
                memory.peak as f64,
            ),
            (
                "errand_stored_results",
                "Results held in the result store.",
                None,
                self.analytics.stored_results as f64,
            ),
            (
                "errand_uptime",
                "Time since the manager was built.",
                Some(&Unit::Seconds),
                self.analytics.uptime.as_secs_f64(),
            ),
            (
                "errand_dashboard_event_streams",
                "Event streams open now.",
                None,
                self.streams as f64,
            ),
        ] {
            gauge(&mut encoder, name, help, unit, value)?;
        }
        counter(
            &mut encoder,
            "errand_memory_budget_rejections",
            "Reservations the memory budget refused.",
            memory.rejections as u64,
        )?;
        if let Some(durable) = &self.durable {
            gauge(
                &mut encoder,
                "errand_store_lag",
                "Age of the oldest due pending durable job (0 when none is due).",
                Some(&Unit::Seconds),
                self.store_lag.unwrap_or_default().as_secs_f64(),
            )?;
            gauge(
                &mut encoder,
                "errand_store_failing_commits",
                "Store commits failed in a row now (above 0: the store is failing).",
                None,
                durable.failing as f64,
            )?;
            gauge(
                &mut encoder,
                "errand_durable_jobs_in_memory",
                "Durable jobs claimed by this process now.",
                None,
                durable.in_memory as f64,
            )?;
            for (name, help, value) in [
                (
                    "errand_durable_enqueued",
                    "Durable jobs enqueued by this process.",
                    durable.enqueued,
                ),
                (
                    "errand_durable_claimed",
                    "Durable jobs claimed from the store.",
                    durable.claimed,
                ),
                (
                    "errand_durable_finished",
                    "Durable attempts whose end was written.",
                    durable.finished,
                ),
                (
                    "errand_store_transactions",
                    "Store transactions committed or tried.",
                    durable.transactions,
                ),
                (
                    "errand_store_failed_commits",
                    "Store transactions that failed.",
                    durable.failed_commits,
                ),
                (
                    "errand_durable_rescued",
                    "Jobs whose lease expired, made pending again.",
                    durable.rescued,
                ),
            ] {
                counter(&mut encoder, name, help, value)?;
            }
        }
        Ok(())
    }
}

pub(crate) async fn metrics<R: Runtime>(
    State(shared): State<Arc<Shared<R>>>,
) -> Result<Response, ApiError> {
    let (durable, store_lag) = if shared.has_store() {
        let manager = Arc::clone(&shared.manager);
        tokio::task::spawn_blocking(move || {
            let stats = manager.durable_stats().ok();
            let lag = stats.as_ref().and_then(|stats| stats.lag);
            (stats, lag)
        })
        .await
        .unwrap_or((None, None))
    } else {
        (None, None)
    };
    let scrape = Scrape {
        analytics: shared.manager.analytics(),
        latency: shared.manager.latency(),
        durable,
        store_lag,
        streams: shared.hub.streams(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics did not encode",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
