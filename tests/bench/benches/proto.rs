//! Micro-benchmarks of the protocol core next to its peers (issue 6):
//!
//! - `reply/*`: the reply parser on one line, a 10-line EHLO reply and a
//!   stream of 1000 pipelined replies; ours (`ReplyParser`, enhanced codes
//!   on), lettre's (`Response: FromStr`, its public door to the private
//!   `parse_response`) and Stalwart's (`ResponseReceiver`).
//! - `capabilities/*`: bytes of a whole EHLO reply to a capability set; ours
//!   (`Reply::parse` + `Capabilities::from_ehlo`), lettre's
//!   (`Response::from_str` + `ServerInfo::from_response`) and Stalwart's
//!   (`EhloResponse::parse`).
//! - `data/*`: the DATA encoder in GB/s on 1 MiB and 10 MiB bodies (plain
//!   CRLF text, bare-LF text, dot-heavy text), fed in 64 KiB chunks like the
//!   blocking adapter does, into an output buffer that is reused (cleared as
//!   if written) after every chunk; next to `memcpy` (the same chunks copied
//!   with `extend_from_slice` into a reused buffer: the ceiling) and lettre's
//!   transparency codec (private in lettre, so copied below verbatim).
//!
//! Run: `cd tests/bench && cargo bench --bench proto` (add a filter such as
//! `-- data/` and `--quick` for a short run).

use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use smtp_proto::BodyEncoder;
use smtp_proto::Capabilities;
use smtp_proto::{Reply, ReplyLimits, ReplyParser};

use lettre::transport::smtp::extension::ServerInfo;
use lettre::transport::smtp::response::Response as LettreResponse;

use stalwart_smtp_proto::response::parser::ResponseReceiver;
use stalwart_smtp_proto::EhloResponse;

const SINGLE: &[u8] = b"250 2.1.0 Sender OK\r\n";

/// Microsoft 365 after STARTTLS: ten lines.
const EXCHANGE_EHLO: &[u8] = b"250-AM0PR01CA0001.outlook.office365.com Hello [203.0.113.5]\r\n\
250-SIZE 157286400\r\n\
250-PIPELINING\r\n\
250-DSN\r\n\
250-ENHANCEDSTATUSCODES\r\n\
250-AUTH LOGIN XOAUTH2\r\n\
250-8BITMIME\r\n\
250-BINARYMIME\r\n\
250-CHUNKING\r\n\
250 SMTPUTF8\r\n";

const GMAIL_EHLO: &[u8] = b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n\
250-SIZE 35882577\r\n\
250-8BITMIME\r\n\
250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n\
250-ENHANCEDSTATUSCODES\r\n\
250-PIPELINING\r\n\
250-CHUNKING\r\n\
250 SMTPUTF8\r\n";

/// The replies of one pipelined transaction (MAIL, RCPT, DATA, end of data),
/// repeated to make `STREAM_REPLIES` replies.
const TRANSACTION: [&[u8]; 4] = [
    b"250 2.1.0 Sender OK\r\n",
    b"250 2.1.5 Recipient OK\r\n",
    b"354 Start mail input; end with <CRLF>.<CRLF>\r\n",
    b"250 2.0.0 Ok: queued as 4FkQ2x0b3Fz9vBm\r\n",
];
const STREAM_REPLIES: usize = 1000;

fn reply_stream() -> Vec<u8> {
    TRANSACTION
        .iter()
        .cycle()
        .take(STREAM_REPLIES)
        .flat_map(|r| r.iter().copied())
        .collect()
}

fn ours_one(bytes: &[u8]) -> Reply {
    let mut parser = ReplyParser::new(ReplyLimits::default());
    parser.extend(bytes);
    match parser.next_reply(true) {
        Ok(Some(reply)) => reply,
        other => panic!("ours: {other:?}"),
    }
}

fn lettre_one(bytes: &[u8]) -> LettreResponse {
    let text = std::str::from_utf8(bytes).expect("ascii");
    LettreResponse::from_str(text).expect("lettre parses")
}

fn stalwart_one(bytes: &[u8]) -> stalwart_smtp_proto::Response<String> {
    let mut receiver = ResponseReceiver::default();
    receiver.parse(&mut bytes.iter()).expect("stalwart parses")
}

fn bench_reply(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply");
    for (name, input) in [("single", SINGLE), ("ehlo10", EXCHANGE_EHLO)] {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("ours", name), input, |b, i| {
            b.iter(|| ours_one(black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("lettre", name), input, |b, i| {
            b.iter(|| lettre_one(black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("stalwart", name), input, |b, i| {
            b.iter(|| stalwart_one(black_box(i)))
        });
    }

    // 1000 pipelined replies arriving in one read: each parser's own way of
    // taking several replies out of one buffer.
    let stream = reply_stream();
    group.throughput(Throughput::Elements(STREAM_REPLIES as u64));
    group.bench_with_input(
        BenchmarkId::new("ours", "stream1000"),
        &stream,
        |b, stream| {
            // One parser reused, as a session does; its buffer is reused too.
            let mut parser = ReplyParser::new(ReplyLimits::default());
            b.iter(|| {
                parser.extend(black_box(stream));
                let mut n = 0usize;
                while let Some(reply) = parser.next_reply(true).expect("valid") {
                    black_box(&reply);
                    n += 1;
                }
                assert_eq!(n, STREAM_REPLIES);
            })
        },
    );
    group.bench_with_input(
        BenchmarkId::new("stalwart", "stream1000"),
        &stream,
        |b, stream| {
            let mut receiver = ResponseReceiver::default();
            b.iter(|| {
                let mut iter = black_box(stream).iter();
                let mut n = 0usize;
                while iter.len() > 0 {
                    let reply = receiver.parse(&mut iter).expect("valid");
                    receiver.reset();
                    black_box(&reply);
                    n += 1;
                }
                assert_eq!(n, STREAM_REPLIES);
            })
        },
    );
    group.bench_with_input(
        BenchmarkId::new("lettre", "stream1000"),
        &stream,
        |b, stream| {
            // lettre reads line by line and parses the reply once its last
            // line is in (it never pipelines, so it has no stream API); here
            // the last line is found for it, which flatters it slightly.
            let text = std::str::from_utf8(stream).expect("ascii");
            b.iter(|| {
                let text = black_box(text);
                let mut start = 0;
                let mut n = 0usize;
                let mut pos = 0;
                while pos < text.len() {
                    let eol = pos + text[pos..].find('\n').expect("line") + 1;
                    let last = text.as_bytes().get(pos + 3) == Some(&b' ');
                    pos = eol;
                    if last {
                        let reply = LettreResponse::from_str(&text[start..eol]).expect("valid");
                        black_box(&reply);
                        start = eol;
                        n += 1;
                    }
                }
                assert_eq!(n, STREAM_REPLIES);
            })
        },
    );
    group.finish();
}

fn bench_capabilities(c: &mut Criterion) {
    let mut group = c.benchmark_group("capabilities");
    group.throughput(Throughput::Elements(1));
    for (name, input) in [("exchange", EXCHANGE_EHLO), ("gmail", GMAIL_EHLO)] {
        group.bench_with_input(BenchmarkId::new("ours", name), input, |b, i| {
            b.iter(|| {
                let reply = Reply::parse(black_box(i)).expect("valid");
                Capabilities::from_ehlo(&reply)
            })
        });
        group.bench_with_input(BenchmarkId::new("lettre", name), input, |b, i| {
            b.iter(|| {
                let reply = lettre_one(black_box(i));
                ServerInfo::from_response(&reply).expect("valid")
            })
        });
        group.bench_with_input(BenchmarkId::new("stalwart", name), input, |b, i| {
            b.iter(|| EhloResponse::parse(&mut black_box(i).iter()).expect("valid"))
        });
    }
    group.finish();
}

/// lettre's `ClientCodec::encode` (lettre 0.11, `transport/smtp/client/mod.rs`,
/// MIT), private there, copied verbatim: dot-stuffing only, bare LF and bare
/// CR pass through unchanged.
struct LettreCodec {
    status: CodecStatus,
}

#[derive(Clone, Copy)]
#[allow(clippy::enum_variant_names)] // as in lettre
enum CodecStatus {
    MiddleOfLine,
    StartingNewLine,
    StartOfNewLine,
}

impl LettreCodec {
    fn new() -> Self {
        Self {
            status: CodecStatus::StartOfNewLine,
        }
    }

    fn encode(&mut self, frame: &[u8], buf: &mut Vec<u8>) {
        for &b in frame {
            buf.push(b);
            match (b, self.status) {
                (b'\r', _) => {
                    self.status = CodecStatus::StartingNewLine;
                }
                (b'\n', CodecStatus::StartingNewLine) => {
                    self.status = CodecStatus::StartOfNewLine;
                }
                (_, CodecStatus::StartingNewLine) => {
                    self.status = CodecStatus::MiddleOfLine;
                }
                (b'.', CodecStatus::StartOfNewLine) => {
                    self.status = CodecStatus::MiddleOfLine;
                    buf.push(b'.');
                }
                (_, CodecStatus::StartOfNewLine) => {
                    self.status = CodecStatus::MiddleOfLine;
                }
                _ => {}
            }
        }
    }
}

/// Deterministic text: lines of 20 to 98 printable characters.
fn body(size: usize, eol: &[u8], dot_every: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 128);
    let mut state: u32 = 0x2545_f491;
    let mut line = 0usize;
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = 20 + (state % 79) as usize;
        if dot_every > 0 && line.is_multiple_of(dot_every) {
            out.push(b'.');
        }
        for i in 0..len {
            let c = b'a' + ((state as usize + i * 7) % 26) as u8;
            out.push(if i % 9 == 8 { b' ' } else { c });
        }
        out.extend_from_slice(eol);
        line += 1;
    }
    out.truncate(size);
    out
}

const CHUNK: usize = 64 * 1024;

fn bench_data(c: &mut Criterion) {
    let mut group = c.benchmark_group("data");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (size_name, size) in [("1MiB", 1usize << 20), ("10MiB", 10usize << 20)] {
        for (kind, input) in [
            ("plain", body(size, b"\r\n", 0)),
            ("bare_lf", body(size, b"\n", 0)),
            // Every other line starts with a dot.
            ("dots", body(size, b"\r\n", 2)),
        ] {
            let id = format!("{kind}/{size_name}");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("memcpy", &id), &input, |b, input| {
                let mut out: Vec<u8> = Vec::with_capacity(CHUNK);
                b.iter(|| {
                    for chunk in black_box(input).chunks(CHUNK) {
                        out.clear();
                        out.extend_from_slice(chunk);
                        black_box(&out);
                    }
                })
            });
            group.bench_with_input(BenchmarkId::new("ours", &id), &input, |b, input| {
                let mut out = BytesMut::with_capacity(2 * CHUNK);
                let mut stuffer = BodyEncoder::new();
                b.iter(|| {
                    for chunk in black_box(input).chunks(CHUNK) {
                        out.clear();
                        stuffer.encode(chunk, &mut out);
                        black_box(&out);
                    }
                    out.clear();
                    stuffer.finish(&mut out);
                })
            });
            group.bench_with_input(BenchmarkId::new("lettre", &id), &input, |b, input| {
                // lettre allocates a fresh Vec per part; reused here (kinder).
                let mut out: Vec<u8> = Vec::with_capacity(2 * CHUNK);
                b.iter(|| {
                    let mut codec = LettreCodec::new();
                    for chunk in black_box(input).chunks(CHUNK) {
                        out.clear();
                        codec.encode(chunk, &mut out);
                        black_box(&out);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_reply, bench_capabilities, bench_data);
criterion_main!(benches);
