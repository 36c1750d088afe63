//! Shows that an idle manager uses no CPU: builds managers on OS threads, lets them sit
//! idle for a second, and prints the process CPU time spent meanwhile (from
//! `Manager::performance`).
//!
//! ```text
//! cargo run --release -p errand-threads --example idle
//! ```

use std::time::Duration;

fn main() {
    let manager = errand_threads::builder().workers(8).build().unwrap();
    let _ = manager.performance(); // start the measurement window
    std::thread::sleep(Duration::from_secs(1));
    let idle = manager.performance();
    println!(
        "8 idle workers and the timer driver over {:?}: cpu {}",
        idle.window,
        idle.cpu_percent
            .map_or("not measured on this platform".into(), |cpu| format!(
                "{cpu:.2} %"
            ))
    );
}
