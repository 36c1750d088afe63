//! Each adapter's submit → complete path against its runtime's own spawn, on two workers.
//!
//! - `adapters/submit_complete`: one no-op task submitted and awaited (or joined) before
//!   the next: the round trip a request handler pays when it waits for its task, workers
//!   waking for every task.
//! - `adapters/submit_batch`: 1 000 no-op tasks submitted, then every handle awaited; time
//!   per task (criterion's `elem/s` is tasks per second).
//!
//! Pairs, each measured in the same group: `errand_tokio` vs `tokio_spawn` (one 2-thread
//! multi-thread runtime shared by both), `errand_smol` vs `async_executor` (smol's global
//! executor with 2 threads vs an `Executor` run by 2 threads), `errand_threads` vs
//! `channel_pool` (boxed closures over crossbeam-channel, 2 threads, a reply channel per
//! task). The comparison runner (`src/bin/compare`) measures the same at 1M tasks.
//!
//! `cargo bench -p errand-benches --bench adapters -- adapters/submit_batch`

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use errand_benches::{ChannelPool, ExecutorPool};
use errand_core::engine::{BoxError, Builder, Context, Job, Manager, Runtime, Task};

const WORKERS: usize = 2;
/// Tasks per iteration of `adapters/submit_batch`.
const BATCH: usize = 1_000;

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// A manager with room for a batch, built by `builder`.
fn manager<R: Runtime>(builder: Builder<R>) -> Manager<R> {
    builder
        .workers(WORKERS)
        .queue_capacity(BATCH * 2)
        .build()
        .expect("a manager")
}

/// The no-op async task of the async adapters.
fn noop_async() -> Task<impl Job<Output = ()>> {
    Task::future(|_ctx: Context| async { Ok::<_, BoxError>(()) })
}

/// Times `iters` round trips, each awaiting `one()` before the next starts.
async fn round_trips<F: Future<Output = ()>>(iters: u64, mut one: impl FnMut() -> F) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        one().await;
    }
    start.elapsed()
}

fn submit_complete(c: &mut Criterion) {
    let mut group = c.benchmark_group("adapters/submit_complete");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    let runtime = tokio_runtime();
    {
        let errand = runtime.block_on(async { manager(errand_tokio::builder()) });
        group.bench_function("errand_tokio", |b| {
            b.iter_custom(|iters| {
                runtime.block_on(round_trips(iters, || async {
                    errand
                        .submit(noop_async())
                        .expect("submitted")
                        .await
                        .unwrap();
                }))
            });
        });
        group.bench_function("tokio_spawn", |b| {
            b.iter_custom(|iters| {
                runtime.block_on(round_trips(iters, || async {
                    tokio::spawn(async {}).await.unwrap();
                }))
            });
        });
    }

    let errand = manager(errand_smol::builder());
    group.bench_function("errand_smol", |b| {
        b.iter_custom(|iters| {
            smol::block_on(round_trips(iters, || async {
                errand
                    .submit(noop_async())
                    .expect("submitted")
                    .await
                    .unwrap();
            }))
        });
    });
    let executor = ExecutorPool::new(WORKERS);
    group.bench_function("async_executor", |b| {
        b.iter_custom(|iters| {
            smol::block_on(round_trips(iters, || executor.executor().spawn(async {})))
        });
    });

    let errand = manager(errand_threads::builder());
    group.bench_function("errand_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let task = Task::blocking(|_ctx: &Context| Ok::<_, BoxError>(()));
                errand.submit(task).expect("submitted").wait().unwrap();
            }
            start.elapsed()
        });
    });
    let pool = ChannelPool::new(WORKERS);
    group.bench_function("channel_pool", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let (reply, answer) = crossbeam_channel::bounded(1);
                pool.execute(move || reply.send(black_box(i)).unwrap());
                answer.recv().unwrap();
            }
            start.elapsed()
        });
    });
    group.finish();
}

fn submit_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("adapters/submit_batch");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH as u64));

    let runtime = tokio_runtime();
    {
        let errand = runtime.block_on(async { manager(errand_tokio::builder()) });
        group.bench_function("errand_tokio", |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let handles: Vec<_> = (0..BATCH)
                        .map(|_| errand.submit(noop_async()).expect("submitted"))
                        .collect();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                });
            });
        });
        group.bench_function("tokio_spawn", |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let handles: Vec<_> = (0..BATCH).map(|_| tokio::spawn(async {})).collect();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                });
            });
        });
    }

    let errand = manager(errand_smol::builder());
    group.bench_function("errand_smol", |b| {
        b.iter(|| {
            smol::block_on(async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|_| errand.submit(noop_async()).expect("submitted"))
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            });
        });
    });
    let executor = ExecutorPool::new(WORKERS);
    group.bench_function("async_executor", |b| {
        b.iter(|| {
            smol::block_on(async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|_| executor.executor().spawn(async {}))
                    .collect();
                for handle in handles {
                    handle.await;
                }
            });
        });
    });

    let errand = manager(errand_threads::builder());
    group.bench_function("errand_threads", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..BATCH)
                .map(|_| {
                    let task = Task::blocking(|_ctx: &Context| Ok::<_, BoxError>(()));
                    errand.submit(task).expect("submitted")
                })
                .collect();
            for handle in handles {
                handle.wait().unwrap();
            }
        });
    });
    let pool = ChannelPool::new(WORKERS);
    group.bench_function("channel_pool", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                pool.execute(move || {
                    black_box(i);
                });
            }
            pool.wait_idle();
        });
    });
    group.finish();
}

criterion_group!(benches, submit_complete, submit_batch);

fn main() {
    // errand-smol's workers run on smol's global executor, which reads its thread count
    // from SMOL_THREADS on first use (inside the benches).
    // SAFETY: no thread of ours exists yet, so nothing reads the environment meanwhile.
    unsafe { std::env::set_var("SMOL_THREADS", WORKERS.to_string()) };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
