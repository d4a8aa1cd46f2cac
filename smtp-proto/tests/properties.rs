//! Properties of the whole session: split invariance, no panics on any input,
//! and the security invariants (no credential in plaintext to a remote name,
//! nothing after QUIT, nothing but QUIT after an error).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use smtp_proto::{
    Address, ClientSession, Config, Credentials, Envelope, Error, Event, Mechanism, TlsPolicy,
};
use support::{b64, crlf};

const SECRET: &str = "pw-Zx9!q";

/// Everything a run produced, for comparing two runs.
#[derive(Debug, PartialEq)]
struct Run {
    output: Vec<u8>,
    events: Vec<String>,
    error: Option<Error>,
    transcript: Vec<String>,
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [
            Address::new("a@example.org").unwrap(),
            Address::new("b@example.org").unwrap(),
        ],
    )
    .unwrap()
}

/// Drives a session like an adapter would: answers every event (handshake,
/// one message, then QUIT), feeding the server bytes in the given chunks.
/// Checks the invariants after every step.
fn drive(config: Config, server: &[u8], cuts: &[usize]) -> Run {
    let server_name = config.server_name().to_owned();
    let guarded =
        !smtp_proto::config::is_loopback_name(&server_name) && !config.insecure_auth_allowed();
    let mut session = ClientSession::new(config.transcript(true)).unwrap();
    let mut run = Run {
        output: Vec::new(),
        events: Vec::new(),
        error: None,
        transcript: Vec::new(),
    };
    let mut mail_sent = false;
    let mut quit_seen = false;

    let mut chunks = Vec::new();
    let mut last = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (server.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts {
        chunks.push(&server[last..cut]);
        last = cut;
    }
    chunks.push(&server[last..]);

    let mut step =
        |session: &mut ClientSession, run: &mut Run, result: Result<(), Error>| -> bool {
            let mut result = result;
            loop {
                let new = session.take_output();
                check_output(
                    &new,
                    session.is_tls(),
                    guarded,
                    quit_seen,
                    run.error.is_some(),
                );
                if contains(&new, b"QUIT\r\n") {
                    quit_seen = true;
                }
                run.output.extend_from_slice(&new);
                if let Err(err) = result {
                    run.error = Some(err);
                    // Whatever is still pending after the error may only be QUIT.
                    let rest = session.take_output();
                    assert!(rest.is_empty() || &rest[..] == b"QUIT\r\n", "{rest:?}");
                    run.output.extend_from_slice(&rest);
                    return false;
                }
                let Some(event) = session.poll_event() else {
                    return true;
                };
                run.events.push(format!("{event:?}"));
                result = match event {
                    Event::StartTls => session.tls_established(&server_name),
                    Event::Ready if !mail_sent => {
                        mail_sent = true;
                        session.send_mail(envelope())
                    }
                    Event::Ready => session.quit(),
                    Event::SendBody => session
                        .write_body(b"Subject: x\n\n.line\r\n")
                        .and_then(|()| session.finish_body()),
                    _ => Ok(()),
                };
            }
        };

    let mut alive = step(&mut session, &mut run, Ok(()));
    for chunk in chunks {
        if !alive || session.is_closed() {
            break;
        }
        let result = session.handle_input(chunk);
        alive = step(&mut session, &mut run, result);
    }
    if alive && !session.is_closed() {
        let result = session.handle_eof();
        step(&mut session, &mut run, result);
    }
    run.transcript = session
        .take_transcript()
        .iter()
        .map(|l| l.to_string())
        .collect();
    for line in &run.transcript {
        assert!(
            !line.contains(SECRET) && !line.contains(&b64(SECRET)),
            "{line}"
        );
    }
    run
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The invariants the fuzzers check too.
fn check_output(new: &[u8], tls: bool, guarded: bool, quit_seen: bool, failed: bool) {
    if new.is_empty() {
        return;
    }
    assert!(
        !quit_seen,
        "bytes after QUIT: {:?}",
        String::from_utf8_lossy(new)
    );
    assert!(
        !failed,
        "bytes after an error: {:?}",
        String::from_utf8_lossy(new)
    );
    if guarded && !tls {
        let text = String::from_utf8_lossy(new);
        assert!(
            !text.contains("AUTH "),
            "AUTH in plaintext to a remote name: {text}"
        );
        for secret in [
            SECRET.to_owned(),
            b64(SECRET),
            b64(&format!("\0me\0{SECRET}")),
        ] {
            assert!(!text.contains(&secret), "secret in plaintext: {text}");
        }
    }
}

fn config(policy: u8, name: u8, creds: u8, insecure: bool) -> Config {
    let name = ["smtp.example.com", "localhost", "127.0.0.1"][usize::from(name % 3)];
    let policy = [
        TlsPolicy::Required,
        TlsPolicy::Opportunistic,
        TlsPolicy::Disabled,
        TlsPolicy::Implicit,
    ][usize::from(policy % 4)];
    let mut config = Config::new(name).tls(policy).allow_insecure_auth(insecure);
    match creds % 4 {
        0 => {}
        1 => config = config.credentials(Credentials::password("me", SECRET)),
        2 => config = config.credentials(Credentials::token("me", SECRET)),
        _ => {
            config = config
                .credentials(Credentials::password("me", SECRET))
                .mechanism(Mechanism::Login)
        }
    }
    config
}

/// Server scripts that complete a session, for the split-invariance property.
fn scripts() -> Vec<(Config, Vec<u8>)> {
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
            config(0, 0, 1, false),
            [m365.clone(), m365_tls.clone()].concat(),
        ),
        (config(2, 1, 1, false), plain_local),
        (config(2, 1, 0, false), refused),
    ]
}

#[test]
fn scripts_complete_when_fed_whole() {
    // The M365 script fed whole is an injection (everything after the 220
    // arrives in plaintext); the others complete.
    let runs: Vec<Run> = scripts()
        .into_iter()
        .map(|(c, s)| drive(c, &s, &[]))
        .collect();
    assert!(matches!(runs[0].error, Some(Error::StartTlsInjection)));
    for run in &runs[1..] {
        assert_eq!(run.error, None, "{run:?}");
        assert_eq!(run.events.last().map(String::as_str), Some("Closed"));
    }
}

#[test]
fn microsoft_365_script_completes_when_tls_splits_it() {
    let (config, server) = scripts().remove(0);
    let cut = crlf("220 smtp.example.com ESMTP\n250-smtp.example.com\n250-PIPELINING\n250 STARTTLS\n220 2.0.0 go ahead").len();
    let run = drive(config, &server, &[cut]);
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

    /// (a) The same server bytes split anywhere give the same output, events,
    /// errors and transcript.
    #[test]
    fn any_split_gives_the_same_run(which in 0usize..3, cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let (config, server) = scripts().remove(which);
        let whole = drive(config.clone(), &server, &[]);
        let split = drive(config, &server, &cuts);
        // A cut right after the STARTTLS 220 lets the handshake happen first;
        // every other split is the same as the whole.
        if which == 0 && split.error.is_none() {
            prop_assert!(split.events.iter().any(|e| e.contains("TransactionComplete")));
        } else {
            prop_assert_eq!(whole, split);
        }
    }

    /// (d) Arbitrary bytes never panic the session, under any configuration,
    /// however they are split, and the invariants hold throughout.
    #[test]
    fn arbitrary_bytes_never_panic(
        policy in any::<u8>(), name in any::<u8>(), creds in any::<u8>(), insecure in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        drive(config(policy, name, creds, insecure), &bytes, &cuts);
    }

    /// (d) Reply-shaped noise: valid lines with random codes and separators
    /// reach deeper states than random bytes do. Split invariance holds for
    /// every stream that does not carry the STARTTLS handshake.
    #[test]
    fn reply_shaped_noise(
        policy in 1u8..3, name in any::<u8>(), creds in any::<u8>(), insecure in any::<bool>(),
        lines in proptest::collection::vec((prop::sample::select(vec![
            "220", "221", "235", "250", "334", "354", "421", "450", "454", "500", "502", "535", "550", "554",
        ]), prop::sample::select(vec![" ", "-"]), prop::sample::select(vec![
            "", "ok", "STARTTLS", "PIPELINING", "AUTH PLAIN LOGIN", "AUTH=LOGIN", "AUTH XOAUTH2 OAUTHBEARER",
            "SIZE 10", "ENHANCEDSTATUSCODES", "VXNlcm5hbWU6", "UGFzc3dvcmQ6", "2.0.0 ok", "!!",
        ])), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = Vec::new();
        for (code, sep, text) in lines {
            bytes.extend_from_slice(format!("{code}{sep}{text}\r\n").as_bytes());
        }
        let config = config(policy, name, creds, insecure);
        let whole = drive(config.clone(), &bytes, &[]);
        let split = drive(config, &bytes, &cuts);
        prop_assert_eq!(whole, split);
    }
}
