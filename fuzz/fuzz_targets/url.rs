//! Fuzz target: see `smtp_proto::testing::url` for the invariants it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| smtp_proto::testing::url(data));
