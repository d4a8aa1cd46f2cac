//! The time limit (`Options::time_limit`): a server whose every step keeps
//! within its stage's timeout still cannot hold the set-up or a message past
//! the limit; the limit counts per message, not per connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{Config, Stage, TlsPolicy};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{Peer, ScriptedServer, TestPki};

use crate::common::*;
use crate::harness::{Adapter, AdapterError, Kind, Opts};

/// The stage timeout of these scenarios: only the time limit can end them.
const STAGE: Duration = Duration::from_secs(5);
/// The time limit.
const LIMIT: Duration = Duration::from_millis(700);
/// How late past the limit a failure may come.
const MARGIN: Duration = Duration::from_millis(600);
/// How long the server takes over each reply it delays.
const STEP: Duration = Duration::from_millis(250);

fn limited() -> Opts {
    plain_opts(STAGE).time_limit(LIMIT)
}

/// Checks that `err` is the time limit at `stage`, reached within
/// [`MARGIN`] of [`LIMIT`] after `started`.
fn assert_limit(adapter: &dyn Adapter, err: &AdapterError, stage: Stage, started: Instant) {
    let took = started.elapsed();
    assert!(
        matches!(err.kind, Kind::TimeLimit(s) if s == stage),
        "{}: expected the time limit at {stage}, got {err:?}",
        adapter.name()
    );
    assert!(err.timeout && err.transient, "{}: {err:?}", adapter.name());
    assert!(
        err.message.contains("time limit") && err.message.contains(stage.as_str()),
        "{}: {}",
        adapter.name(),
        err.message
    );
    assert!(
        took >= LIMIT - Duration::from_millis(50) && took < LIMIT + MARGIN,
        "{}: failed after {took:?}",
        adapter.name()
    );
}

/// The greeting and the EHLO reply each come well within their stage's
/// timeout, but together take longer than the limit: connecting fails with
/// the limit at EHLO.
pub fn time_limit_bounds_the_set_up(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.stall(Duration::from_millis(400));
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO ")?;
        peer.stall(Duration::from_millis(400));
        peer.reply(&ehlo_reply(&["8BITMIME"]))?;
        until_eof(peer, STAGE)
    })
    .unwrap();
    let started = Instant::now();
    let err = connect_err(adapter, &server, config_plain(), &limited());
    assert_limit(adapter, &err, Stage::Ehlo, started);
}

/// Each message gets the whole limit: two single sends and a batch of two,
/// each message 500 ms of a 700 ms limit (2 s in all), succeed; the fifth
/// message, whose `354` comes 400 ms late, fails with the limit at DATA and
/// leaves the client unusable. Idle time between messages does not count.
pub fn time_limit_counts_per_message(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        for late in [false, false, false, false, true] {
            peer.expect("MAIL FROM:")?;
            peer.stall(STEP);
            peer.reply("250 OK")?;
            peer.expect("RCPT TO:")?;
            peer.stall(STEP);
            peer.reply("250 OK")?;
            peer.expect("DATA")?;
            if late {
                peer.stall(Duration::from_millis(400));
                peer.reply("354 go ahead")?;
                break;
            }
            peer.reply("354 go ahead")?;
            peer.read_data()?;
            peer.reply("250 queued")?;
        }
        until_eof(peer, STAGE)
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &limited());
    let body: &[u8] = b"Subject: limit\r\n\r\nhi\r\n";
    for _ in 0..2 {
        client.send(envelope(), body).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    let results = client.send_all(vec![(envelope(), body), (envelope(), body)]);
    assert_eq!(results.len(), 2, "{}: {results:?}", adapter.name());
    for result in results {
        result.unwrap();
    }
    let started = Instant::now();
    let err = client.send(envelope(), body).unwrap_err();
    assert_limit(adapter, &err, Stage::Data, started);
    assert!(client.is_poisoned(), "{}", adapter.name());
    assert!(matches!(client.noop().unwrap_err().kind, Kind::Poisoned));
}

/// After `354` the server stops reading: a 32 MiB body fills the socket
/// buffers and the write waits. The stage's timeout (5 s) would let it wait;
/// the limit ends it, in plaintext and over TLS (where rustls' own write
/// loop must not carry it past the limit either).
pub fn time_limit_bounds_a_body_the_server_does_not_take(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let body = big_body(32 << 20);
    for implicit_tls in [false, true] {
        let tls = Arc::clone(&tls);
        let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
            if implicit_tls {
                peer.implicit_tls(Arc::clone(&tls))?;
            }
            peer.reply("220 mail.test ESMTP")?;
            ehlo(peer, &["8BITMIME"])?;
            peer.expect("MAIL FROM:")?;
            peer.reply("250 OK")?;
            peer.expect("RCPT TO:")?;
            peer.reply("250 OK")?;
            peer.expect("DATA")?;
            peer.reply("354 go ahead")?;
            peer.stall(STAGE);
            Ok(())
        })
        .unwrap();
        let (config, opts) = if implicit_tls {
            (
                Config::new(NAME).tls(TlsPolicy::Implicit),
                opts(&pki)
                    .timeouts(proto::Timeouts::uniform(STAGE))
                    .time_limit(LIMIT),
            )
        } else {
            (config_plain(), limited())
        };
        let mut client = connect_ok(adapter, &server, config, &opts);
        let started = Instant::now();
        // Streamed: `send` would first scan the whole body for its size and
        // 8-bit octets, which is not the message's time.
        let reader = Box::new(std::io::Cursor::new(body.clone()));
        let err = client.send_reader(envelope(), reader).unwrap_err();
        assert_limit(adapter, &err, Stage::Body, started);
        assert!(client.is_poisoned(), "{}", adapter.name());
    }
}

/// `size` octets of 76-character lines.
fn big_body(size: usize) -> Vec<u8> {
    let line = [b'x'; 74];
    let mut body = Vec::with_capacity(size + 76);
    while body.len() < size {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    body
}
