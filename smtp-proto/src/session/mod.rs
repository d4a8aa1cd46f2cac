//! The client session: a deterministic state machine fed with server bytes.
//!
//! The session never touches a socket or a clock. The caller moves bytes:
//! what arrived goes into [`ClientSession::handle_input`], what to send comes
//! out of [`ClientSession::pending_output`], and what to do next comes out of
//! [`ClientSession::poll_event`]. Every decision — TLS policy, the credential
//! guard, mechanism choice, pipelining, per-recipient results — is made here,
//! so adapters stay thin and every transition can be tested with a transcript.
//!
//! The state machine is split by what it is doing, one child module each:
//! `hello` (the greeting, EHLO with the HELO fallback, STARTTLS),
//! `authenticate` (the credential guard and the AUTH exchange) and `mail`
//! (MAIL, RCPT, DATA or BDAT, the body, RSET, per-recipient results,
//! pipelining). `replies` reads the server's replies and hands each to the
//! step that awaits it, `phase` says where the session stands (ready,
//! streaming a body, failed) and `recording` keeps the transcript. `drive`
//! is the step function adapters call, `clock` its deadlines.

use crate::auth::{AuthExchange, Mechanism};
use crate::capabilities::Capabilities;
use crate::config::{is_valid_server_name, Config, TlsPolicy};
use crate::data::BodyEncoder;
use crate::error::{Error, InputField};
use crate::options::Options;
use crate::outcome::Outcome;
use crate::reply::{Reply, ReplyParser};
use crate::stage::Stage;
use crate::transaction::Delivery;
use bytes::{Buf, Bytes, BytesMut};
use core::fmt;
use core::net::IpAddr;
use std::collections::VecDeque;

mod authenticate;
mod clock;
mod drive;
mod hello;
mod mail;
mod phase;
mod recording;
mod replies;

use clock::Clock;
pub use drive::{Io, Next, BODY_FLUSH};
use mail::Transaction;
pub use mail::{BODY_DIRECT_MIN, MAX_RCPT_AHEAD, MAX_REPLIES_AHEAD};
use phase::Phase;
use recording::Recording;
pub use recording::MAX_TRANSCRIPT_LINES;
use replies::Expect;

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Event {
    /// Flush [`ClientSession::pending_output`], perform the TLS handshake for
    /// the configured server name, then call
    /// [`ClientSession::tls_established`]. Read nothing in plaintext first:
    /// any byte fed before the handshake is treated as an injection attempt.
    StartTls,
    /// The session is idle: call [`ClientSession::send_mail`],
    /// [`ClientSession::noop`] or [`ClientSession::quit`].
    Ready,
    /// The server is waiting for the message: feed it to
    /// [`ClientSession::write_body`] in chunks of any size, then call
    /// [`ClientSession::finish_body`].
    SendBody,
    /// The transaction started by [`ClientSession::send_mail`] is over; a
    /// [`Event::Ready`] follows.
    TransactionComplete(Result<Delivery, Error>),
    /// The server answered QUIT or closed after it: the connection can go.
    Closed,
}

/// A sans-I/O SMTP client session (RFC 5321) with STARTTLS (RFC 3207), AUTH
/// (RFC 4954), PIPELINING (RFC 2920) and the envelope extensions SIZE,
/// 8BITMIME, SMTPUTF8 and DSN.
///
/// See the crate documentation for the driving loop.
pub struct ClientSession {
    config: Config,
    parser: ReplyParser,
    out: BytesMut,
    events: VecDeque<Event>,
    transcript: Recording,
    phase: Phase,
    expect: VecDeque<Expect>,
    caps: Capabilities,
    tls: bool,
    auth: Option<AuthExchange>,
    authenticated: Option<Mechanism>,
    /// Transactions in flight, oldest first: more than one when the next
    /// message's commands ride behind the previous message (RFC 2920 §3.1),
    /// up to `Config::window` with CHUNKING.
    txns: VecDeque<Transaction>,
    encoder: BodyEncoder,
    error: Option<Error>,
    quit_sent: bool,
    /// The address the adapter connected to, once it said so.
    peer: Option<IpAddr>,
    /// The last octet of a `BDAT` chunk whose body reached its declared size,
    /// held back until [`finish_body`](Self::finish_body) confirms that
    /// nothing more belongs to it: a chunk the server can read to its end is
    /// a message it may deliver, so it must not be complete on the wire while
    /// the session might still refuse it.
    held: Option<u8>,
    /// Body bytes lent to the caller by
    /// [`write_body_direct`](Self::write_body_direct) and not yet written:
    /// on the wire right after `out`.
    lent: usize,
    /// Output bytes the caller took ([`advance_output`](Self::advance_output),
    /// [`take_output`](Self::take_output)) since the session began.
    taken: u64,
    /// The transactions in flight when the session failed, oldest first.
    unfinished: Vec<Outcome>,
    /// The server's greeting, once read.
    greeting: Option<Reply>,
    /// The positive reply to the latest EHLO, while its capabilities are
    /// the ones in force.
    ehlo: Option<Reply>,
    /// The plaintext EHLO reply, kept after STARTTLS for the caller only.
    ehlo_before_tls: Option<Reply>,
    /// The server's last reply to AUTH other than a `334` challenge.
    auth_reply: Option<Reply>,
    /// The per-stage timeouts and the time limit, against the caller's
    /// clock.
    clock: Clock,
}

impl fmt::Debug for ClientSession {
    // Hand-written: the output buffer may hold an encoded credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("server_name", &self.config.server_name)
            .field("phase", &self.phase)
            .field("tls", &self.tls)
            .field("expect", &self.expect)
            .field("pending_output", &self.out.len())
            .field("lent", &self.lent)
            .field("authenticated", &self.authenticated)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// Starts a session. Checks the configuration before anything is written:
    /// the server name and the credentials ([`Credentials::check`](crate::Credentials::check)).
    ///
    /// With [`TlsPolicy::Implicit`] the first event is [`Event::StartTls`];
    /// otherwise the session waits for the server's greeting.
    pub fn new(config: Config) -> Result<ClientSession, Error> {
        ClientSession::with_options(config, &Options::default())
    }

    /// Starts a session, as [`new`](Self::new) does, that keeps to
    /// `options`' timeouts and time limit ([`next`](Self::next) hands out
    /// the deadlines) and hands every transcript line to its hook. The
    /// options' TLS configuration is the adapter's to use.
    pub fn with_options(config: Config, options: &Options) -> Result<ClientSession, Error> {
        if !is_valid_server_name(&config.server_name) {
            return Err(Error::invalid(
                InputField::ServerName,
                "not a DNS name or IP address a TLS certificate can be checked for",
            ));
        }
        if let Some(credentials) = &config.credentials {
            credentials.check()?;
        }
        let mut session = ClientSession {
            parser: ReplyParser::new(config.reply_limits),
            transcript: Recording::new(config.transcript),
            config,
            out: BytesMut::with_capacity(4096),
            events: VecDeque::new(),
            phase: Phase::Busy,
            expect: VecDeque::new(),
            caps: Capabilities::default(),
            tls: false,
            auth: None,
            authenticated: None,
            txns: VecDeque::new(),
            encoder: BodyEncoder::new(),
            error: None,
            quit_sent: false,
            peer: None,
            held: None,
            lent: 0,
            taken: 0,
            unfinished: Vec::new(),
            greeting: None,
            ehlo: None,
            ehlo_before_tls: None,
            auth_reply: None,
            clock: Clock::new(options),
        };
        if let Some(hook) = &options.transcript {
            session.add_transcript_hook(std::sync::Arc::clone(hook));
        }
        if session.config.tls == TlsPolicy::Implicit {
            session.phase = Phase::Handshake {
                after_starttls: false,
            };
            session.events.push_back(Event::StartTls);
        } else {
            session.expect.push_back(Expect::Greeting);
        }
        Ok(session)
    }

    // ---- moving bytes -------------------------------------------------

    /// Feeds bytes received from the server, in any split. Replies are
    /// processed as far as the session has commands outstanding.
    ///
    /// An error here is fatal: the session is failed, and
    /// [`pending_output`](Self::pending_output) may still hold a `QUIT` to
    /// flush before closing.
    ///
    /// Bytes that arrive while nothing is awaited (the session is idle, or
    /// the caller is streaming a body whose replies are all in) are
    /// unsolicited: a `421` is [`Error::ServiceClosing`] at once, anything
    /// else [`Error::UnexpectedReply`], so a pool's idle check drops such a
    /// connection without writing to it.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.begin_call();
        self.clock.clear_wait();
        self.check_alive("handle_input")?;
        let idle = self.is_idle();
        self.parser.extend(bytes);
        if idle {
            self.unsolicited()?;
        }
        self.process()
    }

    /// Tells the session the server closed the connection. Fine after QUIT;
    /// anywhere else it is [`Error::ConnectionClosed`].
    pub fn handle_eof(&mut self) -> Result<(), Error> {
        self.begin_call();
        self.clock.clear_wait();
        match self.phase {
            Phase::Closed | Phase::Failed => Ok(()),
            _ if self.expect.front() == Some(&Expect::Quit) => {
                self.close();
                Ok(())
            }
            _ => {
                // A `421` that came behind the last awaited reply says why.
                if self.is_idle() {
                    self.unsolicited()?;
                }
                let stage = self.stage().unwrap_or(Stage::Idle);
                Err(self.fail(Error::ConnectionClosed { stage }))
            }
        }
    }

    /// Judges what the server sent while nothing was awaited that is still
    /// buffered: bytes that came behind the last awaited reply (a `421` in
    /// the same read as a transaction's `250`). A reply there fails the
    /// session as one arriving while idle does ([`Error::ServiceClosing`] for
    /// a `421`, else [`Error::UnexpectedReply`], at [`Stage::Idle`]); a
    /// reply not yet whole, or none, is `Ok`.
    ///
    /// Such bytes otherwise wait for the next command and fail it, after it
    /// was written. An adapter that checks an idle connection before reusing
    /// it calls this after feeding whatever has arrived, so that nothing (with
    /// CHUNKING, not even a whole `BDAT` body) is written to a server that
    /// has already said goodbye.
    pub fn check_idle(&mut self) -> Result<(), Error> {
        self.begin_call();
        self.check_alive("check_idle")?;
        if self.is_idle() {
            self.unsolicited()?;
        }
        Ok(())
    }

    /// Bytes to send to the server, in order.
    #[must_use]
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Marks `n` bytes of [`pending_output`](Self::pending_output) as sent.
    ///
    /// Call it as bytes are written, partial writes included: what was
    /// handed over decides whether a message whose reply never came may
    /// have been delivered ([`unfinished`](Self::unfinished)).
    pub fn advance_output(&mut self, n: usize) {
        let n = n.min(self.out.len());
        self.taken = self.taken.saturating_add(n as u64);
        self.out.advance(n);
        if n > 0 {
            // Progress: the wait for this write is over.
            self.clock.clear_wait();
            if self.out.is_empty() {
                // What was written is whole: its reply gets a whole timeout.
                self.clock.reset_reply();
            }
        }
    }

    /// Takes every pending output byte at once.
    #[must_use]
    pub fn take_output(&mut self) -> Bytes {
        if !self.out.is_empty() {
            self.clock.clear_wait();
            self.clock.reset_reply();
        }
        self.taken = self.taken.saturating_add(self.out.len() as u64);
        self.out.split().freeze()
    }

    /// After the session failed: what became of each transaction that was
    /// still in flight, oldest first (those that finished were reported
    /// with [`Event::TransactionComplete`]). [`Outcome::Unknown`] when any
    /// byte of its end of data (the final dot, or the last octet of its
    /// `BDAT … LAST` chunk) had been taken by the caller, so the server may
    /// have the whole message; else [`Outcome::NotSent`]. Empty while the
    /// session is alive.
    pub fn unfinished(&self) -> &[Outcome] {
        &self.unfinished
    }

    /// The next thing for the caller to do, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- abort, NOOP, QUIT -----------------------------------------------

    /// Abandons the session at once, e.g. when the body cannot be read or an
    /// operation was cancelled half-way: the session fails with
    /// [`Error::Aborted`], drops any pending output and writes nothing more
    /// (not even QUIT, since the server may be mid-command). The caller
    /// should close the connection. On a closed or failed session it only
    /// drops the pending output (a `QUIT` that could not be written).
    pub fn abort(&mut self) {
        self.out.clear();
        self.lent = 0;
        if matches!(self.phase, Phase::Closed | Phase::Failed) {
            return;
        }
        self.quit_sent = true;
        let _ = self.fail(Error::Aborted);
    }

    /// Sends NOOP (a health check); [`Event::Ready`] follows a positive reply.
    pub fn noop(&mut self) -> Result<(), Error> {
        self.begin_call();
        self.check_ready("noop")?;
        self.leave_idle();
        self.write_line(b"NOOP", Expect::Noop);
        self.phase = Phase::Busy;
        self.process()
    }

    /// Sends QUIT; [`Event::Closed`] follows the server's reply. After a
    /// failure (the session already wrote QUIT where it could) or close, this
    /// does nothing.
    pub fn quit(&mut self) -> Result<(), Error> {
        self.begin_call();
        match self.phase {
            Phase::Failed | Phase::Closed => return Ok(()),
            _ if self.quit_sent => return Ok(()),
            _ => {}
        }
        self.check_ready("quit")?;
        self.leave_idle();
        self.quit_sent = true;
        self.write_line(b"QUIT", Expect::Quit);
        self.phase = Phase::Busy;
        self.process()
    }

    // ---- what the caller may ask -----------------------------------------

    /// Whether the caller should read from the server now.
    #[must_use]
    pub fn wants_input(&self) -> bool {
        self.phase == Phase::Busy && !self.expect.is_empty()
    }

    /// The step in progress, for picking a timeout; `None` when idle or done.
    #[must_use]
    pub fn stage(&self) -> Option<Stage> {
        match self.phase {
            Phase::Handshake { .. } => Some(Stage::TlsHandshake),
            Phase::Body => Some(Stage::Body),
            Phase::Busy => self.expect.front().map(|e| e.stage()),
            Phase::Ready | Phase::Closed | Phase::Failed => None,
        }
    }

    /// Whether TLS is active (implicit, or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session is idle and ready for a transaction.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the session has closed or failed: nothing more will be sent
    /// but what is pending.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// The error that failed the session, if one did.
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The server's capabilities from the latest EHLO (after STARTTLS, only
    /// what it said over TLS).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The mechanism the session authenticated with, once it has.
    pub fn auth_mechanism(&self) -> Option<&Mechanism> {
        self.authenticated.as_ref()
    }

    /// The server's greeting as it was read, whatever its code (with
    /// [`TlsPolicy::Implicit`], the one read over TLS); `None` until it
    /// arrives.
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The server's positive reply to the latest `EHLO`, from which
    /// [`capabilities`](Self::capabilities) was read: its lines after the
    /// first ([`Reply::lines`]) are the keyword lines exactly as the server
    /// sent them, in order. `None` before that reply, after an `EHLO`
    /// refused and answered by `HELO` (which advertises nothing), and after
    /// STARTTLS until the `EHLO` over TLS is answered.
    pub fn ehlo_reply(&self) -> Option<&Reply> {
        self.ehlo.as_ref()
    }

    /// After STARTTLS, the reply to the `EHLO` sent in plaintext, for a
    /// caller that reports what the server offered before TLS. The session
    /// itself has forgotten it (RFC 3207 §4.2) and never consults it.
    /// `None` without STARTTLS (with implicit TLS too).
    pub fn ehlo_reply_before_tls(&self) -> Option<&Reply> {
        self.ehlo_before_tls.as_ref()
    }

    /// The server's final reply to `AUTH`: `235` once authenticated, or
    /// the reply that refused the credentials or ended the exchange (a
    /// `421` too). `None` when no `AUTH` was answered (none was sent, the
    /// exchange was cancelled with `*`, or the connection ended first).
    pub fn auth_reply(&self) -> Option<&Reply> {
        self.auth_reply.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
