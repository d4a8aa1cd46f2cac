//! The server side of the workspace's integration tests and of the
//! in-process demo, independent of `smtp-proto` (so the client is never
//! tested against itself):
//!
//! - [`certs`]: a throwaway CA, CA-signed (valid or expired) and
//!   self-signed server certificates, rustls configurations;
//! - [`server`]: [`ScriptedServer`], a loopback server running a handler per
//!   connection over a [`Peer`] (plaintext, STARTTLS or implicit TLS) that
//!   records every byte the client sent, split at the TLS boundary;
//! - [`exchange`]: an Exchange-Online-like behaviour for it
//!   ([`exchange_online`]) with a [`MailStore`];
//! - [`peers`]: real third-party servers (aiosmtpd, nodemailer smtp-server,
//!   Postfix smtp-sink, a private Postfix instance) as child processes;
//!   install them with `bash tests/setup.sh`.
//!
//! ```no_run
//! use smtp_tests::{exchange_online, ExchangeOptions, ScriptedServer, TestPki};
//!
//! # fn main() -> std::io::Result<()> {
//! let pki = TestPki::new()?;
//! let cert = pki.leaf(&["localhost", "127.0.0.1"])?;
//! let opts = ExchangeOptions::new(cert.server_config()?).user("me@example.com", "secret");
//! let (handler, store) = exchange_online(opts);
//! let server = ScriptedServer::start(handler)?;
//! // ... connect a client to server.addr(), trusting pki.ca_der() ...
//! # let _ = (server, store);
//! # Ok(())
//! # }
//! ```

pub mod certs;
pub mod exchange;
pub mod peers;
pub mod server;

pub use certs::{self_signed, ServerCert, TestPki};
pub use exchange::{
    exchange_online, AuthAttempt, ExchangeOptions, MailStore, StoredMessage, EXCHANGE_SIZE_LIMIT,
};
pub use peers::{
    Aiosmtpd, AiosmtpdOptions, NodeSmtpServer, NodeSmtpServerOptions, Postfix, PostfixOptions,
    ReceivedMessage, SmtpSink, SmtpSinkOptions, POSTFIX_DOMAIN,
};
pub use server::{Handler, Peer, Received, ScriptedServer};
