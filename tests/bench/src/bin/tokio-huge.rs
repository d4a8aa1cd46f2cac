//! Issue 6, bounded memory through the async adapter: streams one message
//! of N MiB (generated as it is read, never held) through the tokio
//! backend's `send_reader` and reports the process's peak resident set
//! (VmHWM from /proc/self/status).
//!
//! ```sh
//! smtp-sink -u nobody 127.0.0.1:22525 100 &
//! cargo run --release --bin tokio-huge -- 127.0.0.1:22525 200
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use smtp_tokio::smtp_proto::{Address, Config, Envelope, TlsPolicy};
use smtp_tokio::{tokio::Client, Options};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, ReadBuf};

/// `remaining` bytes of 76-column CRLF text, produced on demand.
struct Lines {
    remaining: u64,
}

impl AsyncRead for Lines {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        const LINE: &[u8] =
            b"0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n";
        while self.remaining > 0 && buf.remaining() >= LINE.len() {
            let n = LINE.len().min(self.remaining as usize);
            buf.put_slice(&LINE[..n]);
            self.remaining -= n as u64;
        }
        Poll::Ready(Ok(()))
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args.first().expect("ADDR").parse().unwrap();
    let mib: u64 = args.get(1).map_or(200, |n| n.parse().unwrap());
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let mut client = Client::connect_to(addr, config, Options::default())
        .await
        .unwrap();
    let envelope = Envelope::new(
        Some(Address::new("bench@example.com").unwrap()),
        [Address::new("rcpt@example.org").unwrap()],
    )
    .unwrap();
    let started = Instant::now();
    let delivery = client
        .send_reader(
            envelope,
            Lines {
                remaining: mib << 20,
            },
        )
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    client.quit().await.unwrap();
    println!(
        "{mib} MiB through smtp-tokio in {elapsed:.2} s ({:.0} MiB/s): {}; peak RSS {} KiB",
        mib as f64 / elapsed,
        delivery.reply(),
        peak_rss_kib()
    );
}
