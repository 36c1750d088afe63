//! The conformance suite on the smol adapter.

struct SmolAdapter;

impl errand_conformance::Adapter for SmolAdapter {
    type Runtime = errand_smol::Smol;

    fn builder() -> errand_smol::Builder {
        errand_smol::builder()
    }
}

errand_conformance::suite!(SmolAdapter);
