//! Attacks: STARTTLS stripping under `Required`, STARTTLS response
//! injection, control characters in what the caller passes, and body
//! smuggling.

use std::io::{self, Read};
use std::time::Duration;

use proto::Recipient;
use proto::{Address, Config, Credentials, Envelope, InputField, TlsPolicy};
use proto::{EhloName, Parameter};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{exchange_online, ExchangeOptions, Peer, Received, ScriptedServer, TestPki};

use crate::common::*;
use crate::harness::{Adapter, Kind};

/// Runs `script` as the server of a STARTTLS-required client with a
/// password; returns the error and what the client sent.
fn stripped(
    adapter: &dyn Adapter,
    script: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
) -> (crate::harness::AdapterError, Received) {
    let pki = TestPki::new().unwrap();
    let server = ScriptedServer::start_fn(script).unwrap();
    let err = connect_err(adapter, &server, config_password(), &opts(&pki));
    let received = finished(&server, 1).remove(0);
    assert_nothing_sensitive(&received);
    assert!(received.tls.is_empty());
    (err, received)
}

/// No STARTTLS in the EHLO reply: nothing but EHLO and QUIT.
pub fn stripping_no_starttls(adapter: &dyn Adapter) {
    let (err, received) = stripped(adapter, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["AUTH PLAIN LOGIN", "PIPELINING"])?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    });
    assert!(
        matches!(err.smtp(), Some(proto::Error::TlsRequired { reply: None })),
        "{err:?}"
    );
    assert!(err.security);
    assert_eq!(verbs(&received.plain), ["EHLO", "QUIT"]);
}

/// `454` to STARTTLS: nothing but EHLO, STARTTLS and QUIT.
pub fn stripping_454(adapter: &dyn Adapter) {
    let (err, received) = stripped(adapter, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["STARTTLS", "AUTH PLAIN LOGIN"])?;
        peer.expect("STARTTLS")?;
        peer.reply("454 4.7.0 TLS not available due to temporary reason")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    });
    assert!(
        matches!(
            err.smtp(),
            Some(proto::Error::TlsRequired { reply: Some(r) }) if r.to_string().contains("454")
        ),
        "{err:?}"
    );
    assert!(err.security);
    assert_eq!(verbs(&received.plain), ["EHLO", "STARTTLS", "QUIT"]);
}

/// `STARTTLS` only where it is not a keyword: in the text of the EHLO
/// reply's first line (the server's name and greeting).
pub fn stripping_starttls_in_greeting_text(adapter: &dyn Adapter) {
    let (err, received) = stripped(adapter, |peer| {
        peer.reply("220 mail.test ESMTP STARTTLS")?;
        peer.expect("EHLO ")?;
        peer.reply("250-mail.test STARTTLS\n250-XSTARTTLS\n250 AUTH PLAIN LOGIN")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    });
    assert!(
        matches!(err.smtp(), Some(proto::Error::TlsRequired { reply: None })),
        "{err:?}"
    );
    assert_eq!(verbs(&received.plain), ["EHLO", "QUIT"]);
}

/// `STARTTLS` only on a line after the EHLO reply's last line (not part
/// of the reply): not advertised.
pub fn stripping_starttls_after_the_last_line(adapter: &dyn Adapter) {
    let (err, received) = stripped(adapter, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO ")?;
        peer.reply("250-mail.test\n250 AUTH PLAIN LOGIN\n250-STARTTLS\n250 PIPELINING")?;
        until_eof(peer, Duration::from_secs(5))
    });
    assert!(err.security || err.smtp().is_some(), "{err:?}");
    let verbs = verbs(&received.plain);
    assert_eq!(verbs[0], "EHLO");
    assert!(verbs[1..].iter().all(|v| v == "QUIT"), "{verbs:?}");
}

/// Greeting, EHLO offering STARTTLS and AUTH, the STARTTLS command.
fn until_starttls(peer: &mut Peer) -> io::Result<()> {
    peer.reply("220 mail.test ESMTP")?;
    ehlo(peer, &["STARTTLS", "AUTH PLAIN LOGIN"])?;
    peer.expect("STARTTLS")?;
    Ok(())
}

fn injected(adapter: &dyn Adapter, err: &crate::harness::AdapterError, received: &Received) {
    assert!(err.security, "{}: {err:?}", adapter.name());
    assert!(
        matches!(
            err.kind,
            Kind::Smtp(proto::Error::StartTlsInjection) | Kind::Tls(_)
        ),
        "{err:?}"
    );
    let verbs = verbs(&received.plain);
    assert_eq!(verbs[..2], ["EHLO", "STARTTLS"], "{verbs:?}");
}

/// Plaintext replies in the same packet as the `220` to STARTTLS: refused
/// by the core before the handshake, never used.
pub fn injection_same_packet(adapter: &dyn Adapter) {
    let (err, received) = stripped(adapter, |peer| {
        until_starttls(peer)?;
        peer.send(
            b"220 2.0.0 go ahead\r\n250-mail.test\r\n250 AUTH PLAIN LOGIN\r\n235 2.7.0 OK\r\n",
        )?;
        until_eof(peer, Duration::from_secs(5))
    });
    injected(adapter, &err, &received);
    assert!(
        matches!(err.smtp(), Some(proto::Error::StartTlsInjection)),
        "{err:?}"
    );
    // Not even a ClientHello: the client never started the handshake.
    assert!(
        !received.plain.contains(&0x16),
        "a TLS record was sent: {:?}",
        received.plain
    );
}

/// Plaintext replies a moment after the `220` (before the server's part
/// of the handshake): the core or rustls refuses them, whichever sees
/// them first; they are never used.
pub fn injection_slightly_later(adapter: &dyn Adapter) {
    let (err, received) = stripped(adapter, |peer| {
        until_starttls(peer)?;
        peer.send(b"220 2.0.0 go ahead\r\n")?;
        std::thread::sleep(Duration::from_millis(20));
        peer.send(b"250-mail.test\r\n250 AUTH PLAIN LOGIN\r\n235 2.7.0 OK\r\n")?;
        until_eof(peer, Duration::from_secs(5))
    });
    injected(adapter, &err, &received);
}

/// An attacker that answers STARTTLS with `220` and then answers the
/// ClientHello with plaintext replies, never taking part in TLS: the
/// client fails (or times out) and never proceeds in plaintext.
pub fn injection_without_handshake(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let server = ScriptedServer::start_fn(|peer| {
        until_starttls(peer)?;
        peer.reply("220 2.0.0 go ahead")?;
        // Whatever the client sends now (its ClientHello), answer as if in
        // plaintext.
        peer.set_read_timeout(Some(Duration::from_secs(2)))?;
        let _ = peer.read_exact_bytes(5);
        peer.send(b"250-mail.test\r\n250 AUTH PLAIN LOGIN\r\n")?;
        until_eof(peer, Duration::from_secs(5))
    })
    .unwrap();
    let err = connect_err(adapter, &server, config_password(), &opts(&pki));
    assert!(err.security || err.timeout, "{err:?}");
    let received = finished(&server, 1).remove(0);
    assert_nothing_sensitive(&received);
}

/// CR, LF and NUL in addresses, the EHLO name, the user name, DSN
/// parameters and the server name: the values cannot be built, or the
/// session refuses them before connecting.
pub fn control_characters_rejected_before_any_write(adapter: &dyn Adapter) {
    let evil = ["\r\nMAIL FROM:<evil@x>", "\nRCPT TO:<v@x>", "\0", "\r"];
    for bad in evil {
        let addr = format!("me{bad}@example.com");
        assert!(
            matches!(
                Address::new(addr.as_str()),
                Err(proto::InvalidInput {
                    field: InputField::Address,
                    ..
                })
            ),
            "{addr:?}"
        );
        assert!(EhloName::new(format!("client{bad}")).is_err(), "{bad:?}");
        assert!(Parameter::new("X-FOO", Some(&format!("v{bad}"))).is_err());
        assert!(Parameter::new(&format!("X{bad}"), None).is_err());
        let env = Envelope::new(
            Some(Address::new(USER).unwrap()),
            [Address::new("you@example.org").unwrap()],
        )
        .unwrap();
        assert!(
            env.envelope_id(&format!("id{bad}")).is_err(),
            "ENVID {bad:?}"
        );
        let rcpt = Recipient::new(Address::new("you@example.org").unwrap());
        assert!(
            rcpt.original_recipient(&format!("rfc822;you{bad}@example.org"))
                .is_err(),
            "ORCPT {bad:?}"
        );
    }

    // What reaches an adapter: a configuration whose user name or server
    // name holds a control character. Nothing is sent; the adapters check
    // before they connect.
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        until_eof(peer, Duration::from_secs(2))
    })
    .unwrap();
    let configs = [
        (
            Config::new("localhost")
                .tls(TlsPolicy::Disabled)
                .credentials(Credentials::password("me\r\nMAIL FROM:<evil@x>", PASSWORD)),
            InputField::Username,
        ),
        (
            Config::new("localhost")
                .tls(TlsPolicy::Disabled)
                .credentials(Credentials::password("me\0", PASSWORD)),
            InputField::Username,
        ),
        (
            Config::new("localhost")
                .tls(TlsPolicy::Disabled)
                .credentials(Credentials::token(USER, "tok\r\nQUIT")),
            InputField::Secret,
        ),
        (
            Config::new("mail.test\r\nMAIL FROM:<evil@x>").tls(TlsPolicy::Disabled),
            InputField::ServerName,
        ),
    ];
    for (config, field) in configs {
        let err = connect_err(
            adapter,
            &server,
            config,
            &plain_opts(Duration::from_secs(2)),
        );
        assert!(
            matches!(err.smtp(), Some(proto::Error::InvalidInput { field: f, .. }) if *f == field),
            "{field:?}: {err:?}"
        );
    }
    // Nothing reached the server: no connection (the adapters check the
    // configuration before they dial), or, for the smol adapter, which
    // dials itself before `with_stream`, connections on which nothing was
    // written.
    assert!(server.wait_finished(server.connections(), WAIT));
    for received in server.received() {
        assert!(
            received.plain.is_empty() && received.tls.is_empty(),
            "{received:?}"
        );
    }
}

/// A body whose reads return one byte at a time.
struct Trickle(Vec<u8>, usize);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.1 >= self.0.len() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[self.1];
        self.1 += 1;
        Ok(1)
    }
}

const SMUGGLERS: [&[u8]; 5] = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r"];

fn smuggling_body(sequence: &[u8]) -> Vec<u8> {
    let mut body = b"Subject: smuggling\r\n\r\nbefore".to_vec();
    body.extend_from_slice(sequence);
    body.extend_from_slice(
        b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nforged\r\n.\r\n",
    );
    body.extend_from_slice(b"after\r\n");
    body
}

/// Smuggling sequences (`\n.\n`, `\n.\r\n`, `\r\n.\n`, `\r.\r\n`, ...) with
/// a fake transaction after them, sent from a slice and from a one-byte
/// reader: the server stores exactly one message per send, equal to
/// `smtp_proto::testing::normalize(input)`.
pub fn body_smuggling(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let opts_ex = ExchangeOptions::new(cert.server_config().unwrap())
        .implicit_tls(true)
        .user(USER, PASSWORD);
    let (handler, store) = exchange_online(opts_ex);
    let server = ScriptedServer::start(handler).unwrap();
    let config = config_password().tls(TlsPolicy::Implicit);
    let mut client = connect_ok(adapter, &server, config, &opts(&pki));
    let mut expected = Vec::new();
    for sequence in SMUGGLERS {
        let body = smuggling_body(sequence);
        client.send(envelope(), &body).unwrap();
        expected.push(proto::testing::normalize(&body));
        client
            .send_reader(envelope(), Box::new(Trickle(body.clone(), 0)))
            .unwrap();
        expected.push(proto::testing::normalize(&body));
    }
    client.quit().unwrap();
    let messages = store.wait_for_messages(expected.len(), WAIT);
    assert!(server.wait_finished(1, WAIT));
    let messages_after = store.messages();
    assert_eq!(messages_after.len(), expected.len(), "{messages:?}");
    for (m, want) in messages_after.iter().zip(&expected) {
        assert_eq!(m.from, USER);
        assert_eq!(m.to, ["you@example.org"]);
        assert_eq!(
            String::from_utf8_lossy(&m.data),
            String::from_utf8_lossy(want)
        );
    }
    // The fake transaction travelled as text inside DATA: dot-stuffed where
    // it followed a smuggled dot, never as commands (the store would hold a
    // message from evil@attacker.test).
    assert!(messages_after.iter().all(|m| m.from == USER));
}
