//! A TCP proxy on loopback that delays every byte by a fixed one-way latency
//! in each direction, for the RTT-bound workload of `e2e.sh` (netem is not
//! available on every machine; where it is, a namespace with `tc qdisc ...
//! netem delay` gives the same).
//!
//! `delay-proxy --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --delay-ms 5
//! [--seconds N]`
//!
//! Every read is stamped when it arrives and written on at stamp + delay, in
//! order, so the added latency does not depend on how the peer splits its
//! writes and does not throttle bandwidth (a pipelined burst costs one delay,
//! not one per read): a 5 ms delay each way is a 10 ms round trip. Both
//! sockets have `TCP_NODELAY`, so the proxy adds no Nagle delay of its own.
//! It stops by itself after `--seconds` (default 600).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}

fn main() -> ExitCode {
    let mut listen = None;
    let mut upstream = None;
    let mut delay_ms = 5u64;
    let mut seconds = 600u64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next();
        match (flag.as_str(), value) {
            ("--listen", Some(v)) => listen = Some(v),
            ("--upstream", Some(v)) => upstream = Some(v),
            ("--delay-ms", Some(v)) => delay_ms = v.parse().unwrap_or(delay_ms),
            ("--seconds", Some(v)) => seconds = v.parse().unwrap_or(seconds),
            _ => {
                eprintln!("usage: delay-proxy --listen ADDR --upstream ADDR [--delay-ms MS] [--seconds N]");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(listen), Some(upstream)) = (listen, upstream) else {
        eprintln!("delay-proxy: --listen and --upstream are required");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("delay-proxy: bind {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(seconds));
        std::process::exit(0);
    });
    let delay = Duration::from_millis(delay_ms);
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(&upstream) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        std::thread::spawn(move || pump(client, server, delay));
        std::thread::spawn(move || pump(s2, c2, delay));
    }
    ExitCode::SUCCESS
}
