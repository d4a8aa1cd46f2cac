//! `smtp-send probe`, the built binary, against scripted loopback servers
//! (`smtp-tests`: STARTTLS, implicit TLS, plaintext, the Exchange-like
//! server) and real ones (aiosmtpd, a private Postfix): every field of the
//! JSON object, the human report, the error kinds and exit statuses, and
//! on the server side that nothing but EHLO, STARTTLS, AUTH and QUIT ever
//! arrived.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::{json, Value};
use smtp_blocking::rustls::ServerConfig;
use smtp_tests::{
    exchange_online, Aiosmtpd, AiosmtpdOptions, ExchangeOptions, Peer, Postfix, PostfixOptions,
    ScriptedServer, ServerCert, TestPki,
};
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_smtp-send");
const WAIT: Duration = Duration::from_secs(10);
/// The TLS name the tests' certificates are for (not loopback).
const NAME: &str = "smtp.test.invalid";
const CA_NAME: &str = "CN=smtp-tests throwaway CA";
/// rcgen's default end of validity.
const RCGEN_NOT_AFTER: &str = "4096-01-01T00:00:00Z";
const RCGEN_NOT_AFTER_UNIX: i64 = 67_090_118_400;

// ---- running the binary --------------------------------------------------

struct Out {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", self.stdout))
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.arg("probe")
        .args(args)
        .env_remove("SMTP_PASSWORD")
        .env_remove("SMTP_OAUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Out {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp_file(contents: &[u8]) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "smtp-cli-probe-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

/// `--server NAME:port --connect addr --ca-file ca --timeout 10 --json`.
fn args(addr: std::net::SocketAddr, name: &str, ca: Option<&PathBuf>) -> Vec<String> {
    let mut args: Vec<String> = [
        "--server",
        &format!("{name}:{}", addr.port()),
        "--connect",
        &addr.to_string(),
        "--timeout",
        "10",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(ca) = ca {
        args.extend(["--ca-file".to_owned(), ca.display().to_string()]);
    }
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---- a scripted server ---------------------------------------------------

/// A small server: plaintext, STARTTLS (offered when `tls` is set and not
/// implicit) or implicit TLS. It answers every other command `250`, so a
/// probe that sent MAIL would not be stopped by it: the commands it
/// received are checked instead.
#[derive(Clone)]
struct Script {
    ehlo: Vec<&'static str>,
    ehlo_tls: Vec<&'static str>,
    tls: Option<Arc<ServerConfig>>,
    implicit: bool,
    auth_reply: &'static str,
}

fn script(cert: Option<&ServerCert>) -> Script {
    Script {
        ehlo: vec!["PIPELINING", "SIZE 35882577", "STARTTLS", "8BITMIME"],
        ehlo_tls: vec![
            "PIPELINING",
            "SIZE 35882577",
            "AUTH PLAIN LOGIN",
            "8BITMIME",
        ],
        tls: cert.map(|c| c.server_config().unwrap()),
        implicit: false,
        auth_reply: "235 2.7.0 ok",
    }
}

fn start(s: Script) -> ScriptedServer {
    ScriptedServer::start_fn(move |peer| serve(&s, peer)).unwrap()
}

fn serve(s: &Script, peer: &mut Peer) -> io::Result<()> {
    if s.implicit {
        peer.implicit_tls(s.tls.clone().unwrap())?;
    }
    peer.reply("220 mail.test ESMTP ready")?;
    loop {
        let line = match peer.line() {
            Ok(line) => line,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&line).to_ascii_uppercase();
        match text.split(' ').next().unwrap_or("") {
            "EHLO" => {
                let ext = if peer.is_tls() { &s.ehlo_tls } else { &s.ehlo };
                let mut lines = vec!["mail.test greets you"];
                lines.extend(ext.iter().copied());
                let last = lines.len() - 1;
                let reply: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                peer.reply(&reply.join("\n"))?;
            }
            "STARTTLS" => {
                peer.reply("220 2.0.0 go ahead")?;
                peer.start_tls(s.tls.clone().unwrap())?;
            }
            "AUTH" => peer.reply(s.auth_reply)?,
            "QUIT" => {
                peer.reply("221 bye")?;
                return Ok(());
            }
            _ => peer.reply("250 ok")?,
        }
    }
}

/// The SMTP verbs of every line connection 0's client sent, plaintext then
/// TLS. Any other line must be an AUTH continuation (base64, or `*`).
fn commands(server: &ScriptedServer) -> Vec<String> {
    const VERBS: [&str; 13] = [
        "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT",
        "VRFY", "EXPN",
    ];
    assert!(server.wait_finished(1, WAIT));
    let received = server.transcript(0).unwrap();
    let text = format!("{}{}", received.plain_text(), received.tls_text());
    let mut verbs = Vec::new();
    for line in text.split_terminator("\r\n") {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        if VERBS.contains(&verb.as_str()) {
            verbs.push(verb);
        } else {
            assert!(
                line == "*"
                    || (!line.is_empty()
                        && line
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))),
                "not a command nor an AUTH continuation: {line:?}"
            );
        }
    }
    verbs
}

fn pki_and_ca() -> (TestPki, PathBuf) {
    let pki = TestPki::new().unwrap();
    let ca = temp_file(pki.ca_pem().as_bytes());
    (pki, ca)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The certificate object of a TestPki leaf for `name`.
fn leaf_certificate(json: &Value, name: &str, verified: bool) {
    let cert = &json["tls"]["certificate"];
    let days = cert["days_left"].as_i64().unwrap();
    let want = (RCGEN_NOT_AFTER_UNIX - now_unix()).div_euclid(86_400);
    assert!((want - 1..=want).contains(&days), "{days} vs {want}");
    assert_eq!(
        cert,
        &json!({
            "subject": format!("CN={name}"),
            "issuer": CA_NAME,
            "dns_names": [name],
            "not_after": RCGEN_NOT_AFTER,
            "days_left": days,
            "verified": verified,
        })
    );
}

/// The names rustls gives the ring provider's suites.
fn suite_names() -> Vec<&'static str> {
    smtp_tests::certs::provider()
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect()
}

// ---- STARTTLS, implicit TLS, plaintext -------------------------------------

#[test]
fn probe_over_starttls_reports_every_field() {
    let (pki, ca) = pki_and_ca();
    let cert = pki.leaf(&[NAME]).unwrap();
    let server = start(script(Some(&cert)));
    let out = run(&strs(&args(server.addr(), NAME, Some(&ca))), &[]);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches('\n').count(), 1, "one line");
    assert_eq!(out.stderr, "");
    let json = out.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["server"], NAME);
    assert_eq!(json["port"], server.port());
    assert_eq!(
        json["greeting"],
        json!({"code": 220, "text": "mail.test ESMTP ready"})
    );
    assert_eq!(
        json["ehlo"],
        json!({
            "before_tls": ["PIPELINING", "SIZE 35882577", "STARTTLS", "8BITMIME"],
            "after_tls": ["PIPELINING", "SIZE 35882577", "AUTH PLAIN LOGIN", "8BITMIME"],
        })
    );
    let tls = &json["tls"];
    assert_eq!(tls["mode"], "starttls");
    assert_eq!(tls["version"], "TLSv1.3");
    let cipher = tls["cipher"].as_str().unwrap();
    assert!(
        cipher.starts_with("TLS13_") && suite_names().contains(&cipher),
        "{cipher}"
    );
    leaf_certificate(&json, NAME, true);
    assert_eq!(json["auth"], Value::Null);
    assert!(json["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(json["error"], Value::Null);
    assert_eq!(
        json.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "auth",
            "ehlo",
            "elapsed_ms",
            "error",
            "greeting",
            "ok",
            "port",
            "server",
            "tls"
        ]
    );
    assert_eq!(commands(&server), ["EHLO", "STARTTLS", "EHLO", "QUIT"]);
}

#[test]
fn probe_over_implicit_tls_with_tls_1_2() {
    let (pki, ca) = pki_and_ca();
    let cert = pki.leaf(&[NAME]).unwrap();
    let tls12 = ServerConfig::builder_with_provider(smtp_tests::certs::provider())
        .with_protocol_versions(&[&smtp_blocking::rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .unwrap();
    let server = start(Script {
        tls: Some(Arc::new(tls12)),
        implicit: true,
        ..script(None)
    });
    let mut args = args(server.addr(), NAME, Some(&ca));
    args.extend(["--tls".into(), "implicit".into()]);
    let out = run(&strs(&args), &[]);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["greeting"]["code"], 220);
    assert_eq!(
        json["ehlo"],
        json!({
            "before_tls": null,
            "after_tls": ["PIPELINING", "SIZE 35882577", "AUTH PLAIN LOGIN", "8BITMIME"],
        })
    );
    assert_eq!(json["tls"]["mode"], "implicit");
    assert_eq!(json["tls"]["version"], "TLSv1.2");
    let cipher = json["tls"]["cipher"].as_str().unwrap();
    assert!(
        cipher.starts_with("TLS_ECDHE_") && suite_names().contains(&cipher),
        "{cipher}"
    );
    leaf_certificate(&json, NAME, true);
    assert_eq!(commands(&server), ["EHLO", "QUIT"]);
    assert!(server.transcript(0).unwrap().plain.is_empty());
}

#[test]
fn probe_in_plaintext() {
    let server = start(Script {
        ehlo: vec!["PIPELINING", "AUTH PLAIN"],
        ..script(None)
    });
    let mut args = args(server.addr(), "127.0.0.1", None);
    args.extend(["--tls".into(), "none".into()]);
    let out = run(&strs(&args), &[]);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(
        json,
        json!({
            "ok": true, "server": "127.0.0.1", "port": server.port(),
            "greeting": {"code": 220, "text": "mail.test ESMTP ready"},
            "ehlo": {"before_tls": ["PIPELINING", "AUTH PLAIN"], "after_tls": null},
            "tls": null, "auth": null,
            "elapsed_ms": json["elapsed_ms"], "error": null,
        })
    );
    assert!(json["elapsed_ms"].is_f64());
    assert_eq!(commands(&server), ["EHLO", "QUIT"]);
}

#[test]
fn opportunistic_without_starttls_probes_in_plaintext() {
    let server = start(Script {
        ehlo: vec!["8BITMIME"],
        ..script(None)
    });
    let mut args = args(server.addr(), NAME, None);
    args.extend(["--tls".into(), "opportunistic".into()]);
    let json = run(&strs(&args), &[]).json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["tls"], Value::Null);
    assert_eq!(
        json["ehlo"],
        json!({"before_tls": ["8BITMIME"], "after_tls": null})
    );
}

#[test]
fn human_output_is_a_short_report() {
    let (pki, ca) = pki_and_ca();
    let cert = pki.leaf(&[NAME]).unwrap();
    let server = start(script(Some(&cert)));
    let mut args = args(server.addr(), NAME, Some(&ca));
    args.retain(|a| a != "--json");
    args.extend(["--user".into(), "me@example.com".into()]);
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")]);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stderr, "");
    for want in [
        format!("server:      {NAME} port {}", server.port()),
        "greeting:    220 mail.test ESMTP ready".into(),
        "EHLO:        PIPELINING, SIZE 35882577, STARTTLS, 8BITMIME".into(),
        "TLS:         starttls, TLSv1.3, TLS13_".into(),
        format!("certificate: CN={NAME}"),
        format!("  issuer:    {CA_NAME}"),
        format!("  DNS names: {NAME}"),
        format!("  expires:   {RCGEN_NOT_AFTER} ("),
        "  verified:  yes".into(),
        "EHLO (TLS):  PIPELINING, SIZE 35882577, AUTH PLAIN LOGIN, 8BITMIME".into(),
        "AUTH:        PLAIN accepted (235); offered: PLAIN, LOGIN".into(),
        "elapsed:     ".into(),
    ] {
        assert!(out.stdout.contains(&want), "{want:?} in\n{}", out.stdout);
    }
    assert_eq!(
        commands(&server),
        ["EHLO", "STARTTLS", "EHLO", "AUTH", "QUIT"]
    );
}

// ---- certificates ----------------------------------------------------------

#[test]
fn a_certificate_for_another_name_fails_with_tls_and_is_still_reported() {
    let (pki, ca) = pki_and_ca();
    let cert = pki.leaf(&["other.test.invalid"]).unwrap();
    let server = start(script(Some(&cert)));
    let mut a = args(server.addr(), NAME, Some(&ca));
    a.extend(["--user".into(), "me@example.com".into()]);
    let out = run(&strs(&a), &[("SMTP_PASSWORD", "s3cret-pw")]);
    assert_eq!(out.status, 1, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["kind"], "tls");
    assert_eq!(json["error"]["code"], Value::Null);
    assert_eq!(json["greeting"]["code"], 220);
    assert_eq!(
        json["ehlo"],
        json!({
            "before_tls": ["PIPELINING", "SIZE 35882577", "STARTTLS", "8BITMIME"],
            "after_tls": null,
        })
    );
    let tls = &json["tls"];
    assert_eq!(tls["mode"], "starttls");
    assert_eq!(tls["version"], Value::Null);
    assert_eq!(tls["cipher"], Value::Null);
    leaf_certificate(&json, "other.test.invalid", false);
    assert_eq!(
        json["auth"],
        json!({"offered": [], "mechanism": null, "result": "not_attempted", "code": null})
    );
    // Nothing over TLS, no credential anywhere.
    assert_eq!(commands(&server), ["EHLO", "STARTTLS"]);
    assert!(!server.transcript(0).unwrap().plain_text().contains("AUTH"));

    // The human report shows the certificate too, and the error.
    let server = start(script(Some(&cert)));
    let mut human = args(server.addr(), NAME, Some(&ca));
    human.retain(|a| a != "--json");
    human.extend(["--user".into(), "me@example.com".into()]);
    let out = run(&strs(&human), &[("SMTP_PASSWORD", "s3cret-pw")]);
    assert_eq!(out.status, 1);
    for want in [
        "TLS:         starttls (handshake failed)",
        "certificate: CN=other.test.invalid",
        "  DNS names: other.test.invalid",
        "  verified:  NO",
        "AUTH:        not attempted; offered: (none)",
    ] {
        assert!(out.stdout.contains(want), "{want:?} in\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("EHLO (TLS)"), "{}", out.stdout);
    assert!(out.stderr.starts_with("error: tls: "), "{}", out.stderr);
}

#[test]
fn an_expired_or_untrusted_certificate_is_reported_unverified() {
    let (pki, ca) = pki_and_ca();
    let expired = pki.expired_leaf(&[NAME]).unwrap();
    let server = start(script(Some(&expired)));
    let json = run(&strs(&args(server.addr(), NAME, Some(&ca))), &[]).json();
    assert_eq!(json["error"]["kind"], "tls");
    let cert = &json["tls"]["certificate"];
    assert_eq!(cert["not_after"], "2001-01-01T00:00:00Z");
    assert_eq!(cert["verified"], false);
    let want = (978_307_200 - now_unix()).div_euclid(86_400);
    let days = cert["days_left"].as_i64().unwrap();
    assert!(days < 0 && (want - 1..=want).contains(&days), "{days}");
    let server = start(script(Some(&expired)));
    let mut human = args(server.addr(), NAME, Some(&ca));
    human.retain(|a| a != "--json");
    let out = run(&strs(&human), &[]);
    assert_eq!(out.status, 1);
    let line = format!("  expired:   2001-01-01T00:00:00Z ({} days ago)", -days);
    assert!(out.stdout.contains(&line), "{line:?} in\n{}", out.stdout);

    // Signed by a CA the probe does not trust (the built-in roots).
    let cert = pki.leaf(&[NAME]).unwrap();
    let server = start(script(Some(&cert)));
    let out = run(&strs(&args(server.addr(), NAME, None)), &[]);
    let json = out.json();
    assert_eq!(out.status, 1);
    assert_eq!(json["error"]["kind"], "tls");
    assert_eq!(json["tls"]["certificate"]["verified"], false);
    assert_eq!(json["tls"]["certificate"]["subject"], format!("CN={NAME}"));
}

// ---- authentication -------------------------------------------------------

const USER: &str = "me@example.com";
const PASSWORD: &str = "right-pw-123";

fn exchange(pki: &TestPki) -> ScriptedServer {
    let cert = pki.leaf(&[NAME]).unwrap();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).user(USER, PASSWORD);
    let (handler, _store) = exchange_online(opts);
    ScriptedServer::start(handler).unwrap()
}

#[test]
fn auth_accepted_and_refused() {
    let (pki, ca) = pki_and_ca();
    for (password, status) in [(PASSWORD, 0), ("wrong-pw", 1)] {
        let server = exchange(&pki);
        let mut args = args(server.addr(), NAME, Some(&ca));
        args.extend(["--user".into(), USER.into(), "--transcript".into()]);
        let out = run(&strs(&args), &[("SMTP_PASSWORD", password)]);
        assert_eq!(out.status, status, "{} {}", out.stdout, out.stderr);
        let json = out.json();
        let accepted = status == 0;
        assert_eq!(json["ok"], accepted);
        assert_eq!(
            json["auth"],
            json!({
                "offered": ["LOGIN", "XOAUTH2"],
                "mechanism": "LOGIN",
                "result": if accepted { "accepted" } else { "rejected" },
                "code": if accepted { 235 } else { 535 },
            })
        );
        if accepted {
            assert_eq!(json["error"], Value::Null);
        } else {
            assert_eq!(json["error"]["kind"], "auth_rejected");
            assert_eq!(json["error"]["code"], 535);
        }
        assert_eq!(json["tls"]["certificate"]["verified"], true);
        assert!(json["ehlo"]["after_tls"]
            .as_array()
            .unwrap()
            .contains(&json!("AUTH LOGIN XOAUTH2")));
        // The transcript redacts the secret.
        assert!(out.stderr.contains("<redacted>"), "{}", out.stderr);
        assert!(!out.stderr.contains(password) && !out.stdout.contains(password));
        let mut want = vec!["EHLO", "STARTTLS", "EHLO", "AUTH"];
        // After a refusal the session's own QUIT.
        want.push("QUIT");
        assert_eq!(commands(&server), want);
    }
}

#[test]
fn auth_not_attempted_when_the_guard_refuses_or_no_mechanism_fits() {
    // Plaintext to a name that is not loopback: the guard, no AUTH line.
    let server = start(Script {
        ehlo: vec!["AUTH PLAIN LOGIN"],
        ..script(None)
    });
    let mut a = args(server.addr(), NAME, None);
    a.extend(["--tls".into(), "none".into(), "--user".into(), USER.into()]);
    let out = run(&strs(&a), &[("SMTP_PASSWORD", "pw")]);
    assert_eq!(out.status, 1);
    let json = out.json();
    assert_eq!(json["error"]["kind"], "insecure_auth");
    assert_eq!(
        json["auth"],
        json!({"offered": ["PLAIN", "LOGIN"], "mechanism": null, "result": "not_attempted", "code": null})
    );
    assert_eq!(commands(&server), ["EHLO", "QUIT"]);

    // Over TLS, only a mechanism the secret cannot serve.
    let (pki, ca) = pki_and_ca();
    let cert = pki.leaf(&[NAME]).unwrap();
    let server = start(Script {
        ehlo_tls: vec!["AUTH XOAUTH2"],
        ..script(Some(&cert))
    });
    let mut a = args(server.addr(), NAME, Some(&ca));
    a.extend([
        "--user".into(),
        USER.into(),
        "--auth".into(),
        "login".into(),
    ]);
    let out = run(&strs(&a), &[("SMTP_PASSWORD", "pw")]);
    assert_eq!(out.status, 1);
    let json = out.json();
    assert_eq!(json["error"]["kind"], "auth_unavailable");
    assert_eq!(json["auth"]["offered"], json!(["XOAUTH2"]));
    assert_eq!(json["auth"]["result"], "not_attempted");
    assert_eq!(commands(&server), ["EHLO", "STARTTLS", "EHLO", "QUIT"]);
}

// ---- failures before anything is learnt -------------------------------------

#[test]
fn usage_errors_exit_2_with_a_probe_object() {
    for (argv, mentions) in [
        (&["--json"][..], None),
        (&["--server", "mail.test", "--data", "x", "--json"], None),
        (
            &["--server", "mail.test", "--tls", "sometimes", "--json"],
            None,
        ),
        (
            &["--server", "mail.test", "--user", "u", "--json"],
            Some("SMTP_PASSWORD"),
        ),
        (
            &["--server", "mail.test", "--auth", "login", "--json"],
            Some("--auth needs --user"),
        ),
        (
            &["--server", "mail.test", "--timeout", "0", "--json"],
            Some("--timeout"),
        ),
        (&["--server", "mail.test:x", "--json"], Some("--server")),
        (
            &[
                "--server",
                "mail.test",
                "--ca-file",
                "/nonexistent/ca.pem",
                "--json",
            ],
            Some("--ca-file"),
        ),
    ] {
        let out = run(argv, &[]);
        assert_eq!(out.status, 2, "{argv:?}: {} {}", out.stdout, out.stderr);
        let json = out.json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["error"]["kind"], "usage", "{argv:?}");
        if let Some(mentions) = mentions {
            let message = json["error"]["message"].as_str().unwrap();
            assert!(message.contains(mentions), "{argv:?}: {message}");
        }
        for field in ["greeting", "tls", "auth"] {
            assert_eq!(json[field], Value::Null);
        }
        assert_eq!(json["ehlo"], json!({"before_tls": null, "after_tls": null}));
    }
    // Without --json: only the error, on stderr.
    let out = run(&["--server", "mail.test", "--user", "u"], &[]);
    assert_eq!(out.status, 2);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.starts_with("error: usage: "), "{}", out.stderr);
}

#[test]
fn connect_failure_is_connect() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(&strs(&args(closed, NAME, None)), &[]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    let json = out.json();
    assert_eq!(json["error"]["kind"], "connect");
    assert_eq!(json["server"], NAME);
    assert_eq!(json["port"], closed.port());
    assert_eq!(json["greeting"], Value::Null);
    assert_eq!(json["tls"], Value::Null);
}

#[test]
fn missing_starttls_is_tls_required_with_what_was_offered() {
    let server = start(Script {
        ehlo: vec!["PIPELINING", "AUTH PLAIN"],
        ..script(None)
    });
    let mut a = args(server.addr(), NAME, None);
    a.extend(["--user".into(), USER.into()]);
    let out = run(&strs(&a), &[("SMTP_PASSWORD", "pw")]);
    assert_eq!(out.status, 1);
    let json = out.json();
    assert_eq!(json["error"]["kind"], "tls_required");
    assert_eq!(
        json["ehlo"],
        json!({"before_tls": ["PIPELINING", "AUTH PLAIN"], "after_tls": null})
    );
    assert_eq!(json["tls"], Value::Null);
    // PLAIN was offered in plaintext only: not on a session that would
    // authenticate under --tls required.
    assert_eq!(
        json["auth"],
        json!({"offered": [], "mechanism": null, "result": "not_attempted", "code": null})
    );
    assert_eq!(commands(&server), ["EHLO", "QUIT"]);
}

// ---- real servers -----------------------------------------------------------

#[test]
fn real_aiosmtpd_auth_accepted_and_refused() {
    let (pki, ca) = pki_and_ca();
    for (password, status) in [(PASSWORD, 0), ("wrong-pw", 1)] {
        let cert = pki.leaf(&["localhost"]).unwrap();
        let server = Aiosmtpd::start(&AiosmtpdOptions::new(cert, USER, PASSWORD)).unwrap();
        let mut a = args(server.addr(), "localhost", Some(&ca));
        a.extend(["--user".into(), USER.into()]);
        let out = run(&strs(&a), &[("SMTP_PASSWORD", password)]);
        assert_eq!(
            out.status,
            status,
            "{} {}\n{}",
            out.stdout,
            out.stderr,
            server.log()
        );
        let json = out.json();
        assert_eq!(json["greeting"]["code"], 220);
        let before = json["ehlo"]["before_tls"].as_array().unwrap();
        assert!(before.contains(&json!("STARTTLS")), "{json}");
        let after = json["ehlo"]["after_tls"].as_array().unwrap();
        assert!(!after.contains(&json!("STARTTLS")), "{json}");
        assert_eq!(json["tls"]["mode"], "starttls");
        assert_eq!(json["tls"]["certificate"]["subject"], "CN=localhost");
        assert_eq!(json["tls"]["certificate"]["verified"], true);
        let auth = &json["auth"];
        assert_eq!(auth["mechanism"], "LOGIN", "{json}\n{}", out.stderr);
        if status == 0 {
            assert_eq!(auth["result"], "accepted");
            assert_eq!(auth["code"], 235);
        } else {
            assert_eq!(auth["result"], "rejected");
            assert_eq!(auth["code"], 535);
            assert_eq!(json["error"]["kind"], "auth_rejected");
        }
        // aiosmtpd stored nothing.
        assert!(server.messages().unwrap().is_empty());
    }
}

#[test]
fn real_postfix_sees_only_ehlo_starttls_and_quit() {
    let (pki, ca) = pki_and_ca();
    let cert = pki.leaf(&[NAME]).unwrap();
    let server = Postfix::start(&PostfixOptions {
        cert: Some(cert),
        ..PostfixOptions::default()
    })
    .unwrap();
    let out = run(&strs(&args(server.addr(), NAME, Some(&ca))), &[]);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["greeting"]["code"], 220);
    let before: Vec<&str> = json["ehlo"]["before_tls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        before.contains(&"STARTTLS") && before.contains(&"CHUNKING"),
        "{before:?}"
    );
    let after = json["ehlo"]["after_tls"].as_array().unwrap();
    assert!(!after.contains(&json!("STARTTLS")) && after.contains(&json!("CHUNKING")));
    assert_eq!(json["tls"]["mode"], "starttls");
    assert!(matches!(
        json["tls"]["version"].as_str(),
        Some("TLSv1.2" | "TLSv1.3")
    ));
    leaf_certificate(&json, NAME, true);
    // smtpd's own count of the session's commands.
    let sessions = server.wait_for_sessions(1, WAIT).unwrap();
    let counts = &sessions[0];
    assert_eq!(
        counts.get("ehlo").map(String::as_str),
        Some("2"),
        "{counts:?}"
    );
    assert_eq!(counts.get("starttls").map(String::as_str), Some("1"));
    assert_eq!(counts.get("quit").map(String::as_str), Some("1"));
    assert_eq!(
        counts.get("commands").map(String::as_str),
        Some("4"),
        "{counts:?}"
    );
}
