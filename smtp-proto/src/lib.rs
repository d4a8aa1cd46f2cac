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
//! - replies, single- and multi-line, bounded in memory ([`ReplyParser`],
//!   [`ReplyLimits`], RFC 5321 §4.2);
//! - EHLO with HELO fallback, and capabilities as exact tokens ([`Capabilities`]);
//! - STARTTLS policy, refusing plaintext injected after the `220` and
//!   forgetting pre-TLS capabilities (RFC 3207);
//! - a credential guard every mechanism passes through: credentials go only
//!   over TLS, to a loopback name, or with the caller's explicit consent;
//! - AUTH PLAIN preferred, LOGIN fallback (Microsoft 365 offers only
//!   `AUTH LOGIN XOAUTH2`), XOAUTH2 and OAUTHBEARER with tokens
//!   ([`Credentials`], [`Mechanism`], RFC 4954);
//! - envelopes that can only be built valid ([`Address`], [`Envelope`]), SIZE,
//!   8BITMIME, SMTPUTF8 and DSN parameters, PIPELINING (RFC 2920);
//! - dot-stuffing that no input can end early ([`BodyEncoder`]);
//! - a transcript with every secret redacted ([`TranscriptLine`]);
//! - when each wait ends, from the per-stage timeouts (RFC 5321 §4.5.3.2)
//!   and a time limit, against the caller's clock ([`ClientSession::next`]);
//! - a batch of messages over one session: which result belongs to which
//!   message, and what became of each when the connection fails ([`Batch`]);
//! - with the feature `oauth2`, OAuth 2.0 access tokens for XOAUTH2 and
//!   OAUTHBEARER: the token request and response, the endpoint guard and
//!   the cache (`oauth2`), for the adapters to send.
//!
//! And what an application sends through, whatever the runtime: the
//! [`Mailer`] and [`AsyncMailer`] traits the adapters' pools implement, and
//! [`RecordingMailer`], a test double for the application's unit tests.
//!
//! # Driving a session
//!
//! An adapter calls [`ClientSession::next`] in a loop with the time, and
//! performs what it returns: write, read, the TLS handshake, each before
//! its deadline, or hands the caller an event. The same contract, with
//! simulated time and canned replies:
//!
//! ```
//! use smtp_proto::{ClientSession, Config, Event, Io, Next, Options, Stage, TlsPolicy};
//! use std::time::{Duration, Instant};
//!
//! let config = Config::new("mail.example.com").tls(TlsPolicy::Disabled);
//! let mut session = ClientSession::with_options(config, &Options::default())?;
//! let start = Instant::now();
//! let mut replies = ["220 mail.example.com ESMTP\r\n", "250 mail.example.com\r\n"].into_iter();
//! let ready = loop {
//!     match session.next(start)? {
//!         Next::Io(Io::Write { .. }) => {
//!             let n = session.pending_output().len(); // a socket write
//!             session.advance_output(n);
//!         }
//!         Next::Io(Io::Read { deadline, .. }) => {
//!             assert!(deadline.is_some());
//!             session.handle_input(replies.next().unwrap_or_default().as_bytes())?;
//!         }
//!         Next::Event(event) => break event,
//!         other => unreachable!("{other:?}"),
//!     }
//! };
//! assert_eq!(ready, Event::Ready);
//!
//! // The server says nothing more: at the deadline, the session times out.
//! session.noop()?;
//! let Next::Io(Io::Write { .. }) = session.next(start)? else { unreachable!() };
//! session.advance_output(session.pending_output().len());
//! let Next::Io(Io::Read { deadline: Some(deadline), .. }) = session.next(start)? else { unreachable!() };
//! assert_eq!(deadline, start + Duration::from_secs(5 * 60));
//! session.handle_timeout(deadline);
//! assert_eq!(session.next(deadline), Err(smtp_proto::Error::Timeout { stage: Stage::Noop }));
//! # Ok::<(), smtp_proto::Error>(())
//! ```
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
#![warn(unreachable_pub)]

/// rustls, re-exported so callers can name the types of [`tls`] and
/// [`Options::tls`] without depending on it themselves.
#[cfg(feature = "rustls")]
pub use rustls;

// Private modules, one concept each; the types are re-exported below, one
// path per type. `messages`, `retry` and `tls` are namespaces of free
// functions.
mod address;
mod auth;
mod batch;
mod body_chunk;
mod capabilities;
mod command;
mod config;
mod data;
mod error;
mod hint;
mod input;
mod mailer;
mod mechanism;
pub mod messages;
#[cfg(feature = "oauth2")]
pub mod oauth2;
mod options;
mod outcome;
mod reply;
pub mod retry;
mod session;
mod stage;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
#[cfg(feature = "rustls")]
pub mod tls;
mod transaction;
mod transcript;
mod url;

pub use address::{Address, MAX_ADDRESS_LEN};
pub use auth::{Credentials, Secret, AUTH_LINE_LIMIT};
pub use batch::{Batch, BatchError, Rest, Step};
pub use body_chunk::BodyChunk;
pub use capabilities::{Capabilities, Extension, MAX_LINES, MAX_PARAMS};
pub use command::{EhloName, Parameter};
pub use config::{Config, TlsPolicy, DEFAULT_WINDOW};
pub use data::{normalized_len, BodyEncoder, NormalizedLen};
pub use error::Error;
pub use input::{InputField, InvalidInput};
pub use mailer::{AsyncMailer, Mailer, RecordingMailer, SentMessage};
pub use mechanism::Mechanism;
pub use options::{Options, DEFAULT_CONNECT_TIMEOUT};
pub use outcome::{Delivery, Outcome, RecipientResult};
pub use reply::{EnhancedCode, Lines, Reply, ReplyCode, ReplyError, ReplyLimits, ReplyParser};
pub use session::{
    ClientSession, Event, Io, Next, BODY_DIRECT_MIN, BODY_FLUSH, MAX_RCPT_AHEAD, MAX_REPLIES_AHEAD,
    MAX_TRANSCRIPT_LINES,
};
pub use stage::{Stage, Timeouts};
pub use transaction::{BodyType, DsnReturn, Envelope, Notify, Recipient};
pub use transcript::{Direction, TranscriptHook, TranscriptLine};
pub use url::SmtpUrl;
