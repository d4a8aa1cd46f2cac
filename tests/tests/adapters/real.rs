//! Real third-party servers (install with `bash tests/setup.sh`): aiosmtpd,
//! nodemailer smtp-server configured like Exchange Online, Postfix
//! smtp-sink, and a private Postfix instance (smtpd and the queue), the one
//! that offers CHUNKING. Each receives a dot-stuffed and an 8-bit message on
//! one connection, checked byte-exact on the server side; the pipelining
//! ones also receive them as one batch. Postfix also gets a 300 KiB body
//! streamed from a reader, with BDAT and (CHUNKING hidden) with DATA — its
//! log's per-session command counts prove which was used — and refused
//! recipients and size limits with BDAT pipelined. Postfix (like smtp-sink)
//! stores LF line endings, so what it received is compared after CRLF is
//! restored: every body here has CRLF endings only, and everything else,
//! dots included, is compared byte for byte.

use std::collections::BTreeMap;
use std::time::Duration;

use proto::{Address, Config, Credentials, Envelope, Mechanism, Stage, TlsPolicy};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{
    Aiosmtpd, AiosmtpdOptions, NodeSmtpServer, NodeSmtpServerOptions, Postfix, PostfixOptions,
    ReceivedMessage, SmtpSink, SmtpSinkOptions, TestPki,
};

use crate::common::*;
use crate::harness::{Adapter, Body, Conn, Opts};

const DOTS: &[u8] = b"From: me@example.com\r\nTo: you@example.org\r\nSubject: dots\r\n\r\n\
.leading dot\r\n..two dots\r\n.\r\n. \r\nend\r\n";

const EIGHT_BIT: &str = "From: me@example.com\r\nTo: you@example.org\r\nSubject: 8bit\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Gr\u{fc}\u{df}e, na\u{ef}ve caf\u{e9} \u{2014} \u{2713}\r\n";

fn real_opts(pki: Option<&TestPki>) -> Opts {
    let opts = Opts::new().timeouts(proto::Timeouts::uniform(Duration::from_secs(10)));
    match pki {
        Some(pki) => opts.tls(pki.client_config().unwrap()),
        None => opts,
    }
}

/// Sends [`DOTS`] and [`EIGHT_BIT`] (the server advertises 8BITMIME),
/// quits; the bodies sent.
fn send_both(mut client: Box<dyn Conn>) -> Vec<Vec<u8>> {
    assert!(
        client.capabilities().eight_bit_mime(),
        "8BITMIME not advertised"
    );
    let mut sent = Vec::new();
    for body in [DOTS, EIGHT_BIT.as_bytes()] {
        let delivery = client.send(envelope(), body).unwrap();
        assert!(delivery.recipients()[0].accepted());
        sent.push(body.to_vec());
    }
    client.quit().unwrap();
    sent
}

/// [`DOTS`], [`EIGHT_BIT`] and [`DOTS`] again as one batch (slices or
/// readers), then QUIT; the bodies sent.
fn send_batch(mut client: Box<dyn Conn>, readers: bool) -> Vec<Vec<u8>> {
    assert!(client.capabilities().pipelining(), "PIPELINING not offered");
    let bodies = [DOTS, EIGHT_BIT.as_bytes(), DOTS];
    let results = if readers {
        let messages = bodies.iter().map(|body| {
            let reader: Body = Box::new(*body);
            (envelope().for_body(body), reader)
        });
        client.send_all_readers(messages.collect())
    } else {
        client.send_all(bodies.iter().map(|body| (envelope(), *body)).collect())
    };
    assert_eq!(results.len(), bodies.len(), "{results:?}");
    for result in &results {
        assert!(result.as_ref().unwrap().recipients()[0].accepted());
    }
    client.quit().unwrap();
    bodies.iter().map(|body| body.to_vec()).collect()
}

/// Each body sent arrived once, byte-exact (in any order: smtp-sink's dump
/// files are ordered by modification time, which two quick messages share).
fn check(messages: &[ReceivedMessage], sent: &[Vec<u8>]) {
    assert_eq!(messages.len(), sent.len(), "{messages:?}");
    let mut messages = messages.to_vec();
    messages.sort_by(|a, b| a.data.cmp(&b.data));
    let mut sent = sent.to_vec();
    sent.sort();
    for (m, body) in messages.iter().zip(&sent) {
        assert_eq!(m.from, USER);
        assert_eq!(m.to, ["you@example.org"]);
        assert_same(&m.data, body);
    }
}

/// Byte for byte; a mismatch shows where, not two whole bodies.
fn assert_same(got: &[u8], sent: &[u8]) {
    if got == sent {
        return;
    }
    let at = got
        .iter()
        .zip(sent)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(sent.len()));
    let line = sent[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let show = |b: &[u8]| {
        String::from_utf8_lossy(&b[line.min(b.len())..(at + 60).min(b.len())]).into_owned()
    };
    panic!(
        "bodies differ at byte {at} (received {} bytes, sent {}): received {:?}, sent {:?}",
        got.len(),
        sent.len(),
        show(got),
        show(sent)
    );
}

fn connect(
    adapter: &dyn Adapter,
    addr: std::net::SocketAddr,
    config: Config,
    opts: &Opts,
) -> Box<dyn Conn> {
    match adapter.connect(addr, config, opts) {
        Ok(c) => c,
        Err(e) => panic!("{}: {e:?}", adapter.name()),
    }
}

/// aiosmtpd: STARTTLS, AUTH LOGIN only (prompts ending in NUL).
pub fn real_aiosmtpd(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost"]).unwrap();
    let server = Aiosmtpd::start(&AiosmtpdOptions::new(cert, USER, PASSWORD)).unwrap();
    let config = Config::new("localhost")
        .tls(TlsPolicy::Required)
        .credentials(Credentials::password(USER, PASSWORD));
    let client = connect(adapter, server.addr(), config, &real_opts(Some(&pki)));
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism(), Some(Mechanism::Login));
    let sent = send_both(client);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
}

fn node(token: bool) -> (TestPki, NodeSmtpServer) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost"]).unwrap();
    let mut opts = NodeSmtpServerOptions::new(cert, USER, PASSWORD);
    if token {
        opts.token = Some("ya29.token".to_owned());
    }
    let server = NodeSmtpServer::start(&opts).unwrap();
    (pki, server)
}

/// nodemailer smtp-server like Exchange Online, password via AUTH LOGIN.
pub fn real_smtp_server_login(adapter: &dyn Adapter) {
    let (pki, server) = node(false);
    let config = Config::new("localhost").credentials(Credentials::password(USER, PASSWORD));
    let client = connect(adapter, server.addr(), config, &real_opts(Some(&pki)));
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism(), Some(Mechanism::Login));
    let caps = client.capabilities();
    assert!(caps.pipelining() && caps.size() == Some(smtp_tests::EXCHANGE_SIZE_LIMIT));
    let sent = send_both(client);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
}

/// nodemailer smtp-server like Exchange Online, token via XOAUTH2.
pub fn real_smtp_server_xoauth2(adapter: &dyn Adapter) {
    let (pki, server) = node(true);
    let config = Config::new("localhost").credentials(Credentials::token(USER, "ya29.token"));
    let client = connect(adapter, server.addr(), config, &real_opts(Some(&pki)));
    assert_eq!(client.auth_mechanism(), Some(Mechanism::XOAuth2));
    let sent = send_both(client);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
}

/// Postfix smtp-sink: plaintext on loopback, `TlsPolicy::Disabled`.
pub fn real_smtp_sink(adapter: &dyn Adapter) {
    let server = SmtpSink::start(&SmtpSinkOptions::default()).unwrap();
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let client = connect(adapter, server.addr(), config, &real_opts(None));
    assert!(!client.is_tls());
    let sent = send_both(client);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
}

/// nodemailer smtp-server like Exchange Online: a batch of readers over
/// STARTTLS.
pub fn real_smtp_server_batch(adapter: &dyn Adapter) {
    let (pki, server) = node(false);
    let config = Config::new("localhost").credentials(Credentials::password(USER, PASSWORD));
    let client = connect(adapter, server.addr(), config, &real_opts(Some(&pki)));
    let sent = send_batch(client, true);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
}

/// Postfix smtp-sink: a batch of slices.
pub fn real_smtp_sink_batch(adapter: &dyn Adapter) {
    let server = SmtpSink::start(&SmtpSinkOptions::default()).unwrap();
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let client = connect(adapter, server.addr(), config, &real_opts(None));
    let sent = send_batch(client, false);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
}

// ------------------------------------------------------------------ Postfix

/// About 300 KiB, 7-bit: lines of 0 to 2,999 characters (beyond RFC 5321's
/// 998 and Postfix's 2,048-byte records), a quarter of them starting with
/// one to three dots, some a lone `.`, printable ASCII throughout.
fn big_body() -> Vec<u8> {
    let mut body = b"From: me@example.com\r\nTo: you@example.org\r\nSubject: big\r\n\r\n".to_vec();
    for i in 0usize.. {
        if body.len() >= 300 * 1024 {
            break;
        }
        let dots = if i % 4 == 0 { 1 + i / 4 % 3 } else { 0 };
        body.extend(std::iter::repeat_n(b'.', dots));
        let len = if i % 7 == 0 { 0 } else { i * 997 % 3000 };
        body.extend((0..len).map(|j| b' ' + ((i * 31 + j * 7) % 95) as u8));
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// [`big_body`] streamed from a reader (the adapters read and write it
/// 64 KiB at a time) with its exact size declared, so BDAT may carry it;
/// then [`send_both`]'s two on the same connection. The bodies sent.
fn send_three(mut client: Box<dyn Conn>) -> Vec<Vec<u8>> {
    let big = big_body();
    let reader = Box::new(std::io::Cursor::new(big.clone()));
    let delivery = client
        .send_reader(envelope().for_body(&big), reader)
        .unwrap();
    assert!(delivery.recipients()[0].accepted());
    let mut sent = send_both(client);
    sent.push(big);
    sent
}

fn postfix(opts: PostfixOptions) -> Postfix {
    Postfix::start(&opts).unwrap()
}

/// smtpd's command counts for the one session a scenario had (`n`, or
/// `ok/n` when some failed): the server's own account of what was sent.
fn session_counts(server: &Postfix) -> BTreeMap<String, String> {
    let sessions = server.wait_for_sessions(1, WAIT).unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}\n{}", server.log());
    sessions.into_iter().next().unwrap()
}

fn count<'a>(counts: &'a BTreeMap<String, String>, command: &str) -> Option<&'a str> {
    counts.get(command).map(String::as_str)
}

/// Postfix over STARTTLS with CHUNKING: the three bodies go as BDAT, each
/// arrives once, byte-exact (dots as they were: no stuffing under BDAT).
pub fn real_postfix_bdat(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let server = postfix(PostfixOptions {
        cert: Some(pki.leaf(&["localhost"]).unwrap()),
        ..PostfixOptions::default()
    });
    let config = Config::new("localhost").tls(TlsPolicy::Required);
    let client = connect(adapter, server.addr(), config, &real_opts(Some(&pki)));
    assert!(client.is_tls());
    let caps = client.capabilities();
    assert!(caps.chunking() && caps.pipelining(), "{caps:?}");
    let sent = send_three(client);
    check(&server.wait_for_messages(3, WAIT).unwrap(), &sent);
    let counts = session_counts(&server);
    assert_eq!(count(&counts, "starttls"), Some("1"), "{counts:?}");
    assert_eq!(count(&counts, "bdat"), Some("3"), "{counts:?}");
    assert_eq!(count(&counts, "data"), None, "{counts:?}");
}

/// Postfix with CHUNKING: a batch of readers, each `BDAT n LAST` riding
/// behind the previous message's chunk.
pub fn real_postfix_batch(adapter: &dyn Adapter) {
    let server = postfix(PostfixOptions::default());
    let client = connect(adapter, server.addr(), config_plain(), &real_opts(None));
    assert!(client.capabilities().chunking());
    let sent = send_batch(client, true);
    check(&server.wait_for_messages(sent.len(), WAIT).unwrap(), &sent);
    let counts = session_counts(&server);
    assert_eq!(count(&counts, "mail"), Some("3"), "{counts:?}");
    assert_eq!(count(&counts, "bdat"), Some("3"), "{counts:?}");
    assert_eq!(count(&counts, "data"), None, "{counts:?}");
}

/// Postfix with CHUNKING hidden: the same bodies go as DATA, dot-stuffed,
/// and arrive exactly as with BDAT.
pub fn real_postfix_data(adapter: &dyn Adapter) {
    let server = postfix(PostfixOptions {
        hidden_keywords: vec!["chunking".to_owned()],
        ..PostfixOptions::default()
    });
    let client = connect(adapter, server.addr(), config_plain(), &real_opts(None));
    assert!(!client.capabilities().chunking());
    let sent = send_three(client);
    check(&server.wait_for_messages(3, WAIT).unwrap(), &sent);
    let counts = session_counts(&server);
    assert_eq!(count(&counts, "data"), Some("3"), "{counts:?}");
    assert_eq!(count(&counts, "bdat"), None, "{counts:?}");
}

fn addresses(to: &[&str]) -> Envelope {
    Envelope::new(
        Some(Address::new(USER).unwrap()),
        to.iter().map(|a| Address::new(*a).unwrap()),
    )
    .unwrap()
}

/// A refused recipient between two accepted ones, BDAT pipelined behind the
/// RCPTs: per-recipient results, and the message for the accepted two
/// only. Then every recipient refused (Postfix still reads the chunk and
/// refuses it): the client resets the failed transaction with RSET (RFC
/// 3030: a refused BDAT fails the transaction without ending it, as DATA's
/// final reply would), and the next message in the same session is
/// delivered.
pub fn real_postfix_refused_recipient(adapter: &dyn Adapter) {
    let server = postfix(PostfixOptions {
        refused_recipients: vec!["nobody@example.org".to_owned()],
        ..PostfixOptions::default()
    });
    let mut client = connect(adapter, server.addr(), config_plain(), &real_opts(None));
    let caps = client.capabilities();
    assert!(caps.chunking() && caps.pipelining(), "{caps:?}");
    let to = ["you@example.org", "nobody@example.org", "them@example.org"];
    let delivery = client.send(addresses(&to), DOTS).unwrap();
    let results: Vec<(&str, u16)> = delivery
        .recipients()
        .iter()
        .map(|r| (r.address().as_str(), r.reply().code().get()))
        .collect();
    assert_eq!(results, [(to[0], 250), (to[1], 550), (to[2], 250)]);
    let refused = String::from_utf8_lossy(delivery.recipients()[1].reply().message()).into_owned();
    assert!(refused.contains("Mailbox unknown"), "{refused}");

    let err = client
        .send(addresses(&["nobody@example.org"]), EIGHT_BIT.as_bytes())
        .unwrap_err();
    match err.smtp() {
        Some(proto::Error::RecipientsRejected { recipients }) => {
            assert_eq!(recipients.len(), 1);
            assert_eq!(recipients[0].reply().code().get(), 550);
        }
        _ => panic!("{}: {err:?}", adapter.name()),
    }
    assert!(!client.is_poisoned());
    client.send(envelope(), EIGHT_BIT.as_bytes()).unwrap();
    client.quit().unwrap();

    let messages = server.wait_for_messages(2, WAIT).unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].to, ["them@example.org", "you@example.org"]);
    assert_same(&messages[0].data, DOTS);
    assert_eq!(messages[1].to, ["you@example.org"]);
    assert_same(&messages[1].data, EIGHT_BIT.as_bytes());
    let counts = session_counts(&server);
    assert_eq!(count(&counts, "rcpt"), Some("3/5"), "{counts:?}");
    assert_eq!(count(&counts, "bdat"), Some("2/3"), "{counts:?}");
    assert_eq!(count(&counts, "data"), None, "{counts:?}");
    // One RSET, after the refused chunk; none after the delivered ones.
    assert_eq!(count(&counts, "rset"), Some("1"), "{counts:?}");
}

/// A limit Postfix announces (`SIZE 65536`): a larger body is refused by the
/// client before MAIL (Postfix never sees it), and the next one goes through.
pub fn real_postfix_size_limit_announced(adapter: &dyn Adapter) {
    let server = postfix(PostfixOptions {
        message_size_limit: 65536,
        ..PostfixOptions::default()
    });
    let mut client = connect(adapter, server.addr(), config_plain(), &real_opts(None));
    assert_eq!(client.capabilities().size(), Some(65536));
    let big = big_body();
    let err = client.send(envelope(), &big).unwrap_err();
    match err.smtp() {
        Some(proto::Error::MessageTooLarge { size, limit }) => {
            assert_eq!((*size, *limit), (big.len() as u64, 65536));
        }
        _ => panic!("{}: {err:?}", adapter.name()),
    }
    assert!(!client.is_poisoned());
    client.send(envelope(), DOTS).unwrap();
    client.quit().unwrap();
    check(
        &server.wait_for_messages(1, WAIT).unwrap(),
        &[DOTS.to_vec()],
    );
    let counts = session_counts(&server);
    assert_eq!(count(&counts, "mail"), Some("1"), "{counts:?}");
    assert_eq!(count(&counts, "bdat"), Some("1"), "{counts:?}");
}

/// The same limit with SIZE hidden: the client cannot know it, so the body
/// goes out as a pipelined BDAT chunk, which Postfix reads and refuses with
/// `552 5.3.4`; the connection stays in step and the next message goes through.
pub fn real_postfix_size_limit_unannounced(adapter: &dyn Adapter) {
    size_limit_unannounced(adapter, "bdat", &["size"]);
}

/// As [`real_postfix_size_limit_unannounced`] with CHUNKING hidden too: the
/// body goes out as DATA, refused after its end.
pub fn real_postfix_size_limit_unannounced_data(adapter: &dyn Adapter) {
    size_limit_unannounced(adapter, "data", &["size", "chunking"]);
}

/// A body over Postfix's unannounced limit sent with `command` (`bdat` or
/// `data`): refused at the end of data with `552 5.3.4`, then a small one
/// goes through on the same connection.
fn size_limit_unannounced(adapter: &dyn Adapter, command: &str, hidden: &[&str]) {
    let server = postfix(PostfixOptions {
        message_size_limit: 65536,
        hidden_keywords: hidden.iter().map(|k| k.to_string()).collect(),
        ..PostfixOptions::default()
    });
    let mut client = connect(adapter, server.addr(), config_plain(), &real_opts(None));
    assert_eq!(client.capabilities().size(), None);
    assert_eq!(client.capabilities().chunking(), command == "bdat");
    let err = client.send(envelope(), &big_body()).unwrap_err();
    match err.smtp() {
        Some(proto::Error::MessageRejected {
            stage: Stage::DataEnd,
            reply,
            recipients,
        }) => {
            assert_eq!(reply.code().get(), 552, "{reply}");
            assert_eq!(
                reply.enhanced_code().map(|c| c.to_string()).as_deref(),
                Some("5.3.4"),
                "{reply}"
            );
            assert!(recipients[0].accepted());
        }
        _ => panic!("{}: {err:?}", adapter.name()),
    }
    assert!(!client.is_poisoned());
    client.send(envelope(), DOTS).unwrap();
    client.quit().unwrap();
    check(
        &server.wait_for_messages(1, WAIT).unwrap(),
        &[DOTS.to_vec()],
    );
    let counts = session_counts(&server);
    assert_eq!(count(&counts, "mail"), Some("2"), "{counts:?}");
    assert_eq!(count(&counts, command), Some("1/2"), "{counts:?}");
}

/// Messages built the way applications build them, with lettre and with
/// mail-builder (`smtp_proto::messages`), through every adapter to Postfix:
/// the `Bcc` recipient is in the envelope and gets the message, and no
/// copy shows the `Bcc` header.
pub fn real_postfix_lettre_and_mail_builder(adapter: &dyn Adapter) {
    let server = postfix(PostfixOptions::default());
    let mut client = connect(adapter, server.addr(), config_plain(), &real_opts(None));
    let lettre = lettre::Message::builder()
        .from("Me <me@example.com>".parse().unwrap())
        .to("You <you@example.org>".parse().unwrap())
        .bcc("hidden@example.org".parse().unwrap())
        .subject("from lettre")
        .body(String::from("Built with lettre.\r\n"))
        .unwrap();
    let (envelope, bytes) = proto::messages::from_lettre(&lettre).unwrap();
    client.send(envelope, &bytes).unwrap();
    let builder = mail_builder::MessageBuilder::new()
        .from(("Me", "me@example.com"))
        .to(("You", "you@example.org"))
        .bcc("hidden@example.org")
        .subject("from mail-builder")
        .text_body("Built with mail-builder.\r\n");
    let (envelope, bytes) = proto::messages::from_mail_builder(builder).unwrap();
    client.send(envelope, &bytes).unwrap();
    client.quit().unwrap();
    let received = server.wait_for_messages(2, WAIT).unwrap();
    for (m, subject) in received.iter().zip(["from lettre", "from mail-builder"]) {
        assert_eq!(m.from, "me@example.com", "{}", adapter.name());
        assert_eq!(
            m.to,
            ["hidden@example.org", "you@example.org"],
            "{}",
            adapter.name()
        );
        let text = String::from_utf8_lossy(&m.data);
        assert!(text.contains(&format!("Subject: {subject}")), "{text}");
        assert!(
            !text.contains("hidden@") && !text.to_ascii_lowercase().contains("\nbcc:"),
            "{text}"
        );
    }
}
