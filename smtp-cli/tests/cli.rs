//! The built `smtp-send` binary against scripted loopback servers
//! (`smtp-tests`): every exit path and error kind of the contract, the JSON
//! object, and what the server did and did not receive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use smtp_tests::{
    exchange_online, self_signed, ExchangeOptions, Peer, ScriptedServer, ServerCert, TestPki,
};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_smtp-send");
const WAIT: Duration = Duration::from_secs(10);
/// The TLS name the tests' certificates are for (not loopback).
const NAME: &str = "smtp.test.invalid";

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

    /// The error kind and code of the JSON output.
    fn error(&self) -> (String, Option<u64>) {
        let json = self.json();
        let error = &json["error"];
        assert!(error.is_object(), "no error in {json}");
        (
            error["kind"].as_str().unwrap().to_owned(),
            error["code"].as_u64(),
        )
    }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Out {
    let input = if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    run_with(args, env, input, stdin)
}

/// [`run`] with stdin from `input` (`stdin`, if any, is written to it).
fn run_with(args: &[&str], env: &[(&str, &str)], input: Stdio, stdin: Option<&[u8]>) -> Out {
    run_command(Command::new(BIN), args, env, input, stdin)
}

/// [`run_with`] under `ulimit -v` (2 GiB of address space), for a source
/// that never ends: a client that reads it into memory fails rather than
/// take the machine's.
fn run_capped(args: &[&str], env: &[(&str, &str)], input: Stdio) -> Out {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -v 2097152 && exec \"$0\" \"$@\"", BIN]);
    run_command(cmd, args, env, input, None)
}

fn run_command(
    mut cmd: Command,
    args: &[&str],
    env: &[(&str, &str)],
    input: Stdio,
    stdin: Option<&[u8]>,
) -> Out {
    cmd.args(args)
        .env_remove("SMTP_PASSWORD")
        .env_remove("SMTP_OAUTH_TOKEN")
        .env_remove("SMTP_SEND_MAX_BODY")
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A feeder thread: stdout is read meanwhile, and a client that
        // stops reading early (a refused source) does not block the test.
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out = child.wait_with_output().unwrap();
    Out {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp_file(contents: &[u8]) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "smtp-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

const BODY: &[u8] = b"Subject: test\r\n\r\nHello.\r\n";

/// `--server`, `--connect`, `--from`, `--to`, `--data` and `--json` for a
/// server on loopback known as `name`.
fn base(server: &ScriptedServer, name: &str, port: u16, data: &Path) -> Vec<String> {
    [
        "--server",
        &format!("{name}:{port}"),
        "--connect",
        &server.addr().to_string(),
        "--from",
        "me@example.com",
        "--to",
        "you@example.org",
        "--data",
        data.to_str().unwrap(),
        "--timeout",
        "10",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Sets a single-valued flag, replacing its value when already there.
fn set(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_owned(),
        None => args.extend([flag.to_owned(), value.to_owned()]),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---- a scripted server ---------------------------------------------------

/// A small configurable SMTP server: plaintext, STARTTLS or implicit TLS.
#[derive(Clone)]
struct Script {
    greeting: String,
    ehlo: Vec<String>,
    ehlo_tls: Vec<String>,
    cert: Option<ServerCert>,
    implicit: bool,
    starttls_reply: String,
    /// Sent in the same write as the STARTTLS reply (response injection).
    starttls_extra: String,
    auth_reply: String,
    mail_reply: String,
    end_reply: String,
    /// Close the connection when this verb arrives.
    hang_up_on: Option<&'static str>,
    /// Stall before the greeting.
    stall: Option<Duration>,
    /// Never answer QUIT (keep the connection open until the client closes).
    silent_quit: bool,
    /// Wait this long before each RCPT reply.
    slow_rcpt: Option<Duration>,
    /// Read the data, final dot included, then close without a reply.
    hang_up_after_data: bool,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: "220 mail.test ESMTP".into(),
            ehlo: vec!["PIPELINING".into(), "8BITMIME".into()],
            ehlo_tls: vec!["PIPELINING".into(), "8BITMIME".into()],
            cert: None,
            implicit: false,
            starttls_reply: "220 2.0.0 go ahead".into(),
            starttls_extra: String::new(),
            auth_reply: "235 2.7.0 ok".into(),
            mail_reply: "250 2.1.0 ok".into(),
            end_reply: "250 2.0.0 queued".into(),
            hang_up_on: None,
            stall: None,
            silent_quit: false,
            slow_rcpt: None,
            hang_up_after_data: false,
        }
    }
}

/// The bodies the scripted server received (dot-stuffing undone).
type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

fn start(script: Script) -> (ScriptedServer, Bodies) {
    let bodies: Bodies = Arc::default();
    let sink = bodies.clone();
    let server = ScriptedServer::start_fn(move |peer| serve(&script, peer, &sink)).unwrap();
    (server, bodies)
}

fn serve(s: &Script, peer: &mut Peer, bodies: &Bodies) -> io::Result<()> {
    if let Some(stall) = s.stall {
        peer.stall(stall);
        return Ok(());
    }
    if s.implicit {
        peer.implicit_tls(s.cert.as_ref().unwrap().server_config()?)?;
    }
    peer.reply(&s.greeting)?;
    if !s.greeting.starts_with("220") {
        return Ok(());
    }
    let mut accepted = 0;
    loop {
        let line = match peer.line() {
            Ok(line) => line,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let verb = text.split(' ').next().unwrap_or("").to_owned();
        if s.hang_up_on == Some(verb.as_str()) {
            return Ok(());
        }
        match verb.as_str() {
            "EHLO" => {
                let ext = if peer.is_tls() { &s.ehlo_tls } else { &s.ehlo };
                let mut lines = vec!["mail.test".to_owned()];
                if !peer.is_tls() && s.cert.is_some() && !s.implicit {
                    lines.push("STARTTLS".into());
                }
                lines.extend(ext.iter().cloned());
                let last = lines.len() - 1;
                let reply: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                peer.reply(&reply.join("\n"))?;
            }
            "STARTTLS" => {
                let mut out = format!("{}\r\n", s.starttls_reply);
                out.push_str(&s.starttls_extra);
                peer.send(out.as_bytes())?;
                if s.starttls_reply.starts_with("220") {
                    peer.start_tls(s.cert.as_ref().unwrap().server_config()?)?;
                }
            }
            "AUTH" => peer.reply(&s.auth_reply)?,
            "MAIL" => peer.reply(&s.mail_reply)?,
            "RCPT" => {
                if let Some(delay) = s.slow_rcpt {
                    peer.stall(delay);
                }
                if text.starts_with("RCPT TO:<REJECT") {
                    peer.reply("550 5.1.1 no such user")?;
                } else {
                    accepted += 1;
                    peer.reply("250 2.1.5 ok")?;
                }
            }
            "DATA" if accepted == 0 => peer.reply("554 5.5.1 no valid recipients")?,
            "DATA" => {
                accepted = 0;
                peer.reply("354 go ahead")?;
                let body = peer.read_data()?;
                if s.hang_up_after_data {
                    return Ok(());
                }
                bodies.lock().unwrap().push(body);
                peer.reply(&s.end_reply)?;
            }
            "RSET" => {
                accepted = 0;
                peer.reply("250 ok")?;
            }
            "NOOP" => peer.reply("250 ok")?,
            "QUIT" if s.silent_quit => {
                // Read until the client gives up and closes.
                while peer.line().is_ok() {}
                return Ok(());
            }
            "QUIT" => {
                peer.reply("221 bye")?;
                return Ok(());
            }
            _ => peer.reply("500 what")?,
        }
    }
}

/// Everything the client of connection 0 sent, plaintext then TLS.
fn sent(server: &ScriptedServer) -> String {
    assert!(server.wait_finished(1, WAIT));
    let r = server.transcript(0).unwrap();
    format!("{}{}", r.plain_text(), r.tls_text())
}

fn plain_args(server: &ScriptedServer, data: &Path) -> Vec<String> {
    let mut args = base(server, "127.0.0.1", server.port(), data);
    args.extend(["--tls".into(), "none".into()]);
    args
}

fn pki_and_cert() -> (TestPki, ServerCert, PathBuf) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let ca = temp_file(pki.ca_pem().as_bytes());
    (pki, cert, ca)
}

// ---- success -------------------------------------------------------------

#[test]
fn plaintext_success_json_and_exact_dot_stuffed_bytes() {
    let (server, bodies) = start(Script::default());
    // Bare LF, bare CR, leading dots, a lone dot, no final line ending.
    let data = temp_file(b"Subject: dots\n\n.leading\r\n..two\rbare cr\n.\nlast");
    let mut args = plain_args(&server, &data);
    set(&mut args, "--from", "");
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["tls"], false);
    assert_eq!(json["auth_mechanism"], Value::Null);
    assert_eq!(json["messages_sent"], 1);
    assert_eq!(json["error"], Value::Null);
    assert!(json["elapsed_ms"].is_f64());
    assert_eq!(
        json["transactions"],
        serde_json::json!([{"recipients": [{"address": "you@example.org", "code": 250, "accepted": true}], "data_code": 250, "status": "accepted"}])
    );

    let wire = sent(&server);
    assert!(wire.contains("MAIL FROM:<>"), "{wire}");
    let start = wire.find("DATA\r\n").unwrap() + 6;
    let end = wire.find("QUIT\r\n").unwrap();
    assert_eq!(
        &wire[start..end],
        "Subject: dots\r\n\r\n..leading\r\n...two\r\nbare cr\r\n..\r\nlast\r\n.\r\n"
    );
    assert_eq!(
        bodies.lock().unwrap()[0],
        b"Subject: dots\r\n\r\n.leading\r\n..two\r\nbare cr\r\n.\r\nlast\r\n"
    );
}

#[test]
fn human_output_summarises_and_exit_0() {
    let (server, _) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "--json");
    args.extend(["--to".into(), "reject-me@example.org".into()]);
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    for want in [
        "TLS:       no",
        "AUTH:      none",
        "you@example.org  250  accepted",
        "reject-me@example.org  550  refused",
        "DATA  250",
        "1 message in",
    ] {
        assert!(out.stdout.contains(want), "{want:?} in {}", out.stdout);
    }
    assert_eq!(out.stderr, "");
}

#[test]
fn stdin_is_streamed_for_one_transaction() {
    let (server, bodies) = start(Script::default());
    let args = plain_args(&server, &PathBuf::from("-"));
    let out = run(&strs(&args), &[], Some(b"Subject: stdin\n\nfrom a pipe\n"));
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(
        bodies.lock().unwrap().as_slice(),
        [b"Subject: stdin\r\n\r\nfrom a pipe\r\n".to_vec()]
    );
}

// ---- --repeat and --connections, counted on the server side ---------------

#[test]
fn repeat_sends_n_transactions_over_one_session() {
    let (server, bodies) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.extend(["--repeat".into(), "5".into()]);
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}", out.stdout);
    let json = out.json();
    assert_eq!(json["messages_sent"], 5);
    assert_eq!(json["transactions"].as_array().unwrap().len(), 5);
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.connections(), 1);
    assert_eq!(bodies.lock().unwrap().len(), 5);
    assert_eq!(sent(&server).matches("MAIL FROM:").count(), 5);
}

#[test]
fn connections_spread_transactions_over_parallel_tls_sessions() {
    let (_pki, cert, ca) = pki_and_cert();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).user("me@example.com", "pw-1");
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(
        [
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "me@example.com",
            "--repeat",
            "7",
            "--connections",
            "3",
        ]
        .map(String::from),
    );
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw-1")], None);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["messages_sent"], 7);
    assert_eq!(json["tls"], true);
    assert_eq!(json["auth_mechanism"], "LOGIN");
    assert!(server.wait_finished(3, WAIT));
    assert_eq!(server.connections(), 3);
    let messages = store.messages();
    assert_eq!(messages.len(), 7);
    assert!(messages.iter().all(|m| m.tls && m.data == BODY));
    // 3 + 2 + 2
    let mut per_conn: Vec<usize> = server
        .received()
        .iter()
        .map(|r| r.tls_text().matches("MAIL FROM:").count())
        .collect();
    per_conn.sort_unstable();
    assert_eq!(per_conn, [2, 2, 3]);
}

#[test]
fn stdin_is_spooled_for_repeat() {
    let (server, bodies) = start(Script::default());
    let mut args = plain_args(&server, &PathBuf::from("-"));
    args.extend(["--repeat", "3", "--connections", "2"].map(String::from));
    let out = run(&strs(&args), &[], Some(b"Subject: x\n\nsame body\n"));
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert!(server.wait_finished(2, WAIT));
    assert_eq!(server.connections(), 2);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    assert!(bodies
        .iter()
        .all(|b| b == b"Subject: x\r\n\r\nsame body\r\n"));
}

/// A message of about `len` bytes with bare LFs, bare CRs, leading dots
/// and non-ASCII bytes, and how a server stores it (CRLF lines, dots
/// unstuffed).
fn awkward_message(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut sent = b"Subject: spooled\n\n".to_vec();
    let mut stored = b"Subject: spooled\r\n\r\n".to_vec();
    let mut i = 0;
    while sent.len() < len {
        let line = format!(".line {i} caf\u{e9}");
        sent.extend_from_slice(line.as_bytes());
        sent.extend_from_slice(if i % 3 == 0 { b"\r" } else { b"\n" });
        stored.extend_from_slice(line.as_bytes());
        stored.extend_from_slice(b"\r\n");
        i += 1;
    }
    (sent, stored)
}

#[test]
fn stdin_for_several_transactions_is_spooled_and_sent_identically_with_its_size() {
    let (server, bodies) = start(Script {
        ehlo: vec![
            "PIPELINING".into(),
            "8BITMIME".into(),
            "SIZE 100000000".into(),
        ],
        ..Script::default()
    });
    // Larger than the 1 MiB a regular file may be kept in memory.
    let (message, stored) = awkward_message(3 << 20);
    let mut args = plain_args(&server, Path::new("-"));
    args.extend(["--repeat", "4", "--connections", "2"].map(String::from));
    let out = run(&strs(&args), &[], Some(&message));
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.json()["messages_sent"], 4);
    assert!(server.wait_finished(2, WAIT));
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 4);
    assert!(bodies.iter().all(|b| *b == stored), "a body differs");
    // Measured once, declared every time.
    let size = format!("SIZE={}", message.len());
    for received in server.received() {
        let text = received.plain_text();
        let mails: Vec<&str> = text.lines().filter(|l| l.starts_with("MAIL")).collect();
        assert_eq!(mails.len(), 2, "{mails:?}");
        for mail in mails {
            assert!(
                has_param(mail, &size) && has_param(mail, "BODY=8BITMIME"),
                "{mail}"
            );
        }
    }
}

#[test]
fn stdin_for_several_transactions_goes_to_a_temporary_file_not_memory() {
    // The spool is an anonymous file in TMPDIR: with no usable TMPDIR the
    // run fails before connecting, as io, and says why.
    let (server, _) = start(Script::default());
    let mut args = plain_args(&server, Path::new("-"));
    args.extend(["--repeat".into(), "2".into()]);
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir");
    let out = run(
        &strs(&args),
        &[("TMPDIR", missing.to_str().unwrap())],
        Some(BODY),
    );
    assert_eq!(out.status, 1, "{}", out.stdout);
    let json = out.json();
    assert_eq!(json["error"]["kind"], "io", "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("--data -: writing it to a temporary file: "),
        "{message}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0);
}

/// The hidden test-only cap on stdin and pipes, lowered to 1 MiB.
const SMALL_CAP: (&str, &str) = ("SMTP_SEND_MAX_BODY", "1048576");

fn endless() -> Stdio {
    Stdio::from(std::fs::File::open("/dev/zero").unwrap())
}

#[test]
fn an_endless_source_sent_several_times_is_a_usage_error_naming_the_limit() {
    let (server, _) = start(Script::default());
    for (data, input) in [("/dev/zero", Stdio::null()), ("-", endless())] {
        let mut args = plain_args(&server, Path::new(data));
        args.extend(["--repeat".into(), "2".into()]);
        let out = run_capped(&strs(&args), &[SMALL_CAP], input);
        assert_eq!(out.status, 2, "{data}: {}", out.stdout);
        let json = out.json();
        assert_eq!(json["error"]["kind"], "usage", "{json}");
        assert_eq!(json["transactions"], serde_json::json!([]));
        assert_eq!(
            json["error"]["message"],
            format!(
                "--data {data}: longer than 1 MiB (1048576 bytes), the most smtp-send reads \
                 from stdin or a non-regular file (a source that never ends is refused)"
            )
        );
        // Without --json: the same line on stderr, nothing on stdout.
        let mut args = plain_args(&server, Path::new("/dev/zero"));
        args.retain(|a| a != "--json");
        args.extend(["--repeat".into(), "2".into()]);
        let out = run_capped(&strs(&args), &[SMALL_CAP], Stdio::null());
        assert_eq!(out.status, 2);
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr
                .starts_with("error: usage: --data /dev/zero: longer than 1 MiB"),
            "{}",
            out.stderr
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0, "nothing was connected");
}

#[test]
fn an_endless_source_streamed_once_fails_as_io_before_its_end_of_data() {
    // `yes` never ends; its lines keep the server reading the body (at
    // most 4 MiB of it).
    for data in ["-", "/dev/stdin"] {
        let server = start_fast(Arc::new(|_| {}));
        let mut yes = Command::new("yes")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = Stdio::from(yes.stdout.take().unwrap());
        let args = plain_args(&server, Path::new(data));
        let out = run_capped(&strs(&args), &[SMALL_CAP], input);
        let _ = yes.kill();
        let _ = yes.wait();
        assert_eq!(out.status, 1, "{data}: {}", out.stdout);
        let json = out.json();
        assert_eq!(json["error"]["kind"], "io", "{json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("longer than 1 MiB (1048576 bytes)"),
            "{message}"
        );
        assert_eq!(json["messages_sent"], 0);
        assert_eq!(
            json["transactions"],
            serde_json::json!([{"recipients": [], "data_code": null, "status": "not_sent"}])
        );
        // DATA went, about a mebibyte of lines, and never its end.
        let wire = sent(&server);
        assert!(wire.contains("\r\nDATA\r\n"), "{data}");
        assert!(
            wire.len() > 1 << 20 && wire.len() < 2 << 20,
            "{}",
            wire.len()
        );
        assert!(
            !wire.contains("\r\n.\r\n"),
            "{data}: an end of data was sent"
        );
        assert!(!wire.contains("QUIT"), "{data}");
    }
}

// ---- the report of a long run: streamed, and memory bounded ---------------

/// Called with the number of MAIL commands over all connections so far,
/// before the reply to that MAIL; or at QUIT, with `None`.
type OnCommand = Arc<dyn Fn(Option<usize>) + Send + Sync>;

/// A plaintext server for long runs: PIPELINING, every recipient accepted
/// with `25N` where N is the connection's index (so a transaction tells
/// which connection carried it), bodies of at most 4 MiB read and dropped,
/// replies to pipelined commands in one write, and `on` called at every
/// MAIL and at QUIT.
fn start_fast(on: OnCommand) -> ScriptedServer {
    let mails = Arc::new(AtomicUsize::new(0));
    ScriptedServer::start_fn(move |peer| {
        let mut pending = String::new();
        peer.reply("220 mail.test ESMTP")?;
        loop {
            let line = match peer.line() {
                Ok(line) => line,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            let verb = String::from_utf8_lossy(&line[..line.len().min(4)]).to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => pending.push_str("250-mail.test\r\n250 PIPELINING\r\n"),
                "MAIL" => {
                    peer.send(std::mem::take(&mut pending).as_bytes())?;
                    on(Some(mails.fetch_add(1, Ordering::SeqCst) + 1));
                    pending.push_str("250 2.1.0 ok\r\n");
                }
                "RCPT" => pending.push_str(&format!("25{} 2.1.5 ok\r\n", peer.index().min(9))),
                "DATA" => {
                    pending.push_str("354 go ahead\r\n");
                    peer.send(std::mem::take(&mut pending).as_bytes())?;
                    // At most 4 MiB of lines, or the connection is closed.
                    let mut left = 4usize << 20;
                    loop {
                        let line = peer.line()?;
                        if line == b"." {
                            break;
                        }
                        left = left.checked_sub(line.len() + 2).ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "body over 4 MiB")
                        })?;
                    }
                    pending.push_str("250 2.0.0 queued\r\n");
                }
                "QUIT" => {
                    on(None);
                    pending.push_str("221 bye\r\n");
                    return peer.send(pending.as_bytes());
                }
                _ => pending.push_str("500 what\r\n"),
            }
            if peer.buffered().is_empty() {
                peer.send(std::mem::take(&mut pending).as_bytes())?;
            }
        }
    })
    .unwrap()
}

/// `--to` for `n` recipients.
fn recipients(args: &mut Vec<String>, n: usize) {
    args.retain(|a| a != "you@example.org");
    args.retain(|a| a != "--to");
    for i in 0..n {
        args.extend(["--to".to_owned(), format!("recipient-{i}@example.org")]);
    }
}

#[test]
fn json_of_parallel_sessions_is_one_object_by_session_then_order() {
    let server = start_fast(Arc::new(|_| {}));
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    recipients(&mut args, 20);
    args.extend(["--repeat", "1000", "--connections", "3"].map(String::from));
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "one line");
    let json = out.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["messages_sent"], 1000);
    assert_eq!(json["error"], Value::Null);
    let transactions = json["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), 1000);
    // Each transaction whole: 20 recipients of one connection's code.
    let codes: Vec<u64> = transactions
        .iter()
        .map(|t| {
            let recipients = t["recipients"].as_array().unwrap();
            assert_eq!(recipients.len(), 20);
            assert_eq!(t["data_code"], 250);
            let code = recipients[0]["code"].as_u64().unwrap();
            assert!(recipients.iter().all(|r| r["code"] == code));
            assert_eq!(recipients[19]["address"], "recipient-19@example.org");
            code
        })
        .collect();
    // By session then order: three runs, one per session (the first takes
    // the one left over), never interleaved.
    let mut runs: Vec<(u64, usize)> = Vec::new();
    for code in codes {
        match runs.last_mut() {
            Some((last, n)) if *last == code => *n += 1,
            _ => runs.push((code, 1)),
        }
    }
    let lengths: Vec<usize> = runs.iter().map(|r| r.1).collect();
    assert_eq!(lengths, [334, 333, 333], "{runs:?}");
    let mut distinct: Vec<u64> = runs.iter().map(|r| r.0).collect();
    distinct.sort_unstable();
    assert_eq!(distinct, [250, 251, 252]);
}

#[test]
fn the_json_report_is_written_as_the_results_come() {
    // The server holds the reply to the 31st MAIL until the test has read
    // the first transactions from stdout (over 64 KiB of them): they were
    // written while the run was still going.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let server = start_fast(Arc::new(move |mail| {
        if mail == Some(31) {
            let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(20));
        }
    }));
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    recipients(&mut args, 100);
    set(&mut args, "--timeout", "30");
    args.extend(["--repeat".into(), "40".into()]);
    let mut child = Command::new(BIN)
        .args(strs(&args))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (chunks, got) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if chunks.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut text = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while text.len() < 64 * 1024 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match got.recv_timeout(left) {
            Ok(chunk) => text.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    let before_release = text.len();
    release.send(()).unwrap();
    while let Ok(chunk) = got.recv() {
        text.extend_from_slice(&chunk);
    }
    reader.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let head = String::from_utf8_lossy(&text[..before_release.min(40)]).into_owned();
    assert!(
        before_release >= 64 * 1024,
        "only {before_release} bytes of the report before the run ended: {head:?}"
    );
    assert!(
        head.starts_with("{\"transactions\":[{\"recipients\":["),
        "{head}"
    );
    let json: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(json["messages_sent"], 40);
    assert_eq!(json["transactions"].as_array().unwrap().len(), 40);
}

/// The peak resident memory of process `pid` (`VmHWM`), in KiB.
#[cfg(target_os = "linux")]
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs `extra` with 100 recipients and `transactions` transactions, and
/// returns the client's peak resident memory (KiB) when the server saw
/// the 200th MAIL and at the end (at QUIT, once the report is out).
#[cfg(target_os = "linux")]
fn peak_memory_of_a_long_run(transactions: usize, extra: &[&str]) -> (u64, u64) {
    let pid = Arc::new(Mutex::new(None::<u32>));
    let samples: Arc<Mutex<(u64, u64)>> = Arc::default();
    let (p, sink) = (pid.clone(), samples.clone());
    let server = start_fast(Arc::new(move |mail| {
        let Some(pid) = *p.lock().unwrap() else {
            return;
        };
        let mut samples = sink.lock().unwrap();
        match mail {
            Some(200) => samples.0 = peak_kib(pid),
            None => samples.1 = samples.1.max(peak_kib(pid)),
            Some(_) => {}
        }
    }));
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    recipients(&mut args, 100);
    args.retain(|a| a != "--json");
    args.extend(["--repeat".into(), transactions.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(BIN)
        .args(strs(&args))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    *pid.lock().unwrap() = Some(child.id());
    let mut stdout = child.stdout.take().unwrap();
    // Read as it comes (not kept): a full pipe would stall the client.
    let reader = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        while let Ok(n @ 1..) = io::Read::read(&mut stdout, &mut buf) {
            total += n;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(4096);
            tail.drain(..keep);
        }
        (total, String::from_utf8_lossy(&tail).into_owned())
    });
    let status = child.wait().unwrap();
    let (total, tail) = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{tail}");
    assert!(server.wait_finished(1, WAIT));
    if extra.contains(&"--json") {
        // About 5.6 KiB per transaction of 100 recipients.
        assert!(total > transactions * 5000, "{total}");
        assert!(
            tail.ends_with(&format!("\"messages_sent\":{transactions},\"elapsed_ms\":"))
                || tail.contains(&format!("\"messages_sent\":{transactions},")),
            "{tail}"
        );
    } else {
        assert!(
            tail.contains(&format!("sent:      {transactions} messages")),
            "{tail}"
        );
    }
    let samples = *samples.lock().unwrap();
    assert!(samples.0 > 0 && samples.1 > 0, "{samples:?}");
    samples
}

#[cfg(target_os = "linux")]
#[test]
fn memory_does_not_grow_with_the_number_of_transactions() {
    // Kept, each transaction of 100 recipients cost about 9 KiB: 1,800
    // more transactions grew the peak by over 15 MiB. Now nothing per
    // transaction is kept, with or without --json (the parallel sessions'
    // part of the JSON report waits in temporary files).
    for extra in [&[][..], &["--json"], &["--json", "--connections", "2"]] {
        let (early, end) = peak_memory_of_a_long_run(2000, extra);
        let growth = end.saturating_sub(early);
        eprintln!("{extra:?}: {early} KiB -> {end} KiB");
        assert!(
            growth < 4 * 1024,
            "{extra:?}: peak {early} KiB at the 200th transaction, {end} KiB at the end"
        );
    }
}

// ---- TLS, AUTH, transcript ------------------------------------------------

#[test]
fn an_unanswered_quit_does_not_hold_the_report_back() {
    // The message is delivered; the server never answers QUIT. The report is
    // printed as soon as the results are known, before QUIT; QUIT then waits
    // at most its 10 s, even under --timeout 60.
    use std::io::BufRead;
    let (server, bodies) = start(Script {
        silent_quit: true,
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    set(&mut args, "--timeout", "60");
    let started = std::time::Instant::now();
    let mut child = Command::new(BIN)
        .args(strs(&args))
        .env_remove("SMTP_PASSWORD")
        .env_remove("SMTP_OAUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = io::BufReader::new(child.stdout.take().unwrap());
    let mut json = String::new();
    stdout.read_line(&mut json).unwrap();
    let reported = started.elapsed();
    let status = child.wait().unwrap();
    let exited = started.elapsed();
    let json: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["messages_sent"], 1);
    assert_eq!(bodies.lock().unwrap().len(), 1);
    assert!(
        reported < Duration::from_secs(5),
        "report after {reported:?}"
    );
    assert_eq!(status.code(), Some(0));
    assert!(
        exited >= Duration::from_secs(9),
        "QUIT was not waited for: {exited:?}"
    );
    assert!(exited < Duration::from_secs(30), "{exited:?}");
}

#[test]
fn transcript_drops_no_line_of_a_huge_envelope() {
    // 3,000 recipients: MAIL, 3,000 RCPT and DATA are written by one call of
    // the session, more lines than it keeps for a caller that never takes
    // them; the adapter takes them after every call, so none is lost.
    let (server, bodies) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.push("--transcript".to_owned());
    for i in 0..3000 {
        args.extend(["--to".to_owned(), format!("r{i}@example.org")]);
    }
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(bodies.lock().unwrap().len(), 1);
    let err = &out.stderr;
    assert_eq!(
        err.matches("C: MAIL FROM:<me@example.com>").count(),
        1,
        "{err}"
    );
    assert_eq!(err.matches("C: RCPT TO:<r").count(), 3000);
    assert!(err.contains("C: RCPT TO:<r2999@example.org>\n"));
    assert!(!err.contains("transcript lines dropped"), "{err}");
    // Every reply too: greeting, EHLO, MAIL, 3,001 RCPT (you@ and r0..),
    // 354, the final reply and QUIT's.
    assert!(err.lines().filter(|l| l.starts_with("S: ")).count() >= 3001 + 5);
}

#[test]
fn transcript_redacts_the_password() {
    let (_pki, cert, ca) = pki_and_cert();
    let secret = "hunter2-very-secret";
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).user("me@example.com", secret);
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(
        [
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "me@example.com",
            "--transcript",
        ]
        .map(String::from),
    );
    let out = run(&strs(&args), &[("SMTP_PASSWORD", secret)], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(store.messages().len(), 1);
    let err = &out.stderr;
    assert!(err.contains("C: STARTTLS\n"), "{err}");
    assert!(err.contains("C: AUTH LOGIN\n"), "{err}");
    assert!(
        err.contains("S: 334 UGFzc3dvcmQ6\nC: <redacted>\n"),
        "{err}"
    );
    // aHVudGVyMi12ZXJ5LXNlY3JldA== is base64 of the secret.
    for leak in [secret, "aHVudGVyMi12ZXJ5LXNlY3JldA"] {
        assert!(!err.contains(leak) && !out.stdout.contains(leak));
    }
    assert!(err
        .lines()
        .all(|l| l.starts_with("C: ") || l.starts_with("S: ")));
}

#[test]
fn implicit_tls_and_auth_plain() {
    let (_pki, cert, ca) = pki_and_cert();
    let (server, bodies) = start(Script {
        implicit: true,
        cert: Some(cert),
        ehlo_tls: vec!["AUTH PLAIN LOGIN".into()],
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 465, &data);
    args.extend(
        [
            "--tls",
            "implicit",
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "u",
        ]
        .map(String::from),
    );
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json()["auth_mechanism"], "PLAIN");
    assert_eq!(out.json()["tls"], true);
    assert_eq!(bodies.lock().unwrap().len(), 1);
    let r = server.transcript(0).unwrap();
    assert!(r.plain.is_empty() || !r.plain_text().contains("EHLO"));
}

#[test]
fn oauth_token_uses_xoauth2() {
    let (_pki, cert, ca) = pki_and_cert();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).token("me@example.com", "tok-1");
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(
        [
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "me@example.com",
        ]
        .map(String::from),
    );
    let out = run(&strs(&args), &[("SMTP_OAUTH_TOKEN", "tok-1")], None);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json()["auth_mechanism"], "XOAUTH2");
    assert_eq!(store.messages().len(), 1);
}

/// `AUTH XOAUTH2` with the token `tok-1` for `me@example.com`: base64 of
/// `user=me@example.com^Aauth=Bearer tok-1^A^A`.
const XOAUTH2_TOK_1: &str = "AUTH XOAUTH2 dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB0b2stMQEB\r\n";
/// `AUTH PLAIN` with the password `pw-1`: base64 of `^@me@example.com^@pw-1`.
const PLAIN_PW_1: &str = "AUTH PLAIN AG1lQGV4YW1wbGUuY29tAHB3LTE=\r\n";

/// A run with both secrets in the environment against a server offering
/// `auth`, plaintext on loopback; `mode` is `--auth`, if any.
fn both_secrets(auth: &str, mode: Option<&str>) -> (Out, String, usize) {
    let (server, bodies) = start(Script {
        ehlo: vec!["PIPELINING".into(), auth.into()],
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.extend(["--user".into(), "me@example.com".into()]);
    if let Some(mode) = mode {
        args.extend(["--auth".into(), mode.into()]);
    }
    let env = [("SMTP_PASSWORD", "pw-1"), ("SMTP_OAUTH_TOKEN", "tok-1")];
    let out = run(&strs(&args), &env, None);
    let delivered = bodies.lock().unwrap().len();
    (out, sent(&server), delivered)
}

#[test]
fn password_and_token_use_the_token_when_only_xoauth2_is_offered() {
    for mode in [Some("auto"), None] {
        let (out, wire, delivered) = both_secrets("AUTH XOAUTH2", mode);
        assert_eq!(out.status, 0, "{mode:?}: {} {}", out.stdout, out.stderr);
        let json = out.json();
        assert_eq!(json["ok"], true, "{json}");
        assert_eq!(json["auth_mechanism"], "XOAUTH2");
        assert_eq!(json["messages_sent"], 1);
        assert_eq!(json["error"], Value::Null);
        assert!(wire.contains(XOAUTH2_TOK_1), "{mode:?}: {wire}");
        assert_eq!(wire.matches("AUTH ").count(), 1, "{wire}");
        assert_eq!(delivered, 1);
    }
}

#[test]
fn password_and_token_prefer_plain_when_it_is_offered() {
    for mode in [Some("auto"), None] {
        let (out, wire, delivered) = both_secrets("AUTH PLAIN XOAUTH2", mode);
        assert_eq!(out.status, 0, "{mode:?}: {} {}", out.stdout, out.stderr);
        let json = out.json();
        assert_eq!(json["ok"], true, "{json}");
        assert_eq!(json["auth_mechanism"], "PLAIN");
        assert!(wire.contains(PLAIN_PW_1), "{mode:?}: {wire}");
        assert!(!wire.contains("XOAUTH2"), "{wire}");
        assert_eq!(delivered, 1);
    }
    // An explicit mechanism takes its own secret of the two.
    let (out, wire, _) = both_secrets("AUTH PLAIN XOAUTH2", Some("xoauth2"));
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json()["auth_mechanism"], "XOAUTH2");
    assert!(wire.contains(XOAUTH2_TOK_1), "{wire}");
    let (out, wire, _) = both_secrets("AUTH PLAIN XOAUTH2", Some("plain"));
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json()["auth_mechanism"], "PLAIN");
    assert!(wire.contains(PLAIN_PW_1), "{wire}");
}

#[test]
fn a_mechanism_without_its_secret_is_a_usage_error_and_nothing_connects() {
    let (server, _) = start(Script::default());
    let data = temp_file(BODY);
    for (mode, env, wanted) in [
        ("plain", ("SMTP_OAUTH_TOKEN", "tok"), "SMTP_PASSWORD"),
        ("login", ("SMTP_OAUTH_TOKEN", "tok"), "SMTP_PASSWORD"),
        ("xoauth2", ("SMTP_PASSWORD", "pw"), "SMTP_OAUTH_TOKEN"),
        ("oauthbearer", ("SMTP_PASSWORD", "pw"), "SMTP_OAUTH_TOKEN"),
    ] {
        let mut args = plain_args(&server, &data);
        args.extend(["--user", "me", "--auth", mode].map(String::from));
        let out = run(&strs(&args), &[env], None);
        assert_eq!(out.status, 2, "{mode}: {}", out.stdout);
        assert_eq!(out.error(), ("usage".into(), None), "{mode}");
        let message = out.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("--auth {mode} needs")) && message.contains(wanted),
            "{message}"
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0);
}

// ---- every error kind and exit path ----------------------------------------

#[test]
fn usage_errors_exit_2_with_json() {
    // No --to.
    let out = run(
        &[
            "--server",
            "mail.test",
            "--from",
            "a@b.c",
            "--data",
            "-",
            "--json",
        ],
        &[],
        None,
    );
    assert_eq!(out.status, 2);
    assert_eq!(out.error(), ("usage".into(), None));
    assert_eq!(out.json()["ok"], false);
    // Without --json: clap's message on stderr, nothing on stdout.
    let out = run(&["--server", "mail.test"], &[], None);
    assert_eq!(out.status, 2);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("--from"), "{}", out.stderr);
    // Bad values.
    for bad in [
        &["--tls", "sometimes"][..],
        &["--repeat", "0"],
        &["--window", "0"],
        &["--window", "257"],
        &["--timeout", "-1"],
        &["--max-time", "0"],
        &["--max-time", "soon"],
        &["--max-time", "inf"],
        &["--server", "mail.test:notaport"],
    ] {
        let mut args = vec![
            "--server",
            "mail.test",
            "--from",
            "a@b.c",
            "--to",
            "d@e.f",
            "--data",
            "-",
            "--json",
        ];
        args.extend_from_slice(bad);
        let out = run(&args, &[], None);
        assert_eq!(out.status, 2, "{bad:?}: {}", out.stdout);
        assert_eq!(out.error().0, "usage", "{bad:?}");
    }
}

#[test]
fn user_without_secret_is_a_usage_error_and_nothing_connects() {
    let (server, _) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.extend(["--user".into(), "me".into()]);
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 2);
    assert_eq!(out.error().0, "usage");
    assert!(out.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SMTP_PASSWORD"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_data_directory_is_a_usage_error_for_any_repeat() {
    let (server, _bodies) = start(Script::default());
    let dir = std::env::temp_dir();
    for repeat in ["1", "2"] {
        let mut args = plain_args(&server, &dir);
        set(&mut args, "--repeat", repeat);
        let out = run(&strs(&args), &[], None);
        assert_eq!(out.status, 2, "--repeat {repeat}: {}", out.stdout);
        let json = out.json();
        assert_eq!(json["error"]["kind"], "usage");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is a directory"),
            "{json}"
        );
    }
    assert_eq!(server.connections(), 0, "nothing was connected");
}

#[test]
fn missing_data_file_is_a_usage_error() {
    let out = run(
        &[
            "--server",
            "mail.test",
            "--from",
            "a@b.c",
            "--to",
            "d@e.f",
            "--data",
            "/nonexistent/x",
            "--json",
        ],
        &[],
        None,
    );
    assert_eq!(out.status, 2);
    assert_eq!(out.error().0, "usage");
}

#[test]
fn crlf_in_from_is_invalid_input_and_nothing_is_written() {
    let (server, _) = start(Script::default());
    let data = temp_file(BODY);
    for (flag, value) in [
        ("--from", "me@example.com>\r\nRCPT TO:<victim@example.org"),
        ("--to", "you@example.org\nDATA"),
        ("--helo", "host\r\nMAIL FROM:<x@y.z>"),
        ("--from", "del\x7f@example.com"),
        ("--user", "me\r\nAUTH PLAIN"),
    ] {
        let mut args = plain_args(&server, &data);
        set(&mut args, flag, value);
        let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
        assert_eq!(out.status, 1, "{flag}: {}", out.stdout);
        assert_eq!(out.error(), ("invalid_input".into(), None), "{flag}");
        assert_eq!(out.json()["transactions"], serde_json::json!([]));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.connections(), 0, "nothing may even connect");
}

#[test]
fn non_ascii_address_without_smtputf8_is_invalid_input_with_no_mail() {
    let (server, bodies) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.extend(["--to".into(), "jürgen@example.org".into()]);
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error().0, "invalid_input");
    let wire = sent(&server);
    assert!(wire.starts_with("EHLO localhost\r\n"), "{wire}");
    assert!(!wire.contains("MAIL"), "{wire}");
    assert!(bodies.lock().unwrap().is_empty());
}

#[test]
fn connect_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let data = temp_file(BODY);
    let addr_s = addr.to_string();
    let out = run(
        &[
            "--server",
            "127.0.0.1",
            "--connect",
            &addr_s,
            "--tls",
            "none",
            "--from",
            "a@b.c",
            "--to",
            "d@e.f",
            "--data",
            data.to_str().unwrap(),
            "--json",
        ],
        &[],
        None,
    );
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("connect".into(), None));
    assert_eq!(out.json()["tls"], false);
}

#[test]
fn untrusted_certificate_is_tls_and_nothing_sensitive_is_sent() {
    let (_pki, _cert, ca) = pki_and_cert();
    for cert in [
        self_signed(&[NAME]).unwrap(),
        // Trusted CA, wrong name.
        TestPki::new().unwrap().leaf(&["other.invalid"]).unwrap(),
    ] {
        let (server, bodies) = start(Script {
            cert: Some(cert),
            ehlo_tls: vec!["AUTH PLAIN LOGIN".into()],
            ..Script::default()
        });
        let data = temp_file(BODY);
        let mut args = base(&server, NAME, 587, &data);
        args.extend(["--ca-file", ca.to_str().unwrap(), "--user", "u"].map(String::from));
        let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
        assert_eq!(out.status, 1);
        assert_eq!(out.error().0, "tls", "{}", out.stdout);
        let wire = sent(&server);
        assert!(!wire.contains("AUTH") && !wire.contains("MAIL"), "{wire}");
        assert!(bodies.lock().unwrap().is_empty());
    }
}

#[test]
fn missing_starttls_is_tls_required_and_no_mail() {
    let (server, bodies) = start(Script {
        ehlo: vec!["AUTH PLAIN LOGIN".into()],
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(["--user", "u"].map(String::from));
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("tls_required".into(), None));
    let wire = sent(&server);
    assert!(!wire.contains("MAIL") && !wire.contains("AUTH"), "{wire}");
    assert!(bodies.lock().unwrap().is_empty());
}

#[test]
fn refused_starttls_is_tls_required_with_its_code() {
    let (_pki, cert, ca) = pki_and_cert();
    let (server, _) = start(Script {
        cert: Some(cert),
        starttls_reply: "454 4.7.0 TLS not available".into(),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(["--ca-file".into(), ca.to_str().unwrap().into()]);
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("tls_required".into(), Some(454)));
    assert!(!sent(&server).contains("MAIL"));
}

#[test]
fn opportunistic_without_starttls_sends_in_plaintext() {
    let (server, bodies) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(["--tls".into(), "opportunistic".into()]);
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json()["tls"], false);
    assert_eq!(bodies.lock().unwrap().len(), 1);
}

#[test]
fn credentials_over_plaintext_to_a_remote_name_are_insecure_auth_with_no_auth_line() {
    let (server, bodies) = start(Script {
        ehlo: vec!["AUTH PLAIN LOGIN".into()],
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 25, &data);
    args.extend(["--tls", "none", "--user", "u"].map(String::from));
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("insecure_auth".into(), None));
    let wire = sent(&server);
    assert!(!wire.contains("AUTH"), "{wire}");
    assert!(!wire.contains("MAIL"), "{wire}");
    assert!(bodies.lock().unwrap().is_empty());

    // --allow-insecure-auth lets it through.
    let (server, bodies) = start(Script {
        ehlo: vec!["AUTH PLAIN LOGIN".into()],
        ..Script::default()
    });
    let mut args = base(&server, NAME, 25, &data);
    args.extend(["--tls", "none", "--user", "u", "--allow-insecure-auth"].map(String::from));
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.status, 0, "{}", out.stdout);
    assert_eq!(out.json()["auth_mechanism"], "PLAIN");
    assert!(sent(&server).contains("AUTH PLAIN "));
    assert_eq!(bodies.lock().unwrap().len(), 1);
}

#[test]
fn no_usable_mechanism_is_auth_unavailable() {
    let (server, _) = start(Script {
        ehlo: vec!["AUTH CRAM-MD5 XPLAIN LOGIN-MD5".into()],
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.extend(["--user".into(), "u".into()]);
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("auth_unavailable".into(), None));
    let wire = sent(&server);
    assert!(!wire.contains("AUTH") && !wire.contains("MAIL"), "{wire}");

    // --auth login when only PLAIN is offered.
    let (server, _) = start(Script {
        ehlo: vec!["AUTH PLAIN".into()],
        ..Script::default()
    });
    let mut args = plain_args(&server, &data);
    args.extend(["--user", "u", "--auth", "login"].map(String::from));
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.error(), ("auth_unavailable".into(), None));
}

#[test]
fn wrong_password_is_auth_rejected() {
    let (_pki, cert, ca) = pki_and_cert();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).user("me@example.com", "right");
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let data = temp_file(BODY);
    let mut args = base(&server, NAME, 587, &data);
    args.extend(
        [
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "me@example.com",
        ]
        .map(String::from),
    );
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "wrong")], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("auth_rejected".into(), Some(535)));
    assert!(store.messages().is_empty());
    assert!(!sent(&server).contains("MAIL"));
}

#[test]
fn refused_greeting_mail_or_data_is_rejected() {
    for (script, code) in [
        (
            Script {
                greeting: "554 5.3.2 go away".into(),
                ..Script::default()
            },
            554,
        ),
        (
            Script {
                mail_reply: "550 5.7.1 sender refused".into(),
                ..Script::default()
            },
            550,
        ),
        (
            Script {
                end_reply: "554 5.6.0 content refused".into(),
                ..Script::default()
            },
            554,
        ),
        (
            Script {
                mail_reply: "421 4.3.2 shutting down".into(),
                ..Script::default()
            },
            421,
        ),
    ] {
        let (server, _) = start(script);
        let data = temp_file(BODY);
        let out = run(&strs(&plain_args(&server, &data)), &[], None);
        assert_eq!(out.status, 1, "{code}");
        assert_eq!(out.error(), ("rejected".into(), Some(code)));
        assert_eq!(out.json()["ok"], false);
        assert_eq!(out.json()["messages_sent"], 0);
    }
}

#[test]
fn every_recipient_refused_is_recipients_rejected_and_no_data() {
    // Without PIPELINING no DATA is sent; with it, nothing is delivered.
    for pipelining in [false, true] {
        let mut script = Script::default();
        if !pipelining {
            script.ehlo.retain(|e| e != "PIPELINING");
        }
        all_recipients_refused(script, pipelining);
    }
}

fn all_recipients_refused(script: Script, pipelining: bool) {
    let (server, bodies) = start(script);
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "you@example.org");
    args.retain(|a| a != "--to");
    args.extend(
        [
            "--to",
            "reject-a@example.org",
            "--to",
            "reject-b@example.org",
        ]
        .map(String::from),
    );
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert_eq!(out.error(), ("recipients_rejected".into(), Some(550)));
    let json = out.json();
    assert_eq!(
        json["transactions"],
        serde_json::json!([{"recipients": [
            {"address": "reject-a@example.org", "code": 550, "accepted": false},
            {"address": "reject-b@example.org", "code": 550, "accepted": false}
        ], "data_code": null, "status": "rejected"}])
    );
    if !pipelining {
        assert!(!sent(&server).contains("DATA"));
    }
    assert!(bodies.lock().unwrap().is_empty());
}

#[test]
fn message_larger_than_size_is_size_and_no_mail() {
    let (server, bodies) = start(Script {
        ehlo: vec!["SIZE 100".into()],
        ..Script::default()
    });
    let data = temp_file(&[b'x'; 500]);
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("size".into(), None));
    assert!(!sent(&server).contains("MAIL"));
    assert!(bodies.lock().unwrap().is_empty());

    // A server that refuses it at the end of the data (552 5.3.4).
    let (server, _) = start(Script {
        end_reply: "552 5.3.4 message too big".into(),
        ..Script::default()
    });
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(out.error(), ("size".into(), Some(552)));
    assert_eq!(out.json()["transactions"][0]["data_code"], 552);
}

#[test]
fn malformed_reply_or_starttls_injection_is_protocol() {
    let (server, _) = start(Script {
        greeting: "hello there".into(),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error().0, "protocol");

    let (_pki, cert, ca) = pki_and_cert();
    let (server, _) = start(Script {
        cert: Some(cert),
        starttls_extra: "250-injected\r\n250 AUTH PLAIN\r\n".into(),
        ..Script::default()
    });
    let mut args = base(&server, NAME, 587, &data);
    args.extend(["--ca-file", ca.to_str().unwrap(), "--user", "u"].map(String::from));
    let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("protocol".into(), None));
    let wire = sent(&server);
    assert!(!wire.contains("AUTH") && !wire.contains("MAIL"), "{wire}");
}

#[test]
fn stalled_server_is_timeout() {
    let (server, _) = start(Script {
        stall: Some(Duration::from_secs(5)),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    set(&mut args, "--timeout", "0.3");
    let started = std::time::Instant::now();
    let out = run(&strs(&args), &[], None);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("timeout".into(), None));
}

/// `--max-time` bounds each message (and the set-up), not the run: two
/// messages of 0.6 s each pass under `--max-time 0.9`; a message of four
/// slow recipients (1.2 s, each reply well within `--timeout 5`) fails with
/// kind `timeout` soon after 0.9 s, and its data is never sent.
#[test]
fn max_time_bounds_each_message() {
    let (server, bodies) = start(Script {
        slow_rcpt: Some(Duration::from_millis(300)),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.extend(["--to", "second@example.org", "--repeat", "2"].map(String::from));
    set(&mut args, "--timeout", "5");
    set(&mut args, "--max-time", "0.9");
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bodies.lock().unwrap().len(), 2);

    let (server, bodies) = start(Script {
        slow_rcpt: Some(Duration::from_millis(300)),
        ..Script::default()
    });
    let mut args = plain_args(&server, &data);
    for to in ["b@example.org", "c@example.org", "d@example.org"] {
        args.extend(["--to", to].map(String::from));
    }
    set(&mut args, "--timeout", "5");
    set(&mut args, "--max-time", "0.9");
    let started = std::time::Instant::now();
    let out = run(&strs(&args), &[], None);
    let took = started.elapsed();
    assert_eq!(out.status, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.error(), ("timeout".into(), None));
    assert!(
        out.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("time limit")),
        "{}",
        out.stdout
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(bodies.lock().unwrap().is_empty());
}

/// Each transaction's `status`: accepted, rejected (every recipient
/// refused), not_sent (the connection dropped at MAIL) and unknown (the
/// final dot went out and no reply came), with the error kind and exit
/// status as before; human output warns against resending an unknown one.
#[test]
fn each_transaction_says_what_became_of_its_message() {
    let data = temp_file(BODY);
    let status = |out: &Out| out.json()["transactions"][0]["status"].clone();

    let (server, _) = start(Script::default());
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(status(&out), "accepted", "{}", out.stdout);

    let (server, _) = start(Script::default());
    let mut args = plain_args(&server, &data);
    set(&mut args, "--to", "reject-me@example.org");
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(status(&out), "rejected", "{}", out.stdout);

    let (server, _) = start(Script {
        hang_up_on: Some("MAIL"),
        ..Script::default()
    });
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("io".into(), None));
    assert_eq!(status(&out), "not_sent", "{}", out.stdout);

    let (server, bodies) = start(Script {
        hang_up_after_data: true,
        ..Script::default()
    });
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("io".into(), None));
    assert_eq!(status(&out), "unknown", "{}", out.stdout);
    assert!(bodies.lock().unwrap().is_empty());
    let message = out.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("delivery unknown"), "{message}");

    let (server, _) = start(Script {
        hang_up_after_data: true,
        ..Script::default()
    });
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "--json");
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(
            "delivery unknown: the server may have accepted the message; do not resend blindly"
        ),
        "{text}"
    );
}

#[test]
fn dropped_connection_is_io() {
    let (server, _) = start(Script {
        hang_up_on: Some("MAIL"),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let out = run(&strs(&plain_args(&server, &data)), &[], None);
    assert_eq!(out.status, 1);
    assert_eq!(out.error(), ("io".into(), None));
}

#[test]
fn human_error_names_kind_and_code() {
    let (server, _) = start(Script {
        mail_reply: "550 5.7.1 sender refused".into(),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "--json");
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.contains("error: rejected (550): ") && out.stderr.contains("sender refused"),
        "{}",
        out.stderr
    );
}

// ---- a --data file that changes between transactions -----------------------

/// What the chunking server does to the `--data` file between transactions.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// Appends to it.
    Append,
    /// Rewrites it in place, same length: two bytes become `0xE9` and a bare
    /// LF, so its body type and its wire length change but not its size.
    Rewrite,
    /// Deletes it.
    Delete,
}

/// What the chunking server saw.
#[derive(Debug, Default)]
struct Chunked {
    /// Per message: its MAIL line, its BDAT size, and the bytes read for it.
    messages: Vec<(String, u64, Vec<u8>)>,
    /// How many messages had arrived when the file was changed.
    changed_after: Option<usize>,
    /// Lines that were no command: what a BDAT size out of step with the
    /// bytes sent would produce.
    stray: Vec<String>,
    /// QUIT arrived: the client stayed in step to the end.
    quit: bool,
}

/// The first message's body is plain ASCII lines of 78 characters, over
/// 1 MiB so that `--repeat` does not keep it in memory from the start (it
/// is measured, and held or streamed, per transaction).
fn big_message() -> Vec<u8> {
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    let mut i = 0;
    while body.len() <= (1 << 20) + 4096 {
        body.extend_from_slice(format!("line {i:06} {}\r\n", "x".repeat(66)).as_bytes());
        i += 1;
    }
    body
}

fn change_file(change: Change, path: &Path) {
    match change {
        Change::Append => {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(b"appended line\r\n".repeat(1000).as_slice())
                .unwrap();
        }
        Change::Rewrite => {
            let mut bytes = std::fs::read(path).unwrap();
            bytes[100] = 0xE9;
            bytes[200] = b'\n';
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            (&f).write_all(&bytes).unwrap();
            // Far off, so the file system clock's tick cannot hide the write.
            let later = std::time::SystemTime::now() + Duration::from_secs(3600);
            f.set_times(std::fs::FileTimes::new().set_modified(later))
                .unwrap();
        }
        Change::Delete => std::fs::remove_file(path).unwrap(),
    }
}

/// A server offering PIPELINING and CHUNKING that changes `path` at a
/// point no transaction is using the file: it holds its replies from the
/// first MAIL on, reads the first two messages (the client pipelines the
/// second behind the first before it needs a reply), changes the file,
/// then replies, so the third transaction starts after the change. Should
/// a client wait for the first message's replies instead, the server
/// changes the file after a second of silence and replies then.
fn start_chunking(path: PathBuf, change: Change) -> (ScriptedServer, Arc<Mutex<Chunked>>) {
    let log: Arc<Mutex<Chunked>> = Arc::default();
    let sink = log.clone();
    let server =
        ScriptedServer::start_fn(move |peer| serve_chunking(peer, &path, change, &sink)).unwrap();
    (server, log)
}

fn serve_chunking(
    peer: &mut Peer,
    path: &Path,
    change: Change,
    log: &Mutex<Chunked>,
) -> io::Result<()> {
    const PATIENCE: Duration = Duration::from_secs(30);
    peer.reply("220 mail.test ESMTP")?;
    let mut held = String::new();
    let mut holding = false;
    let mut changed = false;
    let mut mail = String::new();
    let change_now = |peer: &mut Peer, held: &mut String| -> io::Result<()> {
        change_file(change, path);
        let mut log = log.lock().unwrap();
        log.changed_after = Some(log.messages.len());
        peer.set_read_timeout(Some(PATIENCE))?;
        peer.send(std::mem::take(held).as_bytes())
    };
    loop {
        let line = match peer.line() {
            Ok(line) => line,
            Err(e)
                if holding
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                (holding, changed) = (false, true);
                change_now(peer, &mut held)?;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let upper = text.to_ascii_uppercase();
        let reply = match upper.split(' ').next().unwrap_or("") {
            "EHLO" => "250-mail.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250 SIZE 100000000",
            "MAIL" => {
                holding |= !changed;
                peer.set_read_timeout(Some(PATIENCE))?;
                mail = text;
                "250 2.1.0 ok"
            }
            "RCPT" => "250 2.1.5 ok",
            "BDAT" if upper.ends_with(" LAST") => {
                let size: u64 = upper[5..upper.len() - 5].parse().unwrap();
                let body = peer.read_exact_bytes(usize::try_from(size).unwrap())?;
                log.lock().unwrap().messages.push((mail.clone(), size, body));
                "250 2.0.0 queued"
            }
            "QUIT" => {
                log.lock().unwrap().quit = true;
                held.push_str("221 2.0.0 bye\r\n");
                peer.send(held.as_bytes())?;
                return Ok(());
            }
            _ => {
                log.lock().unwrap().stray.push(text);
                "500 5.5.2 what"
            }
        };
        held.push_str(reply);
        held.push_str("\r\n");
        if !holding {
            peer.send(std::mem::take(&mut held).as_bytes())?;
            continue;
        }
        let received = log.lock().unwrap().messages.len();
        match received {
            // Waiting for the second message: not for ever.
            1 if upper.starts_with("BDAT") => {
                peer.set_read_timeout(Some(Duration::from_secs(1)))?
            }
            2 => {
                (holding, changed) = (false, true);
                change_now(peer, &mut held)?;
            }
            _ => {}
        }
    }
}

fn has_param(mail: &str, param: &str) -> bool {
    mail.split(' ').skip(2).any(|p| p == param)
}

/// `--repeat 3` of a `--data` file that `change` alters between
/// transactions, held in memory per version or (`streamed`) read from the
/// disk per transaction: the output, what the server saw, and the two
/// versions of the message as they go on the wire.
fn changing_file(change: Change, streamed: bool) -> (Out, Chunked, [Vec<u8>; 2], ScriptedServer) {
    let first = big_message();
    assert!(first.len() > 1 << 20);
    let data = temp_file(&first);
    let second = match change {
        Change::Append => [first.clone(), b"appended line\r\n".repeat(1000)].concat(),
        Change::Rewrite => {
            let mut second = first.clone();
            second[100] = 0xE9;
            second.splice(200..201, *b"\r\n");
            second
        }
        Change::Delete => Vec::new(),
    };
    let (server, log) = start_chunking(data.clone(), change);
    let mut args = plain_args(&server, &data);
    // One transaction at a time, so that there is a "between": with a
    // window the next message is measured and sent before any reply, and a
    // change lands inside a message (the "changed while being sent" tests).
    args.extend(["--repeat".into(), "3".into(), "--window".into(), "1".into()]);
    let hold = if streamed { "0" } else { "16777216" };
    let out = run(&strs(&args), &[("SMTP_SEND_HOLD_MAX", hold)], None);
    assert!(
        server.wait_finished(1, WAIT),
        "{} {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(server.errors(), [None], "{}", out.stdout);
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(log.stray.is_empty(), "out of step: {:?}", log.stray);
    assert!(log.quit, "no QUIT: {}", out.stdout);
    let raw = server.transcript(0).unwrap().plain;
    assert!(raw.ends_with(b"\r\nQUIT\r\n"), "bytes after QUIT");
    for (mail, size, body) in &log.messages {
        // read_exact_bytes took exactly the declared size; what followed
        // it parsed as commands (no stray lines), so no BDAT size differed
        // from the bytes sent for it.
        assert_eq!(*size, body.len() as u64, "{mail}");
    }
    let _ = std::fs::remove_file(&data);
    (out, log, [first, second], server)
}

#[test]
fn a_data_file_appended_to_between_transactions_is_measured_again() {
    for streamed in [false, true] {
        appended_between_transactions(streamed);
    }
}

fn appended_between_transactions(streamed: bool) {
    let (out, log, [first, second], _server) = changing_file(Change::Append, streamed);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    let json = out.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["messages_sent"], 3);
    let before = log.changed_after.unwrap();
    assert!((1..=2).contains(&before), "{before}");
    assert_eq!(log.messages.len(), 3);
    for (i, (mail, size, body)) in log.messages.iter().enumerate() {
        // Byte for byte one version: the one measured before it started.
        let (version, what) = if i < before {
            (&first, "the first version")
        } else {
            (&second, "the appended version")
        };
        assert!(body == version, "message {i} is not {what}");
        assert_eq!(*size, version.len() as u64, "message {i}");
        assert!(
            has_param(mail, &format!("SIZE={}", version.len())),
            "message {i}: {mail}"
        );
    }
}

#[test]
fn a_data_file_rewritten_between_transactions_is_measured_again() {
    for streamed in [false, true] {
        rewritten_between_transactions(streamed);
    }
}

fn rewritten_between_transactions(streamed: bool) {
    let (out, log, [first, second], _server) = changing_file(Change::Rewrite, streamed);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.json()["messages_sent"], 3);
    let before = log.changed_after.unwrap();
    assert!((1..=2).contains(&before), "{before}");
    assert_eq!(log.messages.len(), 3);
    for (i, (mail, size, body)) in log.messages.iter().enumerate() {
        // Same size on disk; the bare LF takes one more octet on the wire,
        // and the 0xE9 makes it 8BITMIME.
        assert!(has_param(mail, &format!("SIZE={}", first.len())), "{mail}");
        if i < before {
            assert!(body == &first, "message {i} is not the first version");
            assert!(!mail.contains("BODY="), "{mail}");
        } else {
            assert!(body == &second, "message {i} is not the rewritten version");
            assert_eq!(*size, first.len() as u64 + 1);
            assert!(has_param(mail, "BODY=8BITMIME"), "{mail}");
        }
    }
}

#[test]
fn a_data_file_deleted_between_transactions_fails_that_transaction_cleanly() {
    for streamed in [false, true] {
        deleted_between_transactions(streamed);
    }
}

fn deleted_between_transactions(streamed: bool) {
    let (out, log, _, server) = changing_file(Change::Delete, streamed);
    assert_eq!(out.status, 1, "{}", out.stdout);
    let (kind, code) = out.error();
    assert_eq!((kind.as_str(), code), ("io", None));
    let json = out.json();
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("--data "), "{message}");
    let before = log.changed_after.unwrap();
    assert!((1..=2).contains(&before), "{before}");
    // The transactions before the change went; the next one was reported
    // failed without a command of its own, and the session ended with QUIT.
    assert_eq!(log.messages.len(), before);
    assert_eq!(json["messages_sent"], before);
    let transactions = json["transactions"].as_array().unwrap();
    assert_eq!(transactions.len(), before + 1);
    assert_eq!(
        transactions[before],
        serde_json::json!({"recipients": [], "data_code": null, "status": "not_sent"})
    );
    assert_eq!(sent(&server).matches("MAIL FROM:").count(), before);
}

// ---- the demo ----------------------------------------------------------------

#[test]
fn demo_exits_0_with_login_and_redacted_secret() {
    let out = run(&["demo"], &[], None);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    let s = &out.stdout;
    for want in [
        "S: 250-STARTTLS",
        "C: STARTTLS",
        "S: 250-AUTH LOGIN XOAUTH2",
        "C: AUTH LOGIN",
        "S: 334 VXNlcm5hbWU6",
        "S: 334 UGFzc3dvcmQ6",
        "C: <redacted>",
        "TLS:       yes",
        "AUTH:      LOGIN (offered: LOGIN XOAUTH2)",
        "alice@example.com  250  accepted",
        "reject-bob@example.com  550  refused",
        "stored 1 message",
    ] {
        assert!(s.contains(want), "{want:?} missing from:\n{s}");
    }
    // The demo password ("demo-" and 32 hex digits) never appears, nor does
    // anything after the Password: prompt but <redacted>.
    assert!(!s.contains("demo-"), "{s}");
    let after_prompt = s.split("S: 334 UGFzc3dvcmQ6\n").nth(1).unwrap();
    assert!(after_prompt.starts_with("C: <redacted>\n"));
    // AUTH only after TLS.
    let tls_at = s.find("C: STARTTLS").unwrap();
    assert!(s.find("C: AUTH").unwrap() > tls_at);
}

#[test]
fn a_fifo_as_data_is_streamed_once() {
    let (server, bodies) = start(Script::default());
    // /dev/stdin is a pipe here: not a regular file.
    let out = run(
        &strs(&plain_args(&server, Path::new("/dev/stdin"))),
        &[],
        Some(b"Subject: fifo\n\nvia a path\n"),
    );
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(
        bodies.lock().unwrap().as_slice(),
        [b"Subject: fifo\r\n\r\nvia a path\r\n".to_vec()]
    );
}

/// `--json-lines`: one object per transaction as it comes (the fields of a
/// `transactions` element plus `session` and `index`), then the summary
/// with `"summary": true`; parsed line by line over 1,000 transactions on
/// two sessions.
#[test]
fn json_lines_reports_each_transaction_then_the_summary() {
    let (server, bodies) = start(Script::default());
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "--json");
    args.extend(["--json-lines", "--repeat", "1000", "--connections", "2"].map(String::from));
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1001);
    let mut next = [0u64; 2];
    for t in &lines[..1000] {
        let session = t["session"].as_u64().unwrap() as usize;
        assert_eq!(t["index"].as_u64(), Some(next[session]), "{t}");
        next[session] += 1;
        assert_eq!(t["status"], "accepted");
        assert_eq!(t["data_code"], 250);
        assert_eq!(t["recipients"][0]["address"], "you@example.org");
        assert!(t.get("summary").is_none());
    }
    assert_eq!(next, [500, 500]);
    let summary = &lines[1000];
    assert_eq!(summary["summary"], true);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["tls"], false);
    assert_eq!(summary["auth_mechanism"], Value::Null);
    assert_eq!(summary["messages_sent"], 1000);
    assert!(summary["elapsed_ms"].is_f64());
    assert_eq!(summary["error"], Value::Null);
    assert_eq!(bodies.lock().unwrap().len(), 1000);
}

#[test]
fn json_lines_reports_a_failure_and_a_usage_error() {
    let (server, _) = start(Script {
        hang_up_on: Some("MAIL"),
        ..Script::default()
    });
    let data = temp_file(BODY);
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "--json");
    args.push("--json-lines".into());
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 1);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0]["status"], "not_sent");
    assert_eq!(
        (lines[0]["session"].clone(), lines[0]["index"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(lines[1]["summary"], true);
    assert_eq!(lines[1]["ok"], false);
    assert_eq!(lines[1]["error"]["kind"], "io");

    // With --json: a usage error, reported as one JSON object.
    let out = run(
        &[
            "--server",
            "mail.test",
            "--from",
            "a@b.c",
            "--to",
            "d@e.f",
            "--data",
            "-",
            "--json",
            "--json-lines",
        ],
        &[],
        None,
    );
    assert_eq!(out.status, 2);
    assert_eq!(out.error(), ("usage".into(), None));
    // Alone, a usage error is the summary line.
    let out = run(
        &[
            "--server",
            "mail.test:nope",
            "--from",
            "a@b.c",
            "--to",
            "d@e.f",
            "--data",
            "-",
            "--json-lines",
        ],
        &[],
        None,
    );
    assert_eq!(out.status, 2);
    let summary: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(summary["summary"], true);
    assert_eq!(summary["error"]["kind"], "usage");
}

// ---- the test message (no --data) -------------------------------------------

/// Without `--data`, a test message goes to aiosmtpd (STARTTLS, AUTH
/// LOGIN), and Python's own `email` parser, the receiving server's, reads
/// every header back: Date (RFC 5322, with an offset), a Message-ID at the
/// sender's domain, From, To with every recipient, the subject, MIME and
/// the `--header` added; the body names the tool.
#[test]
fn without_data_a_test_message_is_sent_that_the_server_parses() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["localhost"]).unwrap();
    let ca = temp_file(pki.ca_pem().as_bytes());
    let server = smtp_tests::Aiosmtpd::start(&smtp_tests::AiosmtpdOptions::new(
        cert,
        "me@example.com",
        "pw",
    ))
    .unwrap();
    let out = run(
        &[
            "--server",
            &format!("localhost:{}", server.port()),
            "--connect",
            &server.addr().to_string(),
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            "me@example.com",
            "--from",
            "me@example.com",
            "--to",
            "you@example.org",
            "--to",
            "other@example.net",
            "--helo",
            "client.test",
            "--header",
            "X-Probe: yes",
            "--json",
        ],
        &[("SMTP_PASSWORD", "pw")],
        None,
    );
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let message = server
        .wait_for_messages(1, Duration::from_secs(10))
        .unwrap()
        .remove(0);
    let python = smtp_tests::peers::tests_dir().join(".venv/bin/python");
    let script = r#"
import email, email.utils, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read())
date = email.utils.parsedate_to_datetime(m["Date"])
print(json.dumps({
    "headers": [k for k in m.keys()],
    "offset": date.utcoffset() is not None,
    "message_id": m["Message-ID"],
    "from": email.utils.parseaddr(m["From"])[1],
    "to": [a for _, a in email.utils.getaddresses([m["To"]])],
    "subject": m["Subject"],
    "mime": m["MIME-Version"],
    "type": m.get_content_type(),
    "charset": m.get_content_charset(),
    "x_probe": m["X-Probe"],
    "body": m.get_payload(),
    "defects": len(m.defects),
}))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&message.data)
        .unwrap();
    let parsed = child.wait_with_output().unwrap();
    assert!(parsed.status.success());
    let v: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    for header in [
        "Date",
        "Message-ID",
        "From",
        "To",
        "Subject",
        "MIME-Version",
        "Content-Type",
        "X-Probe",
    ] {
        assert!(
            v["headers"].as_array().unwrap().iter().any(|h| h == header),
            "{header}: {v}"
        );
    }
    assert_eq!(v["offset"], true, "{v}");
    let id = v["message_id"].as_str().unwrap();
    assert!(id.starts_with('<') && id.ends_with("@example.com>"), "{id}");
    assert_eq!(v["from"], "me@example.com");
    assert_eq!(
        v["to"],
        serde_json::json!(["you@example.org", "other@example.net"])
    );
    assert!(
        v["subject"]
            .as_str()
            .unwrap()
            .starts_with("smtp-send test "),
        "{v}"
    );
    assert_eq!(v["mime"], "1.0");
    assert_eq!(
        (v["type"].clone(), v["charset"].clone()),
        ("text/plain".into(), "utf-8".into())
    );
    assert_eq!(v["x_probe"], "yes");
    assert!(v["body"].as_str().unwrap().contains("smtp-send"), "{v}");
    assert_eq!(v["defects"], 0, "{v}");
    assert_eq!(
        message.to,
        ["you@example.org", "other@example.net"]
            .map(String::from)
            .to_vec()
    );
}

/// `--body` replaces the body (`-` reads stdin); `--header` replaces a
/// header of the same name; `--data` with either is a usage error before
/// anything is connected; a header that would inject a line is refused.
#[test]
fn header_and_body_shape_the_test_message() {
    let (server, bodies) = start(Script::default());
    let mut args: Vec<String> = plain_args(&server, Path::new("unused"));
    let at = args.iter().position(|a| a == "--data").unwrap();
    args.drain(at..at + 2);
    args.extend(["--header", "Subject: chosen", "--body", "-"].map(String::from));
    let out = run(&strs(&args), &[], Some(b"from stdin\n"));
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    let body = String::from_utf8(bodies.lock().unwrap().remove(0)).unwrap();
    assert!(body.contains("\r\nSubject: chosen\r\n"), "{body}");
    assert_eq!(body.matches("Subject:").count(), 1, "{body}");
    assert!(body.ends_with("\r\n\r\nfrom stdin\r\n"), "{body}");

    for extra in [
        &["--data", "-", "--header", "X: y"][..],
        &["--data", "-", "--body", "hi"],
        &["--header", "X: a\r\nBcc: evil@example.org"],
        &["--header", "no colon"],
    ] {
        let mut args = args.clone();
        args.truncate(args.len() - 4);
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = run(&strs(&args), &[], None);
        assert_eq!(out.status, 2, "{extra:?}: {}", out.stdout);
        assert_eq!(out.error().0, "usage", "{extra:?}");
    }
    assert_eq!(server.connections(), 1, "usage errors connect nowhere");
}

// ---- --url ------------------------------------------------------------------

fn url_args(url: &str, server: &ScriptedServer, data: &Path) -> Vec<String> {
    [
        "--url",
        url,
        "--connect",
        &server.addr().to_string(),
        "--from",
        "me@example.com",
        "--to",
        "you@example.org",
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]
    .map(String::from)
    .to_vec()
}

/// `--url` stands for `--server`, `--tls`, `--user` and `--auth`: plaintext
/// with `tls=none`, implicit TLS with `smtps://`, a percent-decoded user
/// with `auth=plain` and the password from the environment.
#[test]
fn url_configures_server_tls_user_and_mechanism() {
    let data = temp_file(BODY);
    let (server, bodies) = start(Script::default());
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port());
    let out = run(&strs(&url_args(&url, &server, &data)), &[], None);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["tls"], false);
    assert_eq!(bodies.lock().unwrap().len(), 1);

    let (_pki, cert, ca) = pki_and_cert();
    let (server, _) = start(Script {
        cert: Some(cert),
        implicit: true,
        ..Script::default()
    });
    let url = format!("smtps://{NAME}:{}", server.port());
    let mut args = url_args(&url, &server, &data);
    args.extend(["--ca-file", ca.to_str().unwrap()].map(String::from));
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["tls"], true);

    let (server, _) = start(Script {
        ehlo: vec!["AUTH PLAIN LOGIN".into()],
        ..Script::default()
    });
    let url = format!(
        "smtp://alice%40example.com@localhost:{}?tls=none&auth=plain",
        server.port()
    );
    let out = run(
        &strs(&url_args(&url, &server, &data)),
        &[("SMTP_PASSWORD", "pw")],
        None,
    );
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["auth_mechanism"], "PLAIN");
    let wire = sent(&server);
    let plain = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("\0alice@example.com\0pw")
    };
    assert!(wire.contains(&format!("AUTH PLAIN {plain}")), "{wire}");
}

/// `--url` with any of the flags it replaces, a password in the URL, or a
/// URL that is wrong in one part: a usage error naming it, before anything
/// is connected.
#[test]
fn url_usage_errors_name_the_part() {
    let data = temp_file(BODY);
    let (server, _) = start(Script::default());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--url", "smtp://mail.test", "--server", "mail.test"],
            "--server",
        ),
        (&["--url", "smtp://mail.test", "--tls", "none"], "--tls"),
        (&["--url", "smtp://mail.test", "--user", "u"], "--user"),
        (&["--url", "smtp://mail.test", "--auth", "login"], "--auth"),
        (&["--url", "smtp://u:hunter2@mail.test"], "SMTP_PASSWORD"),
        (&["--url", "http://mail.test"], "scheme"),
        (&["--url", "smtp://mail.test:0"], "port"),
        (&["--url", "smtp://mail.test?tls=maybe"], "tls"),
        (&["--url", "smtp://mail.test?bogus=1"], "bogus"),
        (&["--url", "smtp://u@mail.test?auth=cram-md5"], "auth"),
    ];
    for (flags, needle) in cases {
        let mut args: Vec<String> = [
            "--connect",
            &server.addr().to_string(),
            "--from",
            "me@example.com",
            "--to",
            "you@example.org",
            "--data",
            data.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
        .to_vec();
        args.extend(flags.iter().map(|s| s.to_string()));
        let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
        assert_eq!(out.status, 2, "{flags:?}: {}", out.stdout);
        assert_eq!(out.error().0, "usage", "{flags:?}");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains(needle), "{flags:?}: {text}");
        assert!(!out.stdout.contains("hunter2"), "{flags:?}: {}", out.stdout);
    }
    assert_eq!(server.connections(), 0);
}

// ---- completions, man page, help ---------------------------------------------

#[test]
fn completions_man_page_and_help_examples() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell], &[], None);
        assert_eq!(out.status, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("smtp-send"), "{shell}");
        for flag in ["json-lines", "max-time", "url", "header"] {
            assert!(out.stdout.contains(flag), "{shell}: no {flag}");
        }
    }
    let out = run(&["completions", "tcsh"], &[], None);
    assert_eq!(out.status, 2);

    let out = run(&["man"], &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(".TH smtp-send 1"),
        "{}",
        &out.stdout[..200]
    );
    for flag in ["json\\-lines", "max\\-time", "\\-\\-url"] {
        assert!(out.stdout.contains(flag), "man page without {flag}");
    }

    let out = run(&["--help"], &[], None);
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
    for job in [
        "smtp.office365.com",
        "smtp-send probe",
        "Send a test message",
    ] {
        assert!(out.stdout.contains(job), "--help without {job}");
    }
}

// ---- the progress bar -------------------------------------------------------

/// A run of several transactions shows a progress bar on stderr when it is
/// a terminal (checked under a pseudo-terminal with `script`), and none when
/// stderr is a pipe, nor with `--json` or `--transcript` on a terminal.
#[test]
fn a_progress_bar_only_on_a_terminal() {
    let data = temp_file(BODY);
    let under_pty = |extra: &[&str]| -> String {
        let (server, _) = start(Script {
            slow_rcpt: Some(Duration::from_millis(5)),
            ..Script::default()
        });
        let mut args = plain_args(&server, &data);
        args.retain(|a| a != "--json");
        args.extend(["--repeat", "100"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let command = std::iter::once(BIN.to_owned())
            .chain(args)
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let out = Command::new("script")
            .args(["-qec", &format!("{command} >/dev/null"), "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = under_pty(&[]);
    assert!(
        shown.contains("/100 sent") && shown.contains("refused"),
        "{shown:?}"
    );
    for extra in [&["--json"][..], &["--transcript"]] {
        let text = under_pty(extra);
        assert!(!text.contains("/100 sent"), "{extra:?}: {text:?}");
    }
    // stderr a pipe: no bar.
    let (server, _) = start(Script::default());
    let mut args = plain_args(&server, &data);
    args.retain(|a| a != "--json");
    args.extend(["--repeat", "100"].map(String::from));
    let out = run(&strs(&args), &[], None);
    assert_eq!(out.status, 0);
    assert!(!out.stderr.contains("sent"), "{}", out.stderr);
}

/// The refusals Microsoft 365 and Gmail document get a line of advice, in
/// the JSON error message and in human output; another refusal gets none.
#[test]
fn documented_auth_refusals_say_what_to_do() {
    let cases = [
        ("550 5.7.30 Basic authentication is not supported for Client Submission.", Some("OAuth2")),
        ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", Some("Set-CASMailbox")),
        ("535 5.7.3 Authentication unsuccessful", Some("SMTP.Send")),
        ("534 5.7.9 Application-specific password required.", Some("app password")),
        ("535 5.7.8 Username and Password not accepted.", Some("app password")),
        ("535 5.7.0 Authentication failed", None),
    ];
    let data = temp_file(BODY);
    for (reply, advice) in cases {
        for json in [true, false] {
            let (server, _) = start(Script {
                ehlo: vec!["ENHANCEDSTATUSCODES".into(), "AUTH PLAIN LOGIN".into()],
                auth_reply: reply.into(),
                ..Script::default()
            });
            let mut args = base(&server, "localhost", server.port(), &data);
            args.extend(["--tls", "none", "--user", "me@example.com"].map(String::from));
            if !json {
                args.retain(|a| a != "--json");
            }
            let out = run(&strs(&args), &[("SMTP_PASSWORD", "pw")], None);
            assert_eq!(out.status, 1, "{reply}");
            let text = if json {
                assert_eq!(out.error().0, "auth_rejected", "{reply}");
                out.json()["error"]["message"].as_str().unwrap().to_owned()
            } else {
                out.stderr.clone()
            };
            match advice {
                Some(needle) => assert!(
                    text.contains("\nhint: ") && text.contains(needle),
                    "{reply}: {text}"
                ),
                None => assert!(!text.contains("hint:"), "{reply}: {text}"),
            }
        }
    }
}
