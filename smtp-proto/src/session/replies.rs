//! The server's replies: which command each answers ([`Expect`], one per
//! command written, in order), the loop that reads them and hands each to
//! the step that awaits it, and what arrives while nothing is awaited.

use super::phase::Phase;
use super::ClientSession;
use crate::error::Error;
use crate::reply::{Reply, ReplyCode, ReplyError};
use crate::stage::Stage;
use crate::transcript::Direction;
use bytes::BufMut;

/// The command whose reply is awaited next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
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
    pub(super) fn stage(self) -> Stage {
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

impl ClientSession {
    /// Reads the replies the session awaits, in order, as far as whole ones
    /// are buffered, and hands each to its step; the first error fails the
    /// session.
    pub(super) fn process(&mut self) -> Result<(), Error> {
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
            self.transcript.record_reply(&reply);
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
    pub(super) fn is_idle(&self) -> bool {
        self.expect.is_empty() && matches!(self.phase, Phase::Ready | Phase::Body)
    }

    /// A reply that arrived while nothing was awaited fails the session at
    /// once: `421` is the server closing (RFC 5321 §3.8: an idle timeout, a
    /// shutdown); anything else puts the dialogue out of step, and the next
    /// command's reply could not be told apart from it. A reply not yet
    /// whole waits for the rest.
    pub(super) fn unsolicited(&mut self) -> Result<(), Error> {
        let stage = self.stage().unwrap_or(Stage::Idle);
        let reply = match self.parser.next_reply(self.caps.enhanced_status_codes()) {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(()),
            Err(source) => return Err(self.fail(Error::MalformedReply { stage, source })),
        };
        self.transcript.record_reply(&reply);
        let err = if reply.code() == ReplyCode::SERVICE_UNAVAILABLE {
            Error::ServiceClosing { stage, reply }
        } else {
            Error::UnexpectedReply { stage, reply }
        };
        Err(self.fail(err))
    }

    /// A reply that fits the command it answers, handed to the step that
    /// awaits it.
    fn on_reply(&mut self, expect: Expect, reply: Reply) -> Result<(), Error> {
        match expect {
            Expect::Greeting => self.on_greeting(reply),
            Expect::Ehlo | Expect::Helo => self.on_hello(expect, reply),
            Expect::StartTls => self.on_starttls_reply(reply),
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

    /// Writes a command line and awaits its reply.
    pub(super) fn write_line(&mut self, line: &[u8], expect: Expect) {
        self.out.put_slice(line);
        self.out.put_slice(b"\r\n");
        self.transcript.record(Direction::Client, line);
        self.expect.push_back(expect);
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
