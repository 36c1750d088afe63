//! Shared pieces of errand's benchmarks: the baselines errand is measured against.
