//! A plain session: what the client writes for a message and what its
//! transcript says, recipients refused, connecting by name, a connection
//! refused.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use proto::{Address, Credentials, Envelope, Outcome};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::ScriptedServer;

use crate::common::*;
use crate::harness::{Adapter, Kind, Transcript};

fn transcript() -> Transcript {
    Arc::new(Mutex::new(Vec::new()))
}

/// Asserts that each of `expected` is a line of `log`.
fn assert_lines(adapter: &dyn Adapter, log: &Transcript, expected: &[&str]) {
    let log = log.lock().unwrap();
    for line in expected {
        assert!(
            log.iter().any(|l| l == line),
            "{}: {line:?} not in {log:#?}",
            adapter.name()
        );
    }
}

/// A message over plaintext: bare LF made CRLF, leading dots stuffed, the
/// size declared (`SIZE` offered), and the transcript hook given both sides
/// of the dialogue line by line.
pub fn transcript_of_a_plain_session(adapter: &dyn Adapter) {
    const BODY: &[u8] = b"Subject: t\n\n.leading dot\nline\r\n..two\n";
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP test")?;
        ehlo(peer, &["8BITMIME", "SIZE 1000000"])?;
        peer.expect("MAIL FROM:")?;
        peer.reply("250 2.1.0 OK")?;
        peer.expect("RCPT TO:")?;
        peer.reply("250 2.1.5 OK")?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        peer.read_data()?;
        peer.reply("250 2.0.0 queued as 42")?;
        peer.expect("NOOP")?;
        peer.reply("250 2.0.0 OK")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let log = transcript();
    let opts = plain_opts(FAST).transcript(Arc::clone(&log));
    let mut client = connect_ok(adapter, &server, config_plain(), &opts);
    assert!(!client.is_tls() && client.is_usable());
    assert_eq!(client.capabilities().size_limit(), Some(1_000_000));
    let delivery = client.send(envelope(), BODY).unwrap();
    assert!(delivery.recipients()[0].accepted());
    assert_eq!(delivery.reply().code().get(), 250);
    assert!(client.is_usable());
    client.noop().unwrap();
    client.quit().unwrap();

    let received = finished(&server, 1).remove(0);
    assert_eq!(server.errors(), vec![None]);
    assert_eq!(
        received.plain_text(),
        "EHLO localhost\r\n\
         MAIL FROM:<me@example.com> SIZE=37\r\n\
         RCPT TO:<you@example.org>\r\n\
         DATA\r\n\
         Subject: t\r\n\r\n..leading dot\r\nline\r\n...two\r\n.\r\n\
         NOOP\r\n\
         QUIT\r\n"
    );
    assert_lines(
        adapter,
        &log,
        &[
            "S: 220 mail.test ESMTP test",
            "C: EHLO localhost",
            "C: MAIL FROM:<me@example.com> SIZE=37",
            "C: RCPT TO:<you@example.org>",
            "S: 250 2.0.0 queued as 42",
            "C: NOOP",
            "C: QUIT",
            "S: 221 bye",
        ],
    );
}

/// AUTH PLAIN over plaintext to a loopback server (which the credential
/// guard allows): the credentials go on the wire, never into the
/// transcript.
pub fn transcript_redacts_auth(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["AUTH PLAIN LOGIN"])?;
        peer.expect("AUTH PLAIN ")?;
        peer.reply("235 2.7.0 OK")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let log = transcript();
    let opts = plain_opts(FAST).transcript(Arc::clone(&log));
    let config = config_plain().credentials(Credentials::password("me", "secret"));
    let client = connect_ok(adapter, &server, config, &opts);
    assert_eq!(client.auth_mechanism(), Some(proto::Mechanism::Plain));
    client.quit().unwrap();
    let received = finished(&server, 1).remove(0);
    // "\0me\0secret"
    assert_eq!(lines(&received.plain)[1], "AUTH PLAIN AG1lAHNlY3JldA==");
    assert_lines(
        adapter,
        &log,
        &["C: AUTH PLAIN <redacted>", "S: 235 2.7.0 OK"],
    );
    let log = log.lock().unwrap();
    assert!(
        !log.iter().any(|l| l.contains("AG1lAHNlY3JldA")),
        "{}: {log:#?}",
        adapter.name()
    );
}

fn to(recipients: &[&str]) -> Envelope {
    Envelope::new(
        Some(Address::new(USER).unwrap()),
        recipients.iter().map(|r| Address::new(*r).unwrap()),
    )
    .unwrap()
}

/// Every recipient refused, without PIPELINING (the client stops at RCPT
/// and resets) and with it (the server, answering DATA with `354`
/// regardless, gets an empty message): the message's error, not transient,
/// and the client goes on; one recipient of two refused: delivered, the
/// refusal reported.
pub fn refused_recipients_leave_the_client_usable(adapter: &dyn Adapter) {
    for pipelining in [false, true] {
        let server = ScriptedServer::start_fn(move |peer| {
            peer.reply("220 mail.test ESMTP")?;
            if pipelining {
                ehlo(peer, &["PIPELINING"])?;
                peer.expect("MAIL FROM:")?;
                peer.expect("RCPT TO:<reject@example.org>")?;
                peer.expect("DATA")?;
                peer.reply("250 OK\n550 5.1.1 no such user\n354 go ahead")?;
                if !peer.read_data()?.is_empty() {
                    return Err(std::io::Error::other("a body for no recipient"));
                }
                peer.reply("250 2.0.0 queued as 41")?;
                peer.expect("MAIL FROM:")?;
                peer.expect("RCPT TO:<reject@example.org>")?;
                peer.expect("RCPT TO:<ok@example.org>")?;
                peer.expect("DATA")?;
                peer.reply("250 OK\n550 5.1.1 no such user\n250 OK\n354 go ahead")?;
                if peer.read_data()? != b"x\r\n" {
                    return Err(std::io::Error::other("not the message"));
                }
                peer.reply("250 2.0.0 queued as 42")?;
            } else {
                ehlo(peer, &["8BITMIME"])?;
                peer.expect("MAIL FROM:")?;
                peer.reply("250 OK")?;
                peer.expect("RCPT TO:<reject@example.org>")?;
                peer.reply("550 5.1.1 no such user")?;
                peer.expect("RSET")?;
                peer.reply("250 OK")?;
            }
            peer.expect("NOOP")?;
            peer.reply("250 OK")?;
            peer.expect("QUIT")?;
            peer.reply("221 bye")
        })
        .unwrap();
        let what = format!("{} pipelining={pipelining}", adapter.name());
        let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
        let err = client
            .send(to(&["reject@example.org"]), b"x\r\n")
            .unwrap_err();
        assert!(
            matches!(err.smtp(), Some(proto::Error::RecipientsRejected { .. })),
            "{what}: {err:?}"
        );
        assert!(!err.transient, "{what}: {err:?}");
        assert_eq!(err.outcome, Outcome::Refused, "{what}: {err:?}");
        assert!(client.is_usable() && !client.is_poisoned(), "{what}");
        if pipelining {
            let delivery = client
                .send(to(&["reject@example.org", "ok@example.org"]), b"x\r\n")
                .unwrap();
            assert_eq!(delivery.rejected().count(), 1, "{what}");
            assert_eq!(delivery.reply().to_string(), "250 2.0.0 queued as 42");
        }
        client.noop().unwrap();
        client.quit().unwrap();
        finished(&server, 1);
        assert_eq!(server.errors(), vec![None], "{what}");
    }
}

/// `Client::connect` with a host name: `localhost` may resolve to `::1`
/// first while the server listens on 127.0.0.1 only; the client tries each
/// address.
pub fn connect_by_host_name(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let client = adapter
        .connect_host(
            "localhost",
            server.port(),
            config_plain(),
            &plain_opts(FAST),
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", adapter.name()));
    client.quit().unwrap();
    finished(&server, 1);
    assert_eq!(server.errors(), vec![None]);
}

/// Nothing listens: a connect error naming the address tried, transient,
/// by address and by name.
pub fn connect_refused(adapter: &dyn Adapter) {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let opts = plain_opts(FAST);
    let err = match adapter.connect(addr, config_plain(), &opts) {
        Ok(_) => panic!("{}: connected", adapter.name()),
        Err(e) => e,
    };
    match err.kind {
        Kind::Connect(Some(tried)) => assert_eq!(tried, addr, "{}", adapter.name()),
        // The harness dials for smol (`with_stream_to`); its own error.
        Kind::Connect(None) if adapter.name() == "smol" => {}
        _ => panic!("{}: {err:?}", adapter.name()),
    }
    assert!(
        err.transient && !err.security,
        "{}: {err:?}",
        adapter.name()
    );
    assert_eq!(err.outcome, Outcome::NotSent);
    let err = match adapter.connect_host("localhost", addr.port(), config_plain(), &opts) {
        Ok(_) => panic!("{}: connected", adapter.name()),
        Err(e) => e,
    };
    // The address tried last: 127.0.0.1 or ::1, on that port.
    assert!(
        matches!(err.kind, Kind::Connect(Some(a)) if a.port() == addr.port() && a.ip().is_loopback()),
        "{}: {err:?}",
        adapter.name()
    );
    assert!(err.transient, "{}: {err:?}", adapter.name());
}
