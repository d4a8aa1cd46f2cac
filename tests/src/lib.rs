//! A loopback SMTP server with real TLS, for testing SMTP clients.
//!
//! The server side of the smtp-client workspace's integration tests and of
//! `smtp-send demo`, usable in any project's tests (a client built on
//! lettre, mail-send or your own). It does not depend on any SMTP client
//! crate, so a client is never tested against itself.
//!
//! - [`certs`]: a throwaway PKI made with rcgen: a CA ([`TestPki`]), server
//!   certificates it signs (valid or expired), self-signed ones it does not
//!   ([`self_signed`]), and the rustls configurations for both sides;
//! - [`server`]: [`ScriptedServer`], a server on `127.0.0.1` that runs a
//!   [`Handler`] per connection over a [`Peer`] (plaintext, STARTTLS or
//!   implicit TLS, real rustls handshakes) and records every byte the
//!   client sent, split at the TLS boundary ([`Received`]);
//! - [`exchange`]: a ready-made handler that behaves like Exchange Online's
//!   submission server ([`exchange_online`]): STARTTLS required,
//!   `AUTH LOGIN XOAUTH2` offered only over TLS, Exchange's reply texts,
//!   BDAT, a size limit, and a [`MailStore`] of what it accepted; with
//!   [`ExchangeOptions::verify_jwt`] it accepts XOAUTH2 bearer tokens that
//!   are JWTs signed by an OAuth2 server's keys and not expired ([`jwt`]);
//! - `peers` (feature `peers`, off by default): launchers of real
//!   third-party servers (aiosmtpd, nodemailer smtp-server, Postfix,
//!   oauth2-mock-server) for the
//!   workspace's own tests; they run what the repository's `tests/setup.sh`
//!   installs, so they only work from a checkout of the repository.
//!
//! # Example: an Exchange-like server
//!
//! A client that trusts the throwaway CA (and nothing else) delivers one
//! message over STARTTLS with AUTH LOGIN. Here a few lines of rustls stand in
//! for the client under test; with lettre's `smtp-transport`, the same CA is
//! trusted with `Certificate::from_der(pki.ca_der().to_vec())` added to
//! `TlsParameters::builder("localhost".into())`, and the transport is
//! `SmtpTransport::builder_dangerous("127.0.0.1").port(server.port())`.
//!
//! ```
//! use std::io::{BufRead, BufReader, Read, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use rustls::pki_types::ServerName;
//! use rustls::{ClientConnection, StreamOwned};
//! use smtp_tests::{exchange_online, ExchangeOptions, ScriptedServer, TestPki};
//!
//! /// Writes a command, reads the whole reply, returns its last line.
//! fn command<S: Read + Write>(stream: &mut BufReader<S>, line: &str) -> std::io::Result<String> {
//!     stream.get_mut().write_all(line.as_bytes())?;
//!     stream.get_mut().flush()?;
//!     reply(stream)
//! }
//!
//! fn reply(stream: &mut impl BufRead) -> std::io::Result<String> {
//!     loop {
//!         let mut line = String::new();
//!         stream.read_line(&mut line)?;
//!         if line.as_bytes().get(3) != Some(&b'-') {
//!             return Ok(line);
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A CA for this test only, and a certificate it signs for `localhost`.
//! let pki = TestPki::new()?;
//! let cert = pki.leaf(&["localhost"])?;
//! let options = ExchangeOptions::new(cert.server_config()?).user("me@example.com", "secret");
//! let (handler, store) = exchange_online(options);
//! let server = ScriptedServer::start(handler)?;
//!
//! // The client: plaintext up to STARTTLS, then TLS trusting only the CA.
//! let tcp = TcpStream::connect(server.addr())?;
//! let mut plain = BufReader::new(tcp);
//! assert!(reply(&mut plain)?.starts_with("220 "));
//! // Before TLS: STARTTLS, and no AUTH offered.
//! assert!(command(&mut plain, "EHLO client.example\r\n")?.starts_with("250 "));
//! assert!(command(&mut plain, "AUTH LOGIN\r\n")?.starts_with("504 5.7.4"));
//! assert!(command(&mut plain, "STARTTLS\r\n")?.starts_with("220 "));
//!
//! let tls = ClientConnection::new(pki.client_config()?, ServerName::try_from("localhost")?)?;
//! let mut tls = BufReader::new(StreamOwned::new(tls, plain.into_inner()));
//! assert!(command(&mut tls, "EHLO client.example\r\n")?.starts_with("250 "));
//! // LOGIN prompts `Username:` and `Password:` (base64), like Exchange.
//! assert_eq!(command(&mut tls, "AUTH LOGIN\r\n")?, "334 VXNlcm5hbWU6\r\n");
//! assert_eq!(command(&mut tls, "bWVAZXhhbXBsZS5jb20=\r\n")?, "334 UGFzc3dvcmQ6\r\n");
//! assert!(command(&mut tls, "c2VjcmV0\r\n")?.starts_with("235 "));
//! assert!(command(&mut tls, "MAIL FROM:<me@example.com>\r\n")?.starts_with("250 "));
//! // A recipient whose local part starts with `reject` is refused.
//! assert!(command(&mut tls, "RCPT TO:<reject-bob@example.org>\r\n")?.starts_with("550 "));
//! assert!(command(&mut tls, "RCPT TO:<alice@example.org>\r\n")?.starts_with("250 "));
//! assert!(command(&mut tls, "DATA\r\n")?.starts_with("354 "));
//! assert!(command(&mut tls, "Subject: hi\r\n\r\n..dot\r\n.\r\n")?.starts_with("250 "));
//! assert!(command(&mut tls, "QUIT\r\n")?.starts_with("221 "));
//!
//! // What the server stored, and every byte the client sent.
//! let messages = store.wait_for_messages(1, Duration::from_secs(5));
//! assert_eq!(messages[0].to, ["alice@example.org"]);
//! assert_eq!(messages[0].data, b"Subject: hi\r\n\r\n.dot\r\n");
//! assert!(messages[0].tls);
//! assert_eq!(messages[0].auth, Some(("LOGIN".into(), "me@example.com".into())));
//! assert!(server.wait_finished(1, Duration::from_secs(5)));
//! let received = server.transcript(0).ok_or("no connection")?;
//! assert_eq!(received.plain_text(), "EHLO client.example\r\nAUTH LOGIN\r\nSTARTTLS\r\n");
//! assert!(received.tls_text().starts_with("EHLO client.example\r\nAUTH LOGIN\r\n"));
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a scripted server
//!
//! A [`Handler`] plays the server's side line by line, so a test can send
//! exactly the replies it needs (a malformed one, a `421` in the middle, a
//! stall) and then check what the client did and did not send.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use smtp_tests::ScriptedServer;
//!
//! # fn main() -> std::io::Result<()> {
//! let server = ScriptedServer::start_fn(|peer| {
//!     peer.reply("220 test.invalid ESMTP")?;
//!     peer.expect("EHLO ")?;
//!     peer.reply("250-test.invalid\n250 PIPELINING")?;
//!     peer.expect("MAIL FROM:")?;
//!     peer.reply("421 4.3.2 Shutting down")
//! })?;
//!
//! // The client under test goes here.
//! let mut client = TcpStream::connect(server.addr())?;
//! let mut replies = BufReader::new(client.try_clone()?);
//! let mut line = String::new();
//! replies.read_line(&mut line)?;
//! client.write_all(b"EHLO client.example\r\n")?;
//! replies.read_line(&mut line)?;
//! replies.read_line(&mut line)?;
//! client.write_all(b"MAIL FROM:<me@example.com>\r\n")?;
//! replies.read_line(&mut line)?;
//! assert!(line.ends_with("421 4.3.2 Shutting down\r\n"));
//!
//! assert!(server.wait_finished(1, Duration::from_secs(5)));
//! assert_eq!(server.errors(), [None]);
//! let sent = server.transcript(0).map(|r| r.plain_text());
//! assert_eq!(sent.as_deref(), Some("EHLO client.example\r\nMAIL FROM:<me@example.com>\r\n"));
//! # Ok(())
//! # }
//! ```
//!
//! The server binds `127.0.0.1` only and shuts down when dropped; each
//! [`Peer`] starts with a 30-second read timeout so a hung test fails.
//! rustls uses the ring provider, passed explicitly ([`certs::provider`]),
//! so a process with several providers compiled in works too.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod certs;
pub mod exchange;
pub mod jwt;
#[cfg(feature = "peers")]
#[cfg_attr(docsrs, doc(cfg(feature = "peers")))]
pub mod peers;
pub mod proxy;
pub mod server;

pub use certs::{self_signed, ServerCert, TestPki};
pub use exchange::{
    exchange_online, AuthAttempt, ExchangeOptions, MailStore, StoredMessage, TokenCheck,
    EXCHANGE_SIZE_LIMIT,
};
#[cfg(feature = "peers")]
pub use peers::{
    Aiosmtpd, AiosmtpdOptions, NodeSmtpServer, NodeSmtpServerOptions, OAuth2Mock,
    OAuth2MockOptions, Postfix, PostfixOptions, ReceivedMessage, SmtpSink, SmtpSinkOptions,
    TokenRequest, POSTFIX_DOMAIN,
};
pub use proxy::DelayProxy;
pub use server::{Handler, Peer, Received, ScriptedServer};
