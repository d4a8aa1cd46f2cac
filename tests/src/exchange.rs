//! An Exchange-Online-like submission server (`smtp.office365.com:587`) as a
//! [`Handler`] for [`ScriptedServer`](crate::ScriptedServer).
//!
//! In plaintext it offers STARTTLS and no AUTH, refuses every AUTH with
//! `504 5.7.4` and MAIL with `530 5.7.57`; over TLS it offers
//! `AUTH LOGIN XOAUTH2` only. The replies copy Exchange Online's texts and
//! enhanced status codes. Accepted messages land in a [`MailStore`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustls::ServerConfig;

use crate::server::{Handler, Peer};

/// Exchange Online's advertised (and enforced) message size limit.
pub const EXCHANGE_SIZE_LIMIT: u64 = 157_286_400;

/// How the Exchange-like server behaves.
#[derive(Clone, Debug)]
pub struct ExchangeOptions {
    /// The server's TLS configuration (STARTTLS, or implicit TLS).
    pub tls: Arc<ServerConfig>,
    /// `(user, password)` pairs accepted by AUTH LOGIN.
    pub users: Vec<(String, String)>,
    /// `(user, bearer token)` pairs accepted by AUTH XOAUTH2.
    pub tokens: Vec<(String, String)>,
    /// The message size limit, advertised as `SIZE` and enforced for
    /// `SIZE=`, DATA and BDAT.
    pub size_limit: u64,
    /// Implicit TLS (port 465 style): the handshake comes first, there is
    /// no STARTTLS and AUTH is offered at once.
    pub implicit_tls: bool,
    /// The host name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Accepts an XOAUTH2 `(user, bearer token)` that is not in `tokens`
    /// when this says yes (e.g. a JWT checked against an OAuth2 server's
    /// keys).
    pub verify_token: Option<TokenCheck>,
}

/// A check of an XOAUTH2 `(user, bearer token)` ([`ExchangeOptions::verify_token`]).
#[derive(Clone)]
pub struct TokenCheck(pub Arc<TokenCheckFn>);

/// `(user, bearer token) -> accepted`.
pub type TokenCheckFn = dyn Fn(&str, &str) -> bool + Send + Sync;

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck(..)")
    }
}

impl ExchangeOptions {
    /// STARTTLS on `tls`, no users, Exchange's size limit.
    pub fn new(tls: Arc<ServerConfig>) -> Self {
        Self {
            tls,
            users: Vec::new(),
            tokens: Vec::new(),
            size_limit: EXCHANGE_SIZE_LIMIT,
            implicit_tls: false,
            hostname: "BN8PR04CA0001.outlook.office365.com".to_owned(),
            verify_token: None,
        }
    }

    /// Adds a user for AUTH LOGIN.
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users.push((user.to_owned(), password.to_owned()));
        self
    }

    /// Adds a bearer token for AUTH XOAUTH2.
    pub fn token(mut self, user: &str, token: &str) -> Self {
        self.tokens.push((user.to_owned(), token.to_owned()));
        self
    }

    /// Also accepts, for any user, the XOAUTH2 bearer tokens that are RS256
    /// JWTs signed by a key of `jwks` (a JSON Web Key Set, e.g.
    /// [`OAuth2Mock::jwks`](crate::peers::OAuth2Mock::jwks)) and not
    /// expired; any other gets Exchange's error challenge and
    /// `535 5.7.3`. A `jwks` that is no key set accepts nothing.
    pub fn verify_jwt(self, jwks: &str) -> Self {
        let keys = crate::jwt::Jwks::parse(jwks).unwrap_or_default();
        self.verify_token(move |_, token| keys.verify(token).is_ok())
    }

    /// Also accepts the XOAUTH2 `(user, token)`s that `check` accepts.
    pub fn verify_token(
        mut self,
        check: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.verify_token = Some(TokenCheck(Arc::new(check)));
        self
    }

    /// Sets the size limit.
    pub fn size_limit(mut self, limit: u64) -> Self {
        self.size_limit = limit;
        self
    }

    /// Sets implicit TLS.
    pub fn implicit_tls(mut self, implicit: bool) -> Self {
        self.implicit_tls = implicit;
        self
    }
}

/// A message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The reverse path (empty for `<>`), without angle brackets.
    pub from: String,
    /// The accepted recipients, in order, without angle brackets.
    pub to: Vec<String>,
    /// The content as the server reconstructed it: for DATA dot-stuffing
    /// undone and CRLF line endings; for BDAT the chunks concatenated.
    pub data: Vec<u8>,
    /// Whether the message came over TLS.
    pub tls: bool,
    /// `(mechanism, user)` of the successful AUTH, if any.
    pub auth: Option<(String, String)>,
}

/// One completed AUTH exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAttempt {
    /// `LOGIN` or `XOAUTH2`.
    pub mechanism: String,
    /// The user name the client sent.
    pub user: String,
    /// Whether the credentials were accepted.
    pub success: bool,
    /// Whether it happened over TLS.
    pub tls: bool,
}

#[derive(Debug, Default)]
struct StoreInner {
    messages: Vec<StoredMessage>,
    auth_attempts: Vec<AuthAttempt>,
}

/// The messages and AUTH attempts an Exchange-like server saw; clones share.
#[derive(Clone, Debug, Default)]
pub struct MailStore {
    inner: Arc<Mutex<StoreInner>>,
    next_id: Arc<AtomicU64>,
}

impl MailStore {
    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every accepted message so far.
    pub fn messages(&self) -> Vec<StoredMessage> {
        self.lock().messages.clone()
    }

    /// Every completed AUTH exchange so far.
    pub fn auth_attempts(&self) -> Vec<AuthAttempt> {
        self.lock().auth_attempts.clone()
    }

    /// Waits until at least `n` messages were accepted; returns them all
    /// (fewer on timeout).
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<StoredMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn store(&self, message: StoredMessage) {
        self.lock().messages.push(message);
    }

    fn record_auth(&self, attempt: AuthAttempt) {
        self.lock().auth_attempts.push(attempt);
    }

    fn queue_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{n:08X}-0000-4000-8000-00000000{:04X}", n & 0xFFFF)
    }
}

/// The Exchange-like behaviour: a handler for
/// [`ScriptedServer::start`](crate::ScriptedServer::start) and the store it
/// fills.
pub fn exchange_online(opts: ExchangeOptions) -> (Handler, MailStore) {
    let store = MailStore::default();
    let opts = Arc::new(opts);
    let handler_store = store.clone();
    let handler: Handler =
        Arc::new(move |peer: &mut Peer| Session::new(&opts, &handler_store).run(peer));
    (handler, store)
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
    binarymime: bool,
    chunks: Option<Vec<u8>>,
    oversized: bool,
}

struct Session<'a> {
    opts: &'a ExchangeOptions,
    store: &'a MailStore,
    greeted: bool,
    auth: Option<(String, String)>,
    tx: Transaction,
}

const BAD_SEQUENCE: &str = "503 5.5.1 Bad sequence of commands";
const NOT_AUTHENTICATED: &str = "530 5.7.57 Client not authenticated to send mail";
const AUTH_OK: &str = "235 2.7.0 Authentication successful";
const AUTH_FAILED: &str = "535 5.7.3 Authentication unsuccessful";
const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed maximum message size";
const INVALID_ARGS: &str = "501 5.5.4 Invalid arguments";

impl<'a> Session<'a> {
    fn new(opts: &'a ExchangeOptions, store: &'a MailStore) -> Self {
        Self {
            opts,
            store,
            greeted: false,
            auth: None,
            tx: Transaction::default(),
        }
    }

    fn run(mut self, peer: &mut Peer) -> io::Result<()> {
        if self.opts.implicit_tls {
            peer.implicit_tls(self.opts.tls.clone())?;
        }
        peer.reply(&format!(
            "220 {} Microsoft ESMTP MAIL Service ready",
            self.opts.hostname
        ))?;
        loop {
            let line = match peer.line() {
                Ok(line) => line,
                // A client may hang up at any time; that is not a server error.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&line).into_owned();
            let (verb, args) = match text.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
                None => (text.to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" | "HELO" => self.hello(peer, &verb, &args)?,
                "STARTTLS" => self.starttls(peer, &args)?,
                "AUTH" => self.auth(peer, &args)?,
                "MAIL" => self.mail(peer, &args)?,
                "RCPT" => self.rcpt(peer, &args)?,
                "DATA" => self.data(peer, &args)?,
                "BDAT" => self.bdat(peer, &args)?,
                "RSET" => {
                    self.tx = Transaction::default();
                    peer.reply("250 2.0.0 Resetting")?;
                }
                "NOOP" => peer.reply("250 2.0.0 OK")?,
                "VRFY" => peer.reply("252 2.1.5 Cannot VRFY user")?,
                "QUIT" => {
                    peer.reply("221 2.0.0 Service closing transmission channel")?;
                    return Ok(());
                }
                _ => peer.reply("500 5.3.3 Unrecognized command")?,
            }
        }
    }

    fn hello(&mut self, peer: &mut Peer, verb: &str, args: &str) -> io::Result<()> {
        if args.is_empty() {
            return peer.reply("501 5.5.4 Invalid domain name");
        }
        self.greeted = true;
        self.tx = Transaction::default();
        let ip = peer
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let hello = format!("{} Hello [{ip}]", self.opts.hostname);
        if verb == "HELO" {
            return peer.reply(&format!("250 {hello}"));
        }
        let mut lines = vec![
            hello,
            format!("SIZE {}", self.opts.size_limit),
            "PIPELINING".to_owned(),
            "DSN".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if peer.is_tls() {
            lines.push("AUTH LOGIN XOAUTH2".to_owned());
        } else {
            lines.push("STARTTLS".to_owned());
        }
        for kw in ["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"] {
            lines.push(kw.to_owned());
        }
        let last = lines.len() - 1;
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect();
        peer.reply(&reply.join("\n"))
    }

    fn starttls(&mut self, peer: &mut Peer, args: &str) -> io::Result<()> {
        if peer.is_tls() {
            return peer.reply("503 5.5.1 Bad sequence of commands: already in TLS");
        }
        if !args.is_empty() {
            return peer.reply("501 5.5.4 Syntax error: STARTTLS takes no arguments");
        }
        peer.reply("220 2.0.0 SMTP server ready")?;
        peer.start_tls(self.opts.tls.clone())?;
        // RFC 3207 4.2: forget everything learnt before TLS.
        self.greeted = false;
        self.auth = None;
        self.tx = Transaction::default();
        Ok(())
    }

    fn auth(&mut self, peer: &mut Peer, args: &str) -> io::Result<()> {
        let mut parts = args.split_whitespace();
        let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
        let initial = parts.next().map(str::to_owned);
        if !peer.is_tls() {
            return peer.reply("504 5.7.4 Unrecognized authentication type");
        }
        if !self.greeted {
            return peer.reply("503 5.5.2 Send hello first");
        }
        if self.auth.is_some() {
            return peer.reply("503 5.5.2 Already authenticated");
        }
        if self.tx.from.is_some() {
            return peer.reply(BAD_SEQUENCE);
        }
        match mechanism.as_str() {
            "LOGIN" => self.auth_login(peer, initial),
            "XOAUTH2" => self.auth_xoauth2(peer, initial),
            _ => peer.reply("504 5.7.4 Unrecognized authentication type"),
        }
    }

    /// Reads one SASL response line; `None` if the client cancelled (`*`)
    /// or sent invalid base64 (already answered).
    fn sasl_response(peer: &mut Peer) -> io::Result<Option<Vec<u8>>> {
        let line = peer.line()?;
        if line == b"*" {
            peer.reply("501 5.0.0 Authentication cancelled")?;
            return Ok(None);
        }
        match B64.decode(&line) {
            Ok(decoded) => Ok(Some(decoded)),
            Err(_) => {
                peer.reply("501 5.5.2 Cannot Decode response")?;
                Ok(None)
            }
        }
    }

    fn auth_login(&mut self, peer: &mut Peer, initial: Option<String>) -> io::Result<()> {
        if let Some(initial) = initial {
            // Exchange refuses LOGIN with an initial response.
            let user = B64.decode(initial.as_bytes()).unwrap_or_default();
            let user = String::from_utf8_lossy(&user).into_owned();
            return self.finish_auth(peer, "LOGIN", user, false);
        }
        peer.reply("334 VXNlcm5hbWU6")?;
        let Some(user) = Self::sasl_response(peer)? else {
            return Ok(());
        };
        peer.reply("334 UGFzc3dvcmQ6")?;
        let Some(password) = Self::sasl_response(peer)? else {
            return Ok(());
        };
        let user = String::from_utf8_lossy(&user).into_owned();
        let password = String::from_utf8_lossy(&password).into_owned();
        let success = self
            .opts
            .users
            .iter()
            .any(|(u, p)| *u == user && *p == password);
        self.finish_auth(peer, "LOGIN", user, success)
    }

    fn auth_xoauth2(&mut self, peer: &mut Peer, initial: Option<String>) -> io::Result<()> {
        let response = match initial {
            Some(b64) => match B64.decode(b64.as_bytes()) {
                Ok(decoded) => decoded,
                Err(_) => return peer.reply("501 5.5.2 Cannot Decode response"),
            },
            None => {
                peer.reply("334 ")?;
                match Self::sasl_response(peer)? {
                    Some(decoded) => decoded,
                    None => return Ok(()),
                }
            }
        };
        let (user, token) = parse_xoauth2(&response).unwrap_or_default();
        let success = !user.is_empty()
            && self
                .opts
                .tokens
                .iter()
                .any(|(u, t)| *u == user && *t == token)
            || (!user.is_empty()
                && self
                    .opts
                    .verify_token
                    .as_ref()
                    .is_some_and(|check| (check.0)(&user, &token)));
        if !success {
            let error = r#"{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}"#;
            peer.reply(&format!("334 {}", B64.encode(error)))?;
            // The client answers the error challenge with an empty line.
            let _ = peer.line()?;
        }
        self.finish_auth(peer, "XOAUTH2", user, success)
    }

    fn finish_auth(
        &mut self,
        peer: &mut Peer,
        mechanism: &str,
        user: String,
        success: bool,
    ) -> io::Result<()> {
        self.store.record_auth(AuthAttempt {
            mechanism: mechanism.to_owned(),
            user: user.clone(),
            success,
            tls: peer.is_tls(),
        });
        if success {
            self.auth = Some((mechanism.to_owned(), user));
            peer.reply(AUTH_OK)
        } else {
            peer.reply(AUTH_FAILED)
        }
    }

    fn mail(&mut self, peer: &mut Peer, args: &str) -> io::Result<()> {
        if !self.greeted {
            return peer.reply("503 5.5.2 Send hello first");
        }
        if self.auth.is_none() {
            return peer.reply(NOT_AUTHENTICATED);
        }
        if self.tx.from.is_some() {
            return peer.reply("503 5.5.2 Sender already specified");
        }
        let Some((from, params)) = parse_path(args, "FROM:") else {
            return peer.reply(INVALID_ARGS);
        };
        let mut binarymime = false;
        for param in &params {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.opts.size_limit => return peer.reply(TOO_BIG),
                    Ok(_) => {}
                    Err(_) => return peer.reply(INVALID_ARGS),
                },
                "BODY" => match value.to_ascii_uppercase().as_str() {
                    "7BIT" | "8BITMIME" => {}
                    "BINARYMIME" => binarymime = true,
                    _ => return peer.reply(INVALID_ARGS),
                },
                "SMTPUTF8" | "RET" | "ENVID" | "AUTH" => {}
                _ => return peer.reply(&format!("555 5.5.4 Unsupported option: {key}")),
            }
        }
        self.tx = Transaction {
            from: Some(from),
            binarymime,
            ..Transaction::default()
        };
        peer.reply("250 2.1.0 Sender OK")
    }

    fn rcpt(&mut self, peer: &mut Peer, args: &str) -> io::Result<()> {
        if self.auth.is_none() {
            return peer.reply(NOT_AUTHENTICATED);
        }
        if self.tx.from.is_none() {
            return peer.reply(BAD_SEQUENCE);
        }
        let Some((to, params)) = parse_path(args, "TO:") else {
            return peer.reply(INVALID_ARGS);
        };
        for param in &params {
            let key = param.split_once('=').map_or(param.as_str(), |(k, _)| k);
            if !matches!(key.to_ascii_uppercase().as_str(), "NOTIFY" | "ORCPT") {
                return peer.reply(&format!("555 5.5.4 Unsupported option: {key}"));
            }
        }
        let local = to.split('@').next().unwrap_or("");
        if to.is_empty() || local.to_ascii_lowercase().starts_with("reject") {
            return peer.reply(
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            );
        }
        self.tx.to.push(to);
        peer.reply("250 2.1.5 Recipient OK")
    }

    fn data(&mut self, peer: &mut Peer, args: &str) -> io::Result<()> {
        if self.auth.is_none() {
            return peer.reply(NOT_AUTHENTICATED);
        }
        if !args.is_empty() {
            return peer.reply(INVALID_ARGS);
        }
        if self.tx.from.is_none() || self.tx.binarymime || self.tx.chunks.is_some() {
            return peer.reply(BAD_SEQUENCE);
        }
        if self.tx.to.is_empty() {
            return peer.reply("503 5.5.2 Need rcpt command");
        }
        peer.reply("354 Start mail input; end with <CRLF>.<CRLF>")?;
        let max = usize::try_from(self.opts.size_limit).unwrap_or(usize::MAX);
        match peer.read_data_within(max)? {
            Some(body) => self.accept(peer, body),
            None => {
                self.tx = Transaction::default();
                peer.reply(TOO_BIG)
            }
        }
    }

    fn bdat(&mut self, peer: &mut Peer, args: &str) -> io::Result<()> {
        let mut parts = args.split_whitespace();
        let size = parts.next().and_then(|s| s.parse::<u64>().ok());
        let last = match parts.next() {
            None => false,
            Some(word) if word.eq_ignore_ascii_case("LAST") => true,
            Some(_) => return peer.reply(INVALID_ARGS),
        };
        let Some(size) = size.filter(|_| parts.next().is_none()) else {
            return peer.reply(INVALID_ARGS);
        };
        // The chunk follows the command whatever the reply will be.
        if self.auth.is_none() || self.tx.from.is_none() || self.tx.to.is_empty() {
            peer.discard_bytes(size)?;
            self.tx = Transaction::default();
            let reply = if self.auth.is_none() {
                NOT_AUTHENTICATED
            } else {
                BAD_SEQUENCE
            };
            return peer.reply(reply);
        }
        let have = self.tx.chunks.as_ref().map_or(0, Vec::len) as u64;
        if self.tx.oversized || have.saturating_add(size) > self.opts.size_limit {
            peer.discard_bytes(size)?;
            self.tx.oversized = true;
        } else {
            let chunk = peer.read_exact_bytes(usize::try_from(size).unwrap_or(usize::MAX))?;
            self.tx.chunks.get_or_insert_with(Vec::new).extend(chunk);
        }
        if !last {
            return peer.reply(&format!("250 2.0.0 {size} bytes received"));
        }
        if self.tx.oversized {
            self.tx = Transaction::default();
            return peer.reply(TOO_BIG);
        }
        let body = self.tx.chunks.take().unwrap_or_default();
        self.accept(peer, body)
    }

    fn accept(&mut self, peer: &mut Peer, data: Vec<u8>) -> io::Result<()> {
        let tx = std::mem::take(&mut self.tx);
        self.store.store(StoredMessage {
            from: tx.from.unwrap_or_default(),
            to: tx.to,
            data,
            tls: peer.is_tls(),
            auth: self.auth.clone(),
        });
        let id = self.store.queue_id();
        peer.reply(&format!(
            "250 2.0.0 OK <{id}@{}> [Hostname={}] Queued mail for delivery",
            self.opts.hostname, self.opts.hostname
        ))
    }
}

/// `FROM:<a@b> P=1 Q` (after the verb) -> (`a@b`, [`P=1`, `Q`]).
fn parse_path(args: &str, keyword: &str) -> Option<(String, Vec<String>)> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args.get(keyword.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let path = rest[..end].to_owned();
    let params = rest[end + 1..]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((path, params))
}

/// `user=U\x01auth=Bearer T\x01\x01` -> (U, T).
fn parse_xoauth2(response: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(response).ok()?;
    let body = text.strip_suffix("\x01\x01")?;
    let (user, auth) = body.split_once('\x01')?;
    let user = user.strip_prefix("user=")?;
    let token = auth.strip_prefix("auth=Bearer ")?;
    Some((user.to_owned(), token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("FROM:<a@b> SIZE=10 BODY=8BITMIME", "FROM:"),
            Some((
                "a@b".to_owned(),
                vec!["SIZE=10".to_owned(), "BODY=8BITMIME".to_owned()]
            ))
        );
        assert_eq!(
            parse_path("from: <>", "FROM:"),
            Some((String::new(), vec![]))
        );
        assert_eq!(parse_path("TO:a@b", "TO:"), None);
    }

    #[test]
    fn xoauth2() {
        assert_eq!(
            parse_xoauth2(b"user=me@x\x01auth=Bearer tok\x01\x01"),
            Some(("me@x".to_owned(), "tok".to_owned()))
        );
        assert_eq!(parse_xoauth2(b"user=me@x\x01auth=Bearer tok\x01"), None);
    }
}
