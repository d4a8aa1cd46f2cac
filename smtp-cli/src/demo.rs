//! `smtp-send demo`: the whole path against an in-process,
//! Exchange-Online-like loopback server.
//!
//! The server ([`smtp_tests::exchange_online`]) requires STARTTLS, offers
//! `AUTH LOGIN XOAUTH2` only over TLS and prompts `Username:`/`Password:`.
//! Its certificate is a throwaway [`TestPki`] leaf for `smtp.demo.invalid`,
//! a name that is not loopback, so the credential guard really requires TLS;
//! only that CA is trusted, and only for this run. The socket goes to the
//! server's loopback address while TLS checks the demo name (like
//! `--connect`). The demo user's password is made up in the process and
//! never printed; the transcript shows it as `<redacted>`.

use crate::plan::{Data, Plan};
use crate::report::{Failure, Kind, Report};
use crate::run::{run, Finished, Output};
use smtp_blocking::smtp_proto::EhloName;
use smtp_blocking::tls::{client_config, TlsRoots};
use smtp_blocking::{Address, Credentials, Envelope, Options, Timeouts, TlsPolicy};
use smtp_tests::{exchange_online, ExchangeOptions, ScriptedServer, TestPki};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name the demo server's certificate is for (not a loopback name).
pub const DEMO_SERVER: &str = "smtp.demo.invalid";
/// The demo user.
pub const DEMO_USER: &str = "demo@smtp.demo.invalid";
/// The recipient the server accepts.
pub const DEMO_ACCEPTED: &str = "alice@example.com";
/// The recipient the server refuses (its local part starts with `reject`).
pub const DEMO_REFUSED: &str = "reject-bob@example.com";

/// What the demo produced, besides what it printed.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The run's report.
    pub report: Report,
    /// The transcript lines (`C: `/`S: `), secrets redacted.
    pub transcript: Vec<String>,
    /// How many messages the server stored.
    pub stored: usize,
}

/// Runs the demo, printing the transcript and the summary on stdout.
pub fn demo() -> Result<DemoOutcome, Failure> {
    let started = Instant::now();
    let setup = |what: &str, err: std::io::Error| {
        Failure::new(Kind::Io, format!("demo setup ({what}): {err}"))
    };
    let pki = TestPki::new().map_err(|e| setup("CA", e))?;
    let cert = pki
        .leaf(&[DEMO_SERVER])
        .map_err(|e| setup("certificate", e))?;
    let server_tls = cert.server_config().map_err(|e| setup("TLS", e))?;
    let password = throwaway_secret();
    let (handler, store) =
        exchange_online(ExchangeOptions::new(server_tls).user(DEMO_USER, &password));
    let server = ScriptedServer::start(handler).map_err(|e| setup("server", e))?;

    let client_tls = client_config(&TlsRoots::Pem(pki.ca_pem().into_bytes()))
        .map_err(|err| crate::report::classify(&err.into()))?;
    // `Address::new` fails with `InvalidInput`, `Envelope::new` with `Error`.
    fn invalid(err: impl Into<smtp_blocking::Error>) -> Failure {
        crate::report::classify(&err.into())
    }
    let envelope = Envelope::new(
        Some(Address::new(DEMO_USER).map_err(invalid)?),
        [
            Address::new(DEMO_ACCEPTED).map_err(invalid)?,
            Address::new(DEMO_REFUSED).map_err(invalid)?,
        ],
    )
    .map_err(invalid)?;
    let body = format!(
        "From: Demo <{DEMO_USER}>\nTo: {DEMO_ACCEPTED}, {DEMO_REFUSED}\nSubject: smtp-send demo\n\n\
         Hello from smtp-send.\n.A line starting with a dot (sent dot-stuffed).\n"
    );
    let plan = Plan {
        server_name: DEMO_SERVER.to_owned(),
        port: 587,
        connect: Some(server.addr()),
        tls: TlsPolicy::Required,
        options: Options::new()
            .tls(client_tls)
            .timeouts(Timeouts::uniform(Duration::from_secs(30)))
            .connect_timeout(Duration::from_secs(30)),
        helo: EhloName::new("localhost").map_err(invalid)?,
        credentials: Some(Credentials::password(DEMO_USER, password)),
        mechanism: None,
        allow_insecure_auth: false,
        envelope,
        data: Data::Memory(Arc::new(body.into_bytes())),
        repeat: 1,
        connections: 1,
        window: smtp_blocking::smtp_proto::DEFAULT_WINDOW,
        hold: crate::plan::HOLD_MAX,
        token_source: None,
    };

    println!(
        "smtp-send demo: an Exchange-Online-like server on {} (STARTTLS required; \
         AUTH LOGIN XOAUTH2 only after TLS),",
        server.addr()
    );
    println!(
        "certificate for {DEMO_SERVER} from a throwaway CA trusted for this run only; \
         user {DEMO_USER}, password made up in-process.\n"
    );
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let hook: smtp_blocking::TranscriptHook = Arc::new(move |line| {
        let line = line.to_string();
        println!("{line}");
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    });
    let Finished { mut report, open } = run(&plan, Some(hook), Output::Summary, None);
    // The demo shows the whole dialogue, QUIT included, before its summary.
    open.quit();
    report.elapsed = started.elapsed();
    let stored = store.messages().len();
    println!();
    print!("{}", report.human());
    println!("server:    stored {stored} message(s)");
    if let Some(error) = report.human_error() {
        println!("{error}");
    }
    let transcript = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(DemoOutcome {
        report,
        transcript,
        stored,
    })
}

/// A random password for the demo user: two std `RandomState` hashes
/// (randomly keyed per process), so no extra dependency.
fn throwaway_secret() -> String {
    let mut out = String::from("demo-");
    for salt in [0x5eed_u64, 0xf00d] {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}
