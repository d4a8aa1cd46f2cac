//! Bodies written from the caller's buffer (`ClientSession::write_body_direct`):
//! from a reader's chunk (`send_each`) and from memory (`send_each_bytes`),
//! the server reads the same messages as it would from copies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smtp_blocking::{Client, Config, Envelope, Options, TlsPolicy};
use smtp_proto::Address;
use smtp_tests::ScriptedServer;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// A server offering PIPELINING (so DATA and dot-stuffing) that keeps
/// every body as it reconstructs it.
fn server() -> (ScriptedServer, Arc<Mutex<Vec<Vec<u8>>>>) {
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&inbox);
    let server = ScriptedServer::start_fn(move |peer| {
        peer.serve_messages(&["PIPELINING"], |peer, _, body| {
            kept.lock().unwrap().push(body);
            peer.reply("250 2.0.0 queued")?;
            Ok(true)
        })
    })
    .unwrap();
    (server, inbox)
}

/// What the server stores: line breaks made CRLF, a last one added.
fn stored(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Long clean stretches (lent), and lines to stuff or repair between them,
/// one across a 256 KiB read.
fn bodies() -> Vec<Vec<u8>> {
    let line = b"abcdefghij klmnopqrstuvwxyz 0123456789 abcdefghij klmnopqrstuvwxyz 01234\r\n";
    let clean = line.repeat(20_000);
    let mut dirty = line.repeat(3000);
    dirty.extend_from_slice(b".a dot\r\n\r\n.\r\nbare lf\nbare cr\r.\n");
    dirty.extend_from_slice(&line.repeat(500));
    let at = 256 * 1024 - 3;
    dirty.truncate(at);
    dirty.extend_from_slice(b"\r\n.split\r\n");
    dirty.extend_from_slice(&line.repeat(4000));
    dirty.extend_from_slice(b"no final line break");
    vec![clean, dirty, b".\r\n".to_vec(), Vec::new()]
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new("you@example.org").unwrap()],
    )
    .unwrap()
}

fn client(server: &ScriptedServer) -> Client {
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    Client::connect_to(server.addr(), config, Options::default()).unwrap()
}

#[test]
fn bodies_from_memory_and_from_readers_arrive_whole() {
    let (server, inbox) = server();
    let mut client = client(&server);
    let bodies = bodies();
    let shared: Vec<Arc<[u8]>> = bodies.iter().map(|b| Arc::from(b.as_slice())).collect();
    let mut results = Vec::new();
    // Each body twice from memory (shared), then once from a reader.
    client.send_each_bytes(
        shared
            .iter()
            .chain(&shared)
            .map(|body| (envelope(), Arc::clone(body))),
        |result| results.push(result),
    );
    client.send_each(
        bodies
            .iter()
            .map(|body| (envelope(), Cursor::new(body.clone()))),
        |result| results.push(result),
    );
    assert_eq!(results.len(), 3 * bodies.len());
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    client.quit().unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.errors(), vec![None]);
    let inbox = inbox.lock().unwrap();
    let expected: Vec<Vec<u8>> = bodies.iter().map(|b| stored(b)).collect();
    for (i, got) in inbox.iter().enumerate() {
        let want = &expected[i % bodies.len()];
        assert!(
            got == want,
            "message {i}: {} bytes, not {}",
            got.len(),
            want.len()
        );
    }
    assert_eq!(inbox.len(), 3 * bodies.len());
}
