//! Baselines that live only in the runner: async-executor run by two threads. (The
//! crossbeam-channel pool is the library's `ChannelPool`; tokio's is the shared runtime.)

use std::sync::Arc;
use std::thread::JoinHandle;

use smol::Executor;

use crate::adapters::WORKERS;

/// An `async_executor::Executor` (as re-exported by smol) run by [`WORKERS`] threads until
/// dropped.
pub(crate) struct SmolExecutor {
    pub(crate) executor: Arc<Executor<'static>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl SmolExecutor {
    pub(crate) fn new() -> Self {
        let executor = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..WORKERS)
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
}

impl Drop for SmolExecutor {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
