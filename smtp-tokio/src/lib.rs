//! An async SMTP client: moves bytes between a socket (plain or TLS) and
//! [`smtp_proto::ClientSession`], and applies timeouts. Nothing else.
//!
//! Every SMTP decision — STARTTLS policy and injection refusal, the credential
//! guard, mechanism choice, pipelining, dot-stuffing, per-recipient results,
//! transcript redaction — is made by the sans-I/O core `smtp-proto`. This
//! crate has one driving loop, written once over a small private I/O trait,
//! and two backends:
//!
//! - [`tokio::Client`] (feature `tokio`, default): tokio's `TcpStream` and
//!   `tokio-rustls`;
//! - `futures::Client` (feature `async-std`): any `futures-io` stream and
//!   `futures-rustls`, with `async-io` timers, so it runs under async-std and
//!   smol alike. It dials with async-std's `TcpStream`;
//!   `futures::Client::with_stream` takes any stream (`smol::net::TcpStream`,
//!   `async_io::Async<std::net::TcpStream>`).
//!
//! Both are one [`Client<B>`](Client), written once over a sealed
//! [`Backend`] (`tokio::Tokio`, `futures::FuturesIo<S>`); code generic over
//! `B: Backend` serves either.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn example() -> Result<(), smtp_tokio::Error> {
//! use smtp_tokio::smtp_proto::{Address, Config, Credentials, Envelope, TlsPolicy};
//! use smtp_tokio::{tokio::Client, Options};
//!
//! let config = Config::new("smtp.office365.com")
//!     .tls(TlsPolicy::Required)
//!     .credentials(Credentials::password("me@example.com", "app-password"));
//! let mut client = Client::connect("smtp.office365.com", 587, config, Options::default()).await?;
//!
//! let envelope = Envelope::new(
//!     Some(Address::new("me@example.com")?),
//!     [Address::new("you@example.org")?],
//! )?;
//! let delivery = client
//!     .send(envelope, b"Subject: hello\r\n\r\nHi there.\r\n")
//!     .await?;
//! for rejected in delivery.rejected() {
//!     eprintln!("{} refused: {}", rejected.address(), rejected.reply());
//! }
//! client.quit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The same with the futures-io backend, under smol or async-std:
//!
//! ```no_run
//! # #[cfg(feature = "async-std")]
//! # async fn example() -> Result<(), smtp_tokio::Error> {
//! use smtp_tokio::smtp_proto::{Address, Config, Envelope, TlsPolicy};
//! use smtp_tokio::{futures::Client, Options};
//!
//! let config = Config::new("smtp.example.com").tls(TlsPolicy::Implicit);
//! let mut client = Client::connect("smtp.example.com", 465, config, Options::default()).await?;
//! let envelope = Envelope::new(None, [Address::new("you@example.org")?])?;
//! client.send(envelope, b"Subject: bounce\r\n\r\n").await?;
//! client.quit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What the driver does
//!
//! Each operation loops on the core's [`ClientSession::next`]: it performs
//! the I/O the session hands out — a write, a read, the TLS handshake, the
//! best-effort `QUIT` after a failure — each bounded by the deadline the
//! session computed from the per-stage [`Timeouts`] (and the time limit) of
//! the [`Stage`] under way, until the session hands over an event. When a
//! deadline passes the driver tells the session
//! ([`ClientSession::handle_timeout`]), which fails with
//! [`smtp_proto::Error::Timeout`]; nothing here reads a reply or decides.
//!
//! **Batches.** [`Client::send_all`], and `send_all_readers` and
//! `send_each` on each backend, send several messages over the connection,
//! as the core's [`smtp_proto::Batch`] decides (smtp-blocking drives the
//! same machine): with
//! PIPELINING the next message's commands go out in the same write as the
//! end of the previous message (RFC 2920 §3.1), so a message costs one round
//! trip, and with CHUNKING a window of whole messages goes before any reply; results come in order, a
//! refused transaction is that message's error and the batch goes on, and an
//! error that ends the connection is the last result. A single `send` is a
//! batch of one, through the same loop. Bodies stream 64 KiB at a time.
//!
//! **STARTTLS.** Every byte read goes to the session, so none is buffered
//! here. Before the handshake the socket is polled once more without waiting
//! and anything found is fed to the session too, which refuses it
//! ([`smtp_proto::Error::StartTlsInjection`]); no plaintext byte ever reaches
//! the TLS layer. The certificate is verified for [`Config::server_name`]
//! (IPv6 brackets stripped), which is then reported to
//! [`ClientSession::tls_established`].
//!
//! **Cancellation.** Every operation marks the client poisoned when it starts
//! and clears the mark only when it completes. Dropping a future part-way (a
//! `select!`, a timeout around it) therefore leaves a client that refuses
//! further use ([`Error::Poisoned`], [`is_usable`](tokio::Client::is_usable)
//! false) instead of one that would write into the middle of a dialogue. Timeouts
//! and I/O errors poison the client the same way.
//!
//! **Pools.** [`pool::Pool`] (feature `tokio`) shares up to `max_size`
//! connections between concurrent sends: idle timeout, NOOP health check
//! before reusing a long-idle connection, one retry on a new connection when
//! a reused one proves broken before the message was sent, and credentials
//! from a provider called for each new connection (fresh OAuth2 tokens).
//! It is a cheap `Clone + Send + Sync` handle and implements
//! [`AsyncMailer`]: write the application against that trait and test it
//! with a [`RecordingMailer`], no network needed.
//!
//! **Transcript.** With [`Options::transcript`] set, or `DEBUG` enabled for the
//! tracing target `smtp_tokio::transcript`, the session records the dialogue
//! (secrets redacted by the core) and every line goes to the hook and to
//! `tracing::debug!`. Operations run in the spans `smtp.connect`, `smtp.tls`,
//! `smtp.send`, `smtp.send_all`, `smtp.noop` and `smtp.quit`.
//!
//! # Features
//!
//! - `tokio` (default): the tokio backend.
//! - `async-std`: the futures-io backend (async-std and smol).
//! - `rustls` (default): TLS, with the bundled webpki roots; required.
//! - `ring` (default), `aws-lc-rs`: rustls' crypto provider. A process-wide
//!   default provider, when the application installed one, is used before
//!   either; with both, `ring` is used; without either, install a default.
//! - `native-roots`: [`tls::TlsRoots::Native`], the system trust store.
//! - `oauth2`: `oauth2::TokenProvider`, OAuth 2.0 access tokens (client
//!   credentials and refresh token grants) cached, renewed and fetched one
//!   request at a time; `TokenProvider::for_user` is the pool's credential
//!   provider.
//!
//! [`Options`] and [`tls`] are the core's (`smtp-proto`), re-exported: one
//! options type and one TLS configuration for every adapter. The features
//! above enable the same ones in `smtp-proto`.
//!
//! # Tests
//!
//! ```sh
//! cargo test -p smtp-tokio                                                      # tokio
//! cargo test -p smtp-tokio --no-default-features --features async-std,rustls,ring  # async-std and smol executors
//! ```
//!
//! [`ClientSession::next`]: smtp_proto::ClientSession::next
//! [`ClientSession::handle_timeout`]: smtp_proto::ClientSession::handle_timeout
//! [`Stage`]: smtp_proto::Stage
//! [`Config::server_name`]: smtp_proto::Config::server_name
//! [`ClientSession::tls_established`]: smtp_proto::ClientSession::tls_established
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

#[cfg(not(feature = "rustls"))]
compile_error!(
    "smtp-tokio needs the `rustls` feature (the `tokio` and `async-std` backends enable it)"
);

mod client;
mod driver;

pub use client::{Backend, Client, Dial};

#[cfg(feature = "async-std")]
pub mod futures;
#[cfg(feature = "oauth2")]
pub mod oauth2;
#[cfg(feature = "tokio")]
pub mod pool;
#[cfg(feature = "tokio")]
pub mod tokio;

mod error;

pub use error::Error;
pub use smtp_proto;
/// rustls, re-exported so callers can name the types of [`tls`] and
/// [`Options::tls`] without depending on it themselves.
pub use smtp_proto::rustls;
/// The TLS configuration: the core's, shared by every adapter.
pub use smtp_proto::tls;
pub use smtp_proto::{
    Address, Capabilities, ClientSession, Config, Credentials, Delivery, Envelope, Mechanism,
    RecipientResult, Stage, Timeouts, TlsPolicy, TranscriptLine,
};
/// What an application sends through (`pool::Pool` implements it), and its
/// test double: the core's.
pub use smtp_proto::{AsyncMailer, RecordingMailer, SentMessage};
/// The options and transcript hook: the core's, shared by every adapter.
pub use smtp_proto::{Options, TranscriptHook, DEFAULT_CONNECT_TIMEOUT};
