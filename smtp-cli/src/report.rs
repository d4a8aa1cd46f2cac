//! What a run produced: per-transaction results, the error kind, the JSON
//! object and the human summary.

use serde_json::Value;
use smtp_blocking::smtp_proto::{self, Reply};
use smtp_blocking::{Delivery, Outcome, RecipientResult};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::sync::{Mutex, PoisonError};
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
    /// No OAuth2 access token could be had from the token endpoint (it
    /// was unreachable, refused, or answered without `access_token`);
    /// nothing was sent to the SMTP server.
    OAuth2,
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
            Kind::OAuth2 => "oauth2",
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
    if let smtp_blocking::Error::DeliveryUnknown { source } = err {
        // The kind is what ended the connection; the message says that the
        // message may have been delivered all the same.
        let mut failure = classify(source);
        failure.message = format!("{UNKNOWN} ({})", failure.message);
        return failure;
    }
    let message = chain(err);
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
                P::Timeout { .. } | P::TimeLimit { .. } => Kind::Timeout,
                P::TlsConfig { .. } => Kind::Tls,
                _ => Kind::Protocol,
            };
            (kind, code)
        }
        B::Resolve { .. } | B::Connect { .. } => (Kind::Connect, None),
        B::Io(_) | B::BodyRead(_) | B::Poisoned => (Kind::Io, None),
        B::Tls(_) => (Kind::Tls, None),
        _ => (Kind::Io, None),
    };
    Failure {
        kind,
        code,
        message,
    }
}

/// `err` and each of its causes, `: `-separated: the errors' `Display`s
/// do not repeat their `source()`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionReport {
    /// Per-recipient results, in the order given (empty when the
    /// transaction failed before they were known).
    pub recipients: Vec<RecipientReport>,
    /// The reply code to the end of the data (or to `DATA` when that was
    /// refused); `None` when no data was sent.
    pub data_code: Option<u16>,
    /// What became of the message (`status` in `--json`).
    pub status: Outcome,
}

impl Default for TransactionReport {
    fn default() -> TransactionReport {
        TransactionReport {
            recipients: Vec::new(),
            data_code: None,
            status: Outcome::NotSent,
        }
    }
}

impl TransactionReport {
    /// The outcome of a transaction that ended in `result`.
    pub fn from_result(result: &Result<Delivery, smtp_blocking::Error>) -> TransactionReport {
        use smtp_proto::Error as P;
        match result {
            Ok(delivery) => TransactionReport {
                recipients: delivery.recipients().iter().map(Into::into).collect(),
                data_code: Some(reply_code(delivery.reply())),
                status: Outcome::Accepted,
            },
            Err(smtp_blocking::Error::Smtp(P::RecipientsRejected { recipients })) => {
                TransactionReport {
                    recipients: recipients.iter().map(Into::into).collect(),
                    data_code: None,
                    status: Outcome::Refused,
                }
            }
            Err(smtp_blocking::Error::Smtp(P::MessageRejected {
                reply, recipients, ..
            })) => TransactionReport {
                recipients: recipients.iter().map(Into::into).collect(),
                data_code: Some(reply_code(reply)),
                status: Outcome::Refused,
            },
            Err(err) => TransactionReport {
                status: err.outcome(),
                ..TransactionReport::default()
            },
        }
    }

    /// Whether the server accepted the message (a 2xx reply to its end).
    pub fn sent(&self) -> bool {
        self.data_code.is_some_and(|c| (200..300).contains(&c))
    }

    /// Whether the message was accepted for at least one recipient.
    pub fn delivered(&self) -> bool {
        self.data_code.is_some_and(|c| (200..300).contains(&c))
            && self.recipients.iter().any(|r| r.accepted)
    }
}

/// What the human report says of a message whose delivery is unknown.
pub const UNKNOWN: &str =
    "delivery unknown: the server may have accepted the message; do not resend blindly";

/// How many transactions the human summary lists: every one when there are
/// at most this many, else only the first.
pub const SHOWN: usize = 10;

/// Everything a run produced that is kept: aggregates, and the few
/// transactions the human summary lists. Every transaction's result goes to
/// the `--json` report as it comes ([`JsonReport`]) and is not kept, so a
/// run of any length holds a bounded report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Every transaction was asked for, and delivered to at least one recipient.
    pub ok: bool,
    /// Every session that connected used TLS (and at least one did).
    pub tls: bool,
    /// The AUTH mechanism used, if any.
    pub auth_mechanism: Option<String>,
    /// Where the bearer token came from: `env` (`SMTP_OAUTH_TOKEN`),
    /// `client_credentials` or `refresh_token` (from the token endpoint);
    /// `None` without a token.
    pub token_source: Option<&'static str>,
    /// The mechanisms the server offered (after TLS, when TLS was on), as
    /// far as a session got that far; human output only.
    pub auth_offered: Vec<String>,
    /// How many transactions were attempted.
    pub attempted: usize,
    /// The transactions the human summary lists, by session then order:
    /// all of them when at most [`SHOWN`] were attempted, else the first.
    pub shown: Vec<TransactionReport>,
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
            token_source: None,
            auth_offered: Vec::new(),
            attempted: 0,
            shown: Vec::new(),
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

    /// The `--json` object's fields after `transactions`: `ok`, `tls`,
    /// `auth_mechanism`, `token_source`, `messages_sent`, `elapsed_ms` and `error`.
    fn write_summary_json(&self, out: &mut dyn io::Write) -> io::Result<()> {
        write!(
            out,
            "\"ok\":{},\"tls\":{},\"auth_mechanism\":",
            self.ok, self.tls
        )?;
        match &self.auth_mechanism {
            Some(m) => write_str(out, m)?,
            None => out.write_all(b"null")?,
        }
        out.write_all(b",\"token_source\":")?;
        match self.token_source {
            Some(source) => write_str(out, source)?,
            None => out.write_all(b"null")?,
        }
        write!(
            out,
            ",\"messages_sent\":{},\"elapsed_ms\":{},\"error\":",
            self.messages_sent,
            Value::from(self.elapsed.as_secs_f64() * 1000.0)
        )?;
        match &self.error {
            Some(f) => {
                out.write_all(b"{\"kind\":")?;
                write_str(out, f.kind.as_str())?;
                write!(out, ",\"code\":{},\"message\":", code(f.code))?;
                write_str(out, &f.message)?;
                out.write_all(b"}")
            }
            None => out.write_all(b"null"),
        }
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
        let many = self.attempted > 1;
        // Every transaction when there are few; the first one otherwise.
        let shown = if self.attempted <= SHOWN { SHOWN } else { 1 };
        let shown = &self.shown[..self.shown.len().min(shown)];
        for (i, t) in shown.iter().enumerate() {
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
                None if t.status == Outcome::Unknown => {
                    let _ = writeln!(out, "  DATA  {UNKNOWN}");
                }
                None => {
                    let _ = writeln!(out, "  DATA  not sent");
                }
            }
        }
        if shown.len() < self.attempted {
            let _ = writeln!(
                out,
                "({} more transactions not shown)",
                self.attempted - shown.len()
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

fn code(c: Option<u16>) -> String {
    c.map_or("null".to_owned(), |c| c.to_string())
}

/// A JSON string, escaped, straight to `out`.
fn write_str(out: &mut dyn io::Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(out, s).map_err(io::Error::from)
}

/// One element of `transactions`.
fn write_transaction(out: &mut dyn io::Write, t: &TransactionReport) -> io::Result<()> {
    out.write_all(b"{")?;
    write_transaction_fields(out, t)?;
    out.write_all(b"}")
}

/// The fields of one element of `transactions`, without the braces.
fn write_transaction_fields(out: &mut dyn io::Write, t: &TransactionReport) -> io::Result<()> {
    out.write_all(b"\"recipients\":[")?;
    for (j, r) in t.recipients.iter().enumerate() {
        if j > 0 {
            out.write_all(b",")?;
        }
        out.write_all(b"{\"address\":")?;
        write_str(out, &r.address)?;
        write!(out, ",\"code\":{},\"accepted\":{}}}", r.code, r.accepted)?;
    }
    write!(out, "],\"data_code\":{},\"status\":", code(t.data_code))?;
    write_str(out, t.status.as_str())
}

/// `--json-lines`: one object per transaction as soon as its outcome is
/// known, from whichever session, with `"session"` and `"index"` (both
/// 0-based, the index within its session); then one object with the
/// summary fields and `"summary": true`. Nothing is kept: memory does not
/// grow with the run. Each line is written whole under a lock, so parallel
/// sessions never interleave inside one.
pub struct JsonLines<'a> {
    out: Mutex<Box<dyn io::Write + Send + 'a>>,
}

impl<'a> JsonLines<'a> {
    /// Lines go to `out`.
    pub fn new(out: impl io::Write + Send + 'a) -> JsonLines<'a> {
        JsonLines {
            out: Mutex::new(Box::new(out)),
        }
    }

    /// Where session `session`'s transactions go.
    pub fn session(&self, session: u32) -> SessionLines<'_, 'a> {
        SessionLines {
            lines: self,
            session,
            index: 0,
        }
    }

    /// The summary line of `report`; flushes. Errors writing are ignored,
    /// like a reader of stdout that went away.
    pub fn finish(self, report: &Report) {
        let mut out = self
            .out
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = out
            .write_all(b"{\"summary\":true,")
            .and_then(|()| report.write_summary_json(&mut out))
            .and_then(|()| out.write_all(b"}\n"))
            .and_then(|()| out.flush());
    }

    fn line(&self, session: u32, index: u64, t: &TransactionReport) {
        let mut line = Vec::with_capacity(256);
        let _ = write!(line, "{{\"session\":{session},\"index\":{index},");
        let _ = write_transaction_fields(&mut line, t);
        line.extend_from_slice(b"}\n");
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // Each line as soon as it is known: a reader follows the run live.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}

/// One session's part of [`JsonLines`].
pub struct SessionLines<'l, 'a> {
    lines: &'l JsonLines<'a>,
    session: u32,
    index: u64,
}

impl TransactionSink for SessionLines<'_, '_> {
    fn transaction(&mut self, t: &TransactionReport) {
        self.lines.line(self.session, self.index, t);
        self.index += 1;
    }
}

/// Where a session hands each transaction's outcome as soon as it is known.
pub trait TransactionSink: Send {
    /// One transaction's outcome.
    fn transaction(&mut self, t: &TransactionReport);
}

/// The `--json` object, written as the run goes, so that what is held for
/// it does not grow with the run: `{"transactions":[`, every transaction as
/// its result comes (by session then order, see [`ReportSpool`]), then
/// the summary fields after the array (`ok`, `tls`, `auth_mechanism`,
/// `messages_sent`, `elapsed_ms`, `error`), on one line.
///
/// Errors writing `out` are ignored (like a reader of stdout that went
/// away): the run and its exit status do not depend on them.
pub struct JsonReport<'a> {
    out: Box<dyn io::Write + Send + 'a>,
    /// Elements of `transactions` written so far.
    written: u64,
    /// A session's spooled elements that could not be read back.
    lost: Option<io::Error>,
}

impl<'a> JsonReport<'a> {
    /// Starts the object on `out`.
    pub fn start(out: impl io::Write + Send + 'a) -> JsonReport<'a> {
        let mut report = JsonReport {
            out: Box::new(out),
            written: 0,
            lost: None,
        };
        let _ = report.out.write_all(b"{\"transactions\":[");
        report
    }

    /// Writes out the elements a later session kept in its spool.
    pub fn append(&mut self, spool: SessionSpool<'_>) {
        if spool.count == 0 {
            return;
        }
        if self.written > 0 {
            let _ = self.out.write_all(b",");
        }
        self.written += spool.count;
        if let Err(err) = spool.write_to(&mut self.out) {
            self.lost.get_or_insert(err);
        }
    }

    /// Ends the array, writes the summary fields of `report`, ends the
    /// object and the line, and flushes. An error reading back a session's
    /// spool (its part of `transactions` is incomplete) is returned.
    pub fn finish(mut self, report: &Report) -> Option<io::Error> {
        let _ = self
            .out
            .write_all(b"],")
            .and_then(|()| report.write_summary_json(&mut self.out))
            .and_then(|()| self.out.write_all(b"}\n"))
            .and_then(|()| self.out.flush());
        self.lost
    }
}

impl TransactionSink for JsonReport<'_> {
    fn transaction(&mut self, t: &TransactionReport) {
        if self.written > 0 {
            let _ = self.out.write_all(b",");
        }
        self.written += 1;
        let _ = write_transaction(&mut self.out, t);
    }
}

/// Where the parallel sessions after the first keep their elements of
/// `transactions` until the sessions before them are written out, so that
/// `--json` lists the transactions by session then order in bounded
/// memory: one anonymous temporary file (`TMPDIR`) for all of them, which
/// each session fills with chunks of its own (see [`SessionSpool`]).
pub struct ReportSpool {
    state: Mutex<SpoolFile>,
}

struct SpoolFile {
    /// `None` when no temporary file could be had.
    file: Option<File>,
    /// Bytes written whole; a failed write is cut back to this.
    len: u64,
    /// A write failed: nothing more goes to the file.
    failed: bool,
}

impl ReportSpool {
    /// An empty spool, in a new anonymous temporary file. Should none be
    /// had (or writing it fail later), the sessions keep their elements in
    /// memory instead: the report stays whole.
    pub fn new() -> ReportSpool {
        let file = tempfile::tempfile().ok();
        ReportSpool {
            state: Mutex::new(SpoolFile {
                failed: file.is_none(),
                file,
                len: 0,
            }),
        }
    }

    /// A session's part of it.
    pub fn session(&self) -> SessionSpool<'_> {
        SessionSpool {
            spool: self,
            chunks: Vec::new(),
            pending: Vec::new(),
            count: 0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolFile> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ReportSpool {
    fn default() -> ReportSpool {
        ReportSpool::new()
    }
}

/// One session's elements of `transactions`, comma-separated: gathered in
/// memory up to [`SessionSpool::CHUNK`] bytes, then written to the shared
/// [`ReportSpool`] as one chunk whose place is noted.
pub struct SessionSpool<'a> {
    spool: &'a ReportSpool,
    /// This session's chunks in the file, in order: offset and length.
    chunks: Vec<(u64, u64)>,
    /// Elements not yet in the file (all of them once the file failed).
    pending: Vec<u8>,
    /// Elements in all.
    count: u64,
}

impl SessionSpool<'_> {
    /// How many bytes of elements a session gathers before it writes them
    /// to the file (one element of many recipients may be more).
    pub const CHUNK: usize = 16 * 1024;

    /// Moves the pending elements to the file, if it is usable.
    fn flush(&mut self) {
        let mut state = self.spool.lock();
        let SpoolFile { file, len, failed } = &mut *state;
        let Some(file) = file.as_mut().filter(|_| !*failed) else {
            return;
        };
        match file.write_all(&self.pending) {
            Ok(()) => {
                let written = self.pending.len() as u64;
                self.chunks.push((*len, written));
                *len += written;
                self.pending.clear();
            }
            // What the file holds whole stays there; the rest of every
            // session's elements is kept in memory.
            Err(_) => {
                let _ = file.set_len(*len);
                *failed = true;
            }
        }
    }

    /// Copies the elements to `out`; only an error reading the file back
    /// is returned.
    fn write_to(self, out: &mut dyn io::Write) -> io::Result<()> {
        if !self.chunks.is_empty() {
            let mut state = self.spool.lock();
            let file = state
                .file
                .as_mut()
                .ok_or_else(|| io::Error::other("the report's temporary file is gone"))?;
            let mut buf = vec![0; 64 * 1024];
            for &(at, len) in &self.chunks {
                file.seek(SeekFrom::Start(at))?;
                let mut left = len;
                while left > 0 {
                    let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let n = match file.read(&mut buf[..want]) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => return Err(err),
                    };
                    let _ = out.write_all(&buf[..n]);
                    left -= n as u64;
                }
            }
            // Writes go on at the end of what was written whole.
            let end = state.len;
            if let Some(file) = state.file.as_mut() {
                file.seek(SeekFrom::Start(end))?;
            }
        }
        let _ = out.write_all(&self.pending);
        Ok(())
    }
}

impl TransactionSink for SessionSpool<'_> {
    fn transaction(&mut self, t: &TransactionReport) {
        if self.count > 0 {
            self.pending.push(b',');
        }
        // Writing to a Vec cannot fail.
        let _ = write_transaction(&mut self.pending, t);
        self.count += 1;
        if self.pending.len() >= Self::CHUNK {
            self.flush();
        }
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
            classify(&smtp_blocking::Error::Smtp(smtp_proto::Error::Timeout {
                stage: Stage::Ehlo
            }))
            .kind,
            Kind::Timeout
        );
    }

    fn transaction(code: u16, addresses: &[&str]) -> TransactionReport {
        TransactionReport {
            recipients: addresses
                .iter()
                .map(|a| RecipientReport {
                    address: (*a).to_owned(),
                    code,
                    accepted: code < 300,
                })
                .collect(),
            data_code: (code < 300).then_some(250),
            status: if code < 300 {
                Outcome::Accepted
            } else {
                Outcome::Refused
            },
        }
    }

    /// How the spools keep their elements.
    #[derive(Clone, Copy)]
    enum Keep {
        TempFile,
        /// No temporary file could be had.
        NoFile,
        /// A file that cannot be written.
        Unwritable,
    }

    /// `sessions[i]` are session i's transactions; the first goes straight
    /// to the report, the others through spools. The sessions take turns,
    /// one transaction at a time, as parallel ones would.
    fn streamed(sessions: &[Vec<TransactionReport>], keep: Keep) -> serde_json::Value {
        let mut out = Vec::new();
        let mut json = JsonReport::start(&mut out);
        let shared = ReportSpool::new();
        {
            let mut state = shared.lock();
            match keep {
                Keep::TempFile => assert!(state.file.is_some()),
                Keep::NoFile => (state.file, state.failed) = (None, true),
                Keep::Unwritable => {
                    // Opened for reading only: every write fails.
                    let named = tempfile::NamedTempFile::new().unwrap();
                    state.file = Some(File::open(named.path()).unwrap());
                }
            }
        }
        let mut spools: Vec<SessionSpool> = (1..sessions.len()).map(|_| shared.session()).collect();
        let longest = sessions.iter().map(Vec::len).max().unwrap_or(0);
        for n in 0..longest {
            for (i, session) in sessions.iter().enumerate() {
                if let Some(t) = session.get(n) {
                    match i {
                        0 => json.transaction(t),
                        _ => spools[i - 1].transaction(t),
                    }
                }
            }
        }
        // What went to the file: chunks, unless it was unwritable.
        let big = spools.iter().any(|s| s.count > 300);
        let (in_file, failed) = {
            let state = shared.lock();
            (state.len, state.failed)
        };
        match keep {
            Keep::TempFile => assert_eq!(in_file > 0, big),
            Keep::NoFile | Keep::Unwritable => assert!(in_file == 0 && (failed || !big)),
        }
        for spool in spools {
            json.append(spool);
        }
        let mut report =
            Report::failed(Failure::new(Kind::Io, "a \"quoted\"\nline"), Duration::ZERO);
        report.auth_mechanism = Some("LOGIN".into());
        report.messages_sent = 3;
        assert!(json.finish(&report).is_none());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
        assert!(text.ends_with("}\n"));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn the_streamed_json_report_is_one_object_by_session_then_order() {
        // Session k's transactions: `n` of them with code 250 + k, the i-th
        // to `r{i}@s{k}` (and `extra` more recipients on the first).
        let session = |k: u16, n: usize, extra: usize| -> Vec<TransactionReport> {
            (0..n)
                .map(|i| {
                    let mut to = vec![format!("r{i}@s{k}\"q")];
                    if i == 0 {
                        to.extend((0..extra).map(|j| format!("x{j}@s{k}")));
                    }
                    let to: Vec<&str> = to.iter().map(String::as_str).collect();
                    transaction(250 + k, &to)
                })
                .collect()
        };
        let expect = |sessions: &[Vec<TransactionReport>]| -> serde_json::Value {
            sessions
                .iter()
                .flatten()
                .map(|t| {
                    serde_json::json!({
                        "recipients": t.recipients.iter().map(|r| serde_json::json!({
                            "address": r.address, "code": r.code, "accepted": r.accepted
                        })).collect::<Vec<_>>(),
                        "data_code": t.data_code,
                        "status": t.status.as_str(),
                    })
                })
                .collect::<Vec<_>>()
                .into()
        };
        for keep in [Keep::TempFile, Keep::NoFile, Keep::Unwritable] {
            for sessions in [
                // Several chunks per session (about 60 bytes a transaction),
                // one element over a chunk, an empty session.
                vec![
                    session(0, 700, 0),
                    session(1, 0, 0),
                    session(2, 900, 500),
                    session(3, 5, 0),
                ],
                // The first session with nothing: no stray comma.
                vec![
                    session(0, 0, 0),
                    session(1, 0, 0),
                    session(2, 1, 0),
                    session(3, 2, 0),
                ],
                vec![session(0, 3, 0)],
                vec![session(0, 0, 0)],
                vec![session(0, 0, 0), session(1, 0, 0)],
            ] {
                let v = streamed(&sessions, keep);
                assert!(v["transactions"] == expect(&sessions), "not in order");
                assert_eq!(v["ok"], false);
                assert_eq!(v["tls"], false);
                assert_eq!(v["auth_mechanism"], "LOGIN");
                assert_eq!(v["messages_sent"], 3);
                assert_eq!(v["elapsed_ms"], 0.0);
                assert_eq!(
                    v["error"],
                    serde_json::json!({"kind": "io", "code": null, "message": "a \"quoted\"\nline"})
                );
            }
        }
    }

    #[test]
    fn human_summary_from_what_was_kept() {
        let t = transaction(250, &["a@x"]);
        let mut r = Report::failed(Failure::usage("x"), Duration::ZERO);
        r.error = None;
        r.attempted = 12;
        r.shown = vec![t.clone()];
        r.messages_sent = 12;
        let text = r.human();
        assert!(text.contains("transaction 1:\n  RCPT a@x  250  accepted\n  DATA  250\n"));
        assert!(!text.contains("transaction 2:"));
        assert!(
            text.contains("(11 more transactions not shown)\n"),
            "{text}"
        );
        r.attempted = 3;
        r.shown = vec![t.clone(), t.clone(), transaction(550, &["b@x"])];
        let text = r.human();
        assert!(text.contains("transaction 3:\n  RCPT b@x  550  refused\n  DATA  not sent\n"));
        assert!(!text.contains("not shown"), "{text}");
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
