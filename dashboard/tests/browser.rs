//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! started here on a free port). The page loads with no console errors, its numbers move
//! while tasks run, a progress bar advances, the cancel button cancels a running task, the
//! retry button puts a failed durable job back, and a screenshot is saved as
//! `target/dashboard.png`.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them). Without them this test fails: it does not skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use errand_dashboard::Dashboard;
use errand_store_sqlite::SqliteStore;
use errand_tokio::prelude::*;
use fantoccini::{Client, Locator};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one thing may take to show in the page before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);
const TOKEN: &str = "browser-test-token";

/// A durable job that fails (the page's retry button puts it back; it then succeeds).
#[derive(Serialize, Deserialize)]
struct Invoice {
    customer: String,
}

static INVOICES_FAIL: AtomicBool = AtomicBool::new(true);

impl DurableJob for Invoice {
    const KIND: &'static str = "send-invoice";
    type Output = String;

    async fn run(&self, _ctx: Context) -> Result<String, BoxError> {
        if INVOICES_FAIL.load(Ordering::SeqCst) {
            Err(BoxError::from("smtp: connection refused by mail.example"))
        } else {
            Ok(format!("invoice sent to {}", self.customer))
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's {package} package \
                 (apt-get install -y chromium chromium-driver; .ci/run does)"
            );
        }
        let port = free_port();
        let log = std::fs::File::create(target_dir().join("chromedriver.log"))
            .expect("creating target/chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().expect("the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting chromedriver");
        let driver = Self { child, port };
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within {PATIENCE:?} \
                 (see target/chromedriver.log)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// Headless Chromium through chromedriver, with the flags a machine without a network
/// needs (no background fetches, no QUIC, no sync) and a fresh profile.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1440,1640", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    Client::with_capabilities_and_connector(
        &format!("http://127.0.0.1:{}", driver.port),
        &capabilities,
        hyper_util::client::legacy::connect::HttpConnector::new(),
    )
    .await
    .expect("a WebDriver session with headless Chromium")
}

/// Evaluates `script` (an expression) in the page.
async fn eval(client: &Client, script: &str) -> Value {
    client
        .execute(&format!("return {script};"), Vec::new())
        .await
        .unwrap_or_else(|error| panic!("evaluating {script}: {error}"))
}

/// Evaluates `script` until `done` holds for its value, failing after [`PATIENCE`].
async fn until(client: &Client, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = eval(client, script).await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PATIENCE:?} (last {script} = {value})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn no_console_errors(client: &Client) {
    let errors = eval(client, "window.__errandErrors").await;
    assert_eq!(errors, json!([]), "the page logged errors");
}

fn card(name: &str) -> String {
    format!(
        "Number(document.querySelector('#card-{name} .value').textContent.replace(/[^0-9]/g, '') || -1)"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let dir = std::env::temp_dir().join(format!("errand-browser-{}", std::process::id()));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir).unwrap();
    let manager = Arc::new(
        errand_tokio::builder()
            .workers(4)
            .history(10_000)
            .enable_profiling(true)
            .store(SqliteStore::open(dir.join("jobs.db")).unwrap())
            .register::<Invoice>()
            .build()
            .unwrap(),
    );
    let app = Dashboard::new(Arc::clone(&manager))
        .token(TOKEN)
        .result_type::<Value>()
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // What the page shows: work in progress, one task to cancel, failures, a schedule.
    let steps = 80;
    let processing = manager
        .submit(
            Task::future(move |ctx: Context| async move {
                for step in 1..=steps {
                    ctx.progress(
                        f64::from(step) * 100.0 / f64::from(steps),
                        format!("batch {step} of {steps}"),
                    )?;
                    ctx.sleep(Duration::from_millis(250)).await;
                }
                Ok::<_, BoxError>(())
            })
            .label("data processing")
            .priority(Priority::HIGH),
        )
        .unwrap();
    let stuck = manager
        .submit(
            Task::future(|ctx: Context| async move {
                ctx.progress(35.0, "waiting for the upstream export")?;
                ctx.cancelled().await;
                Ok::<_, BoxError>(())
            })
            .label("nightly export"),
        )
        .unwrap();
    for label in ["send welcome email", "resize avatar"] {
        manager
            .submit(
                Task::blocking(|_: &Context| Err::<(), _>(BoxError::from("upstream answered 503")))
                    .label(label),
            )
            .unwrap();
    }
    manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(()))
                .every(Every::new(Duration::from_secs(10)))
                .label("system monitoring"),
        )
        .unwrap();
    manager
        .schedule(
            "nightly-report",
            Invoice {
                customer: "ACME".into(),
            },
            Every::new(Duration::from_secs(3600)),
            JobOptions::new().run_at(std::time::SystemTime::now() + Duration::from_secs(1800)),
        )
        .await
        .unwrap();
    let no_retries = RetryPolicy::builder().max_retries(0).build().unwrap();
    let invoice = manager
        .enqueue(
            Invoice {
                customer: "ACME".into(),
            },
            JobOptions::new().retry(no_retries),
        )
        .await
        .unwrap();
    for customer in ["Globex", "Initech", "Umbrella"] {
        manager
            .enqueue(
                Invoice {
                    customer: customer.into(),
                },
                JobOptions::new().delay(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
    }
    let failed = manager.wait_job(invoice, PATIENCE).await.unwrap().unwrap();
    assert_eq!(failed.job_state, JobState::Failed);

    // A steady stream of short tasks at three priorities, so the numbers move.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = tokio::spawn({
        let manager = Arc::clone(&manager);
        let producing = Arc::clone(&producing);
        async move {
            let mut n = 0u32;
            while producing.load(Ordering::SeqCst) {
                let priority =
                    [Priority::LOW, Priority::NORMAL, Priority::CRITICAL][n as usize % 3];
                drop(
                    manager.submit(
                        Task::future(move |ctx: Context| async move {
                            ctx.sleep(Duration::from_millis(20 + u64::from(n % 7) * 15))
                                .await;
                            Ok::<_, BoxError>(())
                        })
                        .priority(priority),
                    ),
                );
                n += 1;
                // Every few seconds a burst, so the queue has a depth to show.
                if n % 60 == 0 {
                    for k in 0..80u32 {
                        let priority = if k % 4 == 0 {
                            Priority::NORMAL
                        } else {
                            Priority::LOW
                        };
                        drop(
                            manager.submit(
                                Task::future(|ctx: Context| async move {
                                    ctx.sleep(Duration::from_millis(40)).await;
                                    Ok::<_, BoxError>(())
                                })
                                .priority(priority)
                                .label("thumbnail"),
                            ),
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    });

    let driver = Driver::start();
    let client = browser(&driver, &dir.join("chromium-profile")).await;
    client
        .goto(&format!("http://{addr}/#token={TOKEN}"))
        .await
        .expect("loading the dashboard");

    // Loaded: the overview polled, the stream live, the active tasks listed.
    until(
        &client,
        "the first overview",
        "window.__errandState.overviews",
        |v| v.as_u64() >= Some(1),
    )
    .await;
    until(
        &client,
        "the event stream",
        "document.getElementById('live').textContent",
        |v| v == "live",
    )
    .await;
    let stuck_row = format!(
        "document.querySelector('#active tr[data-id=\"{}\"]') !== null",
        stuck.id()
    );
    until(&client, "the task to cancel listed", &stuck_row, |v| {
        v == &json!(true)
    })
    .await;
    no_console_errors(&client).await;

    // The numbers move while tasks run.
    let before = eval(&client, &card("succeeded")).await.as_i64().unwrap();
    until(&client, "succeeded count rising", &card("succeeded"), |v| {
        v.as_i64() > Some(before + 20)
    })
    .await;
    until(
        &client,
        "live updates applied",
        "window.__errandState.updates",
        |v| v.as_u64() > Some(50),
    )
    .await;

    // A progress bar advances.
    let width = format!(
        "parseFloat(document.querySelector('#active tr[data-id=\"{}\"] .bar > div').style.width)",
        processing.id()
    );
    let first = until(&client, "the progress bar", &width, |v| {
        v.as_f64().is_some_and(|w| w > 0.0)
    })
    .await
    .as_f64()
    .unwrap();
    until(&client, "the progress bar advancing", &width, |v| {
        v.as_f64().is_some_and(|w| w >= first + 5.0)
    })
    .await;

    // The cancel button cancels the running task (with the token from the address).
    assert_eq!(manager.state(stuck.id()), Some(State::Running));
    client
        .find(Locator::Css(&format!(
            "button.cancel[data-id=\"{}\"]",
            stuck.id()
        )))
        .await
        .expect("the cancel button")
        .click()
        .await
        .expect("clicking cancel");
    let deadline = Instant::now() + PATIENCE;
    while manager.state(stuck.id()) != Some(State::Cancelled) {
        assert!(
            Instant::now() < deadline,
            "the cancel button did not cancel {}",
            stuck.id()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stuck.await.is_err(),
        "a cancelled task's handle resolves with an error"
    );
    until(
        &client,
        "the cancelled task gone from the list",
        &stuck_row,
        |v| v == &json!(false),
    )
    .await;

    // The retry button puts the failed durable job back; this time it succeeds.
    INVOICES_FAIL.store(false, Ordering::SeqCst);
    let retry = format!("button.retry-job[data-id=\"{invoice}\"]");
    until(
        &client,
        "the retry button",
        &format!("document.querySelector('{retry}') !== null"),
        |v| v == &json!(true),
    )
    .await;
    client
        .find(Locator::Css(&retry))
        .await
        .expect("the retry button")
        .click()
        .await
        .expect("clicking retry");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let job = manager.job(invoice).unwrap().unwrap();
        if job.job_state == JobState::Succeeded {
            assert_eq!((job.attempt, job.failures), (2, 0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retry button did not retry {invoice}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Charts with some history, then the screenshot for review.
    until(
        &client,
        "a few seconds of charts",
        "window.__errandState.samples.length",
        |v| v.as_u64() >= Some(20),
    )
    .await;
    producing.store(false, Ordering::SeqCst);
    producer.await.unwrap();
    no_console_errors(&client).await;
    eval(&client, "window.scrollTo(0, 0) || true").await;
    let png = client.screenshot().await.expect("a screenshot");
    let path = target_dir().join("dashboard.png");
    std::fs::write(&path, &png).expect("writing target/dashboard.png");
    assert!(png.len() > 10_000, "a screenshot of {} bytes", png.len());
    eprintln!("screenshot: {}", path.display());

    client.close().await.expect("closing the browser");
    drop(driver);
    server.abort();
    let report = manager.shutdown(Duration::from_secs(5)).await;
    assert!(
        report
            .unfinished
            .iter()
            .all(|task| task.id != processing.id() || task.state == State::Running)
    );
    drop(std::fs::remove_dir_all(&dir));
}
