//! Helpers the scenarios share: names, envelopes, scripted EHLO replies,
//! transcript checks.

use std::io;
use std::time::{Duration, Instant};

use proto::{Address, Config, Credentials, Envelope, Timeouts, TlsPolicy};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{Peer, Received, ScriptedServer, TestPki};

use crate::harness::{AdapterError, Conn, Opts};

/// The server name TLS is verified for (a remote name: the credential guard
/// lets credentials go only over TLS).
pub const NAME: &str = "mail.test";
/// The user and password the servers accept.
pub const USER: &str = "me@example.com";
/// The password.
pub const PASSWORD: &str = "hunter2";
/// How long to wait for a server to finish or store.
pub const WAIT: Duration = Duration::from_secs(10);
/// The bound on any single failing operation in the fault scenarios.
pub const FAST: Duration = Duration::from_secs(3);

/// `me@example.com` -> `you@example.org`.
pub fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new(USER).unwrap()),
        [Address::new("you@example.org").unwrap()],
    )
    .unwrap()
}

/// Trusts `pki`, 5 s per stage.
pub fn opts(pki: &TestPki) -> Opts {
    Opts::new().tls(pki.client_config().unwrap())
}

/// A session for [`NAME`] with the password credentials (TLS required).
pub fn config_password() -> Config {
    Config::new(NAME).credentials(Credentials::password(USER, PASSWORD))
}

/// A plaintext session to a loopback server (`TlsPolicy::Disabled`).
pub fn config_plain() -> Config {
    Config::new("localhost").tls(TlsPolicy::Disabled)
}

/// Plaintext options with every stage bounded by `timeout`.
pub fn plain_opts(timeout: Duration) -> Opts {
    Opts::new().timeouts(Timeouts::uniform(timeout))
}

/// Answers an EHLO with `250-mail.test` and `extensions`.
pub fn ehlo(peer: &mut Peer, extensions: &[&str]) -> io::Result<()> {
    peer.expect("EHLO ")?;
    peer.reply(&ehlo_reply(extensions))
}

/// The text of an EHLO reply for [`Peer::reply`].
pub fn ehlo_reply(extensions: &[&str]) -> String {
    let mut lines = vec![NAME];
    lines.extend_from_slice(extensions);
    let last = lines.len() - 1;
    let reply: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
        .collect();
    reply.join("\n")
}

/// Reads (and records) whatever the client sends until it closes the
/// connection or `limit` passes. Never an error.
pub fn until_eof(peer: &mut Peer, limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    let _ = peer.set_read_timeout(Some(limit));
    while Instant::now() < deadline {
        match peer.line() {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// The commands (CRLF-separated lines) the client sent in `bytes`.
pub fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The verbs (first word, upper case) of the commands in `bytes`.
pub fn verbs(bytes: &[u8]) -> Vec<String> {
    lines(bytes)
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default().to_ascii_uppercase())
        .collect()
}

/// Asserts that no credential or envelope went out on this connection:
/// no AUTH, MAIL, RCPT or DATA and no password, in either phase.
pub fn assert_nothing_sensitive(received: &Received) {
    for phase in [&received.plain, &received.tls] {
        let text = String::from_utf8_lossy(phase);
        for verb in verbs(phase) {
            assert!(
                !matches!(verb.as_str(), "AUTH" | "MAIL" | "RCPT" | "DATA"),
                "{verb} was sent: {text:?}"
            );
        }
        assert!(!text.contains(PASSWORD), "{text:?}");
        // base64 of the password, as LOGIN or PLAIN would carry it.
        assert!(!text.contains("aHVudGVyMg"), "{text:?}");
    }
}

/// Waits for connection `i` of `server` to finish; its transcript.
pub fn finished(server: &ScriptedServer, n: usize) -> Vec<Received> {
    assert!(
        server.wait_finished(n, WAIT),
        "server handlers did not finish"
    );
    server.received()
}

/// Runs `f` (an operation expected to fail) and checks it took less than
/// [`FAST`]: a typed error, never a hang.
pub fn quickly<T>(what: &str, f: impl FnOnce() -> Result<T, AdapterError>) -> AdapterError {
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    let Err(err) = result else {
        panic!("{what}: expected an error");
    };
    assert!(took < FAST, "{what}: took {took:?} ({})", err.message);
    err
}

/// Connects, expecting failure.
pub fn connect_err(
    adapter: &dyn crate::harness::Adapter,
    server: &ScriptedServer,
    config: Config,
    opts: &Opts,
) -> AdapterError {
    match adapter.connect(server.addr(), config, opts) {
        Ok(_) => panic!("{}: connect succeeded", adapter.name()),
        Err(e) => e,
    }
}

/// Connects, expecting success.
pub fn connect_ok(
    adapter: &dyn crate::harness::Adapter,
    server: &ScriptedServer,
    config: Config,
    opts: &Opts,
) -> Box<dyn Conn> {
    match adapter.connect(server.addr(), config, opts) {
        Ok(c) => c,
        Err(e) => panic!("{}: connect failed: {e:?}", adapter.name()),
    }
}
