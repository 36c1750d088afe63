//! The conformance suite on the OS-threads adapter. Its runtime's own tasks are the
//! async tasks of an errand-threads manager, polled on its worker threads.

use errand_threads::prelude::*;

struct ThreadsAdapter;

impl errand_conformance::Adapter for ThreadsAdapter {
    type Runtime = errand_threads::Threads;

    fn builder() -> errand_threads::Builder {
        errand_threads::builder()
    }

    fn run_inside<F>(future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let host = builder().workers(1).build().expect("a host manager");
        let mut future = Some(future);
        let handle = host
            .spawn(move |_ctx: Context| {
                let future = future.take().expect("one attempt");
                async move { Ok::<_, BoxError>(future.await) }
            })
            .expect("the host accepts the task");
        handle.wait().expect("the host task ran to its end")
    }
}

errand_conformance::suite!(ThreadsAdapter);
