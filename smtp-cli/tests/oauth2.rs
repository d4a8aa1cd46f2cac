//! `smtp-send` with `--oauth2-token-url`/`--oauth2-tenant` against a real
//! OAuth2 server (oauth2-mock-server, `bash tests/setup.sh`) and the
//! Exchange-Online-like server: the token fetched before connecting, sent
//! with XOAUTH2, `token_source` in `--json`, the error kind `oauth2`, the
//! endpoint guard, and secrets never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use smtp_tests::peers::free_port;
use smtp_tests::{
    exchange_online, ExchangeOptions, MailStore, OAuth2Mock, OAuth2MockOptions, ScriptedServer,
    TestPki,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_smtp-send");
/// The TLS name of the SMTP server's certificate (not loopback).
const NAME: &str = "smtp.test.invalid";
const USER: &str = "sender@contoso.test";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_SECRET: &str = "cs~Very.Secret-Client_Value";
const REFRESH_TOKEN: &str = "rt-Very-Secret-Refresh-Token";

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

    fn error(&self) -> (String, String) {
        let json = self.json();
        let error = &json["error"];
        assert!(error.is_object(), "no error in {json}");
        (
            error["kind"].as_str().unwrap().to_owned(),
            error["message"].as_str().unwrap().to_owned(),
        )
    }

    /// Neither stdout nor stderr holds any of `secrets`.
    fn assert_hides(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "{secret} printed:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }
}

fn run(args: &[String], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SMTP_PASSWORD")
        .env_remove("SMTP_OAUTH_TOKEN")
        .env_remove("SMTP_OAUTH_CLIENT_SECRET")
        .env_remove("SMTP_OAUTH_REFRESH_TOKEN")
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
        "smtp-cli-oauth2-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

/// An Exchange-like server (STARTTLS with a certificate from `pki` for
/// NAME) that accepts any XOAUTH2 bearer token and records the tokens it
/// was given.
struct Smtp {
    server: ScriptedServer,
    store: MailStore,
    tokens: Arc<Mutex<Vec<String>>>,
}

fn exchange(pki: &TestPki) -> Smtp {
    let cert = pki.leaf(&[NAME]).unwrap();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).verify_token(move |user, t| {
        seen.lock().unwrap().push(t.to_owned());
        user == USER
    });
    let (handler, store) = exchange_online(opts);
    Smtp {
        server: ScriptedServer::start(handler).unwrap(),
        store,
        tokens,
    }
}

/// Sending to `smtp` with the token from `token_url`; `--json`.
fn args(smtp: &Smtp, ca: &Path, token_url: &str) -> Vec<String> {
    [
        "--server",
        &format!("{NAME}:587"),
        "--connect",
        &smtp.server.addr().to_string(),
        "--ca-file",
        ca.to_str().unwrap(),
        "--from",
        USER,
        "--to",
        "you@example.org",
        "--user",
        USER,
        "--timeout",
        "10",
        "--oauth2-token-url",
        token_url,
        "--oauth2-client-id",
        CLIENT_ID,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn setup() -> (TestPki, PathBuf) {
    let pki = TestPki::new().unwrap();
    let ca = temp_file(pki.ca_pem().as_bytes());
    (pki, ca)
}

#[test]
fn client_credentials_end_to_end_token_fetched_and_sent_with_xoauth2() {
    let (pki, ca) = setup();
    let mock = OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap();
    let smtp = exchange(&pki);
    let mut args = args(&smtp, &ca, &mock.token_url());
    args.push("--transcript".into());
    let out = run(&args, &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["token_source"], "client_credentials");
    assert_eq!(json["auth_mechanism"], "XOAUTH2");
    assert_eq!(json["ok"], true);
    // One token request, the client credentials grant, with the default scope.
    let requests = mock.requests().unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request["grant_type"], "client_credentials");
    assert_eq!(request["client_id"], CLIENT_ID);
    assert_eq!(request["client_secret"], CLIENT_SECRET);
    assert_eq!(request["scope"], "https://outlook.office365.com/.default");
    // The very token the endpoint issued (a JWT) went to the SMTP server.
    let issued = &request["issued_access_token"];
    let jwks = smtp_tests::jwt::Jwks::parse(&mock.jwks().unwrap()).unwrap();
    let claims = jwks.verify(issued).unwrap();
    assert_eq!(claims["scope"], "https://outlook.office365.com/.default");
    assert_eq!(*smtp.tokens.lock().unwrap(), vec![issued.clone()]);
    let messages = smtp.store.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].auth, Some(("XOAUTH2".into(), USER.into())));
    // Neither the token nor the client secret in the output or transcript.
    assert!(out.stderr.contains("AUTH XOAUTH2"), "{}", out.stderr);
    out.assert_hides(&[CLIENT_SECRET, issued]);
}

#[test]
fn refresh_token_grant_end_to_end() {
    let (pki, ca) = setup();
    let mock = OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap();
    let smtp = exchange(&pki);
    let mut args = args(&smtp, &ca, &mock.token_url());
    args.extend([
        "--oauth2-scope".into(),
        "https://outlook.office.com/SMTP.Send offline_access".into(),
        "--auth".into(),
        "xoauth2".into(),
        "--transcript".into(),
    ]);
    let out = run(&args, &[("SMTP_OAUTH_REFRESH_TOKEN", REFRESH_TOKEN)]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["token_source"], "refresh_token");
    let requests = mock.requests().unwrap();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["grant_type"], "refresh_token");
    assert_eq!(requests[0]["refresh_token"], REFRESH_TOKEN);
    assert_eq!(
        requests[0]["scope"],
        "https://outlook.office.com/SMTP.Send offline_access"
    );
    assert!(!requests[0].contains_key("client_secret"));
    let issued = &requests[0]["issued_access_token"];
    assert_eq!(*smtp.tokens.lock().unwrap(), vec![issued.clone()]);
    let rotated = &requests[0]["issued_refresh_token"];
    out.assert_hides(&[REFRESH_TOKEN, issued, rotated]);
}

#[test]
fn ca_file_applies_to_an_https_token_endpoint() {
    let (pki, ca) = setup();
    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        cert: Some(pki.leaf(&["localhost"]).unwrap()),
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    assert!(mock.token_url().starts_with("https://localhost:"));
    let smtp = exchange(&pki);
    let args = args(&smtp, &ca, &mock.token_url());
    let out = run(&args, &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["token_source"], "client_credentials");
    assert_eq!(mock.requests().unwrap().len(), 1);

    // Another CA: the endpoint's certificate is not trusted, no token.
    let other = temp_file(TestPki::new().unwrap().ca_pem().as_bytes());
    let mut args = args.clone();
    let i = args.iter().position(|a| a == "--ca-file").unwrap();
    args[i + 1] = other.to_str().unwrap().to_owned();
    let out = run(&args, &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert_eq!(out.error().0, "oauth2");
    assert_eq!(mock.requests().unwrap().len(), 1);
    assert_eq!(smtp.server.connections(), 1);
}

#[test]
fn endpoint_down_is_oauth2_and_no_smtp_auth_is_attempted() {
    let (pki, ca) = setup();
    let smtp = exchange(&pki);
    // Nothing listens there.
    let url = format!("http://127.0.0.1:{}/token", free_port().unwrap());
    let out = run(
        &args(&smtp, &ca, &url),
        &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
    );
    assert_eq!(out.status, 1, "{}\n{}", out.stdout, out.stderr);
    let (kind, message) = out.error();
    assert_eq!(kind, "oauth2");
    assert!(message.contains(&url), "{message}");
    assert_eq!(out.json()["token_source"], Value::Null);
    // The token comes first: the SMTP server was not even connected to.
    assert!(smtp.store.auth_attempts().is_empty());
    assert_eq!(smtp.server.connections(), 0);
    out.assert_hides(&[CLIENT_SECRET]);

    // The same in human output: `error: oauth2: ...` on stderr, exit 1.
    let mut human = args(&smtp, &ca, &url);
    human.retain(|a| a != "--json");
    let out = run(&human, &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(out.status, 1);
    assert!(out.stderr.starts_with("error: oauth2: "), "{}", out.stderr);
    assert_eq!(smtp.server.connections(), 0);
}

#[test]
fn an_oauth2_error_response_is_in_the_message() {
    let (pki, ca) = setup();
    let description = "AADSTS7000215: Invalid client secret provided.";
    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        error: Some(("invalid_client".into(), description.into())),
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    let smtp = exchange(&pki);
    let out = run(
        &args(&smtp, &ca, &mock.token_url()),
        &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
    );
    assert_eq!(out.status, 1, "{}\n{}", out.stdout, out.stderr);
    let (kind, message) = out.error();
    assert_eq!(kind, "oauth2");
    assert!(message.contains("invalid_client"), "{message}");
    assert!(message.contains(description), "{message}");
    assert_eq!(mock.requests().unwrap().len(), 1);
    assert_eq!(smtp.server.connections(), 0);
    assert!(smtp.store.auth_attempts().is_empty());
    out.assert_hides(&[CLIENT_SECRET]);
}

#[test]
fn an_answer_without_access_token_is_oauth2() {
    let (pki, ca) = setup();
    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        omit_access_token: true,
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    let smtp = exchange(&pki);
    let out = run(
        &args(&smtp, &ca, &mock.token_url()),
        &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
    );
    assert_eq!(out.status, 1, "{}\n{}", out.stdout, out.stderr);
    let (kind, message) = out.error();
    assert_eq!(kind, "oauth2");
    assert!(message.contains("no access_token"), "{message}");
    assert_eq!(mock.requests().unwrap().len(), 1);
    assert_eq!(smtp.server.connections(), 0);
    out.assert_hides(&[CLIENT_SECRET]);
}

#[test]
fn a_token_endpoint_neither_https_nor_loopback_is_a_usage_error() {
    let (pki, ca) = setup();
    let smtp = exchange(&pki);
    for url in [
        "http://login.example.com/token",
        "http://192.0.2.1/token",
        "ftp://127.0.0.1/token",
        "not a url",
    ] {
        let out = run(
            &args(&smtp, &ca, url),
            &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
        );
        assert_eq!(out.status, 2, "{url}: {}", out.stdout);
        assert_eq!(out.error().0, "usage", "{url}");
        out.assert_hides(&[CLIENT_SECRET]);
    }
    assert_eq!(smtp.server.connections(), 0);
}

#[test]
fn oauth2_usage_errors() {
    let (pki, ca) = setup();
    let smtp = exchange(&pki);
    let url = "http://127.0.0.1:9/token";
    let usage = |args: &[String], env: &[(&str, &str)], mentions: &str| {
        let out = run(args, env);
        assert_eq!(out.status, 2, "{}", out.stdout);
        let (kind, message) = out.error();
        assert_eq!(kind, "usage");
        assert!(message.contains(mentions), "{message}");
    };
    // No secret in the environment.
    usage(&args(&smtp, &ca, url), &[], "SMTP_OAUTH_CLIENT_SECRET");
    // No client id.
    let mut no_id = args(&smtp, &ca, url);
    let i = no_id
        .iter()
        .position(|a| a == "--oauth2-client-id")
        .unwrap();
    no_id.drain(i..i + 2);
    usage(
        &no_id,
        &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
        "--oauth2-client-id",
    );
    // A password mechanism with a token.
    let mut login = args(&smtp, &ca, url);
    login.extend(["--auth".into(), "login".into()]);
    usage(
        &login,
        &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)],
        "--auth login",
    );
    // Both endpoints.
    let mut both = args(&smtp, &ca, url);
    both.extend(["--oauth2-tenant".into(), "contoso.onmicrosoft.com".into()]);
    let out = run(&both, &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(out.status, 2);
    assert_eq!(smtp.server.connections(), 0);
}

#[test]
fn token_source_is_env_with_smtp_oauth_token_and_null_without_a_token() {
    let (pki, ca) = setup();
    let smtp = exchange(&pki);
    let mut args = args(&smtp, &ca, "unused");
    let i = args.iter().position(|a| a == "--oauth2-token-url").unwrap();
    args.drain(i..i + 4);
    let out = run(&args, &[("SMTP_OAUTH_TOKEN", "tok-env")]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["token_source"], "env");
    assert_eq!(*smtp.tokens.lock().unwrap(), vec!["tok-env".to_owned()]);
    out.assert_hides(&["tok-env"]);
    // A password: no token.
    let out = run(&args, &[("SMTP_PASSWORD", "pw")]);
    assert_eq!(out.json()["token_source"], Value::Null);
}

#[test]
fn help_and_man_page_list_the_oauth2_flags() {
    let help = run(&["--help".into()], &[]);
    let man = run(&["man".into()], &[]);
    for flag in [
        "--oauth2-token-url",
        "--oauth2-tenant",
        "--oauth2-client-id",
        "--oauth2-scope",
        "SMTP_OAUTH_CLIENT_SECRET",
        "SMTP_OAUTH_REFRESH_TOKEN",
        "https://outlook.office365.com/.default",
    ] {
        assert!(help.stdout.contains(flag), "--help lacks {flag}");
        // roff escapes dashes.
        assert!(
            man.stdout.replace("\\-", "-").contains(flag),
            "the man page lacks {flag}"
        );
    }
}

#[test]
fn oauthbearer_with_a_fetched_token() {
    let mock = OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap();
    let auth_lines = Arc::new(Mutex::new(Vec::new()));
    let record = auth_lines.clone();
    // Plaintext on loopback (credentials allowed there), offering
    // OAUTHBEARER only.
    let server = ScriptedServer::start_fn(move |peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO")?;
        peer.reply("250-mail.test\n250 AUTH OAUTHBEARER")?;
        let auth = peer.expect("AUTH ")?;
        record
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&auth).into_owned());
        peer.reply("235 2.7.0 Authentication successful")?;
        peer.expect("MAIL FROM:")?;
        peer.reply("250 ok")?;
        peer.expect("RCPT TO:")?;
        peer.reply("250 ok")?;
        peer.expect("DATA")?;
        peer.reply("354 go")?;
        peer.read_data()?;
        peer.reply("250 queued")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let args: Vec<String> = [
        "--server",
        &format!("127.0.0.1:{}", server.port()),
        "--tls",
        "none",
        "--from",
        USER,
        "--to",
        "you@example.org",
        "--user",
        USER,
        "--auth",
        "oauthbearer",
        "--timeout",
        "10",
        "--oauth2-token-url",
        &mock.token_url(),
        "--oauth2-client-id",
        CLIENT_ID,
        "--json",
        "--transcript",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(&args, &[("SMTP_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["auth_mechanism"], "OAUTHBEARER");
    assert_eq!(out.json()["token_source"], "client_credentials");
    let issued = mock.requests().unwrap()[0]["issued_access_token"].clone();
    let lines = auth_lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1);
    let payload = lines[0]
        .trim_end()
        .strip_prefix("AUTH OAUTHBEARER ")
        .unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("n,a={USER},\x01auth=Bearer {issued}\x01\x01")
    );
    out.assert_hides(&[CLIENT_SECRET, &issued]);
}
