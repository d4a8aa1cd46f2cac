//! The driving contract: one step function an adapter calls in a loop,
//! which says what I/O the session needs next, with its deadline, or hands
//! over an event.

use super::{ClientSession, Phase};
use crate::error::Error;
use crate::session::Event;
use crate::stage::Stage;
use std::time::Instant;

/// How much body output the session lets build up before it asks for a
/// write ([`Next::Io`] with [`Io::Write`] while the body streams): bounded
/// memory for a body of any size, and few writes. Below it the output
/// waits, so a small message's end goes out in one write with the next
/// message's commands (RFC 2920 §3.1).
pub const BODY_FLUSH: usize = 64 * 1024;

/// What the session needs from its adapter next ([`ClientSession::next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Next {
    /// Perform this I/O, then call [`next`](ClientSession::next) again.
    Io(Io),
    /// The body is wanted: feed it to
    /// [`write_body`](ClientSession::write_body), a chunk per call of
    /// `next`, then call [`finish_body`](ClientSession::finish_body).
    Body,
    /// An event for the caller. [`Event::StartTls`] and [`Event::SendBody`]
    /// never come this way: they are [`Io::Handshake`] and [`Next::Body`].
    Event(Event),
}

/// The I/O an adapter performs for the session, each before its deadline
/// (`None`: no deadline). When a deadline passes first, the adapter calls
/// [`handle_timeout`](ClientSession::handle_timeout) (or `next` again) with
/// the time, and the session fails with [`Error::Timeout`] or
/// [`Error::TimeLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Io {
    /// Write some of [`pending_output`](ClientSession::pending_output) (one
    /// write call is enough) and report how much with
    /// [`advance_output`](ClientSession::advance_output). An error of the
    /// connection is the adapter's: it calls
    /// [`abort`](ClientSession::abort) and gives the connection up.
    Write {
        /// The step the bytes belong to.
        stage: Stage,
        /// By when the write must make progress.
        deadline: Option<Instant>,
    },
    /// Write some of the body bytes [`write_body_direct`](ClientSession::write_body_direct)
    /// lent: the last `len` of the bytes its latest call took, from the
    /// caller's own buffer (one write call is enough), and report how many
    /// with [`advance_body`](ClientSession::advance_body). Nothing is
    /// pending before them. An error of the connection is the adapter's, as
    /// with [`Io::Write`].
    WriteBody {
        /// How many lent bytes are still to be written.
        len: usize,
        /// By when the write must make progress.
        deadline: Option<Instant>,
    },
    /// Read what the server sends and feed it to
    /// [`handle_input`](ClientSession::handle_input), or the end of the
    /// stream to [`handle_eof`](ClientSession::handle_eof).
    Read {
        /// The step whose reply is awaited.
        stage: Stage,
        /// By when the whole reply must have arrived.
        deadline: Option<Instant>,
    },
    /// Start TLS: first read what has already arrived in plaintext, without
    /// waiting, and feed it to [`handle_input`](ClientSession::handle_input)
    /// (the session refuses it, RFC 3207 §5; then call `next`, which says
    /// so); then perform the handshake over the plaintext connection,
    /// verifying the certificate for the configured server name
    /// ([`Config::server_name`](crate::Config::server_name), IPv6 brackets
    /// stripped), and report that name with
    /// [`tls_established`](ClientSession::tls_established). No plaintext
    /// byte may reach the TLS layer.
    Handshake {
        /// By when the handshake must be done.
        deadline: Option<Instant>,
    },
    /// The session failed: write what is pending (a `QUIT`) as best you can
    /// before the deadline, ignoring errors (on one, call
    /// [`abort`](ClientSession::abort)), then call `next`, which reports the
    /// failure.
    Close {
        /// By when to give up.
        deadline: Option<Instant>,
    },
}

impl Io {
    /// The instant this I/O must be done by.
    pub fn deadline(&self) -> Option<Instant> {
        match *self {
            Io::Write { deadline, .. }
            | Io::WriteBody { deadline, .. }
            | Io::Read { deadline, .. }
            | Io::Handshake { deadline }
            | Io::Close { deadline } => deadline,
        }
    }
}

impl ClientSession {
    /// The next step, at `now` on the caller's clock: the one function an
    /// adapter calls in a loop (the style of quinn-proto's
    /// `poll_transmit`/`poll_timeout` and imap-next's `next`).
    ///
    /// # The calling contract
    ///
    /// ```text
    /// loop {
    ///     match session.next(now())? {
    ///         Next::Io(Io::Write { deadline, .. })  => write some of pending_output(), advance_output(n)
    ///         Next::Io(Io::WriteBody { len, .. })   => write some of the last len bytes write_body_direct took, advance_body(n)
    ///         Next::Io(Io::Read { deadline, .. })   => read, handle_input(bytes) or handle_eof()
    ///         Next::Io(Io::Handshake { deadline })  => feed plaintext already there, TLS handshake, tls_established(name)
    ///         Next::Io(Io::Close { deadline })      => write pending_output() as best you can
    ///         Next::Body                            => write_body(chunk) ... finish_body()
    ///         Next::Event(event)                    => hand it to the caller
    ///     }
    /// }
    /// ```
    ///
    /// - Output comes first: while anything is pending it is
    ///   [`Io::Write`] (while a body streams, only once [`BODY_FLUSH`]
    ///   bytes are pending, so a message's end waits for the next
    ///   message's commands to go out with it).
    /// - Then queued events, oldest first; then what the phase needs: a
    ///   read while replies are awaited, the handshake, the body; when idle,
    ///   [`Event::Ready`] (after `QUIT` is answered, [`Event::Closed`]), as
    ///   often as it is asked.
    /// - Every wait has a deadline from the per-stage timeouts (RFC 5321
    ///   §4.5.3.2) and the time limit ([`Options`](crate::Options)): a reply
    ///   must arrive whole within its stage's timeout, counted from when the
    ///   command was written whole; each write must make progress within
    ///   it. [`poll_timeout`](Self::poll_timeout) repeats the deadline of the
    ///   last wait. A wait whose deadline has passed at `now` fails the
    ///   session here.
    /// - The set-up's time limit counts from
    ///   [`start_connect`](Self::start_connect), or else from the first call,
    ///   until the first [`Event::Ready`].
    /// - After a failure: [`Io::Close`] while a `QUIT` is pending, the
    ///   transactions that completed before it, then the error, at every
    ///   call.
    ///
    /// A [`Batch`](crate::Batch) drives `next` for a series of messages.
    pub fn next(&mut self, now: Instant) -> Result<Next, Error> {
        self.clock.begin_setup(now);
        if let Some(err) = self.clock.expired(now) {
            self.time_out(err);
        }
        if self.phase == Phase::Failed {
            if !self.out.is_empty() {
                let deadline = self.clock.close(now);
                return Ok(Next::Io(Io::Close { deadline }));
            }
            self.clock.clear_wait();
            return match self.events.pop_front() {
                Some(event) => Ok(Next::Event(event)),
                None => Err(self.stored_error()),
            };
        }
        // Lent body bytes go right after what is pending.
        let flush = self.phase != Phase::Body || self.out.len() >= BODY_FLUSH || self.lent > 0;
        if flush && !self.out.is_empty() {
            let stage = self.stage().unwrap_or(Stage::Quit);
            let deadline = self.clock.write(stage, now);
            return self.wait(Io::Write { stage, deadline }, now);
        }
        if self.lent > 0 {
            let deadline = self.clock.write(Stage::Body, now);
            let len = self.lent;
            return self.wait(Io::WriteBody { len, deadline }, now);
        }
        match self.events.pop_front() {
            // Handed out as what the phase needs, below.
            Some(Event::StartTls | Event::SendBody) | None => {}
            Some(event) => return Ok(self.event(event)),
        }
        match self.phase {
            Phase::Handshake { .. } => {
                let deadline = self.clock.write(Stage::TlsHandshake, now);
                self.wait(Io::Handshake { deadline }, now)
            }
            Phase::Body => {
                self.clock.clear_wait();
                Ok(Next::Body)
            }
            Phase::Ready => Ok(self.event(Event::Ready)),
            Phase::Closed => {
                self.clock.clear_wait();
                Ok(Next::Event(Event::Closed))
            }
            Phase::Busy => match self.stage() {
                // A stage while busy is the reply awaited (`wants_input`).
                Some(stage) => {
                    let deadline = self.clock.read(stage, now);
                    self.wait(Io::Read { stage, deadline }, now)
                }
                _ => Err(Error::InvalidState {
                    call: "next",
                    reason: "the session awaits nothing and has nothing to say",
                }),
            },
            Phase::Failed => Err(self.stored_error()),
        }
    }

    /// The deadline of the wait [`next`](Self::next) handed out last, if it
    /// has one: when the adapter should wake up and call
    /// [`handle_timeout`](Self::handle_timeout). `None` when nothing is
    /// awaited.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.poll_timeout()
    }

    /// Tells the session the time is `now`, after the deadline of the wait
    /// it handed out passed (a deadline not yet reached is ignored): the
    /// session fails with [`Error::Timeout`] for the stage, or
    /// [`Error::TimeLimit`] when the time limit ran out. Nothing more is
    /// written, not even `QUIT` (the server may be mid-command, or
    /// mid-message): the adapter closes the connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(err) = self.clock.expired(now) {
            self.time_out(err);
        }
    }

    /// Connecting begins at `now`: the set-up's time limit counts from here
    /// (else from the first call of [`next`](Self::next)). Returns by when
    /// the connection must be made, name resolution and every address tried
    /// included: [`Options::connect_timeout`](crate::Options::connect_timeout)
    /// within the time limit (`None`: no deadline).
    pub fn start_connect(&mut self, now: Instant) -> Option<Instant> {
        self.clock.connect(now)
    }

    /// A unit of work (a message of a batch) starts at `now`, with the whole
    /// time limit.
    pub(crate) fn start_unit(&mut self, now: Instant) {
        self.clock.start(now);
    }

    /// Whether the caller is streaming a body.
    pub(crate) fn is_streaming_body(&self) -> bool {
        self.phase == Phase::Body
    }

    /// The unit of work ended.
    pub(crate) fn stop_unit(&mut self) {
        self.clock.stop();
    }

    fn time_out(&mut self, err: Error) {
        self.clock.clear_wait();
        // Like abort: the peer may be mid-command, so nothing more goes out.
        self.out.clear();
        self.lent = 0;
        // A server that already closed the session (a 221 read ahead of a
        // QUIT not yet written) leaves it closed, not failed.
        if self.phase == Phase::Closed {
            return;
        }
        let _ = self.fail(err);
    }

    /// `io`, unless its deadline has passed at `now`: then the session
    /// fails here.
    fn wait(&mut self, io: Io, now: Instant) -> Result<Next, Error> {
        match self.clock.expired(now) {
            Some(err) => {
                self.time_out(err);
                // Failed now: transactions that completed before the
                // timeout are handed out before the error (one level: the
                // failed branch of `next` never waits).
                self.next(now)
            }
            None => Ok(Next::Io(io)),
        }
    }

    /// An event handed out; the first [`Event::Ready`] ends the set-up.
    fn event(&mut self, event: Event) -> Next {
        self.clock.clear_wait();
        if event == Event::Ready {
            self.clock.setup_done();
        }
        Next::Event(event)
    }
}
