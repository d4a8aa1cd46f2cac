//! smtp-tokio (tokio backend) against the scripted TLS server: implicit TLS, STARTTLS,
//! AUTH PLAIN and LOGIN, certificate checks before any credential, STARTTLS
//! stripping and injection, timeouts, and a 100 MiB streamed body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use smtp_tests::{exchange_online, ExchangeOptions, Peer, ScriptedServer, TestPki};
use smtp_tokio::smtp_proto::Error as SmtpError;
use smtp_tokio::tokio::Client;
use smtp_tokio::{
    Address, Config, Credentials, Envelope, Error, Options, Stage, Timeouts, TlsPolicy,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

const WAIT: Duration = Duration::from_secs(10);
const NAME: &str = "mail.test";

fn options(pki: &TestPki) -> Options {
    Options::new()
        .tls(pki.client_config().unwrap())
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new("you@example.org").unwrap()],
    )
    .unwrap()
}

fn ehlo(peer: &mut Peer, extensions: &[&str]) -> io::Result<()> {
    peer.expect("EHLO ")?;
    let mut lines = vec![NAME];
    lines.extend_from_slice(extensions);
    let last = lines.len() - 1;
    let reply: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
        .collect();
    peer.reply(&reply.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_auth_login_against_exchange() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let opts =
        ExchangeOptions::new(cert.server_config().unwrap()).user("me@example.com", "hunter2");
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();

    let config = Config::new(NAME).credentials(Credentials::password("me@example.com", "hunter2"));
    let mut client = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap();
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism().map(|m| m.as_str()), Some("LOGIN"));
    let body = b"Subject: hi\r\n\r\n.leading dot\r\nend\r\n";
    let delivery = client.send(envelope(), body).await.unwrap();
    assert!(delivery.recipients()[0].accepted());
    client.quit().await.unwrap();

    let messages = store.wait_for_messages(1, WAIT);
    assert_eq!(messages[0].data, body);
    assert!(messages[0].tls);
    assert_eq!(
        messages[0].auth,
        Some(("LOGIN".to_owned(), "me@example.com".to_owned()))
    );
    assert!(server.wait_finished(1, WAIT));
    let received = server.transcript(0).unwrap();
    assert!(
        received.plain_text().ends_with("STARTTLS\r\n"),
        "{}",
        received.plain_text()
    );
    assert!(!received.plain_text().contains("AUTH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_against_exchange() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let opts = ExchangeOptions::new(cert.server_config().unwrap())
        .implicit_tls(true)
        .user("me@example.com", "hunter2");
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();

    let config = Config::new(NAME)
        .tls(TlsPolicy::Implicit)
        .credentials(Credentials::password("me@example.com", "hunter2"));
    let mut client = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap();
    assert!(client.is_tls());
    client.send(envelope(), b"hello\r\n").await.unwrap();
    client.noop().await.unwrap();
    client.quit().await.unwrap();
    assert_eq!(store.wait_for_messages(1, WAIT)[0].data, b"hello\r\n");
    assert!(server.wait_finished(1, WAIT));
    assert!(server.transcript(0).unwrap().plain.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plain_after_starttls() {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["STARTTLS", "AUTH PLAIN LOGIN"])?;
        peer.expect("STARTTLS")?;
        peer.reply("220 go ahead")?;
        peer.start_tls(Arc::clone(&tls))?;
        ehlo(peer, &["AUTH PLAIN LOGIN"])?;
        // "\0me@example.com\0hunter2"
        let auth = peer.expect("AUTH PLAIN ")?;
        assert_eq!(auth, b"AUTH PLAIN AG1lQGV4YW1wbGUuY29tAGh1bnRlcjI=");
        peer.reply("235 2.7.0 OK")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let config = Config::new(NAME).credentials(Credentials::password("me@example.com", "hunter2"));
    let client = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap();
    assert_eq!(client.auth_mechanism().map(|m| m.as_str()), Some("PLAIN"));
    client.quit().await.unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.errors(), vec![None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused_before_any_credential() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["other.test"]).unwrap();
    let opts =
        ExchangeOptions::new(cert.server_config().unwrap()).user("me@example.com", "hunter2");
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();

    let config = Config::new(NAME).credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)) && err.is_security(), "{err:?}");
    assert!(server.wait_finished(1, WAIT));
    let received = server.transcript(0).unwrap();
    assert!(!received.plain_text().contains("AUTH"));
    assert!(received.tls.is_empty());
    assert!(store.auth_attempts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_stripped_under_required_sends_nothing_more() {
    let pki = TestPki::new().unwrap();
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["AUTH PLAIN LOGIN"])?; // STARTTLS stripped
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let config = Config::new(NAME).credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap_err();
    assert!(
        matches!(err.smtp(), Some(SmtpError::TlsRequired { reply: None })),
        "{err:?}"
    );
    assert!(err.is_security());
    assert!(server.wait_finished(1, WAIT));
    let plain = server.transcript(0).unwrap().plain_text();
    assert!(
        plain.starts_with("EHLO ") && plain.ends_with("\r\nQUIT\r\n"),
        "{plain}"
    );
    assert!(!plain.contains("AUTH") && !plain.contains("MAIL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_injected_after_the_220_is_refused() {
    let pki = TestPki::new().unwrap();
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["STARTTLS", "AUTH PLAIN LOGIN"])?;
        peer.expect("STARTTLS")?;
        // The injected EHLO reply rides in the same packet as the 220.
        peer.send(b"220 go ahead\r\n250-mail.test\r\n250 AUTH PLAIN LOGIN\r\n")?;
        peer.stall(Duration::from_millis(300));
        Ok(())
    })
    .unwrap();
    let config = Config::new(NAME).credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap_err();
    assert!(
        matches!(err.smtp(), Some(SmtpError::StartTlsInjection)),
        "{err:?}"
    );
    assert!(server.wait_finished(1, WAIT));
    let received = server.transcript(0).unwrap();
    assert!(
        received.plain_text().ends_with("STARTTLS\r\n"),
        "{}",
        received.plain_text()
    );
    assert!(received.tls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_over_tls() {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.implicit_tls(Arc::clone(&tls))?;
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &[])?;
        peer.expect("MAIL")?;
        peer.stall(Duration::from_secs(2));
        Ok(())
    })
    .unwrap();
    let options = options(&pki).timeouts(Timeouts::uniform(Duration::from_millis(200)));
    let config = Config::new(NAME).tls(TlsPolicy::Implicit);
    let mut client = Client::connect_to(server.addr(), config, options)
        .await
        .unwrap();
    let err = client.send(envelope(), b"hi\r\n").await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { stage: Stage::Mail }),
        "{err:?}"
    );
    assert!(matches!(client.noop().await, Err(Error::Poisoned)));
}

/// 100 MiB of `LINE`, generated as it is read.
struct Generated {
    left: usize,
    pos: usize,
}

const LINE: &[u8] =
    b".A line of the body, with a dot first so that every line is stuffed......\r\n";
/// 100 MiB rounded down to whole lines, so the body ends in CRLF and nothing is added.
const BIG: usize = (100 << 20) / LINE.len() * LINE.len();

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.left);
        let mut pos = self.pos;
        for b in buf.initialize_unfilled_to(n) {
            *b = LINE[pos];
            pos = (pos + 1) % LINE.len();
        }
        buf.advance(n);
        self.pos = pos;
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_body_streams_over_tls_counted_server_side() {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.implicit_tls(Arc::clone(&tls))?;
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["PIPELINING", "SIZE 200000000"])?;
        peer.expect("MAIL FROM:<me@example.com>")?;
        peer.expect("RCPT TO:<you@example.org>")?;
        peer.expect("DATA")?;
        peer.reply("250 OK\n250 OK\n354 go")?;
        let mut bytes = 0usize;
        let mut pos = 0usize;
        loop {
            let line = peer.line()?;
            if line == b"." {
                break;
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            for &b in line.iter().chain(b"\r\n") {
                assert_eq!(b, LINE[pos], "byte {bytes} differs");
                pos = (pos + 1) % LINE.len();
                bytes += 1;
            }
        }
        assert_eq!(bytes, BIG);
        peer.reply(&format!("250 2.0.0 {bytes} bytes queued"))?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let config = Config::new(NAME).tls(TlsPolicy::Implicit);
    let mut client = Client::connect_to(server.addr(), config, options(&pki))
        .await
        .unwrap();
    let body = Generated { left: BIG, pos: 0 };
    let delivery = client.send_reader(envelope(), body).await.unwrap();
    assert!(delivery.reply().to_string().contains("bytes queued"));
    client.quit().await.unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.errors(), vec![None]);
}
