//! Streamed bodies: generated lazily by a reader (never held in memory),
//! over TLS, counted and checksummed on the server side; read in irregular
//! pieces; a reader that fails.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proto::TlsPolicy;
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{ScriptedServer, TestPki};

use crate::common::*;
use crate::harness::{Adapter, Kind};

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

/// A reader handing out irregular small pieces (1 to 9001 octets), so
/// that reads split lines, dots and CRLFs anywhere; it records the largest
/// buffer it was offered.
struct Irregular {
    data: Arc<Vec<u8>>,
    pos: usize,
    step: usize,
    max_buf: Arc<AtomicU64>,
}

impl Read for Irregular {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.max_buf.fetch_max(buf.len() as u64, Ordering::SeqCst);
        self.step = (self.step * 7 + 3) % 9001;
        let n = (self.data.len() - self.pos)
            .min(buf.len())
            .min(self.step + 1);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// About 1 MiB of lines that start with one dot, with two, lines that
/// are just a dot, and plain lines.
fn dotted_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(1 << 20);
    let mut i = 0u32;
    while body.len() < (1 << 20) - 100 {
        match i % 5 {
            0 => body.extend_from_slice(b".a line that starts with a dot\r\n"),
            1 => body.extend_from_slice(b"..two dots\r\n"),
            2 => body.extend_from_slice(b".\r\n"),
            _ => body.extend_from_slice(format!("line {i} of the body, plain text\r\n").as_bytes()),
        }
        i += 1;
    }
    body
}

/// A 1 MiB body of dotted lines through `send_reader`, plaintext: read in
/// irregular pieces without a declared size, and whole from a slice with
/// the size declared. The server stores it byte-exact; the client never
/// offers the reader a buffer over 256 KiB (smtp-blocking's reads; smtp-tokio
/// reads 64 KiB).
pub fn streamed_1_mib_of_dotted_lines(adapter: &dyn Adapter) {
    let body = Arc::new(dotted_body());
    for declared in [false, true] {
        let expected = Arc::clone(&body);
        let server = ScriptedServer::start_fn(move |peer| {
            peer.reply("220 mail.test ESMTP")?;
            ehlo(peer, &["PIPELINING", "SIZE 10000000"])?;
            let mail = peer.expect("MAIL FROM:<me@example.com>")?;
            let size = format!(" SIZE={}", expected.len());
            if mail.ends_with(size.as_bytes()) != declared {
                return Err(io::Error::other(format!("declared={declared}: {mail:?}")));
            }
            peer.expect("RCPT TO:<you@example.org>")?;
            peer.expect("DATA")?;
            peer.reply("250 OK\n250 OK\n354 go ahead")?;
            if peer.read_data()? != *expected {
                return Err(io::Error::other("the body changed on the way"));
            }
            peer.reply("250 2.0.0 queued")?;
            peer.expect("QUIT")?;
            peer.reply("221 bye")
        })
        .unwrap();
        let what = format!("{} declared={declared}", adapter.name());
        let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
        let max_buf = Arc::new(AtomicU64::new(0));
        let (envelope, reader): (_, Box<dyn Read + Send>) = if declared {
            let slice = io::Cursor::new(body.to_vec());
            (envelope().size(body.len() as u64), Box::new(slice))
        } else {
            let irregular = Irregular {
                data: Arc::clone(&body),
                pos: 0,
                step: 1,
                max_buf: Arc::clone(&max_buf),
            };
            (envelope(), Box::new(irregular))
        };
        let delivery = client.send_reader(envelope, reader).unwrap();
        assert!(delivery.recipients()[0].accepted(), "{what}");
        client.quit().unwrap();
        finished(&server, 1);
        assert_eq!(server.errors(), vec![None], "{what}");
        if !declared {
            let max_buf = max_buf.load(Ordering::SeqCst);
            assert!(max_buf > 0 && max_buf <= 256 * 1024, "{what}: {max_buf}");
        }
    }
}

/// A body that gives `.0` lines of `data`, then fails.
struct FailsAfter(usize);

impl Read for FailsAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        self.0 -= 1;
        (&b"data\r\n"[..]).read(buf)
    }
}

/// A single message whose reader fails after a few lines: a body-read
/// error, the client poisoned and the connection closed, and the message
/// never ended (small bodies are written a chunk at a time, so nothing of
/// it left the client; above all no final dot did).
pub fn failing_reader_leaves_the_message_unfinished(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        peer.expect("MAIL FROM:")?;
        peer.reply("250 OK")?;
        peer.expect("RCPT TO:")?;
        peer.reply("250 OK")?;
        peer.expect("DATA")?;
        peer.reply("354 go ahead")?;
        // The client closes when it gives up, not only when dropped.
        peer.set_read_timeout(Some(WAIT))?;
        peer.read_until_closed()
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let err = client
        .send_reader(envelope(), Box::new(FailsAfter(3)))
        .unwrap_err();
    assert!(
        matches!(err.kind, Kind::BodyRead),
        "{}: {err:?}",
        adapter.name()
    );
    assert!(client.is_poisoned(), "{}", adapter.name());
    let received = finished(&server, 1).remove(0);
    assert_eq!(server.errors(), vec![None], "{}", adapter.name());
    assert!(
        received.plain.ends_with(b"\r\nDATA\r\n"),
        "{}: {:?}",
        adapter.name(),
        received.plain_text()
    );
    drop(client);
}
