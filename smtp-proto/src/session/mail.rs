//! Mail transactions: MAIL, RCPT and DATA or BDAT (RFC 5321, RFC 3030),
//! the body streamed in between, per-recipient results, RSET after a
//! failure, and PIPELINING (RFC 2920): a transaction's commands in one
//! write, and the next message's behind the previous one's end of data.

use super::phase::Phase;
use super::replies::Expect;
use super::ClientSession;
use crate::data::{BodyEncoder, Framing};
use crate::error::Error;
use crate::outcome::Outcome;
use crate::reply::{Reply, ReplyCode};
use crate::session::Event;
use crate::stage::Stage;
use crate::transaction::{Delivery, Envelope, RecipientResult};
use crate::transcript::Direction;
use bytes::BufMut;
use core::fmt;

/// The most `RCPT` commands written ahead of their replies with PIPELINING.
/// RFC 2920 §3.1: a client that writes without reading can deadlock with a
/// server whose replies fill the socket buffers; 100 replies are a few KiB,
/// well inside any buffer, and an envelope of any size then flows as the
/// replies come in.
pub const MAX_RCPT_AHEAD: usize = 100;

/// The most replies a session owes the caller before it stops starting
/// messages: with PIPELINING and a window of transactions, what the server
/// may have sent that nobody read yet (at most about 100 octets each, so a
/// few tens of KiB, well inside any socket buffer).
pub const MAX_REPLIES_AHEAD: usize = 256;

/// The shortest stretch of a body that
/// [`write_body_direct`](ClientSession::write_body_direct) lends to the
/// caller rather than copies into its output: below it, the copy costs less
/// than the write of its own a lent stretch may take, and small reads (a
/// pipe's) still gather into few writes.
pub const BODY_DIRECT_MIN: usize = 16 * 1024;

/// One transaction in progress.
#[derive(Debug)]
pub(super) struct Transaction {
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

    /// What became of it when the session failed, `taken` output bytes
    /// handed over: [`Outcome::Unknown`] once any byte of its end of data
    /// was taken, else [`Outcome::NotSent`].
    pub(super) fn unfinished(&self, taken: u64) -> Outcome {
        match self.end_of_data {
            Some(at) if taken > at => Outcome::Unknown,
            _ => Outcome::NotSent,
        }
    }
}

impl ClientSession {
    /// Whether [`send_mail`](Self::send_mail) may be called now: the session
    /// is ready, or — with PIPELINING — every message in flight has been
    /// written completely and only its replies are awaited, so the next
    /// message's commands may ride behind them (RFC 2920 §3.1: message
    /// content may start a group).
    ///
    /// How many may be in flight: up to
    /// [`Config::window`](crate::Config::window) when each goes as one
    /// `BDAT n LAST` (RFC 3030 §4 lets BDAT be pipelined). With DATA, two
    /// at most whatever the window: the second message's body waits for its
    /// `354`, which comes after the first message's final reply, so a third
    /// cannot start before the first is done. Either way the replies owed stay under
    /// [`MAX_REPLIES_AHEAD`]: a few KiB, which socket buffers hold, so a
    /// client that writes before it reads cannot deadlock with a server
    /// whose replies it has not read.
    #[must_use]
    pub fn can_send_mail(&self) -> bool {
        match self.phase {
            Phase::Ready => true,
            Phase::Busy => {
                // Busy with transactions only: never inside AUTH, say.
                self.caps.pipelining()
                    && !self.txns.is_empty()
                    && self.txns.len() < self.config.window
                    && self.txns.iter().all(|t| t.body_done)
                    // Room for one more message with a full RCPT group.
                    && self.expect.len() + 2 + MAX_RCPT_AHEAD <= MAX_REPLIES_AHEAD
            }
            _ => false,
        }
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
        self.transcript.record_sent(&self.out[start..]);
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

    /// Writes the `RCPT` for the envelope's recipient `index`.
    fn write_rcpt(&mut self, envelope: &Envelope, index: usize) {
        let start = self.out.len();
        envelope.write_rcpt(index, &mut self.out);
        self.transcript.record_sent(&self.out[start..]);
        self.expect.push_back(Expect::Rcpt(index));
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
                self.transcript.record_sent(&self.out[start..]);
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
        self.check_lent("write_body")?;
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

    /// Feeds the next bytes of the message as [`write_body`](Self::write_body)
    /// does, except that a long stretch that goes on the wire unchanged is
    /// not copied into [`pending_output`](Self::pending_output): the caller
    /// writes it from its own buffer. Returns how many bytes at the start
    /// of `chunk` the session took (at least one when `chunk` is not empty);
    /// feed the rest with the next call.
    ///
    /// The session takes either bytes it encodes into its output, as
    /// `write_body` does, or a stretch of at least [`BODY_DIRECT_MIN`]
    /// bytes that needs nothing
    /// inserted (no line to dot-stuff, no bare `CR` or `LF`) and, with
    /// `BDAT`, stays below the declared size, the last octet of which is
    /// left to `write_body` and [`finish_body`](Self::finish_body). Such a
    /// stretch is lent: [`next`](Self::next) then hands out
    /// [`Io::Write`](crate::Io::Write) for what is pending before it, and
    /// [`Io::WriteBody`](crate::Io::WriteBody) for it: the caller writes
    /// those bytes, the last ones the latest call took, and reports them with
    /// [`advance_body`](Self::advance_body). Until every lent byte is
    /// written, the session takes no more of the body.
    ///
    /// Bytes that would carry a `BDAT` body past its declared size are
    /// refused as `write_body` refuses them: none of them is queued, and the
    /// session fails with [`Error::BodySizeMismatch`]; bytes taken by
    /// earlier calls may have been written.
    pub fn write_body_direct(&mut self, chunk: &[u8]) -> Result<usize, Error> {
        self.check_body("write_body_direct")?;
        self.check_lent("write_body_direct")?;
        let room = match self.declared_chunk() {
            // Below the declared size: the chunk's last octet is held.
            Some(declared) => usize::try_from(
                declared
                    .saturating_sub(self.encoder.produced())
                    .saturating_sub(1),
            )
            .unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let clean = self.encoder.clean_prefix(chunk).min(room);
        if clean >= BODY_DIRECT_MIN {
            self.encoder.pass(&chunk[..clean]);
            self.lent = clean;
            return Ok(clean);
        }
        // Up to the first insertion, then a stretch that is not looked at
        // for lending, so that text with an insertion on every line is
        // encoded in pieces as long as a lent one at least.
        let take = chunk.len().min(clean.saturating_add(1 + BODY_DIRECT_MIN));
        self.write_body(&chunk[..take])?;
        Ok(take)
    }

    /// Marks `n` of the body bytes lent by
    /// [`write_body_direct`](Self::write_body_direct) as written, as
    /// [`advance_output`](Self::advance_output) does for
    /// [`pending_output`](Self::pending_output): partial writes too.
    pub fn advance_body(&mut self, n: usize) {
        let n = n.min(self.lent);
        self.lent -= n;
        self.taken = self.taken.saturating_add(n as u64);
        if n > 0 {
            // Progress: the wait for this write is over. (The reply's timer
            // starts when the end of data, queued after, is written.)
            self.clock.clear_wait();
        }
    }

    /// Refuses `call` while body bytes lent to the caller are unwritten:
    /// anything the session queued now would go before them.
    fn check_lent(&self, call: &'static str) -> Result<(), Error> {
        if self.lent > 0 {
            return Err(Error::InvalidState {
                call,
                reason:
                    "the body bytes lent by write_body_direct are not written yet (Io::WriteBody)",
            });
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
        self.check_lent("finish_body")?;
        if self.transcript.is_on() {
            let note = format!("<message body, {} bytes>", self.encoder.consumed());
            self.transcript.record(Direction::Client, note.as_bytes());
        }
        let start = self.out.len();
        let total = self.encoder.finish(&mut self.out);
        // Where the end of data starts on the wire; when finishing added
        // nothing (a BDAT chunk whose last octet was not held), the octet
        // before it ends the message.
        let added = self.out.len() > start || self.held.is_some();
        let end_of_data = (self.taken + start as u64).saturating_sub(u64::from(!added));
        match self.declared_chunk() {
            None => self.transcript.record(Direction::Client, b"."),
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

    pub(super) fn on_transaction_reply(
        &mut self,
        expect: Expect,
        reply: Reply,
    ) -> Result<(), Error> {
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
}
