//! lettre's tokio transport, for the pooled end-to-end workload (many tokio
//! tasks, few connections): T tokio tasks share one
//! `AsyncSmtpTransport<Tokio1Executor>` with lettre's pool of C connections.
//!
//! `lettre-pool-send --server HOST:PORT --from A --to B [--to C ...]
//! --data FILE --repeat N --connections C [--tasks T] [--cap]`
//!
//! The transport: `builder_dangerous(HOST).port(PORT)` (plaintext, no
//! STARTTLS, no AUTH), EHLO `localhost`, a 120 s timeout (as `lettre-send`),
//! `PoolConfig::new().max_size(C)` (other pool settings default). It is a
//! cheap clone (an `Arc` of the pool), one per task. The file is read once
//! into memory; N sends in all, split between T tasks (default 64; task `i`
//! sends `N / T`, the first `N mod T` one more), each looping
//! `send_raw(&envelope, &body)` and awaiting each result before its next
//! send. lettre sends one command at a time (no PIPELINING), a NOOP before
//! each reuse of a pooled connection (its liveness check), and DATA only;
//! it appends `CRLF . CRLF` to the body, so the server receives the file plus
//! one empty line (2 bytes), like `lettre-send`. The transport is shut down
//! (`AsyncTransport::shutdown`) before the clock stops; connecting is timed
//! too. A multi-thread tokio runtime with the default worker threads.
//!
//! lettre's `max_size` bounds the *idle* connections only: a send that finds
//! none idle opens a new one, and a connection coming back to a full idle
//! list is closed. So with T > C concurrent sends lettre opens up to T
//! connections, and may open and close more along the way. `--cap` holds
//! one of C permits (a tokio `Semaphore`) around each `send_raw`, so that at
//! most C connections are in use at once, which is what the workload (C
//! connections) means; without it, lettre as configured. Even so a few more
//! than C get opened: lettre puts a connection back on its idle list from a
//! task it spawns when the send returns, so the next send may find none
//! idle yet, open one, and the surplus is closed on its return.
//!
//! Prints one JSON line: `{"messages_sent":N,"elapsed_ms":T}`; exits 1 on
//! the first error (printed to stderr), 2 on a bad command line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_bench::pooled::{parse_args, usage, Progress};
use tokio::sync::Semaphore;

const NAME: &str = "lettre-pool-send";
const EXTRA_USAGE: &str = " [--cap]";

fn main() -> ExitCode {
    let mut cap = false;
    let args = match parse_args(NAME, |flag, _| match flag {
        "--cap" => {
            cap = true;
            Ok(true)
        }
        _ => Ok(false),
    }) {
        Ok(args) => args,
        Err(msg) => return usage(NAME, EXTRA_USAGE, &msg),
    };
    let body: Arc<[u8]> = match std::fs::read(&args.data) {
        Ok(bytes) => bytes.into(),
        Err(err) => return usage(NAME, EXTRA_USAGE, &format!("{}: {err}", args.data)),
    };
    let from: Option<Address> = match args.from.as_str() {
        "" => None,
        a => match a.parse() {
            Ok(a) => Some(a),
            Err(err) => return usage(NAME, EXTRA_USAGE, &format!("--from: {err}")),
        },
    };
    let to: Result<Vec<Address>, _> = args.to.iter().map(|a| a.parse()).collect();
    let envelope = match to
        .map_err(|e| e.to_string())
        .and_then(|to| Envelope::new(from, to).map_err(|e| e.to_string()))
    {
        Ok(envelope) => Arc::new(envelope),
        Err(err) => return usage(NAME, EXTRA_USAGE, &format!("envelope: {err}")),
    };

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
    let permits = cap.then(|| Arc::new(Semaphore::new(args.connections)));
    let start = Instant::now();
    runtime.block_on(async {
        let transport: AsyncSmtpTransport<Tokio1Executor> =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(args.host.as_str())
                .port(args.port)
                .hello_name(ClientId::Domain("localhost".into()))
                .timeout(Some(Duration::from_secs(120)))
                .pool_config(PoolConfig::new().max_size(args.connections as u32))
                .build();
        let tasks: Vec<_> = (0..args.tasks)
            .map(|task| {
                let count = args.share(task);
                let (transport, body) = (transport.clone(), Arc::clone(&body));
                let (envelope, progress) = (Arc::clone(&envelope), Arc::clone(&progress));
                let permits = permits.clone();
                tokio::spawn(async move {
                    for n in 1..=count {
                        if progress.stopped() {
                            return;
                        }
                        let _permit = match &permits {
                            Some(permits) => match permits.acquire().await {
                                Ok(permit) => Some(permit),
                                Err(err) => return progress.fail(err.to_string()),
                            },
                            None => None,
                        };
                        match transport.send_raw(&envelope, &body).await {
                            Ok(_) => progress.sent(1),
                            Err(err) => {
                                return progress.fail(format!("task {task}, message {n}: {err}"))
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            if let Err(err) = task.await {
                progress.fail(format!("a task failed: {err}"));
            }
        }
        transport.shutdown().await;
    });
    progress.report(NAME, start.elapsed())
}
