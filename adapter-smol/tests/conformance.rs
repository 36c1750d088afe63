//! The conformance suite on the smol adapter.

struct SmolAdapter;

impl errand_conformance::Adapter for SmolAdapter {
    type Runtime = errand_smol::Smol;

    fn builder() -> errand_smol::Builder {
        errand_smol::builder()
    }

    fn run_inside<F>(future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::block_on(smol::spawn(future))
    }
}

errand_conformance::suite!(SmolAdapter);
