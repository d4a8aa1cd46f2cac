//! A transcript runner: a dialogue written as server lines, expected client
//! lines, expected events and caller actions, checked step by step.
//!
//! Strict by construction: before the server speaks, every byte the client
//! wrote must have been matched by a `C` step; every event must be matched by
//! an `E` step; an error must be matched by an `Err` step; nothing may be
//! left over at the end.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smtp_proto::{ClientSession, Config, Envelope, Error, Event};

/// One step of a dialogue.
pub enum Step {
    /// The server sends these lines (`\n`-separated; each gets CRLF).
    S(&'static str),
    /// The server sends exactly these bytes.
    Raw(Vec<u8>),
    /// The client must have written exactly these lines (`\n`-separated; each gets CRLF).
    C(&'static str),
    /// The client must have written exactly these bytes.
    CRaw(Vec<u8>),
    /// The next event must be this one.
    E(Event),
    /// The next event must be a completed transaction matching this check.
    Done(fn(&Result<smtp_proto::Delivery, Error>) -> bool),
    /// The caller reports a finished TLS handshake for this name.
    Tls(&'static str),
    /// The adapter reports the connected peer's address.
    Peer(&'static str),
    /// The caller streams this piece of the body (no end yet).
    Write(Vec<u8>),
    /// The caller ends the body.
    Finish,
    /// The caller starts a transaction.
    Mail(Envelope),
    /// The caller streams this body and ends it.
    Body(&'static [u8]),
    /// The caller asks for NOOP.
    Noop,
    /// The caller asks for QUIT.
    Quit,
    /// The server closes the connection.
    Eof,
    /// The previous step must have failed with an error matching this check.
    Fails(fn(&Error) -> bool),
}

pub use Step::*;

/// Lines joined with CRLF, each ending in CRLF.
pub fn crlf(lines: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines.split('\n') {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Runs a dialogue and returns the session for further checks.
#[track_caller]
pub fn run(config: Config, steps: Vec<Step>) -> ClientSession {
    let mut session = ClientSession::new(config).expect("valid config");
    run_on(&mut session, steps);
    session
}

#[track_caller]
pub fn run_on(session: &mut ClientSession, steps: Vec<Step>) {
    let mut pending_err: Option<Error> = None;
    for (i, step) in steps.into_iter().enumerate() {
        if let Fails(check) = &step {
            let err = pending_err
                .take()
                .unwrap_or_else(|| panic!("step {i}: expected an error, got none"));
            assert!(check(&err), "step {i}: unexpected error {err:?}");
            continue;
        }
        if let Some(err) = &pending_err {
            panic!("step {i}: unchecked error {err:?}");
        }
        let result = match step {
            S(lines) => {
                assert_unsent_is_empty(session, i);
                session.handle_input(&crlf(lines))
            }
            Raw(bytes) => {
                assert_unsent_is_empty(session, i);
                session.handle_input(&bytes)
            }
            C(lines) => {
                expect_output(session, &crlf(lines), i);
                Ok(())
            }
            CRaw(bytes) => {
                expect_output(session, &bytes, i);
                Ok(())
            }
            E(event) => {
                assert_eq!(session.poll_event(), Some(event), "step {i}");
                Ok(())
            }
            Done(check) => {
                match session.poll_event() {
                    Some(Event::TransactionComplete(result)) => {
                        assert!(check(&result), "step {i}: unexpected outcome {result:?}")
                    }
                    other => panic!("step {i}: expected TransactionComplete, got {other:?}"),
                }
                Ok(())
            }
            Tls(name) => {
                assert_unsent_is_empty(session, i);
                session.tls_established(name)
            }
            Peer(ip) => {
                session.set_peer_addr(ip.parse().expect("an IP address"));
                Ok(())
            }
            Write(chunk) => session.write_body(&chunk),
            Finish => session.finish_body(),
            Mail(envelope) => session.send_mail(envelope),
            Body(body) => session
                .write_body(body)
                .and_then(|()| session.finish_body()),
            Noop => session.noop(),
            Quit => session.quit(),
            Eof => session.handle_eof(),
            Fails(_) => unreachable!(),
        };
        if let Result::Err(err) = result {
            pending_err = Some(err);
        }
    }
    if let Some(err) = pending_err {
        panic!("unchecked error at the end: {err:?}");
    }
    assert_eq!(
        String::from_utf8_lossy(session.pending_output()),
        "",
        "client output left unchecked"
    );
    assert_eq!(session.poll_event(), None, "event left unchecked");
}

#[track_caller]
fn assert_unsent_is_empty(session: &ClientSession, step: usize) {
    assert_eq!(
        String::from_utf8_lossy(session.pending_output()),
        "",
        "step {step}: client output left unchecked before the server spoke"
    );
}

#[track_caller]
fn expect_output(session: &mut ClientSession, expected: &[u8], step: usize) {
    let got = session.take_output();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "step {step}: client output"
    );
}

/// base64 of a string, for expected AUTH payloads.
pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A `C` step built at run time.
pub fn c(lines: &str) -> Step {
    CRaw(crlf(lines))
}

/// An `S` step built at run time.
pub fn s(lines: &str) -> Step {
    Raw(crlf(lines))
}
