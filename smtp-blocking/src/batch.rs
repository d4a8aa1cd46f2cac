//! The sending loop of a batch without its I/O: when the next message may
//! start, what each event means, which result goes where. Shared with
//! `smtp-tokio`, whose async loop drives the same machine, so that the two
//! clients cannot disagree about a batch.

use crate::Error;
use smtp_proto::{ClientSession, Delivery, Envelope, Event, Outcome};

/// What a batch that failed does with the messages it had not yet taken.
#[derive(Debug, Clone, Copy)]
pub enum Rest {
    /// Reports each [`Error::NotSent`]: one result per message (for a
    /// batch whose results are collected, so its input is finite).
    NotSent,
    /// Leaves them in the iterator, which may be endless.
    Drop,
}

/// What the adapter's loop does next.
#[derive(Debug)]
pub enum Action<B> {
    /// Flush the session's output and move bytes until it has an event
    /// (performing STARTTLS itself), then hand it to [`Batch::event`].
    Event,
    /// Feed this body to [`ClientSession::write_body`], flushing as it grows
    /// but not after its last piece (the next message's commands go out
    /// with it), then call [`ClientSession::finish_body`].
    Body(B),
    /// Every message went and every result was reported.
    Done,
}

enum State<B> {
    /// The next message goes as soon as the session takes it.
    Next,
    /// A message the session refused before writing anything: reported
    /// after the transactions ahead of it.
    Refused(smtp_proto::Error),
    /// Sent; awaiting its body's turn or its refusal. Its result is the
    /// `mine`-th of the batch.
    Started { mine: usize, body: B },
    /// Its body is wanted.
    Body(B),
    /// No message left: the results in flight are collected.
    Draining,
}

/// One batch: its messages `I` (envelope and body `B`), where their results
/// go (`F`, in order), and how many transactions are in flight (at most
/// two: the session's [`can_send_mail`](ClientSession::can_send_mail)).
///
/// The adapter loops on [`next`](Self::next) until [`Action::Done`], and on
/// an error that ends the connection calls [`fail`](Self::fail).
pub struct Batch<I, B, F> {
    messages: I,
    on_result: F,
    reported: usize,
    in_flight: usize,
    state: State<B>,
}

impl<I, B, F> Batch<I, B, F>
where
    I: Iterator<Item = (Envelope, B)>,
    F: FnMut(Result<Delivery, Error>),
{
    /// A batch of `messages` whose results go to `on_result`.
    pub fn new(messages: I, on_result: F) -> Self {
        Batch {
            messages,
            on_result,
            reported: 0,
            in_flight: 0,
            state: State::Next,
        }
    }

    /// The next step. Starts the next message when the session takes it: its
    /// commands are queued behind the previous message's end of data (RFC
    /// 2920 §3.1). An error is the session's and ended it; the adapter
    /// flushes what the session queued, then calls [`fail`](Self::fail).
    pub fn next(&mut self, session: &mut ClientSession) -> Result<Action<B>, smtp_proto::Error> {
        loop {
            match std::mem::replace(&mut self.state, State::Next) {
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
                        Err(err) if session.is_closed() => return Err(err),
                        // Nothing was written (SIZE, SMTPUTF8...): this
                        // message only.
                        Err(err) => self.state = State::Refused(err),
                    }
                }
                State::Refused(err) if self.in_flight == 0 => self.report(Err(Error::Smtp(err))),
                State::Body(body) => return Ok(Action::Body(body)),
                state => {
                    let done = matches!(state, State::Draining) && self.in_flight == 0;
                    self.state = state;
                    return Ok(if done { Action::Done } else { Action::Event });
                }
            }
        }
    }

    /// How many results were reported so far: each is a message done, so
    /// the next one's time starts.
    pub fn reported(&self) -> usize {
        self.reported
    }

    /// Takes the session's next event. One that has no place in a batch is
    /// handed back: a bug, after which the adapter gives up the connection.
    /// A [`Event::Ready`] left queued is dropped by the session at the next
    /// call.
    pub fn event(&mut self, event: Event) -> Result<(), Event> {
        match event {
            Event::TransactionComplete(result) => {
                self.complete(result);
                // The started message's own result: refused before its body.
                if matches!(self.state, State::Started { mine, .. } if mine == self.reported) {
                    self.state = State::Next;
                }
            }
            Event::Ready => {}
            Event::SendBody => match std::mem::replace(&mut self.state, State::Next) {
                State::Started { body, .. } => self.state = State::Body(body),
                state => {
                    self.state = state;
                    return Err(Event::SendBody);
                }
            },
            other => return Err(other),
        }
        Ok(())
    }

    /// Ends the batch on `err`, which ended the connection. Transactions
    /// that completed before it keep their results. Each one still in
    /// flight gets one as the session judged it
    /// ([`ClientSession::unfinished`]): the first `err`, the others
    /// [`Error::NotSent`], each wrapped in [`Error::DeliveryUnknown`] when
    /// its end of data had gone out. With none in flight, `err` is the
    /// result of the message the batch was starting. The messages not yet
    /// taken go as `rest` says.
    pub fn fail(mut self, session: &mut ClientSession, err: Error, rest: Rest) {
        // An I/O error or a timeout is news to the session: it stops here
        // (nothing more is written) and judges what was in flight. A
        // session that failed by itself is left as it is.
        session.abort();
        while let Some(event) = session.poll_event() {
            if let Event::TransactionComplete(result) = event {
                self.complete(result);
            }
        }
        let mut err = Some(err);
        for n in 0..std::mem::take(&mut self.in_flight) {
            let unknown = session.unfinished().get(n) == Some(&Outcome::Unknown);
            let cause = match err.take() {
                Some(err) => err,
                // What ended the session, as the session knows it.
                None if unknown => Error::Smtp(
                    session
                        .error()
                        .cloned()
                        .unwrap_or(smtp_proto::Error::Aborted),
                ),
                None => Error::NotSent,
            };
            self.report(Err(if unknown {
                Error::DeliveryUnknown {
                    source: Box::new(cause),
                }
            } else {
                cause
            }));
        }
        // A message the session refused before writing it, waiting for the
        // results ahead of it.
        if let State::Refused(refused) = std::mem::replace(&mut self.state, State::Draining) {
            self.report(Err(Error::Smtp(refused)));
        }
        if let Some(err) = err {
            self.report(Err(err));
        }
        if let Rest::NotSent = rest {
            while self.messages.next().is_some() {
                self.report(Err(Error::NotSent));
            }
        }
    }

    fn report(&mut self, result: Result<Delivery, Error>) {
        self.reported += 1;
        (self.on_result)(result);
    }

    /// The oldest transaction in flight finished.
    fn complete(&mut self, result: Result<Delivery, smtp_proto::Error>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.report(result.map_err(Error::Smtp));
    }
}

#[cfg(test)]
mod tests {
    //! The batch machine driven as an adapter drives it, against a server
    //! that answers one reply at a time and only when the session waits for
    //! one: no sockets, so every decision is checked in microseconds.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use smtp_proto::{Address, Config, Stage, TlsPolicy};

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
        let mut session =
            ClientSession::new(Config::new("localhost").tls(TlsPolicy::Disabled)).unwrap();
        session.handle_input(b"220 localhost\r\n").unwrap();
        let _ = session.take_output();
        session.handle_input(ehlo.as_bytes()).unwrap();
        assert_eq!(session.poll_event(), Some(Event::Ready));
        session
    }

    /// Runs `messages` (recipient, body) as one batch; `replies` are the
    /// server's, one per line, fed one at a time whenever the session waits.
    fn run(ehlo: &str, messages: &[(&str, &'static [u8])], replies: &[&str]) -> Run {
        let mut session = session(ehlo);
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
                body,
            )
        });
        let mut batch = Batch::new(messages, |r: Result<Delivery, Error>| {
            results.push(r.map(|d| d.reply().code().get()).map_err(|e| e.to_string()))
        });
        let take = |session: &mut ClientSession, out: &mut Run| {
            out.wire
                .push_str(&String::from_utf8_lossy(&session.take_output()));
        };
        let failure = loop {
            let action = match batch.next(&mut session) {
                Ok(action) => action,
                Err(err) => break Some(Error::Smtp(err)),
            };
            take(&mut session, &mut out);
            match action {
                Action::Done => break None,
                Action::Body(body) => {
                    if let Err(err) = session
                        .write_body(body)
                        .and_then(|()| session.finish_body())
                    {
                        break Some(Error::Smtp(err));
                    }
                }
                Action::Event => {
                    let event = loop {
                        take(&mut session, &mut out);
                        if let Some(event) = session.poll_event() {
                            break Ok(event);
                        }
                        assert!(session.wants_input(), "stuck: {out:?}");
                        out.at_reply.push(out.wire.clone());
                        let fed = match replies.next() {
                            Some(reply) => session.handle_input(format!("{reply}\r\n").as_bytes()),
                            None => session.handle_eof(),
                        };
                        if let Err(err) = fed {
                            break Err(err);
                        }
                    };
                    match event {
                        Ok(event) => {
                            if let Err(event) = batch.event(event) {
                                panic!("event out of place: {event:?}");
                            }
                        }
                        Err(err) => break Some(Error::Smtp(err)),
                    }
                }
            }
        };
        if let Some(err) = failure {
            batch.fail(&mut session, err, Rest::NotSent);
        }
        take(&mut session, &mut out);
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

    #[test]
    fn events_out_of_place_are_handed_back() {
        let mut batch = Batch::new(
            std::iter::empty::<(Envelope, &[u8])>(),
            |_: Result<Delivery, Error>| {},
        );
        assert_eq!(batch.event(Event::SendBody), Err(Event::SendBody));
        assert_eq!(batch.event(Event::Closed), Err(Event::Closed));
        assert_eq!(batch.event(Event::StartTls), Err(Event::StartTls));
        assert_eq!(batch.event(Event::Ready), Ok(()));
    }
}
