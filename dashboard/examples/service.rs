//! The background-tasks guide's service, endpoint by endpoint, on errand-tokio, with the
//! dashboard mounted beside it at `/dashboard/` and durable jobs in `errand-service.db`:
//!
//! ```text
//! cargo run -p errand-dashboard --example service
//! # then open http://127.0.0.1:7878/dashboard/ and, say:
//! curl -X POST http://127.0.0.1:7878/process-data
//! curl http://127.0.0.1:7878/task-progress/t-0-1
//! ```
//!
//! `ERRAND_ADDR` picks another address (127.0.0.1:7878 by default), `ERRAND_TOKEN` a bearer
//! token for the dashboard's actions, `RUST_LOG` the tracing filter (`info` by default:
//! retries, failures and timeouts are logged; `errand=debug,info` shows every attempt's
//! span). Ctrl-C (or SIGTERM) stops accepting, waits up to 30 s for the tasks, stops the
//! rest and prints what it stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use errand_dashboard::{ApiError, Dashboard};
use errand_store_sqlite::SqliteStore;
use errand_tokio::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type App = State<Arc<Manager>>;
type Answer = Result<Json<Value>, ApiError>;

/// Seconds since the Unix epoch, as the guide's `datetime.now().isoformat()` stands for.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn id_of(path: Result<Path<String>, PathRejection>) -> Result<TaskId, ApiError> {
    let Path(text) = path.map_err(ApiError::from)?;
    text.parse()
        .map_err(|error| ApiError::bad_request(format!("malformed task id: {error}")))
}

fn submitted<T>(
    result: Result<TaskHandle<T>, SubmitError<impl Sized>>,
) -> Result<TaskId, ApiError> {
    result.map(|handle| handle.id()).map_err(|error| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not accepted: {error}"),
        )
    })
}

/// `POST /start-task`: ten steps of a second each.
async fn start_task(State(manager): App) -> Answer {
    let id = submitted(
        manager.submit(
            Task::blocking(|ctx: &Context| {
                for i in 0..10 {
                    if ctx.is_cancelled() {
                        return Err(BoxError::from("stopped"));
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    ctx.progress(
                        f64::from(i + 1) * 10.0,
                        format!("Task progress: {}/10", i + 1),
                    )?;
                }
                Ok::<_, BoxError>(json!({ "result": "Task completed successfully" }))
            })
            .label("long running task")
            .store_result_for(Duration::from_secs(3600)),
        ),
    )?;
    Ok(Json(
        json!({ "message": "Task started", "task_id": id, "status": "running" }),
    ))
}

/// `GET /task-status/{id}`: its status, and its result once it has one.
async fn task_status(State(manager): App, path: Result<Path<String>, PathRejection>) -> Answer {
    let id = id_of(path)?;
    let info = manager
        .task(id)
        .ok_or_else(|| ApiError::not_found(format!("no task {id}")))?;
    let result = manager
        .stored_result::<Value>(id)
        .map(|value| (*value).clone());
    Ok(Json(
        json!({ "task_id": id, "status": info.state, "result": result, "error": info.error }),
    ))
}

/// `POST /fetch-data`: an async task awaiting five "API calls".
async fn fetch_data(State(manager): App) -> Answer {
    let id = submitted(
        manager.submit(
            Task::future(|ctx: Context| async move {
                let mut results = Vec::new();
                for i in 0..5 {
                    ctx.sleep(Duration::from_millis(500)).await;
                    results.push(format!("Data chunk {}", i + 1));
                    ctx.progress(f64::from(i + 1) * 20.0, format!("fetched {} of 5", i + 1))?;
                }
                let total = results.len();
                Ok::<_, BoxError>(json!({ "data": results, "total_items": total }))
            })
            .label("fetch external data")
            .store_result_for(Duration::from_secs(3600)),
        ),
    )?;
    Ok(Json(json!({
        "message": "Async task started",
        "task_id": id,
        "estimated_duration": "2-3 seconds"
    })))
}

/// `POST /schedule-reminder`: runs in 30 seconds.
async fn schedule_reminder(State(manager): App) -> Answer {
    let id = submitted(
        manager.submit(
            Task::blocking(|_: &Context| {
                tracing::info!("sending reminder email");
                std::thread::sleep(Duration::from_secs(2));
                Ok::<_, BoxError>(json!({ "notification": "Reminder sent", "timestamp": now() }))
            })
            .delay(Duration::from_secs(30))
            .label("send reminder")
            .store_result_for(Duration::from_secs(3600)),
        ),
    )?;
    Ok(Json(json!({
        "message": "Reminder scheduled",
        "task_id": id,
        "scheduled_for": now() + 30.0
    })))
}

/// The machine's load and memory use, read from `/proc` (Linux; zeros elsewhere).
fn system_health() -> Value {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    let memory_percent = match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(available)) if total > 0.0 => 100.0 * (1.0 - available / total),
        _ => 0.0,
    };
    json!({ "load_average": load, "memory_percent": memory_percent, "timestamp": now() })
}

/// `POST /start-monitoring`: every 10 seconds for 10 minutes.
async fn start_monitoring(State(manager): App) -> Answer {
    let id = submitted(
        manager.submit(
            Task::blocking(|_: &Context| {
                let health = system_health();
                tracing::info!(%health, "system health");
                Ok::<_, BoxError>(health)
            })
            .every(
                Every::new(Duration::from_secs(10))
                    .until(Instant::now() + Duration::from_secs(600)),
            )
            .label("system monitoring"),
        ),
    )?;
    Ok(Json(json!({
        "message": "System monitoring started",
        "task_id": id,
        "interval": "10 seconds",
        "duration": "10 minutes"
    })))
}

/// `POST /process-data`: seven steps with progress.
async fn process_data(State(manager): App) -> Answer {
    const STEPS: [&str; 7] = [
        "Loading data...",
        "Validating records...",
        "Processing batch 1/3...",
        "Processing batch 2/3...",
        "Processing batch 3/3...",
        "Generating report...",
        "Saving results...",
    ];
    let id = submitted(
        manager.submit(
            Task::future(|ctx: Context| async move {
                for (i, step) in STEPS.iter().enumerate() {
                    ctx.progress(((i + 1) * 100 / STEPS.len()) as f64, *step)?;
                    ctx.sleep(Duration::from_secs(1)).await;
                }
                Ok::<_, BoxError>(json!({
                    "processed_records": 1000,
                    "generated_file": "report_2024.pdf",
                    "processing_time": format!("{} seconds", STEPS.len())
                }))
            })
            .label("data processing")
            .store_result_for(Duration::from_secs(3600)),
        ),
    )?;
    Ok(Json(json!({
        "message": "Data processing started",
        "task_id": id,
        "progress_available": true
    })))
}

/// `GET /task-progress/{id}`.
async fn task_progress(State(manager): App, path: Result<Path<String>, PathRejection>) -> Answer {
    let id = id_of(path)?;
    let info = manager
        .task(id)
        .ok_or_else(|| ApiError::not_found(format!("no task {id}")))?;
    Ok(Json(json!({
        "task_id": id,
        "progress_percent": info.progress,
        "current_step": info.message.as_deref().unwrap_or("Unknown"),
        "status": info.state,
        "started_at": info.started_at,
        "estimated_completion": info.estimated_completion,
    })))
}

/// `GET /active-tasks`.
async fn active_tasks(State(manager): App) -> Answer {
    let active = manager.active_tasks();
    Ok(Json(
        json!({ "total_count": active.len(), "active_tasks": active }),
    ))
}

/// A coin with a 30 % chance of heads, from the clock (no RNG crate for an example).
fn unlucky(ctx: &Context) -> bool {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ ctx.attempt().wrapping_mul(2_654_435_761)) % 10 < 3
}

/// `POST /unreliable-task`: fails 30 % of the time; three retries, 5 s apart, doubling.
async fn unreliable_task(State(manager): App) -> Answer {
    let policy = RetryPolicy::builder()
        .max_retries(3)
        .initial_delay(Duration::from_secs(5))
        .multiplier(2.0)
        .build()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let id = submitted(
        manager.submit(
            Task::blocking(|ctx: &Context| {
                if unlucky(ctx) {
                    return Err(BoxError::from("Simulated network error"));
                }
                std::thread::sleep(Duration::from_secs(2));
                Ok(json!({ "status": "success", "data": "Operation completed" }))
            })
            .retry(policy)
            .label("unreliable operation"),
        ),
    )?;
    Ok(Json(json!({
        "message": "Unreliable task started",
        "task_id": id,
        "max_retries": 3,
        "retry_policy": "exponential_backoff"
    })))
}

/// `POST /task-with-custom-error-handling`: connection errors retried, validation errors
/// not, others up to twice.
async fn custom_error_handling(State(manager): App) -> Answer {
    let policy = RetryPolicy::builder()
        .max_retries(5)
        .initial_delay(Duration::from_millis(500))
        .build()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let id = submitted(
        manager.submit(
            Task::blocking(|ctx: &Context| -> Result<Value, BoxError> {
                match (ctx.attempt() + ctx.id().index()) % 3 {
                    0 => Err(std::io::Error::other("Failed to connect to external service").into()),
                    1 => Err("x".parse::<u32>().unwrap_err().into()),
                    _ => Err("Unknown error occurred".into()),
                }
            })
            .retry(policy)
            .on_error(|id: TaskId, error: &TaskError, attempt: u32| {
                tracing::warn!(task = %id, attempt, %error, "custom error handler");
                if error.downcast_ref::<std::io::Error>().is_some() {
                    RetryDecision::Retry
                } else if error.downcast_ref::<std::num::ParseIntError>().is_some() {
                    RetryDecision::Fail
                } else if attempt < 2 {
                    RetryDecision::Retry
                } else {
                    RetryDecision::Fail
                }
            })
            .label("custom error handling"),
        ),
    )?;
    Ok(Json(
        json!({ "message": "Task with custom error handling started", "task_id": id }),
    ))
}

/// `POST /priority-task`: HIGH priority maintenance, five seconds.
async fn priority_task(State(manager): App) -> Answer {
    let id = submitted(
        manager.submit(
            Task::blocking(|ctx: &Context| {
                for i in 1..=5 {
                    std::thread::sleep(Duration::from_secs(1));
                    ctx.progress(f64::from(i) * 20.0, "performing critical maintenance")?;
                }
                Ok::<_, BoxError>(json!({ "maintenance": "completed", "systems": "healthy" }))
            })
            .priority(Priority::HIGH)
            .label("critical maintenance"),
        ),
    )?;
    Ok(Json(json!({
        "message": "High priority task scheduled",
        "task_id": id,
        "priority": "HIGH"
    })))
}

/// The optional body of `POST /batch-processing`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    items: u32,
}

/// `POST /batch-processing`: ten items (or `{"items": n}`, 1 to 100), all or none.
async fn batch_processing(
    State(manager): App,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Answer {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let items = if body.is_empty() {
        10
    } else {
        serde_json::from_slice::<Batch>(&body)
            .map_err(|error| ApiError::unprocessable(format!("not a batch: {error}")))?
            .items
    };
    if !(1..=100).contains(&items) {
        return Err(ApiError::unprocessable(format!(
            "items must be 1 to 100, not {items}"
        )));
    }
    let tasks: Vec<_> = (0..items)
        .map(|item| {
            Task::blocking(move |_: &Context| {
                std::thread::sleep(Duration::from_secs(1));
                Ok::<_, BoxError>(json!({ "item_id": item, "processed": true }))
            })
            .priority(Priority::NORMAL)
            .label(format!("batch item {item}"))
        })
        .collect();
    let handles = manager.submit_batch(tasks).map_err(|error| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("batch not accepted: {error}"),
        )
    })?;
    let ids: Vec<TaskId> = handles.iter().map(TaskHandle::id).collect();
    Ok(Json(json!({
        "message": "Batch processing started",
        "batch_tasks": ids,
        "total_items": ids.len()
    })))
}

/// `GET /shutdown-status`.
async fn shutdown_status(State(manager): App) -> Answer {
    Ok(Json(json!({
        "accepting_new_tasks": manager.is_accepting(),
        "active_tasks": manager.active_tasks().len(),
        "shutdown_initiated": manager.is_shutdown_initiated()
    })))
}

/// `POST /long-calculation`: a sum of squares kept for 24 hours.
async fn long_calculation(State(manager): App) -> Answer {
    let id = submitted(
        manager.submit(
            Task::blocking(|_: &Context| {
                let result: u64 = (0..1_000_000_u64).map(|i| i * i).sum();
                Ok::<_, BoxError>(json!({
                    "calculation": "sum_of_squares",
                    "range": "1 to 1,000,000",
                    "result": result,
                    "computed_at": now()
                }))
            })
            .label("long calculation")
            .store_result_for(Duration::from_secs(24 * 3600)),
        ),
    )?;
    Ok(Json(json!({
        "message": "Calculation started",
        "task_id": id,
        "result_available_for": "24 hours"
    })))
}

/// `GET /calculation-result/{id}`.
async fn calculation_result(
    State(manager): App,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = id_of(path)?;
    let result = manager
        .stored_result::<Value>(id)
        .ok_or_else(|| ApiError::not_found("Result not found or expired"))?;
    Ok(Json(json!({
        "task_id": id,
        "result": *result,
        "retrieved_at": now()
    })))
}

/// `GET /task-analytics`, in the guide's words.
async fn task_analytics(State(manager): App) -> Answer {
    let analytics = manager.analytics();
    let counts = &analytics.counts;
    Ok(Json(json!({
        "total_tasks_executed": counts.executed,
        "successful_tasks": counts.succeeded,
        "failed_tasks": counts.failed,
        "average_execution_time": format!(
            "{:.2}s",
            analytics.avg_execution_time.unwrap_or_default().as_secs_f64()
        ),
        "current_queue_size": analytics.queue_size.total(),
        "peak_concurrent_tasks": counts.peak_concurrency,
        "uptime": format!("{:.1} hours", analytics.uptime.as_secs_f64() / 3600.0),
    })))
}

/// `GET /task-performance`, in the guide's words.
async fn task_performance(State(manager): App) -> Answer {
    let performance = manager.performance();
    Ok(Json(json!({
        "cpu_usage": performance.cpu_percent,
        "memory_usage": performance.rss_bytes.map(|bytes| bytes as f64 / 1e6),
        "active_workers": performance.active_workers,
        "tasks_per_second": performance.throughput,
        "error_rate": format!("{:.2}%", performance.error_rate),
    })))
}

/// A durable job the service enqueues: it survives a restart of the service.
#[derive(Serialize, Deserialize)]
struct NightlyReport {
    day: u64,
}

impl DurableJob for NightlyReport {
    const KIND: &'static str = "nightly-report";
    type Output = String;

    async fn run(&self, ctx: Context) -> Result<String, BoxError> {
        for step in 1..=4 {
            ctx.sleep(Duration::from_millis(500)).await;
            ctx.progress(f64::from(step) * 25.0, "rendering")?;
        }
        Ok(format!("report for day {}", self.day))
    }
}

/// `POST /nightly-report`: a durable job (see the dashboard's durable jobs).
async fn nightly_report(State(manager): App) -> Answer {
    let day = (now() / 86_400.0) as u64;
    let id = manager
        .enqueue(NightlyReport { day }, JobOptions::new())
        .await
        .map_err(|error| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                error.to_string(),
            )
        })?;
    Ok(Json(json!({ "message": "Report enqueued", "job_id": id })))
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        drop(tokio::signal::ctrl_c().await);
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => drop(signal.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // `app.enable_background_tasks(workers=4, enable_profiling=True, memory_pool_mb=500)`
    let manager = Arc::new(
        errand_tokio::builder()
            .workers(4)
            .enable_profiling(true)
            .memory_pool_mb(500)
            .store(SqliteStore::open("errand-service.db")?)
            .register::<NightlyReport>()
            .build()?,
    );
    manager
        .schedule(
            "nightly-report",
            NightlyReport { day: 0 },
            Every::new(Duration::from_secs(60)),
            JobOptions::new(),
        )
        .await?;
    let mut dashboard = Dashboard::new(Arc::clone(&manager)).result_type::<Value>();
    if let Ok(token) = std::env::var("ERRAND_TOKEN") {
        dashboard = dashboard.token(token);
    }
    let app = Router::new()
        .route("/start-task", post(start_task))
        .route("/task-status/{id}", get(task_status))
        .route("/fetch-data", post(fetch_data))
        .route("/schedule-reminder", post(schedule_reminder))
        .route("/start-monitoring", post(start_monitoring))
        .route("/process-data", post(process_data))
        .route("/task-progress/{id}", get(task_progress))
        .route("/active-tasks", get(active_tasks))
        .route("/unreliable-task", post(unreliable_task))
        .route(
            "/task-with-custom-error-handling",
            post(custom_error_handling),
        )
        .route("/priority-task", post(priority_task))
        .route("/batch-processing", post(batch_processing))
        .route("/shutdown-status", get(shutdown_status))
        .route("/long-calculation", post(long_calculation))
        .route("/calculation-result/{id}", get(calculation_result))
        .route("/task-analytics", get(task_analytics))
        .route("/task-performance", get(task_performance))
        .route("/nightly-report", post(nightly_report))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(Arc::clone(&manager))
        .nest("/dashboard", dashboard.router())
        // Prometheus scrapes /metrics at the root by default.
        .merge(dashboard.metrics_router());
    let addr: SocketAddr = match std::env::var("ERRAND_ADDR") {
        Ok(addr) => addr.parse()?,
        Err(_) => errand_dashboard::DEFAULT_ADDR,
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("serving on http://{addr}/ (dashboard: http://{addr}/dashboard/)");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await?;
    tracing::info!("graceful shutdown initiated: waiting up to 30 s for the tasks");
    let report = manager.shutdown(Duration::from_secs(30)).await;
    if report.unfinished.is_empty() {
        tracing::info!("graceful shutdown completed");
    } else {
        tracing::warn!("force stopped {} task(s)", report.unfinished.len());
    }
    Ok(())
}
