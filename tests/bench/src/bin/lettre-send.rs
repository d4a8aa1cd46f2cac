//! A small lettre-based sender for `e2e.sh`, taking the same options as
//! `smtp-send` (the subset the benchmark uses):
//!
//! `lettre-send --server HOST:PORT --from A --to B [--to C ...] --data FILE
//! [--repeat N] [--connections C]`
//!
//! lettre's blocking `SmtpTransport` (`builder_dangerous`: plaintext, no
//! STARTTLS), with its connection pool on (one connection per thread, reused
//! for every message, as a bulk sender would). `send_raw` takes the whole
//! message as one slice, so the file is read into memory first (lettre has
//! no streaming body API). With C connections, C threads each with its own
//! transport; the first `N mod C` send one message more. Prints one JSON
//! line: `{"messages_sent":N,"elapsed_ms":T}`; exits 1 on the first error.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{PoolConfig, SmtpTransport};
use lettre::{Address, Transport};

struct Args {
    host: String,
    port: u16,
    from: String,
    to: Vec<String>,
    data: String,
    repeat: usize,
    connections: usize,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("lettre-send: {msg}");
    eprintln!("usage: lettre-send --server HOST:PORT --from A --to B [--to C ...] --data FILE [--repeat N] [--connections C]");
    ExitCode::from(2)
}

fn parse_args() -> Result<Args, String> {
    let mut server = None;
    let mut from = None;
    let mut to = Vec::new();
    let mut data = None;
    let mut repeat = 1usize;
    let mut connections = 1usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => server = Some(value()?),
            "--from" => from = Some(value()?),
            "--to" => to.push(value()?),
            "--data" => data = Some(value()?),
            "--repeat" => repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "--connections" => {
                connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            // Accepted for command-line compatibility with smtp-send.
            "--tls" => {
                let v = value()?;
                if v != "none" {
                    return Err("only --tls none is supported".into());
                }
            }
            "--json" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let server = server.ok_or("--server is required")?;
    let (host, port) = server
        .rsplit_once(':')
        .ok_or("--server must be HOST:PORT")?;
    let port = port.parse().map_err(|e| format!("port: {e}"))?;
    if to.is_empty() {
        return Err("at least one --to".into());
    }
    if repeat == 0 || connections == 0 {
        return Err("--repeat and --connections must be at least 1".into());
    }
    Ok(Args {
        host: host.to_owned(),
        port,
        from: from.ok_or("--from is required")?,
        to,
        data: data.ok_or("--data is required")?,
        repeat,
        connections: connections.min(repeat),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => return usage(&msg),
    };
    let message = match std::fs::read(&args.data) {
        Ok(bytes) => Arc::new(bytes),
        Err(err) => return usage(&format!("{}: {err}", args.data)),
    };
    let from: Option<Address> = match args.from.as_str() {
        "" => None,
        a => match a.parse() {
            Ok(a) => Some(a),
            Err(err) => return usage(&format!("--from: {err}")),
        },
    };
    let to: Result<Vec<Address>, _> = args.to.iter().map(|a| a.parse()).collect();
    let envelope = match to
        .map_err(|e| e.to_string())
        .and_then(|to| Envelope::new(from, to).map_err(|e| e.to_string()))
    {
        Ok(envelope) => Arc::new(envelope),
        Err(err) => return usage(&format!("envelope: {err}")),
    };

    let start = Instant::now();
    let per = args.repeat / args.connections;
    let extra = args.repeat % args.connections;
    let threads: Vec<_> = (0..args.connections)
        .map(|i| {
            let count = per + usize::from(i < extra);
            let (host, port) = (args.host.clone(), args.port);
            let (message, envelope) = (Arc::clone(&message), Arc::clone(&envelope));
            std::thread::spawn(move || -> Result<usize, String> {
                let transport = SmtpTransport::builder_dangerous(host)
                    .port(port)
                    .hello_name(ClientId::Domain("localhost".into()))
                    .timeout(Some(Duration::from_secs(120)))
                    .pool_config(PoolConfig::new().max_size(1).min_idle(0))
                    .build();
                for sent in 0..count {
                    transport
                        .send_raw(&envelope, &message)
                        .map_err(|e| format!("message {}: {e}", sent + 1))?;
                }
                Ok(count)
            })
        })
        .collect();
    let mut sent = 0usize;
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some("a thread panicked".to_owned())),
        }
    }
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    println!("{{\"messages_sent\":{sent},\"elapsed_ms\":{elapsed_ms:.1}}}");
    match failure {
        Some(e) => {
            eprintln!("lettre-send: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
