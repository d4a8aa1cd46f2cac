//! Where the session stands between the server's replies and the caller's
//! calls ([`Phase`]), the moves between phases that every step shares
//! (ready, closed, failed), and the checks each public call makes first.

use super::ClientSession;
use crate::error::Error;
use crate::session::Event;
use crate::transcript::Direction;
use bytes::BufMut;

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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

impl ClientSession {
    /// The caller acted on the idle session before polling every event: a
    /// `Ready` still queued would now be stale, so it goes.
    pub(super) fn leave_idle(&mut self) {
        self.events.retain(|e| *e != Event::Ready);
    }

    pub(super) fn become_ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(Event::Ready);
    }

    pub(super) fn close(&mut self) {
        self.phase = Phase::Closed;
        self.expect.clear();
        self.events.push_back(Event::Closed);
    }

    /// Fails the session once; later calls get the same error back.
    pub(super) fn fail(&mut self, err: Error) -> Error {
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
        // Lent body bytes are not written: the message stays unfinished.
        self.lent = 0;
        self.expect.clear();
        // Nothing may invite the caller to go on (a handshake, a body) after
        // a failure; finished transactions are still reported.
        self.events
            .retain(|e| matches!(e, Event::TransactionComplete(_) | Event::Closed));
        let taken = self.taken;
        self.unfinished = self
            .txns
            .drain(..)
            .map(|txn| txn.unfinished(taken))
            .collect();
        self.auth = None;
        if sends_quit(&err) && !self.quit_sent {
            self.quit_sent = true;
            self.out.put_slice(b"QUIT\r\n");
            self.transcript.record(Direction::Client, b"QUIT");
        }
        self.error = Some(err.clone());
        err
    }

    pub(super) fn stored_error(&self) -> Error {
        self.error.clone().unwrap_or(Error::InvalidState {
            call: "handle_input",
            reason: "the session has failed",
        })
    }

    pub(super) fn check_alive(&self, call: &'static str) -> Result<(), Error> {
        match self.phase {
            Phase::Failed => Err(self.stored_error()),
            Phase::Closed => Err(Error::InvalidState {
                call,
                reason: "the session is closed",
            }),
            _ => Ok(()),
        }
    }

    pub(super) fn check_ready(&self, call: &'static str) -> Result<(), Error> {
        self.check_alive(call)?;
        if self.phase != Phase::Ready {
            return Err(Error::InvalidState {
                call,
                reason: "the session is not ready (wait for Event::Ready)",
            });
        }
        Ok(())
    }

    pub(super) fn check_body(&self, call: &'static str) -> Result<(), Error> {
        self.check_alive(call)?;
        if self.phase != Phase::Body {
            return Err(Error::InvalidState {
                call,
                reason: "no body is expected (wait for Event::SendBody)",
            });
        }
        Ok(())
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
