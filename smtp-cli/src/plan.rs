//! From the command line (and the environment) to a [`Plan`]: everything
//! checked before a socket is opened.

use crate::args::{AuthMode, SendArgs, TlsMode};
use crate::report::{classify, Failure, Kind};
use smtp_blocking::oauth2::{Grant, TokenEndpoint, TokenProvider};
use smtp_blocking::smtp_proto::{BodyType, EhloName, SmtpUrl};
use smtp_blocking::tls::{client_config, TlsRoots};
use smtp_blocking::{
    Address, Credentials, Envelope, Mechanism, Options, Stage, Timeouts, TlsPolicy,
};
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// The environment variable holding the password for `--user`.
pub const PASSWORD_ENV: &str = "SMTP_PASSWORD";
/// The environment variable holding an OAuth 2.0 bearer token for `--user`.
pub const TOKEN_ENV: &str = "SMTP_OAUTH_TOKEN";
/// The environment variable holding the OAuth2 client secret (client
/// credentials grant, or a confidential client's refresh token grant).
pub const CLIENT_SECRET_ENV: &str = "SMTP_OAUTH_CLIENT_SECRET";
/// The environment variable holding an OAuth2 refresh token (refresh token
/// grant).
pub const REFRESH_TOKEN_ENV: &str = "SMTP_OAUTH_REFRESH_TOKEN";

/// Where the message comes from.
#[derive(Debug, Clone)]
pub enum Data {
    /// A regular file, reopened and streamed for every transaction.
    File {
        /// The path.
        path: PathBuf,
        /// What the pass at plan time found. Every transaction checks the
        /// file against its [`Stamp`] first and measures it again when it
        /// changed (see `run`).
        measure: Measure,
    },
    /// Standard input, streamed (one transaction only), without `SIZE=`;
    /// the transaction fails before its end of data past `limit` bytes.
    Stdin {
        /// The most bytes read ([`MAX_BODY`]).
        limit: u64,
    },
    /// A file that is not a regular file (a FIFO, `<(…)`): it can be read
    /// once, so it is kept open from the start and streamed for one
    /// transaction, without `SIZE=`, like [`Data::Stdin`].
    Pipe {
        /// The path, for errors.
        path: PathBuf,
        /// The open file, taken by the one transaction.
        file: Arc<Mutex<Option<File>>>,
        /// The most bytes read ([`MAX_BODY`]).
        limit: u64,
    },
    /// Stdin or a non-regular file to be sent several times: read once,
    /// up to [`MAX_BODY`], into an anonymous temporary file.
    Spooled(Arc<Spool>),
    /// In memory: a small regular file sent several times, or the demo.
    Memory(Arc<Vec<u8>>),
}

/// The most bytes `smtp-send` reads from stdin or from a `--data` file that
/// is not a regular file (a pipe, a FIFO, `/dev/zero`): 1 GiB. A longer
/// source, or one that never ends, is refused: a usage error when it is
/// spooled before connecting (`--repeat` above 1), an `io` failure of the
/// transaction before its end of data when it is streamed (`--repeat 1`).
/// Regular files are measured and have no such limit.
pub const MAX_BODY: u64 = 1 << 30;

/// A hidden environment variable that lowers [`MAX_BODY`] (a number of
/// bytes; larger values and anything unparsable are ignored), so that the
/// command-line tests can reach the limit without spooling a gibibyte. Not
/// documented for users.
const MAX_BODY_ENV: &str = "SMTP_SEND_MAX_BODY";

/// The most bytes of a `--data` file the sessions hold in memory together
/// (each its own copy), to send it again and again without reading it
/// again: a larger file, or one sent once, is streamed from the disk.
pub const HOLD_MAX: u64 = 16 << 20;

/// A hidden environment variable that lowers [`HOLD_MAX`] (`0`: every file
/// is streamed), so that the command-line tests can take both paths. Not
/// documented for users.
const HOLD_MAX_ENV: &str = "SMTP_SEND_HOLD_MAX";

/// The limit as people read it: `1 GiB (1073741824 bytes)`, `1000 bytes`.
pub fn limit_text(limit: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    match UNITS
        .iter()
        .find(|(unit, _)| limit >= *unit && limit.is_multiple_of(*unit))
    {
        Some((unit, name)) => format!("{} {name} ({limit} bytes)", limit / unit),
        None => format!("{limit} bytes"),
    }
}

/// Why a source is refused past the limit: names the limit and the source.
pub fn too_long(what: &str, limit: u64) -> String {
    format!(
        "--data {what}: longer than {}, the most smtp-send reads from stdin or a \
         non-regular file (a source that never ends is refused)",
        limit_text(limit)
    )
}

/// A message read once from stdin or a pipe into an anonymous temporary file
/// (deleted when closed, never visible by name), with what a measuring pass
/// over it found; every transaction reads it again from the start.
#[derive(Debug)]
pub struct Spool {
    file: Mutex<File>,
    /// Its length, declared as `SIZE=`.
    pub size: u64,
    /// 8BITMIME when it holds any non-ASCII byte.
    pub body: BodyType,
    /// Its length on the wire with CRLF line endings (for `BDAT`).
    pub wire: u64,
}

impl Spool {
    /// Reads `source` to its end into a new anonymous temporary file (in
    /// the system's temporary directory, `TMPDIR`), at most `limit` bytes.
    /// `what` names the source in errors (`-` or the path).
    pub fn read(source: &mut dyn Read, what: &str, limit: u64) -> Result<Spool, SpoolError> {
        let mut file = tempfile::tempfile().map_err(SpoolError::Temp)?;
        let mut counts = Counts::default();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let n = match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(SpoolError::Read(err)),
            };
            if counts.size + n as u64 > limit {
                return Err(SpoolError::TooLong(too_long(what, limit)));
            }
            counts.update(&chunk[..n]);
            file.write_all(&chunk[..n]).map_err(SpoolError::Temp)?;
        }
        file.flush().map_err(SpoolError::Temp)?;
        Ok(Spool {
            file: Mutex::new(file),
            size: counts.size,
            body: counts.body(),
            wire: counts.wire.total(),
        })
    }

    /// A reader of the whole message from its first byte; readers share
    /// the file but not their positions, so parallel sessions each get
    /// their own.
    pub fn reader(&self) -> SpoolReader<'_> {
        SpoolReader {
            spool: self,
            position: 0,
        }
    }
}

/// Reads a [`Spool`] from the start: exactly its `size` bytes.
#[derive(Debug)]
pub struct SpoolReader<'a> {
    spool: &'a Spool,
    position: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.spool.size - self.position;
        let want = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        let mut file = self
            .spool
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        file.seek(SeekFrom::Start(self.position))?;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the temporary copy of the message ended early",
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}

/// Why a source could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// Reading the source failed.
    Read(io::Error),
    /// Creating or writing the temporary file failed.
    Temp(io::Error),
    /// The source is longer than the limit (the message says so).
    TooLong(String),
}

/// A streamed source cut off at its limit: past `limit` bytes a read fails
/// (so the adapter ends the connection before the end-of-data marker and
/// nothing is delivered).
#[derive(Debug)]
pub struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
    what: String,
}

impl<R: Read> Capped<R> {
    /// At most `limit` bytes of `inner`; `what` names it in the error.
    pub fn new(inner: R, limit: u64, what: impl Into<String>) -> Capped<R> {
        Capped {
            inner,
            left: limit,
            limit,
            what: what.into(),
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.left = 0;
            return Err(io::Error::other(too_long(&self.what, self.limit)));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What a pass over a message counts.
#[derive(Debug, Default)]
struct Counts {
    size: u64,
    non_ascii: bool,
    wire: smtp_blocking::smtp_proto::NormalizedLen,
}

impl Counts {
    fn update(&mut self, piece: &[u8]) {
        self.size += piece.len() as u64;
        self.non_ascii |= !piece.is_ascii();
        self.wire.update(piece);
    }

    fn body(&self) -> BodyType {
        if self.non_ascii {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        }
    }
}

/// What one pass over a regular file found, and which version of the file
/// it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// Its length, declared as `SIZE=`.
    pub size: u64,
    /// 8BITMIME when it holds any non-ASCII byte.
    pub body: BodyType,
    /// Its length on the wire with CRLF line endings, which lets the
    /// session use `BDAT` when the server offers CHUNKING.
    pub wire: u64,
    /// The file the counts are of.
    pub stamp: Stamp,
}

/// Tells versions of a file apart without reading it: what `stat` says.
///
/// The length and modification time are what changes when a file is
/// written; on Unix the inode also tells a file replaced by a rename, and
/// the status-change time, which no program can set back (`touch -d`,
/// `cp -p`, `rsync -t` all set back the modification time), tells a
/// rewrite that kept the length and restored the time. A change within one
/// tick of the file system's clock that keeps the length is not seen: the
/// core's BDAT size check is the last guard then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    /// The stamp of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
            #[cfg(unix)]
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// Why a regular file could not be measured.
#[derive(Debug)]
pub enum MeasureError {
    /// Opening, reading or `stat` failed.
    Read(io::Error),
    /// It changed during the pass, so the counts are of no one version.
    Changed,
}

impl std::fmt::Display for MeasureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeasureError::Read(err) => err.fmt(f),
            MeasureError::Changed => f.write_str("the file changed while it was being measured"),
        }
    }
}

impl From<io::Error> for MeasureError {
    fn from(err: io::Error) -> MeasureError {
        MeasureError::Read(err)
    }
}

/// A checked run: what to connect to, how, and what to send.
#[derive(Clone)]
pub struct Plan {
    /// The server name (TLS and the credential guard), as given (`[::1]` keeps its brackets).
    pub server_name: String,
    /// The port, when HOST is resolved.
    pub port: u16,
    /// Where to connect instead of resolving the name.
    pub connect: Option<SocketAddr>,
    /// The TLS policy.
    pub tls: TlsPolicy,
    /// Timeouts and the rustls configuration (the `--ca-file` roots; else
    /// the built-in ones); no transcript hook.
    pub options: Options,
    /// The EHLO name.
    pub helo: EhloName,
    /// Credentials, if any.
    pub credentials: Option<Credentials>,
    /// The mechanism asked for (`None`: automatic).
    pub mechanism: Option<Mechanism>,
    /// `--allow-insecure-auth`.
    pub allow_insecure_auth: bool,
    /// The envelope (without body-dependent parameters).
    pub envelope: Envelope,
    /// The message.
    pub data: Data,
    /// Transactions in all.
    pub repeat: u32,
    /// Parallel sessions (at most `repeat`).
    pub connections: u32,
    /// Transactions in flight with CHUNKING (`--window`).
    pub window: usize,
    /// The most bytes of a `--data` file the sessions hold in memory
    /// together to send it again ([`HOLD_MAX`], or less).
    pub hold: u64,
    /// Where the bearer token in `credentials` came from (`token_source`
    /// in `--json`): `env`, `client_credentials` or `refresh_token`.
    pub token_source: Option<&'static str>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("server_name", &self.server_name)
            .field("port", &self.port)
            .field("connect", &self.connect)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials)
            .field("envelope", &self.envelope)
            .field("repeat", &self.repeat)
            .field("connections", &self.connections)
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}

/// Splits `HOST[:PORT]`: `mail.example.com`, `mail.example.com:2525`,
/// `[::1]`, `[::1]:25`, `192.0.2.1:25`; a bare IPv6 address (more than one
/// colon, no brackets) has no port.
pub fn parse_server(server: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("--server {server:?}: expected HOST[:PORT] (IPv6 as [::1]:25)");
    let parse_port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    if let Some(rest) = server.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(bad)?;
        let host = &server[..end + 2];
        if end == 0 {
            return Err(bad());
        }
        return match &rest[end + 1..] {
            "" => Ok((host.to_owned(), default_port)),
            tail => Ok((
                host.to_owned(),
                parse_port(tail.strip_prefix(':').ok_or_else(bad)?)?,
            )),
        };
    }
    match server.matches(':').count() {
        0 if !server.is_empty() => Ok((server.to_owned(), default_port)),
        1 => match server.split_once(':') {
            Some((host, port)) if !host.is_empty() => Ok((host.to_owned(), parse_port(port)?)),
            _ => Err(bad()),
        },
        n if n > 1 => Ok((server.to_owned(), default_port)),
        _ => Err(bad()),
    }
}

/// What `--url` stands for.
struct FromUrl {
    /// `host:port`, as `--server` takes it.
    server: String,
    tls: TlsMode,
    user: Option<String>,
    auth: Option<AuthMode>,
    helo: Option<String>,
}

/// `--url`, parsed by the library ([`SmtpUrl`]), so the CLI and the library
/// accept the same URLs. A password in it is refused: command lines are
/// visible to other users of the machine.
fn from_url(text: &str) -> Result<FromUrl, Failure> {
    let url = SmtpUrl::parse(text).map_err(|err| Failure::usage(format!("--url: {err}")))?;
    if url.has_secret() {
        return Err(Failure::usage(
            "--url: a password or token in the URL would be visible to other users of the machine; \
             give the user only and set SMTP_PASSWORD (or SMTP_OAUTH_TOKEN)",
        ));
    }
    let host = url.host();
    // A bare IPv6 address is given to --server in brackets too.
    let server = format!("{host}:{}", url.port());
    let tls = match url.tls() {
        TlsPolicy::Implicit => TlsMode::Implicit,
        TlsPolicy::Opportunistic => TlsMode::Opportunistic,
        TlsPolicy::Disabled => TlsMode::None,
        _ => TlsMode::Required,
    };
    let auth = url.mechanism().map(|m| match m {
        Mechanism::Plain => AuthMode::Plain,
        Mechanism::Login => AuthMode::Login,
        Mechanism::XOAuth2 => AuthMode::Xoauth2,
        _ => AuthMode::Oauthbearer,
    });
    Ok(FromUrl {
        server,
        tls,
        user: url.user().map(str::to_owned),
        auth,
        helo: url.helo().map(|h| h.as_str().to_owned()),
    })
}

/// Builds the plan from the flags; `env` looks up an environment variable.
///
/// Usage errors (a missing secret, an unreadable file, a bad number) are
/// [`Kind::Usage`]; an address, name or user name the core refuses is
/// [`Kind::InvalidInput`]. Nothing is connected.
pub fn plan(args: &SendArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, Failure> {
    // --url stands for --server, --tls, --user and --auth (and --helo when
    // it says helo=).
    let url = args.url.as_deref().map(from_url).transpose()?;
    let (server, tls_mode, user, auth, helo) = match &url {
        Some(url) => (
            url.server.as_str(),
            url.tls,
            url.user.clone(),
            url.auth,
            url.helo.clone().unwrap_or_else(|| args.helo.clone()),
        ),
        None => (
            args.server
                .as_deref()
                .ok_or_else(|| Failure::usage("--server is required"))?,
            args.tls,
            args.user.clone(),
            args.auth,
            args.helo.clone(),
        ),
    };
    let default_port = match tls_mode {
        TlsMode::Implicit => 465,
        TlsMode::None => 25,
        TlsMode::Required | TlsMode::Opportunistic => 587,
    };
    let (server_name, port) = parse_server(server, default_port).map_err(Failure::usage)?;
    let connect = args.connect.as_deref().map(parse_connect).transpose()?;
    let tls = match tls_mode {
        TlsMode::Required => TlsPolicy::Required,
        TlsMode::Opportunistic => TlsPolicy::Opportunistic,
        TlsMode::Implicit => TlsPolicy::Implicit,
        TlsMode::None => TlsPolicy::Disabled,
    };
    let oauth2 = oauth2_grant(args, env)?;
    let mut options = Options::new();
    // The roots of --ca-file, for the SMTP server's TLS and the token endpoint.
    let ca_pem = match &args.ca_file {
        Some(path) if tls_mode != TlsMode::None || oauth2.is_some() => Some(
            std::fs::read(path)
                .map_err(|err| Failure::usage(format!("--ca-file {}: {err}", path.display())))?,
        ),
        _ => None,
    };
    if let (Some(pem), false) = (&ca_pem, tls_mode == TlsMode::None) {
        options = options
            .tls(client_config(&TlsRoots::Pem(pem.clone())).map_err(|err| classify(&err.into()))?);
    }
    let helo = EhloName::new(helo).map_err(|err| invalid("--helo", err))?;

    let mut token_source = None;
    let credentials = match (&user, &oauth2) {
        (None, Some(_)) => {
            return Err(Failure::usage(
                "--oauth2-token-url/--oauth2-tenant need --user (the mailbox to authenticate as)",
            ))
        }
        (None, None) => {
            if auth.is_some() {
                return Err(Failure::usage("--auth needs --user"));
            }
            None
        }
        (Some(user), Some(_)) => {
            if let Some(mode @ (AuthMode::Plain | AuthMode::Login)) = auth {
                let name = if mode == AuthMode::Plain {
                    "plain"
                } else {
                    "login"
                };
                return Err(Failure::usage(format!(
                    "--auth {name} takes a password: with an OAuth2 token, --auth xoauth2 or oauthbearer"
                )));
            }
            // The user is checked now, the token fetched last (below).
            Credentials::token(user.clone(), "unfetched")
                .check()
                .map_err(|err| invalid("--user", err))?;
            None
        }
        (Some(user), None) => {
            let token = env(TOKEN_ENV);
            if token.is_some() && !matches!(auth, Some(AuthMode::Plain | AuthMode::Login)) {
                token_source = Some("env");
            }
            let credentials = credentials(user, auth, env(PASSWORD_ENV), token)?;
            credentials.check().map_err(|err| invalid("--user", err))?;
            Some(credentials)
        }
    };
    let mechanism = match auth {
        None | Some(AuthMode::Auto) => None,
        Some(AuthMode::Plain) => Some(Mechanism::Plain),
        Some(AuthMode::Login) => Some(Mechanism::Login),
        Some(AuthMode::Xoauth2) => Some(Mechanism::XOAuth2),
        Some(AuthMode::Oauthbearer) => Some(Mechanism::OAuthBearer),
    };

    let from = match args.from.as_deref() {
        None => return Err(Failure::usage("--from is required (--from '' for <>)")),
        Some("") => None,
        Some(from) => Some(Address::new(from).map_err(|err| invalid("--from", err))?),
    };
    if args.to.is_empty() {
        return Err(Failure::usage("at least one --to is required"));
    }
    let to = args
        .to
        .iter()
        .map(|to| Address::new(to.as_str()).map_err(|err| invalid("--to", err)))
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(from, to).map_err(|err| invalid("the envelope", err))?;

    let repeat = args.repeat.max(1);
    let connections = args.connections.clamp(1, repeat);
    let limit = env(MAX_BODY_ENV)
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(MAX_BODY, |value| value.min(MAX_BODY));
    let data = match args.data.as_deref() {
        None => Data::Memory(Arc::new(test_message(args, &envelope, limit)?)),
        // Several transactions need the message several times: stdin can
        // only be read once, so it is spooled to a temporary file then.
        Some("-") if repeat > 1 => {
            let spool =
                Spool::read(&mut io::stdin().lock(), "-", limit).map_err(|err| match err {
                    SpoolError::Read(err) => {
                        Failure::new(Kind::Io, format!("reading stdin: {err}"))
                    }
                    other => spool_failure("-", other),
                })?;
            Data::Spooled(Arc::new(spool))
        }
        Some("-") => Data::Stdin { limit },
        Some(path) => file_data(PathBuf::from(path), repeat, limit)?,
    };
    let timeout = args
        .timeout
        .map(|secs| seconds("--timeout", secs))
        .transpose()?;
    if let Some(limit) = args
        .max_time
        .map(|secs| seconds("--max-time", secs))
        .transpose()?
    {
        options = options.time_limit(limit);
    }
    // Last, once everything else is known to be right: the token, before
    // anything is sent to the SMTP server.
    let credentials = match (oauth2, &user) {
        (Some((endpoint, grant)), Some(user)) => {
            token_source = Some(grant.name());
            let mut provider = TokenProvider::builder(endpoint, grant)
                .timeout(timeout.unwrap_or(smtp_blocking::oauth2::DEFAULT_TIMEOUT));
            if let Some(pem) = ca_pem {
                provider = provider.roots_pem(pem);
            }
            let credentials = provider
                .build()
                .and_then(|provider| provider.credentials(user.clone()))
                .map_err(|err| Failure::new(Kind::OAuth2, err.to_string()))?;
            credentials.check().map_err(|err| {
                Failure::new(
                    Kind::OAuth2,
                    format!(
                        "the access token is unusable: {}",
                        classify(&err.into()).message
                    ),
                )
            })?;
            Some(credentials)
        }
        _ => credentials,
    };
    if let Some(timeout) = timeout {
        // QUIT comes after every result is known: it never waits longer
        // than its default, so a silent server does not hold the report back.
        let quit = Stage::Quit.default_timeout().min(timeout);
        options = options
            .timeouts(Timeouts::uniform(timeout).with(Stage::Quit, quit))
            .connect_timeout(timeout);
    }
    Ok(Plan {
        server_name,
        port,
        connect,
        tls,
        options,
        helo,
        credentials,
        mechanism,
        allow_insecure_auth: args.allow_insecure_auth,
        envelope,
        data,
        repeat,
        connections,
        window: usize::try_from(args.window).unwrap_or(1),
        hold: env(HOLD_MAX_ENV)
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map_or(HOLD_MAX, |value| value.min(HOLD_MAX)),
        token_source,
    })
}

/// `--oauth2-token-url` or `--oauth2-tenant` with `--oauth2-client-id`,
/// `--oauth2-scope` and the secret from the environment: the endpoint
/// (guarded: https, or http to a loopback address) and the grant. `None`
/// without either flag.
fn oauth2_grant(
    args: &SendArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(TokenEndpoint, Grant)>, Failure> {
    let endpoint = match (&args.oauth2_token_url, &args.oauth2_tenant) {
        (Some(url), _) => TokenEndpoint::new(url.as_str())
            .map_err(|err| Failure::usage(format!("--oauth2-token-url: {err}")))?,
        (None, Some(tenant)) => TokenEndpoint::microsoft(tenant)
            .map_err(|err| Failure::usage(format!("--oauth2-tenant: {err}")))?,
        (None, None) => {
            if args.oauth2_client_id.is_some() {
                return Err(Failure::usage(
                    "--oauth2-client-id needs --oauth2-token-url or --oauth2-tenant",
                ));
            }
            return Ok(None);
        }
    };
    let client_id = args.oauth2_client_id.clone().ok_or_else(|| {
        Failure::usage("--oauth2-token-url/--oauth2-tenant need --oauth2-client-id")
    })?;
    let secret = |name: &str| env(name).filter(|value| !value.is_empty());
    let grant = match (secret(REFRESH_TOKEN_ENV), secret(CLIENT_SECRET_ENV)) {
        (Some(refresh), client_secret) => {
            let grant = Grant::refresh_token(client_id, refresh, args.oauth2_scope.clone());
            match client_secret {
                Some(client_secret) => grant.with_client_secret(client_secret),
                None => grant,
            }
        }
        (None, Some(client_secret)) => {
            Grant::client_credentials(client_id, client_secret, args.oauth2_scope.clone())
        }
        (None, None) => {
            return Err(Failure::usage(format!(
                "--oauth2-token-url/--oauth2-tenant need the secret in the environment: \
                 {CLIENT_SECRET_ENV} (client credentials grant) or {REFRESH_TOKEN_ENV} \
                 (refresh token grant)"
            )))
        }
    };
    Ok(Some((endpoint, grant)))
}

/// `secs` given to `flag` as a duration: positive, finite, not too large.
pub(crate) fn seconds(flag: &str, secs: f64) -> Result<Duration, Failure> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Failure::usage(format!(
            "{flag} {secs}: must be a positive number of seconds"
        )));
    }
    Duration::try_from_secs_f64(secs).map_err(|err| Failure::usage(format!("{flag} {secs}: {err}")))
}

/// The test message sent without `--data` (see [`crate::message`]).
fn test_message(args: &SendArgs, envelope: &Envelope, limit: u64) -> Result<Vec<u8>, Failure> {
    let body = match args.body.as_deref() {
        None => None,
        Some("-") => {
            let mut body = Vec::new();
            io::stdin()
                .lock()
                .take(limit.saturating_add(1))
                .read_to_end(&mut body)
                .map_err(|err| Failure::new(Kind::Io, format!("reading stdin: {err}")))?;
            if body.len() as u64 > limit {
                return Err(Failure::usage(format!(
                    "--body -: stdin is longer than the limit of {limit} bytes"
                )));
            }
            Some(body)
        }
        Some(text) => Some(text.as_bytes().to_vec()),
    };
    let to: Vec<Address> = envelope
        .recipients()
        .iter()
        .map(|r| r.address().clone())
        .collect();
    // The local offset is read while the process has one thread (the
    // sessions start later); should it not be known, UTC.
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    crate::message::TestMessage {
        from: envelope.from(),
        to: &to,
        helo: &args.helo,
        headers: &args.header,
        body: body.as_deref(),
        now,
    }
    .build()
}

pub(crate) fn invalid(flag: &str, err: impl Into<smtp_blocking::Error>) -> Failure {
    let mut failure = classify(&err.into());
    failure.message = format!("{flag}: {}", failure.message);
    failure
}

/// The secret for `--auth`: the password for PLAIN and LOGIN, the token
/// for XOAUTH2 and OAUTHBEARER; with the mechanism left to the session,
/// whichever is set, or both, so that a server offering only the token's
/// mechanisms (or only the password's) is still served.
pub(crate) fn credentials(
    user: &str,
    auth: Option<AuthMode>,
    password: Option<String>,
    token: Option<String>,
) -> Result<Credentials, Failure> {
    let user = user.to_owned();
    let missing = |mode: AuthMode, secret: &str, var: &str| {
        let name = match mode {
            AuthMode::Auto => "auto",
            AuthMode::Plain => "plain",
            AuthMode::Login => "login",
            AuthMode::Xoauth2 => "xoauth2",
            AuthMode::Oauthbearer => "oauthbearer",
        };
        Failure::usage(format!(
            "--auth {name} needs the {secret} in the environment: {var}"
        ))
    };
    match (auth, password, token) {
        (_, None, None) => Err(Failure::usage(format!(
            "--user needs the secret in the environment: {PASSWORD_ENV} (or {TOKEN_ENV} for a bearer token)"
        ))),
        (Some(mode @ (AuthMode::Plain | AuthMode::Login)), password, _) => password
            .map(|password| Credentials::password(user, password))
            .ok_or_else(|| missing(mode, "password", PASSWORD_ENV)),
        (Some(mode @ (AuthMode::Xoauth2 | AuthMode::Oauthbearer)), _, token) => token
            .map(|token| Credentials::token(user, token))
            .ok_or_else(|| missing(mode, "token", TOKEN_ENV)),
        (None | Some(AuthMode::Auto), Some(password), Some(token)) => {
            Ok(Credentials::password_and_token(user, password, token))
        }
        (None | Some(AuthMode::Auto), Some(password), None) => {
            Ok(Credentials::password(user, password))
        }
        (None | Some(AuthMode::Auto), None, Some(token)) => Ok(Credentials::token(user, token)),
    }
}

/// `--connect ADDR:PORT`: an IP address and port, or a name resolved now
/// (its first address).
pub(crate) fn parse_connect(value: &str) -> Result<SocketAddr, Failure> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = value
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| Failure::usage(format!("--connect {value:?}: expected ADDR:PORT")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| Failure::usage(format!("--connect {value:?}: invalid port")))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
        .to_socket_addrs()
        .map_err(|err| Failure::new(Kind::Connect, format!("could not resolve {value}: {err}")))?
        .next()
        .ok_or_else(|| Failure::new(Kind::Connect, format!("{value} has no address")))
}

/// The largest message kept in memory when it is sent several times.
const KEEP_IN_MEMORY: usize = 1 << 20;

/// A failure to spool `--data what` other than reading it: the limit (a
/// usage error, before anything is connected) or the temporary file (`io`).
fn spool_failure(what: &str, err: SpoolError) -> Failure {
    match err {
        SpoolError::TooLong(message) => Failure::usage(message),
        SpoolError::Temp(err) => Failure::new(
            Kind::Io,
            format!("--data {what}: writing it to a temporary file: {err}"),
        ),
        SpoolError::Read(err) => Failure::new(Kind::Io, format!("--data {what}: {err}")),
    }
}

/// Checks a regular file once: its size (declared as `SIZE=`), whether it
/// is 8-bit, and its length on the wire, in one streaming pass; the message
/// itself is streamed again per transaction. Anything else (a FIFO) can be
/// read only once: streamed for one transaction, spooled to a temporary
/// file for several; at most `limit` bytes of it either way.
fn file_data(path: PathBuf, repeat: u32, limit: u64) -> Result<Data, Failure> {
    let unreadable = |err: io::Error| Failure::usage(format!("--data {}: {err}", path.display()));
    let mut file = File::open(&path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    // A directory opens, but reads fail: refuse it here, before anything is
    // connected, whatever --repeat says.
    if metadata.is_dir() {
        return Err(Failure::usage(format!(
            "--data {}: is a directory",
            path.display()
        )));
    }
    if !metadata.is_file() {
        if repeat == 1 {
            return Ok(Data::Pipe {
                file: Arc::new(Mutex::new(Some(file))),
                path,
                limit,
            });
        }
        let what = path.display().to_string();
        let spool = Spool::read(&mut file, &what, limit).map_err(|err| match err {
            SpoolError::Read(err) => unreadable(err),
            other => spool_failure(&what, other),
        })?;
        return Ok(Data::Spooled(Arc::new(spool)));
    }
    // A small message sent several times is kept in memory rather than
    // reopened and read for every transaction.
    let mut kept = (repeat > 1).then(Vec::new);
    let measure = measure_file(&mut file, &mut kept).map_err(|err| match err {
        MeasureError::Read(err) => unreadable(err),
        // Reading worked; what was read is no one version of the message.
        MeasureError::Changed => Failure::new(
            Kind::Io,
            format!("--data {}: {}", path.display(), MeasureError::Changed),
        ),
    })?;
    if let Some(buf) = kept {
        return Ok(Data::Memory(Arc::new(buf)));
    }
    Ok(Data::File { path, measure })
}

/// Measures the regular file at `path` again (see [`Data::File`]).
pub fn measure(path: &Path) -> Result<Measure, MeasureError> {
    let mut file = File::open(path)?;
    measure_file(&mut file, &mut None)
}

/// The one measuring pass over an open regular file. `kept` collects the
/// bytes as long as they fit in [`KEEP_IN_MEMORY`] and becomes `None`
/// past it.
fn measure_file(file: &mut File, kept: &mut Option<Vec<u8>>) -> Result<Measure, MeasureError> {
    let stamp = Stamp::of(&file.metadata()?);
    let mut chunk = vec![0; 64 * 1024];
    let mut counts = Counts::default();
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err.into()),
        };
        counts.update(&chunk[..n]);
        if let Some(buf) = kept.as_mut() {
            if buf.len() + n > KEEP_IN_MEMORY {
                *kept = None;
            } else {
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    // The counts must be of the version the stamp names, or a later check
    // against the stamp would vouch for counts of another one.
    if counts.size != stamp.len || Stamp::of(&file.metadata()?) != stamp {
        return Err(MeasureError::Changed);
    }
    Ok(Measure {
        size: counts.size,
        body: counts.body(),
        wire: counts.wire.total(),
        stamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_follow_the_mechanism() {
        let pw = || Some("pw".to_owned());
        let tok = || Some("tok".to_owned());
        let both = Credentials::password_and_token("u", "pw", "tok");
        let c = |auth, password, token| credentials("u", auth, password, token);
        for auto in [None, Some(AuthMode::Auto)] {
            assert_eq!(c(auto, pw(), tok()).unwrap(), both);
            assert_eq!(
                c(auto, pw(), None).unwrap(),
                Credentials::password("u", "pw")
            );
            assert_eq!(
                c(auto, None, tok()).unwrap(),
                Credentials::token("u", "tok")
            );
        }
        let usage = |result: Result<Credentials, Failure>, mentions: &str| {
            let failure = result.unwrap_err();
            assert_eq!(failure.kind, Kind::Usage);
            assert!(failure.message.contains(mentions), "{}", failure.message);
        };
        for mode in [AuthMode::Plain, AuthMode::Login] {
            assert_eq!(
                c(Some(mode), pw(), tok()).unwrap(),
                Credentials::password("u", "pw")
            );
            usage(
                c(Some(mode), None, tok()),
                "needs the password in the environment: SMTP_PASSWORD",
            );
        }
        for mode in [AuthMode::Xoauth2, AuthMode::Oauthbearer] {
            assert_eq!(
                c(Some(mode), pw(), tok()).unwrap(),
                Credentials::token("u", "tok")
            );
            usage(
                c(Some(mode), pw(), None),
                "needs the token in the environment: SMTP_OAUTH_TOKEN",
            );
        }
        for auth in [
            None,
            Some(AuthMode::Auto),
            Some(AuthMode::Login),
            Some(AuthMode::Xoauth2),
        ] {
            usage(
                c(auth, None, None),
                "--user needs the secret in the environment: SMTP_PASSWORD",
            );
        }
    }

    #[test]
    fn a_regular_file_is_measured_in_one_pass() {
        let path = std::env::temp_dir().join(format!("smtp-cli-plan-{}", std::process::id()));
        std::fs::write(&path, b"Subject: x\n\nline\r\n\xe9t\xe9\rlast").unwrap();
        let m = measure(&path).unwrap();
        assert_eq!(m.size, 26);
        assert_eq!(m.body, BodyType::EightBitMime);
        // Two bare LFs, one bare CR and the missing final CRLF: 3 + 2 more.
        assert_eq!(m.wire, 31);
        assert_eq!(m.stamp, Stamp::of(&std::fs::metadata(&path).unwrap()));
        // Kept in memory only when sent several times and small.
        assert!(
            matches!(file_data(path.clone(), 2, MAX_BODY).unwrap(), Data::Memory(b) if b.len() == 26)
        );
        match file_data(path.clone(), 1, MAX_BODY).unwrap() {
            Data::File { measure, .. } => assert_eq!(measure, m),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(measure(&path), Err(MeasureError::Read(_))));
    }

    #[test]
    fn a_spool_is_read_whole_any_number_of_times_and_measured() {
        let message = b"Subject: x\n\n.dot\r\n\xe9t\xe9\rlast".repeat(5000);
        let spool = Spool::read(&mut message.as_slice(), "-", MAX_BODY).unwrap();
        assert_eq!(spool.size, message.len() as u64);
        assert_eq!(spool.body, BodyType::EightBitMime);
        assert_eq!(
            spool.wire,
            smtp_blocking::smtp_proto::normalized_len(&message)
        );
        // Two readers at once, each from the start, in different steps.
        let (mut a, mut b) = (spool.reader(), spool.reader());
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 1000];
        loop {
            let n = a.read(&mut buf[..700]).unwrap();
            got_a.extend_from_slice(&buf[..n]);
            let m = b.read(&mut buf).unwrap();
            got_b.extend_from_slice(&buf[..m]);
            if n == 0 && m == 0 {
                break;
            }
        }
        assert!(got_a == message && got_b == message);
        let mut again = Vec::new();
        spool.reader().read_to_end(&mut again).unwrap();
        assert!(again == message);
        // ASCII, and empty.
        let spool = Spool::read(&mut &b"plain\n"[..], "-", MAX_BODY).unwrap();
        assert_eq!(
            (spool.size, spool.body, spool.wire),
            (6, BodyType::SevenBit, 7)
        );
        let spool = Spool::read(&mut io::empty(), "-", MAX_BODY).unwrap();
        assert_eq!((spool.size, spool.wire), (0, 0));
        assert_eq!(spool.reader().read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn a_source_past_the_limit_is_refused_with_the_limit_named() {
        // Exactly the limit is fine; one byte more is not.
        let spool = Spool::read(&mut io::repeat(b'x').take(4096), "-", 4096).unwrap();
        assert_eq!(spool.size, 4096);
        match Spool::read(&mut io::repeat(0), "/dev/zero", 4096) {
            Err(SpoolError::TooLong(message)) => assert_eq!(
                message,
                "--data /dev/zero: longer than 4 KiB (4096 bytes), the most smtp-send reads \
                 from stdin or a non-regular file (a source that never ends is refused)"
            ),
            other => panic!("{other:?}"),
        }
        let mut capped = Capped::new(io::repeat(b'x').take(4096), 4096, "-");
        assert_eq!(io::copy(&mut capped, &mut io::sink()).unwrap(), 4096);
        let mut capped = Capped::new(io::repeat(0), 4096, "-");
        let err = io::copy(&mut capped, &mut io::sink()).unwrap_err();
        assert!(
            err.to_string().starts_with("--data -: longer than 4 KiB"),
            "{err}"
        );
        assert_eq!(limit_text(MAX_BODY), "1 GiB (1073741824 bytes)");
        assert_eq!(limit_text(3 << 20), "3 MiB (3145728 bytes)");
        assert_eq!(limit_text(1000), "1000 bytes");
        assert_eq!(limit_text(0), "0 bytes");
    }

    #[test]
    fn server_forms() {
        let ok = |s: &str, d| parse_server(s, d).unwrap();
        assert_eq!(ok("mail.test", 587), ("mail.test".into(), 587));
        assert_eq!(ok("mail.test:2525", 587), ("mail.test".into(), 2525));
        assert_eq!(ok("[::1]", 25), ("[::1]".into(), 25));
        assert_eq!(ok("[::1]:2525", 25), ("[::1]".into(), 2525));
        assert_eq!(ok("::1", 25), ("::1".into(), 25));
        assert_eq!(ok("127.0.0.1:25", 587), ("127.0.0.1".into(), 25));
        for bad in [
            "",
            ":25",
            "mail.test:",
            "mail.test:x",
            "mail.test:0",
            "[::1",
            "[]",
            "[::1]x",
            "a:70000",
        ] {
            assert!(parse_server(bad, 25).is_err(), "{bad}");
        }
    }
}
