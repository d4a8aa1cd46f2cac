//! The crate's one error type.

use crate::mechanism::Mechanism;
use crate::outcome::{Outcome, RecipientResult};
use crate::reply::{Reply, ReplyError};
use crate::stage::Stage;

// Defined in a leaf module so that input checks below `Error` (building an
// `Address`) can report them.
pub(crate) use crate::input::{InputField, InvalidInput};

/// Everything that can go wrong in a session.
///
/// Each variant is one thing a caller can act on; see [`Error::is_transient`]
/// (retry later), [`Error::is_input`] (fix what you passed in) and
/// [`Error::is_security`] (the server or network is not to be trusted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value the caller passed in is not valid; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which value.
        field: InputField,
        /// Why, without echoing a secret.
        reason: String,
    },

    /// A `BDAT` body did not match its declared exact size
    /// ([`Envelope::exact_size`](crate::Envelope::exact_size)). The server
    /// reads exactly that many octets as the message and whatever follows as
    /// commands (RFC 3030 §2), so nothing past the declared size was written:
    /// the session failed and the connection must be closed, the chunk left
    /// unfinished, and the message was not delivered.
    #[error("the message body takes {actual} octets on the wire, not the declared {declared}")]
    BodySizeMismatch {
        /// The size declared in `BDAT`.
        declared: u64,
        /// The size the body took: when it ran over, as far as the chunk that
        /// crossed the declared size.
        actual: u64,
    },

    /// The server refused a command. When the reply is a refusal Microsoft
    /// 365 or Gmail documents (`530 5.7.57`, say), a second line says what
    /// to do ([`Error::hint`]).
    #[error("server rejected {stage}: {reply}{}", crate::hint::line(reply))]
    Rejected {
        /// The step that was refused.
        stage: Stage,
        /// The server's whole reply.
        reply: Reply,
    },

    /// The server refused the message itself — `DATA`, or the reply to the
    /// final dot — after accepting at least one recipient.
    #[error("server rejected the message at {stage}: {reply}")]
    MessageRejected {
        /// [`Stage::Data`] or [`Stage::DataEnd`].
        stage: Stage,
        /// The server's whole reply.
        reply: Reply,
        /// The result for each recipient, in envelope order.
        recipients: Vec<RecipientResult>,
    },

    /// Every `RCPT TO` was refused, so no message was sent.
    #[error("server rejected every recipient")]
    RecipientsRejected {
        /// The result for each recipient, in envelope order.
        recipients: Vec<RecipientResult>,
    },

    /// The server refused the credentials or the exchange (`535`, `454`, ...).
    /// For the refusals Microsoft 365 and Gmail document (`550 5.7.30`
    /// Basic authentication off, `535 5.7.139` SMTP AUTH disabled, `535
    /// 5.7.3`, `534 5.7.9`, `535 5.7.8`) a second line says what to do
    /// ([`Error::hint`]).
    #[error("{mechanism} authentication failed: {reply}{}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default(), crate::hint::line(reply))]
    AuthFailed {
        /// The mechanism used.
        mechanism: Mechanism,
        /// The server's final reply (boxed: this rare error would otherwise
        /// make every `Result` of the crate larger).
        reply: Box<Reply>,
        /// The decoded error detail of an XOAUTH2 or OAUTHBEARER error challenge.
        detail: Option<String>,
    },

    /// The server offers no mechanism the client can use with these credentials.
    #[error(
        "no usable authentication mechanism; the server offered: {}",
        list_mechanisms(offered)
    )]
    AuthUnavailable {
        /// The mechanisms the server advertised (empty when it advertised none).
        offered: Vec<Mechanism>,
    },

    /// The client cancelled an AUTH exchange (`*`, RFC 4954 §4) without sending the secret.
    #[error("{mechanism} exchange cancelled: {reason} (server said {prompt:?})")]
    AuthCancelled {
        /// The mechanism in progress.
        mechanism: Mechanism,
        /// The decoded challenge, control characters escaped.
        prompt: String,
        /// Why the challenge was refused.
        reason: &'static str,
    },

    /// Credentials would have gone over a connection that is neither TLS nor to
    /// a loopback name; nothing was sent.
    #[error(
        "refusing to send credentials over a connection that is neither TLS nor to a loopback host"
    )]
    InsecureAuth,

    /// TLS is required and the server did not provide it; no credential or
    /// envelope was sent.
    #[error("TLS is required but {}", match reply { Some(r) => format!("STARTTLS was refused: {r}"), None => "the server does not offer STARTTLS".to_owned() })]
    TlsRequired {
        /// The refusal of STARTTLS, or `None` when it was not advertised.
        reply: Option<Reply>,
    },

    /// The TLS layer verified a different name from the configured server name.
    #[error("TLS was established for {verified:?}, not for the configured server {expected:?}")]
    TlsNameMismatch {
        /// The configured server name.
        expected: String,
        /// The name the TLS layer reported.
        verified: String,
    },

    /// Bytes arrived in plaintext after the `220` to STARTTLS: a response
    /// injection attempt (RFC 3207 §5, "NO STARTTLS", USENIX Security 2021).
    ///
    /// How many bytes were waiting is deliberately not reported: it depends on
    /// how the network split them, and the session's results do not.
    #[error("plaintext arrived where TLS was expected (after the 220 reply to STARTTLS, or before the implicit TLS handshake)")]
    StartTlsInjection,

    /// The message is larger than the server's SIZE limit (RFC 1870); nothing was sent.
    #[error("message of {size} bytes exceeds the server's limit of {limit} bytes")]
    MessageTooLarge {
        /// The declared message size.
        size: u64,
        /// The server's advertised limit.
        limit: u64,
    },

    /// The envelope needs an extension the server did not advertise
    /// (SMTPUTF8 for a non-ASCII address, 8BITMIME, BINARYMIME, DSN); nothing was sent.
    #[error("{needed_for} needs the {extension} extension, which the server did not advertise")]
    ExtensionRequired {
        /// The missing extension keyword.
        extension: &'static str,
        /// What needed it.
        needed_for: &'static str,
    },

    /// The server's bytes are not a valid reply.
    #[error("malformed reply during {stage}")]
    MalformedReply {
        /// The step whose reply was malformed.
        stage: Stage,
        /// What was wrong.
        source: ReplyError,
    },

    /// A well-formed reply that makes no sense at this step (a `334` to MAIL,
    /// say).
    #[error("unexpected reply to {stage}: {reply}")]
    UnexpectedReply {
        /// The step.
        stage: Stage,
        /// The reply.
        reply: Reply,
    },

    /// The server sent `421`: it is closing the connection. Retry later.
    #[error("server is closing the connection during {stage}: {reply}")]
    ServiceClosing {
        /// The step it closed at.
        stage: Stage,
        /// The `421` reply.
        reply: Reply,
    },

    /// The connection ended while a reply was awaited.
    #[error("connection closed by the server during {stage}")]
    ConnectionClosed {
        /// The step.
        stage: Stage,
    },

    /// The server did not answer, or did not take the client's bytes,
    /// within the stage's timeout ([`Timeouts`](crate::Timeouts), RFC 5321
    /// §4.5.3.2), as the caller's clock told
    /// [`ClientSession::handle_timeout`](crate::ClientSession::handle_timeout).
    /// Nothing more is written: the connection must be closed.
    #[error("timed out during {stage}")]
    Timeout {
        /// The step that timed out.
        stage: Stage,
    },

    /// The session's set-up or a message took longer than its time limit
    /// ([`Options::time_limit`](crate::Options::time_limit)) in all, although
    /// each step kept within its stage's timeout. Nothing more is written:
    /// the connection must be closed.
    #[error("took longer than the time limit of {limit:?} (during {stage})")]
    TimeLimit {
        /// The step under way when the time was up.
        stage: Stage,
        /// The limit.
        limit: core::time::Duration,
    },

    /// A TLS configuration could not be built (no usable root certificate,
    /// invalid PEM, no crypto provider), or TLS was asked of a build without
    /// TLS support. Nothing was sent.
    #[error("TLS configuration: {reason}")]
    TlsConfig {
        /// What was wrong.
        reason: String,
    },

    /// The caller abandoned the session ([`ClientSession::abort`](crate::ClientSession::abort)),
    /// e.g. because the message body could not be read; nothing more is sent.
    #[error("the session was abandoned by the caller")]
    Aborted,

    /// The call is not allowed in the session's current state (a programming
    /// error in the caller, or a call after the session failed or closed).
    #[error("{call} is not allowed now: {reason}")]
    InvalidState {
        /// The API call.
        call: &'static str,
        /// What state the session is in.
        reason: &'static str,
    },
}

fn list_mechanisms(offered: &[Mechanism]) -> String {
    if offered.is_empty() {
        return "nothing".to_owned();
    }
    offered
        .iter()
        .map(Mechanism::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Error {
    /// The server reply this error carries, if any.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Error::Rejected { reply, .. }
            | Error::MessageRejected { reply, .. }
            | Error::UnexpectedReply { reply, .. }
            | Error::ServiceClosing { reply, .. } => Some(reply),
            Error::AuthFailed { reply, .. } => Some(reply),
            Error::TlsRequired { reply } => reply.as_ref(),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: a `4yz` reply, `421`, or a
    /// connection that dropped. Every recipient refused counts as transient
    /// only when every refusal was.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ServiceClosing { .. }
            | Error::ConnectionClosed { .. }
            | Error::Timeout { .. }
            | Error::TimeLimit { .. } => true,
            Error::RecipientsRejected { recipients } => {
                !recipients.is_empty() && recipients.iter().all(|r| r.reply().is_transient())
            }
            _ => self.reply().is_some_and(Reply::is_transient),
        }
    }

    /// What this error, taken alone as a transaction's result, says became
    /// of its message: [`Outcome::Refused`] for a refusal by the server of
    /// `MAIL`, every `RCPT`, `DATA` or the end of data, else
    /// [`Outcome::NotSent`]. When the session fails with a transaction in
    /// flight, [`ClientSession::unfinished`](crate::ClientSession::unfinished)
    /// has the last word: once its end of data went out, it is
    /// [`Outcome::Unknown`] whatever ended the session, a `421` included (a
    /// middlebox may say it while the server kept the message).
    pub fn outcome(&self) -> Outcome {
        let transaction = |stage: &Stage| {
            matches!(
                stage,
                Stage::Mail | Stage::Rcpt | Stage::Data | Stage::Body | Stage::DataEnd
            )
        };
        match self {
            Error::MessageRejected { .. } | Error::RecipientsRejected { .. } => Outcome::Refused,
            Error::Rejected { stage, .. } | Error::ServiceClosing { stage, .. }
                if transaction(stage) =>
            {
                Outcome::Refused
            }
            _ => Outcome::NotSent,
        }
    }

    /// What a person can do about this refusal, when it is one Microsoft 365
    /// or Gmail documents (matched on the reply code and the enhanced
    /// status code): use OAuth2, enable SMTP AUTH for the mailbox, check the
    /// token's permission, use an app password... The `Display` of the
    /// error ends with it, on a line of its own after `hint: `.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Rejected { reply, .. } => crate::hint::for_reply(reply),
            Error::AuthFailed { reply, .. } => crate::hint::for_reply(reply),
            _ => None,
        }
    }

    /// Whether the caller passed in something invalid (nothing was written).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidInput { .. }
                | Error::MessageTooLarge { .. }
                | Error::ExtensionRequired { .. }
        )
    }

    /// Whether the session refused to go on for the caller's safety: no TLS
    /// where it was required, a name mismatch, injected plaintext, or
    /// credentials that would have been sent in the clear.
    pub fn is_security(&self) -> bool {
        matches!(
            self,
            Error::InsecureAuth
                | Error::TlsRequired { .. }
                | Error::TlsNameMismatch { .. }
                | Error::StartTlsInjection
        )
    }

    /// Whether the server ended the connection: a `421`
    /// ([`Error::ServiceClosing`]) or a close ([`Error::ConnectionClosed`]).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Error::ServiceClosing { .. } | Error::ConnectionClosed { .. }
        )
    }

    /// Whether a stage's timeout or the time limit ran out
    /// ([`Error::Timeout`], [`Error::TimeLimit`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::TimeLimit { .. })
    }

    /// Whether the server refused the credentials themselves (`535`, `5.7.8`):
    /// retrying with the same ones will not help.
    pub fn is_auth_rejected(&self) -> bool {
        matches!(self, Error::AuthFailed { reply, .. } if reply.is_permanent())
    }

    pub(crate) fn invalid(field: InputField, reason: impl Into<String>) -> Error {
        InvalidInput::new(field, reason).into()
    }
}

impl From<InvalidInput> for Error {
    fn from(err: InvalidInput) -> Error {
        let InvalidInput { field, reason } = err;
        Error::InvalidInput { field, reason }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn reply(text: &str) -> Reply {
        Reply::parse(format!("{text}\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn invalid_input_reads_the_same_in_both_types() {
        let err = Error::invalid(InputField::EhloName, "has a space");
        assert_eq!(err.to_string(), "invalid EHLO name: has a space");
        let leaf = InvalidInput::new(InputField::Address, "contains an angle bracket");
        let text = leaf.to_string();
        let err = Error::from(leaf);
        assert_eq!(err.to_string(), text);
        assert!(err.is_input());
        assert!(matches!(
            err,
            Error::InvalidInput { field: InputField::Address, ref reason } if reason == "contains an angle bracket"
        ));
    }

    #[test]
    fn the_reply_is_carried_where_there_is_one() {
        let refusal = reply("454 4.7.0 TLS not available");
        let err = Error::TlsRequired {
            reply: Some(refusal.clone()),
        };
        assert_eq!(err.reply(), Some(&refusal));
        assert!(err.is_transient() && err.is_security() && !err.is_input());
        assert_eq!(Error::TlsRequired { reply: None }.reply(), None);
        assert_eq!(Error::InsecureAuth.reply(), None);
    }

    #[test]
    fn timeouts_and_closes_are_told_apart() {
        let timeout = Error::Timeout { stage: Stage::Mail };
        let limit = Error::TimeLimit {
            stage: Stage::Body,
            limit: core::time::Duration::from_secs(1),
        };
        let closing = Error::ServiceClosing {
            stage: Stage::Idle,
            reply: reply("421 bye"),
        };
        let closed = Error::ConnectionClosed { stage: Stage::Mail };
        for err in [&timeout, &limit] {
            assert!(err.is_timeout() && err.is_transient() && !err.closes_connection());
        }
        for err in [&closing, &closed] {
            assert!(err.closes_connection() && !err.is_timeout());
        }
        let other = Error::Aborted;
        assert!(!other.is_timeout() && !other.closes_connection());
    }

    #[test]
    fn each_predicate_says_yes_only_to_its_kind() {
        let input = [
            Error::invalid(InputField::Address, "x"),
            Error::MessageTooLarge { size: 2, limit: 1 },
            Error::ExtensionRequired {
                extension: "SMTPUTF8",
                needed_for: "x",
            },
        ];
        let security = [
            Error::InsecureAuth,
            Error::TlsRequired { reply: None },
            Error::TlsNameMismatch {
                expected: "a".into(),
                verified: "b".into(),
            },
            Error::StartTlsInjection,
        ];
        let neither = [
            Error::Aborted,
            Error::ConnectionClosed { stage: Stage::Mail },
            Error::BodySizeMismatch {
                declared: 1,
                actual: 2,
            },
            Error::Rejected {
                stage: Stage::Mail,
                reply: reply("550 no"),
            },
        ];
        for err in &input {
            assert!(err.is_input() && !err.is_security(), "{err:?}");
        }
        for err in &security {
            assert!(err.is_security() && !err.is_input(), "{err:?}");
        }
        for err in &neither {
            assert!(!err.is_security() && !err.is_input(), "{err:?}");
        }
    }
}
