//! Real third-party SMTP servers as child processes on a free loopback port:
//! aiosmtpd (Python), nodemailer's smtp-server (Node.js), Postfix's
//! smtp-sink and a private Postfix instance (smtpd and queue, the peer for
//! CHUNKING/BDAT). Each guard stops its server on drop and reads back,
//! byte-exact, the messages the server received. `tests/setup.sh` installs
//! them.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::certs::ServerCert;

/// How long a server may take to accept connections after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

const SETUP_HINT: &str = "run `bash tests/setup.sh` (from the workspace root) to install it";

/// A message a real server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The reverse path, without angle brackets (empty for `<>`).
    pub from: String,
    /// The recipients, in order, without angle brackets.
    pub to: Vec<String>,
    /// The content as the server stored it (dot-stuffing undone, CRLF
    /// line endings).
    pub data: Vec<u8>,
}

/// The `tests/` directory of this crate (where `setup.sh` and `peers/` are).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn not_installed(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what} not found at {}: {SETUP_HINT}", path.display()),
    )
}

/// A free loopback port (bound then released; the caller retries if the
/// server then fails to bind it), below the kernel's ephemeral range: a
/// port from that range could be taken, before the server binds it, by an
/// outgoing connection or by an in-process server bound to port 0, which a
/// readiness probe would then mistake for the server. Taken in turn within
/// a process (so its tests never try the same port), from a start spread
/// by process id and clock, so that two test processes on one machine
/// rarely do; the probe cannot tell two servers apart.
pub fn free_port() -> io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Linux's default range starts at 32768.
    let ephemeral = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let low = 10_000u32.min(ephemeral / 2);
    let span = ephemeral.saturating_sub(low).max(1);
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (std::process::id() ^ nanos).wrapping_mul(2_654_435_761)
    });
    for _ in 0..span.min(1000) {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(low + seed.wrapping_add(n) % span) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A fresh private directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/<prefix><pid>-<n>` (mode 0700).
    pub fn new(prefix: &str) -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!("{prefix}{}-{n}-{nanos:x}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running child server; killed on drop.
struct Running {
    name: &'static str,
    child: Child,
    port: u16,
    dir: TempDir,
    /// Runs (with the temporary directory) before the child is killed: for
    /// servers whose processes outlive the child (Postfix's master).
    stop: Option<fn(&Path)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop {
            stop(self.dir.path());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn log_path(dir: &Path) -> PathBuf {
        dir.join("server.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(Self::log_path(self.dir.path())).unwrap_or_default()
    }

    fn outdir(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Starts `make_command(dir, port)` with output to `server.log` in a
    /// fresh temporary directory (`prepare(dir, port)` writes certificates
    /// etc. there), and waits until the port accepts; a few attempts with
    /// fresh ports.
    fn start(
        name: &'static str,
        prepare: impl Fn(&Path, u16) -> io::Result<()>,
        make_command: impl Fn(&Path, u16) -> Command,
        stop: Option<fn(&Path)>,
    ) -> io::Result<Self> {
        let mut last_error = None;
        for _ in 0..3 {
            let dir = TempDir::new(&format!("smtp-tests-{name}-"))?;
            fs::create_dir(dir.path().join("out"))?;
            let port = free_port()?;
            prepare(dir.path(), port)?;
            // Appending: the server may write to it by name as well.
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Self::log_path(dir.path()))?;
            let child = make_command(dir.path(), port)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot start {name}: {e}; {SETUP_HINT}"))
                })?;
            let mut running = Running {
                name,
                child,
                port,
                dir,
                stop,
            };
            match running.wait_ready(START_TIMEOUT) {
                Ok(()) => return Ok(running),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other(format!("{name} did not start"))))
    }

    fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited ({status}) before accepting connections on port {}; if it is \
                     not installed, {SETUP_HINT}. Its output:\n{}",
                    self.name,
                    self.port,
                    self.log()
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} did not accept connections on port {} within {timeout:?}. Its output:\n{}",
                        self.name,
                        self.port,
                        self.log()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// `<n>.eml` + `<n>.json` pairs in the output directory, by n; the
    /// scripts write the `.json` last (atomically), so it marks completion.
    fn numbered_messages(&self) -> io::Result<Vec<ReceivedMessage>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(self.outdir())? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(n) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((n, path));
        }
        found.sort();
        let mut messages = Vec::with_capacity(found.len());
        for (_, json_path) in found {
            let meta = json::parse_envelope(&fs::read_to_string(&json_path)?)?;
            let data = fs::read(json_path.with_extension("eml"))?;
            messages.push(ReceivedMessage {
                from: meta.0,
                to: meta.1,
                data,
            });
        }
        Ok(messages)
    }
}

fn wait_for<T>(
    timeout: Duration,
    n: usize,
    name: &str,
    what: &str,
    read: impl Fn() -> io::Result<Vec<T>>,
) -> io::Result<Vec<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = read()?;
        if found.len() >= n {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{name}: expected {n} {what} within {timeout:?}, have {}",
                    found.len()
                ),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

macro_rules! guard_methods {
    () => {
        /// The loopback port the server listens on.
        pub fn port(&self) -> u16 {
            self.running.port
        }

        /// `127.0.0.1:port`.
        pub fn addr(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], self.running.port))
        }

        /// What the server wrote to stdout/stderr so far.
        pub fn log(&self) -> String {
            self.running.log()
        }

        /// Waits until the server stored at least `n` messages; all of them.
        pub fn wait_for_messages(
            &self,
            n: usize,
            timeout: Duration,
        ) -> io::Result<Vec<ReceivedMessage>> {
            wait_for(timeout, n, self.running.name, "messages", || {
                self.messages()
            })
        }
    };
}

// ---------------------------------------------------------------- aiosmtpd

/// How to run aiosmtpd.
#[derive(Clone, Debug)]
pub struct AiosmtpdOptions {
    /// The server certificate (for STARTTLS or implicit TLS).
    pub cert: ServerCert,
    /// Implicit TLS (port 465 style) instead of required STARTTLS.
    pub implicit_tls: bool,
    /// The only user AUTH LOGIN accepts.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl AiosmtpdOptions {
    /// STARTTLS required, AUTH LOGIN for `user`/`password`.
    pub fn new(cert: ServerCert, user: &str, password: &str) -> Self {
        Self {
            cert,
            implicit_tls: false,
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// aiosmtpd 1.4.6 (`tests/peers/aiosmtpd_server.py` in `tests/.venv`):
/// STARTTLS required (or implicit TLS), AUTH LOGIN only, AUTH required.
/// Quirk: its LOGIN prompts (`334 VXNlcm5hbWU6AA==`) end in a NUL byte.
pub struct Aiosmtpd {
    running: Running,
}

impl Aiosmtpd {
    /// Starts the server and waits until it accepts connections.
    pub fn start(opts: &AiosmtpdOptions) -> io::Result<Self> {
        let python = tests_dir().join(".venv/bin/python");
        if !python.exists() {
            return Err(not_installed("the aiosmtpd venv", &python));
        }
        let script = tests_dir().join("peers/aiosmtpd_server.py");
        let cert = opts.cert.clone();
        let running = Running::start(
            "aiosmtpd",
            |dir, _| cert.write_pem(dir).map(|_| ()),
            |dir, port| {
                let mut cmd = Command::new(&python);
                cmd.arg(&script)
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--cert")
                    .arg(dir.join("cert.pem"))
                    .arg("--key")
                    .arg(dir.join("key.pem"))
                    .arg("--mode")
                    .arg(if opts.implicit_tls {
                        "implicit"
                    } else {
                        "starttls"
                    })
                    .arg("--user")
                    .arg(&opts.user)
                    .arg("--password")
                    .arg(&opts.password)
                    .arg("--outdir")
                    .arg(dir.join("out"));
                cmd
            },
            None,
        )?;
        Ok(Self { running })
    }

    guard_methods!();

    /// Every message stored so far (`<n>.eml` exactly as aiosmtpd received
    /// it, dot-unstuffed; envelope from `<n>.json`).
    pub fn messages(&self) -> io::Result<Vec<ReceivedMessage>> {
        self.running.numbered_messages()
    }
}

// ------------------------------------------------------------- smtp-server

/// How to run nodemailer's smtp-server.
#[derive(Clone, Debug)]
pub struct NodeSmtpServerOptions {
    /// The server certificate (STARTTLS).
    pub cert: ServerCert,
    /// The user AUTH LOGIN (and XOAUTH2) accepts.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The bearer token XOAUTH2 accepts for `user`, if any.
    pub token: Option<String>,
    /// The advertised size limit (`SIZE`); larger messages get 552.
    pub size: u64,
}

impl NodeSmtpServerOptions {
    /// Exchange-like: STARTTLS, AUTH LOGIN/XOAUTH2, Exchange's size limit.
    pub fn new(cert: ServerCert, user: &str, password: &str) -> Self {
        Self {
            cert,
            user: user.to_owned(),
            password: password.to_owned(),
            token: None,
            size: crate::exchange::EXCHANGE_SIZE_LIMIT,
        }
    }
}

/// nodemailer `smtp-server` (`tests/peers/smtp_server.js`, version pinned
/// in `tests/peers/package-lock.json`) configured like Exchange Online:
/// STARTTLS, `AUTH LOGIN XOAUTH2` only after TLS, AUTH required, SIZE,
/// PIPELINING.
pub struct NodeSmtpServer {
    running: Running,
}

impl NodeSmtpServer {
    /// Starts the server and waits until it accepts connections.
    pub fn start(opts: &NodeSmtpServerOptions) -> io::Result<Self> {
        let module = tests_dir().join("peers/node_modules/smtp-server");
        if !module.exists() {
            return Err(not_installed("the smtp-server npm package", &module));
        }
        let script = tests_dir().join("peers/smtp_server.js");
        let cert = opts.cert.clone();
        let running = Running::start(
            "smtp-server",
            |dir, _| cert.write_pem(dir).map(|_| ()),
            |dir, port| {
                let mut cmd = Command::new("node");
                cmd.arg(&script)
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--cert")
                    .arg(dir.join("cert.pem"))
                    .arg("--key")
                    .arg(dir.join("key.pem"))
                    .arg("--user")
                    .arg(&opts.user)
                    .arg("--password")
                    .arg(&opts.password)
                    .arg("--size")
                    .arg(opts.size.to_string())
                    .arg("--outdir")
                    .arg(dir.join("out"));
                if let Some(token) = &opts.token {
                    cmd.arg("--token").arg(token);
                }
                cmd
            },
            None,
        )?;
        Ok(Self { running })
    }

    guard_methods!();

    /// Every message stored so far (`<n>.eml` as the data stream delivered
    /// it, dot-unstuffed; envelope from `<n>.json`).
    pub fn messages(&self) -> io::Result<Vec<ReceivedMessage>> {
        self.running.numbered_messages()
    }
}

// ------------------------------------------------------- oauth2-mock-server

/// How to run oauth2-mock-server.
#[derive(Clone, Debug, Default)]
pub struct OAuth2MockOptions {
    /// The tokens' lifetime (`expires_in`, and the JWT's `exp`); an hour
    /// when `None`.
    pub expires_in: Option<Duration>,
    /// Answer every token request with HTTP 400 and this OAuth2 `error`
    /// and `error_description`.
    pub error: Option<(String, String)>,
    /// Serve HTTPS with this certificate (else plain HTTP on loopback).
    pub cert: Option<ServerCert>,
    /// Answer `200` without `access_token` (a broken endpoint).
    pub omit_access_token: bool,
}

/// One token request the server answered: its form fields (`grant_type`,
/// `client_id`, `client_secret`, `refresh_token`, `scope`) and the answer
/// (`status`, `issued_access_token`, `issued_refresh_token`), when present.
pub type TokenRequest = BTreeMap<String, String>;

/// `oauth2-mock-server` (npm, a real OAuth2/OIDC server that signs RS256
/// JWTs; `tests/peers/oauth2_server.js`, version pinned in
/// `tests/peers/package-lock.json`) on loopback: the token endpoint at
/// `/token`, the keys at `/jwks`. Records every token request it answers.
pub struct OAuth2Mock {
    running: Running,
    https: bool,
}

impl OAuth2Mock {
    /// Starts the server and waits until it accepts connections.
    pub fn start(opts: &OAuth2MockOptions) -> io::Result<Self> {
        let module = tests_dir().join("peers/node_modules/oauth2-mock-server");
        if !module.exists() {
            return Err(not_installed("the oauth2-mock-server npm package", &module));
        }
        let script = tests_dir().join("peers/oauth2_server.js");
        let cert = opts.cert.clone();
        let running = Running::start(
            "oauth2-mock-server",
            |dir, _| match &cert {
                Some(cert) => cert.write_pem(dir).map(|_| ()),
                None => Ok(()),
            },
            |dir, port| {
                let mut cmd = Command::new("node");
                cmd.arg(&script)
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--outdir")
                    .arg(dir.join("out"));
                if let Some(expires_in) = opts.expires_in {
                    cmd.arg("--expires-in")
                        .arg(expires_in.as_secs().to_string());
                }
                if let Some((error, description)) = &opts.error {
                    cmd.arg("--error")
                        .arg(error)
                        .arg("--error-description")
                        .arg(description);
                }
                if opts.omit_access_token {
                    cmd.arg("--omit-access-token").arg("1");
                }
                if opts.cert.is_some() {
                    cmd.arg("--cert")
                        .arg(dir.join("cert.pem"))
                        .arg("--key")
                        .arg(dir.join("key.pem"));
                }
                cmd
            },
            None,
        )?;
        Ok(Self {
            running,
            https: opts.cert.is_some(),
        })
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.running.port
    }

    /// The base URL: `http://127.0.0.1:PORT` (`https://localhost:PORT`
    /// with a certificate, whose name is then `localhost`).
    pub fn url(&self) -> String {
        if self.https {
            format!("https://localhost:{}", self.running.port)
        } else {
            format!("http://127.0.0.1:{}", self.running.port)
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The JSON Web Key Set (the public keys the tokens are signed with).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url())
    }

    /// What the server wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        self.running.log()
    }

    /// The JSON Web Key Set the tokens are signed with (`GET /jwks`, over
    /// plain HTTP: not for a server started with a certificate).
    pub fn jwks(&self) -> io::Result<String> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.running.port))?;
        stream.set_read_timeout(Some(START_TIMEOUT))?;
        stream.write_all(b"GET /jwks HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .ok_or_else(|| io::Error::other(format!("GET /jwks: {response}")))
    }

    /// Every token request answered so far, in order.
    pub fn requests(&self) -> io::Result<Vec<TokenRequest>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(self.running.outdir())? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("req") {
                continue;
            }
            let Some(n) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((n, path));
        }
        found.sort();
        let mut requests = Vec::with_capacity(found.len());
        for (_, path) in found {
            let text = fs::read_to_string(&path)?;
            requests.push(
                text.lines()
                    .filter_map(|line| line.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            );
        }
        Ok(requests)
    }
}

// --------------------------------------------------------------- smtp-sink

/// How to run Postfix's smtp-sink; the flags hide EHLO keywords.
#[derive(Clone, Debug, Default)]
pub struct SmtpSinkOptions {
    /// `-h`: the name in the greeting and EHLO reply (default `smtp-sink`).
    pub hostname: Option<String>,
    /// `-p`: do not announce PIPELINING.
    pub no_pipelining: bool,
    /// `-8`: do not announce 8BITMIME.
    pub no_8bitmime: bool,
    /// `-a`: do not announce AUTH.
    pub no_auth: bool,
    /// `-E`: do not announce ENHANCEDSTATUSCODES.
    pub no_enhanced_status_codes: bool,
    /// `-N`: do not announce DSN.
    pub no_dsn: bool,
    /// `-e`: no ESMTP at all (EHLO is refused).
    pub no_esmtp: bool,
    /// More arguments, before the address (see `man smtp-sink`).
    pub extra_args: Vec<String>,
}

/// Postfix `smtp-sink`: plaintext only (no STARTTLS, no CHUNKING), and
/// dumps each transaction to a file (`-d`).
///
/// Machine facts (Postfix 3.7.11, Debian 12):
/// - EHLO: `PIPELINING 8BITMIME AUTH PLAIN LOGIN XCLIENT XFORWARD
///   ENHANCEDSTATUSCODES DSN`, and the reply ends with an empty `250 ` line;
/// - any `AUTH` (even `AUTH LOGIN` without an initial response) is answered
///   `250 2.0.0 Ok` at once, with no `334` challenge;
/// - `STARTTLS` and `BDAT` are unknown commands (`500 5.5.1`);
/// - the dump stores lines with LF endings (dot-stuffing undone; a bare LF
///   from the client also ends a line), so `data` is rebuilt with CRLF;
/// - as root it must run with `-u nobody` (done automatically).
pub struct SmtpSink {
    running: Running,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl SmtpSink {
    /// Starts smtp-sink and waits until it accepts connections.
    pub fn start(opts: &SmtpSinkOptions) -> io::Result<Self> {
        let program = find_program("smtp-sink")
            .ok_or_else(|| not_installed("smtp-sink", Path::new("/usr/sbin/smtp-sink")))?;
        let root = running_as_root();
        let running = Running::start(
            "smtp-sink",
            |dir, _| {
                use std::os::unix::fs::PermissionsExt as _;
                // After dropping privileges smtp-sink writes as `nobody`.
                fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
                fs::set_permissions(dir.join("out"), fs::Permissions::from_mode(0o777))
            },
            |dir, port| {
                let mut cmd = Command::new(&program);
                if root {
                    cmd.args(["-u", "nobody"]);
                }
                let flags = [
                    (opts.no_pipelining, "-p"),
                    (opts.no_8bitmime, "-8"),
                    (opts.no_auth, "-a"),
                    (opts.no_enhanced_status_codes, "-E"),
                    (opts.no_dsn, "-N"),
                    (opts.no_esmtp, "-e"),
                ];
                for (on, flag) in flags {
                    if on {
                        cmd.arg(flag);
                    }
                }
                if let Some(host) = &opts.hostname {
                    cmd.arg("-h").arg(host);
                }
                cmd.args(&opts.extra_args);
                cmd.arg("-d")
                    .arg(dir.join("out").join("msg."))
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("64");
                cmd
            },
            None,
        )?;
        Ok(Self { running })
    }

    guard_methods!();

    /// Every complete transaction dumped so far, oldest first.
    pub fn messages(&self) -> io::Result<Vec<ReceivedMessage>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(self.running.outdir())? {
            let entry = entry?;
            let modified = entry
                .metadata()?
                .modified()
                .unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((modified, entry.path()));
        }
        files.sort();
        let mut messages = Vec::new();
        for (_, path) in files {
            let dump = fs::read(&path)?;
            // A dump ends with an empty line once the transaction is complete.
            if !dump.ends_with(b"\n\n") {
                continue;
            }
            messages.push(parse_sink_dump(&dump).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected smtp-sink dump format in {}", path.display()),
                )
            })?);
        }
        Ok(messages)
    }
}

/// Parses one smtp-sink `-d` dump: `X-...:` records, a three-line
/// `Received:` header, the message with LF line endings, an empty line.
pub fn parse_sink_dump(dump: &[u8]) -> Option<ReceivedMessage> {
    let mut from = None;
    let mut to = Vec::new();
    let mut rest = dump;
    // The smtp-sink records, up to and including the Received: header.
    loop {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
        rest = &rest[nl + 1..];
        if let Some(args) = line.strip_prefix("X-Mail-Args: ") {
            from = Some(angle_path(args));
        } else if let Some(args) = line.strip_prefix("X-Rcpt-Args: ") {
            to.push(angle_path(args));
        } else if line.starts_with("Received: ") {
            for _ in 0..2 {
                if rest.first() != Some(&b'\t') {
                    return None;
                }
                let nl = rest.iter().position(|&b| b == b'\n')?;
                rest = &rest[nl + 1..];
            }
            break;
        }
    }
    Some(ReceivedMessage {
        from: from?,
        to,
        data: crlf(rest.strip_suffix(b"\n")?),
    })
}

/// LF line endings made CRLF again.
fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(lf.len() + lf.len() / 32);
    for &b in lf {
        if b == b'\n' {
            data.extend_from_slice(b"\r\n");
        } else {
            data.push(b);
        }
    }
    data
}

/// `<a@b> SIZE=1` -> `a@b`.
fn angle_path(args: &str) -> String {
    let args = args.trim();
    match args.strip_prefix('<').and_then(|r| r.split_once('>')) {
        Some((path, _)) => path.to_owned(),
        None => args.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

// ----------------------------------------------------------------- Postfix

/// The domain a [`Postfix`] instance delivers, any local part; mail for
/// other domains is refused (`554 5.7.1 Relay access denied`).
pub const POSTFIX_DOMAIN: &str = "example.org";

/// How to run a private Postfix instance.
#[derive(Clone, Debug)]
pub struct PostfixOptions {
    /// Offer STARTTLS with this certificate (`smtpd_tls_security_level = may`).
    pub cert: Option<ServerCert>,
    /// EHLO keywords smtpd does not announce (`smtpd_discard_ehlo_keywords`),
    /// such as `chunking` or `size`.
    pub hidden_keywords: Vec<String>,
    /// `message_size_limit`, announced with `SIZE` (Postfix's default:
    /// 10240000).
    pub message_size_limit: u64,
    /// Recipients refused at `RCPT` with
    /// `550 5.1.1 <addr>: Recipient address rejected: Mailbox unknown`.
    pub refused_recipients: Vec<String>,
    /// `smtpd_timeout` in seconds (Postfix's default: 300): how long smtpd
    /// waits for a command before it answers `421 4.4.2 … Error: timeout
    /// exceeded` and closes the connection.
    pub idle_timeout_secs: Option<u32>,
    /// Deliver to Postfix's `discard` transport instead of the Maildir
    /// (`virtual_transport = discard`): accepted messages are queued and
    /// dropped, so a benchmark measures the SMTP dialogue, not the disk;
    /// [`Postfix::messages`] stays empty.
    pub discard: bool,
}

impl Default for PostfixOptions {
    fn default() -> Self {
        Self {
            cert: None,
            hidden_keywords: Vec::new(),
            message_size_limit: 10_240_000,
            refused_recipients: Vec::new(),
            idle_timeout_secs: None,
            discard: false,
        }
    }
}

/// A private Postfix instance (smtpd, cleanup, qmgr, virtual), the one real
/// peer here that offers CHUNKING/BDAT. Everything it uses is in its
/// temporary directory (`conf/` with `main.cf` and `master.cf`, `queue/`
/// with the pid file and sockets, `data/`), so instances run side by side
/// and apart from a system Postfix; smtpd listens on `127.0.0.1:<port>`
/// only, nothing is chrooted or relayed, and mail for [`POSTFIX_DOMAIN`]
/// goes through the queue to the `virtual` agent into one Maildir. Started
/// with `postfix -c <conf> start-fg`, stopped with `postfix -c <conf> stop`.
/// Needs root: the master runs as root, the daemons as `postfix`.
///
/// Machine facts (Postfix 3.7.11, Debian 12):
/// - EHLO: `PIPELINING SIZE <limit> VRFY ETRN ENHANCEDSTATUSCODES 8BITMIME
///   DSN SMTPUTF8 CHUNKING`, with `STARTTLS` before TLS when a certificate
///   is configured;
/// - smtpd counts each session's commands on its `disconnect from` log line
///   ([`Postfix::sessions`]), so the log shows whether BDAT or DATA was used;
/// - a BDAT chunk larger than `message_size_limit` is read and answered
///   `552 5.3.4 Chunk exceeds message size limit`;
/// - smtpd dies of SIGSEGV on a BDAT after every recipient was refused when
///   an earlier BDAT of the session exceeded the size limit (a Postfix bug;
///   the client sees the connection reset);
/// - delivered files have LF line endings, and Postfix prepends
///   `Return-Path:`, `X-Original-To:`, `Delivered-To:` and smtpd's
///   `Received:` ([`parse_postfix_delivery`] takes exactly those off).
pub struct Postfix {
    running: Running,
}

impl Postfix {
    /// Starts an instance and waits until smtpd accepts connections.
    pub fn start(opts: &PostfixOptions) -> io::Result<Self> {
        let program = find_program("postfix")
            .ok_or_else(|| not_installed("postfix", Path::new("/usr/sbin/postfix")))?;
        if !running_as_root() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "a Postfix instance needs root: its master process runs as root",
            ));
        }
        let ids = user_ids("postfix")?;
        let running = Running::start(
            "postfix",
            |dir, port| write_postfix_config(dir, port, opts, ids),
            |dir, _| {
                let mut cmd = Command::new(&program);
                // In the foreground the child lives as long as the master:
                // `Running` notices an early exit.
                cmd.arg("-c").arg(dir.join("conf")).arg("start-fg");
                cmd
            },
            Some(stop_postfix),
        )?;
        Ok(Self { running })
    }

    guard_methods!();

    /// Every message delivered so far, in the order Postfix received them
    /// (by queue id: long queue ids begin with the arrival time), one per
    /// queue file: the Maildir files of its recipients merged, `to` sorted
    /// (Postfix delivers to them in any order).
    pub fn messages(&self) -> io::Result<Vec<ReceivedMessage>> {
        // qmgr logs `<id>: removed` once every recipient has its file, so
        // nothing half-delivered is returned.
        let log = self.log();
        let finished: std::collections::HashSet<&str> = log
            .lines()
            .filter_map(|l| l.strip_suffix(": removed")?.rsplit(' ').next())
            .collect();
        let new = self.running.outdir().join("Maildir").join("new");
        let entries = match fs::read_dir(&new) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            entries => entries?,
        };
        let mut by_id = BTreeMap::<String, ReceivedMessage>::new();
        for entry in entries {
            let path = entry?.path();
            let bad = |what: &str| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{what} in {}", path.display()),
                )
            };
            let (id, m) = parse_postfix_delivery(&fs::read(&path)?)
                .ok_or_else(|| bad("not the headers Postfix prepends"))?;
            match by_id.get_mut(&id) {
                Some(seen) if seen.from != m.from || seen.data != m.data => {
                    return Err(bad(&format!("another copy of queue file {id}")))
                }
                Some(seen) => seen.to.extend(m.to),
                None => {
                    by_id.insert(id, m);
                }
            }
        }
        Ok(by_id
            .into_iter()
            .filter(|(id, _)| finished.contains(id.as_str()))
            .map(|(_, mut m)| {
                m.to.sort();
                m
            })
            .collect())
    }

    /// What smtpd counted for each finished session that sent a command,
    /// oldest first, from its `disconnect from` log line: command name
    /// (lower case, and `commands` for all) to `n` when all n succeeded,
    /// `ok/n` otherwise, e.g. `ehlo=2 starttls=1 mail=3 rcpt=3 bdat=3 quit=1
    /// commands=13`.
    pub fn sessions(&self) -> Vec<BTreeMap<String, String>> {
        self.log()
            .lines()
            .filter(|l| l.contains(" postfix/smtpd["))
            .filter_map(|l| l.split_once(": disconnect from ")?.1.split_once(' '))
            .map(|(_client, counts)| {
                counts
                    .split(' ')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<BTreeMap<_, _>>()
            })
            // The readiness probe connected and sent nothing.
            .filter(|counts| {
                !matches!(
                    counts.get("commands").map(String::as_str),
                    Some("0" | "0/0")
                )
            })
            .collect()
    }

    /// Waits until smtpd logged at least `n` sessions; all of them.
    pub fn wait_for_sessions(
        &self,
        n: usize,
        timeout: Duration,
    ) -> io::Result<Vec<BTreeMap<String, String>>> {
        wait_for(timeout, n, self.running.name, "smtpd sessions", || {
            Ok(self.sessions())
        })
    }
}

/// `(uid, gid)` of `user` in `/etc/passwd`.
fn user_ids(user: &str) -> io::Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| match l.split(':').collect::<Vec<_>>()[..] {
            [name, _, uid, gid, ..] if name == user => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        })
        .ok_or_else(|| not_installed(&format!("the user {user}"), Path::new("/etc/passwd")))
}

fn write_postfix_config(
    dir: &Path,
    port: u16,
    opts: &PostfixOptions,
    (uid, gid): (u32, u32),
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // The daemons run as `postfix`: they must reach the queue, and own the
    // data directory and the Maildir base (`out/`).
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let conf = dir.join("conf");
    fs::create_dir(&conf)?;
    // `postfix` starts in the queue directory; `postfix-script` fills it.
    fs::create_dir(dir.join("queue"))?;
    fs::create_dir(dir.join("data"))?;
    for owned in ["data", "out"] {
        std::os::unix::fs::chown(dir.join(owned), Some(uid), Some(gid))?;
    }
    let refused: String = opts
        .refused_recipients
        .iter()
        .map(|r| format!("{r} 550 5.1.1 Mailbox unknown\n"))
        .collect();
    fs::write(conf.join("refused"), refused)?;
    let d = dir.display();
    let tls = match &opts.cert {
        Some(cert) => {
            cert.write_pem(&conf)?;
            format!(
                "smtpd_tls_security_level = may\n\
                 smtpd_tls_cert_file = {d}/conf/cert.pem\n\
                 smtpd_tls_key_file = {d}/conf/key.pem\n"
            )
        }
        None => "smtpd_tls_security_level = none\n".to_owned(),
    };
    let main = format!(
        "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {d}/server.log
maillog_file_prefixes = {d}
myhostname = postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
enable_long_queue_ids = yes
# Nothing local, nothing relayed, nobody notified.
mydestination =
alias_maps =
local_recipient_maps =
relay_domains =
default_transport = error:5.7.1 no relaying in tests
relay_transport = error:5.7.1 no relaying in tests
notify_classes =
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:{d}/conf/refused
# The message stored as it was sent: no header added or rewritten.
local_header_rewrite_clients =
always_add_missing_headers = no
virtual_mailbox_domains = {POSTFIX_DOMAIN}
virtual_mailbox_base = {d}/out
virtual_mailbox_maps = static:Maildir/
virtual_minimum_uid = 1
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
message_size_limit = {limit}
virtual_mailbox_limit = 0
smtpd_discard_ehlo_keywords = silent-discard {hidden}
smtpd_timeout = {idle}s
{discard}{tls}",
        limit = opts.message_size_limit,
        hidden = opts.hidden_keywords.join(" "),
        idle = opts.idle_timeout_secs.unwrap_or(300),
        discard = if opts.discard {
            "virtual_transport = discard\n"
        } else {
            ""
        },
    );
    fs::write(conf.join("main.cf"), main)?;
    // Only what smtpd, the queue and the virtual agent need; `postlog`
    // writes `maillog_file`.
    let master = format!(
        "127.0.0.1:{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
error unix - - n - - error
retry unix - - n - - error
virtual unix - n n - - virtual
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
    );
    fs::write(conf.join("master.cf"), master)?;
    // Postfix waits for a file modified within the last second to "cool
    // down" (300 ms at a time) before it trusts what it read.
    let past = SystemTime::now() - Duration::from_secs(60);
    for file in fs::read_dir(&conf)? {
        fs::File::options()
            .write(true)
            .open(file?.path())?
            .set_modified(past)?;
    }
    Ok(())
}

/// `postfix stop` signals the master, which takes its daemons down with
/// it (after 5 s it kills their process group). If the master is somehow
/// still there after that, it and its group are killed here.
fn stop_postfix(dir: &Path) {
    let queue = fs::canonicalize(dir.join("queue")).unwrap_or_default();
    let master = fs::read_to_string(queue.join("pid/master.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok());
    if let Some(program) = find_program("postfix") {
        let _ = Command::new(program)
            .arg("-c")
            .arg(dir.join("conf"))
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let Some(pid) = master else { return };
    // Still this instance's master: alive (a zombie has no working
    // directory) and in its queue directory, so a recycled pid is never
    // taken for it.
    let is_master = || fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == queue);
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_master() {
        if Instant::now() >= deadline {
            // The shell's kill, as postfix-script does it (no procps needed).
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -9 -{pid}"))
                .status();
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Splits a message as the `virtual` agent delivered it into its queue id
/// and what was sent: `Return-Path:` (the reverse path), `X-Original-To:`
/// (the recipient as given in RCPT), `Delivered-To:` and the `Received:`
/// smtpd added (folded, with the queue id) are taken off, and the LF line
/// endings made CRLF. So `data` is compared with what was sent after its
/// line endings are normalised to CRLF; everything else, dots included, is
/// byte for byte.
pub fn parse_postfix_delivery(file: &[u8]) -> Option<(String, ReceivedMessage)> {
    fn line(rest: &mut &[u8]) -> Option<String> {
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
        *rest = &rest[nl + 1..];
        Some(line)
    }
    let mut rest = file;
    let from = angle_path(line(&mut rest)?.strip_prefix("Return-Path: ")?);
    let to = line(&mut rest)?.strip_prefix("X-Original-To: ")?.to_owned();
    line(&mut rest)?.strip_prefix("Delivered-To: ")?;
    let mut received = line(&mut rest)?.strip_prefix("Received: ")?.to_owned();
    while rest.first().is_some_and(|&b| b == b'\t' || b == b' ') {
        received.push_str(&line(&mut rest)?);
    }
    let mut words = received.split_whitespace();
    words.find(|&w| w == "id")?;
    let id = words.next()?.trim_end_matches(';').to_owned();
    Some((
        id,
        ReceivedMessage {
            from,
            to: vec![to],
            data: crlf(rest),
        },
    ))
}

/// Just enough JSON for `{"mail_from": "...", "rcpt_tos": ["...", ...]}`.
mod json {
    use std::io;

    fn bad(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("envelope JSON: {what}"))
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> io::Result<()> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(bad(&format!("expected {:?} at {}", c as char, self.i)))
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }

        fn hex4(&mut self) -> io::Result<u32> {
            let h = self
                .s
                .get(self.i..self.i + 4)
                .ok_or_else(|| bad("short \\u"))?;
            let h = std::str::from_utf8(h).map_err(|_| bad("\\u"))?;
            self.i += 4;
            u32::from_str_radix(h, 16).map_err(|_| bad("\\u"))
        }

        fn string(&mut self) -> io::Result<String> {
            self.eat(b'"')?;
            let mut out = Vec::new();
            loop {
                let b = *self
                    .s
                    .get(self.i)
                    .ok_or_else(|| bad("unterminated string"))?;
                self.i += 1;
                match b {
                    b'"' => return String::from_utf8(out).map_err(|_| bad("UTF-8")),
                    b'\\' => {
                        let e = *self.s.get(self.i).ok_or_else(|| bad("escape"))?;
                        self.i += 1;
                        let c = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let mut cp = self.hex4()?;
                                if (0xD800..0xDC00).contains(&cp)
                                    && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                                {
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    cp =
                                        0x10000 + ((cp - 0xD800) << 10) + (lo.wrapping_sub(0xDC00));
                                }
                                char::from_u32(cp).unwrap_or('\u{FFFD}')
                            }
                            _ => return Err(bad("escape")),
                        };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(b),
                }
            }
        }
    }

    /// (mail_from, rcpt_tos); other keys must hold strings or string arrays.
    pub(super) fn parse_envelope(text: &str) -> io::Result<(String, Vec<String>)> {
        let mut p = P {
            s: text.as_bytes(),
            i: 0,
        };
        let mut from = None;
        let mut to = None;
        p.eat(b'{')?;
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                let key = p.string()?;
                p.eat(b':')?;
                if p.peek() == Some(b'[') {
                    p.i += 1;
                    let mut items = Vec::new();
                    if p.peek() == Some(b']') {
                        p.i += 1;
                    } else {
                        loop {
                            items.push(p.string()?);
                            match p.peek() {
                                Some(b',') => p.i += 1,
                                Some(b']') => {
                                    p.i += 1;
                                    break;
                                }
                                _ => return Err(bad("array")),
                            }
                        }
                    }
                    if key == "rcpt_tos" {
                        to = Some(items);
                    }
                } else {
                    let value = p.string()?;
                    if key == "mail_from" {
                        from = Some(value);
                    }
                }
                match p.peek() {
                    Some(b',') => p.i += 1,
                    Some(b'}') => {
                        p.i += 1;
                        break;
                    }
                    _ => return Err(bad("object")),
                }
            }
        }
        if p.peek().is_some() {
            return Err(bad("trailing data"));
        }
        Ok((
            from.ok_or_else(|| bad("no mail_from"))?,
            to.ok_or_else(|| bad("no rcpt_tos"))?,
        ))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn envelope() {
            let (f, t) = super::parse_envelope(
                r#"{"mail_from": "a@b", "rcpt_tos": ["c@d", "\u00e9\ud83d\ude00@x\"y"]}"#,
            )
            .unwrap();
            assert_eq!(f, "a@b");
            assert_eq!(t, vec!["c@d".to_owned(), "é😀@x\"y".to_owned()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_dump() {
        let dump = b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: me\n\
X-Mail-Args: <a@b.c> SIZE=10\nX-Rcpt-Args: <x@y.z>\nX-Rcpt-Args: <w@y.z> NOTIFY=NEVER\n\
Received: from me ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id 24e4af75;\n\
\tFri, 27 Nov 2026 22:31:50 +0000 (UTC)\nSubject: t\n\n.dot\nlast\n\n";
        let m = parse_sink_dump(dump).unwrap();
        assert_eq!(m.from, "a@b.c");
        assert_eq!(m.to, vec!["x@y.z".to_owned(), "w@y.z".to_owned()]);
        assert_eq!(m.data, b"Subject: t\r\n\r\n.dot\r\nlast\r\n");
    }

    #[test]
    fn postfix_delivery() {
        let file = b"Return-Path: <>\nX-Original-To: you@example.org\n\
Delivered-To: you@example.org\nReceived: from me (localhost [127.0.0.1])\n\
\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n\
\tby postfix.test (Postfix) with ESMTPS id 4jbrfR6r70z1SRnQ\n\
\tfor <you@example.org>; Sat, 28 Nov 2026 00:25:35 +0000 (UTC)\n\
Received: by relay.example\nSubject: t\n\n..two\n.\n";
        let (id, m) = parse_postfix_delivery(file).unwrap();
        assert_eq!(id, "4jbrfR6r70z1SRnQ");
        assert_eq!(m.from, "");
        assert_eq!(m.to, ["you@example.org"]);
        // Only the Received: smtpd added goes.
        assert_eq!(
            m.data,
            b"Received: by relay.example\r\nSubject: t\r\n\r\n..two\r\n.\r\n"
        );
        assert!(parse_postfix_delivery(b"Return-Path: <a@b>\nSubject: t\n\nx\n").is_none());
    }
}
