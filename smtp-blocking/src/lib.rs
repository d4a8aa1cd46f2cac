//! A blocking SMTP client: std sockets and rustls around the sans-I/O
//! [`smtp_proto`] core.
//!
//! [`Client`] only moves bytes between a socket (plain TCP, or TLS with
//! rustls) and a [`smtp_proto::ClientSession`], performs the TLS handshake
//! when the session asks for it, and applies timeouts. Every protocol
//! decision — the TLS policy, STARTTLS injection, the credential guard, the
//! AUTH mechanism, pipelining, dot-stuffing, per-recipient results — is the
//! core's.
//!
//! - **Timeouts per stage** ([`Options::timeouts`], RFC 5321 §4.5.3.2 by
//!   default: 5 minutes for the greeting and commands, 10 for the reply to
//!   the end of data): a server that stalls gives [`smtp_proto::Error::Timeout`], never a
//!   hang. A reply must arrive whole within its stage's timeout.
//!   [`Options::time_limit`] caps the set-up and each message in all.
//! - **TLS**: implicit (port 465) or STARTTLS, verified for the configured
//!   server name against the bundled Mozilla roots by default, or the
//!   system's or your own ([`tls::TlsRoots`]). Plaintext that arrives after
//!   the `220` to STARTTLS is handed to the session, which refuses it.
//! - **Bounded memory**: [`Client::send_reader`] streams a message of any
//!   size in 256 KiB chunks.
//! - **Transcript**: [`Options::transcript`] and `tracing` at DEBUG get every
//!   line of the dialogue, secrets redacted by the core.
//! - **A pool threads share**: [`pool::Pool`] is a `Clone + Send + Sync`
//!   handle over at most `max_size` connections (idle timeout, an idle check
//!   and a NOOP before reuse, one safe retry, fresh credentials per new
//!   connection). It implements [`Mailer`]: write the application against
//!   the trait and test it with a [`RecordingMailer`], no network needed.
//!
//! # Example
//!
//! ```no_run
//! use smtp_blocking::{Address, Client, Config, Credentials, Envelope, Options};
//!
//! // Microsoft 365: STARTTLS on 587 (required by default), then AUTH LOGIN.
//! let config = Config::new("smtp.office365.com")
//!     .credentials(Credentials::password("me@example.com", "app-password"));
//! let options = Options::new().transcript(|line| eprintln!("{line}"));
//! let mut client = Client::connect("smtp.office365.com", 587, config, options)?;
//! assert!(client.is_tls());
//!
//! let envelope = Envelope::new(
//!     Some(Address::new("me@example.com")?),
//!     [Address::new("you@example.org")?],
//! )?;
//! let body = b"From: me@example.com\r\nTo: you@example.org\r\nSubject: hi\r\n\r\nHello.\r\n";
//! let delivery = client.send(envelope, body)?;
//! for recipient in delivery.recipients() {
//!     println!("{}: {}", recipient.address(), recipient.reply());
//! }
//! client.quit()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `rustls` (default): TLS with rustls and the `webpki-roots` bundle.
//! - `ring` (default) / `aws-lc-rs`: the rustls crypto provider. With both,
//!   `ring` is used; a process-wide default provider, when the application
//!   installed one, is used before either.
//! - `native-roots`: [`tls::TlsRoots::Native`], the operating system's store.
//! - `oauth2`: [`oauth2::TokenProvider`], OAuth 2.0 access tokens for
//!   XOAUTH2 and OAUTHBEARER (client credentials and refresh token grants),
//!   fetched over HTTPS with ureq and rustls, cached and renewed.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod client;
mod error;
#[cfg(feature = "oauth2")]
pub mod oauth2;
pub mod pool;
mod stream;

pub use client::Client;
pub use error::Error;
/// The options, shared with every adapter: the core's.
pub use smtp_proto::{Options, TranscriptHook, DEFAULT_CONNECT_TIMEOUT};

/// The TLS configuration (feature `rustls`): the core's.
#[cfg(feature = "rustls")]
pub use smtp_proto::tls;

/// rustls, re-exported so callers can name the types of [`tls`] and
/// [`Options::tls`] without depending on it themselves.
#[cfg(feature = "rustls")]
pub use smtp_proto::rustls;

/// The protocol core, re-exported.
pub use smtp_proto;
pub use smtp_proto::{
    Address, Capabilities, ClientSession, Config, Credentials, Delivery, Envelope, Mechanism,
    Outcome, RecipientResult, Stage, Timeouts, TlsPolicy, TranscriptLine,
};
/// What an application sends through ([`pool::Pool`] implements it), and
/// its test double: the core's.
pub use smtp_proto::{Mailer, RecordingMailer, SentMessage};
