//! Faults: malformed replies, a server that closes mid-reply or mid-DATA,
//! a server that stalls, and `421` at every stage. Each gives a typed
//! error or a timeout within a bound, never a hang.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use proto::ReplyError;
use proto::{Config, Outcome, Stage, Timeouts, TlsPolicy};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{Peer, Received, ScriptedServer, TestPki};

use crate::common::*;
use crate::harness::{Adapter, AdapterError, Kind, Opts};

/// The stage timeout of the stall scenarios.
const STALL: Duration = Duration::from_millis(300);

/// A plaintext server running `script`; connects (5 s per stage) and
/// expects a failure within [`FAST`].
fn connect_fails(
    adapter: &dyn Adapter,
    script: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
) -> (AdapterError, Received) {
    let server = ScriptedServer::start_fn(script).unwrap();
    let opts = plain_opts(Duration::from_secs(5));
    let err = quickly(adapter.name(), || {
        adapter
            .connect(server.addr(), config_plain(), &opts)
            .map(|_| ())
    });
    let received = finished(&server, 1).remove(0);
    assert_nothing_sensitive(&received);
    (err, received)
}

fn malformed(err: &AdapterError) -> (Stage, ReplyError) {
    match err.smtp() {
        Some(proto::Error::MalformedReply { stage, source }) => (*stage, source.clone()),
        _ => panic!("expected MalformedReply, got {err:?}"),
    }
}

/// Reply lines that do not start with a code from 200 to 599 (NUL bytes
/// in the code included), or whose code is not followed by a space or `-`.
pub fn malformed_bad_code(adapter: &dyn Adapter) {
    let cases: [(&[u8], fn(&ReplyError) -> bool); 5] = [
        (b"hello there\r\n", |e| matches!(e, ReplyError::InvalidCode)),
        (b"999 mail.test ESMTP\r\n", |e| {
            matches!(e, ReplyError::InvalidCode)
        }),
        (b"2\x0020 mail.test ESMTP\r\n", |e| {
            matches!(e, ReplyError::InvalidCode)
        }),
        (b"\x00\x00\x00\r\n", |e| {
            matches!(e, ReplyError::InvalidCode)
        }),
        (b"220mail.test ESMTP\r\n", |e| {
            matches!(e, ReplyError::InvalidSeparator)
        }),
    ];
    for (greeting, check) in cases {
        let (err, received) = connect_fails(adapter, move |peer| {
            peer.send(greeting)?;
            until_eof(peer, Duration::from_secs(5))
        });
        let (stage, source) = malformed(&err);
        assert_eq!(stage, Stage::Greeting);
        assert!(check(&source), "{greeting:?}: {source:?}");
        assert!(
            verbs(&received.plain).iter().all(|v| v == "QUIT"),
            "{received:?}"
        );
    }
}

/// A multi-line EHLO reply whose lines carry different codes.
pub fn malformed_mixed_codes(adapter: &dyn Adapter) {
    let (err, received) = connect_fails(adapter, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO ")?;
        peer.reply("250-mail.test\n251-PIPELINING\n250 8BITMIME")?;
        until_eof(peer, Duration::from_secs(5))
    });
    let (stage, source) = malformed(&err);
    assert_eq!(stage, Stage::Ehlo);
    assert!(
        matches!(
            source,
            ReplyError::MixedCodes {
                first: 250,
                other: 251
            }
        ),
        "{source:?}"
    );
    assert!(verbs(&received.plain)[1..].iter().all(|v| v == "QUIT"));
}

/// A reply line far past the limit, with no end in sight: refused at the
/// limit, without waiting for the rest.
pub fn malformed_overlong_line(adapter: &dyn Adapter) {
    let (err, _) = connect_fails(adapter, |peer| {
        let mut line = b"220 ".to_vec();
        line.extend(std::iter::repeat_n(b'a', 64 * 1024));
        peer.send(&line)?;
        until_eof(peer, Duration::from_secs(5))
    });
    let (stage, source) = malformed(&err);
    assert_eq!(stage, Stage::Greeting);
    assert!(
        matches!(source, ReplyError::LineTooLong { .. }),
        "{source:?}"
    );
}

/// Continuation lines without end: refused at the line limit.
pub fn malformed_endless_continuation(adapter: &dyn Adapter) {
    let (err, _) = connect_fails(adapter, |peer| {
        let batch = "220-still greeting you\r\n".repeat(64);
        // Until the client hangs up (a write fails) or 1 MiB.
        for _ in 0..(1 << 20) / batch.len() {
            if peer.send(batch.as_bytes()).is_err() {
                return Ok(());
            }
        }
        until_eof(peer, Duration::from_secs(5))
    });
    let (stage, source) = malformed(&err);
    assert_eq!(stage, Stage::Greeting);
    assert!(
        matches!(source, ReplyError::TooManyLines { .. }),
        "{source:?}"
    );
}

/// NUL bytes in a reply's text are text: the session goes on, and the
/// client sends nothing unexpected.
pub fn nul_bytes_in_reply_text(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.send(b"220 mail.test\0 ESMTP\0\r\n")?;
        peer.expect("EHLO ")?;
        peer.send(b"250-mail.test\0hi\r\n250 8BITMIME\0\r\n")?;
        peer.expect("NOOP")?;
        peer.send(b"250 \0ok\r\n")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    client.noop().unwrap();
    client.quit().unwrap();
    let received = finished(&server, 1);
    assert_eq!(server.errors(), vec![None]);
    assert_eq!(verbs(&received[0].plain), ["EHLO", "NOOP", "QUIT"]);
}

/// The server closes the connection in the middle of the greeting and in
/// the middle of the EHLO reply.
pub fn closed_mid_reply(adapter: &dyn Adapter) {
    let (err, _) = connect_fails(adapter, |peer| {
        peer.send(b"220-mail.test ESMTP\r\n220 wel")?;
        Ok(())
    });
    assert!(
        matches!(
            err.smtp(),
            Some(proto::Error::ConnectionClosed {
                stage: Stage::Greeting
            })
        ),
        "{err:?}"
    );
    assert!(err.transient);

    let (err, received) = connect_fails(adapter, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO ")?;
        peer.send(b"250-mail.test\r\n250-PIPEL")?;
        Ok(())
    });
    assert!(
        matches!(
            err.smtp(),
            Some(proto::Error::ConnectionClosed { stage: Stage::Ehlo })
        ),
        "{err:?}"
    );
    assert!(err.transient);
    assert_eq!(verbs(&received.plain)[0], "EHLO");
}

/// A TLS peer that cuts the connection mid-reply without close_notify:
/// the same typed error on every backend (the connection closed during that
/// stage), never a bare I/O error on some.
pub fn tls_cut_mid_reply_without_close_notify(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let tls = cert.server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.implicit_tls(tls.clone())?;
        peer.send(b"220-mail.test ESMTP\r\n220 wel")?;
        peer.abort();
        Ok(())
    })
    .unwrap();
    let config = Config::new(NAME).tls(TlsPolicy::Implicit);
    let err = quickly(adapter.name(), || {
        adapter
            .connect(server.addr(), config.clone(), &opts(&pki))
            .map(|_| ())
    });
    assert!(
        matches!(
            err.smtp(),
            Some(proto::Error::ConnectionClosed {
                stage: Stage::Greeting
            })
        ),
        "{}: {err:?}",
        adapter.name()
    );
    assert!(err.transient);
}

/// The per-stage timeout of the TLS drip scenarios.
const DRIP_STAGE: Duration = Duration::from_millis(800);

/// Connects with implicit TLS under [`DRIP_STAGE`] per stage, and checks
/// that the connection failed with `stage`'s timeout within a small margin.
fn assert_drip_times_out(
    adapter: &dyn Adapter,
    server: &ScriptedServer,
    pki: &TestPki,
    stage: Stage,
) {
    let mut opts = opts(pki);
    opts.timeouts = Timeouts::uniform(DRIP_STAGE);
    let config = Config::new(NAME).tls(TlsPolicy::Implicit);
    let started = std::time::Instant::now();
    let result = adapter.connect(server.addr(), config, &opts).map(|_| ());
    let took = started.elapsed();
    let err = result
        .err()
        .unwrap_or_else(|| panic!("{}: connected", adapter.name()));
    assert!(err.timeout, "{}: {err:?}", adapter.name());
    assert!(
        err.message.contains(stage.as_str()),
        "{}: {err:?}",
        adapter.name()
    );
    assert!(
        took < DRIP_STAGE + Duration::from_millis(700),
        "{} at {stage}: failed after {took:?}",
        adapter.name()
    );
}

/// A TLS peer that drips its records one octet at a time, at the greeting
/// and in the middle of the EHLO reply: every backend fails with that
/// stage's timeout within a small margin, however long the drip would go on
/// (rustls' own read keeps reading while bytes trickle in).
pub fn tls_drip_is_bounded_by_the_stage_timeout(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    for at_ehlo in [false, true] {
        let tls = cert.server_config().unwrap();
        let server = ScriptedServer::start_fn(move |peer| {
            peer.implicit_tls(tls.clone())?;
            if at_ehlo {
                peer.reply("220 mail.test ESMTP")?;
                peer.expect("EHLO ")?;
                peer.send(b"250-mail.test\r\n")?;
            }
            // About 40 record octets, one every 100 ms: 4 s in all.
            let line: &[u8] = if at_ehlo {
                b"250 8BITMIME\r\n"
            } else {
                b"220 mail.test ESMTP\r\n"
            };
            peer.drip_tls(line, Duration::from_millis(100))
        })
        .unwrap();
        let stage = if at_ehlo {
            Stage::Ehlo
        } else {
            Stage::Greeting
        };
        assert_drip_times_out(adapter, &server, &pki, stage);
    }
}

/// A server whose TLS handshake flight comes one octet every 20 ms (a few
/// KiB: a minute in all): the handshake fails with its stage's timeout
/// within a small margin on every backend.
pub fn tls_handshake_drip_is_bounded(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let tls = cert.server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.implicit_tls_dripped(tls.clone(), Duration::from_millis(20))
    })
    .unwrap();
    assert_drip_times_out(adapter, &server, &pki, Stage::TlsHandshake);
}

/// Greeting and EHLO (no PIPELINING), then `MAIL`, `RCPT`, `DATA`.
fn until_data(peer: &mut Peer) -> io::Result<()> {
    peer.reply("220 mail.test ESMTP")?;
    ehlo(peer, &["8BITMIME"])?;
    peer.expect("MAIL FROM:")?;
    peer.reply("250 OK")?;
    peer.expect("RCPT TO:")?;
    peer.reply("250 OK")?;
    peer.expect("DATA")?;
    peer.reply("354 go ahead")
}

/// The server closes the connection in the middle of the body: a small
/// body (written whole; the reply never comes) and a 4 MiB one (the
/// write fails, or blocks until the body timeout). A typed error or a
/// timeout, transient; the client is not reused.
pub fn closed_mid_data(adapter: &dyn Adapter) {
    for size in [64usize, 4 << 20] {
        let server = ScriptedServer::start_fn(|peer| {
            until_data(peer)?;
            peer.line()?;
            // Closed with unread input: a reset, not a drain.
            peer.close();
            Ok(())
        })
        .unwrap();
        // 1 s per stage: the half-closed server socket (shut down, its
        // descriptor still open) sometimes leaves the client's write blocked
        // rather than reset, and then the body timeout ends it.
        let opts = plain_opts(Duration::from_secs(1));
        let mut client = connect_ok(adapter, &server, config_plain(), &opts);
        let body = b"0123456789abcdef\r\n".repeat(size / 18 + 1);
        let err = quickly(adapter.name(), || client.send(envelope(), &body));
        let io_kinds = [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
        ];
        assert!(
            matches!(err.kind, Kind::Smtp(proto::Error::ConnectionClosed { .. }))
                || matches!(err.kind, Kind::Io(k) if io_kinds.contains(&k))
                || matches!(err.kind, Kind::Timeout(Stage::Body | Stage::DataEnd)),
            "{size}: {err:?}"
        );
        // Transient when the final dot never went out; when it did, unknown
        // (the server may have the message), which invites no blind retry.
        match err.outcome {
            Outcome::NotSent => assert!(err.transient, "{err:?}"),
            Outcome::Unknown => assert!(!err.transient, "{err:?}"),
            _ => panic!("{size}: {err:?}"),
        }
        if size == 64 {
            assert_eq!(
                err.outcome,
                Outcome::Unknown,
                "the whole message went: {err:?}"
            );
        }
        assert!(client.noop().is_err());
        drop(client);
        finished(&server, 1);
    }
}

/// Stall helpers: the server stops answering at some point and waits for
/// the client to hang up.
fn stall_at(
    adapter: &dyn Adapter,
    expect_stage: Stage,
    script: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
) {
    stall(adapter, expect_stage, false, script);
}

fn stall(
    adapter: &dyn Adapter,
    expect_stage: Stage,
    implicit_tls: bool,
    script: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
) {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        if implicit_tls {
            peer.implicit_tls(Arc::clone(&tls))?;
        }
        script(peer)?;
        until_eof(peer, Duration::from_secs(5))
    })
    .unwrap();
    // The stalled stage has its own short timeout, every other stage a
    // long one: the failure within FAST shows the stage's own timeout
    // applies.
    let timeouts = Timeouts::uniform(Duration::from_secs(5)).with(expect_stage, STALL);
    let (config, opts) = if implicit_tls {
        (
            proto::Config::new(NAME).tls(proto::TlsPolicy::Implicit),
            opts(&pki).timeouts(timeouts),
        )
    } else {
        (config_plain(), Opts::new().timeouts(timeouts))
    };
    let err = match expect_stage {
        Stage::Greeting | Stage::Ehlo => quickly(adapter.name(), || {
            adapter.connect(server.addr(), config, &opts).map(|_| ())
        }),
        _ => {
            let mut client = connect_ok(adapter, &server, config, &opts);
            let err = quickly(adapter.name(), || {
                client.send(envelope(), b"Subject: stall\r\n\r\nhi\r\n")
            });
            assert!(
                client.is_poisoned(),
                "{}: not poisoned after {err:?}",
                adapter.name()
            );
            let again = client.noop().unwrap_err();
            assert!(matches!(again.kind, Kind::Poisoned), "{again:?}");
            let again = client.send(envelope(), b"again\r\n").unwrap_err();
            assert!(matches!(again.kind, Kind::Poisoned), "{again:?}");
            // QUIT on a poisoned client only closes the connection (checked
            // below: no QUIT went out); smtp-blocking calls that done, the
            // async clients report that the client was poisoned.
            let quit = client.quit();
            match quit {
                Ok(()) if adapter.name() == "blocking" => {}
                Err(e) if matches!(e.kind, Kind::Poisoned) && adapter.name() != "blocking" => {}
                other => panic!("{}: quit on a poisoned client: {other:?}", adapter.name()),
            }
            err
        }
    };
    assert!(
        matches!(err.kind, Kind::Timeout(stage) if stage == expect_stage),
        "expected a timeout at {expect_stage:?}, got {err:?}"
    );
    assert!(err.timeout);
    // A stall after the final dot leaves the delivery unknown, not transient.
    if expect_stage == Stage::DataEnd {
        assert!(err.outcome == Outcome::Unknown && !err.transient, "{err:?}");
    } else {
        assert!(err.transient, "{err:?}");
    }
    let received = finished(&server, 1).remove(0);
    let sent = if implicit_tls {
        &received.tls
    } else {
        &received.plain
    };
    assert!(
        !verbs(sent).iter().any(|v| v == "NOOP" || v == "QUIT"),
        "{:?}",
        String::from_utf8_lossy(sent)
    );
}

/// No greeting at all.
pub fn stall_greeting(adapter: &dyn Adapter) {
    stall_at(adapter, Stage::Greeting, |_| Ok(()));
}

/// Half an EHLO reply, then nothing: a reply must arrive whole in time.
pub fn stall_mid_reply(adapter: &dyn Adapter) {
    stall_at(adapter, Stage::Ehlo, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO ")?;
        peer.send(b"250-mail.test\r\n")
    });
}

/// A server that drips its EHLO reply a byte at a time, each byte within
/// the stage timeout but the reply never complete in time.
pub fn stall_dripping_reply(adapter: &dyn Adapter) {
    stall_at(adapter, Stage::Ehlo, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO ")?;
        let reply = "250-mail.test\r\n250 8BITMIME\r\n";
        for b in reply.bytes() {
            peer.send(&[b])?;
            std::thread::sleep(STALL / 4);
        }
        Ok(())
    });
}

/// No reply to `MAIL`.
pub fn stall_mail(adapter: &dyn Adapter) {
    stall_at(adapter, Stage::Mail, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        peer.expect("MAIL FROM:")?;
        Ok(())
    });
}

/// No reply to `MAIL`, over implicit TLS.
pub fn stall_mail_over_tls(adapter: &dyn Adapter) {
    stall(adapter, Stage::Mail, true, |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        peer.expect("MAIL FROM:")?;
        Ok(())
    });
}

/// A refused NOOP (the health check a pool runs) is a typed error that
/// ends the session: the client sends QUIT once and nothing else, and a
/// later send fails without writing.
pub fn noop_refused_fails_the_health_check(adapter: &dyn Adapter) {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["8BITMIME"])?;
        peer.expect("NOOP")?;
        peer.reply("502 5.5.1 NOOP not implemented")?;
        until_eof(peer, Duration::from_secs(5))
    })
    .unwrap();
    let mut client = connect_ok(adapter, &server, config_plain(), &plain_opts(FAST));
    let err = client.noop().unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(proto::Error::Rejected {
                stage: Stage::Noop,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!err.transient && !err.security);
    let again = quickly(adapter.name(), || client.send(envelope(), b"hi\r\n"));
    assert!(again.smtp().is_some(), "{again:?}");
    let _ = client.quit();
    let received = finished(&server, 1).remove(0);
    assert_eq!(verbs(&received.plain), ["EHLO", "NOOP", "QUIT"]);
}

/// No reply to the end of data.
pub fn stall_data_end(adapter: &dyn Adapter) {
    stall_at(adapter, Stage::DataEnd, |peer| {
        until_data(peer)?;
        peer.read_data()?;
        Ok(())
    });
}

/// `220` to STARTTLS, then no handshake.
pub fn stall_tls_handshake(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["STARTTLS"])?;
        peer.expect("STARTTLS")?;
        peer.reply("220 go ahead")?;
        until_eof(peer, Duration::from_secs(5))
    })
    .unwrap();
    let opts = opts(&pki).timeouts(Timeouts::uniform(STALL));
    let err = quickly(adapter.name(), || {
        adapter
            .connect(server.addr(), config_password(), &opts)
            .map(|_| ())
    });
    assert!(
        matches!(err.kind, Kind::Timeout(Stage::TlsHandshake)),
        "{err:?}"
    );
    let received = finished(&server, 1).remove(0);
    assert_nothing_sensitive(&received);
    // The ClientHello (a handshake record: 0x16) went out after the `220`,
    // over the socket.
    let hello = received
        .plain
        .windows(10)
        .position(|w| w == b"STARTTLS\r\n")
        .map(|i| &received.plain[i + 10..]);
    assert_eq!(
        hello.and_then(|h| h.first()),
        Some(&0x16),
        "{}: {:?}",
        adapter.name(),
        received.plain_text()
    );
}

/// Where the `421` comes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum At {
    Greeting,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    DataEnd,
}

const CLOSING: &str = "421 4.3.2 Service not available, closing transmission channel";

fn service_closing(adapter: &dyn Adapter, at: At) {
    let server = ScriptedServer::start_fn(move |peer| {
        let step = |peer: &mut Peer, here: At, ok: &str| -> io::Result<bool> {
            if at == here {
                peer.reply(CLOSING)?;
                until_eof(peer, Duration::from_secs(5))?;
                Ok(true)
            } else {
                peer.reply(ok)?;
                Ok(false)
            }
        };
        if step(peer, At::Greeting, "220 mail.test ESMTP")? {
            return Ok(());
        }
        peer.expect("EHLO ")?;
        if step(peer, At::Ehlo, &ehlo_reply(&["8BITMIME"]))? {
            return Ok(());
        }
        peer.expect("MAIL FROM:")?;
        if step(peer, At::Mail, "250 OK")? {
            return Ok(());
        }
        peer.expect("RCPT TO:")?;
        if step(peer, At::Rcpt, "250 OK")? {
            return Ok(());
        }
        peer.expect("DATA")?;
        if step(peer, At::Data, "354 go ahead")? {
            return Ok(());
        }
        peer.read_data()?;
        if step(peer, At::DataEnd, "250 queued")? {
            return Ok(());
        }
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let opts = plain_opts(FAST);
    let (err, stage) = match at {
        At::Greeting | At::Ehlo => {
            let err = quickly(adapter.name(), || {
                adapter
                    .connect(server.addr(), config_plain(), &opts)
                    .map(|_| ())
            });
            (
                err,
                if at == At::Greeting {
                    Stage::Greeting
                } else {
                    Stage::Ehlo
                },
            )
        }
        _ => {
            let mut client = connect_ok(adapter, &server, config_plain(), &opts);
            let err = quickly(adapter.name(), || {
                client.send(envelope(), b"Subject: 421\r\n\r\nhi\r\n")
            });
            // The connection is finished: not reusable.
            assert!(client.noop().is_err());
            let stage = match at {
                At::Mail => Stage::Mail,
                At::Rcpt => Stage::Rcpt,
                At::Data => Stage::Data,
                _ => Stage::DataEnd,
            };
            (err, stage)
        }
    };
    assert!(
        matches!(err.smtp(), Some(proto::Error::ServiceClosing { stage: s, .. }) if *s == stage),
        "{at:?}: {err:?}"
    );
    if at == At::DataEnd {
        // The final dot went out: a `421` in answer may come from a
        // middlebox while the server kept the message, so the delivery is
        // unknown, and no blind retry is invited.
        assert!(err.outcome == Outcome::Unknown && !err.transient, "{err:?}");
    } else if at != At::Greeting && at != At::Ehlo {
        assert!(err.outcome == Outcome::Refused && err.transient, "{err:?}");
    } else {
        assert!(err.transient, "{err:?}");
    }
    // Nothing after the command answered with 421: no QUIT, no NOOP.
    let received = finished(&server, 1).remove(0);
    let verbs = verbs(&received.plain);
    let expected: &[&str] = match at {
        At::Greeting => &[],
        At::Ehlo => &["EHLO"],
        At::Mail => &["EHLO", "MAIL"],
        At::Rcpt => &["EHLO", "MAIL", "RCPT"],
        At::Data => &["EHLO", "MAIL", "RCPT", "DATA"],
        At::DataEnd => &["EHLO", "MAIL", "RCPT", "DATA", "SUBJECT:", "HI", "."],
    };
    assert_eq!(verbs, expected, "{at:?}");
}

/// `421` instead of the greeting.
pub fn closing_421_greeting(adapter: &dyn Adapter) {
    service_closing(adapter, At::Greeting);
}
/// `421` to EHLO.
pub fn closing_421_ehlo(adapter: &dyn Adapter) {
    service_closing(adapter, At::Ehlo);
}
/// `421` to MAIL.
pub fn closing_421_mail(adapter: &dyn Adapter) {
    service_closing(adapter, At::Mail);
}
/// `421` to RCPT.
pub fn closing_421_rcpt(adapter: &dyn Adapter) {
    service_closing(adapter, At::Rcpt);
}
/// `421` to DATA.
pub fn closing_421_data(adapter: &dyn Adapter) {
    service_closing(adapter, At::Data);
}
/// `421` to the end of data.
pub fn closing_421_data_end(adapter: &dyn Adapter) {
    service_closing(adapter, At::DataEnd);
}

/// How the server ends an idle connection in [`idle_check_reads_without_writing`].
#[derive(Clone, Copy, Debug)]
enum IdleEnd {
    /// `421` then close, as Postfix does on its idle timeout.
    Reply421,
    /// A close without a word.
    Close,
}

/// `check_idle` on a connection the server still holds finds nothing and
/// the next message goes (with CHUNKING: BDAT, its body written before any
/// reply); on one the server ended while it idled (a `421`, or a close), it
/// fails at [`Stage::Idle`] without writing a byte, and gives the connection
/// up. Plaintext and implicit TLS.
pub fn idle_check_reads_without_writing(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    for implicit_tls in [false, true] {
        for end in [IdleEnd::Reply421, IdleEnd::Close] {
            let tls = Arc::clone(&tls);
            let server = ScriptedServer::start_fn(move |peer| {
                if implicit_tls {
                    peer.implicit_tls(Arc::clone(&tls))?;
                }
                peer.reply("220 mail.test ESMTP")?;
                ehlo(peer, &["PIPELINING", "CHUNKING", "8BITMIME"])?;
                peer.expect("MAIL FROM:")?;
                peer.expect("RCPT TO:")?;
                let bdat = String::from_utf8_lossy(&peer.expect("BDAT ")?).into_owned();
                let size: usize = bdat.split(' ').nth(1).unwrap_or("0").parse().unwrap();
                peer.read_exact_bytes(size)?;
                peer.reply("250 OK\n250 OK\n250 queued")?;
                if let IdleEnd::Reply421 = end {
                    peer.reply("421 4.4.2 mail.test Error: timeout exceeded")?;
                }
                peer.close();
                Ok(())
            })
            .unwrap();
            let (config, opts) = if implicit_tls {
                (Config::new(NAME).tls(TlsPolicy::Implicit), opts(&pki))
            } else {
                (config_plain(), plain_opts(FAST))
            };
            let what = format!("{} tls={implicit_tls} {end:?}", adapter.name());
            let mut client = connect_ok(adapter, &server, config, &opts);
            client.check_idle().unwrap();
            client
                .send(envelope(), b"Subject: idle\r\n\r\nhi\r\n")
                .unwrap();
            assert!(server.wait_finished(1, WAIT), "{what}");
            let err = client.check_idle().unwrap_err();
            let stage = match (end, err.smtp()) {
                (IdleEnd::Reply421, Some(proto::Error::ServiceClosing { stage, .. }))
                | (IdleEnd::Close, Some(proto::Error::ConnectionClosed { stage })) => *stage,
                _ => panic!("{what}: {err:?}"),
            };
            assert_eq!(stage, Stage::Idle, "{what}");
            assert!(err.transient, "{what}");
            assert!(client.check_idle().is_err(), "{what}: still usable");
            let again = client.send(envelope(), b"hi\r\n").unwrap_err();
            assert!(
                again.smtp().is_some() || matches!(again.kind, Kind::Poisoned),
                "{what}"
            );
            // Nothing after the message: no MAIL, no QUIT, no BDAT body.
            let received = &server.received()[0];
            let text = if implicit_tls {
                received.tls_text()
            } else {
                received.plain_text()
            };
            assert_eq!(
                verbs(text.as_bytes())
                    .iter()
                    .filter(|v| *v == "MAIL")
                    .count(),
                1,
                "{what}: {text}"
            );
            assert!(!text.contains("QUIT"), "{what}: {text}");
        }
    }
}
