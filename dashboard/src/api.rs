//! The JSON API's handlers: queries (`GET`) and actions (`POST`, behind [`authorize`]).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use errand_core::engine::{
    Analytics, CancelError, DurableStats, JobFilter, JobId, JobInfo, JobState, Manager,
    Performance, Retried, Runtime, ScheduleInfo, StoreErrorKind, TaskInfo,
};
use errand_core::{State as TaskState, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{ApiError, Shared};

type Shared_<R> = State<Arc<Shared<R>>>;
type Answer = Result<Response, ApiError>;

/// The longest id text looked at (anything longer is malformed).
const MAX_ID: usize = 64;
/// The most items a listing or a bulk action takes.
const MAX_ITEMS: usize = 1000;

fn ok(value: impl Serialize) -> Answer {
    Ok(Json(value).into_response())
}

/// Task id `text`, or a 400 saying why not.
fn task_id(path: Result<Path<String>, PathRejection>) -> Result<TaskId, ApiError> {
    let Path(text) = path?;
    if text.len() > MAX_ID {
        return Err(ApiError::bad_request("malformed task id: too long"));
    }
    text.parse()
        .map_err(|error| ApiError::bad_request(format!("malformed task id: {error}")))
}

/// Durable job id `text`, or a 400 saying why not.
fn job_id(path: Result<Path<String>, PathRejection>) -> Result<JobId, ApiError> {
    let Path(text) = path?;
    if text.len() > MAX_ID {
        return Err(ApiError::bad_request("malformed job id: too long"));
    }
    text.parse()
        .map_err(|error| ApiError::bad_request(format!("malformed job id: {error}")))
}

/// A `limit` query value within `1..=MAX_ITEMS` (`default` when absent).
fn limit(value: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match value.unwrap_or(default) {
        0 => Err(ApiError::bad_request("limit must be at least 1")),
        n if n > MAX_ITEMS => Err(ApiError::bad_request(format!(
            "limit must be at most {MAX_ITEMS}"
        ))),
        n => Ok(n),
    }
}

/// Runs the store query `work` off the async workers (a store read may touch the disk or
/// the network); a manager without a store is a 404.
async fn store<R: Runtime, T: Send + 'static>(
    shared: &Arc<Shared<R>>,
    work: impl FnOnce(&Manager<R>) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if !shared.has_store() {
        return Err(ApiError::not_found(
            "this manager has no durable store: durable jobs and schedules need one",
        ));
    }
    let manager = Arc::clone(&shared.manager);
    tokio::task::spawn_blocking(move || work(&manager))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the store query did not finish: {error}"),
            )
        })?
}

/// Checks the bearer token of an action, when one is configured.
pub(crate) async fn authorize<R: Runtime>(
    State(shared): Shared_<R>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &shared.token {
        if !bearer_matches(request.headers(), token) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this action needs the dashboard's bearer token (Authorization: Bearer <token>)",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    next.run(request).await
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, token) = (given.as_bytes(), token.as_bytes());
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Any route the dashboard does not have.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// The guide's `/shutdown-status`.
#[derive(Serialize)]
struct ShutdownStatus {
    accepting_new_tasks: bool,
    active_tasks: usize,
    shutdown_initiated: bool,
}

fn shutdown_status<R: Runtime>(manager: &Manager<R>) -> ShutdownStatus {
    ShutdownStatus {
        accepting_new_tasks: manager.is_accepting(),
        active_tasks: manager.active_tasks().len(),
        shutdown_initiated: manager.is_shutdown_initiated(),
    }
}

/// Everything the page polls, in one answer.
#[derive(Serialize)]
struct Overview {
    analytics: Analytics,
    performance: Performance,
    shutdown: ShutdownStatus,
    durable: Option<DurableStats>,
    event_streams: usize,
    token_required: bool,
    now: SystemTime,
}

pub(crate) async fn overview<R: Runtime>(State(shared): Shared_<R>) -> Answer {
    let durable = if shared.has_store() {
        let manager = Arc::clone(&shared.manager);
        tokio::task::spawn_blocking(move || manager.durable_stats().ok())
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let manager = &shared.manager;
    ok(Overview {
        analytics: manager.analytics(),
        performance: manager.performance(),
        shutdown: shutdown_status(manager),
        durable,
        event_streams: shared.hub.streams(),
        token_required: shared.token.is_some(),
        now: SystemTime::now(),
    })
}

/// The guide's `/active-tasks`.
pub(crate) async fn active<R: Runtime>(State(shared): Shared_<R>) -> Answer {
    let active = shared.manager.active_tasks();
    ok(json!({ "total_count": active.len(), "active_tasks": active }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishedQuery {
    state: Option<TaskState>,
    limit: Option<usize>,
}

/// Finished tasks in the history, newest first (`state=failed` for recent failures).
pub(crate) async fn finished<R: Runtime>(
    State(shared): Shared_<R>,
    query: Result<Query<FinishedQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query?;
    let limit = limit(query.limit, 100)?;
    if query.state.is_some_and(|state| !state.is_terminal()) {
        return Err(ApiError::bad_request(
            "state must be a finished one: succeeded, failed, cancelled or timed_out",
        ));
    }
    let tasks: Vec<TaskInfo> = shared
        .manager
        .finished_tasks()
        .into_iter()
        .filter(|task| query.state.is_none_or(|state| task.state == state))
        .take(limit)
        .collect();
    ok(json!({ "total_count": tasks.len(), "tasks": tasks }))
}

/// The guide's `/task-status/{id}` and `/task-progress/{id}`.
pub(crate) async fn task<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = task_id(path)?;
    match shared.manager.task(id) {
        Some(info) => ok(info),
        None => Err(ApiError::not_found(format!(
            "no task {id} (unknown, or no longer in the history)"
        ))),
    }
}

/// The guide's `/calculation-result/{id}`.
pub(crate) async fn result<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = task_id(path)?;
    let found = shared
        .results
        .iter()
        .find_map(|read| read(&shared.manager, id));
    match found {
        Some(result) => ok(json!({
            "task_id": id,
            "result": result,
            "retrieved_at": SystemTime::now(),
        })),
        None => Err(ApiError::not_found(format!(
            "no stored result for {id}: not found or expired (or of a type the dashboard \
             was not told of)"
        ))),
    }
}

pub(crate) async fn analytics<R: Runtime>(State(shared): Shared_<R>) -> Answer {
    ok(shared.manager.analytics())
}

pub(crate) async fn performance<R: Runtime>(State(shared): Shared_<R>) -> Answer {
    ok(shared.manager.performance())
}

pub(crate) async fn shutdown<R: Runtime>(State(shared): Shared_<R>) -> Answer {
    ok(shutdown_status(&shared.manager))
}

fn cancel_answer(id: TaskId, result: Result<(), CancelError>) -> Answer {
    match result {
        Ok(()) => ok(json!({ "task_id": id, "cancelled": true })),
        Err(CancelError::Unknown { .. }) => Err(ApiError::not_found(format!("no task {id}"))),
        Err(CancelError::Finished { state, .. }) => Err(ApiError::conflict(format!(
            "task {id} has already ended: {state}"
        ))),
        Err(other) => Err(ApiError::conflict(other.to_string())),
    }
}

pub(crate) async fn cancel_task<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = task_id(path)?;
    cancel_answer(id, shared.manager.cancel(id))
}

/// An in-memory task cannot be run again from outside: its closure or future was moved
/// into its run. The answer says so (409), or 400/404 for a bad or unknown id.
pub(crate) async fn retry_task<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = task_id(path)?;
    let Some(info) = shared.manager.task(id) else {
        return Err(ApiError::not_found(format!("no task {id}")));
    };
    Err(ApiError::conflict(format!(
        "task {id} ({}) is an in-memory task: its closure was consumed when it ran, so it \
         cannot be resubmitted from outside; its retries are its retry policy's. Durable \
         jobs can be retried: POST api/jobs/{{id}}/retry",
        info.state
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ids {
    ids: Vec<TaskId>,
}

/// Cancels every task of the body's `ids`: each id's outcome.
pub(crate) async fn cancel_tasks<R: Runtime>(
    State(shared): Shared_<R>,
    body: Result<Json<Ids>, JsonRejection>,
) -> Answer {
    let Json(Ids { ids }) = body?;
    if ids.is_empty() || ids.len() > MAX_ITEMS {
        return Err(ApiError::unprocessable(format!(
            "ids must hold 1 to {MAX_ITEMS} task ids, not {}",
            ids.len()
        )));
    }
    let outcomes: Vec<Value> = ids
        .into_iter()
        .map(|id| {
            let outcome = match shared.manager.cancel(id) {
                Ok(()) => "cancelled".to_string(),
                Err(CancelError::Unknown { .. }) => "unknown".to_string(),
                Err(CancelError::Finished { state, .. }) => format!("already {state}"),
                Err(other) => other.to_string(),
            };
            json!({ "task_id": id, "outcome": outcome })
        })
        .collect();
    ok(json!({ "results": outcomes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobsQuery {
    state: Option<JobState>,
    kind: Option<String>,
    after: Option<JobId>,
    limit: Option<usize>,
}

pub(crate) async fn jobs<R: Runtime>(
    State(shared): Shared_<R>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = query?;
    let mut filter = JobFilter::all().limit(limit(query.limit, 100)?);
    if let Some(state) = query.state {
        filter = filter.state(state);
    }
    if let Some(kind) = query.kind {
        if kind.len() > 200 {
            return Err(ApiError::bad_request("kind is too long"));
        }
        filter = filter.kind(kind);
    }
    if let Some(after) = query.after {
        filter = filter.after(after);
    }
    let jobs: Vec<JobInfo> = store(&shared, move |manager| Ok(manager.jobs(&filter)?)).await?;
    ok(json!({ "total_count": jobs.len(), "jobs": jobs }))
}

pub(crate) async fn job<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = job_id(path)?;
    match store(&shared, move |manager| Ok(manager.job(id)?)).await? {
        Some(job) => ok(job),
        None => Err(ApiError::not_found(format!("no durable job {id}"))),
    }
}

pub(crate) async fn cancel_job<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = job_id(path)?;
    let answer = store(&shared, move |manager| Ok(manager.cancel_job(id).wait()?)).await?;
    match answer {
        None => Err(ApiError::not_found(format!("no durable job {id}"))),
        Some(state) if state.is_finished() => Err(ApiError::conflict(format!(
            "durable job {id} has already finished: {state:?}"
        ))),
        Some(state) => ok(json!({ "job_id": id, "cancelled": true, "was": state })),
    }
}

pub(crate) async fn retry_job<R: Runtime>(
    State(shared): Shared_<R>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let id = job_id(path)?;
    let answer = store(&shared, move |manager| Ok(manager.retry_job(id).wait()?)).await?;
    match answer {
        None => Err(ApiError::not_found(format!("no durable job {id}"))),
        Some(Retried::Requeued { from }) => {
            ok(json!({ "job_id": id, "retried": true, "was": from }))
        }
        Some(Retried::NotRetryable { state }) => Err(ApiError::conflict(format!(
            "durable job {id} is {state:?}: only failed, cancelled or timed-out jobs are retried"
        ))),
        Some(Retried::KeyHeld { state }) => Err(ApiError::conflict(format!(
            "durable job {id} stays {state:?}: another unfinished job holds its unique key"
        ))),
        Some(other) => Err(ApiError::conflict(format!("{other:?}"))),
    }
}

/// Durable schedules (when there is a store) and in-memory recurring tasks.
pub(crate) async fn schedules<R: Runtime>(State(shared): Shared_<R>) -> Answer {
    let durable: Vec<ScheduleInfo> = if shared.has_store() {
        match store(&shared, |manager| Ok(manager.schedules()?)).await {
            Ok(schedules) => schedules,
            Err(error) if error.status() == StatusCode::NOT_FOUND => Vec::new(),
            Err(error) => return Err(error),
        }
    } else {
        Vec::new()
    };
    let recurring: Vec<TaskInfo> = shared
        .manager
        .active_tasks()
        .into_iter()
        .filter(|task| task.every.is_some())
        .collect();
    ok(json!({ "durable": durable, "recurring": recurring }))
}

impl<R: Runtime> Shared<R> {
    /// Whether the manager has a durable store.
    pub(crate) fn has_store(&self) -> bool {
        *self.has_store.get_or_init(|| {
            !matches!(
                self.manager.durable_stats(),
                Err(error) if error.kind() == StoreErrorKind::Closed
            )
        })
    }
}
