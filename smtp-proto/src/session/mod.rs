//! The client session: a deterministic state machine fed with server bytes.
//!
//! The session never touches a socket or a clock. The caller moves bytes:
//! what arrived goes into [`ClientSession::handle_input`], what to send comes
//! out of [`ClientSession::pending_output`], and what to do next comes out of
//! [`ClientSession::poll_event`]. Every decision — TLS policy, the credential
//! guard, mechanism choice, pipelining, per-recipient results — is made here,
//! so adapters stay thin and every transition can be tested with a transcript.

use crate::auth::{select_mechanism, AuthExchange, Mechanism};
use crate::capabilities::Capabilities;
use crate::config::{is_loopback_name, is_valid_server_name, same_server_name, Config, TlsPolicy};
use crate::data::{BodyEncoder, Framing};
use crate::error::{Error, InputField};
use crate::options::Options;
use crate::outcome::Outcome;
use crate::reply::{Reply, ReplyCode, ReplyError, ReplyParser};
use crate::stage::Stage;
use crate::transaction::{Delivery, Envelope, RecipientResult};
use crate::transcript::{Direction, Recorder, TranscriptHook, TranscriptLine, REDACTED};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use core::fmt;
use core::net::IpAddr;
use std::collections::VecDeque;

mod clock;
mod drive;

use clock::Clock;
pub use drive::{Io, Next, BODY_FLUSH};

/// The most `RCPT` commands written ahead of their replies with PIPELINING.
/// RFC 2920 §3.1: a client that writes without reading can deadlock with a
/// server whose replies fill the socket buffers; 100 replies are a few KiB,
/// well inside any buffer, and an envelope of any size then flows as the
/// replies come in.
pub const MAX_RCPT_AHEAD: usize = 100;

/// The most transcript lines kept from earlier calls when the caller does not
/// take them ([`ClientSession::take_transcript`]); the lines of the current
/// call are never dropped, and dropped ones are counted in a note.
pub const MAX_TRANSCRIPT_LINES: usize = 1024;

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

/// The command whose reply is awaited next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Rset,
    Noop,
    Quit,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo | Expect::Helo => Stage::Ehlo,
            Expect::StartTls => Stage::StartTls,
            Expect::Auth => Stage::Auth,
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::Data => Stage::Data,
            Expect::DataEnd => Stage::DataEnd,
            Expect::Rset => Stage::Rset,
            Expect::Noop => Stage::Noop,
            Expect::Quit => Stage::Quit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the caller's TLS handshake; any input now is an error.
    Handshake {
        after_starttls: bool,
    },
    /// Replies are awaited; nothing for the caller to do but move bytes.
    Busy,
    /// Idle between transactions.
    Ready,
    /// The caller is streaming the body.
    Body,
    Closed,
    Failed,
}

/// One transaction in progress.
#[derive(Debug)]
struct Transaction {
    envelope: Envelope,
    pipelined: bool,
    mail_refusal: Option<Reply>,
    recipients: Vec<RecipientResult>,
    /// DATA, or BDAT with the exact size on the wire.
    framing: Framing,
    exact: Option<u64>,
    /// Every byte of the message was written; only replies are awaited.
    body_done: bool,
    /// Why the transaction failed, reported once RSET is answered.
    failure: Option<Error>,
    /// With PIPELINING, how many `RCPT` commands are written (at most
    /// [`MAX_RCPT_AHEAD`] ahead of their replies).
    rcpts_written: usize,
    /// Where its end of data starts in the output stream (counted from the
    /// session's first byte), once [`finish_body`](ClientSession::finish_body)
    /// queued it: from the moment the caller takes that byte, the server
    /// may have the whole message.
    end_of_data: Option<u64>,
}

impl Transaction {
    fn accepted(&self) -> usize {
        self.recipients.iter().filter(|r| r.accepted()).count()
    }

    fn deliverable(&self) -> bool {
        self.mail_refusal.is_none() && self.accepted() > 0
    }

    /// Why nothing can be delivered: MAIL refused, else every RCPT refused.
    fn undeliverable_reason(&mut self) -> Error {
        match self.mail_refusal.take() {
            Some(reply) => Error::Rejected {
                stage: Stage::Mail,
                reply,
            },
            None => Error::RecipientsRejected {
                recipients: core::mem::take(&mut self.recipients),
            },
        }
    }
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
    transcript: Option<Recorder>,
    phase: Phase,
    expect: VecDeque<Expect>,
    caps: Capabilities,
    tls: bool,
    auth: Option<AuthExchange>,
    authenticated: Option<Mechanism>,
    /// Transactions in flight, oldest first: at most two, when the next
    /// message's commands ride behind the previous message (RFC 2920 §3.1).
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
            transcript: config.transcript.then(Recorder::keeping),
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

    /// The dialogue recorded since the last call (only when
    /// [`Config::transcript`] is on), secrets redacted.
    #[must_use]
    pub fn take_transcript(&mut self) -> Vec<TranscriptLine> {
        self.transcript
            .as_mut()
            .map(Recorder::take)
            .unwrap_or_default()
    }

    /// Hands every line of the dialogue recorded from now on to `hook` as it
    /// is recorded, secrets redacted (an adapter's logger, say). Lines go to
    /// [`take_transcript`](Self::take_transcript) only when
    /// [`Config::transcript`] is on.
    pub fn add_transcript_hook(&mut self, hook: TranscriptHook) {
        self.transcript
            .get_or_insert_with(Recorder::default)
            .add_hook(hook);
    }

    /// A caller's call starts: the transcript lines it did not take from
    /// earlier calls are capped (never the lines this call records).
    fn begin_call(&mut self) {
        if let Some(t) = self.transcript.as_mut() {
            t.begin_call(MAX_TRANSCRIPT_LINES);
        }
    }

    // ---- what the caller reports or asks for ----------------------------

    /// Reports the address of the peer the connection reached. Adapters call
    /// this once connected, before feeding the greeting: the credential
    /// guard's loopback exemption holds only when the configured name is a
    /// loopback name *and* the connected peer is a loopback address, so a
    /// `localhost` pointed at a remote host (a hosts file, a `--connect`
    /// override) never gets a password in plaintext. Without a reported
    /// peer the exemption does not apply.
    pub fn set_peer_addr(&mut self, peer: IpAddr) {
        self.peer = Some(peer);
    }

    /// Whether the loopback exemption of the credential guard applies.
    fn loopback_peer(&self) -> bool {
        is_loopback_name(&self.config.server_name)
            && self.peer.is_some_and(|ip| ip.to_canonical().is_loopback())
    }

    /// Reports that the TLS handshake succeeded and which server name the
    /// certificate was verified for. A name other than the configured server
    /// name fails the session ([`Error::TlsNameMismatch`]) with nothing sent.
    ///
    /// After STARTTLS the session forgets every capability it learnt in
    /// plaintext and sends EHLO again (RFC 3207 §4.2).
    pub fn tls_established(&mut self, verified_name: &str) -> Result<(), Error> {
        self.begin_call();
        self.check_alive("tls_established")?;
        let Phase::Handshake { after_starttls } = self.phase else {
            return Err(Error::InvalidState {
                call: "tls_established",
                reason: "no TLS handshake was requested",
            });
        };
        if !same_server_name(&self.config.server_name, verified_name) {
            let err = Error::TlsNameMismatch {
                expected: self.config.server_name.clone(),
                verified: verified_name.to_owned(),
            };
            return Err(self.fail(err));
        }
        self.tls = true;
        self.clock.clear_wait();
        self.clock.reset_reply();
        self.caps = Capabilities::default();
        self.phase = Phase::Busy;
        if after_starttls {
            // Kept for the caller to see, never consulted again here.
            self.ehlo_before_tls = self.ehlo.take();
            self.send_hello(Expect::Ehlo);
        } else {
            self.expect.push_back(Expect::Greeting);
        }
        self.process()
    }

    /// Starts a mail transaction. Nothing is written when the envelope needs
    /// what the server lacks (SMTPUTF8, 8BITMIME, DSN) or the declared size is
    /// over its limit; such an error leaves the session ready.
    ///
    /// With PIPELINING, MAIL, every RCPT and DATA go out in one batch (RFC 2920).
    pub fn send_mail(&mut self, envelope: Envelope) -> Result<(), Error> {
        self.begin_call();
        self.check_alive("send_mail")?;
        if !self.can_send_mail() {
            return Err(Error::InvalidState {
                call: "send_mail",
                reason: "the session is not ready (wait for Event::Ready, or see can_send_mail)",
            });
        }
        envelope.check(&self.caps)?;
        self.leave_idle();
        let pipelined = self.caps.pipelining();
        let (framing, exact) = envelope.framing(&self.caps);
        let start = self.out.len();
        envelope.write_mail(&self.caps, &mut self.out);
        self.record_sent(start);
        self.expect.push_back(Expect::Mail);
        let recipients = envelope.recipients().len();
        let ahead = if pipelined {
            recipients.min(MAX_RCPT_AHEAD)
        } else {
            0
        };
        for i in 0..ahead {
            self.write_rcpt(&envelope, i);
        }
        self.txns.push_back(Transaction {
            envelope,
            pipelined,
            mail_refusal: None,
            // The Delivery's list, allocated once.
            recipients: Vec::with_capacity(recipients),
            framing,
            exact,
            body_done: false,
            failure: None,
            rcpts_written: ahead,
            end_of_data: None,
        });
        self.phase = Phase::Busy;
        // With every RCPT out, DATA or BDAT follows in the same write;
        // otherwise once the last one is written.
        if pipelined && ahead == recipients {
            self.start_body_command();
        }
        self.process()
    }

    /// DATA, or with CHUNKING and a known size `BDAT n LAST` (RFC 3030),
    /// whose body follows at once without waiting for a reply: with
    /// PIPELINING the whole message then costs one round trip.
    fn start_body_command(&mut self) {
        // The newest transaction: the one whose commands are being written.
        let Some(txn) = self.txns.back() else {
            return;
        };
        match (txn.framing, txn.exact) {
            (Framing::Chunked | Framing::Binary, Some(exact)) => {
                let framing = txn.framing;
                let start = self.out.len();
                // Formatted in place: a message costs no allocation here.
                let _ = fmt::Write::write_fmt(&mut self.out, format_args!("BDAT {exact} LAST\r\n"));
                self.record_sent(start);
                self.begin_body(framing);
            }
            _ => self.write_line(b"DATA", Expect::Data),
        }
    }

    fn begin_body(&mut self, framing: Framing) {
        self.phase = Phase::Body;
        self.encoder = BodyEncoder::with_framing(framing);
        self.events.push_back(Event::SendBody);
    }

    /// Appends a chunk of the message, dot-stuffed and with line endings
    /// made CRLF. Call after [`Event::SendBody`]; flush the output as it grows.
    ///
    /// With `BDAT` the server reads exactly the declared number of octets
    /// and takes whatever follows as commands (RFC 3030 §2), so a chunk that
    /// would carry the body past its declared size is refused whole: none of
    /// it is queued, the session fails with [`Error::BodySizeMismatch`], and
    /// the connection must be closed (nothing more is written, not even QUIT:
    /// the server is inside the chunk).
    pub fn write_body(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.check_body("write_body")?;
        let start = self.out.len();
        self.encoder.encode(chunk, &mut self.out);
        if let Some(declared) = self.declared_chunk() {
            let produced = self.encoder.produced();
            if produced > declared {
                self.out.truncate(start);
                return Err(self.fail(Error::BodySizeMismatch {
                    declared,
                    actual: produced,
                }));
            }
            // The chunk is full: its last octet waits for finish_body, which
            // may still find a line break to add and refuse the body.
            if produced == declared && self.out.len() > start {
                let last = self.out.len() - 1;
                self.held = self.out.get(last).copied();
                self.out.truncate(last);
            }
        }
        Ok(())
    }

    /// The exact size of the `BDAT` chunk being written, if one is open.
    fn declared_chunk(&self) -> Option<u64> {
        let txn = self.txns.back()?;
        match txn.framing {
            Framing::Data => None,
            Framing::Chunked | Framing::Binary => txn.exact,
        }
    }

    /// Ends the message and waits for the server's verdict: for DATA, CRLF if
    /// missing and then `.CRLF`; for BDAT, CRLF if missing. A BDAT body whose
    /// length differs from the declared exact size fails the session (the
    /// server is out of step) with the chunk left unfinished: its last octet
    /// is only written once the size is confirmed, so the server never reads
    /// a complete message the client reported as failed.
    ///
    /// Once the end is queued, replies already buffered are processed, so an
    /// error from this call may come after the end of data went out (a
    /// malformed reply read in the same batch, say): the error then says
    /// what failed, not that nothing was sent.
    pub fn finish_body(&mut self) -> Result<(), Error> {
        self.begin_call();
        self.check_body("finish_body")?;
        if self.transcript.is_some() {
            let note = format!("<message body, {} bytes>", self.encoder.consumed());
            self.record(Direction::Client, note.as_bytes());
        }
        let start = self.out.len();
        let total = self.encoder.finish(&mut self.out);
        // Where the end of data starts on the wire; when finishing added
        // nothing (a BDAT chunk whose last octet was not held), the octet
        // before it ends the message.
        let added = self.out.len() > start || self.held.is_some();
        let end_of_data = (self.taken + start as u64).saturating_sub(u64::from(!added));
        match self.declared_chunk() {
            None => self.record(Direction::Client, b"."),
            Some(declared) if declared != total => {
                // The server counts octets: the line break finish added must
                // not cross the declared size either, and nothing after this
                // can be in step.
                self.out.truncate(start);
                return Err(self.fail(Error::BodySizeMismatch {
                    declared,
                    actual: total,
                }));
            }
            Some(_) => {
                // The size is right, so nothing was added at the end: the
                // held octet completes the chunk.
                if let Some(last) = self.held.take() {
                    self.out.put_u8(last);
                }
            }
        }
        if let Some(txn) = self.txns.back_mut() {
            txn.body_done = true;
            txn.end_of_data = Some(end_of_data);
        }
        self.expect.push_back(Expect::DataEnd);
        self.phase = Phase::Busy;
        self.process()
    }

    /// Abandons the session at once, e.g. when the body cannot be read or an
    /// operation was cancelled half-way: the session fails with
    /// [`Error::Aborted`], drops any pending output and writes nothing more
    /// (not even QUIT, since the server may be mid-command). The caller
    /// should close the connection. On a closed or failed session it only
    /// drops the pending output (a `QUIT` that could not be written).
    pub fn abort(&mut self) {
        self.out.clear();
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

    /// Whether [`send_mail`](Self::send_mail) may be called now: the session
    /// is ready, or — with PIPELINING — the one message in flight has been
    /// written completely and only its replies are awaited, so the next
    /// message's commands may ride behind it in the same write (RFC 2920
    /// §3.1: message content may start a group). At most two transactions
    /// are ever in flight, so replies cannot pile up unread.
    #[must_use]
    pub fn can_send_mail(&self) -> bool {
        match self.phase {
            Phase::Ready => true,
            Phase::Busy => {
                self.caps.pipelining()
                    && self.txns.len() == 1
                    && self.txns.front().is_some_and(|t| t.body_done)
            }
            _ => false,
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

    // ---- the state machine ---------------------------------------------

    fn process(&mut self) -> Result<(), Error> {
        loop {
            if let Phase::Handshake { .. } = self.phase {
                // RFC 3207 §5 and the STARTTLS injection studies: nothing may
                // follow the 220 in plaintext, and nothing is read before TLS.
                if self.parser.buffered() > 0 {
                    return Err(self.fail(Error::StartTlsInjection));
                }
                return Ok(());
            }
            if self.phase == Phase::Failed {
                return Err(self.stored_error());
            }
            let Some(&expect) = self.expect.front() else {
                break;
            };
            let reply = match self.parser.next_reply(self.caps.enhanced_status_codes()) {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(source) => {
                    let stage = expect.stage();
                    return Err(self.fail(Error::MalformedReply { stage, source }));
                }
            };
            self.expect.pop_front();
            self.record_reply(&reply);
            match expect {
                Expect::Greeting => self.greeting = Some(reply.clone()),
                Expect::Auth if reply.code() != ReplyCode::AUTH_CHALLENGE => {
                    self.auth_reply = Some(reply.clone());
                }
                _ => {}
            }
            // RFC 5321 §3.8: 421 may come in answer to any command.
            if reply.code() == ReplyCode::SERVICE_UNAVAILABLE && expect != Expect::Quit {
                let stage = expect.stage();
                return Err(self.fail(Error::ServiceClosing { stage, reply }));
            }
            if !reply_fits(expect, &reply) {
                let stage = expect.stage();
                return Err(self.fail(Error::UnexpectedReply { stage, reply }));
            }
            if let Err(err) = self.on_reply(expect, reply) {
                return Err(self.fail(err));
            }
        }
        let limit = self.config.reply_limits.max_buffered();
        if self.parser.buffered() > limit {
            let stage = self.stage().unwrap_or(Stage::Idle);
            let source = ReplyError::Unsolicited { limit };
            return Err(self.fail(Error::MalformedReply { stage, source }));
        }
        Ok(())
    }

    /// Nothing awaited from the server: between commands, or while a body
    /// streams (the server answers only its end).
    fn is_idle(&self) -> bool {
        self.expect.is_empty() && matches!(self.phase, Phase::Ready | Phase::Body)
    }

    /// A reply that arrived while nothing was awaited fails the session at
    /// once: `421` is the server closing (RFC 5321 §3.8: an idle timeout, a
    /// shutdown); anything else puts the dialogue out of step, and the next
    /// command's reply could not be told apart from it. A reply not yet
    /// whole waits for the rest.
    fn unsolicited(&mut self) -> Result<(), Error> {
        let stage = self.stage().unwrap_or(Stage::Idle);
        let reply = match self.parser.next_reply(self.caps.enhanced_status_codes()) {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(()),
            Err(source) => return Err(self.fail(Error::MalformedReply { stage, source })),
        };
        self.record_reply(&reply);
        let err = if reply.code() == ReplyCode::SERVICE_UNAVAILABLE {
            Error::ServiceClosing { stage, reply }
        } else {
            Error::UnexpectedReply { stage, reply }
        };
        Err(self.fail(err))
    }

    fn on_reply(&mut self, expect: Expect, reply: Reply) -> Result<(), Error> {
        match expect {
            Expect::Greeting => {
                if !reply.is_positive() {
                    return Err(Error::Rejected {
                        stage: Stage::Greeting,
                        reply,
                    });
                }
                self.send_hello(Expect::Ehlo);
                Ok(())
            }
            Expect::Ehlo | Expect::Helo => {
                let code = reply.code().get();
                if reply.is_positive() {
                    if expect == Expect::Ehlo {
                        self.caps = Capabilities::from_ehlo(&reply);
                        self.ehlo = Some(reply);
                    } else {
                        self.caps = Capabilities::default();
                        self.ehlo = None;
                    }
                    self.after_hello()
                } else if expect == Expect::Ehlo && matches!(code, 500 | 501 | 502 | 504) {
                    // RFC 5321 §3.2: a server that does not know EHLO gets HELO,
                    // and then there are no extensions. 500/502 (unknown
                    // command), 501 (its argument refused) and 504 (not
                    // implemented) all mean "not EHLO here", as curl, Go and
                    // smtplib read them; 4yz, 550 and 554 stay refusals.
                    self.send_hello(Expect::Helo);
                    Ok(())
                } else {
                    Err(Error::Rejected {
                        stage: Stage::Ehlo,
                        reply,
                    })
                }
            }
            Expect::StartTls => {
                if reply.code() == ReplyCode::SERVICE_READY {
                    self.phase = Phase::Handshake {
                        after_starttls: true,
                    };
                    self.events.push_back(Event::StartTls);
                    Ok(())
                } else if self.config.tls == TlsPolicy::Required {
                    Err(Error::TlsRequired { reply: Some(reply) })
                } else {
                    self.begin_auth()
                }
            }
            Expect::Auth => self.on_auth_reply(reply),
            Expect::Mail | Expect::Rcpt(_) | Expect::Data | Expect::DataEnd | Expect::Rset => {
                self.on_transaction_reply(expect, reply)
            }
            Expect::Noop => {
                if !reply.is_positive() {
                    return Err(Error::Rejected {
                        stage: Stage::Noop,
                        reply,
                    });
                }
                self.become_ready();
                Ok(())
            }
            Expect::Quit => {
                self.close();
                Ok(())
            }
        }
    }

    /// After EHLO/HELO: STARTTLS as the policy says, then AUTH, then ready.
    fn after_hello(&mut self) -> Result<(), Error> {
        if !self.tls {
            let policy = self.config.tls;
            let offered = self.caps.starttls();
            match policy {
                TlsPolicy::Required | TlsPolicy::Opportunistic if offered => {
                    self.write_line(b"STARTTLS", Expect::StartTls);
                    return Ok(());
                }
                TlsPolicy::Required => return Err(Error::TlsRequired { reply: None }),
                _ => {}
            }
        }
        self.begin_auth()
    }

    /// The credential guard and the start of AUTH. Every mechanism passes
    /// here before its first byte is written.
    fn begin_auth(&mut self) -> Result<(), Error> {
        let Some(credentials) = &self.config.credentials else {
            self.become_ready();
            return Ok(());
        };
        // TLS, or a loopback name whose connected peer is loopback too (a name
        // alone proves nothing: `localhost` may be connected anywhere), or the
        // caller's explicit consent; otherwise nothing of AUTH is written.
        if !(self.tls || self.loopback_peer() || self.config.allow_insecure_auth) {
            return Err(Error::InsecureAuth);
        }
        let offered = self
            .caps
            .auth_advertised()
            .then(|| self.caps.auth_mechanisms());
        let mechanism = select_mechanism(offered, credentials, self.config.mechanism.as_ref())?;
        let mut exchange = AuthExchange::new(mechanism, credentials)?;
        let mut line = exchange.command();
        let redacted_len = b"AUTH ".len() + exchange.mechanism().as_str().len();
        self.out.put_slice(&line);
        self.out.put_slice(b"\r\n");
        if line.len() > redacted_len {
            line.truncate(redacted_len);
            line.push(b' ');
            line.extend_from_slice(REDACTED);
        }
        self.record(Direction::Client, &line);
        self.expect.push_back(Expect::Auth);
        self.auth = Some(exchange);
        Ok(())
    }

    fn on_auth_reply(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(exchange) = self.auth.as_mut() else {
            return Err(Error::UnexpectedReply {
                stage: Stage::Auth,
                reply,
            });
        };
        if reply.code() == ReplyCode::AUTH_SUCCEEDED {
            self.authenticated = Some(exchange.mechanism().clone());
            self.auth = None;
            self.become_ready();
            return Ok(());
        }
        if reply.code() == ReplyCode::AUTH_CHALLENGE {
            let challenge = reply.lines().next().unwrap_or_default();
            return match exchange.respond(challenge) {
                Ok(response) => {
                    self.out.put_slice(&response);
                    self.out.put_slice(b"\r\n");
                    self.record(Direction::Client, REDACTED);
                    self.expect.push_back(Expect::Auth);
                    Ok(())
                }
                Err(err) => {
                    // RFC 4954 §4: "*" cancels the exchange; the secret stays here.
                    self.out.put_slice(b"*\r\n");
                    self.record(Direction::Client, b"*");
                    Err(err)
                }
            };
        }
        Err(Error::AuthFailed {
            mechanism: exchange.mechanism().clone(),
            detail: exchange.error_detail().map(str::to_owned),
            reply: Box::new(reply),
        })
    }

    fn on_transaction_reply(&mut self, expect: Expect, reply: Reply) -> Result<(), Error> {
        // Replies belong to the oldest transaction in flight.
        let Some(mut txn) = self.txns.pop_front() else {
            return Err(Error::UnexpectedReply {
                stage: expect.stage(),
                reply,
            });
        };
        let outcome = match expect {
            Expect::Mail => {
                if !reply.is_positive() {
                    txn.mail_refusal = Some(reply);
                    if !txn.pipelined {
                        self.abort_transaction(&mut txn);
                    }
                } else if !txn.pipelined {
                    self.write_rcpt(&txn.envelope, 0);
                }
                None
            }
            Expect::Rcpt(i) => {
                let Some(rcpt) = txn.envelope.recipients().get(i) else {
                    return Err(Error::UnexpectedReply {
                        stage: Stage::Rcpt,
                        reply,
                    });
                };
                let result = RecipientResult::new(rcpt.address().clone(), reply);
                txn.recipients.push(result);
                let total = txn.envelope.recipients().len();
                if txn.pipelined && txn.rcpts_written < total {
                    // One reply in, one more RCPT out; after the last one,
                    // DATA or BDAT.
                    self.write_rcpt(&txn.envelope, txn.rcpts_written);
                    txn.rcpts_written += 1;
                    if txn.rcpts_written == total {
                        self.txns.push_front(txn);
                        self.start_body_command();
                        return Ok(());
                    }
                }
                if !txn.pipelined {
                    if i + 1 < txn.envelope.recipients().len() {
                        self.write_rcpt(&txn.envelope, i + 1);
                    } else if txn.accepted() > 0 {
                        self.txns.push_front(txn);
                        self.start_body_command();
                        return Ok(());
                    } else {
                        // No DATA when every recipient was refused.
                        self.abort_transaction(&mut txn);
                    }
                }
                None
            }
            Expect::Data => {
                if reply.code() == ReplyCode::START_MAIL_INPUT {
                    if txn.deliverable() {
                        self.begin_body(Framing::Data);
                    } else {
                        // RFC 2920 §3.1: DATA was pipelined and accepted although
                        // nothing can be delivered; end it at once with an empty
                        // body (the final reply then reports why, below).
                        self.write_line(b".", Expect::DataEnd);
                    }
                } else {
                    if txn.deliverable() {
                        txn.failure = Some(Error::MessageRejected {
                            stage: Stage::Data,
                            reply,
                            recipients: core::mem::take(&mut txn.recipients),
                        });
                    }
                    self.abort_transaction(&mut txn);
                }
                None
            }
            Expect::DataEnd => {
                let refused = !reply.is_positive();
                // Nothing deliverable: the body was cut to the terminator, or
                // a pipelined BDAT went out before MAIL and RCPT were answered.
                let result = if !txn.deliverable() {
                    Err(txn.undeliverable_reason())
                } else if !refused {
                    Ok(Delivery::new(core::mem::take(&mut txn.recipients), reply))
                } else {
                    Err(Error::MessageRejected {
                        stage: Stage::DataEnd,
                        reply,
                        recipients: core::mem::take(&mut txn.recipients),
                    })
                };
                // RFC 5321 §4.1.1.4: the reply to the final dot ends the
                // transaction either way. RFC 3030 says only that a refused
                // BDAT fails the transaction, not that it ends it, so what
                // the server kept is up to it: RSET makes it explicit, unless
                // the next message's commands already went out behind it,
                // where a RSET would land inside that message.
                match result {
                    Err(failure)
                        if refused && txn.framing != Framing::Data && self.txns.is_empty() =>
                    {
                        txn.failure = Some(failure);
                        self.abort_transaction(&mut txn);
                        None
                    }
                    result => Some(result),
                }
            }
            Expect::Rset => {
                if !reply.is_positive() {
                    return Err(Error::Rejected {
                        stage: Stage::Rset,
                        reply,
                    });
                }
                Some(Err(match txn.failure.take() {
                    Some(failure) => failure,
                    None => txn.undeliverable_reason(),
                }))
            }
            _ => None,
        };
        match outcome {
            Some(result) => self.complete_transaction(result),
            None => self.txns.push_front(txn),
        }
        Ok(())
    }

    /// RFC 5321 §4.1.1.5: RSET after a transaction that failed part-way; the
    /// failure is reported once RSET is answered. Without a failure recorded,
    /// it is that nothing was deliverable.
    fn abort_transaction(&mut self, txn: &mut Transaction) {
        if txn.failure.is_none() {
            txn.failure = Some(txn.undeliverable_reason());
        }
        self.write_line(b"RSET", Expect::Rset);
    }

    /// The oldest transaction (already taken off the queue) is over; the
    /// session is ready when no other is in flight.
    fn complete_transaction(&mut self, result: Result<Delivery, Error>) {
        self.events.push_back(Event::TransactionComplete(result));
        if self.txns.is_empty() {
            self.become_ready();
        }
    }

    /// The caller acted on the idle session before polling every event: a
    /// `Ready` still queued would now be stale, so it goes.
    fn leave_idle(&mut self) {
        self.events.retain(|e| *e != Event::Ready);
    }

    fn become_ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(Event::Ready);
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.expect.clear();
        self.events.push_back(Event::Closed);
    }

    /// Fails the session once; later calls get the same error back.
    fn fail(&mut self, err: Error) -> Error {
        if self.phase == Phase::Failed {
            return self.stored_error();
        }
        // Inside a message the server reads every byte as content (and
        // inside a BDAT chunk, counts it): a QUIT written now would end up in
        // the message, or complete a chunk and deliver it truncated. The
        // connection is closed instead.
        if self.phase == Phase::Body {
            self.quit_sent = true;
        }
        self.phase = Phase::Failed;
        self.held = None;
        self.expect.clear();
        // Nothing may invite the caller to go on (a handshake, a body) after
        // a failure; finished transactions are still reported.
        self.events
            .retain(|e| matches!(e, Event::TransactionComplete(_) | Event::Closed));
        let taken = self.taken;
        self.unfinished = self
            .txns
            .drain(..)
            .map(|txn| match txn.end_of_data {
                Some(at) if taken > at => Outcome::Unknown,
                _ => Outcome::NotSent,
            })
            .collect();
        self.auth = None;
        if sends_quit(&err) && !self.quit_sent {
            self.quit_sent = true;
            self.out.put_slice(b"QUIT\r\n");
            self.record(Direction::Client, b"QUIT");
        }
        self.error = Some(err.clone());
        err
    }

    fn stored_error(&self) -> Error {
        self.error.clone().unwrap_or(Error::InvalidState {
            call: "handle_input",
            reason: "the session has failed",
        })
    }

    fn check_alive(&self, call: &'static str) -> Result<(), Error> {
        match self.phase {
            Phase::Failed => Err(self.stored_error()),
            Phase::Closed => Err(Error::InvalidState {
                call,
                reason: "the session is closed",
            }),
            _ => Ok(()),
        }
    }

    fn check_ready(&self, call: &'static str) -> Result<(), Error> {
        self.check_alive(call)?;
        if self.phase != Phase::Ready {
            return Err(Error::InvalidState {
                call,
                reason: "the session is not ready (wait for Event::Ready)",
            });
        }
        Ok(())
    }

    fn check_body(&self, call: &'static str) -> Result<(), Error> {
        self.check_alive(call)?;
        if self.phase != Phase::Body {
            return Err(Error::InvalidState {
                call,
                reason: "no body is expected (wait for Event::SendBody)",
            });
        }
        Ok(())
    }

    // ---- writing --------------------------------------------------------

    fn send_hello(&mut self, expect: Expect) {
        let verb: &[u8] = if expect == Expect::Helo {
            b"HELO "
        } else {
            b"EHLO "
        };
        let start = self.out.len();
        self.out.put_slice(verb);
        self.out
            .put_slice(self.config.ehlo_name.as_str().as_bytes());
        self.out.put_slice(b"\r\n");
        self.record_sent(start);
        self.expect.push_back(expect);
    }

    fn write_line(&mut self, line: &[u8], expect: Expect) {
        self.out.put_slice(line);
        self.out.put_slice(b"\r\n");
        self.record(Direction::Client, line);
        self.expect.push_back(expect);
    }

    fn write_rcpt(&mut self, envelope: &Envelope, index: usize) {
        let start = self.out.len();
        envelope.write_rcpt(index, &mut self.out);
        self.record_sent(start);
        self.expect.push_back(Expect::Rcpt(index));
    }

    // ---- transcript -------------------------------------------------------

    fn record(&mut self, direction: Direction, line: &[u8]) {
        if let Some(t) = self.transcript.as_mut() {
            t.push(direction, line);
        }
    }

    /// Records the command line written since `start` (never a secret).
    fn record_sent(&mut self, start: usize) {
        if self.transcript.is_some() {
            let line = self.out[start..].to_vec();
            self.record(Direction::Client, &line);
        }
    }

    fn record_reply(&mut self, reply: &Reply) {
        if self.transcript.is_some() {
            for line in reply.as_bytes().split_inclusive(|&b| b == b'\n') {
                let line = line.to_vec();
                self.record(Direction::Server, &line);
            }
        }
    }
}

/// Whether a reply's class makes sense for the command: `3yz` only as `334`
/// to AUTH and `354` to DATA, and DATA never `2yz` (RFC 5321 §4.3.2).
fn reply_fits(expect: Expect, reply: &Reply) -> bool {
    let code = reply.code();
    match expect {
        Expect::Auth => !code.is_intermediate() || code == ReplyCode::AUTH_CHALLENGE,
        Expect::Data => {
            !code.is_positive() && (!code.is_intermediate() || code == ReplyCode::START_MAIL_INPUT)
        }
        _ => !code.is_intermediate(),
    }
}

/// Whether the session says QUIT after this error: yes when the dialogue is
/// still in step and the peer is the one we meant to talk to; no after a
/// `421`, a dropped connection, a garbled stream, injected plaintext or the
/// wrong TLS peer.
fn sends_quit(err: &Error) -> bool {
    !matches!(
        err,
        Error::ServiceClosing { .. }
            | Error::ConnectionClosed { .. }
            | Error::MalformedReply { .. }
            | Error::StartTlsInjection
            | Error::TlsNameMismatch { .. }
            | Error::Aborted
            | Error::Timeout { .. }
            | Error::TimeLimit { .. }
    )
}
