//! What became of a message: the four answers an application reconciles
//! against its own records, and the server's answer for each recipient.
//!
//! RFC 1047: once the end of data is sent, a reply lost to a broken
//! connection leaves the message in doubt, and resending it may deliver it
//! twice. So an application may resend a [`Outcome::NotSent`] message, must
//! not resend an [`Outcome::Unknown`] one blindly, and resends a
//! [`Outcome::Refused`] one only when the refusal was transient.

use crate::address::Address;
use crate::reply::Reply;
use core::fmt;

/// What became of one message (one transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The server took responsibility for it: a positive reply to the end of
    /// data, with each recipient's result.
    Accepted,
    /// The server refused it: `MAIL`, every `RCPT`, `DATA` or the end of data
    /// (transient or permanent, as the reply says). Not delivered.
    Refused,
    /// The session failed before any of its end of data was handed to the
    /// connection (or the client refused it before writing): the server
    /// cannot have accepted it. Safe to send again.
    NotSent,
    /// Its end of data was handed to the connection, at least in part, and
    /// no final reply came (the connection broke, timed out, or the server
    /// sent something unparseable): the server may have accepted it. Do not
    /// resend it blindly.
    Unknown,
}

impl Outcome {
    /// `"accepted"`, `"rejected"`, `"not_sent"` or `"unknown"`: the names
    /// `smtp-send --json` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "rejected",
            Outcome::NotSent => "not_sent",
            Outcome::Unknown => "unknown",
        }
    }

    /// Whether sending the message again cannot deliver it twice: it was
    /// refused or not sent. Whether it may then succeed is another matter
    /// (a permanent refusal stays one).
    pub fn may_resend(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::NotSent)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's answer to one `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    address: Address,
    reply: Reply,
}

impl RecipientResult {
    pub(crate) fn new(address: Address, reply: Reply) -> RecipientResult {
        RecipientResult { address, reply }
    }

    /// The recipient.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The server's whole reply to its `RCPT TO`.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// Whether the server accepted the recipient (`2yz`).
    pub fn accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A message the server accepted for at least one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    recipients: Vec<RecipientResult>,
    reply: Reply,
}

impl Delivery {
    pub(crate) fn new(recipients: Vec<RecipientResult>, reply: Reply) -> Delivery {
        Delivery { recipients, reply }
    }

    /// Every recipient's result, in envelope order; some may have been refused.
    pub fn recipients(&self) -> &[RecipientResult] {
        &self.recipients
    }

    /// The recipients the server refused.
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| !r.accepted())
    }

    /// The final reply to the message (it often carries the queue id).
    pub fn reply(&self) -> &Reply {
        &self.reply
    }
}
