//! A quick end-to-end figure (not a benchmark harness; the criterion benches live in
//! `benches/`): N no-op async tasks submitted and awaited on errand-tokio, beside
//! `tokio::spawn` + awaiting its handle, in the same run.
//!
//! ```text
//! cargo run --release -p errand-tokio --example throughput [N] [both|tokio|errand]
//! ```
//!
//! The third argument runs one side alone (for a profiler).

use std::time::Instant;

use errand_tokio::{BoxError, Context, Task};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(200_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    let (run_tokio, run_errand) = (which != "errand", which != "tokio");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        if run_tokio {
            let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
            for handle in handles {
                handle.await.unwrap();
            }
        }
        let baseline = started.elapsed();

        let manager = errand_tokio::builder()
            .workers(2)
            .queue_capacity(n)
            .build()
            .unwrap();
        let started = Instant::now();
        let handles: Vec<_> = (0..if run_errand { n } else { 0 })
            .map(|i| {
                manager
                    .submit(Task::future(move |_ctx: Context| async move {
                        Ok::<_, BoxError>(i)
                    }))
                    .unwrap()
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let errand = started.elapsed();
        let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
        println!("tokio::spawn + await: {:>10.0} tasks/s", rate(baseline));
        println!("errand-tokio:         {:>10.0} tasks/s", rate(errand));
        println!(
            "ratio:                {:>10.2}",
            rate(errand) / rate(baseline)
        );
        manager.stop_accepting();
    });
}
