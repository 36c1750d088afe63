//! The conformance suite on the OS-threads adapter.

struct ThreadsAdapter;

impl errand_conformance::Adapter for ThreadsAdapter {
    type Runtime = errand_threads::Threads;

    fn builder() -> errand_threads::Builder {
        errand_threads::builder()
    }
}

errand_conformance::suite!(ThreadsAdapter);
