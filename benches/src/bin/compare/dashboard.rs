//! `dashboard_dispatch_with_1000_streams` (tasks/s): errand-tokio's no-op throughput (N
//! tasks submitted, every handle awaited) while the dashboard, mounted on an axum server in
//! this process, serves 1 000 open event streams whose clients read every frame; baseline:
//! the same manager, server and dashboard with no stream open, in alternating rounds. The
//! server runs on a 1-thread runtime of its own and the clients on another (all on the
//! machine's two cores, beside the manager's two workers), so what the streams cost the
//! process shows in the ratio.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use errand_benches::report::{Line, Unit, median};
use errand_core::Priority;
use errand_dashboard::Dashboard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::adapters::{Adapter, TokioAdapter, WORKERS, wait_until};
use crate::{Runner, interleave};

const CASE: &str = "dashboard_dispatch_with_1000_streams";
const STREAMS: usize = 1000;

/// Raises the soft limit of open files to the hard one (two descriptors per stream).
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit; both calls only read or write it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The open streams of one round: their readers, and what they read.
struct Streams {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Clients that have read at least one `updates` frame.
    fed: Arc<AtomicUsize>,
    bytes: Arc<AtomicU64>,
}

/// Opens `n` event streams to `addr` on `clients`, each read to its end; returns once
/// every one is open (its `hello` read).
fn open(clients: &tokio::runtime::Runtime, addr: SocketAddr, n: usize) -> Streams {
    let open = Arc::new(AtomicUsize::new(0));
    let fed = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let tasks = (0..n)
        .map(|_| {
            let (open, fed, bytes) = (Arc::clone(&open), Arc::clone(&fed), Arc::clone(&bytes));
            clients.spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("a stream");
                stream
                    .write_all(b"GET /api/events HTTP/1.1\r\nHost: bench\r\n\r\n")
                    .await
                    .expect("a request");
                let mut buffer = vec![0u8; 64 * 1024];
                let (mut hello, mut updates) = (false, false);
                loop {
                    let read = match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => read,
                    };
                    bytes.fetch_add(read as u64, Ordering::Relaxed);
                    let text = &buffer[..read];
                    if !hello && text.windows(12).any(|w| w == b"event: hello") {
                        hello = true;
                        open.fetch_add(1, Ordering::SeqCst);
                    }
                    if !updates && text.windows(14).any(|w| w == b"event: updates") {
                        updates = true;
                        fed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    wait_until("every event stream open", || {
        open.load(Ordering::SeqCst) == n
    });
    Streams { tasks, fed, bytes }
}

/// Closes the streams and waits until the dashboard counts none open (a frame's write finds
/// a departed client: a no-op task now and then makes one).
fn close(
    streams: Streams,
    dashboard: &Dashboard<errand_tokio::Tokio>,
    manager: &errand_core::engine::Manager<errand_tokio::Tokio>,
) {
    for task in streams.tasks {
        task.abort();
    }
    wait_until("every event stream closed", || {
        drop(manager.spawn(|_| async { Ok::<_, errand_core::engine::BoxError>(()) }));
        dashboard.event_streams() == 0
    });
}

/// The case: 1 000 streams vs none.
pub(crate) fn streams(runner: &mut Runner, adapter: &TokioAdapter) {
    if !runner.wants(CASE) {
        return;
    }
    raise_file_limit();
    let n = runner.plan.dashboard_tasks;
    let manager = Arc::new(adapter.manager(n + WORKERS));
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the server's runtime");
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the clients' runtime");
    let dashboard = Dashboard::new(Arc::clone(&manager));
    let router = dashboard.router();
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a local port");
    let addr = listener.local_addr().expect("its address");
    server.spawn(async move { axum::serve(listener, router).await });
    let run = |n: usize| {
        adapter.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..n)
                .map(|_| adapter.submit_noop(&manager, Priority::NORMAL))
                .collect();
            for handle in handles {
                handle.await.expect("a no-op task succeeds");
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
    };
    let (with, without) = interleave(
        &format!("{CASE} ({n} tasks, {STREAMS} streams)"),
        runner.plan.dashboard_rounds,
        || {
            let streams = open(&clients, addr, STREAMS);
            let rate = run(n);
            // The streams were live: every client got frames while the tasks ran.
            wait_until("every stream fed a frame", || {
                streams.fed.load(Ordering::SeqCst) == STREAMS
            });
            eprintln!(
                "  {STREAMS} streams read {:.1} MB",
                streams.bytes.load(Ordering::Relaxed) as f64 / 1e6
            );
            close(streams, &dashboard, &manager);
            rate
        },
        || run(n),
    );
    runner.emit(Line::new(
        CASE,
        "errand-tokio, 1000 event streams",
        "errand-tokio, 0 event streams",
        Unit::TasksPerSecond,
        median(&with),
        median(&without),
        true,
    ));
    // The server's runtime holds the router, and with it the manager: it goes first.
    drop(clients);
    drop(server);
    drop(dashboard);
    match Arc::try_unwrap(manager) {
        Ok(manager) => crate::adapters::finish(manager),
        Err(_) => panic!("the dashboard still holds the manager"),
    }
}
