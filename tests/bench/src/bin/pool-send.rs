//! Ours, for the pooled end-to-end workload (many tokio tasks, few
//! connections): T tokio tasks share one `smtp_tokio::pool::Pool` of at
//! most C connections.
//!
//! `pool-send --server HOST:PORT --from A --to B [--to C ...] --data FILE
//! --repeat N --connections C [--tasks T] [--window W]`
//!
//! The file (a complete RFC 5322 message, CRLF line ends) is read once into
//! memory; N sends of it in all, split between T tasks (default 64; task
//! `i` sends `N / T`, the first `N mod T` one more), each looping
//! `pool.send(envelope.clone(), &body)` and awaiting each result before its
//! next send. The pool (`PoolOptions::max_size(C)`, other options default)
//! connects with `Connector::to_addr` to the first address `HOST:PORT`
//! resolves to, plaintext (`TlsPolicy::Disabled`: no TLS, no STARTTLS, no
//! AUTH), EHLO `localhost`, default `Options`; it sends each body as is
//! (dot-stuffed for DATA, or `BDAT n LAST` with exact sizes when the server
//! offers CHUNKING), so the server receives exactly the file's bytes.
//! `--window W` sets `Config::window(W)` (transactions in flight per
//! connection with PIPELINING and CHUNKING); without it the default stands.
//! A message with a refused recipient counts as a failure. The pool is
//! closed (QUIT on each connection) before the clock stops; connecting is
//! timed too. A multi-thread tokio runtime with the default worker threads.
//! Prints one JSON line: `{"messages_sent":N,"elapsed_ms":T}`; exits 1 on
//! the first error (printed to stderr), 2 on a bad command line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use smtp_bench::pooled::{parse_args, usage, Progress};
use smtp_tokio::pool::{Connector, Pool, PoolOptions};
use smtp_tokio::{Address, Config, Envelope, Options, TlsPolicy};

const NAME: &str = "pool-send";
const EXTRA_USAGE: &str = " [--window W]";

fn main() -> ExitCode {
    let mut window = None;
    let args = match parse_args(NAME, |flag, value| match flag {
        "--window" => {
            let w = value()?.parse().map_err(|e| format!("--window: {e}"))?;
            window = Some(w);
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
    let addr: SocketAddr = match args.server.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => return usage(NAME, EXTRA_USAGE, "--server: no address"),
        Err(err) => return usage(NAME, EXTRA_USAGE, &format!("--server: {err}")),
    };
    let from = match args.from.as_str() {
        "" => None,
        a => match Address::new(a) {
            Ok(a) => Some(a),
            Err(err) => return usage(NAME, EXTRA_USAGE, &format!("--from: {err}")),
        },
    };
    let to: Result<Vec<Address>, _> = args.to.iter().map(|a| Address::new(a.as_str())).collect();
    let envelope = match to
        .map_err(|e| e.to_string())
        .and_then(|to| Envelope::new(from, to).map_err(|e| e.to_string()))
    {
        Ok(envelope) => envelope,
        Err(err) => return usage(NAME, EXTRA_USAGE, &format!("envelope: {err}")),
    };
    let mut config = Config::new("localhost").tls(TlsPolicy::Disabled);
    if let Some(w) = window {
        config = config.window(w);
    }

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
        let pool = Pool::new(
            Connector::to_addr(addr, config, Options::new()),
            PoolOptions::new().max_size(args.connections),
        );
        let tasks: Vec<_> = (0..args.tasks)
            .map(|task| {
                let count = args.share(task);
                let (pool, body, envelope) = (pool.clone(), Arc::clone(&body), envelope.clone());
                let progress = Arc::clone(&progress);
                tokio::spawn(async move {
                    for n in 1..=count {
                        if progress.stopped() {
                            return;
                        }
                        match pool.send(envelope.clone(), &body).await {
                            Ok(delivery) => match delivery.rejected().next() {
                                None => progress.sent(1),
                                Some(refused) => {
                                    return progress.fail(format!(
                                        "task {task}, message {n}: recipient refused: {refused:?}"
                                    ))
                                }
                            },
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
        pool.close().await;
    });
    progress.report(NAME, start.elapsed())
}
