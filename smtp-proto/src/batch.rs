//! A series of messages over one session: when the next message may start,
//! what each step means, which result belongs to which message, and what
//! becomes of the rest when the connection fails. Every adapter drives this
//! one machine, so no two can disagree about a batch.

use crate::error::Error;
use crate::outcome::Outcome;
use crate::session::{ClientSession, Event, Io, Next};
use crate::transaction::{Delivery, Envelope};
use std::time::Instant;

/// What an adapter's error type must be able to say about a message of a
/// batch besides the session's own errors.
pub trait BatchError: From<Error> {
    /// The connection failed before this message's turn: nothing of its end
    /// of data was written, so it was not delivered and may be sent again.
    fn not_sent() -> Self;
    /// The message's end of data was handed to the connection and no final
    /// reply came: `cause` ended the connection first, and the server may
    /// have the message ([`Outcome::Unknown`]).
    fn delivery_unknown(cause: Self) -> Self;
}

/// What a batch that failed does with the messages it had not yet taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rest {
    /// Reports each [`BatchError::not_sent`]: one result per message (for a
    /// batch whose results are collected, so its input is finite).
    NotSent,
    /// Leaves them in the iterator, which may be endless.
    Drop,
}

/// What the adapter does next for a [`Batch`].
#[derive(Debug)]
#[must_use]
pub enum Step<'a, B> {
    /// Perform this I/O for the session ([`Next::Io`]), then call
    /// [`Batch::next`] again. On an error of the connection, call
    /// [`Batch::fail`].
    Io(Io),
    /// Read a chunk of this body and feed it to
    /// [`ClientSession::write_body`], or at its end call
    /// [`ClientSession::finish_body`]; then call [`Batch::next`] again. When
    /// the body cannot be read, call [`Batch::fail`].
    Body(&'a mut B),
    /// Every message went and every result was reported (after a failure
    /// too: the session then says why it ended).
    Done,
}

/// What [`Batch::advance`] found to do.
enum Kind {
    Io(Io),
    Body,
    Done,
}

enum State<B> {
    /// The next message goes as soon as the session takes it.
    Next,
    /// A message the session refused before writing anything: reported
    /// after the transactions ahead of it.
    Refused(Error),
    /// Sent; awaiting its body's turn or its refusal. Its result is the
    /// `mine`-th of the batch.
    Started { mine: usize, body: B },
    /// Its body is being written.
    Body(B),
    /// No message left: the results in flight are collected.
    Draining,
    /// Every result was reported.
    Finished,
}

/// One batch over a session: its messages `I` (envelope and body `B`), and
/// where their results go (`F`, one per message, in order, each a
/// [`Delivery`] or the adapter's error `E`).
///
/// The adapter loops on [`next`](Self::next) until [`Step::Done`]. The batch
/// starts each message as soon as the session takes it: with PIPELINING its
/// commands ride behind the previous message's end of data (RFC 2920 §3.1):
/// two transactions in flight with DATA, a window of them with CHUNKING
/// ([`can_send_mail`](ClientSession::can_send_mail)). Each message has the
/// whole time limit ([`Options::time_limit`](crate::Options::time_limit))
/// from the previous message's result. A transaction the server refused is
/// that message's result and the batch goes on; a failure of the session or
/// of the connection ([`fail`](Self::fail)) ends it, each message in flight
/// getting its outcome as the session judged it.
pub struct Batch<I, B, F, E> {
    messages: I,
    on_result: F,
    rest: Rest,
    reported: usize,
    /// The result count at which the current message's time started.
    timed: Option<usize>,
    in_flight: usize,
    state: State<B>,
    error: core::marker::PhantomData<fn() -> E>,
}

impl<I, B, F, E> core::fmt::Debug for Batch<I, B, F, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Batch")
            .field("reported", &self.reported)
            .field("in_flight", &self.in_flight)
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl<I, B, F, E> Batch<I, B, F, E>
where
    I: Iterator<Item = (Envelope, B)>,
    F: FnMut(Result<Delivery, E>),
    E: BatchError,
{
    /// A batch of `messages` whose results go to `on_result`; when it fails,
    /// the messages not yet taken go as `rest` says.
    pub fn new(messages: I, rest: Rest, on_result: F) -> Self {
        Batch {
            messages,
            on_result,
            rest,
            reported: 0,
            timed: None,
            in_flight: 0,
            state: State::Next,
            error: core::marker::PhantomData,
        }
    }

    /// The next step at `now`. Starts the next message when the session
    /// takes it, collects results, and hands out the session's I/O and each
    /// body in turn.
    pub fn next(&mut self, session: &mut ClientSession, now: Instant) -> Step<'_, B> {
        match self.advance(session, now) {
            Kind::Io(io) => Step::Io(io),
            Kind::Body => match &mut self.state {
                State::Body(body) => Step::Body(body),
                // `advance` hands out a body only in this state.
                _ => Step::Done,
            },
            Kind::Done => Step::Done,
        }
    }

    fn advance(&mut self, session: &mut ClientSession, now: Instant) -> Kind {
        loop {
            if self.timed != Some(self.reported) {
                self.timed = Some(self.reported);
                session.start_unit(now);
            }
            match core::mem::replace(&mut self.state, State::Next) {
                State::Finished => {
                    self.state = State::Finished;
                    session.stop_unit();
                    return Kind::Done;
                }
                State::Next if session.can_send_mail() => {
                    let Some((envelope, body)) = self.messages.next() else {
                        self.state = State::Draining;
                        continue;
                    };
                    match session.send_mail(envelope) {
                        Ok(()) => {
                            self.in_flight += 1;
                            let mine = self.reported + self.in_flight;
                            self.state = State::Started { mine, body };
                        }
                        // The session failed: the next step says so, and this
                        // message, none being in flight, gets that error.
                        Err(_) if session.is_closed() => {}
                        // Nothing was written (SIZE, SMTPUTF8...): this
                        // message only.
                        Err(err) => self.state = State::Refused(err),
                    }
                }
                State::Refused(err) if self.in_flight == 0 => self.report(Err(E::from(err))),
                State::Draining if self.in_flight == 0 => self.state = State::Finished,
                // The body was finished (or the session failed in it).
                State::Body(_) if !session.is_streaming_body() => {}
                state => {
                    self.state = match (session.next(now), state) {
                        (Ok(Next::Io(io)), state) => {
                            self.state = state;
                            return Kind::Io(io);
                        }
                        (Ok(Next::Body), State::Started { body, .. } | State::Body(body)) => {
                            self.state = State::Body(body);
                            return Kind::Body;
                        }
                        (Ok(Next::Event(Event::TransactionComplete(result))), state) => {
                            self.complete(result);
                            match state {
                                // The started message's own result: refused
                                // before its body.
                                State::Started { mine, .. } if mine == self.reported => State::Next,
                                state => state,
                            }
                        }
                        // Never `Ready`: the batch starts the next message, or
                        // is done, before the session can be idle, and the
                        // session drops a `Ready` left queued when a message
                        // starts.
                        (Ok(_), state) => {
                            self.state = state;
                            self.out_of_step(session);
                            State::Finished
                        }
                        (Err(err), state) => {
                            self.state = state;
                            self.fail(session, E::from(err));
                            State::Finished
                        }
                    };
                }
            }
        }
    }

    /// The body being written, while there is one (from the
    /// [`Step::Body`] that asked for it until it is finished): where an
    /// adapter finds the bytes [`Io::WriteBody`] asks it to write, when the
    /// body lent them from its own buffer
    /// ([`ClientSession::write_body_direct`]).
    pub fn body(&mut self) -> Option<&mut B> {
        match &mut self.state {
            State::Body(body) => Some(body),
            _ => None,
        }
    }

    /// Ends the batch on `err`, which ended the connection (an I/O error, a
    /// body that could not be read), or the session's own failure.
    /// Transactions that completed before it keep their results. Each one
    /// still in flight gets one as the session judged it
    /// ([`ClientSession::unfinished`]): the first `err`, the others
    /// [`BatchError::not_sent`], each wrapped in
    /// [`BatchError::delivery_unknown`] when its end of data had gone out.
    /// With none in flight, `err` is the result of the message the batch was
    /// starting. The messages not yet taken go as [`Rest`] says. The next
    /// step is [`Step::Done`].
    pub fn fail(&mut self, session: &mut ClientSession, err: E) {
        if let State::Finished = self.state {
            return;
        }
        // An I/O error is news to the session: it stops here (nothing more
        // is written) and judges what was in flight. A session that failed
        // by itself is left as it is.
        session.abort();
        while let Some(event) = session.poll_event() {
            if let Event::TransactionComplete(result) = event {
                self.complete(result);
            }
        }
        let mut err = Some(err);
        for n in 0..core::mem::take(&mut self.in_flight) {
            let unknown = session.unfinished().get(n) == Some(&Outcome::Unknown);
            let cause = match err.take() {
                Some(err) => err,
                // What ended the session, as the session knows it.
                None if unknown => E::from(session.error().cloned().unwrap_or(Error::Aborted)),
                None => E::not_sent(),
            };
            self.report(Err(if unknown {
                E::delivery_unknown(cause)
            } else {
                cause
            }));
        }
        // A message the session refused before writing it, waiting for the
        // results ahead of it.
        if let State::Refused(refused) = core::mem::replace(&mut self.state, State::Finished) {
            self.report(Err(E::from(refused)));
        }
        if let Some(err) = err {
            self.report(Err(err));
        }
        if let Rest::NotSent = self.rest {
            while self.messages.next().is_some() {
                self.report(Err(E::not_sent()));
            }
        }
    }

    /// The session handed out something that has no place in a batch: a
    /// bug, after which the batch gives the connection up.
    fn out_of_step(&mut self, session: &mut ClientSession) {
        let err = Error::InvalidState {
            call: "Batch::next",
            reason: "the session produced a step out of place in a batch",
        };
        self.fail(session, E::from(err));
    }

    fn report(&mut self, result: Result<Delivery, E>) {
        self.reported += 1;
        (self.on_result)(result);
    }

    /// The oldest transaction in flight finished.
    fn complete(&mut self, result: Result<Delivery, Error>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.report(result.map_err(E::from));
    }
}

#[cfg(test)]
mod tests {
    //! The batch machine driven as an adapter drives it, against a server
    //! that answers one reply at a time and only when the session waits for
    //! one: no sockets, so every decision is checked in microseconds.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::{Address, Config, Stage, TlsPolicy};

    /// A batch's error in these tests: the session's, or the two a batch
    /// adds.
    #[derive(Debug)]
    enum TestError {
        Smtp(Error),
        NotSent,
        Unknown(Box<TestError>),
    }

    impl From<Error> for TestError {
        fn from(err: Error) -> Self {
            TestError::Smtp(err)
        }
    }

    impl BatchError for TestError {
        fn not_sent() -> Self {
            TestError::NotSent
        }
        fn delivery_unknown(cause: Self) -> Self {
            TestError::Unknown(Box::new(cause))
        }
    }

    impl core::fmt::Display for TestError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                TestError::Smtp(err) => write!(f, "{err}"),
                TestError::NotSent => f.write_str("not sent"),
                TestError::Unknown(cause) => write!(f, "delivery unknown: {cause}"),
            }
        }
    }

    /// Feeds the whole of `body` at once, or ends it once it is empty.
    fn feed(session: &mut ClientSession, body: &mut &[u8]) -> Result<(), Error> {
        if body.is_empty() {
            session.finish_body()
        } else {
            session.write_body(core::mem::take(body))
        }
    }

    /// What a run produced.
    #[derive(Debug, Default)]
    struct Run {
        results: Vec<Result<u16, String>>,
        /// Everything the client wrote.
        wire: String,
        /// What the client had written each time a reply was read.
        at_reply: Vec<String>,
    }

    fn envelope(to: &str) -> Envelope {
        Envelope::new(
            Some(Address::new("me@example.com").unwrap()),
            [Address::new(to).unwrap()],
        )
        .unwrap()
    }

    fn session(ehlo: &str) -> ClientSession {
        session_with(ehlo, crate::DEFAULT_WINDOW)
    }

    fn session_with(ehlo: &str, window: usize) -> ClientSession {
        let config = Config::new("localhost")
            .tls(TlsPolicy::Disabled)
            .window(window);
        let mut session = ClientSession::new(config).unwrap();
        session.handle_input(b"220 localhost\r\n").unwrap();
        let _ = session.take_output();
        session.handle_input(ehlo.as_bytes()).unwrap();
        assert_eq!(session.poll_event(), Some(Event::Ready));
        session
    }

    /// Runs `messages` (recipient, body) as one batch, as an adapter drives
    /// it; `replies` are the server's, one per line, fed one at a time
    /// whenever the session waits for one.
    fn run(ehlo: &str, messages: &[(&str, &'static [u8])], replies: &[&str]) -> Run {
        run_on(session(ehlo), messages, replies)
    }

    fn run_on(
        mut session: ClientSession,
        messages: &[(&str, &'static [u8])],
        replies: &[&str],
    ) -> Run {
        let mut out = Run::default();
        let mut results = Vec::new();
        let mut replies = replies.iter();
        let messages = messages.iter().map(|&(to, body)| {
            let env = envelope(to);
            (
                if body.len() > 1000 {
                    env.size(body.len() as u64)
                } else {
                    env.for_body(body)
                },
                // The body, and whether its end was fed.
                (body, false),
            )
        });
        let mut batch = Batch::new(messages, Rest::NotSent, |r: Result<Delivery, TestError>| {
            results.push(r.map(|d| d.reply().code().get()).map_err(|e| e.to_string()))
        });
        let now = Instant::now();
        loop {
            match batch.next(&mut session, now) {
                Step::Done => break,
                Step::Body((body, ended)) => {
                    assert!(!*ended, "a body asked for after its end");
                    *ended = body.is_empty();
                    // A refusal fails the session: the next step says so.
                    drop(feed(&mut session, body));
                }
                Step::Io(Io::Write { .. } | Io::Close { .. }) => out
                    .wire
                    .push_str(&String::from_utf8_lossy(&session.take_output())),
                Step::Io(Io::Read { .. }) => {
                    out.at_reply.push(out.wire.clone());
                    let fed = match replies.next() {
                        Some(reply) => session.handle_input(format!("{reply}\r\n").as_bytes()),
                        None => session.handle_eof(),
                    };
                    drop(fed);
                }
                Step::Io(io) => panic!("no TLS here: {io:?}"),
            }
        }
        assert_eq!(replies.next(), None, "replies left unread: {out:?}");
        out.results = results;
        out
    }

    const PIPELINING: &str = "250-localhost\r\n250 PIPELINING\r\n";
    const CHUNKING: &str = "250-localhost\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
    /// Three small messages, one recipient each.
    const THREE: [(&str, &[u8]); 3] = [
        ("a@x.org", b"one"),
        ("b@x.org", b"two"),
        ("c@x.org", b"three"),
    ];

    /// A body fed with `write_body_direct`: what it took so far.
    struct Lending {
        body: Vec<u8>,
        taken: usize,
    }

    #[test]
    fn lent_bytes_are_written_from_the_body_the_batch_holds() {
        let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
        let bodies: Vec<Vec<u8>> = vec![
            line.repeat(1000),
            [&b".dot\n"[..], &line.repeat(600)].concat(),
        ];
        let mut session = session(PIPELINING);
        let mut results = Vec::new();
        let messages = bodies.iter().map(|body| {
            let lending = Lending {
                body: body.clone(),
                taken: 0,
            };
            (envelope("a@x.org"), lending)
        });
        let mut batch = Batch::new(messages, Rest::NotSent, |r: Result<Delivery, TestError>| {
            results.push(r.is_ok())
        });
        let (mut wire, mut lent, mut replies) = (Vec::new(), 0, 0);
        let now = Instant::now();
        assert!(batch.body().is_none(), "no body before one is asked for");
        loop {
            match batch.next(&mut session, now) {
                Step::Done => break,
                Step::Body(body) => {
                    let rest = &body.body[body.taken..];
                    if rest.is_empty() {
                        session.finish_body().unwrap();
                    } else {
                        body.taken += session.write_body_direct(rest).unwrap();
                    }
                }
                Step::Io(Io::WriteBody { len, .. }) => {
                    let body = batch.body().expect("a body lent the bytes");
                    wire.extend_from_slice(&body.body[body.taken - len..body.taken]);
                    lent += len;
                    session.advance_body(len);
                }
                Step::Io(Io::Write { .. }) => wire.extend_from_slice(&session.take_output()),
                Step::Io(Io::Read { .. }) => {
                    assert!(batch.body().is_none(), "no body while replies are read");
                    // MAIL, RCPT, DATA, then the end of data, per message.
                    replies += 1;
                    let reply: &[u8] = match replies % 4 {
                        3 => b"354 go\r\n",
                        _ => b"250 ok\r\n",
                    };
                    session.handle_input(reply).unwrap();
                }
                Step::Io(io) => panic!("{io:?}"),
            }
        }
        assert_eq!(results, [true, true]);
        let mut expected = Vec::new();
        for body in &bodies {
            expected.extend_from_slice(&crate::data::encode(body));
        }
        let sent = String::from_utf8_lossy(&wire);
        let joined: String = sent
            .split("DATA\r\n")
            .skip(1)
            .map(|s| s.split("MAIL").next().unwrap_or(""))
            .collect();
        assert_eq!(joined.as_bytes(), &expected[..]);
        // The clean stretches went from the bodies, not the session: all of
        // the first; the second after its dotted line and the piece copied
        // with it.
        let copied = 1 + crate::BODY_DIRECT_MIN;
        assert_eq!(lent, bodies[0].len() + bodies[1].len() - copied);
    }

    #[test]
    fn each_message_rides_behind_the_previous_end_of_data() {
        let out = run(
            PIPELINING,
            &THREE,
            &[
                "250 ok",
                "250 ok",
                "354 go",
                "250 first", //
                "250 ok",
                "250 ok",
                "354 go",
                "250 second", //
                "250 ok",
                "250 ok",
                "354 go",
                "250 third",
            ],
        );
        assert_eq!(out.results, [Ok(250), Ok(250), Ok(250)]);
        // When the first message's final reply is read, the second's
        // commands are already written behind its end of data.
        let before_first_final = &out.at_reply[3];
        assert!(
            before_first_final.ends_with(
                "one\r\n.\r\nMAIL FROM:<me@example.com>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n"
            ),
            "{before_first_final:?}"
        );
        assert_eq!(out.wire.matches("MAIL FROM").count(), 3);
    }

    #[test]
    fn without_pipelining_each_message_waits_for_the_previous_reply() {
        let out = run(
            "250 localhost\r\n",
            &[("a@x.org", b"one"), ("b@x.org", b"two")],
            &[
                "250 ok",
                "250 ok",
                "354 go",
                "250 first", //
                "250 ok",
                "250 ok",
                "354 go",
                "250 second",
            ],
        );
        assert_eq!(out.results, [Ok(250), Ok(250)]);
        assert!(
            out.at_reply[3].ends_with("one\r\n.\r\n"),
            "{:?}",
            out.at_reply[3]
        );
    }

    #[test]
    fn bdat_messages_overlap_and_results_stay_in_order() {
        let out = run(
            CHUNKING,
            &THREE,
            &[
                "250 ok",
                "250 ok",
                "250 first", //
                "250 ok",
                "550 no such user",
                "554 no valid recipients", //
                "250 ok",
                "250 ok",
                "250 third",
            ],
        );
        assert_eq!(out.results.len(), 3, "{:?}", out.results);
        // The third message rode behind the refused second one: a RSET
        // would have landed after its commands, so none was written.
        assert_eq!(out.wire.matches("RSET").count(), 0, "{}", out.wire);
        assert_eq!(out.results[0], Ok(250));
        assert!(out.results[1]
            .as_ref()
            .is_err_and(|e| e.contains("every recipient")));
        assert_eq!(out.results[2], Ok(250));
        assert_eq!(out.wire.matches("BDAT").count(), 3);
    }

    #[test]
    fn a_message_refused_before_writing_is_reported_in_its_place() {
        // SIZE 100: the 2,000-octet second message is refused by the
        // session, after the first one's result and before the third's.
        static BIG: [u8; 2000] = [b'x'; 2000];
        let out = run(
            "250-localhost\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
            &[
                ("a@x.org", b"one"),
                ("b@x.org", &BIG),
                ("c@x.org", b"three"),
            ],
            &[
                "250 ok",
                "250 ok",
                "354 go",
                "250 first", //
                "250 ok",
                "250 ok",
                "354 go",
                "250 third",
            ],
        );
        assert_eq!(out.results.len(), 3, "{:?}", out.results);
        assert_eq!(out.results[0], Ok(250));
        assert!(
            out.results[1]
                .as_ref()
                .is_err_and(|e| e.contains("exceeds")),
            "{:?}",
            out.results
        );
        assert_eq!(out.results[2], Ok(250));
        assert_eq!(out.wire.matches("MAIL FROM").count(), 2);
    }

    #[test]
    fn a_refused_first_message_does_not_stop_the_batch() {
        let out = run(
            PIPELINING,
            &[("a@x.org", b"one"), ("b@x.org", b"two")],
            &[
                "550 sender refused",
                "503 no mail",
                "503 no mail",
                "250 reset", //
                "250 ok",
                "250 ok",
                "354 go",
                "250 second",
            ],
        );
        assert_eq!(out.results.len(), 2, "{:?}", out.results);
        assert!(out.results[0].is_err());
        assert_eq!(out.results[1], Ok(250));
    }

    #[test]
    fn the_connection_ending_mid_batch_leaves_the_rest_not_sent() {
        let out = run(
            PIPELINING,
            &THREE,
            &[
                "250 ok",
                "250 ok",
                "354 go",
                "250 first",
                "421 4.3.2 shutting down",
            ],
        );
        // The first delivered; the second met the 421; the third never
        // started: not sent.
        assert_eq!(out.results.len(), 3, "{:?}", out.results);
        assert_eq!(out.results[0], Ok(250));
        let err = out.results[1].as_ref().unwrap_err();
        assert!(
            err.contains("closing") && err.contains(Stage::Mail.as_str()),
            "{err}"
        );
        assert!(out.results[2]
            .as_ref()
            .is_err_and(|e| e.starts_with("not sent")));
        assert_eq!(out.wire.matches("MAIL FROM").count(), 2);
    }

    #[test]
    fn a_send_mail_that_ends_the_session_ends_the_batch() {
        // Garbage behind the first message's final reply waits in the
        // session until the second MAIL is written: that send_mail fails the
        // session, the second message gets that error, and the third,
        // never started, is not sent.
        let out = run(
            "250 localhost\r\n",
            &THREE,
            &["250 ok", "250 ok", "354 go", "250 first\r\nnot a reply"],
        );
        assert_eq!(out.results.len(), 3, "{:?}", out.results);
        assert!(out.results[2]
            .as_ref()
            .is_err_and(|e| e.starts_with("not sent")));
        assert_eq!(out.results[0], Ok(250));
        assert!(
            out.results[1]
                .as_ref()
                .is_err_and(|e| e.contains("malformed")),
            "{:?}",
            out.results
        );
        assert_eq!(out.wire.matches("MAIL FROM").count(), 2);
    }

    #[test]
    fn an_empty_batch_is_done_at_once() {
        let out = run(PIPELINING, &[], &[]);
        assert!(out.results.is_empty());
        assert_eq!(out.wire, "");
    }

    #[test]
    fn a_failure_after_completed_messages_keeps_their_results() {
        // The second message's final reply is lost to a close after its end
        // of data went out: the first result (already queued as an event)
        // is reported, then the second's, unknown.
        let out = run(
            PIPELINING,
            &[("a@x.org", b"one"), ("b@x.org", b"two")],
            &[
                "250 ok",
                "250 ok",
                "354 go",
                "250 first",
                "250 ok",
                "250 ok",
                "354 go",
            ],
        );
        assert_eq!(out.results.len(), 2, "{:?}", out.results);
        assert_eq!(out.results[0], Ok(250));
        assert!(
            out.results[1]
                .as_ref()
                .is_err_and(|e| e.starts_with("delivery unknown")),
            "{:?}",
            out.results
        );
    }

    /// Five small messages with CHUNKING, one reply group each.
    const FIVE: [(&str, &[u8]); 5] = [
        ("a@x.org", b"one"),
        ("b@x.org", b"two"),
        ("c@x.org", b"three"),
        ("d@x.org", b"four"),
        ("e@x.org", b"five"),
    ];

    fn bdat_replies(finals: &[&'static str]) -> Vec<&'static str> {
        finals
            .iter()
            .flat_map(|&f| ["250 ok", "250 ok", f])
            .collect()
    }

    #[test]
    fn with_chunking_a_window_of_whole_messages_goes_before_any_reply() {
        let finals = ["250 1", "250 2", "250 3", "250 4", "250 5"];
        let out = run_on(session_with(CHUNKING, 3), &FIVE, &bdat_replies(&finals));
        assert_eq!(out.results, vec![Ok(250); 5]);
        // Before the first reply was read, three whole messages (commands
        // and bodies) were out; the fourth starts with the first result.
        let first = &out.at_reply[0];
        assert_eq!(first.matches("BDAT").count(), 3, "{first:?}");
        assert!(first.ends_with("BDAT 7 LAST\r\nthree\r\n"), "{first:?}");
        let third_result = &out.at_reply[3];
        assert_eq!(third_result.matches("BDAT").count(), 4, "{third_result:?}");
        assert_eq!(out.wire.matches("MAIL FROM").count(), 5);
        // The whole batch took as many reads as replies: none waited for
        // a message to be written.
        assert_eq!(out.at_reply.len(), 15);
    }

    #[test]
    fn the_default_window_sends_every_small_message_at_once() {
        let finals = ["250 1", "250 2", "250 3", "250 4", "250 5"];
        let out = run(CHUNKING, &FIVE, &bdat_replies(&finals));
        assert_eq!(out.results, vec![Ok(250); 5]);
        assert_eq!(out.at_reply[0].matches("BDAT").count(), 5);
    }

    #[test]
    fn a_refusal_in_the_window_is_its_own_message_s_only() {
        let replies = [
            "250 ok",
            "250 ok",
            "250 1", //
            "550 no such sender",
            "503 no mail",
            "503 no mail", //
            "250 ok",
            "550 no such user",
            "554 no valid recipients", //
            "250 ok",
            "250 ok",
            "552 too big", //
            "250 ok",
            "250 ok",
            "250 5",
        ];
        let out = run(CHUNKING, &FIVE, &replies);
        assert_eq!(out.results.len(), 5, "{:?}", out.results);
        assert_eq!(out.results[0], Ok(250));
        assert!(out.results[1]
            .as_ref()
            .is_err_and(|e| e.contains("MAIL FROM")));
        assert!(out.results[2]
            .as_ref()
            .is_err_and(|e| e.contains("every recipient")));
        assert!(out.results[3].as_ref().is_err_and(|e| e.contains("552")));
        assert_eq!(out.results[4], Ok(250));
        // Messages rode behind each refusal: no RSET could be placed.
        assert_eq!(out.wire.matches("RSET").count(), 0, "{}", out.wire);
    }

    #[test]
    fn a_connection_lost_mid_window_leaves_each_message_as_it_was() {
        // Three went out whole before the close; the first was answered.
        // The other two: their last octets were written, so unknown; the
        // two never started: not sent.
        let out = run_on(
            session_with(CHUNKING, 3),
            &FIVE,
            &["250 ok", "250 ok", "250 1", "250 ok"],
        );
        assert_eq!(out.results.len(), 5, "{:?}", out.results);
        assert_eq!(out.results[0], Ok(250));
        for unknown in &out.results[1..3] {
            // What ended the connection, as the session knows it.
            assert!(
                unknown
                    .as_ref()
                    .is_err_and(|e| e.starts_with("delivery unknown")
                        && e.contains("connection closed by the server")),
                "{:?}",
                out.results
            );
        }
        // The fourth rode behind the first result before the close.
        assert!(out.results[3]
            .as_ref()
            .is_err_and(|e| e.starts_with("delivery unknown")));
        assert_eq!(out.results[4], Err("not sent".to_owned()));
    }

    #[test]
    fn without_chunking_two_transactions_at_most_whatever_the_window() {
        let replies: Vec<&str> = FIVE
            .iter()
            .flat_map(|_| ["250 ok", "250 ok", "354 go", "250 done"])
            .collect();
        let out = run_on(session_with(PIPELINING, 16), &FIVE, &replies);
        assert_eq!(out.results, vec![Ok(250); 5]);
        for wire in &out.at_reply {
            let started = wire.matches("MAIL FROM").count();
            let done = out.at_reply.iter().take_while(|w| *w != wire).count() / 4;
            assert!(started <= done + 2, "{wire:?}");
        }
    }

    #[test]
    fn replies_owed_stay_under_the_bound() {
        // Messages of 100 recipients: 102 replies each, so two at a time.
        let session = session_with(CHUNKING, 16);
        let recipients: Vec<Address> = (0..100)
            .map(|i| Address::new(format!("r{i}@x.org")).unwrap())
            .collect();
        let mut session = session;
        for _ in 0..2 {
            let envelope = Envelope::new(
                Some(Address::new("me@example.com").unwrap()),
                recipients.iter().cloned(),
            )
            .unwrap()
            .for_body(b"x");
            session.send_mail(envelope).unwrap();
            session.write_body(b"x").unwrap();
            session.finish_body().unwrap();
        }
        assert!(!session.can_send_mail(), "204 replies owed, 102 more");
    }

    #[test]
    fn messages_in_flight_whose_end_never_went_out_are_not_sent() {
        // The first message's end and the second's commands are pending
        // when the write fails: neither reached the server whole, so the
        // first gets the error, the second is not sent, and so is the third.
        let mut session = session(PIPELINING);
        let mut results = Vec::new();
        let messages = THREE
            .iter()
            .map(|&(to, body)| (envelope(to).for_body(body), body));
        let mut batch = Batch::new(messages, Rest::NotSent, |r: Result<Delivery, TestError>| {
            results.push(r.map(|d| d.reply().code().get()).map_err(|e| e.to_string()))
        });
        let now = Instant::now();
        let mut replies = ["250 ok", "250 ok", "354 go"].iter();
        loop {
            match batch.next(&mut session, now) {
                Step::Io(Io::Write { .. }) if replies.len() == 0 => {
                    assert!(
                        String::from_utf8_lossy(session.pending_output()).contains("MAIL FROM"),
                        "the second message rides behind the first"
                    );
                    batch.fail(&mut session, TestError::from(Error::Aborted));
                }
                Step::Io(Io::Write { .. }) => drop(session.take_output()),
                Step::Io(Io::Read { .. }) => {
                    let reply = replies.next().unwrap();
                    session
                        .handle_input(format!("{reply}\r\n").as_bytes())
                        .unwrap();
                }
                Step::Body(body) => feed(&mut session, body).unwrap(),
                Step::Done => break,
                Step::Io(io) => panic!("{io:?}"),
            }
        }
        drop(batch);
        assert_eq!(results.len(), 3, "{results:?}");
        assert!(results[0].as_ref().is_err_and(|e| e.contains("abandoned")));
        assert_eq!(results[1], Err("not sent".to_owned()));
        assert_eq!(results[2], Err("not sent".to_owned()));
    }

    #[test]
    fn debug_shows_the_counts_not_the_bodies() {
        let mut session = session(PIPELINING);
        let messages = [(
            envelope("a@x.org").for_body(b"secret body"),
            &b"secret body"[..],
        )];
        let mut batch = Batch::new(
            messages.into_iter(),
            Rest::Drop,
            |_: Result<Delivery, TestError>| {},
        );
        let _ = batch.next(&mut session, Instant::now());
        let shown = format!("{batch:?}");
        assert!(shown.starts_with("Batch {"), "{shown}");
        assert!(
            shown.contains("in_flight: 1") && shown.contains("reported: 0"),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_failure_reported_by_the_adapter_ends_the_batch() {
        // An I/O error while the first message's replies are awaited: it is
        // that message's result (not sent: no end of data went out), and
        // the rest are not sent either.
        let mut session = session(PIPELINING);
        let mut results = Vec::new();
        let messages = THREE
            .iter()
            .map(|&(to, body)| (envelope(to).for_body(body), body));
        let mut batch = Batch::new(messages, Rest::NotSent, |r: Result<Delivery, TestError>| {
            results.push(r.map(|d| d.reply().code().get()).map_err(|e| e.to_string()))
        });
        let now = Instant::now();
        assert!(matches!(
            batch.next(&mut session, now),
            Step::Io(Io::Write {
                stage: Stage::Mail,
                ..
            })
        ));
        batch.fail(&mut session, TestError::from(Error::Aborted));
        assert!(matches!(batch.next(&mut session, now), Step::Done));
        // Failing twice reports nothing more.
        batch.fail(&mut session, TestError::NotSent);
        drop(batch);
        assert_eq!(results.len(), 3, "{results:?}");
        assert!(results[0].as_ref().is_err_and(|e| e.contains("abandoned")));
        assert!(results[1..]
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e == "not sent")));
        assert!(session.is_closed());
    }

    #[test]
    fn with_rest_drop_the_untaken_messages_stay_in_the_iterator() {
        let mut session = session(PIPELINING);
        let mut results = Vec::new();
        let mut messages = THREE
            .iter()
            .map(|&(to, body)| (envelope(to).for_body(body), body));
        let mut batch = Batch::new(
            messages.by_ref(),
            Rest::Drop,
            |r: Result<Delivery, TestError>| results.push(r.is_ok()),
        );
        assert!(matches!(
            batch.next(&mut session, Instant::now()),
            Step::Io(_)
        ));
        batch.fail(&mut session, TestError::NotSent);
        drop(batch);
        assert_eq!(results, [false]);
        assert_eq!(messages.count(), 2);
    }

    #[test]
    fn each_message_has_the_whole_time_limit_from_the_previous_result() {
        let options = crate::Options::default().time_limit(core::time::Duration::from_secs(10));
        let config = Config::new("localhost").tls(TlsPolicy::Disabled);
        let mut session = ClientSession::with_options(config, &options).unwrap();
        let t0 = Instant::now();
        session.handle_input(b"220 localhost\r\n").unwrap();
        assert!(matches!(session.next(t0), Ok(Next::Io(Io::Write { .. }))));
        let _ = session.take_output();
        session.handle_input(b"250 localhost\r\n").unwrap();
        assert_eq!(session.next(t0), Ok(Next::Event(Event::Ready)));
        let mut results = Vec::new();
        let messages = THREE
            .iter()
            .map(|&(to, body)| (envelope(to).for_body(body), body));
        let mut batch = Batch::new(messages, Rest::NotSent, |r: Result<Delivery, TestError>| {
            results.push(r.map(|d| d.reply().code().get()).map_err(|e| e.to_string()))
        });
        let mut now = t0 + core::time::Duration::from_secs(100);
        let first = now;
        let mut replies = ["250 ok", "250 ok", "354 go", "250 first"].iter();
        // The first message runs 9 s of its 10: fine. The second starts with
        // its result and then stalls 10 s: the time limit.
        loop {
            match batch.next(&mut session, now) {
                Step::Done => break,
                // A refusal fails the session: the next step says so.
                Step::Body(body) => drop(feed(&mut session, body)),
                Step::Io(Io::Write { deadline, .. }) => {
                    assert!(
                        deadline.is_some_and(|d| d <= now + core::time::Duration::from_secs(10))
                    );
                    let _ = session.take_output();
                }
                Step::Io(Io::Read { .. }) => match replies.next() {
                    Some(reply) => {
                        now = first + core::time::Duration::from_secs(9);
                        session
                            .handle_input(format!("{reply}\r\n").as_bytes())
                            .unwrap();
                    }
                    None => {
                        now += core::time::Duration::from_secs(10);
                        session.handle_timeout(now);
                    }
                },
                Step::Io(io) => panic!("{io:?}"),
            }
        }
        drop(batch);
        assert_eq!(results.len(), 3, "{results:?}");
        assert_eq!(results[0], Ok(250));
        assert!(
            results[1]
                .as_ref()
                .is_err_and(|e| e.contains("time limit of 10s")),
            "{results:?}"
        );
        assert_eq!(results[2], Err("not sent".to_owned()));
    }
}
