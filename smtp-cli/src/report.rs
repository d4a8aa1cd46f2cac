//! What a run produced: per-transaction results, the error kind, the JSON
//! object and the human summary.

use serde_json::Value;
use smtp_blocking::smtp_proto::{self, Reply};
use smtp_blocking::{Delivery, RecipientResult};
use std::fmt::Write as _;
use std::io;
use std::time::Duration;

/// The error kinds of the `--json` output, one per way a run can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The command line was wrong (exit status 2).
    Usage,
    /// CR/LF or NUL in an address or name, a non-ASCII address without
    /// SMTPUTF8, or anything else the core refuses to build.
    InvalidInput,
    /// The name did not resolve or no TCP connection could be made.
    Connect,
    /// The TLS handshake or certificate check failed, or the TLS
    /// configuration (the `--ca-file`) is unusable.
    Tls,
    /// `--tls required` and STARTTLS was missing or refused.
    TlsRequired,
    /// Credentials refused over plaintext to a remote name.
    InsecureAuth,
    /// No usable AUTH mechanism.
    AuthUnavailable,
    /// The server refused the credentials, or the exchange was cancelled.
    AuthRejected,
    /// The greeting, MAIL or DATA was refused, or the server closed with 421.
    Rejected,
    /// Every RCPT was refused.
    RecipientsRejected,
    /// The message is larger than the server's SIZE.
    Size,
    /// A malformed or unexpected reply, or a STARTTLS response injection.
    Protocol,
    /// A read or write timed out.
    Timeout,
    /// The connection broke, or reading the message failed.
    Io,
}

impl Kind {
    /// The name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::InvalidInput => "invalid_input",
            Kind::Connect => "connect",
            Kind::Tls => "tls",
            Kind::TlsRequired => "tls_required",
            Kind::InsecureAuth => "insecure_auth",
            Kind::AuthUnavailable => "auth_unavailable",
            Kind::AuthRejected => "auth_rejected",
            Kind::Rejected => "rejected",
            Kind::RecipientsRejected => "recipients_rejected",
            Kind::Size => "size",
            Kind::Protocol => "protocol",
            Kind::Timeout => "timeout",
            Kind::Io => "io",
        }
    }
}

/// Why a run failed: the kind, the server's reply code when there is one,
/// and a message (never a secret: the core's errors do not carry any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind.
    pub kind: Kind,
    /// The server's reply code, when a reply caused the failure.
    pub code: Option<u16>,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    /// A failure without a reply code.
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Usage, message)
    }
}

/// The one mapping from the adapter's (and the core's) errors to [`Kind`]s.
pub fn classify(err: &smtp_blocking::Error) -> Failure {
    use smtp_blocking::Error as B;
    use smtp_proto::Error as P;
    let message = err.to_string();
    let (kind, code) = match err {
        B::Smtp(smtp) => {
            let code = smtp.reply().map(reply_code);
            let kind = match smtp {
                P::InvalidInput { .. } | P::ExtensionRequired { .. } => Kind::InvalidInput,
                P::Rejected { reply, .. } | P::MessageRejected { reply, .. }
                    if is_size_reply(reply) =>
                {
                    Kind::Size
                }
                P::Rejected { .. } | P::MessageRejected { .. } | P::ServiceClosing { .. } => {
                    Kind::Rejected
                }
                P::RecipientsRejected { recipients } => {
                    let code = recipients.iter().map(|r| reply_code(r.reply())).next();
                    return Failure {
                        kind: Kind::RecipientsRejected,
                        code,
                        message,
                    };
                }
                P::AuthFailed { .. } | P::AuthCancelled { .. } => Kind::AuthRejected,
                P::AuthUnavailable { .. } => Kind::AuthUnavailable,
                P::InsecureAuth => Kind::InsecureAuth,
                P::TlsRequired { .. } => Kind::TlsRequired,
                P::TlsNameMismatch { .. } => Kind::Tls,
                P::MessageTooLarge { .. } => Kind::Size,
                P::StartTlsInjection
                | P::MalformedReply { .. }
                | P::UnexpectedReply { .. }
                | P::InvalidState { .. } => Kind::Protocol,
                P::ConnectionClosed { .. } => Kind::Io,
                // The body read did not match what was measured of it: the
                // message changed under the sender, no protocol fault.
                P::BodySizeMismatch { .. } => Kind::Io,
                _ => Kind::Protocol,
            };
            (kind, code)
        }
        B::Resolve { .. } | B::Connect { .. } => (Kind::Connect, None),
        B::Io(_) | B::BodyRead(_) | B::Poisoned => (Kind::Io, None),
        B::Tls(_) | B::TlsConfig { .. } => (Kind::Tls, None),
        B::Timeout { .. } | B::TimeLimit { .. } => (Kind::Timeout, None),
        _ => (Kind::Io, None),
    };
    Failure {
        kind,
        code,
        message,
    }
}

/// `5.3.4` (usually `552 5.3.4`): the message is too big for the server,
/// said at MAIL (`SIZE=`) or at the end of the data.
fn is_size_reply(reply: &Reply) -> bool {
    match reply.enhanced_code() {
        Some(e) => (e.class, e.subject, e.detail) == (5, 3, 4),
        // Without ENHANCEDSTATUSCODES the code is not parsed; look at the text.
        None => reply.message().starts_with(b"5.3.4 "),
    }
}

fn reply_code(reply: &Reply) -> u16 {
    reply.code().get()
}

/// One recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address as given.
    pub address: String,
    /// The reply code to its RCPT.
    pub code: u16,
    /// Whether the server accepted it.
    pub accepted: bool,
}

impl From<&RecipientResult> for RecipientReport {
    fn from(r: &RecipientResult) -> RecipientReport {
        RecipientReport {
            address: r.address().as_str().to_owned(),
            code: reply_code(r.reply()),
            accepted: r.accepted(),
        }
    }
}

/// One transaction's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionReport {
    /// Per-recipient results, in the order given (empty when the
    /// transaction failed before they were known).
    pub recipients: Vec<RecipientReport>,
    /// The reply code to the end of the data (or to `DATA` when that was
    /// refused); `None` when no data was sent.
    pub data_code: Option<u16>,
}

impl TransactionReport {
    /// The outcome of a transaction that ended in `result`.
    pub fn from_result(result: &Result<Delivery, smtp_blocking::Error>) -> TransactionReport {
        use smtp_proto::Error as P;
        match result {
            Ok(delivery) => TransactionReport {
                recipients: delivery.recipients().iter().map(Into::into).collect(),
                data_code: Some(reply_code(delivery.reply())),
            },
            Err(smtp_blocking::Error::Smtp(P::RecipientsRejected { recipients })) => {
                TransactionReport {
                    recipients: recipients.iter().map(Into::into).collect(),
                    data_code: None,
                }
            }
            Err(smtp_blocking::Error::Smtp(P::MessageRejected {
                reply, recipients, ..
            })) => TransactionReport {
                recipients: recipients.iter().map(Into::into).collect(),
                data_code: Some(reply_code(reply)),
            },
            Err(_) => TransactionReport::default(),
        }
    }

    /// Whether the message was accepted for at least one recipient.
    pub fn delivered(&self) -> bool {
        self.data_code.is_some_and(|c| (200..300).contains(&c))
            && self.recipients.iter().any(|r| r.accepted)
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Every transaction was asked for, and delivered to at least one recipient.
    pub ok: bool,
    /// Every session that connected used TLS (and at least one did).
    pub tls: bool,
    /// The AUTH mechanism used, if any.
    pub auth_mechanism: Option<String>,
    /// The mechanisms the server offered (after TLS, when TLS was on), as
    /// far as a session got that far; human output only.
    pub auth_offered: Vec<String>,
    /// The transactions attempted, by session then order.
    pub transactions: Vec<TransactionReport>,
    /// How many messages the server accepted.
    pub messages_sent: usize,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// The first failure, if any.
    pub error: Option<Failure>,
}

impl Report {
    /// A run that failed before it started.
    pub fn failed(error: Failure, elapsed: Duration) -> Report {
        Report {
            ok: false,
            tls: false,
            auth_mechanism: None,
            auth_offered: Vec::new(),
            transactions: Vec::new(),
            messages_sent: 0,
            elapsed,
            error: Some(error),
        }
    }

    /// The exit status: 0 when ok, 2 for a usage error, else 1.
    pub fn exit_status(&self) -> u8 {
        match &self.error {
            _ if self.ok => 0,
            Some(f) if f.kind == Kind::Usage => 2,
            _ => 1,
        }
    }

    /// The `--json` object, written straight out: no value tree is built, so
    /// a report of many transactions costs little more than its text.
    pub fn write_json(&self, out: &mut impl io::Write) -> io::Result<()> {
        let text = |s: &str| Value::from(s).to_string();
        let code = |c: Option<u16>| c.map_or("null".to_owned(), |c| c.to_string());
        write!(
            out,
            "{{\"ok\":{},\"tls\":{},\"auth_mechanism\":",
            self.ok, self.tls
        )?;
        match &self.auth_mechanism {
            Some(m) => write!(out, "{}", text(m))?,
            None => write!(out, "null")?,
        }
        write!(out, ",\"transactions\":[")?;
        for (i, t) in self.transactions.iter().enumerate() {
            if i > 0 {
                write!(out, ",")?;
            }
            write!(out, "{{\"recipients\":[")?;
            for (j, r) in t.recipients.iter().enumerate() {
                if j > 0 {
                    write!(out, ",")?;
                }
                write!(
                    out,
                    "{{\"address\":{},\"code\":{},\"accepted\":{}}}",
                    text(&r.address),
                    r.code,
                    r.accepted
                )?;
            }
            write!(out, "],\"data_code\":{}}}", code(t.data_code))?;
        }
        write!(
            out,
            "],\"messages_sent\":{},\"elapsed_ms\":{},\"error\":",
            self.messages_sent,
            Value::from(self.elapsed.as_secs_f64() * 1000.0)
        )?;
        match &self.error {
            Some(f) => write!(
                out,
                "{{\"kind\":{},\"code\":{},\"message\":{}}}",
                text(f.kind.as_str()),
                code(f.code),
                text(&f.message)
            )?,
            None => write!(out, "null")?,
        }
        writeln!(out, "}}")
    }

    /// The human summary (without the error, see [`Report::human_error`]).
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "TLS:       {}", if self.tls { "yes" } else { "no" });
        let _ = write!(
            out,
            "AUTH:      {}",
            self.auth_mechanism.as_deref().unwrap_or("none")
        );
        if self.auth_offered.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, " (offered: {})", self.auth_offered.join(" "));
        }
        let many = self.transactions.len() > 1;
        // Every transaction when there are few; the first one otherwise.
        let shown = if self.transactions.len() <= 10 {
            self.transactions.len()
        } else {
            1
        };
        for (i, t) in self.transactions.iter().take(shown).enumerate() {
            if many {
                let _ = writeln!(out, "transaction {}:", i + 1);
            }
            for r in &t.recipients {
                let verdict = if r.accepted { "accepted" } else { "refused" };
                let _ = writeln!(out, "  RCPT {}  {}  {verdict}", r.address, r.code);
            }
            match t.data_code {
                Some(code) => {
                    let _ = writeln!(out, "  DATA  {code}");
                }
                None => {
                    let _ = writeln!(out, "  DATA  not sent");
                }
            }
        }
        if shown < self.transactions.len() {
            let _ = writeln!(
                out,
                "({} more transactions not shown)",
                self.transactions.len() - shown
            );
        }
        let _ = writeln!(
            out,
            "sent:      {} message{} in {:.1} ms",
            self.messages_sent,
            if self.messages_sent == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64() * 1000.0
        );
        out
    }

    /// `error: KIND (CODE): message`, if the run failed.
    pub fn human_error(&self) -> Option<String> {
        let f = self.error.as_ref()?;
        Some(match f.code {
            Some(code) => format!("error: {} ({code}): {}", f.kind.as_str(), f.message),
            None => format!("error: {}: {}", f.kind.as_str(), f.message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_blocking::smtp_proto::{InputField, Mechanism, Stage};

    fn reply(text: &[u8]) -> Reply {
        Reply::parse(text).unwrap()
    }

    fn kind(err: smtp_proto::Error) -> (Kind, Option<u16>) {
        let f = classify(&smtp_blocking::Error::Smtp(err));
        (f.kind, f.code)
    }

    #[test]
    fn core_errors_map_to_the_contract_kinds() {
        use smtp_proto::Error as P;
        assert_eq!(kind(P::StartTlsInjection), (Kind::Protocol, None));
        assert_eq!(
            kind(P::ServiceClosing {
                stage: Stage::Mail,
                reply: reply(b"421 4.3.2 bye\r\n")
            }),
            (Kind::Rejected, Some(421))
        );
        assert_eq!(
            kind(P::ConnectionClosed { stage: Stage::Mail }),
            (Kind::Io, None)
        );
        assert_eq!(
            kind(P::ExtensionRequired {
                extension: "SMTPUTF8",
                needed_for: "x"
            }),
            (Kind::InvalidInput, None)
        );
        assert_eq!(
            kind(P::InvalidInput {
                field: InputField::Address,
                reason: "x".into()
            }),
            (Kind::InvalidInput, None)
        );
        assert_eq!(
            kind(P::MessageTooLarge { size: 2, limit: 1 }),
            (Kind::Size, None)
        );
        assert_eq!(
            kind(P::MessageRejected {
                stage: Stage::DataEnd,
                reply: reply(b"552 5.3.4 too big\r\n"),
                recipients: Vec::new(),
            }),
            (Kind::Size, Some(552))
        );
        assert_eq!(
            kind(P::Rejected {
                stage: Stage::Mail,
                reply: reply(b"550 5.7.1 no\r\n")
            }),
            (Kind::Rejected, Some(550))
        );
        assert_eq!(
            kind(P::AuthFailed {
                mechanism: Mechanism::Login,
                reply: Box::new(reply(b"535 5.7.3 no\r\n")),
                detail: None
            }),
            (Kind::AuthRejected, Some(535))
        );
        assert_eq!(
            kind(P::AuthCancelled {
                mechanism: Mechanism::Login,
                prompt: "x".into(),
                reason: "y"
            }),
            (Kind::AuthRejected, None)
        );
        assert_eq!(
            kind(P::AuthUnavailable { offered: vec![] }),
            (Kind::AuthUnavailable, None)
        );
        assert_eq!(kind(P::InsecureAuth), (Kind::InsecureAuth, None));
        assert_eq!(
            kind(P::BodySizeMismatch {
                declared: 10,
                actual: 11
            }),
            (Kind::Io, None)
        );
        assert_eq!(
            kind(P::TlsRequired { reply: None }),
            (Kind::TlsRequired, None)
        );
        assert_eq!(
            classify(&smtp_blocking::Error::Timeout { stage: Stage::Ehlo }).kind,
            Kind::Timeout
        );
    }

    #[test]
    fn exit_status() {
        let mut r = Report::failed(Failure::usage("x"), Duration::ZERO);
        assert_eq!(r.exit_status(), 2);
        r.error = Some(Failure::new(Kind::Io, "x"));
        assert_eq!(r.exit_status(), 1);
        r.error = None;
        r.ok = true;
        assert_eq!(r.exit_status(), 0);
    }
}
