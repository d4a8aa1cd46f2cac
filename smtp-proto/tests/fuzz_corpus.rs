//! Replays every checked-in fuzz corpus file (seeds and past crashers) on
//! stable, so CI checks them on every run. The checks are the fuzz targets'
//! own, from `smtp_proto::testing`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus(target);
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

#[test]
fn url_corpus() {
    replay("url", smtp_proto::testing::url);
}

#[test]
fn api_corpus() {
    replay("api", smtp_proto::testing::api);
}

/// The `api` seeds are the encoding of `testing::api_seeds`, so a change to
/// either shows here rather than as seeds that quietly test something else.
/// `SMTP_PROTO_WRITE_SEEDS=1` rewrites them.
#[test]
fn api_seeds_are_current() {
    use smtp_proto::testing::{api_seeds, encode_api};
    let dir = corpus("api");
    let write = std::env::var_os("SMTP_PROTO_WRITE_SEEDS").is_some();
    for (name, selector, ops) in api_seeds() {
        let path = dir.join(format!("seed-{name}"));
        let data = encode_api(selector, &ops);
        if write {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &data).unwrap();
        }
        let stored = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (write the seeds with SMTP_PROTO_WRITE_SEEDS=1)",
                path.display()
            )
        });
        assert!(
            stored == data,
            "{} is stale: rewrite the seeds with SMTP_PROTO_WRITE_SEEDS=1",
            path.display()
        );
    }
}

fn run_api_seed(name: &str) -> smtp_proto::testing::ApiRun {
    use smtp_proto::testing::{check_api, decode_api, Scenario};
    let data = fs::read(corpus("api").join(format!("seed-{name}"))).unwrap();
    let (selector, ops) = decode_api(&data).unwrap();
    check_api(&Scenario::from_selector(selector), &ops)
}

/// The body that would run past `BDAT 7` into commands is refused whole:
/// nothing of it reaches the wire, so nothing follows the BDAT line.
#[test]
fn bdat_smuggle_seed_is_refused_whole() {
    let run = run_api_seed("bdat-smuggle");
    assert!(run.wire.ends_with(b"BDAT 7 LAST\r\n"), "{run:?}");
    assert!(
        matches!(
            run.error,
            Some(smtp_proto::Error::BodySizeMismatch { declared: 7, .. })
        ),
        "{run:?}"
    );
}

/// A 354 to the MAIL of a pipelined BDAT fails the session while its chunk
/// is open, 6 octets short: nothing is written, since a QUIT would be those
/// 6 octets and complete the message.
#[test]
fn bdat_354_to_mail_seed_writes_no_quit() {
    let run = run_api_seed("bdat-354-to-mail");
    assert!(run.wire.ends_with(b"BDAT 10 LAST\r\nabcd"), "{run:?}");
    assert!(
        matches!(run.error, Some(smtp_proto::Error::UnexpectedReply { .. })),
        "{run:?}"
    );
}

/// The other seeds reach what they are for: deliveries, and the credential
/// guard and the TLS name check refusing.
#[test]
fn api_seeds_reach_their_ends() {
    use smtp_proto::Error;
    for (name, messages) in [
        ("data-delivery", 1),
        ("bdat-two-messages", 2),
        ("binarymime", 1),
        ("auth-loopback", 1),
        ("starttls", 1),
    ] {
        let run = run_api_seed(name);
        assert_eq!(run.error, None, "{name}: {run:?}");
        assert_eq!(run.messages.len(), messages, "{name}: {run:?}");
    }
    for name in ["bdat-finish-past-size", "bdat-finish-short"] {
        let run = run_api_seed(name);
        assert!(
            matches!(run.error, Some(Error::BodySizeMismatch { .. })),
            "{name}: {run:?}"
        );
    }
    let run = run_api_seed("data-refused");
    assert!(run.wire.ends_with(b"DATA\r\nRSET\r\nQUIT\r\n"), "{run:?}");
    assert!(
        run.calls
            .iter()
            .any(|(call, result)| *call == "write_body" && result.is_err()),
        "{run:?}"
    );
    let run = run_api_seed("auth-remote-peer");
    assert_eq!(run.error, Some(Error::InsecureAuth), "{run:?}");
    let run = run_api_seed("starttls-wrong-name");
    assert!(
        matches!(run.error, Some(Error::TlsNameMismatch { .. })),
        "{run:?}"
    );
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

/// The clock's seeds end as they are meant to: a time-out at the stage
/// that stalled, the set-up's time limit, a delivery driven by `next`.
#[test]
fn clock_seeds_reach_their_ends() {
    use smtp_proto::{Error, Event, Stage};
    use std::time::Duration;
    let timeout = |stage| Some(Error::Timeout { stage });
    for (name, error) in [
        ("clock-greeting-timeout", timeout(Stage::Greeting)),
        ("clock-drip", timeout(Stage::Greeting)),
        ("clock-handshake", timeout(Stage::TlsHandshake)),
        ("clock-body-flush", timeout(Stage::DataEnd)),
        ("clock-zero-rset", timeout(Stage::Rset)),
        (
            "clock-set-up-limit",
            Some(Error::TimeLimit {
                stage: Stage::Ehlo,
                limit: Duration::from_millis(200),
            }),
        ),
        ("clock-delivery", None),
    ] {
        let run = run_api_seed(name);
        assert_eq!(run.error, error, "{name}: {run:?}");
    }
    let run = run_api_seed("clock-delivery");
    assert_eq!(run.messages.len(), 1, "{run:?}");
    assert!(run.wire.ends_with(b"QUIT\r\n"), "{run:?}");
    assert_eq!(run.events.last(), Some(&Event::Closed), "{run:?}");
    let run = run_api_seed("clock-body-flush");
    assert_eq!(run.messages.len(), 1, "{run:?}");
    assert!(run.messages[0].len() >= 80 * 1024, "{run:?}");
    let run = run_api_seed("clock-close-after-5xx");
    assert!(
        matches!(
            run.error,
            Some(Error::Rejected {
                stage: Stage::Ehlo,
                ..
            })
        ),
        "{run:?}"
    );
    // The close's deadline passed: the QUIT never went.
    assert!(run.wire.ends_with(b"EHLO localhost\r\n"), "{run:?}");
    // The first message's delivery is still reported.
    let run = run_api_seed("clock-zero-rset");
    assert!(
        matches!(run.events.last(), Some(Event::TransactionComplete(Ok(_)))),
        "{run:?}"
    );
}
