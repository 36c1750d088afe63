//! The Ctrl-C / SIGTERM recipe on tokio, tested: await the signal in a task, then
//! awaits `shutdown` with a grace period, and report what did not finish.

#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;

use errand_tokio::{BoxError, Context, State};
use tokio::signal::unix::{SignalKind, signal};

#[test]
fn sigterm_shuts_the_manager_down_gracefully() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let manager = Arc::new(errand_tokio::builder().workers(2).build().unwrap());

        // The recipe: one task waits for SIGTERM (or `tokio::signal::ctrl_c()`), then
        // shuts down with a grace period and reports.
        let mut terminate = signal(SignalKind::terminate()).unwrap();
        let on_signal = tokio::spawn({
            let manager = Arc::clone(&manager);
            async move {
                terminate.recv().await;
                manager.shutdown(Duration::from_millis(100)).await
            }
        });

        let quick = manager
            .spawn_blocking(|_: &Context| Ok::<_, BoxError>(1))
            .unwrap();
        let endless = manager
            .spawn(|ctx: Context| async move {
                ctx.cancelled().await;
                Ok::<_, BoxError>(())
            })
            .unwrap();
        assert_eq!(quick.await.unwrap(), 1);

        // SAFETY: `kill` with our own pid and a valid signal number has no memory
        // effects; tokio's handler (installed above) receives it.
        let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        assert_eq!(sent, 0);

        let report = tokio::time::timeout(Duration::from_secs(20), on_signal)
            .await
            .expect("the signal was handled")
            .unwrap();
        assert_eq!(report.unfinished.len(), 1);
        assert_eq!(report.unfinished[0].state, State::Running);
        assert!(endless.await.unwrap_err().is_cancelled());
        assert!(!manager.is_accepting());
        let counts = manager.counts();
        assert_eq!(counts.submitted, counts.ended());
    });
}
