//! A tour of errand on tokio, section by section of the background-tasks guide: progress,
//! retries, a custom error handler, priorities, a batch, delayed and recurring tasks, a
//! timeout, stored results, persistent storage (durable jobs in a SQLite file,
//! `errand-tour.db` in the current directory), analytics and a graceful shutdown. Runs in
//! a few seconds:
//!
//! ```text
//! cargo run --release -p errand-tokio --example tour
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// One `use` picks the adapter: `errand_smol::prelude::*` or `errand_threads::prelude::*`
// run the same code (with their `builder()`).
use errand_store_sqlite::SqliteStore;
use errand_tokio::prelude::*;
use serde::{Deserialize, Serialize};

/// A durable job: its data is serialized into the store, its kind names it there.
#[derive(Serialize, Deserialize)]
struct Invoice {
    customer: String,
    cents: u64,
}

impl DurableJob for Invoice {
    const KIND: &'static str = "tour-invoice";
    type Output = String;

    async fn run(&self, ctx: Context) -> Result<String, BoxError> {
        ctx.progress(50.0, "rendering")?;
        ctx.sleep(Duration::from_millis(20)).await;
        let id = ctx.job_id().expect("a durable job has an id");
        Ok(format!(
            "invoice {id} for {}: {:.2} EUR",
            self.customer,
            self.cents as f64 / 100.0
        ))
    }
}

fn main() -> Result<(), BoxError> {
    // The engine's tracing (errand-core's `tracing` feature): a span per attempt, events for
    // retries, failures, timeouts and cancels. `RUST_LOG=errand_core=debug` shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("errand_core=info")),
        )
        .without_time()
        .with_target(false)
        .compact()
        .init();
    // The async work runs on tokio; this thread plays the web handlers' part.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // `app.enable_background_tasks(workers=4, enable_profiling=True, memory_pool_mb=500)`
    let manager = errand_tokio::builder_on(runtime.handle().clone())
        .workers(4)
        .enable_profiling(true)
        .memory_pool_mb(500)
        .build()?;

    section("Progress tracking");
    let steps = [
        "Loading data...",
        "Validating records...",
        "Processing batch 1/3...",
        "Processing batch 2/3...",
        "Processing batch 3/3...",
        "Generating report...",
        "Saving results...",
    ];
    // The bar follows the task's updates as they happen (`Manager::subscribe`), no polling.
    let mut updates = manager.subscribe();
    let processing = manager.submit(
        Task::future(move |ctx: Context| async move {
            for (i, step) in steps.iter().enumerate() {
                ctx.progress(((i + 1) * 100 / steps.len()) as f64, *step)?;
                // A sleep that works on every adapter (the manager's timer wakes it).
                ctx.sleep(Duration::from_millis(150)).await;
            }
            Ok::<_, BoxError>("report_2024.pdf")
        })
        .label("data processing"),
    )?;
    let id = processing.id();
    let bar = indicatif::ProgressBar::new(100).with_style(
        indicatif::ProgressStyle::with_template("  {prefix:<16} [{bar:30}] {pos:>3}% {msg}")?
            .progress_chars("=> "),
    );
    bar.set_prefix("data processing");
    let mut seen = Vec::new();
    'follow: loop {
        seen.clear();
        updates.drain(&mut seen);
        for update in seen.iter().filter(|update| update.id == id) {
            match &update.kind {
                UpdateKind::Progress { percent, message } => {
                    bar.set_position(*percent as u64);
                    bar.set_message(message.clone());
                }
                UpdateKind::Ended { .. } => break 'follow,
                _ => {}
            }
        }
        if !updates.wait(Duration::from_secs(10)) {
            break;
        }
    }
    drop(updates);
    bar.finish_with_message("done");
    if bar.is_hidden() {
        // Not a terminal: the bar draws nothing, so say where it got to.
        println!("  data processing: {}% done", bar.position());
    }
    println!("  result: {}", processing.wait()?);

    section("Retries with exponential backoff");
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let unreliable = manager.submit(
        Task::blocking({
            let attempts = Arc::clone(&attempts);
            move |ctx: &Context| {
                attempts.lock().unwrap().push(started.elapsed());
                if ctx.attempt() < 3 {
                    Err(BoxError::from("simulated network error"))
                } else {
                    Ok("operation completed")
                }
            }
        })
        // `max_retries=3, retry_delay=…, backoff_multiplier=2`
        .retry(
            RetryPolicy::builder()
                .max_retries(3)
                .initial_delay(Duration::from_millis(100))
                .multiplier(2.0)
                .build()?,
        ),
    )?;
    println!("  {}", unreliable.wait()?);
    for (n, at) in attempts.lock().unwrap().iter().enumerate() {
        println!(
            "  attempt {} at {:>5.0} ms",
            n + 1,
            at.as_secs_f64() * 1000.0
        );
    }

    section("Custom error handler");
    let handler = |id: TaskId, error: &TaskError, attempt: u32| {
        println!("  ❌ task {id} failed on attempt {attempt}: {error}");
        if error.downcast_ref::<std::io::Error>().is_some() {
            RetryDecision::Retry // connection errors: retry
        } else if error.downcast_ref::<std::num::ParseIntError>().is_some() {
            RetryDecision::Fail // validation errors: do not
        } else if attempt < 2 {
            RetryDecision::Retry
        } else {
            RetryDecision::Fail
        }
    };
    let quick = RetryPolicy::builder()
        .max_retries(5)
        .initial_delay(Duration::from_millis(20))
        .build()?;
    let connection = manager.submit(
        Task::blocking(|ctx: &Context| {
            if ctx.attempt() < 2 {
                Err(BoxError::from(std::io::Error::other(
                    "failed to connect to external service",
                )))
            } else {
                Ok("connected")
            }
        })
        .retry(quick)
        .on_error(handler),
    )?;
    let validation = manager.submit(
        Task::blocking(|_: &Context| "x".parse::<u32>().map_err(BoxError::from))
            .retry(quick)
            .on_error(handler),
    )?;
    println!(
        "  connection task: {:?}",
        connection.wait().map_err(|e| e.to_string())
    );
    println!(
        "  validation task: {:?}",
        validation.wait().map_err(|e| e.to_string())
    );

    section("Priorities");
    let one_worker = errand_tokio::builder_on(runtime.handle().clone())
        .workers(1)
        .build()?;
    let order = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let blocker = one_worker.submit(Task::blocking({
        let gate = Arc::clone(&gate);
        move |_: &Context| {
            drop(gate.lock().unwrap());
            Ok::<_, BoxError>(())
        }
    }))?;
    let handles: Vec<_> = [
        Priority::LOW,
        Priority::NORMAL,
        Priority::CRITICAL,
        Priority::HIGH,
    ]
    .into_iter()
    .map(|priority| {
        let order = Arc::clone(&order);
        one_worker.submit(
            Task::blocking(move |_: &Context| {
                order.lock().unwrap().push(priority);
                Ok::<_, BoxError>(())
            })
            .priority(priority),
        )
    })
    .collect::<Result<_, _>>()?;
    drop(held);
    blocker.wait()?;
    for handle in handles {
        handle.wait()?;
    }
    let order: Vec<_> = order
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    println!(
        "  submitted low, normal, critical, high; ran {}",
        order.join(", ")
    );

    section("Batch processing (all or nothing)");
    let batch: Vec<_> = (0..10)
        .map(|item| {
            Task::future(move |ctx: Context| async move {
                ctx.sleep(Duration::from_millis(50)).await;
                Ok::<_, BoxError>(item)
            })
        })
        .collect();
    let handles = manager.submit_batch(batch)?;
    let ids: Vec<_> = handles.iter().map(|h| h.id().to_string()).collect();
    println!("  batch tasks: {}", ids.join(" "));
    let processed: Vec<_> = handles
        .into_iter()
        .map(|h| h.wait())
        .collect::<Result<_, _>>()?;
    println!("  processed items {processed:?}");

    section("Delayed and recurring tasks");
    let scheduled_at = Instant::now();
    let reminder = manager.submit(
        Task::blocking(move |_: &Context| Ok::<_, BoxError>(scheduled_at.elapsed()))
            .delay(Duration::from_millis(300))
            .label("reminder"),
    )?;
    println!("  reminder is {}", reminder.state());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let monitoring = manager.submit(
        Task::blocking({
            let samples = Arc::clone(&samples);
            move |ctx: &Context| {
                let mut samples = samples.lock().unwrap();
                samples.push(ctx.attempt());
                Ok::<_, BoxError>(samples.len())
            }
        })
        .every(Every::new(Duration::from_millis(100)).times(5))
        .label("system health"),
    )?;
    println!("  reminder sent after {:?}", reminder.wait()?);
    println!("  health checks run: {}", monitoring.wait()?);

    section("Timeouts");
    // A blocking closure cannot be stopped from outside: at its timeout its handle
    // resolves at once, and the closure is detached (it runs on; its output is dropped).
    let slow = manager.submit(
        Task::blocking(|ctx: &Context| {
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok::<_, BoxError>("too late")
        })
        .timeout(Duration::from_millis(100))
        .label("slow report"),
    )?;
    let started = Instant::now();
    let timed_out = slow.wait().unwrap_err();
    println!(
        "  {} after {:.0} ms ({} closure(s) detached so far)",
        timed_out,
        started.elapsed().as_secs_f64() * 1e3,
        manager.counts().detached
    );

    section("Stored results");
    let calculation = manager.submit(
        Task::blocking(|_: &Context| {
            Ok::<_, BoxError>((1..=1_000_000_u64).map(|i| i * i).sum::<u64>())
        })
        .store_result_for(Duration::from_secs(24 * 3600)),
    )?;
    let calculation_id = calculation.id();
    calculation.wait()?;
    let stored = manager.stored_result::<u64>(calculation_id);
    println!("  sum of squares 1..=1,000,000 = {:?}", stored.as_deref());

    section("Persistent storage (durable jobs in a SQLite file)");
    let path = std::path::Path::new("errand-tour.db");
    let durable = |runtime: &tokio::runtime::Runtime| -> Result<Manager, BoxError> {
        Ok(errand_tokio::builder_on(runtime.handle().clone())
            .workers(2)
            .store(SqliteStore::open(path)?)
            .register::<Invoice>()
            .build()?)
    };
    let first = durable(&runtime)?;
    let earlier = first
        .jobs(&JobFilter::all().kind(Invoice::KIND).limit(10_000))?
        .len();
    let invoice = Invoice {
        customer: "ACME".into(),
        cents: 12_345,
    };
    // Answered once the job is committed (synchronous=FULL: on disk).
    let id = first.enqueue(invoice, JobOptions::new()).wait()?;
    println!(
        "  enqueued {id} in {} ({earlier} invoice job(s) from earlier runs)",
        path.display()
    );
    first.wait_job(id, Duration::from_secs(10)).wait()?;
    drop(first);
    println!("  manager dropped; building another on the same file...");
    let second = durable(&runtime)?;
    let job = second.job(id)?.expect("the job is in the store");
    println!(
        "  {id} is {} after {} attempt(s): {:?}",
        job.state,
        job.attempt,
        second.job_result::<Invoice>(id)?
    );
    drop(second);

    section("Analytics");
    let analytics = manager.analytics();
    let performance = manager.performance();
    let counts = &analytics.counts;
    let ms =
        |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3));
    let rows = [
        ("total tasks executed", counts.executed.to_string()),
        ("successful tasks", counts.succeeded.to_string()),
        ("failed tasks", counts.failed.to_string()),
        ("retried attempts", counts.retried.to_string()),
        ("average execution time", ms(analytics.avg_execution_time)),
        ("p99 execution time", ms(analytics.p99_execution_time)),
        (
            "current queue size",
            analytics.queue_size.total().to_string(),
        ),
        ("peak concurrent tasks", counts.peak_concurrency.to_string()),
        (
            "dispatch p50 (normal)",
            ms(analytics.dispatch_latency[1].p50),
        ),
        ("uptime", format!("{:.1} s", analytics.uptime.as_secs_f64())),
        (
            "cpu (whole machine)",
            performance
                .cpu_percent
                .map_or("-".into(), |c| format!("{c:.1} %")),
        ),
        (
            "cpu (of one core)",
            performance
                .cpu_percent_of_one_core
                .map_or("-".into(), |c| format!("{c:.1} %")),
        ),
        (
            "memory (rss)",
            performance
                .rss_bytes
                .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
        ),
        (
            "memory pool in use",
            format!("{} bytes", performance.memory_pool_used),
        ),
        (
            "throughput",
            format!("{:.1} tasks/s", performance.throughput),
        ),
        ("error rate", format!("{:.2} %", performance.error_rate)),
    ];
    for (name, value) in rows {
        println!("  {name:<24} {value:>14}");
    }
    if let Some(profile) = &analytics.profile {
        println!(
            "  profiling: {} sample(s) of the process, peak rss {:.1} MB",
            profile.samples.len(),
            profile.peak_rss_bytes.unwrap_or(0) as f64 / 1e6
        );
    }

    section("Graceful shutdown");
    let long = manager.submit(
        Task::future(|ctx: Context| async move {
            ctx.cancelled().await;
            Ok::<_, BoxError>(())
        })
        .label("long running"),
    )?;
    println!("  🛑 graceful shutdown initiated...");
    let report = manager.shutdown(Duration::from_millis(200)).wait();
    println!(
        "  ⚠️  force stopped {} task(s): {}",
        report.unfinished.len(),
        report
            .unfinished
            .iter()
            .map(|t| format!("{} ({})", t.id, t.label.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(long.state(), State::Cancelled);
    let counts = manager.counts();
    println!(
        "  ✅ done: submitted {} = succeeded {} + failed {} + cancelled {} + timed out {} + stopped {}",
        counts.submitted,
        counts.succeeded,
        counts.failed,
        counts.cancelled,
        counts.timed_out,
        counts.stopped
    );
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title}");
}
