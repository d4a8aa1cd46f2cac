//! A sans-I/O SMTP client: every decision an SMTP submission client makes,
//! and no I/O.
//!
//! [`ClientSession`] is a deterministic state machine in the style of rustls'
//! `Connection` and quinn-proto: feed it the bytes the server sent
//! ([`ClientSession::handle_input`]), send what it has to say
//! ([`ClientSession::pending_output`]), and act on its events
//! ([`ClientSession::poll_event`]): upgrade to TLS now, stream the body now,
//! the transaction finished with these per-recipient results, closed. No
//! sockets, clocks, threads or async; the `smtp-blocking` and `smtp-tokio`
//! crates are thin adapters that move bytes and apply timeouts.
//!
//! What it decides, with the RFC each rule comes from:
//! - replies, single- and multi-line, bounded in memory ([`reply`], RFC 5321 §4.2);
//! - EHLO with HELO fallback, and capabilities as exact tokens ([`capabilities`]);
//! - STARTTLS policy, refusing plaintext injected after the `220` and
//!   forgetting pre-TLS capabilities (RFC 3207);
//! - a credential guard every mechanism passes through: credentials go only
//!   over TLS, to a loopback name, or with the caller's explicit consent;
//! - AUTH PLAIN preferred, LOGIN fallback (Microsoft 365 offers only
//!   `AUTH LOGIN XOAUTH2`), XOAUTH2 and OAUTHBEARER with tokens ([`auth`], RFC 4954);
//! - envelopes that can only be built valid ([`Address`], [`command`]), SIZE,
//!   8BITMIME, SMTPUTF8 and DSN parameters, PIPELINING (RFC 2920);
//! - dot-stuffing that no input can end early ([`data`]);
//! - a transcript with every secret redacted ([`transcript`]).
//!
//! # Example
//!
//! A whole session against canned server replies. A real adapter reads them
//! from a socket instead, and performs the TLS handshake on [`Event::StartTls`].
//!
//! ```
//! use smtp_proto::{Address, ClientSession, Config, Credentials, Envelope, Event, TlsPolicy};
//!
//! let config = Config::new("smtp.example.com")
//!     .tls(TlsPolicy::Required)
//!     .credentials(Credentials::password("me@example.com", "hunter2"));
//! let mut session = ClientSession::new(config)?;
//!
//! // The greeting and the plaintext EHLO reply: STARTTLS is offered.
//! session.handle_input(b"220 smtp.example.com ESMTP\r\n")?;
//! assert_eq!(session.take_output(), &b"EHLO localhost\r\n"[..]);
//! session.handle_input(b"250-smtp.example.com\r\n250 STARTTLS\r\n")?;
//! assert_eq!(session.take_output(), &b"STARTTLS\r\n"[..]);
//! session.handle_input(b"220 go ahead\r\n")?;
//! assert_eq!(session.poll_event(), Some(Event::StartTls));
//!
//! // ... the adapter performs the TLS handshake here ...
//! session.tls_established("smtp.example.com")?;
//! assert_eq!(session.take_output(), &b"EHLO localhost\r\n"[..]);
//!
//! // Over TLS the server offers LOGIN and XOAUTH2 only, like Microsoft 365.
//! session.handle_input(b"250-smtp.example.com\r\n250 AUTH LOGIN XOAUTH2\r\n")?;
//! assert_eq!(session.take_output(), &b"AUTH LOGIN\r\n"[..]);
//! session.handle_input(b"334 VXNlcm5hbWU6\r\n")?; // "Username:"
//! assert_eq!(session.take_output(), &b"bWVAZXhhbXBsZS5jb20=\r\n"[..]);
//! session.handle_input(b"334 UGFzc3dvcmQ6\r\n")?; // "Password:"
//! assert_eq!(session.take_output(), &b"aHVudGVyMg==\r\n"[..]);
//! session.handle_input(b"235 2.7.0 Authentication successful\r\n")?;
//! assert_eq!(session.poll_event(), Some(Event::Ready));
//!
//! // One message to one recipient.
//! let envelope = Envelope::new(
//!     Some(Address::new("me@example.com")?),
//!     [Address::new("you@example.org")?],
//! )?;
//! session.send_mail(envelope)?;
//! assert_eq!(session.take_output(), &b"MAIL FROM:<me@example.com>\r\n"[..]);
//! session.handle_input(b"250 OK\r\n")?;
//! assert_eq!(session.take_output(), &b"RCPT TO:<you@example.org>\r\n"[..]);
//! session.handle_input(b"250 OK\r\n")?;
//! assert_eq!(session.take_output(), &b"DATA\r\n"[..]);
//! session.handle_input(b"354 go\r\n")?;
//! assert_eq!(session.poll_event(), Some(Event::SendBody));
//! session.write_body(b"Subject: hi\n\n.hello\n")?;
//! session.finish_body()?;
//! assert_eq!(session.take_output(), &b"Subject: hi\r\n\r\n..hello\r\n.\r\n"[..]);
//! session.handle_input(b"250 queued as 1234\r\n")?;
//! match session.poll_event() {
//!     Some(Event::TransactionComplete(Ok(delivery))) => {
//!         assert!(delivery.recipients()[0].accepted());
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(session.poll_event(), Some(Event::Ready));
//!
//! session.quit()?;
//! assert_eq!(session.take_output(), &b"QUIT\r\n"[..]);
//! session.handle_input(b"221 bye\r\n")?;
//! assert_eq!(session.poll_event(), Some(Event::Closed));
//! # Ok::<(), smtp_proto::Error>(())
//! ```
#![forbid(unsafe_code)]

/// rustls, re-exported so callers can name the types of [`tls`] and
/// [`Options::tls`] without depending on it themselves.
#[cfg(feature = "rustls")]
pub use rustls;

pub mod address;
pub mod auth;
mod batch;
pub mod capabilities;
pub mod command;
pub mod config;
pub mod data;
pub mod error;
mod hint;
mod input;
mod mechanism;
pub mod messages;
mod options;
mod outcome;
pub mod reply;
pub mod session;
pub mod stage;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod transaction;
pub mod transcript;
mod url;

pub use address::Address;
pub use auth::{Credentials, Mechanism, Secret};
pub use batch::{Batch, BatchError, Rest, Step};
pub use capabilities::Capabilities;
pub use command::{EhloName, Parameter};
pub use config::{Config, TlsPolicy};
pub use error::{Error, InputField, InvalidInput};
pub use options::{Options, DEFAULT_CONNECT_TIMEOUT};
pub use outcome::Outcome;
pub use reply::{EnhancedCode, Reply, ReplyCode};
pub use session::{ClientSession, Event, Io, Next, BODY_FLUSH};
pub use stage::{Stage, Timeouts};
pub use transaction::{
    BodyType, Delivery, DsnReturn, Envelope, Notify, Recipient, RecipientResult,
};
pub use transcript::{Direction, TranscriptHook, TranscriptLine};
pub use url::SmtpUrl;
