//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `smtp-send`: send one RFC 5322 message (optionally N times) and report
/// what the server said; or `smtp-send demo`.
#[derive(Debug, Parser)]
#[command(
    name = "smtp-send",
    version,
    about = "Send a message over SMTP and report what the server said",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// `demo`, or nothing to send a message.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The flags for sending.
    #[command(flatten)]
    pub send: SendArgs,
}

/// The three common jobs, shown after `--help`.
const EXAMPLES: &str = "\
Examples:
  Send a message through Microsoft 365 (STARTTLS, then AUTH; the token, or
  the password, from the environment):
    SMTP_OAUTH_TOKEN=... smtp-send --url 'smtp://me%40example.com@smtp.office365.com' \\
        --from me@example.com --to you@example.org --data message.eml

  Microsoft 365 with an app registration (SMTP.SendAsApp): the token from
  the tenant's endpoint (client credentials grant), then AUTH XOAUTH2:
    SMTP_OAUTH_CLIENT_SECRET=... smtp-send --server smtp.office365.com \\
        --oauth2-tenant contoso.onmicrosoft.com --oauth2-client-id APP-ID \\
        --user me@contoso.com --from me@contoso.com --to you@example.org

  Probe a server: what it offers before and after TLS, its certificate:
    smtp-send probe --server mail.example.com:587 --json

  Send a test message (Date, Message-ID, From, To, Subject made up):
    smtp-send --server mail.example.com --from me@example.com --to you@example.org";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole path against an in-process Exchange-Online-like server
    /// on loopback, trusting its throwaway certificate for this run only.
    Demo,
    /// Print a shell completion script for SHELL on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout.
    Man,
    /// Diagnose a server without sending mail: the greeting, what EHLO
    /// offers before and after TLS, the TLS version, cipher and
    /// certificate, and whether the credentials work. Never sends MAIL,
    /// RCPT, DATA or BDAT.
    Probe(ProbeArgs),
}

/// The flags of `smtp-send probe` (see [`crate::probe`]).
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The server's name (for TLS name checks and the credential guard) and
    /// port; the port defaults to 587 (465 with --tls implicit, 25 with
    /// --tls none). IPv6: `[::1]:25`.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub server: String,

    /// Connect the TCP socket here instead of resolving HOST; HOST is still
    /// the name used for TLS and the credential guard.
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: Option<String>,

    /// The TLS policy.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = TlsMode::Required)]
    pub tls: TlsMode,

    /// PEM file of root certificates to trust (replaces the built-in roots).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// The EHLO/HELO name.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub helo: String,

    /// Also try to authenticate as this user; the secret comes from env
    /// SMTP_PASSWORD (or SMTP_OAUTH_TOKEN for a bearer token).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// The AUTH mechanism [default: auto].
    #[arg(long, value_enum, value_name = "MECHANISM")]
    pub auth: Option<AuthMode>,

    /// One timeout (seconds, fractions allowed) for connecting and for every
    /// read and write [default: RFC 5321 §4.5.3.2 values per stage].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,

    /// Print the dialogue on stderr, AUTH payloads redacted.
    #[arg(long)]
    pub transcript: bool,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// STARTTLS must be advertised and succeed before any credential or envelope.
    Required,
    /// STARTTLS if offered.
    Opportunistic,
    /// TLS from the first byte (port 465).
    Implicit,
    /// Never TLS.
    None,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// With `SMTP_PASSWORD`, PLAIN if advertised, else LOGIN; with
    /// `SMTP_OAUTH_TOKEN`, XOAUTH2, else OAUTHBEARER; with both, the first
    /// advertised of PLAIN, LOGIN, XOAUTH2, OAUTHBEARER.
    Auto,
    /// AUTH PLAIN (needs `SMTP_PASSWORD`).
    Plain,
    /// AUTH LOGIN (needs `SMTP_PASSWORD`).
    Login,
    /// AUTH XOAUTH2 (needs `SMTP_OAUTH_TOKEN`).
    Xoauth2,
    /// AUTH OAUTHBEARER (needs `SMTP_OAUTH_TOKEN`).
    Oauthbearer,
}

/// The flags for sending a message.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The server's name (for TLS name checks and the credential guard) and
    /// port; the port defaults to 587 (465 with --tls implicit, 25 with
    /// --tls none). IPv6: `[::1]:25`.
    #[arg(long, value_name = "HOST[:PORT]", required_unless_present = "url")]
    pub server: Option<String>,

    /// `smtp://[USER@]HOST[:PORT]` (STARTTLS required, port 587) or
    /// `smtps://[USER@]HOST[:PORT]` (implicit TLS, port 465), with
    /// ?tls=opportunistic|none, ?auth=MECHANISM, ?helo=NAME; the user is
    /// percent-decoded (alice%40example.com). Instead of --server, --tls,
    /// --user and --auth; the secret comes from the environment.
    #[arg(long, value_name = "URL", conflicts_with_all = ["server", "tls", "user", "auth"])]
    pub url: Option<String>,

    /// Connect the TCP socket here instead of resolving HOST; HOST is still
    /// the name used for TLS and the credential guard.
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: Option<String>,

    /// The TLS policy.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = TlsMode::Required)]
    pub tls: TlsMode,

    /// PEM file of root certificates to trust (replaces the built-in roots).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// The EHLO/HELO name.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub helo: String,

    /// The user name; the secret comes from env SMTP_PASSWORD (or
    /// SMTP_OAUTH_TOKEN for a bearer token).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// The AUTH mechanism [default: auto].
    #[arg(long, value_enum, value_name = "MECHANISM")]
    pub auth: Option<AuthMode>,

    /// Allow credentials over a connection that is neither TLS nor to a
    /// loopback name.
    #[arg(long)]
    pub allow_insecure_auth: bool,

    /// Get the bearer token from this OAuth2 token endpoint (https, or http
    /// to a loopback address) before connecting, then AUTH XOAUTH2 (or
    /// OAUTHBEARER with --auth oauthbearer) as --user: the client
    /// credentials grant with env SMTP_OAUTH_CLIENT_SECRET, or the refresh
    /// token grant with env SMTP_OAUTH_REFRESH_TOKEN (and the client secret,
    /// if set). --ca-file applies to the endpoint too.
    #[arg(
        long,
        value_name = "URL",
        help_heading = "OAuth2",
        conflicts_with = "oauth2_tenant"
    )]
    pub oauth2_token_url: Option<String>,

    /// Microsoft's token endpoint of TENANT (a tenant id or domain):
    /// `https://login.microsoftonline.com/TENANT/oauth2/v2.0/token`, instead
    /// of --oauth2-token-url.
    #[arg(long, value_name = "TENANT", help_heading = "OAuth2")]
    pub oauth2_tenant: Option<String>,

    /// The application (client) id, for --oauth2-token-url or --oauth2-tenant.
    #[arg(long, value_name = "ID", help_heading = "OAuth2")]
    pub oauth2_client_id: Option<String>,

    /// The scope asked for (Microsoft's delegated SMTP.Send:
    /// `'https://outlook.office.com/SMTP.Send offline_access'`; Gmail:
    /// `https://mail.google.com/`).
    #[arg(
        long,
        value_name = "SCOPE",
        help_heading = "OAuth2",
        default_value = "https://outlook.office365.com/.default"
    )]
    pub oauth2_scope: String,

    /// The envelope sender (may be empty: --from '').
    #[arg(long, value_name = "ADDR", required = true)]
    pub from: Option<String>,

    /// An envelope recipient; repeat for more.
    #[arg(long, value_name = "ADDR", required = true)]
    pub to: Vec<String>,

    /// The message file, or - for stdin. Stdin or a pipe sent more than
    /// once is spooled to a temporary file (TMPDIR) first; at most 1 GiB is
    /// read from stdin or a pipe, and a longer source (or one that never
    /// ends, like /dev/zero) is refused [default: a test message with Date,
    /// Message-ID, From, To, Subject and a one-line body].
    #[arg(long, value_name = "PATH|-", conflicts_with_all = ["header", "body"])]
    pub data: Option<String>,

    /// A header for the test message, replacing the one of that name or
    /// added; repeat for more (not with --data).
    #[arg(long, value_name = "NAME: VALUE")]
    pub header: Vec<String>,

    /// The test message's body instead of the one-line default, or - to
    /// read it from stdin (not with --data).
    #[arg(long, value_name = "TEXT|-")]
    pub body: Option<String>,

    /// Send the message N times, as N transactions.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    /// With PIPELINING and CHUNKING, how many transactions one session keeps
    /// in flight before it waits for their replies (1: one at a time).
    #[arg(long, value_name = "W", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub window: u32,

    /// Spread the N transactions over C parallel sessions.
    #[arg(long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,

    /// One timeout (seconds, fractions allowed) for connecting and for every
    /// read and write [default: RFC 5321 §4.5.3.2 values per stage].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,

    /// The most (seconds, fractions allowed) connecting and setting up the
    /// session may take in all, and then each message, however each step
    /// keeps within --timeout; past it the run fails with kind `timeout`
    /// [default: no limit].
    #[arg(long, value_name = "SECS")]
    pub max_time: Option<f64>,

    /// Print the dialogue on stderr, AUTH payloads redacted.
    #[arg(long)]
    pub transcript: bool,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Print one JSON object per transaction on stdout as soon as its
    /// outcome is known (with "session" and "index"), then one with the
    /// summary ("summary": true).
    #[arg(long, conflicts_with = "json")]
    pub json_lines: bool,
}
