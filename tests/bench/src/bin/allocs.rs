//! Issue 6, "no allocation per reply or per body line in steady state":
//! counts heap allocations (a counting global allocator) while the core
//! `ClientSession` runs transactions fed from memory, after a warm-up, and
//! prints them per transaction, per reply and per body line.
//!
//! ```sh
//! cd tests/bench && cargo run --release --bin allocs
//! ```
//!
//! The session alone, with no transcript: what every adapter drives. The
//! adapters' own buffers are allocated once per connection.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use smtp_proto::{Address, ClientSession, Config, Envelope, Event, TlsPolicy};

/// The system allocator, counting calls and bytes.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

/// What an adapter does with the output: writes it, then advances.
fn drain(session: &mut ClientSession) {
    let n = session.pending_output().len();
    session.advance_output(n);
}

/// A session past EHLO (PIPELINING, CHUNKING unless `data_only`).
fn ready(data_only: bool) -> ClientSession {
    let mut session =
        ClientSession::new(Config::new("localhost").tls(TlsPolicy::Disabled)).unwrap();
    session.handle_input(b"220 localhost ESMTP\r\n").unwrap();
    drain(&mut session);
    let ehlo: &[u8] = if data_only {
        b"250-localhost\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    } else {
        b"250-localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
    };
    session.handle_input(ehlo).unwrap();
    drain(&mut session);
    assert!(matches!(session.poll_event(), Some(Event::Ready)));
    session
}

/// `size` bytes of CRLF text in lines of 76 characters.
fn body(size: usize) -> Vec<u8> {
    let line = b"0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n";
    line.iter().copied().cycle().take(size).collect()
}

/// One transaction, every reply positive; the server's replies are built
/// once by the caller (`replies`: MAIL, each RCPT, and DATA's 354 when not
/// chunked; then `end`). Returns the recipients accepted.
fn transaction(
    session: &mut ClientSession,
    envelope: Envelope,
    body: &[u8],
    replies: &[u8],
    end: &[u8],
) -> usize {
    session.send_mail(envelope).unwrap();
    let mut replies_fed = false;
    loop {
        match session.poll_event() {
            Some(Event::SendBody) => {
                for chunk in body.chunks(64 * 1024) {
                    session.write_body(chunk).unwrap();
                    drain(session);
                }
                session.finish_body().unwrap();
                drain(session);
                session.handle_input(end).unwrap();
            }
            Some(Event::TransactionComplete(result)) => {
                let delivery = result.unwrap();
                let accepted = delivery
                    .recipients()
                    .iter()
                    .filter(|r| r.accepted())
                    .count();
                // The `Ready` that follows.
                assert!(matches!(session.poll_event(), Some(Event::Ready)));
                return accepted;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None if !replies_fed => {
                drain(session);
                session.handle_input(replies).unwrap();
                replies_fed = true;
            }
            None => panic!("stuck"),
        }
    }
}

struct Workload {
    name: &'static str,
    transactions: u64,
    recipients: usize,
    body: usize,
    chunked: bool,
    /// Replies as long as Gmail's (MAIL and RCPT 61 bytes, the final one
    /// 75) instead of Postfix's.
    long_replies: bool,
}

/// Allocations (count, bytes) per transaction in steady state.
fn measure(w: &Workload) -> (f64, f64) {
    let mut session = ready(!w.chunked);
    let body = body(w.body);
    let to: Vec<Address> = (0..w.recipients)
        .map(|i| Address::new(format!("rcpt{i}@example.org")).unwrap())
        .collect();
    let (mail_ok, rcpt_ok, end): (&[u8], &[u8], &[u8]) = if w.long_replies {
        (
            b"250 2.1.0 OK 5b1f17b1804b1-40c0e0b5a7bsi1234567f.12 - gsmtp\r\n",
            b"250 2.1.5 OK 5b1f17b1804b1-40c0e0b5a7bsi1234567f.12 - gsmtp\r\n",
            b"250 2.0.0 OK  1700000000 5b1f17b1804b1-40c0e0b5a7bsi1234567f.12 - gsmtp\r\n",
        )
    } else {
        (
            b"250 2.1.0 Ok\r\n",
            b"250 2.1.5 Ok\r\n",
            b"250 2.0.0 Ok: queued as 4BX1234ZXYZ\r\n",
        )
    };
    let mut replies = mail_ok.to_vec();
    for _ in 0..w.recipients {
        replies.extend_from_slice(rcpt_ok);
    }
    if !w.chunked {
        replies.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
    }
    let from = Address::new("me@example.com").unwrap();
    // Built ahead, so that only the session's own allocations are counted.
    let mut envelopes: Vec<Envelope> = (0..w.transactions + 10)
        .map(|_| {
            let envelope = Envelope::new(Some(from.clone()), to.clone()).unwrap();
            if w.chunked {
                envelope.for_body(&body)
            } else {
                envelope
            }
        })
        .collect();
    // Warm-up: the session's buffers grow to their working size.
    for envelope in envelopes.drain(..10) {
        transaction(&mut session, envelope, &body, &replies, end);
    }
    let (a0, b0) = counters();
    for envelope in envelopes.drain(..) {
        assert_eq!(
            transaction(&mut session, envelope, &body, &replies, end),
            w.recipients
        );
    }
    let (a1, b1) = counters();
    let n = w.transactions as f64;
    ((a1 - a0) as f64 / n, (b1 - b0) as f64 / n)
}

fn main() {
    let workloads = [
        Workload {
            name: "1 rcpt, 1 KiB, DATA",
            transactions: 2000,
            recipients: 1,
            body: 1024,
            chunked: false,
            long_replies: false,
        },
        Workload {
            name: "10 rcpts, 1 KiB, DATA",
            transactions: 2000,
            recipients: 10,
            body: 1024,
            chunked: false,
            long_replies: false,
        },
        Workload {
            name: "10 rcpts, 1 KiB, DATA, replies as long as Gmail's",
            transactions: 2000,
            recipients: 10,
            body: 1024,
            chunked: false,
            long_replies: true,
        },
        Workload {
            name: "1 rcpt, 1 MiB (13,443 lines), DATA",
            transactions: 100,
            recipients: 1,
            body: 1 << 20,
            chunked: false,
            long_replies: false,
        },
        Workload {
            name: "1 rcpt, 1 KiB, BDAT",
            transactions: 2000,
            recipients: 1,
            body: 1024,
            chunked: true,
            long_replies: false,
        },
        Workload {
            name: "1 rcpt, 1 MiB, BDAT",
            transactions: 100,
            recipients: 1,
            body: 1 << 20,
            chunked: true,
            long_replies: false,
        },
    ];
    println!("| workload | allocations per transaction | bytes allocated per transaction |");
    println!("|---|---:|---:|");
    let mut results = Vec::new();
    for w in &workloads {
        let (allocs, bytes) = measure(w);
        println!("| {} | {allocs:.1} | {bytes:.0} |", w.name);
        results.push(allocs);
    }
    println!();
    println!(
        "per extra recipient (a RCPT and its reply): {:.2} allocations",
        (results[1] - results[0]) / 9.0
    );
    println!(
        "per body line (1 MiB minus 1 KiB, DATA): {:.5} allocations",
        (results[3] - results[0]) / (((1 << 20) - 1024) as f64 / 78.0)
    );
}
