//! A TCP proxy on loopback that delays every byte by a fixed one-way latency
//! in each direction and counts round trips, for the RTT-bound workloads of
//! `e2e.sh` (netem is not available on every machine; where it is, a
//! namespace with `tc qdisc ... netem delay` gives the same).
//!
//! `delay-proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --delay-ms 5
//! [--seconds N] [--count-file PATH]`
//!
//! The proxy is `smtp_tests::DelayProxy`: every read is stamped when it
//! arrives and written on at stamp + delay, in order, so the added latency
//! does not depend on how the peer splits its writes and does not throttle
//! bandwidth (a pipelined burst costs one delay, not one per read): a 5 ms
//! delay each way is a 10 ms round trip. Both sockets have `TCP_NODELAY`.
//! A round trip is a client write after server bytes; with `--count-file`
//! the total so far is written there every 50 ms. It stops by itself after
//! `--seconds` (default 600).

use smtp_tests::DelayProxy;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn resolve(addr: &str) -> Option<SocketAddr> {
    addr.to_socket_addrs().ok()?.next()
}

fn main() -> ExitCode {
    let mut listen = None;
    let mut upstream = None;
    let mut delay_ms = 5u64;
    let mut seconds = 600u64;
    let mut count_file = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next();
        match (flag.as_str(), value) {
            ("--listen", Some(v)) => listen = resolve(&v),
            ("--upstream", Some(v)) => upstream = resolve(&v),
            ("--delay-ms", Some(v)) => delay_ms = v.parse().unwrap_or(delay_ms),
            ("--seconds", Some(v)) => seconds = v.parse().unwrap_or(seconds),
            ("--count-file", Some(v)) => count_file = Some(v),
            _ => {
                eprintln!("usage: delay-proxy --listen ADDR --upstream ADDR [--delay-ms MS] [--seconds N] [--count-file PATH]");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(listen), Some(upstream)) = (listen, upstream) else {
        eprintln!("delay-proxy: --listen and --upstream are required addresses");
        return ExitCode::from(2);
    };
    let proxy = match DelayProxy::bind(listen, upstream, Duration::from_millis(delay_ms)) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("delay-proxy: bind {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut written = None;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        let trips = proxy.round_trips();
        if let Some(path) = &count_file {
            if written != Some(trips) {
                // Whole or not at all: the script may read at any moment.
                let tmp = format!("{path}.tmp");
                if std::fs::write(&tmp, format!("{trips}\n")).is_ok()
                    && std::fs::rename(&tmp, path).is_ok()
                {
                    written = Some(trips);
                }
            }
        }
    }
    ExitCode::SUCCESS
}
