//! The blocking client against a rustls server on a loopback socket: STARTTLS,
//! implicit TLS, AUTH over TLS, a certificate for the wrong name, injection.
#![cfg(any(feature = "ring", feature = "aws-lc-rs"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use smtp_blocking::tls::{client_config, TlsRoots};
use smtp_blocking::{
    Address, Client, Config, Credentials, Envelope, Error, Options, Stage, Timeouts, TlsPolicy,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

const CA: &[u8] = include_bytes!("testdata/test-ca.pem");
const CERT: &[u8] = include_bytes!("testdata/server-cert.pem");
const KEY: &[u8] = include_bytes!("testdata/server-key.pem");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "ring")]
    return Arc::new(rustls::crypto::ring::default_provider());
    #[cfg(not(feature = "ring"))]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
}

fn server_config() -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(CERT)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

fn options() -> Options {
    Options::new()
        .tls(client_config(&TlsRoots::Pem(CA.to_vec())).unwrap())
        .timeouts(Timeouts::uniform(Duration::from_secs(5)))
}

enum Conn {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<StreamOwned<ServerConnection, TcpStream>>>),
    Gone,
}

/// The server side of one connection; `received` holds what it read, in
/// plaintext and decrypted alike.
struct Peer {
    conn: Conn,
    received: Vec<u8>,
}

impl Peer {
    fn send(&mut self, text: &str) {
        let result = match &mut self.conn {
            Conn::Plain(r) => r.get_mut().write_all(text.as_bytes()),
            Conn::Tls(r) => r
                .get_mut()
                .write_all(text.as_bytes())
                .and_then(|()| r.get_mut().flush()),
            Conn::Gone => return,
        };
        result.unwrap();
    }

    /// One line, CRLF included; empty at EOF or on an error.
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        let _ = match &mut self.conn {
            Conn::Plain(r) => r.read_until(b'\n', &mut line),
            Conn::Tls(r) => r.read_until(b'\n', &mut line),
            Conn::Gone => return String::new(),
        };
        self.received.extend_from_slice(&line);
        String::from_utf8(line).unwrap()
    }

    fn expect(&mut self, prefix: &str) -> String {
        let line = self.line();
        assert!(
            line.starts_with(prefix),
            "expected {prefix:?}, got {line:?}"
        );
        line
    }

    /// Switches to TLS (after `220` to STARTTLS, or at once for implicit TLS).
    fn accept_tls(&mut self) {
        let Conn::Plain(reader) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            panic!("already TLS");
        };
        assert!(
            reader.buffer().is_empty(),
            "the client sent plaintext after STARTTLS"
        );
        let tcp = reader.into_inner();
        let conn = ServerConnection::new(server_config()).unwrap();
        self.conn = Conn::Tls(Box::new(BufReader::new(StreamOwned::new(conn, tcp))));
    }

    fn ehlo_reply(&mut self, extensions: &[&str]) {
        self.expect("EHLO ");
        let mut lines = vec!["mail.test"];
        lines.extend_from_slice(extensions);
        let last = lines.len() - 1;
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
            .collect();
        self.send(&text);
    }

    /// Reads until the client closes (or an error, or 5 s).
    fn drain(&mut self) {
        let mut rest = Vec::new();
        let _ = match &mut self.conn {
            Conn::Plain(r) => r.read_to_end(&mut rest),
            Conn::Tls(r) => r.read_to_end(&mut rest),
            Conn::Gone => return,
        };
        self.received.extend_from_slice(&rest);
    }
}

fn serve(script: impl FnOnce(&mut Peer) + Send + 'static) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut peer = Peer {
            conn: Conn::Plain(BufReader::new(tcp)),
            received: Vec::new(),
        };
        script(&mut peer);
        String::from_utf8_lossy(&peer.received).into_owned()
    });
    (addr, handle)
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new("you@example.org").unwrap()],
    )
    .unwrap()
}

/// Greeting, plaintext EHLO offering STARTTLS, and the `220`.
fn plaintext_until_starttls(peer: &mut Peer) {
    peer.send("220 mail.test ESMTP\r\n");
    peer.ehlo_reply(&["STARTTLS", "AUTH PLAIN LOGIN"]);
    peer.expect("STARTTLS");
    peer.send("220 2.0.0 go ahead\r\n");
}

#[test]
fn starttls_then_auth_login_then_a_message() {
    let (addr, server) = serve(|peer| {
        plaintext_until_starttls(peer);
        peer.accept_tls();
        peer.ehlo_reply(&["AUTH LOGIN XOAUTH2", "PIPELINING"]);
        peer.expect("AUTH LOGIN");
        peer.send("334 VXNlcm5hbWU6\r\n");
        assert_eq!(peer.line(), "bWVAZXhhbXBsZS5jb20=\r\n");
        peer.send("334 UGFzc3dvcmQ6\r\n");
        assert_eq!(peer.line(), "aHVudGVyMg==\r\n");
        peer.send("235 2.7.0 Authentication successful\r\n");
        peer.expect("MAIL FROM:<me@example.com>");
        peer.expect("RCPT TO:<you@example.org>");
        peer.expect("DATA");
        peer.send("250 OK\r\n250 OK\r\n354 go\r\n");
        assert_eq!(peer.line(), "..hi\r\n");
        assert_eq!(peer.line(), ".\r\n");
        peer.send("250 queued\r\n");
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
        peer.drain();
    });
    // A remote name: the credential guard lets the password go only over TLS.
    let config =
        Config::new("mail.test").credentials(Credentials::password("me@example.com", "hunter2"));
    let mut client = Client::connect_to(addr, config, options()).unwrap();
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism().map(|m| m.as_str()), Some("LOGIN"));
    assert!(client.capabilities().pipelining());
    let delivery = client.send(envelope(), b".hi\n").unwrap();
    assert!(delivery.recipients()[0].accepted());
    client.quit().unwrap();
    let received = server.join().unwrap();
    assert!(!received.contains("hunter2"));
}

#[test]
fn implicit_tls_then_auth_plain() {
    let (addr, server) = serve(|peer| {
        peer.accept_tls();
        peer.send("220 mail.test ESMTP\r\n");
        peer.ehlo_reply(&["AUTH PLAIN LOGIN"]);
        assert_eq!(
            peer.line(),
            "AUTH PLAIN AG1lQGV4YW1wbGUuY29tAGh1bnRlcjI=\r\n"
        );
        peer.send("235 2.7.0 OK\r\n");
        peer.expect("NOOP");
        peer.send("250 OK\r\n");
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
        peer.drain();
    });
    let config = Config::new("mail.test")
        .tls(TlsPolicy::Implicit)
        .credentials(Credentials::password("me@example.com", "hunter2"));
    let mut client = Client::connect_to(addr, config, options()).unwrap();
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism().map(|m| m.as_str()), Some("PLAIN"));
    client.noop().unwrap();
    client.quit().unwrap();
    server.join().unwrap();
}

#[test]
fn a_certificate_for_another_name_is_refused_before_any_credential() {
    let (addr, server) = serve(|peer| {
        plaintext_until_starttls(peer);
        peer.accept_tls();
        peer.drain();
    });
    let config =
        Config::new("other.test").credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(addr, config, options()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
    assert!(err.is_security() && !err.is_transient());
    let received = server.join().unwrap();
    assert!(!received.contains("AUTH"), "{received}");
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let (addr, server) = serve(|peer| {
        peer.accept_tls();
        peer.drain();
    });
    // The bundled Mozilla roots do not know the test CA.
    let options = Options::new().timeouts(Timeouts::uniform(Duration::from_secs(5)));
    let config = Config::new("mail.test").tls(TlsPolicy::Implicit);
    let err = Client::connect_to(addr, config, options).unwrap_err();
    assert!(
        matches!(err, Error::Tls(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );
    assert!(err.is_security());
    server.join().unwrap();
}

#[test]
fn plaintext_injected_after_the_220_is_refused() {
    let (addr, server) = serve(|peer| {
        peer.send("220 mail.test ESMTP\r\n");
        peer.ehlo_reply(&["STARTTLS", "AUTH PLAIN LOGIN"]);
        peer.expect("STARTTLS");
        // One write: the injected reply rides with the 220.
        peer.send("220 2.0.0 go ahead\r\n250-mail.test\r\n250 AUTH PLAIN\r\n");
        peer.drain();
    });
    let config =
        Config::new("mail.test").credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(addr, config, options()).unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(smtp_blocking::smtp_proto::Error::StartTlsInjection)
        ),
        "{err:?}"
    );
    assert!(err.is_security());
    let received = server.join().unwrap();
    assert!(received.ends_with("STARTTLS\r\n"), "{received:?}");
}

#[test]
fn plaintext_injected_later_still_fails_the_upgrade() {
    // The injected bytes come a moment after the 220: the non-blocking check
    // or rustls (which sees no TLS record) refuses them, whichever sees them.
    let (addr, server) = serve(|peer| {
        peer.send("220 mail.test ESMTP\r\n");
        peer.ehlo_reply(&["STARTTLS", "AUTH PLAIN LOGIN"]);
        peer.expect("STARTTLS");
        peer.send("220 2.0.0 go ahead\r\n");
        thread::sleep(Duration::from_millis(20));
        peer.send("250-mail.test\r\n250 AUTH PLAIN\r\n");
        peer.drain();
    });
    let config =
        Config::new("mail.test").credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(addr, config, options()).unwrap_err();
    assert!(err.is_security(), "{err:?}");
    let received = server.join().unwrap();
    assert!(!received.contains("AUTH"), "{received:?}");
}

#[test]
fn starttls_stripped_under_required_sends_no_credential() {
    let (addr, server) = serve(|peer| {
        peer.send("220 mail.test ESMTP\r\n");
        peer.ehlo_reply(&["AUTH PLAIN LOGIN"]);
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
        peer.drain();
    });
    let config =
        Config::new("mail.test").credentials(Credentials::password("me@example.com", "hunter2"));
    let err = Client::connect_to(addr, config, options()).unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(smtp_blocking::smtp_proto::Error::TlsRequired { .. })
        ),
        "{err:?}"
    );
    let received = server.join().unwrap();
    assert!(!received.contains("AUTH"), "{received:?}");
}

#[test]
fn a_stalled_tls_handshake_times_out() {
    let (addr, server) = serve(|peer| {
        plaintext_until_starttls(peer);
        peer.drain(); // never answers the ClientHello
    });
    let options = options().timeouts(
        Timeouts::uniform(Duration::from_secs(5))
            .with(Stage::TlsHandshake, Duration::from_millis(200)),
    );
    let err = Client::connect_to(addr, Config::new("mail.test"), options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: Stage::TlsHandshake
            }
        ),
        "{err:?}"
    );
    server.join().unwrap();
}

#[test]
fn a_large_body_streams_over_tls() {
    const SIZE: usize = 8 << 20;
    let (addr, server) = serve(|peer| {
        peer.accept_tls();
        peer.send("220 mail.test ESMTP\r\n");
        peer.ehlo_reply(&["PIPELINING", "SIZE 100000000"]);
        peer.expect("MAIL FROM:<me@example.com> SIZE=");
        peer.expect("RCPT");
        peer.expect("DATA");
        peer.send("250 OK\r\n250 OK\r\n354 go\r\n");
        let mut bytes = 0;
        loop {
            let line = peer.line();
            assert!(!line.is_empty(), "EOF in DATA");
            if line == ".\r\n" {
                break;
            }
            bytes += line.len();
            peer.received.clear();
        }
        assert_eq!(bytes, SIZE);
        peer.send("250 queued\r\n");
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
    });
    let line = [b'x'; 1022];
    let mut line = line.to_vec();
    line.extend_from_slice(b"\r\n");
    let body = std::iter::repeat(line)
        .take(SIZE / 1024)
        .flatten()
        .collect::<Vec<u8>>();
    let config = Config::new("mail.test").tls(TlsPolicy::Implicit);
    let mut client = Client::connect_to(addr, config, options()).unwrap();
    let envelope = envelope().size(SIZE as u64);
    client.send_reader(envelope, &body[..]).unwrap();
    client.quit().unwrap();
    server.join().unwrap();
}
