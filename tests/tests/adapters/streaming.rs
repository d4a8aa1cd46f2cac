//! Streamed bodies generated lazily by a reader (never held in memory),
//! over TLS, counted and checksummed on the server side.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proto::TlsPolicy;
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{ScriptedServer, TestPki};

use crate::common::*;
use crate::harness::Adapter;

/// Every line starts with a dot, so every line is stuffed on the wire.
const LINE: &[u8] =
    b".A line of the body, with a dot first so that every line is stuffed......\r\n";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// `len` bytes of [`LINE`] with the line number mixed in, generated as
/// they are read; the FNV-1a hash of what was produced lands in `hash`
/// at the end.
struct Generated {
    left: usize,
    pos: usize,
    line: u64,
    hash: u64,
    done: Arc<AtomicU64>,
}

impl Generated {
    fn byte(&mut self) -> u8 {
        let b = LINE[self.pos];
        // Bytes 2..10 of each line carry the line number in hex digits, so
        // that a dropped or repeated line changes the checksum.
        let b = if (2..10).contains(&self.pos) {
            let nibble = (self.line >> ((9 - self.pos) * 4)) & 0xF;
            b"0123456789abcdef"[nibble as usize]
        } else {
            b
        };
        self.pos += 1;
        if self.pos == LINE.len() {
            self.pos = 0;
            self.line += 1;
        }
        b
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left);
        for i in 0..n {
            buf[i] = self.byte();
        }
        self.hash = fnv(self.hash, &buf[..n]);
        self.left -= n;
        if self.left == 0 {
            self.done.store(self.hash, Ordering::SeqCst);
        }
        Ok(n)
    }
}

/// Streams `lines` lines over STARTTLS through `send_reader` and checks
/// the byte count and checksum the server computed.
fn stream(adapter: &dyn Adapter, lines: usize) {
    let size = lines * LINE.len();
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let server_seen = Arc::clone(&seen);
    let server = ScriptedServer::start_fn(move |peer| {
        peer.implicit_tls(Arc::clone(&tls))?;
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["PIPELINING", "SIZE 200000000"])?;
        peer.expect(&format!("MAIL FROM:<me@example.com> SIZE={size}"))?;
        peer.expect("RCPT TO:<you@example.org>")?;
        peer.expect("DATA")?;
        peer.reply("250 OK\n250 OK\n354 go")?;
        let mut bytes = 0usize;
        let mut hash = FNV_OFFSET;
        loop {
            let line = peer.line()?;
            if line == b"." {
                break;
            }
            let Some(line) = line.strip_prefix(b".") else {
                return Err(io::Error::other("a line was not dot-stuffed"));
            };
            hash = fnv(fnv(hash, line), b"\r\n");
            bytes += line.len() + 2;
        }
        server_seen.store(hash, Ordering::SeqCst);
        peer.reply(&format!("250 2.0.0 {bytes} bytes queued"))?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let config = smtp_blocking::Config::new(NAME).tls(TlsPolicy::Implicit);
    let mut client = connect_ok(adapter, &server, config, &opts(&pki));
    let sent = Arc::new(AtomicU64::new(0));
    let body = Generated {
        left: size,
        pos: 0,
        line: 0,
        hash: FNV_OFFSET,
        done: Arc::clone(&sent),
    };
    let delivery = client
        .send_reader(envelope().size(size as u64), Box::new(body))
        .unwrap();
    assert_eq!(
        delivery.reply().to_string(),
        format!("250 2.0.0 {size} bytes queued")
    );
    client.quit().unwrap();
    finished(&server, 1);
    assert_eq!(server.errors(), vec![None]);
    assert_ne!(sent.load(Ordering::SeqCst), 0);
    assert_eq!(seen.load(Ordering::SeqCst), sent.load(Ordering::SeqCst));
}

/// 100 MiB (rounded down to whole lines).
pub fn streamed_100_mib(adapter: &dyn Adapter) {
    stream(adapter, (100 << 20) / LINE.len());
}

/// 4 MiB, for every adapter.
pub fn streamed_4_mib(adapter: &dyn Adapter) {
    stream(adapter, (4 << 20) / LINE.len());
}
