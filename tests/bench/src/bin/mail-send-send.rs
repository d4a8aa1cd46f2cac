//! Stalwart's `mail-send` (0.5), for the pooled end-to-end workload (many
//! tokio tasks, few connections). mail-send has no pool: C `SmtpClient`s,
//! each in a `tokio::sync::Mutex`, shared by T tokio tasks, task `i` always
//! using client `i mod C`. A fixed assignment rather than a channel of free
//! clients: tokio's mutex is fair (FIFO), so the T/C tasks of a client take
//! turns; with the static split below every client carries N/C messages
//! (give or take T/C), and a client only idles once its tasks are done.
//!
//! `mail-send-send --server HOST:PORT --from A --to B [--to C ...]
//! --data FILE --repeat N --connections C [--tasks T] [--bdat] [--nodelay]`
//!
//! Connecting: `SmtpClientBuilder::new(HOST, PORT).implicit_tls(false)
//! .helo_host("localhost").say_ehlo(false).connect_plain()` (plaintext, no
//! STARTTLS, no AUTH; a 120 s timeout, as `lettre-send`), then EHLO with
//! `capabilities("localhost", false)`, which is what `connect_plain` does
//! itself with `say_ehlo(true)`, but keeps the reply, for `--bdat`. The C
//! clients connect concurrently, on the clock.
//!
//! Sending: the file is read once into memory; N sends in all, split between
//! T tasks (default 64; task `i` sends `N / T`, the first `N mod T` one
//! more), each taking its client's lock for one message at a time. By
//! default `SmtpClient::send` of a `Message` built by hand (no
//! mail-builder): the envelope (`MAIL FROM:<A>`, `RCPT TO:<B>`...) and the
//! body as `Cow::Borrowed` of the file's bytes, neither parsed nor copied;
//! mail-send sends one command at a time (no PIPELINING), then DATA,
//! dot-stuffs the body and appends `CRLF . CRLF`, so the server receives the
//! file plus one empty line (2 bytes), as from lettre. `--bdat` instead
//! calls `mail_from`, `rcpt_to` and `bdat` (`BDAT n LAST`), one round trip
//! fewer, and exactly the file's bytes; it needs CHUNKING in the EHLO reply
//! (else an error). `--nodelay` sets TCP_NODELAY on each client's socket
//! (`SmtpClient::stream` is public): mail-send writes a body and its end
//! (or a BDAT command and its chunk) as separate small writes, which Nagle's
//! algorithm otherwise holds back until the server's (delayed) ACK. Without
//! the flags, mail-send as a user gets it. Each client QUITs at the end,
//! before the clock stops. A multi-thread tokio runtime with the default
//! worker threads.
//!
//! Prints one JSON line: `{"messages_sent":N,"elapsed_ms":T}`; exits 1 on
//! the first error (printed to stderr), 2 on a bad command line.

use std::borrow::Cow;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_send::smtp::message::{Address, Message, Parameters};
use mail_send::{SmtpClient, SmtpClientBuilder};
use smtp_bench::pooled::{parse_args, usage, Args, Progress};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const NAME: &str = "mail-send-send";
const EXTRA_USAGE: &str = " [--bdat] [--nodelay]";
const TIMEOUT: Duration = Duration::from_secs(120);

/// How each message goes.
#[derive(Clone, Copy, Debug)]
struct Mode {
    bdat: bool,
    nodelay: bool,
}

/// Opens one plaintext client, EHLO done; with `--bdat`, checks CHUNKING.
async fn connect(args: &Args, mode: Mode) -> Result<SmtpClient<TcpStream>, String> {
    let mut client = SmtpClientBuilder::new(args.host.as_str(), args.port)
        .implicit_tls(false)
        .helo_host("localhost")
        .say_ehlo(false)
        .timeout(TIMEOUT)
        .connect_plain()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let ehlo = client
        .capabilities("localhost", false)
        .await
        .map_err(|e| format!("EHLO: {e}"))?;
    if mode.bdat && !ehlo.has_capability(stalwart_smtp_proto::EXT_CHUNKING) {
        return Err("--bdat: the server does not offer CHUNKING".into());
    }
    if mode.nodelay {
        client
            .stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    }
    Ok(client)
}

/// Sends one message on `client`.
async fn send_one(
    client: &mut SmtpClient<TcpStream>,
    message: &Message<'_>,
    mode: Mode,
) -> mail_send::Result<()> {
    if mode.bdat {
        client
            .mail_from(&message.mail_from.email, &message.mail_from.parameters)
            .await?;
        for rcpt in &message.rcpt_to {
            client.rcpt_to(&rcpt.email, &rcpt.parameters).await?;
        }
        client.bdat(&message.body).await
    } else {
        client.send(message.clone()).await
    }
}

fn main() -> ExitCode {
    let mut mode = Mode {
        bdat: false,
        nodelay: false,
    };
    let args = match parse_args(NAME, |flag, _| {
        match flag {
            "--bdat" => mode.bdat = true,
            "--nodelay" => mode.nodelay = true,
            _ => return Ok(false),
        }
        Ok(true)
    }) {
        Ok(args) => Arc::new(args),
        Err(msg) => return usage(NAME, EXTRA_USAGE, &msg),
    };
    let body: Arc<[u8]> = match std::fs::read(&args.data) {
        Ok(bytes) => bytes.into(),
        Err(err) => return usage(NAME, EXTRA_USAGE, &format!("{}: {err}", args.data)),
    };
    // More clients than tasks would never be used.
    let connections = args.connections.min(args.tasks);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{NAME}: runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    runtime.block_on(async {
        let connecting: Vec<_> = (0..connections)
            .map(|_| {
                let args = Arc::clone(&args);
                tokio::spawn(async move { connect(&args, mode).await })
            })
            .collect();
        let mut clients = Vec::with_capacity(connections);
        for (i, connecting) in connecting.into_iter().enumerate() {
            match connecting.await {
                Ok(Ok(client)) => clients.push(Arc::new(Mutex::new(client))),
                Ok(Err(err)) => progress.fail(format!("client {i}: {err}")),
                Err(err) => progress.fail(format!("client {i}: {err}")),
            }
        }
        if progress.stopped() {
            return;
        }
        let tasks: Vec<_> = (0..args.tasks)
            .map(|task| {
                let count = args.share(task);
                let client = Arc::clone(&clients[task % connections]);
                let (args, body) = (Arc::clone(&args), Arc::clone(&body));
                let progress = Arc::clone(&progress);
                tokio::spawn(async move {
                    // Borrowed throughout: a clone per message copies no bytes.
                    let message = Message {
                        mail_from: Address::new(args.from.as_str(), Parameters::new()),
                        rcpt_to: (args.to.iter())
                            .map(|to| Address::new(to.as_str(), Parameters::new()))
                            .collect(),
                        body: Cow::Borrowed(&body[..]),
                    };
                    for n in 1..=count {
                        if progress.stopped() {
                            return;
                        }
                        let mut client = client.lock().await;
                        if let Err(err) = send_one(&mut client, &message, mode).await {
                            return progress.fail(format!("task {task}, message {n}: {err}"));
                        }
                        drop(client);
                        progress.sent(1);
                    }
                })
            })
            .collect();
        for task in tasks {
            if let Err(err) = task.await {
                progress.fail(format!("a task failed: {err}"));
            }
        }
        for (i, client) in clients.into_iter().enumerate() {
            let Ok(client) = Arc::try_unwrap(client) else {
                continue;
            };
            if let Err(err) = client.into_inner().quit().await {
                if !progress.stopped() {
                    progress.fail(format!("client {i}: QUIT: {err}"));
                }
            }
        }
    });
    progress.report(NAME, start.elapsed())
}
