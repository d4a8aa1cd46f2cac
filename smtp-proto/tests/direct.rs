//! Bodies written from the caller's buffer: `write_body_direct` lends the
//! stretches that go on the wire as they are, `next` hands them out as
//! `Io::WriteBody`, and the wire is the same as with `write_body`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use smtp_proto::{
    Address, BodyChunk, ClientSession, Config, Envelope, Error, Event, Io, Next, Outcome, Stage,
    TlsPolicy, BODY_DIRECT_MIN,
};
use std::time::{Duration, Instant};
use support::*;

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new("a@example.org").unwrap()],
    )
    .unwrap()
}

/// A session whose body is wanted: DATA after its 354 (smtp-sink offers
/// PIPELINING, not CHUNKING), or `BDAT n LAST` with `declared` octets.
fn body_wanted(declared: Option<u64>) -> ClientSession {
    let ehlo = if declared.is_some() {
        "250-localhost\n250-PIPELINING\n250 CHUNKING"
    } else {
        "250-localhost\n250 PIPELINING"
    };
    let mut session = run(
        Config::new("localhost").tls(TlsPolicy::Disabled),
        vec![
            S("220 localhost ESMTP"),
            C("EHLO localhost"),
            Raw(crlf(ehlo)),
            E(Event::Ready),
        ],
    );
    match declared {
        None => run_on(
            &mut session,
            vec![
                Mail(envelope()),
                C("MAIL FROM:<me@example.com>\nRCPT TO:<a@example.org>\nDATA"),
                S("250 ok\n250 ok\n354 go"),
                E(Event::SendBody),
            ],
        ),
        Some(n) => {
            session.send_mail(envelope().exact_size(n)).unwrap();
            let _ = session.take_output();
            assert_eq!(session.poll_event(), Some(Event::SendBody));
        }
    }
    session
}

/// What `write_body` and `finish_body` put on the wire for `body`, in a
/// session like `framing_of`.
fn copied(framing_of: &ClientSession, body: &[u8]) -> Vec<u8> {
    let declared = framing_of
        .capabilities()
        .chunking()
        .then(|| smtp_proto::normalized_len(body));
    let mut session = body_wanted(declared);
    session.write_body(body).unwrap();
    session.finish_body().unwrap();
    session.take_output().to_vec()
}

/// How the caller writes: each write takes at most this many bytes (0: all).
#[derive(Debug, Clone, Copy)]
struct Writes {
    chunk: usize,
    most: usize,
}

/// Streams `body` with `write_body_direct`, `chunk` bytes read at a time,
/// driving `next` as an adapter does, and ends it. Returns the wire and how
/// many bytes went as lent stretches.
fn direct(session: &mut ClientSession, body: &[u8], writes: Writes) -> (Vec<u8>, usize) {
    let now = Instant::now();
    let mut wire = Vec::new();
    let mut lent_written = 0;
    let mut chunks = body.chunks(writes.chunk.max(1));
    let mut chunk: &[u8] = &[];
    let mut taken = 0;
    let cap = |n: usize| {
        if writes.most == 0 {
            n
        } else {
            n.min(writes.most)
        }
    };
    for _ in 0..1_000_000 {
        match session.next(now).unwrap() {
            Next::Io(Io::Write { stage, .. }) => {
                assert_eq!(stage, Stage::Body);
                let out = session.pending_output();
                let n = cap(out.len());
                wire.extend_from_slice(&out[..n]);
                session.advance_output(n);
            }
            Next::Io(Io::WriteBody { len, .. }) => {
                assert!(
                    session.pending_output().is_empty(),
                    "lent bytes before the output"
                );
                let lent = &chunk[taken - len..taken];
                let n = cap(len);
                wire.extend_from_slice(&lent[..n]);
                lent_written += n;
                session.advance_body(n);
            }
            Next::Body => {
                if taken == chunk.len() {
                    match chunks.next() {
                        Some(next) => (chunk, taken) = (next, 0),
                        None => {
                            session.finish_body().unwrap();
                            wire.extend_from_slice(&session.take_output());
                            return (wire, lent_written);
                        }
                    }
                }
                let n = session.write_body_direct(&chunk[taken..]).unwrap();
                assert!(n > 0 && n <= chunk.len() - taken, "took {n}");
                taken += n;
            }
            other => panic!("{other:?} while the body streams"),
        }
    }
    panic!("the body never ended");
}

/// Streams `body` as an adapter does with a [`BodyChunk`]: read into it
/// `read` bytes at a time when the session took it all, fed at each
/// `Next::Body`, lent bytes written from it whole; returns the wire.
fn through_chunk(session: &mut ClientSession, body: &[u8], read: usize) -> Vec<u8> {
    let now = Instant::now();
    let mut wire = Vec::new();
    let mut chunk = BodyChunk::default();
    let mut pieces = body.chunks(read.max(1));
    for _ in 0..1_000_000 {
        match session.next(now).unwrap() {
            Next::Io(Io::Write { .. }) => {
                wire.extend_from_slice(&session.take_output());
            }
            Next::Io(Io::WriteBody { len, .. }) => {
                wire.extend_from_slice(chunk.lent(len).unwrap());
                session.advance_body(len);
            }
            Next::Body => {
                if chunk.is_spent() {
                    let Some(piece) = pieces.next() else {
                        session.finish_body().unwrap();
                        wire.extend_from_slice(&session.take_output());
                        return wire;
                    };
                    chunk.space(piece.len()).copy_from_slice(piece);
                    chunk.filled(piece.len());
                }
                chunk.feed(session);
            }
            other => panic!("{other:?} while the body streams"),
        }
    }
    panic!("the body never ended");
}

/// Long text: CRLF lines, now and then a line starting with a dot, a bare
/// LF or a bare CR, or a run of such lines.
fn long_body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        20 => (1usize..2000).prop_map(|n| {
            let mut line = b"abcdefghij klmnopqrstuvwxyz ".repeat(3)[..76].to_vec();
            line.extend_from_slice(b"\r\n");
            line.repeat(n)
        }),
        2 => Just(b".dot\r\n".to_vec()),
        1 => Just(b"bare lf\n".to_vec()),
        1 => Just(b"bare cr\r".to_vec()),
        1 => Just(b"\r\n.\r\n".to_vec()),
        1 => Just(b"\n.\n..\r\n.x\r".repeat(50)),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

fn writes() -> impl Strategy<Value = Writes> {
    (
        prop_oneof![1usize..100, 1000usize..70_000, Just(256 * 1024)],
        prop_oneof![Just(0usize), 1usize..5000, 10_000usize..100_000],
    )
        .prop_map(|(chunk, most)| Writes { chunk, most })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bodies_fed_through_a_body_chunk_go_as_write_body_writes_them(
        body in long_body(),
        read in prop_oneof![1usize..100, 1000usize..70_000, Just(256 * 1024)],
        chunking in any::<bool>(),
    ) {
        let declared = chunking.then(|| smtp_proto::normalized_len(&body));
        let mut session = body_wanted(declared);
        let expected = copied(&session, &body);
        let wire = through_chunk(&mut session, &body, read);
        prop_assert!(wire == expected, "the wire differs from write_body's");
        prop_assert!(!session.is_closed());
    }

    #[test]
    fn data_bodies_go_as_write_body_writes_them(body in long_body(), writes in writes()) {
        let mut session = body_wanted(None);
        let expected = copied(&session, &body);
        let (wire, _) = direct(&mut session, &body, writes);
        prop_assert!(wire == expected, "the wire differs from write_body's");
        prop_assert!(!session.is_closed());
    }

    #[test]
    fn bdat_bodies_go_as_write_body_writes_them(body in long_body(), writes in writes()) {
        let size = smtp_proto::normalized_len(&body);
        let mut session = body_wanted(Some(size));
        let expected = copied(&session, &body);
        prop_assert_eq!(expected.len() as u64, size);
        let (wire, _) = direct(&mut session, &body, writes);
        prop_assert!(wire == expected, "the wire differs from write_body's");
        prop_assert!(!session.is_closed());
    }
}

/// The e2e message: CRLF lines of 78 octets.
fn clean(size: usize) -> Vec<u8> {
    let mut line = b"abcdefghij klmnopqrstuvwxyz ".repeat(3)[..76].to_vec();
    line.extend_from_slice(b"\r\n");
    let mut body = line.repeat(size / line.len() + 1);
    body.truncate(size - 2);
    body.extend_from_slice(b"\r\n");
    body
}

#[test]
fn clean_text_is_lent_not_copied() {
    let body = clean(1 << 20);
    let mut session = body_wanted(None);
    let writes = Writes {
        chunk: 256 * 1024,
        most: 0,
    };
    let (wire, lent) = direct(&mut session, &body, writes);
    assert_eq!(wire, copied(&session, &body));
    // Every byte but the terminator.
    assert_eq!(lent, body.len());
}

#[test]
fn short_stretches_are_copied() {
    // A dot-stuffed line every 100 lines: stretches under BODY_DIRECT_MIN.
    let mut body = Vec::new();
    for i in 0..10_000 {
        if i % 100 == 0 {
            body.extend_from_slice(b".");
        }
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    let mut session = body_wanted(None);
    let writes = Writes {
        chunk: 64 * 1024,
        most: 0,
    };
    let (wire, lent) = direct(&mut session, &body, writes);
    assert_eq!(wire, copied(&session, &body));
    assert_eq!(lent, 0);
    // Pieces smaller than BODY_DIRECT_MIN are never lent, even when clean.
    let mut session = body_wanted(None);
    let small = clean(BODY_DIRECT_MIN - 2);
    assert_eq!(session.write_body_direct(&small).unwrap(), small.len());
    assert_eq!(session.pending_output(), &small[..]);
}

#[test]
fn a_lent_stretch_stops_before_the_first_insertion() {
    let mut body = clean(BODY_DIRECT_MIN + 100);
    let at = body.len();
    body.extend_from_slice(b".dot\r\nmore\r\n");
    let mut session = body_wanted(None);
    assert_eq!(session.write_body_direct(&body).unwrap(), at);
    assert!(session.pending_output().is_empty());
    let now = Instant::now();
    assert!(matches!(
        session.next(now),
        Ok(Next::Io(Io::WriteBody { len, .. })) if len == at
    ));
    session.advance_body(at);
    // The rest goes through the output, stuffed.
    assert_eq!(session.write_body_direct(&body[at..]).unwrap(), 12);
    assert_eq!(session.pending_output(), b"..dot\r\nmore\r\n");
}

#[test]
fn nothing_else_is_queued_while_bytes_are_lent() {
    let body = clean(2 * BODY_DIRECT_MIN);
    let mut session = body_wanted(None);
    assert_eq!(session.write_body_direct(&body).unwrap(), body.len());
    for result in [
        session.write_body(b"x"),
        session.finish_body(),
        session.write_body_direct(&body).map(drop),
    ] {
        assert!(
            matches!(result, Err(Error::InvalidState { .. })),
            "{result:?}"
        );
    }
    assert!(session.pending_output().is_empty());
    assert!(!session.is_closed());
    // Partial writes: the rest stays lent.
    let now = Instant::now();
    session.advance_body(10);
    assert!(matches!(
        session.next(now),
        Ok(Next::Io(Io::WriteBody { len, .. })) if len == body.len() - 10
    ));
    session.advance_body(usize::MAX);
    assert!(matches!(session.next(now), Ok(Next::Body)));
    session.finish_body().unwrap();
    assert_eq!(&session.take_output()[..], b".\r\n");
}

#[test]
fn pending_output_goes_before_the_lent_stretch() {
    let mut session = body_wanted(None);
    session.write_body(b"first\n").unwrap();
    let body = clean(BODY_DIRECT_MIN);
    assert_eq!(session.write_body_direct(&body).unwrap(), body.len());
    let now = Instant::now();
    // Below BODY_FLUSH, yet written: the lent bytes follow it.
    assert!(matches!(
        session.next(now),
        Ok(Next::Io(Io::Write {
            stage: Stage::Body,
            ..
        }))
    ));
    assert_eq!(session.pending_output(), b"first\r\n");
    session.advance_output(7);
    assert!(matches!(
        session.next(now),
        Ok(Next::Io(Io::WriteBody { len, .. })) if len == body.len()
    ));
}

#[test]
fn bdat_lends_no_octet_past_the_declared_size() {
    let body = clean(4 * BODY_DIRECT_MIN);
    // Declared one octet short: the last line break would cross it.
    let declared = body.len() as u64 - 1;
    let mut session = body_wanted(Some(declared));
    let n = session.write_body_direct(&body).unwrap();
    // Lent up to the octet before the last declared one, which is held.
    assert_eq!(n as u64, declared - 1);
    session.advance_body(n);
    let err = session.write_body_direct(&body[n..]).unwrap_err();
    assert!(matches!(err, Error::BodySizeMismatch { .. }), "{err:?}");
    assert!(session.pending_output().is_empty(), "nothing past the size");
    assert!(session.is_closed());
    // The declared size exactly: the last octet waits for finish_body.
    let mut session = body_wanted(Some(body.len() as u64));
    let n = session.write_body_direct(&body).unwrap();
    assert_eq!(n, body.len() - 1);
    session.advance_body(n);
    assert_eq!(session.write_body_direct(&body[n..]).unwrap(), 1);
    assert!(
        session.pending_output().is_empty(),
        "the last octet is held"
    );
    session.finish_body().unwrap();
    assert_eq!(session.pending_output(), b"\n");
}

#[test]
fn a_failure_drops_what_is_lent() {
    let body = clean(2 * BODY_DIRECT_MIN);
    let mut session = body_wanted(None);
    session.write_body_direct(&body).unwrap();
    session.abort();
    assert!(session.pending_output().is_empty());
    assert!(matches!(session.next(Instant::now()), Err(Error::Aborted)));
    assert_eq!(session.unfinished(), &[Outcome::NotSent]);
}

#[test]
fn a_lent_write_that_stalls_times_out_at_the_body_stage() {
    let body = clean(2 * BODY_DIRECT_MIN);
    let mut session = body_wanted(None);
    session.write_body_direct(&body).unwrap();
    let now = Instant::now();
    let Ok(Next::Io(io @ Io::WriteBody { .. })) = session.next(now) else {
        panic!("no WriteBody");
    };
    let deadline = io.deadline().expect("the body has a timeout");
    assert_eq!(session.poll_timeout(), Some(deadline));
    session.handle_timeout(deadline + Duration::from_secs(1));
    assert!(matches!(
        session.error(),
        Some(Error::Timeout {
            stage: Stage::Body,
            ..
        })
    ));
    assert!(session.pending_output().is_empty());
    assert!(session.next(deadline).is_err(), "nothing more to write");
}

#[test]
fn the_end_of_data_is_counted_after_the_lent_bytes() {
    let body = clean(2 * BODY_DIRECT_MIN);
    let mut session = body_wanted(None);
    session.write_body_direct(&body).unwrap();
    session.advance_body(body.len());
    session.finish_body().unwrap();
    // Nothing of the final dot taken yet: the message is not sent.
    session.handle_eof().unwrap_err();
    assert_eq!(session.unfinished(), &[Outcome::NotSent]);
    let mut session = body_wanted(None);
    session.write_body_direct(&body).unwrap();
    session.advance_body(body.len());
    session.finish_body().unwrap();
    session.advance_output(1);
    session.handle_eof().unwrap_err();
    assert_eq!(session.unfinished(), &[Outcome::Unknown]);
}

#[test]
fn progress_on_lent_bytes_ends_the_wait_for_the_write() {
    let body = clean(2 * BODY_DIRECT_MIN);
    let mut session = body_wanted(None);
    session.write_body_direct(&body).unwrap();
    let now = Instant::now();
    let Ok(Next::Io(io @ Io::WriteBody { .. })) = session.next(now) else {
        panic!("no WriteBody");
    };
    assert_eq!(session.poll_timeout(), io.deadline());
    // Nothing written: the write is still awaited.
    session.advance_body(0);
    assert_eq!(session.poll_timeout(), io.deadline());
    let late = io.deadline().unwrap() + Duration::from_secs(1);
    // Some written: that wait is over, and the next write has its own.
    session.advance_body(10);
    assert_eq!(session.poll_timeout(), None);
    session.handle_timeout(late);
    assert!(!session.is_closed(), "timed out after progress");
    let Ok(Next::Io(Io::WriteBody { len, deadline })) = session.next(late) else {
        panic!("no WriteBody");
    };
    assert_eq!(len, body.len() - 10);
    assert!(deadline > io.deadline());
}
