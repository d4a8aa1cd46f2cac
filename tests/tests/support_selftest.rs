//! Proves the test support works without smtp-proto: every server here is
//! driven by a tiny hand-written client (std TcpStream + rustls).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use smtp_tests::{
    exchange_online, self_signed, Aiosmtpd, AiosmtpdOptions, ExchangeOptions, NodeSmtpServer,
    NodeSmtpServerOptions, Peer, Postfix, PostfixOptions, ScriptedServer, SmtpSink,
    SmtpSinkOptions, TestPki,
};

const WAIT: Duration = Duration::from_secs(10);

/// The body every message test sends (already dot-stuffed) and what the
/// server must store.
const BODY_WIRE: &[u8] =
    b"From: me@example.com\r\nSubject: hi\r\n\r\n..leading dot\r\n...two\r\nend\r\n.\r\n";
const BODY_STORED: &[u8] =
    b"From: me@example.com\r\nSubject: hi\r\n\r\n.leading dot\r\n..two\r\nend\r\n";

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

/// A minimal SMTP client: write lines, read whole replies.
struct Client {
    conn: Conn,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Self {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        Self {
            conn: Conn::Plain(sock),
            buf: Vec::new(),
        }
    }

    fn connect_tls(port: u16, config: Arc<ClientConfig>, name: &str) -> io::Result<Self> {
        let mut c = Self::connect(port);
        c.tls(config, name)?;
        Ok(c)
    }

    fn tls(&mut self, config: Arc<ClientConfig>, name: &str) -> io::Result<()> {
        let Conn::Plain(mut sock) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            panic!("already TLS");
        };
        assert!(self.buf.is_empty(), "plaintext left before TLS");
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = ClientConnection::new(config, name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        self.conn = Conn::Tls(Box::new(StreamOwned::new(conn, sock)));
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) {
        match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes).unwrap(),
            Conn::Tls(s) => {
                s.write_all(bytes).unwrap();
                s.flush().unwrap();
            }
            Conn::Gone => panic!("gone"),
        }
    }

    fn read_line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return String::from_utf8_lossy(&line).into_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = match &mut self.conn {
                Conn::Plain(s) => s.read(&mut chunk).unwrap(),
                Conn::Tls(s) => s.read(&mut chunk).unwrap(),
                Conn::Gone => panic!("gone"),
            };
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One whole reply, lines joined (each ends in CRLF).
    fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let line = self.read_line();
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let last = line.as_bytes().get(3) != Some(&b'-');
            out.push_str(&line);
            if last {
                return out;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

fn client_config(pki: &TestPki) -> Arc<ClientConfig> {
    pki.client_config().unwrap()
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

// ------------------------------------------------------------ ScriptedServer

#[test]
fn scripted_server_records_both_sides_of_starttls() {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&["localhost"]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.reply("220 scripted ESMTP")?;
        peer.expect("EHLO ")?;
        peer.reply("250-scripted\n250 STARTTLS")?;
        peer.expect("starttls")?;
        peer.reply("220 go ahead")?;
        peer.start_tls(tls.clone())?;
        assert!(peer.is_tls());
        peer.expect("EHLO ")?;
        peer.reply("250 scripted")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();

    let mut c = Client::connect(server.port());
    assert_eq!(c.reply(), "220 scripted ESMTP\r\n");
    assert_eq!(c.cmd("EHLO plain"), "250-scripted\r\n250 STARTTLS\r\n");
    assert_eq!(c.cmd("STARTTLS"), "220 go ahead\r\n");
    c.tls(client_config(&pki), "localhost").unwrap();
    assert_eq!(c.cmd("EHLO secret"), "250 scripted\r\n");
    assert_eq!(c.cmd("QUIT"), "221 bye\r\n");
    drop(c);

    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.connections(), 1);
    let t = server.transcript(0).unwrap();
    assert_eq!(t.plain, b"EHLO plain\r\nSTARTTLS\r\n");
    assert_eq!(t.tls, b"EHLO secret\r\nQUIT\r\n");
    assert_eq!(server.received(), vec![t]);
    assert_eq!(server.errors(), vec![None]);
}

#[test]
fn scripted_server_keeps_bytes_pipelined_after_starttls() {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&["localhost"]).unwrap().server_config().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.reply("220 scripted")?;
        peer.expect("STARTTLS")?;
        *seen2.lock().unwrap() = peer.buffered().to_vec();
        peer.reply("220 go ahead")?;
        peer.start_tls(tls.clone())
    })
    .unwrap();

    let mut c = Client::connect(server.port());
    c.reply();
    // A broken client: a command right behind STARTTLS, in plaintext.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n");
    assert_eq!(c.reply(), "220 go ahead\r\n");
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(*seen.lock().unwrap(), b"MAIL FROM:<injected@x>\r\n");
    let t = server.transcript(0).unwrap();
    assert_eq!(t.plain, b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n");
    assert!(t.tls.is_empty());
    // The bytes went to the handshake, which failed on them.
    assert!(server.errors()[0].is_some());
}

#[test]
fn scripted_server_data_bdat_and_injected_reply() {
    let body = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let body2 = body.clone();
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        // A reply and an unsolicited one in the same packet.
        peer.send(b"220 a\r\n250 unsolicited\r\n")?;
        peer.expect("DATA")?;
        peer.reply("354 go")?;
        let data = peer.read_data()?;
        peer.reply("250 ok")?;
        peer.expect("BDAT 4 LAST")?;
        let chunk = peer.read_exact_bytes(4)?;
        *body2.lock().unwrap() = (data, chunk);
        peer.reply("250 ok")?;
        // The line bound.
        let err = peer.line().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        Ok(())
    })
    .unwrap();
    let mut c = Client::connect(server.port());
    assert_eq!(c.reply(), "220 a\r\n");
    assert_eq!(c.reply(), "250 unsolicited\r\n");
    assert_eq!(c.cmd("DATA"), "354 go\r\n");
    c.send(BODY_WIRE);
    assert_eq!(c.reply(), "250 ok\r\n");
    c.send(b"BDAT 4 LAST\r\n.\r\n\n");
    assert_eq!(c.reply(), "250 ok\r\n");
    c.send(&vec![b'x'; 70 * 1024]);
    assert!(server.wait_finished(1, WAIT));
    let (data, chunk) = body.lock().unwrap().clone();
    assert_eq!(data, BODY_STORED);
    assert_eq!(chunk, b".\r\n\n");
}

#[test]
fn scripted_server_serve_messages_and_read_until_closed() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let bodies2 = bodies.clone();
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        let index = peer.index();
        peer.serve_messages(&["PIPELINING", "8BITMIME"], |peer, n, body| {
            bodies2.lock().unwrap().push((index, n, body));
            if index == 1 {
                // The second connection keeps its first message unanswered
                // and waits for the client to hang up.
                return peer.read_until_closed().map(|()| false);
            }
            peer.reply(&format!("250 queued {n}"))?;
            Ok(true)
        })
    })
    .unwrap();

    let mut c = Client::connect(server.port());
    assert_eq!(c.reply(), "220 mail.test ESMTP\r\n");
    assert_eq!(
        c.cmd("EHLO me"),
        "250-mail.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    );
    // Pipelined: the replies come in order.
    c.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    assert_eq!(c.reply(), "250 2.0.0 OK\r\n");
    assert_eq!(c.reply(), "250 2.0.0 OK\r\n");
    assert_eq!(c.reply(), "354 go ahead\r\n");
    c.send(BODY_WIRE);
    assert_eq!(c.reply(), "250 queued 0\r\n");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert_eq!(c.cmd("HELP"), "500 5.5.1 unknown command\r\n");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 bye\r\n");
    assert!(server.wait_finished(1, WAIT));

    let mut c = Client::connect(server.port());
    c.reply();
    c.cmd("EHLO me");
    c.cmd("MAIL FROM:<a@x>");
    c.cmd("RCPT TO:<b@x>");
    c.cmd("DATA");
    c.send(b"one\r\n.\r\n");
    c.send(b"after the end\r\n");
    // Still open: the handler is still reading.
    assert!(!server.wait_finished(2, Duration::from_millis(100)));
    drop(c);
    assert!(server.wait_finished(2, WAIT));
    assert_eq!(server.errors(), vec![None, None]);
    assert!(server
        .transcript(1)
        .unwrap()
        .plain_text()
        .ends_with("DATA\r\none\r\n.\r\nafter the end\r\n"));
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![(0, 0, BODY_STORED.to_vec()), (1, 0, b"one\r\n".to_vec())]
    );
}

// ---------------------------------------------------------------------- certs

fn handshake(pki: &TestPki, cert: &smtp_tests::ServerCert, name: &str) -> io::Result<()> {
    let tls = cert.server_config()?;
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.implicit_tls(tls.clone())?;
        peer.reply("220 tls")
    })?;
    let mut c = Client::connect_tls(server.port(), client_config(pki), name)?;
    assert_eq!(c.reply(), "220 tls\r\n");
    Ok(())
}

#[test]
fn valid_leaf_is_accepted_for_dns_and_ip_names() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost", "127.0.0.1"]).unwrap();
    assert_eq!(cert.chain.len(), 2);
    handshake(&pki, &cert, "localhost").unwrap();
    handshake(&pki, &cert, "127.0.0.1").unwrap();
    let err = handshake(&pki, &cert, "other.example").unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn expired_and_self_signed_certificates_are_refused() {
    let pki = TestPki::new().unwrap();
    let expired = pki.expired_leaf(&["localhost"]).unwrap();
    let err = handshake(&pki, &expired, "localhost").unwrap_err();
    assert!(err.to_string().contains("certificate expired"), "{err}");

    let own = self_signed(&["localhost"]).unwrap();
    let err = handshake(&pki, &own, "localhost").unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn pem_files_round_trip() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost"]).unwrap();
    let dir = smtp_tests::peers::TempDir::new("smtp-tests-pem-").unwrap();
    let (c, k) = cert.write_pem(dir.path()).unwrap();
    let back = smtp_tests::ServerCert::from_pem(
        &std::fs::read_to_string(c).unwrap(),
        &std::fs::read_to_string(k).unwrap(),
    )
    .unwrap();
    assert_eq!(back.chain, cert.chain);
    assert_eq!(back.key.secret_der(), cert.key.secret_der());
}

// ------------------------------------------------------------ Exchange Online

fn exchange(pki: &TestPki) -> ExchangeOptions {
    let tls = pki
        .leaf(&["localhost", "127.0.0.1"])
        .unwrap()
        .server_config()
        .unwrap();
    ExchangeOptions::new(tls)
        .user("me@example.com", "app-password")
        .token("me@example.com", "tok123")
}

fn ehlo_keywords(reply: &str) -> Vec<String> {
    reply
        .lines()
        .skip(1)
        .map(|l| l[4..].to_owned())
        .collect::<Vec<_>>()
}

#[test]
fn exchange_online_full_path() {
    let pki = TestPki::new().unwrap();
    let (handler, store) = exchange_online(exchange(&pki));
    let server = ScriptedServer::start(handler).unwrap();
    let mut c = Client::connect(server.port());

    let greeting = c.reply();
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(greeting.ends_with(" Microsoft ESMTP MAIL Service ready\r\n"));
    let ehlo = c.cmd("EHLO client.example");
    assert_eq!(
        ehlo_keywords(&ehlo),
        [
            "SIZE 157286400",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "8BITMIME",
            "BINARYMIME",
            "CHUNKING",
            "SMTPUTF8"
        ]
    );
    assert!(ehlo.contains("Hello [127.0.0.1]"));
    assert_eq!(
        c.cmd("AUTH LOGIN"),
        "504 5.7.4 Unrecognized authentication type\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>"),
        "530 5.7.57 Client not authenticated to send mail\r\n"
    );
    assert_eq!(c.cmd("STARTTLS"), "220 2.0.0 SMTP server ready\r\n");
    c.tls(client_config(&pki), "localhost").unwrap();

    let ehlo = c.cmd("EHLO client.example");
    assert_eq!(
        ehlo_keywords(&ehlo),
        [
            "SIZE 157286400",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "AUTH LOGIN XOAUTH2",
            "8BITMIME",
            "BINARYMIME",
            "CHUNKING",
            "SMTPUTF8"
        ]
    );
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>"),
        "530 5.7.57 Client not authenticated to send mail\r\n"
    );
    assert_eq!(
        c.cmd("AUTH PLAIN"),
        "504 5.7.4 Unrecognized authentication type\r\n"
    );
    // LOGIN with a wrong password, then the right one.
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64("me@example.com")), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(
        c.cmd(&b64("wrong")),
        "535 5.7.3 Authentication unsuccessful\r\n"
    );
    assert_eq!(
        c.cmd(&format!("AUTH LOGIN {}", b64("me@example.com"))),
        "535 5.7.3 Authentication unsuccessful\r\n"
    );
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64("me@example.com")), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(
        c.cmd(&b64("app-password")),
        "235 2.7.0 Authentication successful\r\n"
    );

    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com> SIZE=90"),
        "250 2.1.0 Sender OK\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<you@example.org>"),
        "250 2.1.5 Recipient OK\r\n"
    );
    assert!(c
        .cmd("RCPT TO:<reject-me@example.org>")
        .starts_with("550 5.1.10 RESOLVER.ADR.RecipientNotFound"));
    assert_eq!(
        c.cmd("DATA"),
        "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    c.send(BODY_WIRE);
    let queued = c.reply();
    assert!(queued.starts_with("250 2.0.0 OK <"), "{queued}");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 OK\r\n");
    assert_eq!(
        c.cmd("QUIT"),
        "221 2.0.0 Service closing transmission channel\r\n"
    );

    let messages = store.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.from, "me@example.com");
    assert_eq!(m.to, ["you@example.org"]);
    assert_eq!(m.data, BODY_STORED);
    assert!(m.tls);
    assert_eq!(
        m.auth,
        Some(("LOGIN".to_owned(), "me@example.com".to_owned()))
    );
    let attempts = store.auth_attempts();
    assert_eq!(attempts.len(), 3);
    assert!(!attempts[0].success && !attempts[1].success && attempts[2].success);
    assert!(attempts.iter().all(|a| a.tls && a.mechanism == "LOGIN"));

    assert!(server.wait_finished(1, WAIT));
    let t = server.transcript(0).unwrap();
    assert_eq!(
        t.plain_text(),
        "EHLO client.example\r\nAUTH LOGIN\r\nMAIL FROM:<me@example.com>\r\nSTARTTLS\r\n"
    );
    assert!(t.tls_text().contains(&b64("app-password")));
}

#[test]
fn exchange_online_xoauth2_pipelining_bdat_and_limits() {
    let pki = TestPki::new().unwrap();
    let (handler, store) = exchange_online(exchange(&pki).size_limit(1000));
    let server = ScriptedServer::start(handler).unwrap();
    let mut c = Client::connect(server.port());
    c.reply();
    assert!(c.cmd("EHLO x").contains("250-SIZE 1000\r\n"));
    c.cmd("STARTTLS");
    c.tls(client_config(&pki), "localhost").unwrap();
    c.cmd("EHLO x");

    let bad = b64("user=me@example.com\x01auth=Bearer nope\x01\x01");
    let challenge = c.cmd(&format!("AUTH XOAUTH2 {bad}"));
    let json = B64.decode(&challenge.trim_end().as_bytes()[4..]).unwrap();
    assert!(String::from_utf8(json)
        .unwrap()
        .contains("\"status\":\"401\""));
    assert_eq!(c.cmd(""), "535 5.7.3 Authentication unsuccessful\r\n");
    let good = b64("user=me@example.com\x01auth=Bearer tok123\x01\x01");
    assert_eq!(
        c.cmd(&format!("AUTH XOAUTH2 {good}")),
        "235 2.7.0 Authentication successful\r\n"
    );

    // Everything pipelined in one write, BDAT chunks included.
    c.send(
        b"MAIL FROM:<me@example.com> BODY=BINARYMIME\r\nRCPT TO:<a@x>\r\nRCPT TO:<rejected@x>\r\n\
RCPT TO:<b@x>\r\nBDAT 6\r\nline1\nBDAT 6 LAST\r\n\r\n.\r\nx",
    );
    assert_eq!(c.reply(), "250 2.1.0 Sender OK\r\n");
    assert_eq!(c.reply(), "250 2.1.5 Recipient OK\r\n");
    assert!(c.reply().starts_with("550 5.1.10 "));
    assert_eq!(c.reply(), "250 2.1.5 Recipient OK\r\n");
    assert!(c.reply().starts_with("250 2.0.0 6 bytes"));
    assert!(c.reply().starts_with("250 2.0.0 OK <"));

    // SIZE= over the limit, then an actual body over it.
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com> SIZE=1001"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    c.cmd("MAIL FROM:<me@example.com>");
    c.cmd("RCPT TO:<a@x>");
    assert!(c.cmd("DATA").starts_with("354 "));
    c.send(&[&vec![b'y'; 1200][..], b"\r\n.\r\n"].concat());
    assert!(c.reply().starts_with("552 5.3.4 "));
    assert_eq!(c.cmd("RSET"), "250 2.0.0 Resetting\r\n");
    c.cmd("QUIT");

    let messages = store.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ["a@x", "b@x"]);
    assert_eq!(messages[0].data, b"line1\n\r\n.\r\nx");
    assert_eq!(
        messages[0].auth,
        Some(("XOAUTH2".to_owned(), "me@example.com".to_owned()))
    );
    let attempts = store.auth_attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].mechanism, "XOAUTH2");
    assert!(!attempts[0].success && attempts[1].success);
}

#[test]
fn exchange_online_implicit_tls() {
    let pki = TestPki::new().unwrap();
    let (handler, store) = exchange_online(exchange(&pki).implicit_tls(true));
    let server = ScriptedServer::start(handler).unwrap();
    let mut c = Client::connect_tls(server.port(), client_config(&pki), "127.0.0.1").unwrap();
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO x");
    assert!(ehlo.contains("250-AUTH LOGIN XOAUTH2\r\n"));
    assert!(!ehlo.contains("STARTTLS"));
    c.cmd("AUTH LOGIN");
    c.cmd(&b64("me@example.com"));
    assert!(c.cmd(&b64("app-password")).starts_with("235 "));
    c.cmd("MAIL FROM:<>");
    c.cmd("RCPT TO:<you@example.org>");
    c.cmd("DATA");
    c.send(BODY_WIRE);
    assert!(c.reply().starts_with("250 "));
    let m = store.wait_for_messages(1, WAIT);
    assert_eq!(m[0].from, "");
    assert_eq!(m[0].data, BODY_STORED);
    assert!(m[0].tls);
    c.cmd("QUIT");
    drop(c);
    assert!(server.wait_finished(1, WAIT));
    assert!(server.transcript(0).unwrap().plain.is_empty());
}

// ------------------------------------------------------------ real servers

/// AUTH LOGIN answering whatever the prompts are (aiosmtpd's end in NUL).
fn auth_login(c: &mut Client, user: &str, password: &str) -> (String, String) {
    let p1 = c.cmd("AUTH LOGIN");
    assert!(p1.starts_with("334 "), "{p1}");
    let p2 = c.cmd(&b64(user));
    assert!(p2.starts_with("334 "), "{p2}");
    let done = c.cmd(&b64(password));
    assert!(done.starts_with("235 "), "{done}");
    (p1, p2)
}

fn send_message(c: &mut Client) {
    let r = c.cmd("MAIL FROM:<me@example.com>");
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("RCPT TO:<you@example.org>");
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("RCPT TO:<them@example.net>");
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("DATA");
    assert!(r.starts_with("354"), "{r}");
    c.send(BODY_WIRE);
    let r = c.reply();
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("QUIT");
    assert!(r.starts_with("221"), "{r}");
}

fn check_stored(messages: &[smtp_tests::ReceivedMessage]) {
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].from, "me@example.com");
    assert_eq!(messages[0].to, ["you@example.org", "them@example.net"]);
    assert_eq!(
        String::from_utf8_lossy(&messages[0].data),
        String::from_utf8_lossy(BODY_STORED)
    );
}

#[test]
fn aiosmtpd_starttls_auth_login() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost"]).unwrap();
    let server = Aiosmtpd::start(&AiosmtpdOptions::new(cert, "me@example.com", "pw")).unwrap();
    let mut c = Client::connect(server.port());
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.cmd("MAIL FROM:<me@example.com>").starts_with("530"));
    assert!(c.cmd("STARTTLS").starts_with("220"));
    c.tls(client_config(&pki), "localhost").unwrap();
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("AUTH LOGIN\r\n"), "{ehlo}");
    assert!(!ehlo.contains("PLAIN"), "{ehlo}");
    let (p1, p2) = auth_login(&mut c, "me@example.com", "pw");
    // aiosmtpd's prompts end in a NUL byte.
    assert_eq!(
        B64.decode(&p1.trim_end().as_bytes()[4..]).unwrap(),
        b"User Name\0"
    );
    assert_eq!(
        B64.decode(&p2.trim_end().as_bytes()[4..]).unwrap(),
        b"Password\0"
    );
    send_message(&mut c);
    check_stored(&server.wait_for_messages(1, WAIT).unwrap());
}

#[test]
fn aiosmtpd_implicit_tls() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["127.0.0.1"]).unwrap();
    let mut opts = AiosmtpdOptions::new(cert, "me@example.com", "pw");
    opts.implicit_tls = true;
    let server = Aiosmtpd::start(&opts).unwrap();
    let mut c = Client::connect_tls(server.port(), client_config(&pki), "127.0.0.1").unwrap();
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("AUTH LOGIN\r\n"), "{ehlo}");
    auth_login(&mut c, "me@example.com", "pw");
    send_message(&mut c);
    check_stored(&server.wait_for_messages(1, WAIT).unwrap());
}

#[test]
fn node_smtp_server_starttls_auth_login() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost"]).unwrap();
    let mut opts = NodeSmtpServerOptions::new(cert, "me@example.com", "pw");
    opts.token = Some("tok".to_owned());
    let server = NodeSmtpServer::start(&opts).unwrap();
    let mut c = Client::connect(server.port());
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(ehlo.contains("PIPELINING"), "{ehlo}");
    // Unlike Exchange, smtp-server advertises AUTH before TLS, then refuses it.
    assert!(ehlo.contains("AUTH LOGIN XOAUTH2"), "{ehlo}");
    let r = c.cmd("AUTH LOGIN");
    assert!(r.starts_with("538"), "{r}");
    assert!(c.cmd("STARTTLS").starts_with("220"));
    c.tls(client_config(&pki), "localhost").unwrap();
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("AUTH LOGIN XOAUTH2\r\n"), "{ehlo}");
    assert!(ehlo.contains("SIZE 157286400"), "{ehlo}");
    assert!(c.cmd("MAIL FROM:<me@example.com>").starts_with("530"));
    auth_login(&mut c, "me@example.com", "pw");
    send_message(&mut c);
    check_stored(&server.wait_for_messages(1, WAIT).unwrap());
}

#[test]
fn smtp_sink_plaintext() {
    let server = SmtpSink::start(&SmtpSinkOptions::default()).unwrap();
    let mut c = Client::connect(server.port());
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("PIPELINING"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c
        .cmd(&format!("AUTH PLAIN {}", b64("\0u\0p")))
        .starts_with("250"));
    send_message(&mut c);
    check_stored(&server.wait_for_messages(1, WAIT).unwrap());
}

#[test]
fn smtp_sink_hides_keywords() {
    let opts = SmtpSinkOptions {
        no_pipelining: true,
        no_auth: true,
        no_enhanced_status_codes: true,
        hostname: Some("sink.test".to_owned()),
        ..SmtpSinkOptions::default()
    };
    let server = SmtpSink::start(&opts).unwrap();
    let mut c = Client::connect(server.port());
    assert!(c.reply().starts_with("220 sink.test"));
    let ehlo = c.cmd("EHLO client.example");
    for hidden in ["PIPELINING", "AUTH", "ENHANCEDSTATUSCODES"] {
        assert!(!ehlo.contains(hidden), "{ehlo}");
    }
    assert!(ehlo.contains("8BITMIME"), "{ehlo}");
}

#[test]
fn postfix_starttls_bdat_data_and_refused_recipients() {
    let pki = TestPki::new().unwrap();
    let opts = PostfixOptions {
        cert: Some(pki.leaf(&["localhost"]).unwrap()),
        refused_recipients: vec!["nobody@example.org".to_owned()],
        ..PostfixOptions::default()
    };
    let server = Postfix::start(&opts).unwrap();
    let mut c = Client::connect(server.port());
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.cmd("STARTTLS").starts_with("220"));
    c.tls(client_config(&pki), "localhost").unwrap();
    let ehlo = c.cmd("EHLO client.example");
    for keyword in ["CHUNKING", "PIPELINING", "SIZE 10240000", "8BITMIME"] {
        assert!(ehlo.contains(keyword), "{ehlo}");
    }
    // BDAT: the body as it is, dots and all.
    assert!(c.cmd("MAIL FROM:<me@example.com>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<you@example.org>").starts_with("250"));
    let r = c.cmd("RCPT TO:<nobody@example.org>");
    assert!(r.starts_with("550 5.1.1 <nobody@example.org>"), "{r}");
    assert!(c.cmd("RCPT TO:<them@example.org>").starts_with("250"));
    c.send(format!("BDAT {} LAST\r\n", BODY_STORED.len()).as_bytes());
    c.send(BODY_STORED);
    let r = c.reply();
    assert!(r.starts_with("250 "), "{r}");
    // DATA: dot-stuffed on the wire, a null reverse path.
    assert!(c.cmd("MAIL FROM:<>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<you@example.org>").starts_with("250"));
    let r = c.cmd("RCPT TO:<them@example.net>");
    assert!(r.starts_with("554 5.7.1"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(BODY_WIRE);
    assert!(c.reply().starts_with("250 "));
    assert!(c.cmd("QUIT").starts_with("221"));
    let messages = server.wait_for_messages(2, WAIT).unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].from, "me@example.com");
    assert_eq!(messages[0].to, ["them@example.org", "you@example.org"]);
    assert_eq!(messages[1].from, "");
    assert_eq!(messages[1].to, ["you@example.org"]);
    for m in &messages {
        assert_eq!(
            String::from_utf8_lossy(&m.data),
            String::from_utf8_lossy(BODY_STORED)
        );
    }
    let sessions = server.wait_for_sessions(1, WAIT).unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let counts: Vec<(&str, &str)> = sessions[0]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        counts,
        [
            ("bdat", "1"),
            ("commands", "11/13"),
            ("data", "1"),
            ("ehlo", "2"),
            ("mail", "2"),
            ("quit", "1"),
            ("rcpt", "3/5"),
            ("starttls", "1"),
        ]
    );
}

#[test]
fn postfix_hides_keywords_and_limits_size() {
    let opts = PostfixOptions {
        hidden_keywords: vec!["chunking".to_owned(), "starttls".to_owned()],
        message_size_limit: 1000,
        ..PostfixOptions::default()
    };
    let server = Postfix::start(&opts).unwrap();
    let mut c = Client::connect(server.port());
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.contains("SIZE 1000\r\n"), "{ehlo}");
    for hidden in ["CHUNKING", "STARTTLS"] {
        assert!(!ehlo.contains(hidden), "{ehlo}");
    }
    let r = c.cmd("MAIL FROM:<me@example.com> SIZE=1001");
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert!(c.cmd("QUIT").starts_with("221"));
    // The readiness probe's session sent nothing and is not listed.
    let sessions = server.wait_for_sessions(1, WAIT).unwrap();
    assert_eq!(sessions[0].get("mail").unwrap(), "0/1", "{sessions:?}");
    assert!(server.messages().unwrap().is_empty());
}
