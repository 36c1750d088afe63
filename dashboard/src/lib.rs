//! errand's operator side: an [axum] [`Router`] that mounts into any axum app and serves,
//! for one errand [`Manager`] (and its durable store, when it has one):
//!
//! - a **JSON API** for what the background-task guide asks about — task status and
//!   progress, active tasks, stored results, analytics, performance, shutdown status,
//!   durable jobs and schedules — with cancel and retry as `POST` actions;
//! - a **live event stream** (Server-Sent Events, `GET api/events`) of task transitions
//!   and progress;
//! - a **dashboard page** (`GET /`) that needs no build step: one HTML file with its
//!   script and styles inline, charts drawn as SVG by the page itself, nothing fetched
//!   from elsewhere;
//! - **Prometheus metrics** (`GET metrics`) in the OpenMetrics text format.
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use errand_dashboard::Dashboard;
//!
//! # async fn run() -> std::io::Result<()> {
//! let manager = Arc::new(errand_tokio::builder().workers(4).build().unwrap());
//! let dashboard = Dashboard::new(Arc::clone(&manager)).token("s3cret");
//! // Beside the application's own routes, under a prefix of its choice.
//! let app = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hello" }))
//!     .nest("/errand", dashboard.router());
//! // 127.0.0.1 unless told otherwise: the dashboard's actions are an operator's.
//! let listener = tokio::net::TcpListener::bind(errand_dashboard::DEFAULT_ADDR).await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! # Routes
//!
//! Relative to where the router is mounted. Ids are the engine's (`t-<slot>-<generation>`
//! for tasks, `j-<number>` for durable jobs).
//!
//! | route | answers |
//! |---|---|
//! | `GET /` | the dashboard page |
//! | `GET api/overview` | analytics, performance, shutdown status, durable counts, open streams: what the page polls |
//! | `GET api/tasks` | active tasks (queued, scheduled, retrying, running) |
//! | `GET api/tasks/finished?state=&limit=` | finished tasks still in the history, newest first |
//! | `GET api/tasks/{id}` | one task's status and progress |
//! | `GET api/tasks/{id}/result` | its stored result (see [`Dashboard::result_type`]) |
//! | `POST api/tasks/{id}/cancel` | cancels it |
//! | `POST api/tasks/{id}/retry` | `409`: an in-memory task's closure was consumed by its run, so it cannot be resubmitted from outside |
//! | `POST api/tasks/cancel` | cancels every id of a body `{"ids": ["t-1-1", …]}` (at most 1000) |
//! | `GET api/analytics`, `api/performance`, `api/shutdown` | the manager's snapshots |
//! | `GET api/jobs?state=&kind=&after=&limit=` | durable jobs |
//! | `GET api/jobs/{id}` | one durable job |
//! | `POST api/jobs/{id}/cancel`, `api/jobs/{id}/retry` | cancels a job; puts a failed, cancelled or timed-out job back |
//! | `GET api/schedules` | durable schedules and in-memory recurring tasks, with their next run |
//! | `GET api/events` | the event stream |
//! | `GET metrics` | Prometheus / OpenMetrics text |
//!
//! # Bad input
//!
//! Every error is JSON, `{"error": "...", "status": N}`: a malformed id or query is `400`,
//! an unknown id `404`, an action that does not apply `409`, a body over
//! [`Dashboard::BODY_LIMIT`] `413`, a body that is not the JSON asked for `422`, an action
//! without the configured bearer token `401`, a durable route on a manager without a
//! store `404`.
//!
//! # The event stream
//!
//! One engine subscription ([`Manager::subscribe`]) serves every open stream, and only
//! while one is open: with none, the engine publishes nothing. At most ten frames a second
//! (two while the manager outruns the stream: a frame that was full or whose `lost` is
//! above 0, which then carries only progress; readers resynchronise from `api/tasks`)
//! go out (`event: updates`, a JSON object with the latest update of each task that
//! changed, at most [`MAX_FRAME`] of them, and how many were dropped or coalesced), so a
//! busy manager costs its streams a bounded amount of work whatever its rate. A task
//! submitted and ended between two frames is left out of them (it was never there to
//! show; the counts in `api/overview` and `metrics` say it ran): a subscriber that wants
//! every update uses [`Manager::subscribe`] itself. A stream
//! that cannot keep up is sent `event: lagged`; one whose client went away is dropped at
//! its next write (a keep-alive comment every few seconds makes one), freeing its share.
//!
//! # Security
//!
//! [`DEFAULT_ADDR`] is on 127.0.0.1. Actions (`POST`) need `Authorization: Bearer
//! <token>` once [`Dashboard::token`] is set (the page asks for it, or takes it from its
//! address's fragment, `#token=…`); queries stay open to whoever reaches the address.

mod api;
mod error;
mod metrics;
mod page;
mod stream;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use errand_core::TaskId;
use errand_core::engine::{Manager, Runtime};
use serde::Serialize;

pub use error::ApiError;
pub use stream::MAX_FRAME;

/// Where [`Dashboard`]'s example and service bind unless told otherwise: loopback only.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7878));

/// Reads a stored result of one type, as JSON.
type ResultReader<R> =
    Arc<dyn Fn(&Manager<R>, TaskId) -> Option<serde_json::Value> + Send + Sync + 'static>;

/// The dashboard of one manager: build it, then mount its [`router`](Self::router).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use errand_dashboard::Dashboard;
///
/// # let runtime = tokio::runtime::Runtime::new().unwrap();
/// # let _guard = runtime.enter();
/// let manager = Arc::new(errand_tokio::builder().build().unwrap());
/// let router: axum::Router = Dashboard::new(manager)
///     .token("s3cret")
///     .result_type::<serde_json::Value>()
///     .router();
/// # drop(router);
/// ```
pub struct Dashboard<R: Runtime> {
    manager: Arc<Manager<R>>,
    token: Option<String>,
    results: Vec<ResultReader<R>>,
    hub: Arc<stream::Hub>,
}

impl<R: Runtime> std::fmt::Debug for Dashboard<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("manager", &self.manager)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("result_types", &self.results.len())
            .finish()
    }
}

impl<R: Runtime> Clone for Dashboard<R> {
    fn clone(&self) -> Self {
        Self {
            manager: Arc::clone(&self.manager),
            token: self.token.clone(),
            results: self.results.clone(),
            hub: Arc::clone(&self.hub),
        }
    }
}

/// What every handler shares.
pub(crate) struct Shared<R: Runtime> {
    pub(crate) manager: Arc<Manager<R>>,
    pub(crate) token: Option<String>,
    pub(crate) results: Vec<ResultReader<R>>,
    pub(crate) hub: Arc<stream::Hub>,
    /// Whether the manager has a durable store (asked once).
    pub(crate) has_store: std::sync::OnceLock<bool>,
}

impl<R: Runtime> Dashboard<R> {
    /// The largest request body an action takes, in bytes.
    pub const BODY_LIMIT: usize = 64 * 1024;

    /// A dashboard of `manager`, with no token (actions open to whoever reaches it) and no
    /// result types.
    #[must_use]
    pub fn new(manager: Arc<Manager<R>>) -> Self {
        Self {
            manager,
            token: None,
            results: Vec::new(),
            hub: Arc::new(stream::Hub::new()),
        }
    }

    /// Event streams open now, over every router this dashboard made.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let _guard = runtime.enter();
    /// let manager = std::sync::Arc::new(errand_tokio::builder().build().unwrap());
    /// let dashboard = errand_dashboard::Dashboard::new(manager);
    /// assert_eq!(dashboard.event_streams(), 0);
    /// ```
    #[must_use]
    pub fn event_streams(&self) -> usize {
        self.hub.streams()
    }

    /// Requires `Authorization: Bearer <token>` on every action (`POST`).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|token| !token.is_empty());
        self
    }

    /// Lets `GET api/tasks/{id}/result` answer stored results of type `T` (see
    /// [`Task::store_result`](errand_core::engine::Task::store_result)), as JSON. The
    /// engine keeps results as the task's own type, so the dashboard can only show the
    /// types it was told of; each is tried in turn.
    #[must_use]
    pub fn result_type<T: Serialize + Send + Sync + 'static>(mut self) -> Self {
        self.results.push(Arc::new(|manager: &Manager<R>, id| {
            let value = manager.stored_result::<T>(id)?;
            serde_json::to_value(&*value).ok()
        }));
        self
    }

    /// The router: the page at `/`, the API under `api/`, the metrics at `metrics`.
    /// Mount it with [`Router::nest`] or [`Router::merge`]. Its event stream needs a tokio
    /// runtime (axum's).
    pub fn router(&self) -> Router {
        let shared = self.shared();
        let actions = Router::new()
            .route("/api/tasks/cancel", post(api::cancel_tasks::<R>))
            .route("/api/tasks/{id}/cancel", post(api::cancel_task::<R>))
            .route("/api/tasks/{id}/retry", post(api::retry_task::<R>))
            .route("/api/jobs/{id}/cancel", post(api::cancel_job::<R>))
            .route("/api/jobs/{id}/retry", post(api::retry_job::<R>))
            .route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&shared),
                api::authorize::<R>,
            ));
        Router::new()
            .route("/", get(page::page))
            .route("/api/overview", get(api::overview::<R>))
            .route("/api/tasks", get(api::active::<R>))
            .route("/api/tasks/finished", get(api::finished::<R>))
            .route("/api/tasks/{id}", get(api::task::<R>))
            .route("/api/tasks/{id}/result", get(api::result::<R>))
            .route("/api/analytics", get(api::analytics::<R>))
            .route("/api/performance", get(api::performance::<R>))
            .route("/api/shutdown", get(api::shutdown::<R>))
            .route("/api/jobs", get(api::jobs::<R>))
            .route("/api/jobs/{id}", get(api::job::<R>))
            .route("/api/schedules", get(api::schedules::<R>))
            .route("/api/events", get(stream::events::<R>))
            .route("/metrics", get(metrics::metrics::<R>))
            .merge(actions)
            .fallback(api::no_route)
            .layer(DefaultBodyLimit::max(Self::BODY_LIMIT))
            .with_state(shared)
    }

    /// A router with the metrics alone, at `/metrics`: merge it at the root of an app
    /// whose dashboard is nested elsewhere, where Prometheus looks by default.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let _guard = runtime.enter();
    /// let manager = std::sync::Arc::new(errand_tokio::builder().build().unwrap());
    /// let dashboard = errand_dashboard::Dashboard::new(manager);
    /// let app: axum::Router = axum::Router::new()
    ///     .nest("/dashboard", dashboard.router())
    ///     .merge(dashboard.metrics_router()); // GET /metrics
    /// # drop(app);
    /// ```
    pub fn metrics_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics::metrics::<R>))
            .with_state(self.shared())
    }

    fn shared(&self) -> Arc<Shared<R>> {
        Arc::new(Shared {
            manager: Arc::clone(&self.manager),
            token: self.token.clone(),
            results: self.results.clone(),
            hub: Arc::clone(&self.hub),
            has_store: std::sync::OnceLock::new(),
        })
    }
}
