//! The blocking connection pool (`smtp_blocking::pool`) against the
//! smtp-tests servers: the scripted server's small SMTP loop
//! (`Peer::serve_messages`) misbehaving on cue, and the Exchange-like one
//! over real TLS for the credential provider; and the `Mailer` trait, used
//! generically over the pool and the recording double.
#![cfg(feature = "rustls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use smtp_blocking::pool::{BoxError, Connector, Pool, PoolOptions};
use smtp_blocking::smtp_proto::Error as SmtpError;
use smtp_blocking::{
    Address, Config, Credentials, Delivery, Envelope, Error, Mailer, Options, RecordingMailer,
    Timeouts, TlsPolicy,
};
use smtp_tests::{exchange_online, ExchangeOptions, Peer, ScriptedServer, TestPki};
use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const NAME: &str = "mail.test";

fn envelope(to: &str) -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new(to).unwrap()],
    )
    .unwrap()
}

fn body(n: usize) -> Vec<u8> {
    format!("Subject: message {n}\r\n\r\nbody {n}\r\n").into_bytes()
}

/// How often `needle` occurs in what connection `i`'s client sent.
fn count(server: &ScriptedServer, i: usize, needle: &str) -> usize {
    let received = server.transcript(i).unwrap();
    let text = format!("{}{}", received.plain_text(), received.tls_text());
    text.matches(needle).count()
}

/// Messages received by [`plain_server`], with the connection they came on.
type Inbox = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

/// `Peer::serve_messages` without PIPELINING. `on_message(peer, n)` runs
/// after the `n`-th body (0-based) on a connection; it must reply, and says
/// whether to go on.
fn plain_server(
    on_message: impl Fn(&mut Peer, usize) -> io::Result<bool> + Send + Sync + 'static,
) -> (ScriptedServer, Inbox) {
    let inbox: Inbox = Arc::default();
    let handler_inbox = Arc::clone(&inbox);
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.serve_messages(&["8BITMIME"], |peer, n, body| {
            handler_inbox.lock().unwrap().push((peer.index(), body));
            on_message(peer, n)
        })
    })
    .unwrap();
    (server, inbox)
}

fn ok(peer: &mut Peer, _n: usize) -> io::Result<bool> {
    peer.reply("250 2.0.0 queued")?;
    Ok(true)
}

/// A one-way signal between the server's handler (a thread) and the test.
struct Signal {
    tx: SyncSender<()>,
    rx: Mutex<Receiver<()>>,
}

impl Signal {
    fn new() -> Arc<Signal> {
        let (tx, rx) = sync_channel(16);
        Arc::new(Signal {
            tx,
            rx: Mutex::new(rx),
        })
    }

    fn send(&self) {
        self.tx.send(()).unwrap();
    }

    fn wait(&self) {
        self.rx.lock().unwrap().recv_timeout(WAIT).unwrap();
    }
}

fn plain_pool(server: &ScriptedServer, options: PoolOptions) -> Pool {
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let connector = Connector::to_addr(
        server.addr(),
        config,
        Options::new().timeouts(Timeouts::uniform(Duration::from_secs(10))),
    );
    Pool::new(connector, options)
}

/// Long enough that nothing expires or gets checked unless a test says so.
fn quiet() -> PoolOptions {
    PoolOptions::new()
        .idle_timeout(Duration::from_secs(600))
        .health_check_after(Duration::from_secs(600))
}

/// Connection 0 closes with `421` after its first message, in answer to the
/// next command (which is recorded). Later connections behave.
fn closes_after_first() -> (ScriptedServer, Inbox) {
    plain_server(move |peer, _n| {
        peer.reply("250 2.0.0 queued")?;
        if peer.index() != 0 {
            return Ok(true);
        }
        peer.line()?;
        peer.reply("421 4.4.2 mail.test closing connection")?;
        Ok(false)
    })
}

#[test]
fn pool_is_a_shared_handle() {
    fn assert_shared<T: Clone + Send + Sync + 'static>() {}
    assert_shared::<Pool>();
    assert_shared::<Connector>();
    let pool = Pool::new(
        Connector::new("localhost", 25, Config::new("localhost"), Options::new()),
        PoolOptions::new().max_size(0),
    );
    assert_eq!(pool.status().max_size, 1);
    let _: Arc<dyn Mailer<Error = Error>> = Arc::new(pool);
}

#[test]
fn threads_share_at_most_max_size_connections() {
    // Slow enough that the threads overlap.
    let (server, inbox) = plain_server(|peer, n| {
        thread::sleep(Duration::from_millis(5));
        ok(peer, n)
    });
    let pool = plain_pool(&server, quiet().max_size(3));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..5 {
                    let n = t * 5 + i;
                    let delivery = pool.send(envelope("you@example.org"), &body(n)).unwrap();
                    assert!(delivery.recipients()[0].accepted());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let got: BTreeSet<Vec<u8>> = inbox.lock().unwrap().iter().map(|m| m.1.clone()).collect();
    let want: BTreeSet<Vec<u8>> = (0..40).map(body).collect();
    assert_eq!(got, want);
    let connections = server.connections();
    assert!((1..=3).contains(&connections), "{connections} connections");
    let status = pool.status();
    assert_eq!((status.idle, status.in_use), (connections, 0));
    assert_eq!(status.opened, connections as u64);
    assert_eq!(status.reused, 40 - connections as u64);

    pool.close();
    assert!(pool.is_closed());
    assert_eq!(pool.status().idle, 0);
    assert!(server.wait_finished(connections, WAIT));
    for i in 0..connections {
        assert_eq!(count(&server, i, "QUIT\r\n"), 1, "connection {i}");
    }
    let err = pool
        .send(envelope("you@example.org"), b"late\r\n")
        .unwrap_err();
    assert!(
        matches!(err.smtp(), Some(SmtpError::InvalidState { .. })),
        "{err:?}"
    );
    assert_eq!(server.connections(), connections);
}

#[test]
fn sequential_sends_reuse_one_connection() {
    let (server, inbox) = plain_server(ok);
    let pool = plain_pool(&server, quiet());
    for n in 0..3 {
        pool.send(envelope("you@example.org"), &body(n)).unwrap();
    }
    assert_eq!(server.connections(), 1);
    let status = pool.status();
    assert_eq!((status.opened, status.reused, status.idle), (1, 2, 1));
    assert_eq!(inbox.lock().unwrap().len(), 3);
    pool.close();
}

#[test]
fn idle_timeout_closes_old_connections_and_prune_too() {
    let (server, _inbox) = plain_server(ok);
    let pool = plain_pool(&server, quiet().idle_timeout(Duration::from_millis(200)));
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert_eq!(server.connections(), 1);

    thread::sleep(Duration::from_millis(400));
    pool.send(envelope("you@example.org"), b"three\r\n")
        .unwrap();
    assert_eq!(server.connections(), 2);
    // The old one was QUIT (on a thread of its own).
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(count(&server, 0, "QUIT\r\n"), 1);
    assert_eq!(count(&server, 0, "MAIL FROM"), 2);

    thread::sleep(Duration::from_millis(400));
    assert_eq!(pool.status().idle, 1);
    pool.prune();
    assert_eq!(pool.status().idle, 0);
    assert!(server.wait_finished(2, WAIT));
    assert_eq!(count(&server, 1, "QUIT\r\n"), 1);
}

#[test]
fn max_lifetime_retires_busy_connections() {
    let (server, _inbox) = plain_server(ok);
    let pool = plain_pool(
        &server,
        quiet().max_lifetime(Some(Duration::from_millis(300))),
    );
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    thread::sleep(Duration::from_millis(400));
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert_eq!(server.connections(), 2);
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(count(&server, 0, "QUIT\r\n"), 1);
    pool.close();
}

/// Connection 0 gets `what` done to it once the pool holds it idle.
fn idle_server(
    what: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
) -> (ScriptedServer, Inbox, Arc<Signal>, Arc<Signal>) {
    let (idle, done) = (Signal::new(), Signal::new());
    let (is_idle, did) = (Arc::clone(&idle), Arc::clone(&done));
    let (server, inbox) = plain_server(move |peer, _n| {
        peer.reply("250 2.0.0 queued")?;
        if peer.index() != 0 {
            return Ok(true);
        }
        is_idle.wait();
        what(peer)?;
        did.send();
        // Still listening, so anything the client writes now is recorded.
        peer.read_until_closed()?;
        Ok(false)
    });
    (server, inbox, idle, done)
}

fn a_connection_gone_while_idle_is_not_used(
    what: impl Fn(&mut Peer) -> io::Result<()> + Send + Sync + 'static,
) {
    let (server, inbox, idle, done) = idle_server(what);
    // No health check: the idle check finds it, before anything is written.
    let pool = plain_pool(&server, quiet());
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    assert_eq!(pool.status().idle, 1);
    idle.send();
    done.wait();
    thread::sleep(Duration::from_millis(50));

    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert_eq!(server.connections(), 2);
    assert_eq!(count(&server, 0, "MAIL FROM"), 1);
    assert_eq!(count(&server, 1, "MAIL FROM"), 1);
    assert_eq!(
        inbox.lock().unwrap().clone(),
        vec![(0, b"one\r\n".to_vec()), (1, b"two\r\n".to_vec())]
    );
    let status = pool.status();
    assert_eq!(
        (status.closed_while_idle, status.retried, status.idle),
        (1, 0, 1)
    );
    pool.close();
}

#[test]
fn a_421_while_idle_is_read_before_reuse() {
    a_connection_gone_while_idle_is_not_used(|peer| peer.reply("421 4.4.2 mail.test idle timeout"));
}

#[test]
fn a_connection_closed_while_idle_is_not_used() {
    a_connection_gone_while_idle_is_not_used(|peer| {
        peer.close();
        Ok(())
    });
}

#[test]
fn long_idle_connections_get_a_noop_and_a_failed_one_is_replaced() {
    let (server, _inbox) = plain_server(ok);
    let pool = plain_pool(
        &server,
        quiet().health_check_after(Duration::from_millis(200)),
    );
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert_eq!(count(&server, 0, "NOOP\r\n"), 0);
    thread::sleep(Duration::from_millis(400));
    pool.send(envelope("you@example.org"), b"three\r\n")
        .unwrap();
    assert_eq!(server.connections(), 1);
    assert_eq!(count(&server, 0, "NOOP\r\n"), 1);
    pool.close();

    // A NOOP met by a 421: that connection is discarded, not retried.
    let (server, inbox) = closes_after_first();
    let pool = plain_pool(&server, quiet().health_check_after(Duration::ZERO));
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.connections(), 2);
    assert_eq!(count(&server, 0, "NOOP\r\n"), 1);
    assert_eq!(count(&server, 0, "MAIL FROM"), 1);
    assert_eq!(inbox.lock().unwrap().len(), 2);
    let status = pool.status();
    assert_eq!((status.failed_health_checks, status.retried), (1, 0));
    pool.close();
}

#[test]
fn a_421_to_mail_on_a_reused_connection_is_retried_once() {
    let (server, inbox) = closes_after_first();
    let pool = plain_pool(&server, quiet());
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.connections(), 2);
    assert_eq!(count(&server, 0, "MAIL FROM"), 2);
    assert_eq!(count(&server, 0, "DATA"), 1);
    assert_eq!(count(&server, 1, "MAIL FROM"), 1);
    assert_eq!(
        inbox.lock().unwrap().clone(),
        vec![(0, b"one\r\n".to_vec()), (1, b"two\r\n".to_vec())]
    );
    assert_eq!(pool.status().retried, 1);
    pool.close();
}

#[test]
fn send_reader_and_send_all_follow_the_same_retry_rule() {
    let (server, inbox) = closes_after_first();
    let pool = plain_pool(&server, quiet());
    pool.send_reader(envelope("you@example.org"), &b"one\r\n"[..])
        .unwrap();
    let bodies: [&[u8]; 2] = [b"two\r\n", b"three\r\n"];
    let results = pool.send_all(bodies.map(|body| (envelope("you@example.org"), body)));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        inbox.lock().unwrap().clone(),
        vec![
            (0, b"one\r\n".to_vec()),
            (1, b"two\r\n".to_vec()),
            (1, b"three\r\n".to_vec())
        ]
    );
    assert_eq!(pool.status().retried, 1);
    pool.close();
}

#[test]
fn a_failure_on_a_new_connection_is_not_retried() {
    let server = ScriptedServer::start_fn(|peer: &mut Peer| {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO")?;
        peer.reply("250 mail.test")?;
        peer.expect("MAIL")?;
        peer.reply("421 4.3.2 shutting down")
    })
    .unwrap();
    let pool = plain_pool(&server, quiet());
    let err = pool
        .send(envelope("you@example.org"), b"x\r\n")
        .unwrap_err();
    assert!(
        matches!(err.smtp(), Some(SmtpError::ServiceClosing { .. })),
        "{err:?}"
    );
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.connections(), 1);
    let status = pool.status();
    assert_eq!((status.idle, status.in_use, status.retried), (0, 0, 0));
}

#[test]
fn no_retry_once_the_body_was_sent_and_the_batch_is_padded() {
    // Connection 0 takes one message, then hangs up after reading the
    // second body without answering: the server may have kept it.
    let (server, inbox) = plain_server(|peer, n| {
        if peer.index() == 0 && n == 1 {
            return Ok(false);
        }
        ok(peer, n)
    });
    let pool = plain_pool(&server, quiet());
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    let bodies: [&[u8]; 3] = [b"two\r\n", b"three\r\n", b"four\r\n"];
    let results = pool.send_all(bodies.map(|body| (envelope("you@example.org"), body)));
    assert_eq!(results.len(), 3, "{results:?}");
    let first = results[0].as_ref().unwrap_err();
    assert!(
        first.is_delivery_unknown() && !first.is_transient(),
        "{first:?}"
    );
    assert!(!first.outcome().may_resend());
    assert!(matches!(results[1], Err(Error::NotSent)), "{results:?}");
    assert!(matches!(results[2], Err(Error::NotSent)), "{results:?}");
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(server.connections(), 1, "nothing may be resent");
    assert_eq!(inbox.lock().unwrap().len(), 2);
    let status = pool.status();
    assert_eq!((status.idle, status.in_use, status.retried), (0, 0, 0));

    // The pool goes on with a new connection.
    pool.send(envelope("you@example.org"), b"five\r\n").unwrap();
    assert_eq!(server.connections(), 2);
    pool.close();
}

#[test]
fn a_refusal_keeps_the_connection() {
    let (server, _inbox) = plain_server(|peer, n| {
        if n == 0 {
            peer.reply("554 5.6.0 content rejected")?;
            return Ok(true);
        }
        ok(peer, n)
    });
    let pool = plain_pool(&server, quiet());
    let err = pool
        .send(envelope("you@example.org"), b"spam\r\n")
        .unwrap_err();
    assert!(
        matches!(err.smtp(), Some(SmtpError::MessageRejected { .. })),
        "{err:?}"
    );
    assert_eq!(pool.status().idle, 1);
    pool.send(envelope("you@example.org"), b"ham\r\n").unwrap();
    assert_eq!(server.connections(), 1);
    pool.close();
}

#[test]
fn close_wakes_a_send_waiting_for_a_slot() {
    let (has, answer) = (Signal::new(), Signal::new());
    let (has_message, go_on) = (Arc::clone(&has), Arc::clone(&answer));
    let (server, _inbox) = plain_server(move |peer, n| {
        if n == 0 {
            has.send();
            answer.wait();
        }
        ok(peer, n)
    });
    let pool = plain_pool(&server, quiet().max_size(1));
    let first = {
        let pool = pool.clone();
        thread::spawn(move || pool.send(envelope("you@example.org"), b"one\r\n"))
    };
    has_message.wait();
    let waiting = {
        let pool = pool.clone();
        thread::spawn(move || pool.send(envelope("you@example.org"), b"never\r\n"))
    };
    thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.status().in_use, 1);
    pool.close();
    let err = waiting.join().unwrap().unwrap_err();
    assert!(
        matches!(err.smtp(), Some(SmtpError::InvalidState { .. })),
        "{err:?}"
    );
    // The send in progress finishes, and its connection is QUIT after.
    go_on.send();
    first.join().unwrap().unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(count(&server, 0, "QUIT\r\n"), 1);
    assert_eq!(count(&server, 0, "never"), 0);
    assert_eq!(pool.status().in_use, 0);
}

// ---- credentials over TLS (the Exchange-like server) ------------------------

fn tls_options(pki: &TestPki) -> Options {
    Options::new()
        .tls(pki.client_config().unwrap())
        .timeouts(Timeouts::uniform(Duration::from_secs(10)))
}

#[test]
fn the_credential_provider_is_called_once_per_new_connection() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let mut opts = ExchangeOptions::new(cert.server_config().unwrap());
    for n in 1..=20 {
        opts = opts.token(&format!("user{n}@example.com"), &format!("tok-{n}"));
    }
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let provider_calls = Arc::clone(&calls);
    let connector = Connector::to_addr(server.addr(), Config::new(NAME), tls_options(&pki))
        .credential_provider(move || -> Result<Option<Credentials>, BoxError> {
            let n = provider_calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Some(Credentials::token(
                format!("user{n}@example.com"),
                format!("tok-{n}"),
            )))
        });
    let pool = Pool::new(connector, quiet().max_size(3));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            thread::spawn(move || {
                for i in 0..3 {
                    pool.send(envelope("you@example.org"), &body(t * 3 + i))
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let messages = store.wait_for_messages(12, WAIT);
    assert!(messages.iter().all(|m| m.tls));
    let connections = server.connections();
    assert!((1..=3).contains(&connections), "{connections}");
    assert_eq!(calls.load(Ordering::SeqCst), connections);
    let auths = store.auth_attempts();
    assert_eq!(auths.len(), connections);
    assert!(auths.iter().all(|a| a.success && a.mechanism == "XOAUTH2"));
    pool.close();

    // A failing provider: no connection is opened.
    let connector = Connector::to_addr(server.addr(), Config::new(NAME), tls_options(&pki))
        .credential_provider(|| -> Result<Option<Credentials>, BoxError> {
            Err("token endpoint down".into())
        });
    let pool = Pool::new(connector, quiet());
    let err = pool
        .send(envelope("you@example.org"), b"x\r\n")
        .unwrap_err();
    let Error::Credentials(inner) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(inner.to_string(), "token endpoint down");
    assert!(err.is_transient());
    assert_eq!(server.connections(), connections);
    assert_eq!(pool.status().in_use, 0);
}

// ---- the Mailer trait: the same application code over both ------------------

/// Application code: sends a receipt per order, as one batch, and reports
/// how many went out. Knows nothing of connections.
fn send_receipts<M: Mailer>(mailer: &M, orders: &[&str]) -> Result<usize, M::Error> {
    let bodies: Vec<Vec<u8>> = orders
        .iter()
        .map(|order| format!("Subject: receipt {order}\r\n\r\nThanks.\r\n").into_bytes())
        .collect();
    let batch = bodies
        .iter()
        .map(|body| (envelope("customer@example.org"), body.as_slice()))
        .collect();
    let mut sent = 0;
    for result in mailer.send_all(batch) {
        let _: Delivery = result?;
        sent += 1;
    }
    Ok(sent)
}

#[test]
fn the_same_code_runs_over_the_double_and_a_real_pool() {
    let double = RecordingMailer::<Error>::default();
    assert_eq!(send_receipts(&double, &["A1", "A2"]).unwrap(), 2);
    let sent = double.sent();
    assert_eq!(
        sent[1].body_text(),
        "Subject: receipt A2\r\n\r\nThanks.\r\n"
    );

    let (server, inbox) = plain_server(ok);
    let pool = plain_pool(&server, quiet());
    assert_eq!(send_receipts(&pool, &["A1", "A2"]).unwrap(), 2);
    let received: Vec<Vec<u8>> = inbox.lock().unwrap().iter().map(|m| m.1.clone()).collect();
    let recorded: Vec<Vec<u8>> = sent.into_iter().map(|m| m.body).collect();
    assert_eq!(received, recorded);
    assert_eq!(server.connections(), 1);

    // Chosen at run time, behind one type.
    let mailers: Vec<Arc<dyn Mailer<Error = Error>>> =
        vec![Arc::new(double.clone()), Arc::new(pool.clone())];
    for mailer in &mailers {
        assert_eq!(send_receipts(mailer, &["B1"]).unwrap(), 1);
    }
    assert_eq!(double.sent().len(), 3);
    assert_eq!(inbox.lock().unwrap().len(), 3);
    pool.close();
}

/// An application's service, as its own unit tests would check it with the
/// double: the happy path, and what it does when the mail server refuses.
struct Signup<M> {
    mailer: M,
}

impl<M: Mailer> Signup<M> {
    fn register(&self, address: &str) -> Result<(), String> {
        let envelope = Envelope::new(
            Some(Address::new("noreply@example.com").unwrap()),
            [Address::new(address).map_err(|err| err.to_string())?],
        )
        .map_err(|err| err.to_string())?;
        self.mailer
            .send(envelope, b"Subject: confirm\r\n\r\nClick.\r\n")
            .map(|_| ())
            .map_err(|err| format!("could not send the confirmation: {err}"))
    }
}

#[test]
fn unit_testing_an_application_with_the_recording_double() {
    let mailer = RecordingMailer::new();
    let signup = Signup {
        mailer: mailer.clone(),
    };
    signup.register("ann@example.org").unwrap();
    let sent = mailer.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].envelope.recipients()[0].address().as_str(),
        "ann@example.org"
    );
    assert!(sent[0].body_text().contains("Subject: confirm"));

    let reply = smtp_blocking::smtp_proto::Reply::parse(b"451 4.3.0 try later\r\n").unwrap();
    mailer.refuse(SmtpError::Rejected {
        stage: smtp_blocking::Stage::Mail,
        reply,
    });
    let err = signup.register("bob@example.org").unwrap_err();
    assert!(err.contains("451 4.3.0 try later"), "{err}");
    assert!(mailer.sent().is_empty());

    // Shared by threads like a pool.
    mailer.accept();
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let signup = Signup {
                mailer: mailer.clone(),
            };
            thread::spawn(move || signup.register(&format!("user{n}@example.org")))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    assert_eq!(mailer.sent().len(), 4);
    assert_eq!(mailer.attempts(), 6);
}

// ---- against a real Postfix (PIPELINING, CHUNKING) with a 1 s idle timeout --

#[test]
fn threads_share_the_pool_against_a_real_postfix_that_times_idle_connections_out() {
    let server = smtp_tests::Postfix::start(&smtp_tests::PostfixOptions {
        idle_timeout_secs: Some(1),
        ..smtp_tests::PostfixOptions::default()
    })
    .unwrap();
    let config = Config::new("localhost").tls(TlsPolicy::Disabled);
    let options = Options::new().timeouts(Timeouts::uniform(Duration::from_secs(10)));
    let pool = Pool::new(
        Connector::to_addr(server.addr(), config, options),
        quiet().max_size(3),
    );
    let round = |first: usize, threads: usize, each: usize| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let batch: Vec<Vec<u8>> =
                        (0..each).map(|i| body(first + t * each + i)).collect();
                    // Half as single sends, half as one batch.
                    let (singles, rest) = batch.split_at(each / 2);
                    for body in singles {
                        pool.send(envelope("you@example.org"), body).unwrap();
                    }
                    let results = pool.send_all(
                        rest.iter()
                            .map(|body| (envelope("you@example.org"), body.as_slice())),
                    );
                    assert!(results.iter().all(Result::is_ok), "{results:?}");
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    };
    round(0, 6, 6);
    let status = pool.status();
    assert!((1..=3).contains(&status.opened), "{status:?}");
    // Past Postfix's idle timeout: every idle connection was closed with a
    // 421, which the idle check reads before anything is written.
    thread::sleep(Duration::from_millis(1800));
    round(36, 3, 4);
    let messages = server.wait_for_messages(48, WAIT).unwrap();
    assert_eq!(messages.len(), 48);
    for n in 0..48 {
        let subject = format!("Subject: message {n}\r\n");
        let found = messages
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.data).contains(&subject))
            .count();
        assert_eq!(found, 1, "message {n}");
    }
    let status = pool.status();
    assert!(status.closed_while_idle >= 1, "{status:?}");
    assert_eq!(status.retried, 0, "{status:?}");
    assert!(status.idle <= 3, "{status:?}");
    pool.close();
}

/// A body reader that panics once the server invited the body.
struct PanickingReader;

impl io::Read for PanickingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        panic!("the application's reader panicked");
    }
}

#[test]
fn a_send_that_panics_discards_its_connection_and_frees_its_slot() {
    let (server, inbox) = plain_server(ok);
    let pool = plain_pool(&server, quiet().max_size(1));
    pool.send(envelope("you@example.org"), b"one\r\n").unwrap();
    let panicked = {
        let pool = pool.clone();
        thread::spawn(move || pool.send_reader(envelope("you@example.org"), PanickingReader)).join()
    };
    assert!(panicked.is_err());
    let status = pool.status();
    assert_eq!((status.idle, status.in_use), (0, 0));
    // The only slot is free again; the half-used connection is gone.
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert_eq!(server.connections(), 2);
    assert_eq!(
        inbox.lock().unwrap().clone(),
        vec![(0, b"one\r\n".to_vec()), (1, b"two\r\n".to_vec())]
    );
    pool.close();
}

#[test]
fn wait_timeout_bounds_the_wait_for_a_slot() {
    let (has, answer) = (Signal::new(), Signal::new());
    let (has_message, go_on) = (Arc::clone(&has), Arc::clone(&answer));
    let (server, _inbox) = plain_server(move |peer, n| {
        if n == 0 {
            has.send();
            answer.wait();
        }
        ok(peer, n)
    });
    let pool = plain_pool(
        &server,
        quiet()
            .max_size(1)
            .wait_timeout(Some(Duration::from_millis(100))),
    );
    let first = {
        let pool = pool.clone();
        thread::spawn(move || pool.send(envelope("you@example.org"), b"one\r\n"))
    };
    has_message.wait();
    let started = std::time::Instant::now();
    let err = pool
        .send(envelope("you@example.org"), b"never\r\n")
        .unwrap_err();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err:?}");
    assert!(err.is_transient() && err.outcome().may_resend());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < WAIT);
    go_on.send();
    first.join().unwrap().unwrap();
    pool.send(envelope("you@example.org"), b"two\r\n").unwrap();
    assert_eq!(server.connections(), 1);
    pool.close();
}
