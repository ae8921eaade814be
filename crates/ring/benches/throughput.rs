//! Throughput benchmarks (placeholder until the peers are wired in).

fn main() {}
