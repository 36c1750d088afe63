//! A quick end-to-end figure (not a benchmark harness; the criterion benches live in
//! `benches/`): N no-op async tasks submitted and awaited on errand-tokio, beside
//! `tokio::spawn` + awaiting its handle, in the same run.
//!
//! ```text
//! cargo run --release -p errand-tokio --example throughput [N]
//! ```

use std::time::Instant;

use errand_tokio::{BoxError, Context, Task};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let baseline = started.elapsed();

        let manager = errand_tokio::builder().queue_capacity(n).build().unwrap();
        let started = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                manager
                    .submit(Task::new_async(move |_ctx: Context| async move {
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
