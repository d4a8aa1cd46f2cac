//! Invariant checks shared by the property tests and the fuzz targets
//! (feature `testing`; not part of the stable API).
//!
//! Every function here panics when an invariant breaks: that is how a fuzzer
//! or a property test learns of it. The invariants:
//!
//! - no credential byte (nor an `AUTH` command) is written while TLS is
//!   inactive, unless the server name and the connected peer are both
//!   loopback or insecure auth was allowed;
//! - nothing is written after QUIT;
//! - nothing but QUIT is written after an error;
//! - the same server bytes give the same outcomes, errors and lines read
//!   however they are split, and what is written differs at most in where it
//!   stops (the client writes ahead of replies, so a refusal already buffered
//!   stops it sooner) — except across the STARTTLS boundary, where a split
//!   right after the `220` lets the handshake happen first and feeding both
//!   at once is (rightly) an injection;
//! - no secret appears in the transcript;
//! - the reply parser gives the same replies however its input is split, and
//!   never holds more than its limits;
//! - `unstuff(encode(x)) == normalize(x)` for any split, and the terminator
//!   appears only at the end.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use crate::auth::Mechanism;
use crate::capabilities::{Capabilities, MAX_PARAMS};
use crate::config::is_loopback_name;
use crate::data::{normalize, unstuff, BodyEncoder};
use crate::reply::{ReplyLimits, ReplyParser};
use crate::{Address, ClientSession, Config, Credentials, Envelope, Error, Event, TlsPolicy};
use base64::Engine;
use bytes::BytesMut;
use core::net::IpAddr;

/// The password or token every scenario uses, to look for in the output.
pub const SECRET: &str = "pw-Zx9!q";

/// The message every scenario sends: a leading dot and a bare LF, so both
/// DATA's dot-stuffing and BDAT's exact size are exercised.
pub const BODY: &[u8] = b"Subject: x\n\n.line\r\n";

/// What a scenario does besides reading the server: its configuration, and
/// the message it sends once ready.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The session's configuration.
    pub config: Config,
    /// How many recipients the message has (1 to 4).
    pub recipients: usize,
    /// How many messages to send before QUIT (1 or 2).
    pub messages: usize,
    /// The peer address the adapter reports, if it reports one.
    pub peer: Option<IpAddr>,
}

impl Scenario {
    /// A scenario chosen by four selector bytes: TLS policy, server name and
    /// connected peer, credentials and mechanism, and the insecure-auth flag,
    /// recipient and message counts.
    pub fn from_selector(sel: [u8; 4]) -> Scenario {
        let name = ["smtp.example.com", "localhost", "127.0.0.1", "[::1]"][usize::from(sel[1] % 4)];
        let policy = [
            TlsPolicy::Required,
            TlsPolicy::Opportunistic,
            TlsPolicy::Disabled,
            TlsPolicy::Implicit,
        ][usize::from(sel[0] % 4)];
        let mut config = Config::new(name)
            .tls(policy)
            .allow_insecure_auth(sel[3] & 1 == 1)
            .transcript(true);
        let mechanism = [
            None,
            Some(Mechanism::Plain),
            Some(Mechanism::Login),
            Some(Mechanism::XOAuth2),
            Some(Mechanism::OAuthBearer),
        ][usize::from((sel[2] >> 2) % 5)]
        .clone();
        match sel[2] % 4 {
            0 => {}
            1 | 2 => config = config.credentials(Credentials::password("me", SECRET)),
            _ => config = config.credentials(Credentials::token("me", SECRET)),
        }
        if let Some(mechanism) = mechanism {
            config = config.mechanism(mechanism);
        }
        let peer = [
            Some(IpAddr::from([127, 0, 0, 1])),
            Some(IpAddr::from([192, 0, 2, 7])),
            None,
        ][usize::from((sel[1] >> 2) % 3)];
        Scenario {
            config,
            recipients: 1 + usize::from((sel[3] >> 1) % 4),
            messages: 1 + usize::from((sel[3] >> 3) % 2),
            peer,
        }
    }

    fn envelope(&self) -> Envelope {
        let to = (0..self.recipients)
            .map(|i| Address::new(format!("rcpt{i}@example.org")).expect("valid address"));
        Envelope::new(Some(Address::new("me@example.com").expect("valid")), to)
            .expect("has recipients")
            .for_body(BODY)
    }

    /// Whether the credential guard must keep credentials off a plaintext
    /// connection: the loopback exemption needs a loopback name *and* a
    /// reported loopback peer.
    fn guarded(&self) -> bool {
        let loopback = is_loopback_name(self.config.server_name())
            && self.peer.is_some_and(|ip| ip.is_loopback());
        !loopback && !self.config.insecure_auth_allowed()
    }
}

/// Everything a run produced, for comparing two runs.
#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    /// Every byte the client wrote.
    pub output: Vec<u8>,
    /// Every event, as `Debug` text.
    pub events: Vec<String>,
    /// The error that ended the run, if any.
    pub error: Option<Error>,
    /// The transcript lines.
    pub transcript: Vec<String>,
}

impl Run {
    fn crossed_starttls(&self) -> bool {
        matches!(self.error, Some(Error::StartTlsInjection))
            || self.events.iter().any(|e| e == "StartTls")
    }
}

/// Drives a session like an adapter does — answers every event (handshake,
/// the scenario's messages, then QUIT) — feeding `server` in chunks cut at
/// `cuts` (taken modulo the length), and checks the invariants after every step.
pub fn drive(scenario: &Scenario, server: &[u8], cuts: &[usize]) -> Run {
    let server_name = scenario.config.server_name().to_owned();
    let guarded = scenario.guarded();
    let secrets = secret_forms();
    let mut session = ClientSession::new(scenario.config.clone()).expect("valid config");
    if let Some(peer) = scenario.peer {
        session.set_peer_addr(peer);
    }
    let mut run = Run {
        output: Vec::new(),
        events: Vec::new(),
        error: None,
        transcript: Vec::new(),
    };
    let mut sent = 0;
    let mut quit_seen = false;

    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (server.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut last = 0;
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
                if !new.is_empty() {
                    assert!(
                        !quit_seen,
                        "bytes after QUIT: {:?}",
                        String::from_utf8_lossy(&new)
                    );
                    assert!(run.error.is_none(), "bytes after an error: {new:?}");
                    if guarded && !session.is_tls() {
                        check_no_credentials(&new, &secrets);
                    }
                    quit_seen |= new.windows(6).any(|w| w == b"QUIT\r\n");
                    run.output.extend_from_slice(&new);
                }
                if let Err(err) = result {
                    run.error = Some(err);
                    // Transactions that finished before the failure are still
                    // reported; the caller must not lose them.
                    while let Some(event) = session.poll_event() {
                        run.events.push(format!("{event:?}"));
                    }
                    // Whatever is pending after the error may only be QUIT (it
                    // was written out above; check nothing else follows).
                    assert!(session.take_output().is_empty());
                    return false;
                }
                let Some(event) = session.poll_event() else {
                    return true;
                };
                run.events.push(format!("{event:?}"));
                result = match event {
                    Event::StartTls => session.tls_established(&server_name),
                    Event::Ready if sent < scenario.messages => {
                        sent += 1;
                        session.send_mail(scenario.envelope())
                    }
                    Event::Ready => session.quit(),
                    Event::SendBody => {
                        let written = session
                            .write_body(BODY)
                            .and_then(|()| session.finish_body());
                        // With PIPELINING the next message rides behind this one.
                        if written.is_ok() && sent < scenario.messages && session.can_send_mail() {
                            sent += 1;
                            session.send_mail(scenario.envelope())
                        } else {
                            written
                        }
                    }
                    Event::TransactionComplete(_) | Event::Closed => Ok(()),
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
    // Only what the client wrote: a server may echo anything it likes.
    for line in run.transcript.iter().filter(|l| l.starts_with("C: ")) {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "secret in transcript: {line}"
            );
        }
    }
    run
}

/// The forms a secret could take on the wire.
fn secret_forms() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        SECRET.to_owned(),
        b64(SECRET),
        b64(&format!("\0me\0{SECRET}")),
        b64(&format!("user=me\x01auth=Bearer {SECRET}\x01\x01")),
        b64(&format!("n,a=me,\x01auth=Bearer {SECRET}\x01\x01")),
    ]
}

fn check_no_credentials(new: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(new);
    assert!(
        !text.contains("AUTH "),
        "AUTH in plaintext to a remote name: {text}"
    );
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "secret in plaintext: {text}"
        );
    }
}

/// Drives `server` whole and split at `cuts`, checks the invariants of both
/// runs and that they agree (see the module documentation for the STARTTLS
/// exception). Returns the whole run.
pub fn check_split_invariance(scenario: &Scenario, server: &[u8], cuts: &[usize]) -> Run {
    let whole = drive(scenario, server, &[]);
    let split = drive(scenario, server, cuts);
    if !whole.crossed_starttls() && !split.crossed_starttls() {
        // What was read, how every transaction ended and the error never
        // depend on the split. What was written may stop earlier in one run
        // than in the other, but never differ: the client writes ahead of
        // replies (a pipelined BDAT body, the next message riding behind the
        // previous one), so a refusal already buffered stops it sooner than
        // one still on the way.
        assert_eq!(whole.error, split.error, "the split changed the error");
        assert_eq!(
            outcomes(&whole),
            outcomes(&split),
            "the split changed an outcome"
        );
        assert_eq!(
            lines(&whole, "S: "),
            lines(&split, "S: "),
            "the split changed what was read"
        );
        // The QUIT a failure writes comes after whatever was written ahead.
        // Whether there is one may differ: a failure while a BDAT chunk is
        // still open writes nothing (the QUIT would be read as chunk data),
        // and whether the chunk was written before the failing reply was
        // read depends on the split.
        let (whole_out, _) = before_final_quit(&whole);
        let (split_out, _) = before_final_quit(&split);
        assert!(
            is_prefix(whole_out, split_out),
            "the split changed the output"
        );
        let client = |run: &'_ Run| {
            let mut sent = lines(run, "C: ");
            if before_final_quit(run).1 {
                sent.pop();
            }
            sent.into_iter().cloned().collect::<Vec<String>>()
        };
        assert!(
            is_prefix(&client(&whole), &client(&split)),
            "the split changed the C: lines"
        );
    }
    whole
}

/// The output without the QUIT a failure ended it with, and whether it had one.
fn before_final_quit(run: &Run) -> (&[u8], bool) {
    match run.output.strip_suffix(b"QUIT\r\n") {
        Some(rest) if run.error.is_some() => (rest, true),
        _ => (&run.output, false),
    }
}

/// Whether one of the two is a prefix of the other.
fn is_prefix<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn lines<'a>(run: &'a Run, side: &str) -> Vec<&'a String> {
    run.transcript
        .iter()
        .filter(|l| l.starts_with(side))
        .collect()
}

fn outcomes(run: &Run) -> Vec<&String> {
    run.events
        .iter()
        .filter(|e| e.starts_with("TransactionComplete") || *e == "Closed")
        .collect()
}

/// Fuzz entry for a whole session: `data` is four selector bytes, a cut
/// count `n`, `n` two-byte cut positions, then the server's bytes.
pub fn session(data: &[u8]) {
    let Some((sel, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len() / 2);
    let (cut_bytes, server) = rest.split_at(n * 2);
    let cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    check_split_invariance(&Scenario::from_selector(*sel), server, &cuts);
}

/// Fuzz entry for the reply parser: the replies from `data` fed whole equal
/// those fed one byte at a time, with and without enhanced codes, and the
/// parser stays within its limits.
pub fn reply(data: &[u8]) {
    let limits = ReplyLimits {
        max_line_len: 64,
        max_lines: 8,
    };
    for enhanced in [false, true] {
        let whole = parse_replies(data, limits, enhanced, data.len().max(1));
        let bytewise = parse_replies(data, limits, enhanced, 1);
        assert_eq!(whole, bytewise);
    }
}

fn parse_replies(
    data: &[u8],
    limits: ReplyLimits,
    enhanced: bool,
    chunk: usize,
) -> (Vec<Vec<u8>>, Option<String>) {
    let mut parser = ReplyParser::new(limits);
    let mut replies = Vec::new();
    for piece in data.chunks(chunk) {
        parser.extend(piece);
        loop {
            match parser.next_reply(enhanced) {
                Ok(Some(reply)) => {
                    assert!(reply.lines().count() <= limits.max_lines);
                    assert!(reply.code().get() >= 200 && reply.code().get() <= 599);
                    if let Some(code) = reply.enhanced_code() {
                        assert_eq!(code.class, reply.code().class());
                    }
                    let _ = reply.to_string();
                    replies.push(reply.as_bytes().to_vec());
                }
                Ok(None) => {
                    // A partial reply is never more than its limits.
                    assert!(parser.buffered() <= limits.max_buffered() + limits.max_line_len);
                    break;
                }
                Err(err) => return (replies, Some(err.to_string())),
            }
        }
    }
    (replies, None)
}

/// Fuzz entry for EHLO parsing: never panics, keywords are upper-case and
/// unique, mechanisms unique, and parsing is stable under re-rendering.
pub fn capabilities(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let caps = Capabilities::parse(lines.iter().copied());
    let mut seen = Vec::new();
    for ext in caps.extensions() {
        assert_eq!(ext.keyword(), ext.keyword().to_ascii_uppercase());
        assert!(
            !seen.contains(&ext.keyword()),
            "duplicate {}",
            ext.keyword()
        );
        seen.push(ext.keyword());
    }
    let mechanisms = caps.auth_mechanisms();
    for (i, m) in mechanisms.iter().enumerate() {
        assert!(!mechanisms[..i].contains(m), "duplicate mechanism {m}");
    }
    // Re-rendering what was understood parses to the same thing. A line
    // holds at most MAX_PARAMS parameters, and AUTH lines merge, so the
    // mechanisms are spread over as many AUTH lines as they need.
    let rendered: Vec<String> = caps
        .extensions()
        .flat_map(|e| {
            let chunks: Vec<&[String]> = if e.params().is_empty() {
                vec![&[]]
            } else {
                e.params().chunks(MAX_PARAMS).collect()
            };
            chunks.into_iter().map(move |params| {
                let mut line = e.keyword().to_owned();
                for p in params {
                    line.push(' ');
                    line.push_str(p);
                }
                line
            })
        })
        .collect();
    let again = Capabilities::parse(rendered.iter().map(|l| l.as_bytes()));
    assert_eq!(caps.auth_mechanisms(), again.auth_mechanisms());
    assert_eq!(caps.size(), again.size());
    assert_eq!(caps.starttls(), again.starttls());
}

/// Fuzz entry for the DATA encoder: the first byte picks a chunk size; the
/// encoding of the rest, split into such chunks, round-trips to its
/// normalized form and holds the terminator only at its end.
pub fn data(data: &[u8]) {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut stuffer = BodyEncoder::new();
    let mut out = BytesMut::new();
    for piece in body.chunks(chunk) {
        stuffer.encode(piece, &mut out);
    }
    stuffer.finish(&mut out);
    assert_eq!(
        &out[..],
        &crate::data::encode(body)[..],
        "split changed the encoding"
    );
    assert_eq!(unstuff(&out), Some(normalize(body)));
    // The final ".\r\n" is excluded, so any CRLF.CRLF found is early.
    let end = out.len() - 3;
    assert!(
        !out[..end].windows(5).any(|w| w == b"\r\n.\r\n"),
        "terminator before the end"
    );
    assert!(!out.starts_with(b".\r\n") || out.len() == 3);
}
