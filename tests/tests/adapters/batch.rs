//! Batches: several messages over one connection (`send_all`,
//! `send_all_readers`, `send_each`). With PIPELINING each message's commands
//! ride behind the previous message's end of data, in the same write, before
//! its reply; results come in order; a refused transaction is that message's
//! error and the batch goes on; an error that ends the connection is the
//! last result, after those already known.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::{Address, Delivery, Envelope, Stage};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{exchange_online, ExchangeOptions, Peer, Received, ScriptedServer, TestPki};

use crate::common::*;
use crate::harness::{Adapter, AdapterError, Body, Kind};

/// The bodies of the pipelined scenarios: a line that needs stuffing, bare
/// LF line endings, 8-bit text.
const BODIES: [&[u8]; 3] = [
    b"Subject: one\r\n\r\n.leading dot\r\n",
    b"Subject: two\n\nbare LF\n",
    "Subject: three\r\n\r\ncaf\u{e9}\r\n".as_bytes(),
];

/// [`BODIES`] as DATA carries them.
const STUFFED: [&[u8]; 3] = [
    b"Subject: one\r\n\r\n..leading dot\r\n.\r\n",
    b"Subject: two\r\n\r\nbare LF\r\n.\r\n",
    "Subject: three\r\n\r\ncaf\u{e9}\r\n.\r\n".as_bytes(),
];

/// [`BODIES`] as BDAT carries them: line endings made CRLF, nothing stuffed.
const CHUNKS: [&[u8]; 3] = [
    b"Subject: one\r\n\r\n.leading dot\r\n",
    b"Subject: two\r\n\r\nbare LF\r\n",
    "Subject: three\r\n\r\ncaf\u{e9}\r\n".as_bytes(),
];

fn other(message: String) -> io::Error {
    io::Error::other(message)
}

/// Reads a command line, checking that nothing came after it: the client
/// waits for its reply.
fn alone(peer: &mut Peer, prefix: &str) -> io::Result<()> {
    peer.expect(prefix)?;
    match peer.buffered() {
        [] => Ok(()),
        rest => Err(other(format!(
            "{prefix} was not sent alone: {:?} followed",
            String::from_utf8_lossy(rest)
        ))),
    }
}

/// After the end of a message: the next message's commands already came,
/// in the same write (they were read along with it).
fn next_rides_along(peer: &Peer) -> io::Result<()> {
    if peer.buffered().starts_with(b"MAIL FROM:") {
        return Ok(());
    }
    Err(other(format!(
        "the next MAIL did not come with the end of the message: {:?}",
        String::from_utf8_lossy(peer.buffered())
    )))
}

/// Checks that the client sends nothing for a moment.
fn nothing_more(peer: &mut Peer, what: &str) -> io::Result<()> {
    peer.set_read_timeout(Some(Duration::from_millis(200)))?;
    let line = peer.line();
    peer.set_read_timeout(Some(Duration::from_secs(10)))?;
    match line {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
        Ok(line) => Err(other(format!(
            "{what}: {:?} came",
            String::from_utf8_lossy(&line)
        ))),
    }
}

/// What the client sends for message `i` of [`BODIES`], up to its body.
fn commands(i: usize, chunking: bool) -> String {
    let eight_bit = if i == 2 { " BODY=8BITMIME" } else { "" };
    let last = if chunking {
        format!("BDAT {} LAST", CHUNKS[i].len())
    } else {
        "DATA".to_owned()
    };
    format!(
        "MAIL FROM:<me@example.com> SIZE={}{eight_bit}\r\nRCPT TO:<you@example.org>\r\n{last}\r\n",
        BODIES[i].len()
    )
}

/// Reads message `i`'s commands and checks them byte-exact.
fn read_commands(peer: &mut Peer, i: usize, chunking: bool) -> io::Result<()> {
    let mut got = String::new();
    for _ in 0..3 {
        got.push_str(&String::from_utf8_lossy(&peer.line()?));
        got.push_str("\r\n");
    }
    let want = commands(i, chunking);
    if got != want {
        return Err(other(format!("message {i}: {got:?}, not {want:?}")));
    }
    Ok(())
}

/// Reads message `i`'s body as it goes on the wire and checks it byte-exact.
fn read_body(peer: &mut Peer, i: usize, chunking: bool) -> io::Result<()> {
    let want = if chunking { CHUNKS[i] } else { STUFFED[i] };
    let got = peer.read_exact_bytes(want.len())?;
    if got != want {
        return Err(other(format!("message {i}: {got:?}, not {want:?}")));
    }
    Ok(())
}

/// A server that answers message `i` only once message `i + 1`'s commands
/// came (with DATA), or once it came whole (with BDAT, where nothing waits
/// for `354`): a client that waits for each result before the next message
/// stalls here and times out.
fn pipelined_server(chunking: bool) -> ScriptedServer {
    ScriptedServer::start_fn(move |peer| {
        peer.reply("220 mail.test ESMTP")?;
        let mut extensions = vec!["PIPELINING", "8BITMIME", "SIZE 1000000"];
        if chunking {
            extensions.push("CHUNKING");
        }
        ehlo(peer, &extensions)?;
        read_commands(peer, 0, chunking)?;
        if chunking {
            // With CHUNKING no message waits for a reply: the window (16 by
            // default) takes all three, whole, before the first result.
            read_body(peer, 0, true)?;
            next_rides_along(peer)?;
            read_commands(peer, 1, true)?;
            read_body(peer, 1, true)?;
            next_rides_along(peer)?;
            read_commands(peer, 2, true)?;
            read_body(peer, 2, true)?;
            nothing_more(peer, "a message after the last one")?;
            peer.reply("250 OK\n250 OK\n250 queued 0")?;
            peer.reply("250 OK\n250 OK\n250 queued 1")?;
            peer.reply("250 OK\n250 OK\n250 queued 2")?;
        } else {
            peer.reply("250 OK\n250 OK\n354 go ahead")?;
            for i in 0..2 {
                read_body(peer, i, false)?;
                next_rides_along(peer)?;
                read_commands(peer, i + 1, false)?;
                peer.reply(&format!("250 queued {i}\n250 OK\n250 OK\n354 go ahead"))?;
            }
            read_body(peer, 2, false)?;
            peer.reply("250 queued 2")?;
        }
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap()
}

/// What the client sent on [`pipelined_server`], after EHLO.
fn pipelined_wire(chunking: bool) -> String {
    let mut wire = String::new();
    for i in 0..3 {
        wire.push_str(&commands(i, chunking));
        let body = if chunking { CHUNKS[i] } else { STUFFED[i] };
        wire.push_str(&String::from_utf8_lossy(body));
    }
    wire + "QUIT\r\n"
}

/// Everything after the EHLO line.
fn after_ehlo(received: &Received) -> String {
    let plain = received.plain_text();
    plain
        .split_once("\r\n")
        .map_or(String::new(), |(_, rest)| rest.to_owned())
}

fn queued(result: &Result<Delivery, AdapterError>, i: usize) {
    match result {
        Ok(delivery) => assert_eq!(delivery.reply().to_string(), format!("250 queued {i}")),
        Err(e) => panic!("message {i}: {e:?}"),
    }
}

/// `envelope()` declaring what [`Envelope::for_body`] would, so that readers
/// go on the wire exactly like slices.
fn declared(body: &[u8]) -> Envelope {
    envelope().for_body(body)
}

fn pipelined(adapter: &dyn Adapter, chunking: bool) {
    let server = pipelined_server(chunking);
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let results = client.send_all(BODIES.iter().map(|b| (envelope(), *b)).collect());
    assert_eq!(results.len(), 3, "{results:?}");
    for (i, result) in results.iter().enumerate() {
        queued(result, i);
    }
    client.quit().unwrap();
    let received = finished(&server, 1).remove(0);
    assert_eq!(server.errors(), vec![None]);
    assert_eq!(after_ehlo(&received), pipelined_wire(chunking));
}

/// Three messages with PIPELINING and DATA: one round trip each, byte-exact.
pub fn batch_pipelined(adapter: &dyn Adapter) {
    pipelined(adapter, false);
}

/// Three messages with PIPELINING and CHUNKING (`BDAT n LAST`): the second
/// goes whole before the first is answered, the third waits for the first
/// result.
pub fn batch_pipelined_bdat(adapter: &dyn Adapter) {
    pipelined(adapter, true);
}

/// A body that logs when it is first read.
struct Logged {
    body: &'static [u8],
    name: String,
    log: Arc<Mutex<Vec<String>>>,
    started: bool,
}

impl Read for Logged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            self.log.lock().unwrap().push(self.name.clone());
        }
        self.body.read(buf)
    }
}

/// `send_each` with readers over both framings: the same bytes as slices,
/// and each result handed on as soon as it is known, before later bodies
/// are read.
pub fn batch_send_each_reports_as_it_goes(adapter: &dyn Adapter) {
    for (chunking, order) in [
        (
            false,
            "read 0, result 0, read 1, result 1, read 2, result 2",
        ),
        (true, "read 0, read 1, read 2, result 0, result 1, result 2"),
    ] {
        let server = pipelined_server(chunking);
        let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
        let log = Arc::new(Mutex::new(Vec::new()));
        let messages = (0..3)
            .map(|i| {
                let body: Body = Box::new(Logged {
                    body: BODIES[i],
                    name: format!("read {i}"),
                    log: Arc::clone(&log),
                    started: false,
                });
                (declared(BODIES[i]), body)
            })
            .collect();
        let mut n = 0;
        client.send_each(messages, &mut |result| {
            queued(&result, n);
            log.lock().unwrap().push(format!("result {n}"));
            n += 1;
        });
        assert_eq!(
            log.lock().unwrap().join(", "),
            order,
            "chunking: {chunking}"
        );
        client.quit().unwrap();
        let received = finished(&server, 1).remove(0);
        assert_eq!(server.errors(), vec![None]);
        assert_eq!(after_ehlo(&received), pipelined_wire(chunking));
    }
}

/// Refusals in the middle: a message over the server's SIZE (refused
/// before anything is written, reported after the message in flight) and a
/// message whose recipient is refused (RSET); the messages after each go on.
pub fn batch_refusals_in_the_middle(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["PIPELINING", "SIZE 1000"])?;
        peer.expect("MAIL FROM:")?;
        peer.expect("RCPT TO:")?;
        peer.expect("DATA")?;
        peer.reply("250 OK\n250 OK\n354 go ahead")?;
        peer.read_data()?;
        // The oversized message went nowhere; the next waits for this result.
        nothing_more(peer, "a message before the first result")?;
        peer.reply("250 queued 0")?;
        peer.expect("MAIL FROM:")?;
        peer.expect("RCPT TO:<reject@example.org>")?;
        peer.expect("DATA")?;
        peer.reply("250 OK\n550 5.1.1 no such user\n554 5.5.1 no valid recipients")?;
        alone(peer, "RSET")?;
        peer.reply("250 OK")?;
        peer.expect("MAIL FROM:")?;
        peer.expect("RCPT TO:<you@example.org>")?;
        peer.expect("DATA")?;
        peer.reply("250 OK\n250 OK\n354 go ahead")?;
        peer.read_data()?;
        peer.reply("250 queued 3")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let rejected = Envelope::new(
        Some(Address::new(USER).unwrap()),
        [Address::new("reject@example.org").unwrap()],
    )
    .unwrap();
    let results = client.send_all(vec![
        (envelope(), &b"zero\r\n"[..]),
        (envelope().size(5000), b"one\r\n"),
        (rejected, b"two\r\n"),
        (envelope(), b"three\r\n"),
    ]);
    assert_eq!(results.len(), 4, "{results:?}");
    queued(&results[0], 0);
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(proto::Error::MessageTooLarge {
                size: 5000,
                limit: 1000
            })
        ),
        "{err:?}"
    );
    let err = results[2].as_ref().unwrap_err();
    assert!(
        matches!(err.smtp(), Some(proto::Error::RecipientsRejected { .. })),
        "{err:?}"
    );
    queued(&results[3], 3);
    client.quit().unwrap();
    let received = finished(&server, 1).remove(0);
    assert_eq!(server.errors(), vec![None]);
    assert_eq!(
        verbs(&received.plain),
        [
            "EHLO", "MAIL", "RCPT", "DATA", "ZERO", ".", "MAIL", "RCPT", "DATA", "RSET", "MAIL",
            "RCPT", "DATA", "THREE", ".", "QUIT"
        ]
    );
}

/// The connection ends mid-batch, with a `421` or by closing, right after
/// the first message's result: that result is kept, the error is the last
/// element, and nothing more is written.
pub fn batch_connection_ends_mid_batch(adapter: &dyn Adapter) {
    for closing in [true, false] {
        let server = ScriptedServer::start_fn(move |peer| {
            peer.reply("220 mail.test ESMTP")?;
            ehlo(peer, &["PIPELINING"])?;
            peer.expect("MAIL FROM:")?;
            peer.expect("RCPT TO:")?;
            peer.expect("DATA")?;
            peer.reply("250 OK\n250 OK\n354 go ahead")?;
            peer.read_data()?;
            peer.expect("MAIL FROM:")?;
            peer.expect("RCPT TO:")?;
            peer.expect("DATA")?;
            if closing {
                // In one write: the first result and the 421.
                peer.reply("250 queued 0\n421 4.3.2 closing")?;
                until_eof(peer, Duration::from_secs(5))
            } else {
                peer.reply("250 queued 0")?;
                peer.close();
                Ok(())
            }
        })
        .unwrap();
        let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
        let bodies: [&[u8]; 3] = [b"zero\r\n", b"one\r\n", b"two\r\n"];
        let results = client.send_all(bodies.iter().map(|b| (envelope(), *b)).collect());
        // One result per message: the third was never started.
        assert_eq!(results.len(), 3, "{results:?}");
        let third = results[2].as_ref().unwrap_err();
        assert!(
            matches!(third.kind, Kind::NotSent) && third.transient,
            "{third:?}"
        );
        queued(&results[0], 0);
        let err = results[1].as_ref().unwrap_err();
        let stage = match err.smtp() {
            Some(proto::Error::ServiceClosing { stage, .. }) if closing => *stage,
            Some(proto::Error::ConnectionClosed { stage }) if !closing => *stage,
            _ => panic!("closing: {closing}: {err:?}"),
        };
        assert_eq!(stage, Stage::Mail);
        assert!(err.transient);
        assert!(client.noop().is_err());
        drop(client);
        let received = finished(&server, 1).remove(0);
        assert_eq!(
            verbs(&received.plain),
            ["EHLO", "MAIL", "RCPT", "DATA", "ZERO", ".", "MAIL", "RCPT", "DATA"],
            "closing: {closing}"
        );
    }
}

/// Without PIPELINING: one command at a time, each message after the
/// previous one's result.
pub fn batch_without_pipelining(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        for i in 0..3 {
            alone(peer, "MAIL FROM:<me@example.com>")?;
            peer.reply("250 OK")?;
            alone(peer, "RCPT TO:<you@example.org>")?;
            peer.reply("250 OK")?;
            alone(peer, "DATA")?;
            peer.reply("354 go ahead")?;
            let data = peer.read_data()?;
            if data != CHUNKS[i] {
                return Err(other(format!("message {i}: {data:?}")));
            }
            if !peer.buffered().is_empty() {
                return Err(other(format!("message {i}: more came after its end")));
            }
            peer.reply(&format!("250 queued {i}"))?;
        }
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let results = client.send_all(BODIES.iter().map(|b| (envelope(), *b)).collect());
    assert_eq!(results.len(), 3, "{results:?}");
    for (i, result) in results.iter().enumerate() {
        queued(result, i);
    }
    client.quit().unwrap();
    finished(&server, 1);
    assert_eq!(server.errors(), vec![None]);
}

/// A body that gives a line, then fails.
struct Failing(bool);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::replace(&mut self.0, true) {
            return Err(io::Error::other("disk on fire"));
        }
        (&b"a partial line\r\n"[..]).read(buf)
    }
}

/// A body reader failing mid-batch: the result before it is kept, the
/// error is the last, the client is poisoned and the message never ended.
pub fn batch_failing_reader(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["PIPELINING"])?;
        peer.expect("MAIL FROM:")?;
        peer.expect("RCPT TO:")?;
        peer.expect("DATA")?;
        peer.reply("250 OK\n250 OK\n354 go ahead")?;
        peer.read_data()?;
        peer.expect("MAIL FROM:")?;
        peer.expect("RCPT TO:")?;
        peer.expect("DATA")?;
        peer.reply("250 queued 0\n250 OK\n250 OK\n354 go ahead")?;
        // The client closes when it gives up, not only when dropped, so the
        // half-sent message is dropped at once.
        peer.set_read_timeout(Some(WAIT))?;
        match peer.line() {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
            other => Err(io::Error::other(format!("still open: {other:?}"))),
        }
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let bodies: Vec<Body> = vec![
        Box::new(&b"zero\r\n"[..]),
        Box::new(Failing(false)),
        Box::new(&b"two\r\n"[..]),
    ];
    let results = client.send_all_readers(bodies.into_iter().map(|b| (envelope(), b)).collect());
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(matches!(
        results[2].as_ref().unwrap_err().kind,
        Kind::NotSent
    ));
    queued(&results[0], 0);
    let err = results[1].as_ref().unwrap_err();
    assert!(matches!(err.kind, Kind::BodyRead), "{err:?}");
    assert!(client.is_poisoned());
    assert!(matches!(client.noop().unwrap_err().kind, Kind::Poisoned));
    let received = finished(&server, 1).remove(0);
    assert_eq!(server.errors(), [None]);
    drop(client);
    assert_eq!(
        verbs(&received.plain),
        ["EHLO", "MAIL", "RCPT", "DATA", "ZERO", ".", "MAIL", "RCPT", "DATA"]
    );
}

/// The Exchange-like server over STARTTLS with AUTH LOGIN, PIPELINING and
/// CHUNKING: a batch with a refused recipient in the middle, stored
/// byte-exact, every message in `BDAT n LAST`.
pub fn batch_exchange_bdat(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let options = ExchangeOptions::new(cert.server_config().unwrap()).user(USER, PASSWORD);
    let (handler, store) = exchange_online(options);
    let server = ScriptedServer::start(handler).unwrap();
    let mut client = connect_ok(adapter, &server, config_password(), &opts(&pki));
    let rejected = Envelope::new(
        Some(Address::new(USER).unwrap()),
        [Address::new("reject@example.org").unwrap()],
    )
    .unwrap();
    let results = client.send_all(vec![
        (envelope(), BODIES[0]),
        (rejected, BODIES[1]),
        (envelope(), BODIES[2]),
    ]);
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(err.smtp(), Some(proto::Error::RecipientsRejected { .. })),
        "{err:?}"
    );
    client.quit().unwrap();
    let messages = store.wait_for_messages(2, WAIT);
    let data: Vec<&[u8]> = messages.iter().map(|m| &m.data[..]).collect();
    assert_eq!(data, [CHUNKS[0], CHUNKS[2]]);
    let received = finished(&server, 1).remove(0);
    let verbs = verbs(&received.tls);
    assert_eq!(
        verbs.iter().filter(|v| *v == "BDAT").count(),
        3,
        "{verbs:?}"
    );
    assert!(!verbs.iter().any(|v| v == "DATA"), "{verbs:?}");
}
