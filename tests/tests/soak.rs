//! The chaos soak: distinct messages (each with its own Message-ID) sent
//! through the tokio `Pool` from many tasks and through blocking batches,
//! to a private Postfix that delivers into a Maildir, through a proxy that
//! breaks connections at points chosen by a seed: a close before the
//! greeting, after some client bytes (mid-command, mid-body), right after
//! the final dot, right after the server's reply to it, a stall past the
//! client's timeout, an injected `421`. Afterwards every outcome the
//! application saw is reconciled with the Maildir:
//!
//! - *accepted*: delivered exactly once;
//! - *refused* and *not sent*: never delivered;
//! - *unknown*: delivered zero or one time;
//! - nothing delivered twice.
//!
//! It also counts what a naive retry of every error that used to be
//! transient would have done: each *unknown* message that the server did
//! keep would have been delivered twice.
//!
//! CI runs a short soak (`SOAK_MESSAGES`, default 300). The long one:
//! `SOAK_MESSAGES=10000 cargo test -p smtp-tests --test soak -- --nocapture`
//! (`SOAK_SEED` picks the faults; the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use smtp_blocking::smtp_proto::{Address, Config, Envelope, Outcome, Timeouts, TlsPolicy};
use smtp_tests::{Postfix, PostfixOptions, POSTFIX_DOMAIN};

/// A small deterministic generator (splitmix64): the seed alone decides the
/// faults.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the proxy does to one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fault {
    None,
    /// Closes both sides before the server's greeting reaches the client.
    BeforeGreeting,
    /// Closes both sides once this many client bytes went through.
    AfterClientBytes(usize),
    /// Passes the client's final dot to the server, then closes before
    /// the server's reply comes back.
    AfterFinalDot,
    /// Passes the server's reply to the final dot, then closes.
    AfterReplyToDot,
    /// After this many client bytes, forwards nothing more and closes only
    /// after the client's timeout.
    Stall(usize),
    /// After this many client bytes, answers the client with a `421`
    /// itself and closes.
    Inject421(usize),
}

impl Fault {
    fn pick(rng: &mut Rng) -> Fault {
        // About a third of the connections are hit.
        match rng.below(30) {
            0 => Fault::BeforeGreeting,
            1 | 2 => Fault::AfterClientBytes(rng.below(3000) as usize),
            3 | 4 => Fault::AfterFinalDot,
            5 | 6 => Fault::AfterReplyToDot,
            7 => Fault::Stall(rng.below(3000) as usize),
            8 | 9 => Fault::Inject421(rng.below(3000) as usize),
            _ => Fault::None,
        }
    }
}

/// The state both directions of one proxied connection share.
struct Link {
    client: TcpStream,
    server: TcpStream,
    fault: Fault,
    /// The client's final dot went to the server.
    dot_passed: AtomicBool,
    /// Stalled, or answered by the proxy: the server's words are dropped.
    muted: AtomicBool,
    closed: AtomicBool,
}

impl Link {
    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.server.shutdown(Shutdown::Both);
        }
    }
}

/// The stage timeout of the clients: a stall outlasts it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A proxy in front of `upstream` that hits each connection with the next
/// fault `rng` picks; counts the connections and the faults.
struct Proxy {
    addr: SocketAddr,
    faults: Arc<Mutex<HashMap<Fault, usize>>>,
    connections: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: SocketAddr, rng: Rng) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let faults: Arc<Mutex<HashMap<Fault, usize>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let (counted, seen) = (Arc::clone(&faults), Arc::clone(&connections));
        let rng = Mutex::new(rng);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let fault = Fault::pick(&mut rng.lock().unwrap());
                seen.fetch_add(1, Ordering::Relaxed);
                let kind = match fault {
                    Fault::AfterClientBytes(_) => Fault::AfterClientBytes(0),
                    Fault::Stall(_) => Fault::Stall(0),
                    Fault::Inject421(_) => Fault::Inject421(0),
                    other => other,
                };
                *counted.lock().unwrap().entry(kind).or_default() += 1;
                let link = Arc::new(Link {
                    client,
                    server,
                    fault,
                    dot_passed: AtomicBool::new(false),
                    muted: AtomicBool::new(false),
                    closed: AtomicBool::new(false),
                });
                let up = Arc::clone(&link);
                thread::spawn(move || client_to_server(&up));
                thread::spawn(move || server_to_client(&link));
            }
        });
        Proxy {
            addr,
            faults,
            connections,
        }
    }
}

/// Forwards what the client writes, applying the faults that depend on it.
fn client_to_server(link: &Link) {
    let (mut from, mut to) = (&link.client, &link.server);
    let mut buf = [0u8; 16 * 1024];
    let mut passed = 0usize;
    // The last octets passed, to find "\r\n.\r\n" across reads.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        let cut = match link.fault {
            Fault::AfterClientBytes(at) | Fault::Stall(at) | Fault::Inject421(at) => {
                Some(at.saturating_sub(passed)).filter(|&k| k < chunk.len())
            }
            Fault::AfterFinalDot | Fault::AfterReplyToDot
                if !link.dot_passed.load(Ordering::SeqCst) =>
            {
                let mut seen = tail.clone();
                seen.extend_from_slice(chunk);
                find(&seen, b"\r\n.\r\n").map(|end| end + 5 - tail.len())
            }
            _ => None,
        };
        if let Some(k) = cut {
            chunk = &chunk[..k];
        }
        if to.write_all(chunk).is_err() {
            break;
        }
        passed += chunk.len();
        tail.extend_from_slice(chunk);
        let keep = tail.len().saturating_sub(4);
        tail.drain(..keep);
        if cut.is_none() {
            continue;
        }
        match link.fault {
            Fault::AfterClientBytes(_) | Fault::AfterFinalDot => break,
            Fault::AfterReplyToDot => {
                // The server's reply to it closes the link; the client's
                // next commands wait for that.
                link.dot_passed.store(true, Ordering::SeqCst);
                let _ = io::copy(&mut from, &mut to);
                return;
            }
            Fault::Stall(_) => {
                link.muted.store(true, Ordering::SeqCst);
                thread::sleep(CLIENT_TIMEOUT + Duration::from_secs(1));
                break;
            }
            Fault::Inject421(_) => {
                link.muted.store(true, Ordering::SeqCst);
                let _ = (&link.client).write_all(b"421 4.4.2 proxy.test shutting down\r\n");
                break;
            }
            _ => {}
        }
    }
    link.close();
}

/// Forwards what the server writes, applying the faults that depend on it.
fn server_to_client(link: &Link) {
    let (mut from, mut to) = (&link.server, &link.client);
    if link.fault == Fault::BeforeGreeting {
        link.close();
        return;
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if link.muted.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if link.fault == Fault::AfterReplyToDot && link.dot_passed.load(Ordering::SeqCst) {
            break;
        }
    }
    link.close();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Message `i`: its own Message-ID.
fn message(run: u64, i: usize) -> (String, Vec<u8>) {
    let id = format!("<soak-{run}-{i}@soak.test>");
    let body = format!(
        "From: soak@soak.test\r\nTo: box@{POSTFIX_DOMAIN}\r\nSubject: soak {i}\r\n\
         Message-ID: {id}\r\n\r\nmessage {i}\r\n.leading dot\r\n"
    );
    (id, body.into_bytes())
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("soak@soak.test").unwrap()),
        [Address::new(format!("box@{POSTFIX_DOMAIN}")).unwrap()],
    )
    .unwrap()
}

fn config() -> Config {
    Config::new("localhost").tls(TlsPolicy::Disabled)
}

fn outcome<T>(result: &Result<T, smtp_blocking::Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(err) => err.outcome(),
    }
}

fn tokio_outcome<T>(result: &Result<T, smtp_tokio::Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(err) => err.outcome(),
    }
}

/// Sends `messages` through the tokio pool from `tasks` tasks.
fn through_the_pool(
    proxy: SocketAddr,
    messages: Vec<(String, Vec<u8>)>,
    tasks: usize,
) -> Vec<(String, Outcome)> {
    use smtp_tokio::pool::{Connector, Pool, PoolOptions};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = smtp_tokio::Options::new()
        .timeouts(Timeouts::uniform(CLIENT_TIMEOUT))
        .connect_timeout(CLIENT_TIMEOUT);
    let pool = Pool::new(
        Connector::to_addr(proxy, config(), options),
        // Connections retire soon, so that many meet the proxy's faults.
        PoolOptions::new()
            .max_size(tasks)
            .max_lifetime(Some(Duration::from_millis(200))),
    );
    let queue = Arc::new(Mutex::new(messages));
    runtime.block_on(async move {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (pool, queue) = (pool.clone(), Arc::clone(&queue));
            handles.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let Some((id, body)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let result = pool.send(envelope(), &body).await;
                    seen.push((id, tokio_outcome(&result)));
                }
                seen
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.unwrap());
        }
        pool.close().await;
        all
    })
}

/// Sends messages in batches of `batch` over blocking clients, from
/// `threads` threads, a new connection for each batch (so that many meet
/// the proxy's faults).
fn through_blocking_batches(
    proxy: SocketAddr,
    messages: Vec<(String, Vec<u8>)>,
    threads: usize,
    batch: usize,
) -> Vec<(String, Outcome)> {
    let queue = Arc::new(Mutex::new(messages));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut client: Option<smtp_blocking::Client> = None;
                loop {
                    let chunk: Vec<(String, Vec<u8>)> = {
                        let mut queue = queue.lock().unwrap();
                        let at = queue.len().saturating_sub(batch);
                        queue.split_off(at)
                    };
                    if chunk.is_empty() {
                        break;
                    }
                    if let Some(c) = client.take() {
                        let _ = c.quit();
                    }
                    {
                        let options = smtp_blocking::Options::new()
                            .timeouts(Timeouts::uniform(CLIENT_TIMEOUT))
                            .connect_timeout(CLIENT_TIMEOUT);
                        match smtp_blocking::Client::connect_to(proxy, config(), options) {
                            Ok(c) => client = Some(c),
                            Err(err) => {
                                // Nothing of these went: not sent.
                                assert_eq!(err.outcome(), Outcome::NotSent, "{err}");
                                seen.extend(
                                    chunk.into_iter().map(|(id, _)| (id, Outcome::NotSent)),
                                );
                                client = None;
                                continue;
                            }
                        }
                    }
                    let c = client.as_mut().unwrap();
                    let results =
                        c.send_all(chunk.iter().map(|(_, body)| (envelope(), body.as_slice())));
                    assert_eq!(results.len(), chunk.len(), "one result per message");
                    for ((id, _), result) in chunk.iter().zip(&results) {
                        seen.push((id.clone(), outcome(result)));
                    }
                }
                if let Some(c) = client {
                    let _ = c.quit();
                }
                seen
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect()
}

/// The Message-IDs delivered so far, with how many times each.
fn delivered(server: &Postfix) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in server.messages().unwrap() {
        let text = String::from_utf8_lossy(&m.data);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .unwrap_or("")
            .to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[test]
fn chaos_soak_reconciles_every_outcome_with_the_maildir() {
    let total: usize = std::env::var("SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("soak: {total} messages, SOAK_SEED={seed}");
    let started = Instant::now();
    // DATA, so the proxy can find the final dot; PIPELINING stays on, so
    // the next message rides behind it.
    let server = Postfix::start(&PostfixOptions {
        hidden_keywords: vec!["chunking".to_owned()],
        ..PostfixOptions::default()
    })
    .unwrap();
    let proxy = Proxy::start(server.addr(), Rng(seed));

    let all: Vec<(String, Vec<u8>)> = (0..total).map(|i| message(seed, i)).collect();
    let half = total / 2;
    let (pooled, batched) = (all[..half].to_vec(), all[half..].to_vec());
    let from_pool = thread::spawn(move || through_the_pool(proxy.addr, pooled, 8));
    let from_batches = through_blocking_batches(proxy.addr, batched, 4, 5);
    let mut outcomes = from_pool.join().unwrap();
    outcomes.extend(from_batches);
    assert_eq!(outcomes.len(), total, "one outcome per message");

    // Postfix delivers what it accepted; wait until the Maildir holds every
    // accepted message and then stops changing.
    let accepted = outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Accepted)
        .count();
    server
        .wait_for_messages(accepted, Duration::from_secs(60))
        .unwrap();
    let mut counts = delivered(&server);
    let settle = Instant::now();
    loop {
        thread::sleep(Duration::from_secs(2));
        let again = delivered(&server);
        if again == counts || settle.elapsed() > Duration::from_secs(30) {
            break;
        }
        counts = again;
    }

    // The table: per outcome, how many, and how many delivered 0, 1, 2+ times.
    let mut table: HashMap<Outcome, [usize; 4]> = HashMap::new();
    let mut violations = Vec::new();
    let mut naive_duplicates = 0;
    for (id, outcome) in &outcomes {
        let n = counts.get(id).copied().unwrap_or(0);
        let row = table.entry(*outcome).or_default();
        row[0] += 1;
        row[1 + n.min(2)] += 1;
        let ok = match outcome {
            Outcome::Accepted => n == 1,
            Outcome::Refused | Outcome::NotSent => n == 0,
            _ => n <= 1,
        };
        if !ok {
            violations.push(format!("{id}: {outcome} but delivered {n} times"));
        }
        // What `is_transient() == true` used to invite for these: a resend
        // of a message the server kept.
        if *outcome == Outcome::Unknown && n == 1 {
            naive_duplicates += 1;
        }
    }
    let faults = proxy.faults.lock().unwrap().clone();
    let connections = proxy.connections.load(Ordering::Relaxed);
    let hit = connections - faults.get(&Fault::None).copied().unwrap_or(0);
    println!(
        "soak: {total} messages, {connections} connections, {hit} hit by a fault ({:.0}%), {:.1} s",
        100.0 * hit as f64 / connections.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    println!("faults: {faults:?}");
    println!("| outcome | messages | delivered 0 | delivered 1 | delivered 2+ |");
    println!("|---|---:|---:|---:|---:|");
    for outcome in [
        Outcome::Accepted,
        Outcome::Refused,
        Outcome::NotSent,
        Outcome::Unknown,
    ] {
        let row = table.get(&outcome).copied().unwrap_or_default();
        println!(
            "| {outcome} | {} | {} | {} | {} |",
            row[0], row[1], row[2], row[3]
        );
    }
    println!(
        "a naive retry of every error that used to be transient would have \
         delivered {naive_duplicates} duplicate(s); these outcomes: 0"
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(hit > 0, "no connection was hit by a fault");
}
