//! The Ctrl-C / SIGTERM recipe on smol, tested: await the signal (with `async-signal`),
//! then awaits `shutdown` with a grace period, and report what did not finish.

#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;

use async_signal::{Signal, Signals};
use errand_smol::{BoxError, Context, State};
use smol::stream::StreamExt;

#[test]
fn sigterm_shuts_the_manager_down_gracefully() {
    smol::block_on(async {
        let manager = Arc::new(errand_smol::builder().workers(2).build().unwrap());

        // The recipe.
        let mut signals = Signals::new([Signal::Term, Signal::Int]).unwrap();
        let on_signal = smol::spawn({
            let manager = Arc::clone(&manager);
            async move {
                let signal = signals.next().await;
                (
                    signal.map(Result::unwrap),
                    manager.shutdown(Duration::from_millis(100)).await,
                )
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
        // effects; async-signal's handler (installed above) receives it.
        let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        assert_eq!(sent, 0);

        let (signal, report) = on_signal.await;
        assert_eq!(signal, Some(Signal::Term));
        assert_eq!(report.unfinished.len(), 1);
        assert_eq!(report.unfinished[0].state, State::Running);
        assert!(endless.await.unwrap_err().is_cancelled());
        let counts = manager.counts();
        assert_eq!(counts.submitted, counts.ended());
    });
}
