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
use smtp_tests::DelayProxy;
use std::time::{Duration, Instant};

/// `count` messages of 1 KiB over one connection with `window`; messages/s
/// and round trips per message.
fn run(server: &Postfix, delay: Duration, window: usize, count: usize) -> (f64, f64) {
    let proxy = DelayProxy::start(server.addr(), delay).unwrap();
    let addr = proxy.addr();
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
    let before = proxy.round_trips();
    let started = Instant::now();
    let results = client.send_all(messages);
    let elapsed = started.elapsed();
    let trips = proxy.round_trips() - before;
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
