//! Replays every checked-in fuzz corpus file (seeds and past crashers) on
//! stable, so CI checks them on every run. The checks are the fuzz targets'
//! own, from `smtp_proto::testing`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "corpus file {} fails", path.display());
        count += 1;
    }
    assert!(count > 0, "no corpus files in {}", dir.display());
}

#[test]
fn session_corpus() {
    replay("session", smtp_proto::testing::session);
}

#[test]
fn reply_corpus() {
    replay("reply", smtp_proto::testing::reply);
}

#[test]
fn capabilities_corpus() {
    replay("capabilities", smtp_proto::testing::capabilities);
}

#[test]
fn data_corpus() {
    replay("data", smtp_proto::testing::data);
}

/// The Exchange Online seed really completes a session when TLS splits it,
/// so the corpus reaches deep states.
#[test]
fn exchange_online_seed_reaches_delivery() {
    use smtp_proto::testing::{drive, Scenario};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/session");
    let data = fs::read(dir.join("seed-exchange-online")).unwrap();
    let sel: [u8; 4] = data[..4].try_into().unwrap();
    let cut = usize::from(u16::from_le_bytes([data[5], data[6]]));
    let run = drive(&Scenario::from_selector(sel), &data[7..], &[cut]);
    assert_eq!(run.error, None, "{run:?}");
    assert!(
        run.events
            .iter()
            .any(|e| e.starts_with("TransactionComplete(Ok")),
        "{run:?}"
    );
}
