//! Properties of the whole session: split invariance, no panics on any input,
//! and the security invariants (no credential in plaintext to a remote name,
//! nothing after QUIT, nothing but QUIT after an error). The checks live in
//! `smtp_proto::testing`, shared with the fuzz targets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use smtp_proto::testing::{check_split_invariance, drive, Run, Scenario, SECRET};
use smtp_proto::{Config, Credentials, Error, TlsPolicy};
use support::crlf;

fn scenario(config: Config) -> Scenario {
    Scenario {
        config: config.transcript(true),
        recipients: 2,
        messages: 1,
        peer: Some([127, 0, 0, 1].into()),
    }
}

fn password() -> Credentials {
    Credentials::password("me", SECRET)
}

/// Server scripts that complete a session, for the split-invariance property.
fn scripts() -> Vec<(Scenario, Vec<u8>)> {
    let m365 = crlf(concat!(
        "220 smtp.example.com ESMTP\n",
        "250-smtp.example.com\n250-PIPELINING\n250 STARTTLS\n",
        "220 2.0.0 go ahead",
    ));
    let m365_tls = crlf(concat!(
        "250-smtp.example.com\n250-PIPELINING\n250-ENHANCEDSTATUSCODES\n250 AUTH LOGIN XOAUTH2\n",
        "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 2.7.0 ok\n",
        "250 2.1.0 ok\n250 2.1.5 ok\n550 5.1.1 no\n354 go\n250 2.0.0 queued\n221 bye",
    ));
    let plain_local = crlf(concat!(
        "220 localhost\n250-localhost\n250-AUTH PLAIN\n250 SIZE 1000\n",
        "235 ok\n250 ok\n250 ok\n250 ok\n354 go\n250 queued\n221 bye",
    ));
    let refused = crlf("220 localhost\n250 localhost\n250 ok\n550 no\n550 no\n250 reset\n221 bye");
    vec![
        // STARTTLS bytes arrive in two parts: before and after the handshake.
        (
            scenario(Config::new("smtp.example.com").credentials(password())),
            [m365, m365_tls].concat(),
        ),
        (
            scenario(
                Config::new("localhost")
                    .tls(TlsPolicy::Disabled)
                    .credentials(password()),
            ),
            plain_local,
        ),
        (
            scenario(Config::new("localhost").tls(TlsPolicy::Disabled)),
            refused,
        ),
        // Two messages, the second riding behind the first (RFC 2920 §3.1).
        (
            Scenario {
                messages: 2,
                ..scenario(Config::new("localhost").tls(TlsPolicy::Disabled))
            },
            crlf(concat!(
                "220 localhost\n250-localhost\n250 PIPELINING\n",
                "250 ok\n250 ok\n550 no\n354 go\n250 first\n",
                "250 ok\n250 ok\n250 ok\n354 go\n250 second\n221 bye",
            )),
        ),
    ]
}

#[test]
fn scripts_complete_when_fed_whole() {
    // The M365 script fed whole is an injection (everything after the 220
    // arrives in plaintext); the others complete.
    let runs: Vec<Run> = scripts()
        .into_iter()
        .map(|(c, s)| drive(&c, &s, &[]))
        .collect();
    assert!(matches!(runs[0].error, Some(Error::StartTlsInjection)));
    for run in &runs[1..] {
        assert_eq!(run.error, None, "{run:?}");
        assert!(
            !run.events.iter().any(|e| e.contains("InvalidState")),
            "{run:?}"
        );
        assert_eq!(run.events.last().map(String::as_str), Some("Closed"));
    }
}

#[test]
fn microsoft_365_script_completes_when_tls_splits_it() {
    let (scenario, server) = scripts().remove(0);
    let cut = crlf("220 smtp.example.com ESMTP\n250-smtp.example.com\n250-PIPELINING\n250 STARTTLS\n220 2.0.0 go ahead").len();
    let run = drive(&scenario, &server, &[cut]);
    assert_eq!(run.error, None, "{run:?}");
    assert!(run
        .events
        .iter()
        .any(|e| e.contains("TransactionComplete(Ok")));
    assert_eq!(run.events.last().map(String::as_str), Some("Closed"));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/properties.txt"))),
        ..ProptestConfig::default()
    })]

    /// (a) The same server bytes split anywhere give the same outcomes,
    /// errors and lines read, and what is written differs at most in where
    /// it stops (a cut right after the STARTTLS 220 lets the
    /// handshake happen first, so that script is compared only when both
    /// runs stay on one side of it).
    #[test]
    fn any_split_gives_the_same_run(which in 0usize..4, cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let (scenario, server) = scripts().remove(which);
        check_split_invariance(&scenario, &server, &cuts);
    }

    /// (d) Arbitrary bytes never panic the session, under any configuration,
    /// however they are split, and the invariants hold throughout.
    #[test]
    fn arbitrary_bytes_never_panic(
        selector in any::<[u8; 4]>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        check_split_invariance(&Scenario::from_selector(selector), &bytes, &cuts);
    }

    /// (d) Reply-shaped noise: valid lines with random codes and separators
    /// reach deeper states than random bytes do.
    #[test]
    fn reply_shaped_noise(
        selector in any::<[u8; 4]>(),
        lines in proptest::collection::vec((prop::sample::select(vec![
            "220", "221", "235", "250", "334", "354", "421", "450", "454", "500", "502", "535", "550", "554",
        ]), prop::sample::select(vec![" ", "-"]), prop::sample::select(vec![
            "", "ok", "STARTTLS", "PIPELINING", "AUTH PLAIN LOGIN", "AUTH=LOGIN", "AUTH XOAUTH2 OAUTHBEARER",
            "SIZE 10", "ENHANCEDSTATUSCODES", "CHUNKING", "BINARYMIME", "VXNlcm5hbWU6", "UGFzc3dvcmQ6", "2.0.0 ok", "!!",
        ])), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for (code, sep, text) in lines {
            bytes.extend_from_slice(format!("{code}{sep}{text}\r\n").as_bytes());
        }
        check_split_invariance(&Scenario::from_selector(selector), &bytes, &cuts);
    }

    /// The reply parser's and the DATA encoder's fuzz checks, as properties.
    #[test]
    fn reply_parser_and_encoder_checks(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        smtp_proto::testing::reply(&bytes);
        smtp_proto::testing::capabilities(&bytes);
        smtp_proto::testing::data(&bytes);
    }
}

#[test]
fn the_second_message_rides_behind_the_first() {
    let (scenario, server) = scripts().remove(3);
    let run = drive(&scenario, &server, &[]);
    assert_eq!(run.error, None, "{run:?}");
    let out = String::from_utf8_lossy(&run.output);
    // The first body's terminator and the second MAIL went out together,
    // before the first message's final reply was read.
    assert!(
        out.contains(".line\r\n.\r\nMAIL FROM:<me@example.com>"),
        "{out}"
    );
    let done = run
        .events
        .iter()
        .filter(|e| e.starts_with("TransactionComplete(Ok"))
        .count();
    assert_eq!(done, 2, "{run:?}");
}
