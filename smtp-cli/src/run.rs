//! Running a [`Plan`]: C sessions on std threads sharing N transactions.

use crate::plan::{self, Capped, Data, Measure, MeasureError, Plan, Stamp};
use crate::progress::Progress;
use crate::report::{
    classify, Failure, JsonLines, JsonReport, Kind, Report, ReportSpool, SessionLines,
    SessionSpool, TransactionReport, TransactionSink, SHOWN,
};
use smtp_blocking::{Client, Config, Delivery, Error, TranscriptHook};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    tally: Tally,
    /// The failure that ended it, and when.
    error: Option<(Instant, Failure)>,
    /// The connection, left open for [`Open::quit`].
    client: Option<Client>,
}

/// What a session keeps of its transactions: counts, and the ones the human
/// summary may list (never all of them).
#[derive(Default)]
struct Tally {
    attempted: usize,
    sent: usize,
    undelivered: usize,
    /// Its first transaction, and later ones while the whole run has seen
    /// at most [`SHOWN`]: what the summary lists is among them.
    kept: Vec<TransactionReport>,
}

impl Tally {
    /// Counts `t`; `seen` counts the transactions of every session.
    fn add(&mut self, t: TransactionReport, seen: &AtomicUsize) {
        self.attempted += 1;
        self.sent += usize::from(t.sent());
        self.undelivered += usize::from(!t.delivered());
        let nth = seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.kept.is_empty() || nth <= SHOWN {
            self.kept.push(t);
        }
    }
}

/// A finished run: the report, and the connections still to be closed with
/// QUIT once it is out. Every result is known before QUIT, so a server that
/// is slow to answer QUIT never holds the report back.
pub struct Finished {
    /// What the run did.
    pub report: Report,
    /// The connections still open.
    pub open: Open,
}

/// What every session of a run shares.
#[derive(Clone, Copy)]
struct Shared<'r> {
    plan: &'r Plan,
    /// The `--data` file's latest measurement, for a [`Data::File`].
    latest: Option<&'r Mutex<Measure>>,
    /// Set at the first failure: no session starts a transaction after it.
    stop: &'r AtomicBool,
    /// The transactions of every session so far.
    seen: &'r AtomicUsize,
    progress: Option<&'r Progress>,
}

/// Where each transaction's outcome goes as it comes, besides the counts.
pub enum Output<'r, 'a> {
    /// Nowhere: the human summary needs only the counts.
    Summary,
    /// `--json`: into the one object.
    Json(&'r mut JsonReport<'a>),
    /// `--json-lines`: a line each, from every session.
    Lines(&'r JsonLines<'a>),
}

/// Connections whose transactions are over, waiting for QUIT.
pub struct Open(Vec<Client>);

impl Open {
    /// Sends QUIT on every connection still open, all at once, each waiting
    /// for its reply at most the QUIT timeout; a failed QUIT changes nothing
    /// that was reported.
    pub fn quit(self) {
        let mut clients = self.0;
        match clients.len() {
            0 => {}
            1 => {
                if let Some(client) = clients.pop() {
                    let _ = client.quit();
                }
            }
            _ => thread::scope(|scope| {
                for client in clients {
                    scope.spawn(move || {
                        let _ = client.quit();
                    });
                }
            }),
        }
    }
}

/// Runs the plan: `plan.repeat` transactions over `plan.connections`
/// parallel sessions (the first sessions take one more when they do not
/// divide evenly). A session stops at its first failure, and the others
/// start no new transaction after it. `hook` gets every transcript line.
/// With `json`, every transaction goes to it, by session then order: the
/// first session's as they come, each other session's from its part of a
/// [`ReportSpool`] once the sessions before it are done. The connections
/// stay open: [`Open::quit`] closes them.
pub fn run(
    plan: &Plan,
    hook: Option<TranscriptHook>,
    output: Output<'_, '_>,
    progress: Option<&Progress>,
) -> Finished {
    let (mut json, lines) = match output {
        Output::Summary => (None, None),
        Output::Json(json) => (Some(json), None),
        Output::Lines(lines) => (None, Some(lines)),
    };
    // With --json-lines every session writes its own lines as they come.
    let mut session_lines: Vec<SessionLines> = match lines {
        Some(lines) => (0..plan.connections.clamp(1, plan.repeat.max(1)))
            .map(|i| lines.session(i))
            .collect(),
        None => Vec::new(),
    };
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let seen = AtomicUsize::new(0);
    // One measurement for all sessions: a changed file is measured again
    // once, not once per session.
    let latest = match &plan.data {
        Data::File { measure, .. } => Some(Mutex::new(*measure)),
        _ => None,
    };
    let latest = latest.as_ref();
    let connections = plan.connections.clamp(1, plan.repeat.max(1));
    let share = |i: u32| plan.repeat / connections + u32::from(i < plan.repeat % connections);
    let outcomes: Vec<SessionOutcome> = if connections == 1 {
        let sink = match session_lines.first_mut() {
            Some(lines) => Some(lines as &mut dyn TransactionSink),
            None => json.as_deref_mut().map(|j| j as &mut dyn TransactionSink),
        };
        let shared = Shared {
            plan,
            latest,
            stop: &stop,
            seen: &seen,
            progress,
        };
        vec![session(&shared, plan.repeat, hook, sink)]
    } else {
        let shared = json.as_ref().map(|_| ReportSpool::new());
        let mut spools: Vec<SessionSpool> = match &shared {
            Some(shared) => (1..connections).map(|_| shared.session()).collect(),
            None => Vec::new(),
        };
        let mut sinks: Vec<Option<&mut dyn TransactionSink>> = Vec::new();
        if !session_lines.is_empty() {
            sinks.extend(
                session_lines
                    .iter_mut()
                    .map(|s| Some(s as &mut dyn TransactionSink)),
            );
        } else {
            sinks.push(json.as_deref_mut().map(|j| j as &mut dyn TransactionSink));
            if spools.is_empty() {
                sinks.extend((1..connections).map(|_| None));
            } else {
                sinks.extend(
                    spools
                        .iter_mut()
                        .map(|s| Some(s as &mut dyn TransactionSink)),
                );
            }
        }
        let outcomes = thread::scope(|scope| {
            let handles: Vec<_> = sinks
                .into_iter()
                .zip(0..connections)
                .map(|(sink, i)| {
                    let hook = hook.clone();
                    let shared = Shared {
                        plan,
                        latest,
                        stop: &stop,
                        seen: &seen,
                        progress,
                    };
                    scope.spawn(move || session(&shared, share(i), hook, sink))
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
        });
        if let Some(json) = json {
            for spool in spools {
                json.append(spool);
            }
        }
        outcomes
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
    let mut clients = Vec::new();
    let (mut attempted, mut messages_sent, mut undelivered) = (0, 0, 0);
    let mut shown: Vec<TransactionReport> = Vec::new();
    for outcome in outcomes {
        attempted += outcome.tally.attempted;
        messages_sent += outcome.tally.sent;
        undelivered += outcome.tally.undelivered;
        shown.extend(outcome.tally.kept);
        clients.extend(outcome.client);
    }
    // All of them were kept when there are at most SHOWN; else the first
    // is the first kept (every session keeps its first).
    if attempted > SHOWN {
        shown.truncate(1);
    }
    let ok = error.is_none() && attempted == plan.repeat as usize && undelivered == 0;
    let report = Report {
        ok,
        tls,
        auth_mechanism,
        token_source: plan.token_source,
        auth_offered,
        attempted,
        shown,
        messages_sent,
        elapsed: started.elapsed(),
        error,
    };
    Finished {
        report,
        open: Open(clients),
    }
}

/// One session: connect, then `count` transactions, each handed to `sink`
/// as its result comes; the connection is handed back for QUIT after the
/// report. `latest` is the `--data` file's latest measurement, for a
/// [`Data::File`]; `seen` counts the transactions of every session.
fn session(
    shared: &Shared<'_>,
    count: u32,
    hook: Option<TranscriptHook>,
    mut sink: Option<&mut dyn TransactionSink>,
) -> SessionOutcome {
    let Shared {
        plan,
        latest,
        stop,
        seen,
        progress,
    } = *shared;
    let mut outcome = SessionOutcome::default();
    let fail = |outcome: &mut SessionOutcome, failure: Failure| {
        stop.store(true, Ordering::SeqCst);
        outcome.error = Some((Instant::now(), failure));
    };
    let mut config = Config::new(plan.server_name.clone())
        .tls(plan.tls)
        .ehlo_name(plan.helo.clone())
        .allow_insecure_auth(plan.allow_insecure_auth)
        .window(plan.window);
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
    transactions(&mut client, plan, latest, count, messages, &mut |result| {
        let t = TransactionReport::from_result(&result);
        if let Some(sink) = sink.as_deref_mut() {
            sink.transaction(&t);
        }
        if let Some(progress) = progress {
            progress.record(&t);
        }
        outcome.tally.add(t, seen);
        if let Err(err) = result {
            if outcome.error.is_none() {
                fail(&mut outcome, classify(&err));
            }
        }
    });
    // The messages are in (or the failure is known): QUIT waits for the
    // report, which it can change nothing in.
    outcome.client = Some(client);
    outcome
}

/// The plan's message once per item of `messages` (at most `count`), over
/// one connection.
fn transactions(
    client: &mut Client,
    plan: &Plan,
    latest: Option<&Mutex<Measure>>,
    count: u32,
    messages: impl Iterator<Item = ()>,
    on_result: &mut dyn FnMut(Result<Delivery, Error>),
) {
    let envelope = &plan.envelope;
    match &plan.data {
        Data::File { path, measure } => {
            let fallback = Mutex::new(*measure);
            let latest = latest.unwrap_or(&fallback);
            // A transaction whose file cannot be measured is not started:
            // the batch ends there, the transactions in flight finish, and
            // its failure is reported after them, with the connection still
            // in step for QUIT.
            let mut unmeasured = None;
            let connections = plan.connections.clamp(1, plan.repeat.max(1));
            let hold =
                count > 1 && measure.size.saturating_mul(u64::from(connections)) <= plan.hold;
            if hold {
                // Read once per version of the file, as it was measured,
                // and written from memory for every transaction.
                let mut held: Option<(Stamp, Held)> = None;
                let messages = messages.map_while(|()| {
                    let message = current(path, latest).and_then(|measure| {
                        let body = match &held {
                            Some((stamp, body)) if *stamp == measure.stamp => body.clone(),
                            _ => {
                                let body = Held(Arc::new(read_measured(path, measure)?));
                                held = Some((measure.stamp, body.clone()));
                                body
                            }
                        };
                        let envelope = envelope
                            .clone()
                            .size(measure.size)
                            .body(measure.body)
                            .exact_size(measure.wire);
                        Ok((envelope, body))
                    });
                    message.map_err(|err| unmeasured = Some(err)).ok()
                });
                client.send_each_bytes(messages, &mut *on_result);
                if let Some(err) = unmeasured {
                    on_result(Err(Error::BodyRead(err)));
                }
                return;
            }
            let messages = messages.map_while(|()| match current(path, latest) {
                Ok(measure) => {
                    let envelope = envelope
                        .clone()
                        .size(measure.size)
                        .body(measure.body)
                        .exact_size(measure.wire);
                    // Reopened per transaction: streamed, never held in memory.
                    Some((envelope, Reopen::new(path, measure)))
                }
                Err(err) => {
                    unmeasured = Some(err);
                    None
                }
            });
            client.send_each(messages, &mut *on_result);
            if let Some(err) = unmeasured {
                on_result(Err(Error::BodyRead(err)));
            }
        }
        Data::Memory(body) => {
            let envelope = envelope.clone().for_body(body);
            client.send_each_bytes(
                messages.map(|()| (envelope.clone(), Held(Arc::clone(body)))),
                on_result,
            )
        }
        Data::Spooled(spool) => {
            let envelope = envelope
                .clone()
                .size(spool.size)
                .body(spool.body)
                .exact_size(spool.wire);
            client.send_each(
                messages.map(|()| (envelope.clone(), spool.reader())),
                on_result,
            )
        }
        Data::Stdin { limit } => on_result(client.send_reader(
            envelope.clone(),
            Capped::new(io::stdin().lock(), *limit, "-"),
        )),
        Data::Pipe { path, file, limit } => {
            let taken = file.lock().unwrap_or_else(|p| p.into_inner()).take();
            on_result(match taken {
                Some(pipe) => client.send_reader(
                    envelope.clone(),
                    Capped::new(pipe, *limit, path.display().to_string()),
                ),
                None => Err(Error::BodyRead(io::Error::other(
                    "the --data pipe was already read",
                ))),
            })
        }
    }
}

/// The measurement of the file as it is now: `latest` if the file still
/// has its stamp, else a new one (which becomes `latest`).
fn current(path: &Path, latest: &Mutex<Measure>) -> io::Result<Measure> {
    // Held while measuring, so that sessions wanting the same new
    // measurement wait for it rather than each read the file.
    let mut latest = latest.lock().unwrap_or_else(PoisonError::into_inner);
    let stamp = std::fs::metadata(path)
        .map(|metadata| Stamp::of(&metadata))
        .map_err(|err| with_path(path, err))?;
    if stamp != latest.stamp {
        *latest = plan::measure(path).map_err(|err| match err {
            MeasureError::Read(err) => with_path(path, err),
            MeasureError::Changed => io::Error::other(format!(
                "--data {}: {}",
                path.display(),
                MeasureError::Changed
            )),
        })?;
    }
    Ok(*latest)
}

/// The file as `measure` describes it, read whole: [`Reopen`]'s checks.
fn read_measured(path: &Path, measure: Measure) -> io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(usize::try_from(measure.size).unwrap_or(0));
    Reopen::new(path, measure).read_to_end(&mut body)?;
    Ok(body)
}

/// A `--data` file held in memory, shared by the transactions that send it.
#[derive(Debug, Clone)]
struct Held(Arc<Vec<u8>>);

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn with_path(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("--data {}: {err}", path.display()))
}

/// A file opened when its first byte is wanted, so a batch holds one file
/// open at a time, and read as the version `measure` describes: exactly
/// `measure.size` bytes, or an error.
///
/// The envelope already declared the measured size (with BDAT, the exact
/// number of octets the server will read as the message), so bytes past
/// it, or too few, would make a wrong message or desynchronise the
/// session. Before handing out its last bytes it makes sure the file ends
/// there and has kept its stamp: a longer file then never completes the
/// message.
struct Reopen<'a> {
    path: &'a Path,
    measure: Measure,
    file: Option<File>,
    /// Bytes still to hand out.
    remaining: u64,
    /// The end was checked; only `Ok(0)` from now on.
    ended: bool,
}

impl<'a> Reopen<'a> {
    fn new(path: &'a Path, measure: Measure) -> Reopen<'a> {
        Reopen {
            path,
            measure,
            file: None,
            remaining: measure.size,
            ended: false,
        }
    }

    fn changed(&self, how: &str) -> io::Error {
        io::Error::other(format!(
            "the --data file changed while it was being sent: {} {how}",
            self.path.display()
        ))
    }

    fn open(&mut self) -> io::Result<&mut File> {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let file = File::open(self.path).map_err(|err| with_path(self.path, err))?;
                if Stamp::of(&file.metadata()?) != self.measure.stamp {
                    return Err(self.changed("is not the version measured"));
                }
                file
            }
        };
        Ok(self.file.insert(file))
    }

    /// Called once all the measured bytes were read: the file must end
    /// there and still be the version measured.
    fn check_end(&mut self) -> io::Result<()> {
        let size = self.measure.size;
        let stamp = self.measure.stamp;
        let file = self.open()?;
        let mut probe = [0u8; 1];
        let more = loop {
            match file.read(&mut probe) {
                Ok(n) => break n > 0,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        };
        if more {
            return Err(self.changed(&format!("is longer than the {size} bytes measured")));
        }
        if Stamp::of(&file.metadata()?) != stamp {
            return Err(self.changed("was modified"));
        }
        self.ended = true;
        Ok(())
    }
}

impl Read for Reopen<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        if self.remaining == 0 {
            self.check_end()?;
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.open()?.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            let read = self.measure.size - self.remaining;
            let size = self.measure.size;
            return Err(self.changed(&format!("ended after {read} of the {size} bytes measured")));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            // Before these last bytes go: a file that grew must not end
            // the message as if it were complete.
            self.check_end()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{FileTimes, OpenOptions};
    use std::io::{Seek, SeekFrom, Write};
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    /// A temporary file, removed when dropped.
    struct Temp(PathBuf);

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A file of `len` bytes, its contents and its measurement.
    fn file(name: &str, len: usize) -> (Temp, Vec<u8>, Measure) {
        let path =
            std::env::temp_dir().join(format!("smtp-cli-reopen-{}-{name}", std::process::id()));
        let contents: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, &contents).unwrap();
        let measure = plan::measure(&path).unwrap();
        (Temp(path), contents, measure)
    }

    /// Reads 64 bytes at a time: what was handed out, and how it ended.
    /// `between` runs after the first read, once the file is open.
    fn read_all(reader: &mut Reopen<'_>, between: impl FnOnce()) -> (Vec<u8>, io::Result<()>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let mut between = Some(between);
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (got, Ok(())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => return (got, Err(err)),
            }
            if let Some(between) = between.take() {
                between();
            }
        }
    }

    fn changed(result: io::Result<()>, how: &str) {
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("the --data file changed while it was being sent: ")
                && message.contains(how),
            "{message}"
        );
    }

    #[test]
    fn reopen_hands_out_exactly_the_measured_bytes() {
        let (Temp(path), contents, measure) = &file("same", 1000);
        let mut reader = Reopen::new(path, *measure);
        let (got, end) = read_all(&mut reader, || {});
        end.unwrap();
        assert_eq!(got, *contents);
        assert_eq!(reader.read(&mut [0u8; 8]).unwrap(), 0);
        // An empty file too.
        let (Temp(path), _, measure) = &file("empty", 0);
        let (got, end) = read_all(&mut Reopen::new(path, *measure), || {});
        end.unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn reopen_refuses_a_file_that_grew_and_withholds_its_last_bytes() {
        // Grown while being read: the measured bytes but the last read's
        // go out, and nothing of what was appended.
        let (Temp(path), contents, measure) = &file("longer", 1000);
        let (got, end) = read_all(&mut Reopen::new(path, *measure), || {
            let mut f = OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(b"APPENDED").unwrap();
        });
        changed(end, "is longer than the 1000 bytes measured");
        assert_eq!(got, contents[..960]);

        // Grown before it was opened: nothing goes out.
        let (Temp(path), _, measure) = &file("longer-before", 1000);
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(b"APPENDED").unwrap();
        let (got, end) = read_all(&mut Reopen::new(path, *measure), || {});
        changed(end, "is not the version measured");
        assert!(got.is_empty());
    }

    #[test]
    fn reopen_refuses_a_file_that_shrank() {
        let (Temp(path), contents, measure) = &file("shorter", 1000);
        let (got, end) = read_all(&mut Reopen::new(path, *measure), || {
            let f = OpenOptions::new().write(true).open(path).unwrap();
            f.set_len(500).unwrap();
        });
        changed(end, "ended after 500 of the 1000 bytes measured");
        assert_eq!(got, contents[..500]);
    }

    #[test]
    fn reopen_refuses_a_file_rewritten_in_place() {
        // The same length, other bytes: its stamp tells (the modification
        // time is set far off, so the file system clock's tick cannot hide
        // it).
        let (Temp(path), contents, measure) = &file("rewritten", 1000);
        let (got, end) = read_all(&mut Reopen::new(path, *measure), || {
            let mut f = OpenOptions::new().write(true).open(path).unwrap();
            f.seek(SeekFrom::Start(10)).unwrap();
            f.write_all(b"X").unwrap();
            let later = SystemTime::now() + Duration::from_secs(3600);
            f.set_times(FileTimes::new().set_modified(later)).unwrap();
        });
        changed(end, "was modified");
        assert_eq!(got, contents[..960]);
    }
}
