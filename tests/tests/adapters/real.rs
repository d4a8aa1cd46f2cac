//! Real third-party servers (install with `bash tests/setup.sh`): aiosmtpd,
//! nodemailer smtp-server configured like Exchange Online, Postfix
//! smtp-sink. Each receives a dot-stuffed and an 8-bit message on one
//! connection, checked byte-exact on the server side; the pipelining ones
//! also receive them as one batch.

use std::time::Duration;

use proto::{Config, Credentials, Mechanism, TlsPolicy};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{
    Aiosmtpd, AiosmtpdOptions, NodeSmtpServer, NodeSmtpServerOptions, ReceivedMessage, SmtpSink,
    SmtpSinkOptions, TestPki,
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
        assert_eq!(
            String::from_utf8_lossy(&m.data),
            String::from_utf8_lossy(body)
        );
        assert_eq!(&m.data, body);
    }
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
