//! Support for the benchmarks; see `benches/proto.rs` and `e2e.sh`.

pub mod pooled;
