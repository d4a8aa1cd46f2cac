//! Issue 6, concurrency: opens N tokio sessions to one server from one
//! process, keeps them all idle and usable, and reports the memory each
//! costs (resident set before and after, from /proc/self/statm); then the
//! same through a `Pool` of that size with N concurrent sends.
//!
//! ```sh
//! smtp-sink -u nobody -c 127.0.0.1:22525 2000 &
//! cargo run --release --bin idle-sessions -- 127.0.0.1:22525 1000
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use smtp_tokio::pool::{Connector, Pool, PoolOptions};
use smtp_tokio::smtp_proto::{Address, Config, Envelope, TlsPolicy};
use smtp_tokio::{tokio::Client, Options};
use std::net::SocketAddr;
use std::time::Instant;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn config() -> Config {
    Config::new("localhost").tls(TlsPolicy::Disabled)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args.first().expect("ADDR").parse().unwrap();
    let n: usize = args.get(1).map_or(1000, |n| n.parse().unwrap());

    let before = rss_kib();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        tasks.push(tokio::spawn(async move {
            Client::connect_to(addr, config(), Options::default()).await
        }));
    }
    let mut clients = Vec::with_capacity(n);
    for task in tasks {
        clients.push(task.await.unwrap().expect("connect"));
    }
    let connected = started.elapsed();
    let after = rss_kib();
    // Every session is still there: a NOOP on each.
    for client in &mut clients {
        client.noop().await.expect("noop");
    }
    println!(
        "{n} idle sessions: connected in {:.0} ms; RSS {before} KiB -> {after} KiB; {:.1} KiB per session; all answered NOOP",
        connected.as_secs_f64() * 1000.0,
        (after - before) as f64 / n as f64
    );
    for client in clients {
        client.quit().await.expect("quit");
    }

    let pool = Pool::new(
        Connector::to_addr(addr, config(), Options::default()),
        PoolOptions::default().max_size(n),
    );
    let before = rss_kib();
    let started = Instant::now();
    let mut sends = Vec::with_capacity(n);
    for i in 0..n {
        let pool = pool.clone();
        sends.push(tokio::spawn(async move {
            let envelope = Envelope::new(
                Some(Address::new("bench@example.com").unwrap()),
                [Address::new(format!("rcpt{i}@example.org")).unwrap()],
            )
            .unwrap();
            pool.send(envelope, b"Subject: pool\r\n\r\nhello\r\n").await
        }));
    }
    let mut ok = 0;
    for send in sends {
        ok += usize::from(send.await.unwrap().is_ok());
    }
    let status = pool.status();
    println!(
        "pool of {n}: {ok}/{n} concurrent sends delivered in {:.0} ms; {} idle connections kept; RSS {before} KiB -> {} KiB",
        started.elapsed().as_secs_f64() * 1000.0,
        status.idle,
        rss_kib()
    );
    pool.close().await;
}
