//! Every route of the dashboard over HTTP, bad input included: malformed ids (400),
//! unknown ids (404), actions that do not apply (409), bodies too large (413), not JSON
//! (415) or not the JSON asked for (422), a missing token (401); and the event stream over
//! a real socket: frames arrive, and a client that goes away frees its stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use errand_core::engine::Job;
use errand_dashboard::Dashboard;
use errand_store_sqlite::SqliteStore;
use errand_tokio::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(20);

/// One request to `app`: status, content type and body (JSON when it parses).
async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> (StatusCode, String, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, kind, value)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(app, "GET", uri, &[], Body::empty()).await;
    (status, body)
}

async fn post(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(app, "POST", uri, &[], Body::empty()).await;
    (status, body)
}

/// An error answer: its status, and a JSON body naming it.
#[track_caller]
fn assert_error(answer: &(StatusCode, Value), status: StatusCode) {
    assert_eq!(answer.0, status, "{:?}", answer.1);
    assert_eq!(answer.1["status"], json!(status.as_u16()), "{:?}", answer.1);
    assert!(
        answer.1["error"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "{:?}",
        answer.1
    );
}

/// A task that runs until `open` is set, reporting progress first.
fn held(open: &Arc<AtomicBool>) -> Task<impl Job<Output = Value>> {
    let open = Arc::clone(open);
    Task::future(move |ctx: Context| {
        let open = Arc::clone(&open);
        async move {
            ctx.progress(40.0, "halfway there")?;
            while !open.load(Ordering::SeqCst) && !ctx.is_cancelled() {
                ctx.sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, BoxError>(json!({ "done": true }))
        }
    })
    .label("held")
}

fn manager() -> Arc<Manager> {
    Arc::new(errand_tokio::builder().workers(2).build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_snapshots() {
    let manager = manager();
    let app = Dashboard::new(Arc::clone(&manager)).router();
    let (status, kind, page) = call(&app, "GET", "/", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(page.as_str().unwrap().contains("errand"));
    manager
        .spawn_blocking(|_| Ok::<_, BoxError>(1))
        .unwrap()
        .await
        .unwrap();

    let (status, overview) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(overview["analytics"]["counts"]["succeeded"], json!(1));
    assert_eq!(overview["shutdown"]["accepting_new_tasks"], json!(true));
    assert_eq!(overview["durable"], Value::Null);
    assert_eq!(overview["token_required"], json!(false));
    assert!(overview["performance"]["workers"].as_u64() == Some(2));

    let (status, analytics) = get(&app, "/api/analytics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(analytics["counts"]["submitted"], json!(1));
    assert_eq!(analytics["dispatch_latency"].as_array().unwrap().len(), 4);
    let (status, performance) = get(&app, "/api/performance").await;
    assert_eq!(status, StatusCode::OK);
    assert!(performance["error_rate"].is_number());
    let (status, shutdown) = get(&app, "/api/shutdown").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shutdown,
        json!({ "accepting_new_tasks": true, "active_tasks": 0, "shutdown_initiated": false })
    );
    manager.stop_accepting();
    let (_, shutdown) = get(&app, "/api/shutdown").await;
    assert_eq!(shutdown["accepting_new_tasks"], json!(false));
    assert_eq!(shutdown["shutdown_initiated"], json!(true));

    assert_error(&get(&app, "/api/nothing-here").await, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_by_id_and_their_bad_ids() {
    let manager = manager();
    let app = Dashboard::new(Arc::clone(&manager))
        .result_type::<Value>()
        .router();
    let open = Arc::new(AtomicBool::new(false));
    let running = manager.submit(held(&open)).unwrap();
    let id = running.id().to_string();
    let deadline = Instant::now() + PATIENCE;
    while manager
        .task(running.id())
        .is_none_or(|info| info.progress < 40.0)
    {
        assert!(
            Instant::now() < deadline,
            "the task did not report progress"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (status, active) = get(&app, "/api/tasks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(active["total_count"], json!(1));
    assert_eq!(active["active_tasks"][0]["id"], json!(id));
    let (status, task) = get(&app, &format!("/api/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            &task["state"],
            &task["progress"],
            &task["message"],
            &task["label"]
        ),
        (
            &json!("running"),
            &json!(40.0),
            &json!("halfway there"),
            &json!("held")
        )
    );
    for bad in [
        "nope",
        "t-1",
        "t-x-1",
        "t--1-1",
        "t-1-1-1",
        "%20",
        &"9".repeat(100),
    ] {
        assert_error(
            &get(&app, &format!("/api/tasks/{bad}")).await,
            StatusCode::BAD_REQUEST,
        );
        assert_error(
            &get(&app, &format!("/api/tasks/{bad}/result")).await,
            StatusCode::BAD_REQUEST,
        );
        assert_error(
            &post(&app, &format!("/api/tasks/{bad}/cancel")).await,
            StatusCode::BAD_REQUEST,
        );
        assert_error(
            &post(&app, &format!("/api/tasks/{bad}/retry")).await,
            StatusCode::BAD_REQUEST,
        );
    }
    let unknown = "t-4000-7";
    assert_error(
        &get(&app, &format!("/api/tasks/{unknown}")).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &post(&app, &format!("/api/tasks/{unknown}/cancel")).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &post(&app, &format!("/api/tasks/{unknown}/retry")).await,
        StatusCode::NOT_FOUND,
    );
    // No result until it has one; then the stored one.
    assert_error(
        &get(&app, &format!("/api/tasks/{id}/result")).await,
        StatusCode::NOT_FOUND,
    );
    let stored = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(json!({ "sum": 42 })))
                .store_result_for(Duration::from_secs(60)),
        )
        .unwrap();
    let stored_id = stored.id();
    stored.await.unwrap();
    let (status, result) = get(&app, &format!("/api/tasks/{stored_id}/result")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["result"], json!({ "sum": 42 }));
    assert_eq!(result["task_id"], json!(stored_id.to_string()));

    // Retrying an in-memory task is refused, and says why.
    let refused = post(&app, &format!("/api/tasks/{id}/retry")).await;
    assert_error(&refused, StatusCode::CONFLICT);
    assert!(refused.1["error"].as_str().unwrap().contains("in-memory"));
    // Cancel once; a second time it has already ended.
    let (status, cancelled) = post(&app, &format!("/api/tasks/{id}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["cancelled"], json!(true));
    assert!(running.await.is_err());
    assert_error(
        &post(&app, &format!("/api/tasks/{id}/cancel")).await,
        StatusCode::CONFLICT,
    );
    // A GET on an action, or a POST on a query, is not a route.
    let (status, _, _) = call(
        &app,
        "GET",
        &format!("/api/tasks/{id}/cancel"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // The history lists finished tasks, newest first, filtered by state.
    let failing = manager
        .submit(Task::blocking(|_: &Context| {
            Err::<(), _>(BoxError::from("broken"))
        }))
        .unwrap();
    let failed_id = failing.id().to_string();
    assert!(failing.await.is_err());
    let (status, finished) = get(&app, "/api/tasks/finished?state=failed").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(finished["total_count"], json!(1));
    assert_eq!(finished["tasks"][0]["id"], json!(failed_id));
    assert_eq!(finished["tasks"][0]["error"], json!("task failed: broken"));
    let (_, all) = get(&app, "/api/tasks/finished?limit=2").await;
    assert_eq!(all["total_count"], json!(2));
    for bad in [
        "state=running",
        "state=exploded",
        "limit=0",
        "limit=5000",
        "limit=-1",
        "colour=red",
    ] {
        assert_error(
            &get(&app, &format!("/api/tasks/finished?{bad}")).await,
            StatusCode::BAD_REQUEST,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_cancel_validates_its_body() {
    let manager = manager();
    let app = Dashboard::new(Arc::clone(&manager)).router();
    let open = Arc::new(AtomicBool::new(false));
    let a = manager.submit(held(&open)).unwrap();
    let b = manager.submit(held(&open)).unwrap();
    let json_type = [("content-type", "application/json")];
    let body = json!({ "ids": [a.id(), b.id(), "t-4000-1"] }).to_string();
    let (status, _, answer) = call(
        &app,
        "POST",
        "/api/tasks/cancel",
        &json_type,
        Body::from(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcomes: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["cancelled", "cancelled", "unknown"]);
    assert!(a.await.is_err() && b.await.is_err());

    let unprocessable = [
        "{\"ids\": [",
        "not json at all",
        "{\"ids\": [1, 2]}",
        "{\"ids\": [\"t-x\"]}",
        "{\"ids\": []}",
        "{\"ids\": [\"t-1-1\"], \"extra\": 1}",
        "[]",
    ];
    for body in unprocessable {
        let (status, _, answer) = call(
            &app,
            "POST",
            "/api/tasks/cancel",
            &json_type,
            Body::from(body),
        )
        .await;
        assert_error(&(status, answer), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let too_many: Vec<String> = (0..1001).map(|i| format!("t-{i}-1")).collect();
    let (status, _, answer) = call(
        &app,
        "POST",
        "/api/tasks/cancel",
        &json_type,
        Body::from(json!({ "ids": too_many }).to_string()),
    )
    .await;
    assert_error(&(status, answer), StatusCode::UNPROCESSABLE_ENTITY);
    let huge = format!(
        "{{\"ids\": [\"{}\"]}}",
        "t".repeat(Dashboard::<errand_tokio::Tokio>::BODY_LIMIT)
    );
    let (status, _, answer) = call(
        &app,
        "POST",
        "/api/tasks/cancel",
        &json_type,
        Body::from(huge),
    )
    .await;
    assert_error(&(status, answer), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, answer) = call(
        &app,
        "POST",
        "/api/tasks/cancel",
        &[],
        Body::from("{\"ids\": []}"),
    )
    .await;
    assert_error(&(status, answer), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_the_token_once_one_is_set() {
    let manager = manager();
    let app = Dashboard::new(Arc::clone(&manager))
        .token("s3cret")
        .router();
    let open = Arc::new(AtomicBool::new(false));
    let task = manager.submit(held(&open)).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while manager.state(task.id()) != Some(State::Running) {
        assert!(Instant::now() < deadline, "the task did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cancel = format!("/api/tasks/{}/cancel", task.id());
    for headers in [
        &[][..],
        &[("authorization", "Bearer wrong")][..],
        &[("authorization", "Bearer s3cre")][..],
        &[("authorization", "s3cret")][..],
        &[("authorization", "Basic s3cret")][..],
    ] {
        let (status, _, answer) = call(&app, "POST", &cancel, headers, Body::empty()).await;
        assert_error(&(status, answer), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(manager.state(task.id()), Some(State::Running));
    // Queries stay open.
    assert_eq!(get(&app, "/api/tasks").await.0, StatusCode::OK);
    assert_eq!(
        get(&app, "/api/overview").await.1["token_required"],
        json!(true)
    );
    let (status, _, _) = call(
        &app,
        "POST",
        &cancel,
        &[("authorization", "Bearer s3cret")],
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(task.await.is_err());
}

#[derive(Serialize, Deserialize)]
struct Mail {
    to: String,
}

static MAIL_FAILS: AtomicBool = AtomicBool::new(true);

impl DurableJob for Mail {
    const KIND: &'static str = "http-test-mail";
    type Output = String;

    async fn run(&self, _ctx: Context) -> Result<String, BoxError> {
        if MAIL_FAILS.load(Ordering::SeqCst) {
            Err(BoxError::from("mail server away"))
        } else {
            Ok(format!("sent to {}", self.to))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_jobs_schedules_and_their_bad_input() {
    // Without a store, the durable routes say so.
    let plain = Dashboard::new(manager()).router();
    assert_error(&get(&plain, "/api/jobs").await, StatusCode::NOT_FOUND);
    assert_error(&get(&plain, "/api/jobs/j-1").await, StatusCode::NOT_FOUND);
    assert_error(
        &post(&plain, "/api/jobs/j-1/retry").await,
        StatusCode::NOT_FOUND,
    );
    let (status, schedules) = get(&plain, "/api/schedules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(schedules["durable"], json!([]));

    let dir = std::env::temp_dir().join(format!("errand-http-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).unwrap();
    let manager = Arc::new(
        errand_tokio::builder()
            .workers(2)
            .store(SqliteStore::open(dir.join("jobs.db")).unwrap())
            .register::<Mail>()
            .build()
            .unwrap(),
    );
    let app = Dashboard::new(Arc::clone(&manager)).router();
    let no_retries = RetryPolicy::builder().max_retries(0).build().unwrap();
    let failed = manager
        .enqueue(
            Mail {
                to: "a@example.org".into(),
            },
            JobOptions::new().retry(no_retries),
        )
        .await
        .unwrap();
    manager.wait_job(failed, PATIENCE).await.unwrap();
    let later = manager
        .enqueue(
            Mail {
                to: "b@example.org".into(),
            },
            JobOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    manager
        .schedule(
            "digest",
            Mail {
                to: "c@example.org".into(),
            },
            Every::new(Duration::from_secs(3600)),
            JobOptions::new().run_at(std::time::SystemTime::now() + Duration::from_secs(600)),
        )
        .await
        .unwrap();
    manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(()))
                .every(Every::new(Duration::from_secs(60)))
                .label("tick"),
        )
        .unwrap();

    let (status, overview) = get(&app, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview["durable"]["enqueued"].as_u64() >= Some(2));
    let (status, jobs) = get(&app, "/api/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jobs["total_count"], json!(2));
    let (_, failing) = get(&app, "/api/jobs?state=failed").await;
    assert_eq!(failing["jobs"][0]["id"], json!(failed.to_string()));
    assert_eq!(
        failing["jobs"][0]["error"],
        json!("task failed: mail server away")
    );
    let (_, by_kind) = get(&app, &format!("/api/jobs?kind={}&limit=1", Mail::KIND)).await;
    assert_eq!(by_kind["total_count"], json!(1));
    let (_, after) = get(&app, &format!("/api/jobs?after={failed}")).await;
    assert_eq!(after["jobs"][0]["id"], json!(later.to_string()));
    for bad in [
        "state=exploded",
        "limit=0",
        "limit=100000",
        "after=7",
        "after=j-",
        "colour=red",
        &format!("kind={}", "k".repeat(300)),
    ] {
        assert_error(
            &get(&app, &format!("/api/jobs?{bad}")).await,
            StatusCode::BAD_REQUEST,
        );
    }
    let (status, job) = get(&app, &format!("/api/jobs/{later}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["job_state"], json!("pending"));
    for bad in ["j", "j-", "j-x", "1", "t-1-1", "j-99999999999999999999999"] {
        assert_error(
            &get(&app, &format!("/api/jobs/{bad}")).await,
            StatusCode::BAD_REQUEST,
        );
        assert_error(
            &post(&app, &format!("/api/jobs/{bad}/cancel")).await,
            StatusCode::BAD_REQUEST,
        );
        assert_error(
            &post(&app, &format!("/api/jobs/{bad}/retry")).await,
            StatusCode::BAD_REQUEST,
        );
    }
    assert_error(&get(&app, "/api/jobs/j-4242").await, StatusCode::NOT_FOUND);
    assert_error(
        &post(&app, "/api/jobs/j-4242/cancel").await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &post(&app, "/api/jobs/j-4242/retry").await,
        StatusCode::NOT_FOUND,
    );

    // Cancel the pending job; cancelling again is a conflict; a pending job cannot be
    // retried, a cancelled or failed one can.
    assert_error(
        &post(&app, &format!("/api/jobs/{later}/retry")).await,
        StatusCode::CONFLICT,
    );
    let (status, cancelled) = post(&app, &format!("/api/jobs/{later}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["was"], json!("pending"));
    assert_error(
        &post(&app, &format!("/api/jobs/{later}/cancel")).await,
        StatusCode::CONFLICT,
    );
    MAIL_FAILS.store(false, Ordering::SeqCst);
    let (status, retried) = post(&app, &format!("/api/jobs/{failed}/retry")).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["was"], json!("failed"));
    let done = manager.wait_job(failed, PATIENCE).await.unwrap().unwrap();
    assert_eq!(done.job_state, JobState::Succeeded);
    assert_error(
        &post(&app, &format!("/api/jobs/{failed}/retry")).await,
        StatusCode::CONFLICT,
    );

    let (status, schedules) = get(&app, "/api/schedules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(schedules["durable"][0]["name"], json!("digest"));
    assert!(schedules["durable"][0]["next_run"].is_object());
    assert_eq!(schedules["recurring"][0]["label"], json!("tick"));
    assert_eq!(
        schedules["recurring"][0]["every"],
        json!({ "secs": 60, "nanos": 0 })
    );

    let (status, kind, text) = call(&app, "GET", "/metrics", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = text.as_str().unwrap();
    for line in [
        "errand_store_lag_seconds ",
        "errand_durable_enqueued_total ",
        "errand_store_failing_commits 0",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    drop(app);
    manager.shutdown(Duration::from_secs(5)).await;
    drop(std::fs::remove_dir_all(&dir));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_in_the_openmetrics_format() {
    let manager = manager();
    let app = Dashboard::new(Arc::clone(&manager)).router();
    for priority in [Priority::LOW, Priority::HIGH, Priority::HIGH] {
        manager
            .submit(Task::blocking(|_: &Context| Ok::<_, BoxError>(())).priority(priority))
            .unwrap()
            .await
            .unwrap();
    }
    manager
        .submit(Task::blocking(|_: &Context| {
            Err::<(), _>(BoxError::from("no"))
        }))
        .unwrap()
        .await
        .unwrap_err();
    let (status, kind, text) = call(&app, "GET", "/metrics", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("application/openmetrics-text"));
    let text = text.as_str().unwrap().to_string();
    for line in [
        "# TYPE errand_tasks_submitted counter",
        "errand_tasks_submitted_total 4",
        "errand_tasks_succeeded_total 3",
        "errand_tasks_failed_total 1",
        "errand_tasks_retried_total 0",
        "errand_tasks_cancelled_total 0",
        "errand_tasks_timed_out_total 0",
        "# TYPE errand_dispatch_latency_seconds histogram",
        "errand_dispatch_latency_seconds_count{priority=\"high\"} 2",
        "errand_dispatch_latency_seconds_bucket{le=\"+Inf\",priority=\"high\"} 2",
        "errand_execution_latency_seconds_count{priority=\"low\"} 1",
        "errand_execution_latency_seconds_count{priority=\"normal\"} 1",
        "errand_execution_latency_seconds_count{priority=\"critical\"} 0",
        "errand_queue_depth{priority=\"low\"} 0",
        "# TYPE errand_memory_budget_used_bytes gauge",
        "errand_memory_budget_limit_bytes ",
        "errand_dashboard_event_streams 0",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
    // No store, no store metrics.
    assert!(!text.contains("errand_store_lag"));
    // The same at an app's root, with the dashboard nested elsewhere.
    let dashboard = Dashboard::new(Arc::clone(&manager));
    let app = Router::new()
        .nest("/dashboard", dashboard.router())
        .merge(dashboard.metrics_router());
    let (status, kind, root) = call(&app, "GET", "/metrics", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("application/openmetrics-text"));
    assert!(
        root.as_str()
            .unwrap()
            .contains("errand_tasks_submitted_total 4")
    );
    let (status, _, _) = call(&app, "GET", "/dashboard/metrics", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
}

/// Reads from `stream` into `seen` until it holds `needle`, failing after [`PATIENCE`].
async fn read_until(stream: &mut tokio::net::TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut buffer = [0u8; 8192];
    while !seen.contains(needle) {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within {PATIENCE:?}; got {seen}"))
            .unwrap();
        assert!(read > 0, "the stream closed before {needle:?}; got {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

async fn open_stream(addr: std::net::SocketAddr) -> (tokio::net::TcpStream, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: hello").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    (stream, seen)
}

/// Waits until the dashboard counts `streams` open event streams.
async fn streams_become(app: &Router, streams: u64, manager: &Manager) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, overview) = get(app, "/api/overview").await;
        if overview["event_streams"].as_u64() == Some(streams) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} stream(s) open, not {streams}, after {PATIENCE:?}",
            overview["event_streams"]
        );
        // Something to write: a dropped client is found at the next write to it.
        drop(manager.spawn_blocking(|_| Ok::<_, BoxError>(())));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_updates_and_frees_departed_clients() {
    let manager = manager();
    let app = Dashboard::new(Arc::clone(&manager)).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn({
        let app = app.clone();
        async move { axum::serve(listener, app).await }
    });
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(open_stream(addr).await);
    }
    streams_become(&app, 20, &manager).await;

    // A task's progress and then its end reach every stream.
    let open = Arc::new(AtomicBool::new(false));
    let task = manager.submit(held(&open)).unwrap();
    let id = task.id().to_string();
    for (stream, seen) in &mut clients {
        read_until(stream, seen, "event: updates").await;
        read_until(stream, seen, &format!("\"id\":\"{id}\"")).await;
        read_until(stream, seen, "\"message\":\"halfway there\"").await;
    }
    open.store(true, Ordering::SeqCst);
    task.await.unwrap();
    for (stream, seen) in &mut clients {
        read_until(stream, seen, "\"state\":\"succeeded\"").await;
    }
    // The frames are the JSON the page reads.
    let (_, seen) = &clients[0];
    let frame = seen
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|frame| {
            frame["updates"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u["id"] == json!(id)))
        })
        .expect("a frame with the task");
    assert_eq!(frame["lost"], json!(0));

    // Clients that go away free their streams; the last one stops the engine's
    // subscription (the count of open streams shows it).
    clients.truncate(5);
    streams_become(&app, 5, &manager).await;
    clients.clear();
    streams_become(&app, 0, &manager).await;
    // A new client after that is served again.
    let (mut stream, mut seen) = open_stream(addr).await;
    let gate = Arc::new(AtomicBool::new(false));
    let again = manager.submit(held(&gate)).unwrap();
    read_until(
        &mut stream,
        &mut seen,
        &format!("\"id\":\"{}\"", again.id()),
    )
    .await;
    gate.store(true, Ordering::SeqCst);
    again.await.unwrap();
    server.abort();
}
