//! The sending loop of a batch without its I/O: when the next message may
//! start, what each event means, which result goes where. Shared with
//! `smtp-tokio`, whose async loop drives the same machine, so that the two
//! clients cannot disagree about a batch.

use crate::Error;
use smtp_proto::{ClientSession, Delivery, Envelope, Event};

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

    /// Ends the batch with `err`, which ended the connection, as its last
    /// result. Transactions that completed before it keep their results;
    /// those in flight and the messages after them were not confirmed.
    pub fn fail(mut self, session: &mut ClientSession, err: Error) {
        while let Some(event) = session.poll_event() {
            if let Event::TransactionComplete(result) = event {
                self.complete(result);
            }
        }
        self.report(Err(err));
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
