//! The async-executor baseline: an `Executor` run by a fixed number of threads.

use std::sync::Arc;
use std::thread::JoinHandle;

use smol::Executor;

/// An `async_executor::Executor` (as re-exported by smol) run by `threads` threads until
/// dropped: the baseline for errand-smol, spawned on with [`executor`](Self::executor).
///
/// # Examples
///
/// ```
/// use errand_benches::ExecutorPool;
///
/// let pool = ExecutorPool::new(2);
/// let task = pool.executor().spawn(async { 6 * 7 });
/// assert_eq!(smol::block_on(task), 42);
/// ```
#[derive(Debug)]
pub struct ExecutorPool {
    executor: Arc<Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl ExecutorPool {
    /// Starts `threads` threads (named `async-executor`), each running the executor.
    ///
    /// # Panics
    ///
    /// If a thread cannot be started.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..threads)
            .map(|_| {
                let executor = Arc::clone(&executor);
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name("async-executor".into())
                    .spawn(move || {
                        // Runs tasks until the sender is dropped.
                        let _ = smol::block_on(executor.run(stopped.recv()));
                    })
                    .expect("an executor thread")
            })
            .collect();
        Self {
            executor,
            stop: Some(stop),
            threads,
        }
    }

    /// The executor the threads run.
    #[must_use]
    pub fn executor(&self) -> &Executor<'static> {
        &self.executor
    }
}

impl Drop for ExecutorPool {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
