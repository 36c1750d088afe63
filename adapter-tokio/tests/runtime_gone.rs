//! The tokio runtime under a manager: dropped while tasks live, every handle resolves and
//! later submissions fail with a typed error; no runtime at all, building fails with one.

use std::sync::mpsc;
use std::time::Duration;

use errand_tokio::prelude::*;

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn a_dropped_runtime_resolves_every_handle_and_refuses_submissions() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let manager = errand_tokio::builder_on(runtime.handle().clone())
        .workers(2)
        .build()
        .unwrap();
    let (started, running) = mpsc::channel();
    let pending = manager
        .spawn(move |_ctx: Context| {
            let started = started.clone();
            async move {
                started.send(()).unwrap();
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(())
            }
        })
        .unwrap();
    let delayed = manager
        .submit(
            Task::blocking(|_: &Context| Ok::<_, BoxError>(())).delay(Duration::from_secs(3600)),
        )
        .unwrap();
    running
        .recv_timeout(PATIENCE)
        .expect("the async task started");

    drop(runtime);

    let pending = pending
        .wait_timeout(PATIENCE)
        .expect("resolved after the runtime went");
    assert!(pending.is_err());
    let delayed = delayed
        .wait_timeout(PATIENCE)
        .expect("resolved after the runtime went");
    assert!(delayed.unwrap_err().is_cancelled());
    let refused = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(()))
        .unwrap_err();
    assert!(
        matches!(refused, SubmitError::RuntimeGone { .. }),
        "{refused}"
    );
    assert!(!manager.is_accepting());
    let report = manager.shutdown(PATIENCE).wait();
    assert!(report.unfinished.is_empty(), "every task already ended");
    let counts = manager.counts();
    assert_eq!(counts.submitted, 2);
    assert_eq!(counts.submitted, counts.ended());
}

#[test]
fn a_builder_outside_a_runtime_is_an_error_not_a_panic() {
    let error = builder().workers(1).build().unwrap_err();
    assert_eq!(error.kind(), BuildErrorKind::Runtime);
    assert_eq!(error.setting(), "runtime");
    assert!(error.to_string().contains("builder_on"), "{error}");
}
