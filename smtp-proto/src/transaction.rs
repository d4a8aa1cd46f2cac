//! A mail transaction: the envelope going in, per-recipient results coming out.

use crate::address::Address;
use crate::reply::Reply;

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
