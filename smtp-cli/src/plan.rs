//! From the command line (and the environment) to a [`Plan`]: everything
//! checked before a socket is opened.

use crate::args::{AuthMode, SendArgs, TlsMode};
use crate::report::{classify, Failure, Kind};
use smtp_blocking::smtp_proto::{BodyType, EhloName};
use smtp_blocking::tls::{client_config, TlsRoots};
use smtp_blocking::{Address, Credentials, Envelope, Mechanism, Options, Timeouts, TlsPolicy};
use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The environment variable holding the password for `--user`.
pub const PASSWORD_ENV: &str = "SMTP_PASSWORD";
/// The environment variable holding an OAuth 2.0 bearer token for `--user`.
pub const TOKEN_ENV: &str = "SMTP_OAUTH_TOKEN";

/// Where the message comes from.
#[derive(Debug, Clone)]
pub enum Data {
    /// A file, reopened and streamed for every transaction.
    File {
        /// The path.
        path: PathBuf,
        /// Its length, declared as `SIZE=`.
        size: u64,
        /// 8BITMIME when it holds any non-ASCII byte.
        body: BodyType,
        /// Its length on the wire with CRLF line endings, which lets the
        /// session use `BDAT` when the server offers CHUNKING.
        wire: u64,
    },
    /// Standard input, streamed (one transaction only).
    Stdin,
    /// A file that is not a regular file (a FIFO, `<(…)`): it can be read
    /// once, so it is kept open from the start and streamed for one
    /// transaction, without `SIZE=`.
    Pipe(Arc<Mutex<Option<File>>>),
    /// In memory: stdin read once for several transactions, a small file
    /// sent several times, or the demo.
    Memory(Arc<Vec<u8>>),
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

/// Builds the plan from the flags; `env` looks up an environment variable.
///
/// Usage errors (a missing secret, an unreadable file, a bad number) are
/// [`Kind::Usage`]; an address, name or user name the core refuses is
/// [`Kind::InvalidInput`]. Nothing is connected.
pub fn plan(args: &SendArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, Failure> {
    let server = args
        .server
        .as_deref()
        .ok_or_else(|| Failure::usage("--server is required"))?;
    let default_port = match args.tls {
        TlsMode::Implicit => 465,
        TlsMode::None => 25,
        TlsMode::Required | TlsMode::Opportunistic => 587,
    };
    let (server_name, port) = parse_server(server, default_port).map_err(Failure::usage)?;
    let connect = args.connect.as_deref().map(parse_connect).transpose()?;
    let tls = match args.tls {
        TlsMode::Required => TlsPolicy::Required,
        TlsMode::Opportunistic => TlsPolicy::Opportunistic,
        TlsMode::Implicit => TlsPolicy::Implicit,
        TlsMode::None => TlsPolicy::Disabled,
    };
    let mut options = Options::new();
    match (&args.ca_file, args.tls) {
        (Some(_), TlsMode::None) | (None, _) => {}
        (Some(path), _) => {
            let pem = std::fs::read(path)
                .map_err(|err| Failure::usage(format!("--ca-file {}: {err}", path.display())))?;
            options =
                options.tls(client_config(&TlsRoots::Pem(pem)).map_err(|err| classify(&err))?);
        }
    }
    let helo = EhloName::new(args.helo.clone()).map_err(|err| invalid("--helo", err))?;

    let credentials = match &args.user {
        None => {
            if args.auth.is_some() {
                return Err(Failure::usage("--auth needs --user"));
            }
            None
        }
        Some(user) => {
            let wants_token = matches!(args.auth, Some(AuthMode::Xoauth2 | AuthMode::Oauthbearer));
            let credentials = match (env(PASSWORD_ENV), env(TOKEN_ENV)) {
                (_, Some(token)) if wants_token => Credentials::token(user.clone(), token),
                (Some(password), _) => Credentials::password(user.clone(), password),
                (None, Some(token)) => Credentials::token(user.clone(), token),
                (None, None) => {
                    return Err(Failure::usage(format!(
                        "--user needs the secret in the environment: {PASSWORD_ENV} (or {TOKEN_ENV} for a bearer token)"
                    )))
                }
            };
            credentials.check().map_err(|err| invalid("--user", err))?;
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
    let data = match args.data.as_deref() {
        None => {
            return Err(Failure::usage(
                "--data is required (a file, or - for stdin)",
            ))
        }
        // Several transactions need the message several times: stdin can
        // only be read once, so it is buffered then.
        Some("-") if repeat > 1 => {
            let mut buf = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .map_err(|err| Failure::new(Kind::Io, format!("reading stdin: {err}")))?;
            Data::Memory(Arc::new(buf))
        }
        Some("-") => Data::Stdin,
        Some(path) => file_data(PathBuf::from(path), repeat)?,
    };
    let timeout = match args.timeout {
        None => None,
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(
            Duration::try_from_secs_f64(secs)
                .map_err(|err| Failure::usage(format!("--timeout {secs}: {err}")))?,
        ),
        Some(secs) => {
            return Err(Failure::usage(format!(
                "--timeout {secs}: must be a positive number of seconds"
            )))
        }
    };
    if let Some(timeout) = timeout {
        options = options
            .timeouts(Timeouts::uniform(timeout))
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
    })
}

fn invalid(flag: &str, err: smtp_blocking::smtp_proto::Error) -> Failure {
    let mut failure = classify(&err.into());
    failure.message = format!("{flag}: {}", failure.message);
    failure
}

/// `--connect ADDR:PORT`: an IP address and port, or a name resolved now
/// (its first address).
fn parse_connect(value: &str) -> Result<SocketAddr, Failure> {
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

/// Checks a regular file once: its size (declared as `SIZE=`) and whether
/// it is 8-bit, in one streaming pass; the message itself is streamed again
/// per transaction. Anything else (a FIFO) can be read only once: streamed
/// for one transaction, buffered for several.
fn file_data(path: PathBuf, repeat: u32) -> Result<Data, Failure> {
    let unreadable = |err: io::Error| Failure::usage(format!("--data {}: {err}", path.display()));
    let mut file = File::open(&path).map_err(unreadable)?;
    let regular = file.metadata().map_err(unreadable)?.is_file();
    if !regular {
        if repeat == 1 {
            return Ok(Data::Pipe(Arc::new(Mutex::new(Some(file)))));
        }
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(unreadable)?;
        return Ok(Data::Memory(Arc::new(buf)));
    }
    let mut chunk = vec![0; 64 * 1024];
    let mut size = 0u64;
    let mut ascii = true;
    let mut wire = smtp_blocking::smtp_proto::data::NormalizedLen::default();
    // A small message sent several times is kept in memory rather than
    // reopened and read for every transaction.
    let mut kept = (repeat > 1).then(Vec::new);
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(unreadable(err)),
        };
        size += n as u64;
        ascii &= chunk[..n].is_ascii();
        wire.update(&chunk[..n]);
        if let Some(buf) = kept.as_mut() {
            if buf.len() + n > KEEP_IN_MEMORY {
                kept = None;
            } else {
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
    let body = if ascii {
        BodyType::SevenBit
    } else {
        BodyType::EightBitMime
    };
    if let Some(buf) = kept {
        return Ok(Data::Memory(Arc::new(buf)));
    }
    Ok(Data::File {
        path,
        size,
        body,
        wire: wire.total(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
