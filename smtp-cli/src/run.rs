//! Running a [`Plan`]: C sessions on std threads sharing N transactions.

use crate::plan::{Data, Plan};
use crate::report::{classify, Failure, Kind, Report, TransactionReport};
use smtp_blocking::{Client, Config, Delivery, Error, TranscriptHook};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

/// What one session did.
#[derive(Default)]
struct SessionOutcome {
    /// Whether it connected (got to `Ready`).
    connected: bool,
    tls: bool,
    mechanism: Option<String>,
    offered: Vec<String>,
    transactions: Vec<TransactionReport>,
    /// The failure that ended it, and when.
    error: Option<(Instant, Failure)>,
}

/// Runs the plan: `plan.repeat` transactions over `plan.connections`
/// parallel sessions (the first sessions take one more when they do not
/// divide evenly). A session stops at its first failure, and the others
/// start no new transaction after it. `hook` gets every transcript line.
pub fn run(plan: &Plan, hook: Option<TranscriptHook>) -> Report {
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let connections = plan.connections.clamp(1, plan.repeat.max(1));
    let share = |i: u32| plan.repeat / connections + u32::from(i < plan.repeat % connections);
    let outcomes: Vec<SessionOutcome> = if connections == 1 {
        vec![session(plan, plan.repeat, hook, &stop)]
    } else {
        thread::scope(|scope| {
            let handles: Vec<_> = (0..connections)
                .map(|i| {
                    let (hook, stop) = (hook.clone(), &stop);
                    scope.spawn(move || session(plan, share(i), hook, stop))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| SessionOutcome {
                        error: Some((
                            Instant::now(),
                            Failure::new(Kind::Io, "a session thread panicked"),
                        )),
                        ..SessionOutcome::default()
                    })
                })
                .collect()
        })
    };

    let connected: Vec<&SessionOutcome> = outcomes.iter().filter(|o| o.connected).collect();
    let tls = !connected.is_empty() && connected.iter().all(|o| o.tls);
    let auth_mechanism = connected.iter().find_map(|o| o.mechanism.clone());
    let auth_offered = connected
        .first()
        .map(|o| o.offered.clone())
        .unwrap_or_default();
    let error = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref())
        .min_by_key(|(at, _)| *at)
        .map(|(_, failure)| failure.clone());
    let transactions: Vec<TransactionReport> =
        outcomes.into_iter().flat_map(|o| o.transactions).collect();
    let messages_sent = transactions
        .iter()
        .filter(|t| t.data_code.is_some_and(|c| (200..300).contains(&c)))
        .count();
    let ok = error.is_none()
        && transactions.len() == plan.repeat as usize
        && transactions.iter().all(TransactionReport::delivered);
    Report {
        ok,
        tls,
        auth_mechanism,
        auth_offered,
        transactions,
        messages_sent,
        elapsed: started.elapsed(),
        error,
    }
}

/// One session: connect, `count` transactions, QUIT.
fn session(
    plan: &Plan,
    count: u32,
    hook: Option<TranscriptHook>,
    stop: &AtomicBool,
) -> SessionOutcome {
    let mut outcome = SessionOutcome::default();
    let fail = |outcome: &mut SessionOutcome, failure: Failure| {
        stop.store(true, Ordering::SeqCst);
        outcome.error = Some((Instant::now(), failure));
    };
    let mut config = Config::new(plan.server_name.clone())
        .tls(plan.tls)
        .ehlo_name(plan.helo.clone())
        .allow_insecure_auth(plan.allow_insecure_auth);
    if let Some(credentials) = &plan.credentials {
        config = config.credentials(credentials.clone());
    }
    if let Some(mechanism) = &plan.mechanism {
        config = config.mechanism(mechanism.clone());
    }
    let mut options = plan.options.clone();
    options.transcript = hook;
    let connected = match plan.connect {
        Some(address) => Client::connect_to(address, config, options),
        None => Client::connect(&plan.server_name, plan.port, config, options),
    };
    let mut client = match connected {
        Ok(client) => client,
        Err(err) => {
            fail(&mut outcome, classify(&err));
            return outcome;
        }
    };
    outcome.connected = true;
    outcome.tls = client.is_tls();
    outcome.mechanism = client.auth_mechanism().map(|m| m.as_str().to_owned());
    outcome.offered = client
        .capabilities()
        .auth_mechanisms()
        .iter()
        .map(|m| m.as_str().to_owned())
        .collect();
    // All of this session's messages in one batch: with PIPELINING each
    // rides behind the previous one. A message already in flight when one
    // fails is still sent and reported; none is started after.
    let messages = (0..count).map_while(|_| (!stop.load(Ordering::SeqCst)).then_some(()));
    transactions(&mut client, plan, messages, &mut |result| {
        outcome
            .transactions
            .push(TransactionReport::from_result(&result));
        if let Err(err) = result {
            if outcome.error.is_none() {
                fail(&mut outcome, classify(&err));
            }
        }
    });
    // The messages are in (or the failure is known): a failed QUIT changes
    // neither.
    let _ = client.quit();
    outcome
}

/// The plan's message once per item of `messages`, over one connection.
fn transactions(
    client: &mut Client,
    plan: &Plan,
    messages: impl Iterator<Item = ()>,
    on_result: &mut dyn FnMut(Result<Delivery, Error>),
) {
    let envelope = &plan.envelope;
    match &plan.data {
        Data::File {
            path,
            size,
            body,
            wire,
        } => {
            let envelope = envelope.clone().size(*size).body(*body).exact_size(*wire);
            // Reopened per transaction: streamed, never held in memory.
            client.send_each(
                messages.map(|()| (envelope.clone(), Reopen::new(path))),
                on_result,
            )
        }
        Data::Memory(body) => {
            let envelope = envelope.clone().for_body(body);
            client.send_each(
                messages.map(|()| (envelope.clone(), body.as_slice())),
                on_result,
            )
        }
        Data::Stdin => on_result(client.send_reader(envelope.clone(), io::stdin().lock())),
        Data::Pipe(pipe) => {
            let taken = pipe.lock().unwrap_or_else(|p| p.into_inner()).take();
            on_result(match taken {
                Some(pipe) => client.send_reader(envelope.clone(), pipe),
                None => Err(Error::BodyRead(io::Error::other(
                    "the --data pipe was already read",
                ))),
            })
        }
    }
}

/// A file opened when its first byte is wanted, so a batch holds one file
/// open at a time.
struct Reopen<'a> {
    path: &'a Path,
    file: Option<File>,
}

impl<'a> Reopen<'a> {
    fn new(path: &'a Path) -> Reopen<'a> {
        Reopen { path, file: None }
    }
}

impl Read for Reopen<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.file.is_none() {
            let file = File::open(self.path).map_err(|err| {
                io::Error::new(err.kind(), format!("{}: {err}", self.path.display()))
            })?;
            self.file = Some(file);
        }
        match self.file.as_mut() {
            Some(file) => file.read(buf),
            None => Ok(0),
        }
    }
}
