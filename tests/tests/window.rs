//! The window of transactions with CHUNKING (issue 16), measured against a
//! private Postfix smtpd (which offers PIPELINING and CHUNKING) through a
//! proxy that adds a fixed delay each way and counts round trips: how many
//! times the client wrote again after the server had answered.
//!
//! A measurement, not a check that runs in CI (its figures depend on the
//! machine):
//!
//! ```sh
//! COUNT=500 cargo test -p smtp-tests --all-features --test window -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smtp_blocking::smtp_proto::{Address, Config, Envelope, TlsPolicy};
use smtp_blocking::{Client, Options};
use smtp_tests::peers::{Postfix, PostfixOptions, POSTFIX_DOMAIN};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Round trips as the client lived them: a client write that follows
/// server bytes starts a new one.
#[derive(Default)]
struct Turns {
    answered: AtomicBool,
    count: AtomicUsize,
}

/// Forwards `from` to `to`, each read delivered `delay` after it arrived;
/// `client` says which direction this is, for counting turns.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, turns: Arc<Turns>, client: bool) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, bytes) in rx {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if client {
            if turns.answered.swap(false, Ordering::SeqCst) {
                turns.count.fetch_add(1, Ordering::SeqCst);
            }
        } else {
            turns.answered.store(true, Ordering::SeqCst);
        }
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}

/// A proxy to `upstream` adding `delay` each way, for one connection.
fn proxy(upstream: SocketAddr, delay: Duration) -> (SocketAddr, Arc<Turns>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let turns = Arc::new(Turns::default());
    let counted = Arc::clone(&turns);
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(upstream).unwrap();
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = Arc::clone(&counted);
        let a = std::thread::spawn(move || pump(client, server, delay, up, true));
        pump(s2, c2, delay, counted, false);
        let _ = a.join();
    });
    (addr, turns)
}

/// `count` messages of 1 KiB over one connection with `window`; messages/s
/// and round trips per message.
fn run(server: &Postfix, delay: Duration, window: usize, count: usize) -> (f64, f64) {
    let (addr, turns) = proxy(server.addr(), delay);
    let config = Config::new("localhost")
        .tls(TlsPolicy::Disabled)
        .window(window);
    let mut client = Client::connect_to(addr, config, Options::new()).unwrap();
    assert!(client.capabilities().chunking() && client.capabilities().pipelining());
    let body = {
        let mut body = b"Subject: window\r\n\r\n".to_vec();
        while body.len() < 1024 {
            body.extend_from_slice(&[b'x'; 74]);
            body.extend_from_slice(b"\r\n");
        }
        body
    };
    let from = Address::new(format!("me@{POSTFIX_DOMAIN}")).unwrap();
    let to = Address::new(format!("you@{POSTFIX_DOMAIN}")).unwrap();
    let messages: Vec<(Envelope, &[u8])> = (0..count)
        .map(|_| {
            let envelope = Envelope::new(Some(from.clone()), [to.clone()]).unwrap();
            (envelope, &body[..])
        })
        .collect();
    let before = turns.count.load(Ordering::SeqCst);
    let started = Instant::now();
    let results = client.send_all(messages);
    let elapsed = started.elapsed();
    let trips = turns.count.load(Ordering::SeqCst) - before;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    client.quit().unwrap();
    (
        count as f64 / elapsed.as_secs_f64(),
        trips as f64 / count as f64,
    )
}

#[test]
#[ignore = "a measurement: run it with --ignored --nocapture"]
fn window_of_transactions_against_postfix() {
    let count: usize = std::env::var("COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500);
    let server = Postfix::start(&PostfixOptions::default()).unwrap();
    println!("{count} messages of 1 KiB, one connection, Postfix smtpd (PIPELINING, CHUNKING)");
    println!("| RTT | window | messages/s | round trips per message |");
    println!("|---:|---:|---:|---:|");
    for rtt_ms in [10, 50] {
        let delay = Duration::from_millis(rtt_ms / 2);
        for window in [1, 2, 16] {
            let (rate, trips) = run(&server, delay, window, count);
            println!("| {rtt_ms} ms | {window} | {rate:.0} | {trips:.3} |");
        }
    }
}
