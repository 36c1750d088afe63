//! The Ctrl-C / SIGTERM recipe on OS threads, tested: a thread waits for the signal
//! (here with `signal-hook`), then calls `shutdown` with a grace period and reports.

#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;

use errand_threads::{BoxError, Context, State};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[test]
fn sigterm_shuts_the_manager_down_gracefully() {
    let manager = Arc::new(errand_threads::builder().workers(2).build().unwrap());

    // The recipe.
    let mut signals = Signals::new([SIGINT, SIGTERM]).unwrap();
    let on_signal = std::thread::spawn({
        let manager = Arc::clone(&manager);
        move || {
            let signal = signals.forever().next();
            (signal, manager.shutdown(Duration::from_millis(100)).wait())
        }
    });

    let quick = manager
        .spawn_blocking(|_: &Context| Ok::<_, BoxError>(1))
        .unwrap();
    let endless = manager
        .spawn_blocking(|ctx: &Context| {
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok::<_, BoxError>(())
        })
        .unwrap();
    assert_eq!(quick.wait().unwrap(), 1);

    // SAFETY: `kill` with our own pid and a valid signal number has no memory effects;
    // signal-hook's handler (installed above) receives it.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(sent, 0);

    let (signal, report) = on_signal.join().unwrap();
    assert_eq!(signal, Some(SIGTERM));
    assert_eq!(report.unfinished.len(), 1);
    assert_eq!(report.unfinished[0].state, State::Running);
    assert!(endless.wait().unwrap_err().is_cancelled());
    let counts = manager.counts();
    assert_eq!(counts.submitted, counts.ended());
}
