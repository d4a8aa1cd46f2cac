//! `smtp-send probe`: what a server offers and shows, without sending mail.
//!
//! It connects, reads the greeting, sends EHLO, upgrades with STARTTLS when
//! the policy says so, sends EHLO again, authenticates when `--user` is
//! given (the same guard and secrets as sending), and says QUIT. Nothing
//! else is ever written: no MAIL, RCPT, DATA or BDAT. The session is driven
//! by the blocking adapter's [`Client::open`] and [`Client::establish`], so
//! that a set-up that fails half-way still shows what it learnt; the core
//! keeps the greeting and the EHLO replies, the adapter the TLS parameters,
//! and a recording certificate verifier
//! ([`recording_client_config`]) the certificate, also when it does not
//! verify (the probe then fails with kind `tls`, as sending would).
//!
//! The report is one JSON object with `--json` (see [`ProbeReport::json`]),
//! else a short human report on stdout and the error on stderr. Exit
//! statuses and error kinds are the send contract's ([`classify`]).

use crate::args::{AuthMode, ProbeArgs, TlsMode};
use crate::certificate::{self, CertificateReport};
use crate::plan::{self, parse_server, PASSWORD_ENV, TOKEN_ENV};
use crate::report::{classify, Failure, Kind, Report};
use serde_json::Value;
use smtp_blocking::rustls::ProtocolVersion;
use smtp_blocking::smtp_proto::{self, EhloName, Reply};
use smtp_blocking::tls::{recording_client_config, PresentedCertificates, TlsRoots};
use smtp_blocking::{
    Client, Config, Credentials, Error, Mechanism, Options, Stage, Timeouts, TlsPolicy,
    TranscriptHook,
};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A checked probe: where to connect, how, and with which credentials.
#[derive(Clone)]
pub struct ProbePlan {
    /// The server name (TLS and the credential guard), as given.
    pub server_name: String,
    /// The port, when HOST is resolved.
    pub port: u16,
    /// Where to connect instead of resolving the name.
    pub connect: Option<SocketAddr>,
    /// The TLS policy.
    pub tls: TlsPolicy,
    /// Timeouts and the recording rustls configuration; no transcript hook.
    pub options: Options,
    /// What the server presents in the TLS handshake (`None` with
    /// `--tls none`).
    pub presented: Option<PresentedCertificates>,
    /// The EHLO name.
    pub helo: EhloName,
    /// Credentials, with `--user`.
    pub credentials: Option<Credentials>,
    /// The mechanism asked for (`None`: automatic).
    pub mechanism: Option<Mechanism>,
}

impl std::fmt::Debug for ProbePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbePlan")
            .field("server_name", &self.server_name)
            .field("port", &self.port)
            .field("connect", &self.connect)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// The default port for `--tls`, as for sending.
fn default_port(tls: TlsMode) -> u16 {
    match tls {
        TlsMode::Implicit => 465,
        TlsMode::None => 25,
        TlsMode::Required | TlsMode::Opportunistic => 587,
    }
}

/// Builds the plan from the flags, as [`plan::plan`] does for sending
/// (the same server forms, `--connect`, `--ca-file`, secrets from the
/// environment and checks), with a certificate-recording TLS
/// configuration. Nothing is connected.
pub fn plan(args: &ProbeArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<ProbePlan, Failure> {
    let (server_name, port) =
        parse_server(&args.server, default_port(args.tls)).map_err(Failure::usage)?;
    let connect = args
        .connect
        .as_deref()
        .map(plan::parse_connect)
        .transpose()?;
    let tls = match args.tls {
        TlsMode::Required => TlsPolicy::Required,
        TlsMode::Opportunistic => TlsPolicy::Opportunistic,
        TlsMode::Implicit => TlsPolicy::Implicit,
        TlsMode::None => TlsPolicy::Disabled,
    };
    let mut options = Options::new();
    let mut presented = None;
    if args.tls != TlsMode::None {
        let roots =
            match &args.ca_file {
                Some(path) => TlsRoots::Pem(std::fs::read(path).map_err(|err| {
                    Failure::usage(format!("--ca-file {}: {err}", path.display()))
                })?),
                None => TlsRoots::WebPki,
            };
        let (config, record) =
            recording_client_config(&roots).map_err(|err| classify(&err.into()))?;
        options = options.tls(config);
        presented = Some(record);
    }
    let helo = EhloName::new(args.helo.clone()).map_err(|err| plan::invalid("--helo", err))?;
    let credentials = match &args.user {
        None if args.auth.is_some() => return Err(Failure::usage("--auth needs --user")),
        None => None,
        Some(user) => {
            let credentials =
                plan::credentials(user, args.auth, env(PASSWORD_ENV), env(TOKEN_ENV))?;
            credentials
                .check()
                .map_err(|err| plan::invalid("--user", err))?;
            Some(credentials)
        }
    };
    let mechanism = match args.auth {
        None | Some(AuthMode::Auto) => None,
        Some(AuthMode::Plain) => Some(Mechanism::Plain),
        Some(AuthMode::Login) => Some(Mechanism::Login),
        Some(AuthMode::Xoauth2) => Some(Mechanism::XOAuth2),
        Some(AuthMode::Oauthbearer) => Some(Mechanism::OAuthBearer),
    };
    if let Some(timeout) = args
        .timeout
        .map(|secs| plan::seconds("--timeout", secs))
        .transpose()?
    {
        // QUIT comes after the report, within its default at most.
        let quit = Stage::Quit.default_timeout().min(timeout);
        options = options
            .timeouts(Timeouts::uniform(timeout).with(Stage::Quit, quit))
            .connect_timeout(timeout);
    }
    Ok(ProbePlan {
        server_name,
        port,
        connect,
        tls,
        options,
        presented,
        helo,
        credentials,
        mechanism,
    })
}

/// The greeting: its code and text (the lines joined with `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreetingReport {
    /// The reply code.
    pub code: u16,
    /// The text of every line, without code and separator.
    pub text: String,
    /// The reply as people read it, control characters escaped.
    pub display: String,
}

impl From<&Reply> for GreetingReport {
    fn from(reply: &Reply) -> GreetingReport {
        GreetingReport {
            code: reply.code().get(),
            text: reply
                .lines()
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join("\n"),
            display: reply.to_string(),
        }
    }
}

/// The TLS connection, or the attempt at one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReport {
    /// `"starttls"` or `"implicit"`.
    pub mode: &'static str,
    /// `"TLSv1.2"` or `"TLSv1.3"`, once the handshake succeeded.
    pub version: Option<String>,
    /// The rustls name of the cipher suite, once the handshake succeeded.
    pub cipher: Option<String>,
    /// The server's end-entity certificate, when it presented one.
    pub certificate: Option<CertificateReport>,
}

/// What became of `--user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// The server answered `235`.
    Accepted,
    /// The server refused the credentials, or the exchange was cancelled.
    Rejected,
    /// No verdict: the guard refused, no usable mechanism, or the probe
    /// ended before AUTH was answered (the error says why).
    NotAttempted,
}

impl AuthResult {
    /// The name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Accepted => "accepted",
            AuthResult::Rejected => "rejected",
            AuthResult::NotAttempted => "not_attempted",
        }
    }
}

/// Authentication, with `--user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthReport {
    /// The mechanisms advertised on the session that would authenticate:
    /// the EHLO over TLS when TLS is on; none when TLS was wanted and not
    /// established.
    pub offered: Vec<String>,
    /// The mechanism tried, when one was.
    pub mechanism: Option<String>,
    /// The verdict.
    pub result: AuthResult,
    /// The server's final reply code to AUTH, when it gave one.
    pub code: Option<u16>,
}

impl AuthReport {
    fn not_attempted() -> AuthReport {
        AuthReport {
            offered: Vec::new(),
            mechanism: None,
            result: AuthResult::NotAttempted,
            code: None,
        }
    }
}

/// Everything a probe found; see the README's CLI reference for the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The set-up succeeded (and the credentials were accepted, with `--user`).
    pub ok: bool,
    /// The server name, once the command line was understood.
    pub server: Option<String>,
    /// The port connected to (`--connect`'s, else `--server`'s).
    pub port: Option<u16>,
    /// The greeting, once read.
    pub greeting: Option<GreetingReport>,
    /// The keyword lines of the plaintext EHLO reply; `None` with implicit
    /// TLS or when no positive EHLO reply came.
    pub ehlo_before_tls: Option<Vec<String>>,
    /// The keyword lines of the EHLO reply over TLS; `None` without TLS.
    pub ehlo_after_tls: Option<Vec<String>>,
    /// The TLS connection, or the handshake attempted; `None` without TLS.
    pub tls: Option<TlsReport>,
    /// Authentication; `None` without `--user`.
    pub auth: Option<AuthReport>,
    /// Wall-clock time until the report (QUIT not included).
    pub elapsed: Duration,
    /// Why the probe failed.
    pub error: Option<Failure>,
}

/// A finished probe: the report, and the connection still to be closed
/// with QUIT once the report is out.
pub struct Probed {
    /// What the probe found.
    pub report: ProbeReport,
    /// The connection, if one was made.
    pub client: Option<Client>,
}

/// Runs the probe. `hook` gets every transcript line; `started` is when
/// the command began (for `elapsed_ms`).
pub fn run(plan: &ProbePlan, hook: Option<TranscriptHook>, started: Instant) -> Probed {
    let mut config = Config::new(plan.server_name.clone())
        .tls(plan.tls)
        .ehlo_name(plan.helo.clone());
    if let Some(credentials) = &plan.credentials {
        config = config.credentials(credentials.clone());
    }
    if let Some(mechanism) = &plan.mechanism {
        config = config.mechanism(mechanism.clone());
    }
    let mut options = plan.options.clone();
    options.transcript = hook;
    // The port reached: --connect's, else --server's.
    let port = plan.connect.map_or(plan.port, |address| address.port());
    let mut report = ProbeReport::blank(Some((plan.server_name.clone(), port)));
    let opened = match plan.connect {
        Some(address) => Client::open_to(address, config, options),
        None => Client::open(&plan.server_name, plan.port, config, options),
    };
    let mut client = match opened {
        Ok(client) => client,
        Err(err) => {
            report.auth = plan
                .credentials
                .as_ref()
                .map(|_| AuthReport::not_attempted());
            report.error = Some(classify(&err));
            report.elapsed = started.elapsed();
            return Probed {
                report,
                client: None,
            };
        }
    };
    let established = client.establish();
    report.describe(&client, plan, established.as_ref().err());
    report.ok = established.is_ok();
    report.error = established.err().map(|err| classify(&err));
    report.elapsed = started.elapsed();
    Probed {
        report,
        client: Some(client),
    }
}

impl ProbeReport {
    /// A probe that failed before it connected (or never started).
    pub fn failed(server: Option<(String, u16)>, error: Failure, elapsed: Duration) -> ProbeReport {
        ProbeReport {
            elapsed,
            error: Some(error),
            ..ProbeReport::blank(server)
        }
    }

    /// Nothing known yet but the server and port.
    fn blank(server: Option<(String, u16)>) -> ProbeReport {
        let (server, port) = server.unzip();
        ProbeReport {
            ok: false,
            server,
            port,
            greeting: None,
            ehlo_before_tls: None,
            ehlo_after_tls: None,
            tls: None,
            auth: None,
            elapsed: Duration::ZERO,
            error: None,
        }
    }

    /// Fills in what the session and the TLS layer learnt, whether or not
    /// `failure` ended the set-up.
    fn describe(&mut self, client: &Client, plan: &ProbePlan, failure: Option<&Error>) {
        let session = client.session();
        let implicit = plan.tls == TlsPolicy::Implicit;
        let tls_on = client.is_tls();
        self.greeting = session.greeting().map(GreetingReport::from);
        self.ehlo_before_tls = if implicit {
            None
        } else if tls_on {
            session.ehlo_reply_before_tls().map(keyword_lines)
        } else {
            session.ehlo_reply().map(keyword_lines)
        };
        self.ehlo_after_tls = if tls_on {
            session.ehlo_reply().map(keyword_lines)
        } else {
            None
        };
        let chain = plan
            .presented
            .as_ref()
            .and_then(PresentedCertificates::chain);
        if tls_on || chain.is_some() || failure.is_some_and(in_handshake) {
            let (der, verified) = match client.tls_peer_certificates().and_then(|c| c.first()) {
                Some(cert) => (Some(cert.clone()), true),
                None => (
                    chain.and_then(|chain| chain.into_iter().next()),
                    plan.presented
                        .as_ref()
                        .and_then(PresentedCertificates::verified)
                        == Some(true),
                ),
            };
            self.tls = Some(TlsReport {
                mode: if implicit { "implicit" } else { "starttls" },
                version: client.tls_protocol_version().map(|version| match version {
                    ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                    ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                    other => format!("{other:?}"),
                }),
                cipher: client.tls_cipher_suite().map(|suite| {
                    let suite = suite.suite();
                    suite
                        .as_str()
                        .map_or_else(|| format!("{suite:?}"), str::to_owned)
                }),
                certificate: der.and_then(|der| {
                    certificate::describe(der.as_ref(), verified, SystemTime::now()).ok()
                }),
            });
        }
        if plan.credentials.is_some() {
            let mut auth = auth_report(client, failure);
            // Mechanisms offered in plaintext where TLS was wanted are not
            // on the session that would authenticate.
            let tls_wanted =
                matches!(plan.tls, TlsPolicy::Required | TlsPolicy::Implicit) || self.tls.is_some();
            if tls_wanted && !tls_on {
                auth.offered.clear();
            }
            self.auth = Some(auth);
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

    /// The `--json` object, on one line (without its line ending).
    pub fn json(&self) -> String {
        let opt = |value: Option<Value>| value.unwrap_or(Value::Null).to_string();
        let lines = |lines: &Option<Vec<String>>| opt(lines.clone().map(Value::from));
        let greeting = self.greeting.as_ref().map(|g| {
            object(&[
                ("code", Value::from(g.code).to_string()),
                ("text", Value::from(g.text.as_str()).to_string()),
            ])
        });
        let ehlo = object(&[
            ("before_tls", lines(&self.ehlo_before_tls)),
            ("after_tls", lines(&self.ehlo_after_tls)),
        ]);
        let tls = self.tls.as_ref().map(|t| {
            let certificate = t.certificate.as_ref().map(|c| {
                object(&[
                    ("subject", Value::from(c.subject.as_str()).to_string()),
                    ("issuer", Value::from(c.issuer.as_str()).to_string()),
                    ("dns_names", Value::from(c.dns_names.clone()).to_string()),
                    ("not_after", Value::from(c.not_after.as_str()).to_string()),
                    ("days_left", Value::from(c.days_left).to_string()),
                    ("verified", Value::from(c.verified).to_string()),
                ])
            });
            object(&[
                ("mode", Value::from(t.mode).to_string()),
                ("version", opt(t.version.clone().map(Value::from))),
                ("cipher", opt(t.cipher.clone().map(Value::from))),
                ("certificate", certificate.unwrap_or_else(null)),
            ])
        });
        let auth = self.auth.as_ref().map(|a| {
            object(&[
                ("offered", Value::from(a.offered.clone()).to_string()),
                ("mechanism", opt(a.mechanism.clone().map(Value::from))),
                ("result", Value::from(a.result.as_str()).to_string()),
                ("code", opt(a.code.map(Value::from))),
            ])
        });
        let error = self.error.as_ref().map(|f| {
            object(&[
                ("kind", Value::from(f.kind.as_str()).to_string()),
                ("code", opt(f.code.map(Value::from))),
                ("message", Value::from(f.message.as_str()).to_string()),
            ])
        });
        object(&[
            ("ok", Value::from(self.ok).to_string()),
            ("server", opt(self.server.clone().map(Value::from))),
            ("port", opt(self.port.map(Value::from))),
            ("greeting", greeting.unwrap_or_else(null)),
            ("ehlo", ehlo),
            ("tls", tls.unwrap_or_else(null)),
            ("auth", auth.unwrap_or_else(null)),
            (
                "elapsed_ms",
                Value::from(self.elapsed.as_secs_f64() * 1000.0).to_string(),
            ),
            ("error", error.unwrap_or_else(null)),
        ])
    }

    /// The human report (without the error, see [`ProbeReport::human_error`]).
    pub fn human(&self) -> String {
        let mut out = String::new();
        if let (Some(server), Some(port)) = (&self.server, self.port) {
            let _ = writeln!(out, "server:      {server} port {port}");
        }
        if let Some(greeting) = &self.greeting {
            let _ = writeln!(out, "greeting:    {}", greeting.display);
        }
        if let Some(lines) = &self.ehlo_before_tls {
            let _ = writeln!(out, "EHLO:        {}", joined(lines));
        }
        match &self.tls {
            // Never connected, or refused at the greeting: nothing to say.
            None if self.greeting.is_none() => {}
            None => {
                let _ = writeln!(out, "TLS:         none");
            }
            Some(tls) => {
                let _ = write!(out, "TLS:         {}", tls.mode);
                for part in [&tls.version, &tls.cipher].into_iter().flatten() {
                    let _ = write!(out, ", {part}");
                }
                if tls.version.is_none() {
                    out.push_str(" (handshake failed)");
                }
                out.push('\n');
                if let Some(c) = &tls.certificate {
                    let _ = writeln!(out, "certificate: {}", escaped(&c.subject));
                    let _ = writeln!(out, "  issuer:    {}", escaped(&c.issuer));
                    let _ = writeln!(out, "  DNS names: {}", joined(&c.dns_names));
                    let days = |n: i64| if n == 1 { "day" } else { "days" };
                    let _ = match c.days_left {
                        left @ 0.. => writeln!(
                            out,
                            "  expires:   {} ({left} {} left)",
                            c.not_after,
                            days(left)
                        ),
                        past => writeln!(
                            out,
                            "  expired:   {} ({} {} ago)",
                            c.not_after,
                            -past,
                            days(-past)
                        ),
                    };
                    let verdict = if c.verified {
                        "yes"
                    } else {
                        "NO (not trusted for this server name)"
                    };
                    let _ = writeln!(out, "  verified:  {verdict}");
                }
            }
        }
        if let Some(lines) = &self.ehlo_after_tls {
            let _ = writeln!(out, "EHLO (TLS):  {}", joined(lines));
        }
        if let Some(auth) = &self.auth {
            let _ = write!(out, "AUTH:        ");
            if let Some(mechanism) = &auth.mechanism {
                let _ = write!(out, "{mechanism} ");
            }
            let _ = write!(out, "{}", auth.result.as_str().replace('_', " "));
            if let Some(code) = auth.code {
                let _ = write!(out, " ({code})");
            }
            let _ = writeln!(out, "; offered: {}", joined(&auth.offered));
        }
        let _ = writeln!(
            out,
            "elapsed:     {:.1} ms",
            self.elapsed.as_secs_f64() * 1000.0
        );
        out
    }

    /// `error: KIND (CODE): message`, if the probe failed (as for sending).
    pub fn human_error(&self) -> Option<String> {
        let failure = self.error.clone()?;
        Report::failed(failure, Duration::ZERO).human_error()
    }
}

/// Whether a failure happened during the TLS handshake (a certificate
/// check, a timeout, a close).
fn in_handshake(err: &Error) -> bool {
    matches!(
        err,
        Error::Tls(_)
            | Error::Smtp(smtp_proto::Error::Timeout {
                stage: Stage::TlsHandshake
            })
            | Error::Smtp(smtp_proto::Error::TimeLimit {
                stage: Stage::TlsHandshake,
                ..
            })
            | Error::Smtp(smtp_proto::Error::ConnectionClosed {
                stage: Stage::TlsHandshake
            })
    )
}

fn auth_report(client: &Client, failure: Option<&Error>) -> AuthReport {
    use smtp_proto::Error as P;
    let session = client.session();
    let offered = session
        .capabilities()
        .auth_mechanisms()
        .iter()
        .map(|m| m.as_str().to_owned())
        .collect();
    let code = session.auth_reply().map(|reply| reply.code().get());
    let (result, mechanism) = match (session.auth_mechanism(), failure) {
        (Some(mechanism), _) => (AuthResult::Accepted, Some(mechanism.clone())),
        (None, Some(Error::Smtp(P::AuthFailed { mechanism, .. })))
        | (None, Some(Error::Smtp(P::AuthCancelled { mechanism, .. }))) => {
            (AuthResult::Rejected, Some(mechanism.clone()))
        }
        // Another final reply to AUTH (a 421, say) is no acceptance either.
        (None, _) if code.is_some() => (AuthResult::Rejected, None),
        (None, _) => (AuthResult::NotAttempted, None),
    };
    AuthReport {
        offered,
        mechanism: mechanism.map(|m| m.as_str().to_owned()),
        result,
        code,
    }
}

/// An EHLO reply's lines after the first, as text.
fn keyword_lines(reply: &Reply) -> Vec<String> {
    reply
        .lines()
        .skip(1)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect()
}

/// `{"k":v,...}` from JSON texts, keys in the order given.
fn object(fields: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*key).to_string());
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

fn null() -> String {
    "null".to_owned()
}

/// Server text for a terminal: control characters escaped.
fn escaped(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn joined(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .map(|item| escaped(item))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `argv` (program name first) asks for `smtp-send probe`.
pub fn is_probe<T: AsRef<std::ffi::OsStr>>(argv: &[T]) -> bool {
    argv.get(1).is_some_and(|arg| arg.as_ref() == "probe")
}

/// The `--json` object of a probe whose command line could not be parsed.
pub fn usage_json(failure: Failure, elapsed: Duration) -> String {
    ProbeReport::failed(None, failure, elapsed).json()
}

/// `smtp-send probe`: plans, probes, prints, then QUITs; the exit status.
pub fn main(args: &ProbeArgs, env: &dyn Fn(&str) -> Option<String>, started: Instant) -> u8 {
    let hook: Option<TranscriptHook> = if args.transcript {
        Some(Arc::new(|line| {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }))
    } else {
        None
    };
    let (report, client) = match plan(args, env) {
        Ok(plan) => {
            let Probed { report, client } = run(&plan, hook, started);
            (report, client)
        }
        Err(failure) => {
            let server = parse_server(&args.server, default_port(args.tls)).ok();
            (
                ProbeReport::failed(server, failure, started.elapsed()),
                None,
            )
        }
    };
    if args.json {
        println!("{}", report.json());
    } else {
        // A command line refused before connecting: only the error.
        if report.error.as_ref().is_none_or(|f| f.kind != Kind::Usage) {
            print!("{}", report.human());
        }
        if let Some(line) = report.human_error() {
            eprintln!("{line}");
        }
    }
    // The report is out: only now QUIT, which cannot change it.
    let _ = std::io::stdout().flush();
    if let Some(client) = client {
        let _ = client.quit();
    }
    report.exit_status()
}
