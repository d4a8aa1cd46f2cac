//! What the pooled tokio senders (`pool-send`, `lettre-pool-send`,
//! `mail-send-send`) share: the command line (`lettre-send`'s, plus
//! `--tasks`), how the messages are split between the tasks, and the report.
//!
//! `NAME --server HOST:PORT --from A --to B [--to C ...] --data FILE
//! --repeat N --connections C [--tasks T]` (T defaults to 64), plus the
//! flags a sender adds (`--window W`, ...). `--tls none` and `--json` are
//! accepted and ignored, as by `lettre-send`, for command-line compatibility
//! with `smtp-send`.
//!
//! The N messages are split statically: task `i` of T sends `N / T`, the
//! first `N mod T` one more. The first failure stops every task before its
//! next message; the report then counts the messages sent until then.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The parsed command line.
#[derive(Debug)]
pub struct Args {
    /// The sender's name, for messages.
    pub name: &'static str,
    /// `--server`, as given (`HOST:PORT`).
    pub server: String,
    /// `--server`'s host.
    pub host: String,
    /// `--server`'s port.
    pub port: u16,
    /// `--from`: the reverse-path; empty for the null reverse-path `<>`.
    pub from: String,
    /// `--to`, at least one.
    pub to: Vec<String>,
    /// `--data`: the message file.
    pub data: String,
    /// `--repeat`: the messages to send in all.
    pub repeat: usize,
    /// `--connections`: at most this many (not more than `repeat`).
    pub connections: usize,
    /// `--tasks`: concurrent tokio tasks (not more than `repeat`).
    pub tasks: usize,
}

impl Args {
    /// How many messages task `task` sends.
    pub fn share(&self, task: usize) -> usize {
        self.repeat / self.tasks + usize::from(task < self.repeat % self.tasks)
    }
}

/// A command-line error: prints it and the usage, exit status 2.
pub fn usage(name: &str, extra_usage: &str, msg: &str) -> ExitCode {
    eprintln!("{name}: {msg}");
    eprintln!(
        "usage: {name} --server HOST:PORT --from A --to B [--to C ...] --data FILE [--repeat N] [--connections C] [--tasks T]{extra_usage}"
    );
    ExitCode::from(2)
}

/// Parses the command line; `extra` is offered every flag not known here
/// with a way to take its value, and returns whether it took the flag.
pub fn parse_args(
    name: &'static str,
    mut extra: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<bool, String>,
) -> Result<Args, String> {
    let mut server = None;
    let mut from = None;
    let mut to = Vec::new();
    let mut data = None;
    let mut repeat = 1usize;
    let mut connections = 1usize;
    let mut tasks = 64usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--server" => server = Some(value()?),
            "--from" => from = Some(value()?),
            "--to" => to.push(value()?),
            "--data" => data = Some(value()?),
            "--repeat" => repeat = number(value()?)?,
            "--connections" => connections = number(value()?)?,
            "--tasks" => tasks = number(value()?)?,
            "--tls" => {
                if value()? != "none" {
                    return Err("only --tls none is supported".into());
                }
            }
            "--json" => {}
            other => {
                if !extra(other, &mut value)? {
                    return Err(format!("unknown argument {other}"));
                }
            }
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
    if repeat == 0 || connections == 0 || tasks == 0 {
        return Err("--repeat, --connections and --tasks must be at least 1".into());
    }
    Ok(Args {
        name,
        host: host.to_owned(),
        port,
        server,
        from: from.ok_or("--from is required")?,
        to,
        data: data.ok_or("--data is required")?,
        repeat,
        connections: connections.min(repeat),
        tasks: tasks.min(repeat),
    })
}

/// Counts the messages sent and keeps the first failure, which stops
/// every task before its next message.
#[derive(Debug, Default)]
pub struct Progress {
    sent: AtomicUsize,
    stopped: AtomicBool,
    failure: std::sync::Mutex<Option<String>>,
}

impl Progress {
    /// Whether a task failed: send no more.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Counts `n` messages sent.
    pub fn sent(&self, n: usize) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a failure (only the first is kept) and stops every task.
    pub fn fail(&self, failure: String) {
        self.stopped.store(true, Ordering::Relaxed);
        let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(failure);
    }

    /// Prints `{"messages_sent":N,"elapsed_ms":T}`, and the failure if any
    /// to stderr: exit status 0, or 1 after a failure.
    pub fn report(&self, name: &str, elapsed: Duration) -> ExitCode {
        let sent = self.sent.load(Ordering::Relaxed);
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        println!("{{\"messages_sent\":{sent},\"elapsed_ms\":{elapsed_ms:.1}}}");
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(failure) => {
                eprintln!("{name}: {failure}");
                ExitCode::FAILURE
            }
            None => ExitCode::SUCCESS,
        }
    }
}
