//! The driving contract against a simulated clock: `ClientSession::next`,
//! `handle_timeout`, `start_connect` and `poll_timeout` with `now` chosen by
//! the test, so every stall is checked to the nanosecond without sleeping.
//! The server's side is fed by hand, as an adapter would feed it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smtp_proto::{
    Address, ClientSession, Config, Envelope, Error, Event, Io, Next, Options, Outcome, Stage,
    Timeouts, TlsPolicy, BODY_FLUSH,
};
use std::time::{Duration, Instant};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const NS: Duration = Duration::from_nanos(1);

/// Every stage `timeout`, no time limit.
fn uniform(timeout: Duration) -> Options {
    Options::default().timeouts(Timeouts::uniform(timeout))
}

/// A plaintext session to `localhost` with `options`.
fn session(options: &Options) -> ClientSession {
    ClientSession::with_options(Config::new("localhost").tls(TlsPolicy::Disabled), options).unwrap()
}

fn envelope(to: &str) -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new(to).unwrap()],
    )
    .unwrap()
}

/// `next` hands out a write at `stage`: its deadline.
#[track_caller]
fn write_at(session: &mut ClientSession, now: Instant, stage: Stage) -> Option<Instant> {
    match session.next(now) {
        Ok(Next::Io(Io::Write { stage: s, deadline })) if s == stage => {
            assert_eq!(session.poll_timeout(), deadline);
            deadline
        }
        other => panic!("expected a write at {stage:?}, got {other:?}"),
    }
}

/// `next` hands out a write at `stage`, and the adapter writes it all.
#[track_caller]
fn write_all(session: &mut ClientSession, now: Instant, stage: Stage) -> String {
    write_at(session, now, stage);
    String::from_utf8(session.take_output().to_vec()).unwrap()
}

/// `next` hands out a read at `stage`: its deadline.
#[track_caller]
fn read_at(session: &mut ClientSession, now: Instant, stage: Stage) -> Option<Instant> {
    match session.next(now) {
        Ok(Next::Io(Io::Read { stage: s, deadline })) if s == stage => {
            assert_eq!(session.poll_timeout(), deadline);
            deadline
        }
        other => panic!("expected a read at {stage:?}, got {other:?}"),
    }
}

/// The set-up through `next`, all at `now`: the greeting, EHLO and its
/// reply `ehlo`, then `Ready`.
#[track_caller]
fn ready(session: &mut ClientSession, now: Instant, ehlo: &str) {
    read_at(session, now, Stage::Greeting);
    session.handle_input(b"220 localhost\r\n").unwrap();
    assert_eq!(write_all(session, now, Stage::Ehlo), "EHLO localhost\r\n");
    read_at(session, now, Stage::Ehlo);
    session.handle_input(ehlo.as_bytes()).unwrap();
    assert_eq!(session.next(now), Ok(Next::Event(Event::Ready)));
    assert_eq!(session.poll_timeout(), None);
}

/// The session failed with `err` and says so at every call, with nothing
/// pending and nothing awaited.
#[track_caller]
fn failed_with(session: &mut ClientSession, now: Instant, err: &Error) {
    for _ in 0..3 {
        assert_eq!(session.next(now).as_ref(), Err(err));
        assert_eq!(session.poll_timeout(), None);
        assert_eq!(session.pending_output(), b"");
    }
    assert!(session.is_closed());
    assert_eq!(session.error(), Some(err));
}

#[test]
fn a_greeting_that_never_comes_times_out_at_the_deadline_and_not_a_nanosecond_before() {
    let mut session = session(
        &uniform(secs(300)).timeouts(Timeouts::uniform(secs(300)).with(Stage::Greeting, secs(30))),
    );
    let t0 = Instant::now();
    let deadline = t0 + secs(30);
    assert_eq!(session.poll_timeout(), None);
    assert_eq!(read_at(&mut session, t0, Stage::Greeting), Some(deadline));
    // Asked again before the deadline: the same wait, the same deadline.
    assert_eq!(
        read_at(&mut session, deadline - NS, Stage::Greeting),
        Some(deadline)
    );
    assert_eq!(session.error(), None);
    assert_eq!(
        session.next(deadline),
        Err(Error::Timeout {
            stage: Stage::Greeting
        })
    );
    failed_with(
        &mut session,
        deadline + secs(1),
        &Error::Timeout {
            stage: Stage::Greeting,
        },
    );
    // No QUIT: the server never spoke.
    assert!(session.unfinished().is_empty());
}

#[test]
fn handle_timeout_fails_the_session_only_once_the_deadline_is_reached() {
    let mut session = session(&uniform(secs(30)));
    let t0 = Instant::now();
    // Nothing handed out yet: nothing to time out.
    session.handle_timeout(t0 + secs(3600));
    assert_eq!(session.error(), None);
    let deadline = read_at(&mut session, t0, Stage::Greeting).unwrap();
    session.handle_timeout(deadline - NS);
    assert_eq!(session.error(), None);
    assert_eq!(session.poll_timeout(), Some(deadline));
    // The wait is still the same one.
    assert_eq!(
        read_at(&mut session, deadline - NS, Stage::Greeting),
        Some(deadline)
    );
    session.handle_timeout(deadline);
    let err = Error::Timeout {
        stage: Stage::Greeting,
    };
    assert_eq!(session.error(), Some(&err));
    assert_eq!(session.poll_timeout(), None);
    failed_with(&mut session, deadline, &err);
    // A later time-out changes nothing.
    session.handle_timeout(deadline + secs(3600));
    assert_eq!(session.error(), Some(&err));
}

#[test]
fn a_reply_dripped_one_byte_at_a_time_still_times_out_at_the_stage_deadline() {
    // RFC 5321 §4.5.3.2: the whole reply within the timeout, not each read.
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    let deadline = read_at(&mut session, t0, Stage::Greeting).unwrap();
    assert_eq!(deadline, t0 + secs(10));
    let greeting = b"220 localhost ESMTP\r\n";
    for (i, byte) in greeting[..10].iter().enumerate() {
        let now = t0 + secs(i as u64) + Duration::from_millis(500);
        session.handle_input(&[*byte]).unwrap();
        // Every byte was progress, yet the reply's deadline stands.
        assert_eq!(read_at(&mut session, now, Stage::Greeting), Some(deadline));
    }
    session.handle_input(&greeting[10..11]).unwrap();
    assert_eq!(
        session.next(deadline),
        Err(Error::Timeout {
            stage: Stage::Greeting
        })
    );
    // The rest arriving now is refused: the session is over.
    assert!(session.handle_input(&greeting[11..]).is_err());
    assert_eq!(session.greeting(), None);
}

#[test]
fn a_reply_whose_last_byte_comes_a_nanosecond_before_the_deadline_is_in_time() {
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    let deadline = read_at(&mut session, t0, Stage::Greeting).unwrap();
    session.handle_input(b"220 local").unwrap();
    read_at(&mut session, t0 + secs(5), Stage::Greeting);
    session.handle_input(b"host\r\n").unwrap();
    // EHLO's write gets its own timeout, from now.
    assert_eq!(
        write_at(&mut session, deadline - NS, Stage::Ehlo),
        Some(deadline - NS + secs(10))
    );
}

#[test]
fn the_reply_deadline_restarts_once_the_command_is_written_whole() {
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    read_at(&mut session, t0, Stage::Greeting);
    session.handle_input(b"220 localhost\r\n").unwrap();
    // Each write must make progress within the stage's timeout.
    assert_eq!(
        write_at(&mut session, t0 + secs(4), Stage::Ehlo),
        Some(t0 + secs(14))
    );
    session.advance_output(3);
    assert_eq!(
        session.poll_timeout(),
        None,
        "progress ends the write's wait"
    );
    assert_eq!(
        write_at(&mut session, t0 + secs(6), Stage::Ehlo),
        Some(t0 + secs(16))
    );
    session.advance_output(session.pending_output().len());
    // Written whole at 9 s: EHLO's reply has a whole timeout from there.
    let deadline = read_at(&mut session, t0 + secs(9), Stage::Ehlo);
    assert_eq!(deadline, Some(t0 + secs(19)));
    session.handle_input(b"250-localhost\r\n").unwrap();
    assert_eq!(read_at(&mut session, t0 + secs(12), Stage::Ehlo), deadline);
    session.handle_input(b"250 PIPELINING\r\n").unwrap();
    assert_eq!(session.next(t0 + secs(13)), Ok(Next::Event(Event::Ready)));
    // The next command, taken whole with take_output: again a whole timeout.
    session.noop().unwrap();
    assert_eq!(
        write_all(&mut session, t0 + secs(15), Stage::Noop),
        "NOOP\r\n"
    );
    let deadline = read_at(&mut session, t0 + secs(20), Stage::Noop).unwrap();
    assert_eq!(deadline, t0 + secs(30));
    assert_eq!(
        session.next(deadline),
        Err(Error::Timeout { stage: Stage::Noop })
    );
}

#[test]
fn each_stage_waits_its_own_timeout() {
    let timeouts = Timeouts::uniform(secs(60)).with(Stage::DataEnd, secs(5));
    let mut session = session(&Options::default().timeouts(timeouts));
    let t0 = Instant::now();
    ready(&mut session, t0, "250 localhost\r\n");
    session.send_mail(envelope("you@example.org")).unwrap();
    write_all(&mut session, t0, Stage::Mail);
    assert_eq!(read_at(&mut session, t0, Stage::Mail), Some(t0 + secs(60)));
    session.handle_input(b"250 ok\r\n").unwrap();
    write_all(&mut session, t0, Stage::Rcpt);
    read_at(&mut session, t0, Stage::Rcpt);
    session.handle_input(b"250 ok\r\n").unwrap();
    write_all(&mut session, t0, Stage::Data);
    read_at(&mut session, t0, Stage::Data);
    session.handle_input(b"354 go\r\n").unwrap();
    assert_eq!(session.next(t0), Ok(Next::Body));
    session.write_body(b"hi\r\n").unwrap();
    session.finish_body().unwrap();
    // The end of data's write and its reply: DataEnd's 5 s.
    let t1 = t0 + secs(1);
    assert_eq!(
        write_at(&mut session, t1, Stage::DataEnd),
        Some(t1 + secs(5))
    );
    assert_eq!(session.take_output(), &b"hi\r\n.\r\n"[..]);
    let deadline = read_at(&mut session, t1, Stage::DataEnd).unwrap();
    assert_eq!(deadline, t1 + secs(5));
    session.handle_timeout(deadline - NS);
    assert_eq!(session.error(), None);
    assert_eq!(
        session.next(deadline),
        Err(Error::Timeout {
            stage: Stage::DataEnd
        })
    );
    // The end of data went out: the server may have the message.
    assert_eq!(session.unfinished(), [Outcome::Unknown]);
}

#[test]
fn the_time_limit_covers_the_set_up_from_start_connect() {
    let options = uniform(secs(60))
        .time_limit(secs(10))
        .connect_timeout(secs(3));
    let mut session = session(&options);
    let t0 = Instant::now();
    assert_eq!(session.start_connect(t0), Some(t0 + secs(3)));
    // Connected at 2 s: the greeting may take until the limit, not 60 s.
    let deadline = read_at(&mut session, t0 + secs(2), Stage::Greeting);
    assert_eq!(deadline, Some(t0 + secs(10)));
    session.handle_timeout(t0 + secs(10) - NS);
    assert_eq!(session.error(), None);
    session.handle_timeout(t0 + secs(10));
    failed_with(
        &mut session,
        t0 + secs(10),
        &Error::TimeLimit {
            stage: Stage::Greeting,
            limit: secs(10),
        },
    );
}

#[test]
fn connecting_gets_its_timeout_within_the_time_limit() {
    let options = uniform(secs(60))
        .time_limit(secs(10))
        .connect_timeout(secs(30));
    let mut session = session(&options);
    let t0 = Instant::now();
    assert_eq!(session.start_connect(t0), Some(t0 + secs(10)));
    // A second attempt (another address) does not restart the set-up.
    assert_eq!(session.start_connect(t0 + secs(4)), Some(t0 + secs(10)));
    // Without a limit, the connect timeout alone.
    let mut session = self::session(&uniform(secs(60)).connect_timeout(secs(30)));
    assert_eq!(session.start_connect(t0), Some(t0 + secs(30)));
}

#[test]
fn the_set_up_limit_counts_from_the_first_next_and_ends_at_the_first_ready() {
    let mut session = session(&uniform(secs(60)).time_limit(secs(10)));
    let t0 = Instant::now();
    assert_eq!(
        read_at(&mut session, t0, Stage::Greeting),
        Some(t0 + secs(10))
    );
    session.handle_input(b"220 localhost\r\n").unwrap();
    assert_eq!(
        write_at(&mut session, t0 + secs(4), Stage::Ehlo),
        Some(t0 + secs(10))
    );
    let _ = session.take_output();
    assert_eq!(
        read_at(&mut session, t0 + secs(4), Stage::Ehlo),
        Some(t0 + secs(10))
    );
    session.handle_input(b"250 localhost\r\n").unwrap();
    assert_eq!(session.next(t0 + secs(9)), Ok(Next::Event(Event::Ready)));
    // Ready: the set-up is over, and without a batch nothing limits a
    // message but the stages' timeouts.
    session.send_mail(envelope("you@example.org")).unwrap();
    assert_eq!(
        write_at(&mut session, t0 + secs(20), Stage::Mail),
        Some(t0 + secs(80))
    );
    let _ = session.take_output();
    assert_eq!(
        read_at(&mut session, t0 + secs(20), Stage::Mail),
        Some(t0 + secs(80))
    );
    assert_eq!(session.start_connect(t0 + secs(20)), Some(t0 + secs(80)));
}

#[test]
fn a_stage_timeout_inside_the_limit_is_a_timeout_and_the_limit_a_time_limit() {
    let options = uniform(secs(5)).time_limit(secs(10));
    let mut session = session(&options);
    let t0 = Instant::now();
    assert_eq!(
        read_at(&mut session, t0, Stage::Greeting),
        Some(t0 + secs(5))
    );
    assert_eq!(
        session.next(t0 + secs(5)),
        Err(Error::Timeout {
            stage: Stage::Greeting
        })
    );

    // Greeted at 4 s: EHLO's write by 9 s (its own timeout), its reply by
    // 10 s (the limit, which comes first).
    let mut session = self::session(&options);
    read_at(&mut session, t0, Stage::Greeting);
    session.handle_input(b"220 localhost\r\n").unwrap();
    assert_eq!(
        write_at(&mut session, t0 + secs(4), Stage::Ehlo),
        Some(t0 + secs(9))
    );
    let _ = session.take_output();
    assert_eq!(
        read_at(&mut session, t0 + secs(6), Stage::Ehlo),
        Some(t0 + secs(10))
    );
    session.handle_timeout(t0 + secs(10));
    assert_eq!(
        session.error(),
        Some(&Error::TimeLimit {
            stage: Stage::Ehlo,
            limit: secs(10)
        })
    );

    // A stage timeout that ends exactly with the limit: the limit ran out.
    let mut session = self::session(&uniform(secs(10)).time_limit(secs(10)));
    let deadline = read_at(&mut session, t0, Stage::Greeting).unwrap();
    assert_eq!(
        session.next(deadline),
        Err(Error::TimeLimit {
            stage: Stage::Greeting,
            limit: secs(10)
        })
    );
}

#[test]
fn implicit_tls_hands_out_the_handshake_with_its_deadline() {
    let timeouts = Timeouts::uniform(secs(60)).with(Stage::TlsHandshake, secs(7));
    let options = Options::default().timeouts(timeouts);
    let config = Config::new("smtp.example.com").tls(TlsPolicy::Implicit);
    let t0 = Instant::now();

    let mut session = ClientSession::with_options(config.clone(), &options).unwrap();
    assert_eq!(
        session.next(t0),
        Ok(Next::Io(Io::Handshake {
            deadline: Some(t0 + secs(7))
        }))
    );
    assert_eq!(session.poll_timeout(), Some(t0 + secs(7)));
    session.tls_established("smtp.example.com").unwrap();
    assert_eq!(session.poll_timeout(), None);
    assert_eq!(
        read_at(&mut session, t0 + secs(6), Stage::Greeting),
        Some(t0 + secs(66))
    );

    // A handshake never reported done times out, and nothing is written.
    let mut session = ClientSession::with_options(config, &options).unwrap();
    assert!(matches!(
        session.next(t0),
        Ok(Next::Io(Io::Handshake { .. }))
    ));
    session.handle_timeout(t0 + secs(7) - NS);
    assert_eq!(session.error(), None);
    failed_with(
        &mut session,
        t0 + secs(7),
        &Error::Timeout {
            stage: Stage::TlsHandshake,
        },
    );
    assert!(session.tls_established("smtp.example.com").is_err());
}

#[test]
fn a_starttls_handshake_never_reported_times_out_without_a_quit() {
    let timeouts = Timeouts::uniform(secs(60)).with(Stage::TlsHandshake, secs(7));
    let options = Options::default().timeouts(timeouts);
    let config = Config::new("smtp.example.com").tls(TlsPolicy::Required);
    let mut session = ClientSession::with_options(config, &options).unwrap();
    let t0 = Instant::now();
    read_at(&mut session, t0, Stage::Greeting);
    session.handle_input(b"220 smtp.example.com\r\n").unwrap();
    write_all(&mut session, t0, Stage::Ehlo);
    read_at(&mut session, t0, Stage::Ehlo);
    session
        .handle_input(b"250-smtp.example.com\r\n250 STARTTLS\r\n")
        .unwrap();
    assert_eq!(write_all(&mut session, t0, Stage::StartTls), "STARTTLS\r\n");
    read_at(&mut session, t0, Stage::StartTls);
    session.handle_input(b"220 go ahead\r\n").unwrap();
    let t1 = t0 + secs(1);
    assert_eq!(
        session.next(t1),
        Ok(Next::Io(Io::Handshake {
            deadline: Some(t1 + secs(7))
        }))
    );
    session.handle_timeout(t1 + secs(7));
    // The peer is mid-handshake: no QUIT in plaintext.
    failed_with(
        &mut session,
        t1 + secs(7),
        &Error::Timeout {
            stage: Stage::TlsHandshake,
        },
    );
}

#[test]
fn after_a_time_out_nothing_more_is_written() {
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    read_at(&mut session, t0, Stage::Greeting);
    session.handle_input(b"220 localhost\r\n").unwrap();
    // The write of EHLO stalls half-way.
    write_at(&mut session, t0, Stage::Ehlo);
    session.advance_output(4);
    let deadline = write_at(&mut session, t0 + secs(1), Stage::Ehlo).unwrap();
    assert_eq!(deadline, t0 + secs(11));
    session.handle_timeout(deadline);
    let err = Error::Timeout { stage: Stage::Ehlo };
    // The rest of EHLO is dropped, and no QUIT is queued.
    assert_eq!(session.pending_output(), b"");
    failed_with(&mut session, deadline, &err);
    assert_eq!(session.quit(), Ok(()));
    assert_eq!(session.pending_output(), b"");
    assert_eq!(session.handle_input(b"250 late\r\n"), Err(err.clone()));
    assert_eq!(session.pending_output(), b"");
    failed_with(&mut session, deadline + secs(60), &err);
}

#[test]
fn a_write_stalled_inside_a_body_times_out_with_nothing_more_written() {
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    ready(&mut session, t0, "250-localhost\r\n250 PIPELINING\r\n");
    session.send_mail(envelope("you@example.org")).unwrap();
    write_all(&mut session, t0, Stage::Mail);
    read_at(&mut session, t0, Stage::Mail);
    session
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
        .unwrap();
    assert_eq!(session.next(t0), Ok(Next::Body));
    session.write_body(&vec![b'x'; BODY_FLUSH]).unwrap();
    let deadline = write_at(&mut session, t0, Stage::Body).unwrap();
    session.handle_timeout(deadline);
    // A QUIT now would be message content: nothing is written.
    failed_with(
        &mut session,
        deadline,
        &Error::Timeout { stage: Stage::Body },
    );
    assert!(session.write_body(b"more").is_err());
    assert!(session.finish_body().is_err());
    assert_eq!(session.pending_output(), b"");
    assert_eq!(session.unfinished(), [Outcome::NotSent]);
}

#[test]
fn a_failure_that_queues_quit_hands_out_a_close_then_the_error() {
    let options = Options::default()
        .timeouts(Timeouts::uniform(secs(60)).with(Stage::Quit, secs(2)))
        .time_limit(secs(30));
    let mut session = session(&options);
    let t0 = Instant::now();
    read_at(&mut session, t0, Stage::Greeting);
    session.handle_input(b"220 localhost\r\n").unwrap();
    write_all(&mut session, t0, Stage::Ehlo);
    read_at(&mut session, t0, Stage::Ehlo);
    let err = session.handle_input(b"554 go away\r\n").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rejected {
                stage: Stage::Ehlo,
                ..
            }
        ),
        "{err:?}"
    );
    // QUIT's own timeout, whatever is left of the time limit (1 s here).
    let t1 = t0 + secs(29);
    assert_eq!(
        session.next(t1),
        Ok(Next::Io(Io::Close {
            deadline: Some(t1 + secs(2))
        }))
    );
    assert_eq!(session.poll_timeout(), Some(t1 + secs(2)));
    session.advance_output(2);
    // Not all of it went: the close goes on.
    assert!(matches!(session.next(t1), Ok(Next::Io(Io::Close { .. }))));
    session.advance_output(4);
    failed_with(&mut session, t1 + secs(1), &err);
}

#[test]
fn a_close_that_stalls_drops_the_quit_and_reports_the_failure() {
    let options =
        Options::default().timeouts(Timeouts::uniform(secs(60)).with(Stage::Quit, secs(2)));
    let mut session = session(&options);
    let t0 = Instant::now();
    read_at(&mut session, t0, Stage::Greeting);
    let err = session.handle_input(b"554 no service\r\n").unwrap_err();
    let deadline = match session.next(t0) {
        Ok(Next::Io(Io::Close { deadline })) => deadline.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(session.pending_output(), b"QUIT\r\n");
    session.handle_timeout(deadline - NS);
    assert_eq!(session.pending_output(), b"QUIT\r\n");
    // The QUIT could not go in time: dropped, and the error is the
    // failure's, not the close's time-out.
    assert_eq!(session.next(deadline), Err(err.clone()));
    failed_with(&mut session, deadline, &err);
}

#[test]
fn a_failure_without_quit_reports_the_error_at_once() {
    let mut session = session(&uniform(secs(60)));
    let t0 = Instant::now();
    ready(&mut session, t0, "250 localhost\r\n");
    session.noop().unwrap();
    write_all(&mut session, t0, Stage::Noop);
    read_at(&mut session, t0, Stage::Noop);
    // 421: the server is closing; no QUIT after it.
    let err = session.handle_input(b"421 bye\r\n").unwrap_err();
    failed_with(&mut session, t0, &err);
}

#[test]
fn completed_transactions_come_before_the_error() {
    let mut session = session(&uniform(secs(60)));
    let t0 = Instant::now();
    ready(&mut session, t0, "250-localhost\r\n250 PIPELINING\r\n");
    session
        .send_mail(envelope("you@example.org").for_body(b"hi\r\n"))
        .unwrap();
    write_all(&mut session, t0, Stage::Mail);
    read_at(&mut session, t0, Stage::Mail);
    session
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
        .unwrap();
    assert_eq!(session.next(t0), Ok(Next::Body));
    session.write_body(b"hi\r\n").unwrap();
    session.finish_body().unwrap();
    write_all(&mut session, t0, Stage::DataEnd);
    read_at(&mut session, t0, Stage::DataEnd);
    // The delivery and a 421 behind it, in one read; an idle check judges
    // the 421.
    session
        .handle_input(b"250 queued\r\n421 shutting down\r\n")
        .unwrap();
    let err = session.check_idle().unwrap_err();
    assert!(matches!(err, Error::ServiceClosing { .. }), "{err:?}");
    assert!(matches!(
        session.next(t0),
        Ok(Next::Event(Event::TransactionComplete(Ok(_))))
    ));
    failed_with(&mut session, t0, &err);
}

#[test]
fn output_comes_first_then_events_then_the_phase() {
    let mut session = session(&uniform(secs(60)));
    let t0 = Instant::now();
    ready(&mut session, t0, "250-localhost\r\n250 PIPELINING\r\n");
    session
        .send_mail(envelope("a@example.org").for_body(b"one\r\n"))
        .unwrap();
    write_all(&mut session, t0, Stage::Mail);
    read_at(&mut session, t0, Stage::Mail);
    session
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
        .unwrap();
    assert_eq!(session.next(t0), Ok(Next::Body));
    session.write_body(b"one\r\n").unwrap();
    session.finish_body().unwrap();
    // The second message rides behind the first one's end of data.
    assert!(session.can_send_mail());
    session
        .send_mail(envelope("b@example.org").for_body(b"two\r\n"))
        .unwrap();
    let end = b"one\r\n.\r\n".len();
    assert!(session
        .pending_output()
        .starts_with(b"one\r\n.\r\nMAIL FROM:"));
    write_at(&mut session, t0, Stage::DataEnd);
    session.advance_output(end);
    // The first message's result arrives while its commands still wait.
    session.handle_input(b"250 first\r\n").unwrap();
    // Output first...
    let rest = write_all(&mut session, t0, Stage::Mail);
    assert!(
        rest.starts_with("MAIL FROM:<me@example.com>")
            && rest.ends_with("\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"),
        "{rest:?}"
    );
    // ... then the event...
    assert!(matches!(
        session.next(t0),
        Ok(Next::Event(Event::TransactionComplete(Ok(_))))
    ));
    assert_eq!(session.poll_timeout(), None);
    // ... then what the phase needs: the second message's replies, not Ready.
    read_at(&mut session, t0, Stage::Mail);
}

#[test]
fn a_body_streams_without_writes_until_body_flush_octets_are_pending() {
    let mut session = session(&uniform(secs(60)));
    let t0 = Instant::now();
    ready(&mut session, t0, "250 localhost\r\n");
    session.send_mail(envelope("you@example.org")).unwrap();
    for (stage, reply) in [
        (Stage::Mail, "250 ok\r\n"),
        (Stage::Rcpt, "250 ok\r\n"),
        (Stage::Data, "354 go\r\n"),
    ] {
        write_all(&mut session, t0, stage);
        read_at(&mut session, t0, stage);
        session.handle_input(reply.as_bytes()).unwrap();
    }
    assert_eq!(session.next(t0), Ok(Next::Body));
    assert_eq!(session.poll_timeout(), None);
    // 1,000-octet lines, no dots: written as they are.
    let line = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
    let mut written = 0;
    while written + line.len() < BODY_FLUSH {
        session.write_body(&line).unwrap();
        written += line.len();
        assert_eq!(session.pending_output().len(), written);
        assert_eq!(session.next(t0), Ok(Next::Body), "at {written} octets");
    }
    session.write_body(&line).unwrap();
    assert!(session.pending_output().len() >= BODY_FLUSH);
    let t1 = t0 + secs(1);
    assert_eq!(write_at(&mut session, t1, Stage::Body), Some(t1 + secs(60)));
    session.advance_output(BODY_FLUSH - 1);
    // Below the mark again: the rest waits for more body, or its end.
    assert_eq!(session.next(t1), Ok(Next::Body));
    session.finish_body().unwrap();
    let end = write_all(&mut session, t1, Stage::DataEnd);
    assert!(end.ends_with("\r\n.\r\n"), "{end:?}");
    read_at(&mut session, t1, Stage::DataEnd);
}

#[test]
fn poll_timeout_is_the_deadline_of_the_last_wait_and_none_after_an_event() {
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    assert_eq!(session.poll_timeout(), None);
    let greeting = read_at(&mut session, t0, Stage::Greeting);
    assert_eq!(session.poll_timeout(), greeting);
    session.handle_input(b"220 localhost\r\n").unwrap();
    assert_eq!(session.poll_timeout(), None);
    let ehlo = write_at(&mut session, t0 + secs(1), Stage::Ehlo);
    assert_eq!(session.poll_timeout(), ehlo);
    let _ = session.take_output();
    read_at(&mut session, t0 + secs(1), Stage::Ehlo);
    session.handle_input(b"250 localhost\r\n").unwrap();
    assert_eq!(session.next(t0 + secs(2)), Ok(Next::Event(Event::Ready)));
    assert_eq!(session.poll_timeout(), None);
    // Idle: Ready as often as asked, never a deadline.
    assert_eq!(session.next(t0 + secs(3600)), Ok(Next::Event(Event::Ready)));
    assert_eq!(session.poll_timeout(), None);
    session.handle_timeout(t0 + secs(7200));
    assert_eq!(session.error(), None);
    session.quit().unwrap();
    write_all(&mut session, t0 + secs(7200), Stage::Quit);
    read_at(&mut session, t0 + secs(7200), Stage::Quit);
    session.handle_input(b"221 bye\r\n").unwrap();
    assert_eq!(
        session.next(t0 + secs(7201)),
        Ok(Next::Event(Event::Closed))
    );
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_timeout_too_long_for_the_clock_never_expires() {
    let mut session = session(&uniform(Duration::MAX));
    let t0 = Instant::now();
    assert_eq!(read_at(&mut session, t0, Stage::Greeting), None);
    assert_eq!(session.start_connect(t0), t0.checked_add(secs(60)));
    session.handle_timeout(t0 + secs(1_000_000));
    assert_eq!(
        read_at(&mut session, t0 + secs(1_000_000), Stage::Greeting),
        None
    );
}

/// Found by the `api` fuzz target's order check: when the wait `next` is
/// about to hand out has already run out (a zero timeout here; the time
/// limit of a set-up whose `Ready` was polled, too), `next` returns the
/// error at once, ahead of a transaction that completed before the failure,
/// which the contract hands out first ("the transactions that completed
/// before it, then the error"). An adapter that stops at the first error
/// loses that delivery's result.
#[test]
fn a_wait_that_runs_out_as_it_is_handed_out_keeps_completed_transactions_first() {
    let timeouts = Timeouts::uniform(secs(60)).with(Stage::Rset, Duration::ZERO);
    let mut session = session(&Options::default().timeouts(timeouts));
    let t0 = Instant::now();
    ready(&mut session, t0, "250-localhost\r\n250 PIPELINING\r\n");
    session
        .send_mail(envelope("a@example.org").for_body(b"one\r\n"))
        .unwrap();
    write_all(&mut session, t0, Stage::Mail);
    read_at(&mut session, t0, Stage::Mail);
    session
        .handle_input(b"250 ok\r\n250 ok\r\n354 go\r\n")
        .unwrap();
    assert_eq!(session.next(t0), Ok(Next::Body));
    session.write_body(b"one\r\n").unwrap();
    session.finish_body().unwrap();
    session
        .send_mail(envelope("b@example.org").for_body(b"two\r\n"))
        .unwrap();
    write_all(&mut session, t0, Stage::DataEnd);
    read_at(&mut session, t0, Stage::DataEnd);
    // The first delivered; the second refused whole: RSET is queued.
    session
        .handle_input(b"250 first\r\n550 no\r\n550 no\r\n554 no\r\n")
        .unwrap();
    assert_eq!(session.pending_output(), b"RSET\r\n");
    // RSET's write runs out as it is handed out (zero timeout).
    assert!(
        matches!(
            session.next(t0),
            Ok(Next::Event(Event::TransactionComplete(Ok(_))))
        ),
        "the first message's delivery must come before the error"
    );
    assert_eq!(session.next(t0), Err(Error::Timeout { stage: Stage::Rset }));
}

/// Found by `check_next_matches_drive` (tests/properties.rs): a `221`
/// already buffered when the caller quits (here behind the last reply, as
/// a server that closes idle connections with `221` sends it) closes the
/// session with its `QUIT` still pending; `next` hands out that write, and
/// when it stalls, `handle_timeout` turns the closed session into a failed
/// one: `Event::Closed`, then `Err(Timeout { stage: Quit })` at every call.
/// `abort` on a closed session only drops the output; a time-out should
/// too.
#[test]
fn a_stalled_quit_write_after_the_server_closed_leaves_the_session_closed() {
    let mut session = session(&uniform(secs(10)));
    let t0 = Instant::now();
    ready(&mut session, t0, "250 localhost\r\n");
    session.noop().unwrap();
    write_all(&mut session, t0, Stage::Noop);
    read_at(&mut session, t0, Stage::Noop);
    session
        .handle_input(b"250 ok\r\n221 idle, bye\r\n")
        .unwrap();
    assert_eq!(session.next(t0), Ok(Next::Event(Event::Ready)));
    session.quit().unwrap();
    // The buffered 221 answered the QUIT before it went.
    assert!(session.is_closed());
    let deadline = write_at(&mut session, t0, Stage::Quit).unwrap();
    session.handle_timeout(deadline);
    assert_eq!(session.pending_output(), b"");
    assert_eq!(session.error(), None, "a closed session failed");
    for _ in 0..3 {
        assert_eq!(session.next(deadline), Ok(Next::Event(Event::Closed)));
    }
}
