//! What only smtp-tokio has, run by every backend and executor: an
//! operation's future dropped part-way poisons the client. Everything
//! every adapter does is in the adapter suite (`tests/tests/adapters`);
//! the server here is the same one, `smtp-tests`' scripted server.
// Test support: panicking on a broken fixture is the point.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtp_tests::{Peer, ScriptedServer};

/// How long to wait for the server to see the client hang up.
pub const WAIT: Duration = Duration::from_secs(10);

/// Compiles only for a `Send` value (a future that can go to
/// `tokio::spawn`).
pub fn assert_send<T: Send>(_: &T) {}

/// Bodies a server received, in order.
pub type Inbox = Arc<Mutex<Vec<Vec<u8>>>>;

/// A server that accepts every message (`Peer::serve_messages`).
pub fn accepting_server() -> (ScriptedServer, Inbox) {
    let inbox = Inbox::default();
    let stored = Arc::clone(&inbox);
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.serve_messages(&[], |peer, _n, body| {
            stored.lock().unwrap().push(body);
            peer.reply("250 2.0.0 queued")?;
            Ok(true)
        })
    })
    .unwrap();
    (server, inbox)
}

/// A server offering PIPELINING that reads the first message whole, says
/// so on the channel, and never answers it: it reads until the client
/// hangs up (its handler then returns `Ok`; an error if the client keeps
/// the connection open).
pub fn never_answers_the_first_message() -> (ScriptedServer, smol::channel::Receiver<()>) {
    let (has_message, told) = smol::channel::bounded(1);
    let server = ScriptedServer::start_fn(move |peer: &mut Peer| {
        peer.serve_messages(&["PIPELINING"], |peer, _n, _body| {
            let _ = has_message.send_blocking(());
            peer.set_read_timeout(Some(WAIT))?;
            peer.read_until_closed()?;
            Ok(false)
        })
    })
    .unwrap();
    (server, told)
}

/// A server that answers STARTTLS with `220` and then waits for the client
/// to hang up.
pub fn starttls_server() -> ScriptedServer {
    ScriptedServer::start_fn(|peer: &mut Peer| -> io::Result<()> {
        peer.reply("220 mail.test ESMTP")?;
        peer.expect("EHLO")?;
        peer.reply("250-mail.test\n250 STARTTLS")?;
        peer.expect("STARTTLS")?;
        peer.reply("220 go ahead")?;
        peer.read_until_closed()
    })
    .unwrap()
}

/// The scenarios, for one client type and one executor.
///
/// `$client`: the client type; `$run`: runs a future to completion.
macro_rules! cancellation {
    ($client:ty, $run:path) => {
        use crate::common;
        use smtp_tokio::smtp_proto::{Address, Config, Envelope, Timeouts, TlsPolicy};
        use smtp_tokio::{Error, Options};
        use std::time::Duration;

        fn config() -> Config {
            Config::new("localhost").tls(TlsPolicy::Disabled)
        }

        fn options() -> Options {
            Options::default().timeouts(Timeouts::uniform(Duration::from_secs(10)))
        }

        fn envelope() -> Envelope {
            Envelope::new(
                Some(Address::new("a@example.com").unwrap()),
                [Address::new("b@example.org").unwrap()],
            )
            .unwrap()
        }

        /// The send is dropped once the server has the whole message (the
        /// reply would never come): the client is poisoned and writes
        /// nothing more, not even QUIT.
        #[test]
        fn a_dropped_send_poisons_the_client() {
            let (server, has_message) = common::never_answers_the_first_message();
            $run(async move {
                let mut client = <$client>::connect_to(server.addr(), config(), options())
                    .await
                    .unwrap();
                let send = client.send(envelope(), b"x\r\n");
                common::assert_send(&send);
                let outcome = futures_lite::future::or(async { Some(send.await) }, async {
                    has_message.recv().await.unwrap();
                    None
                })
                .await;
                assert!(outcome.is_none(), "{outcome:?}");
                assert!(!client.is_usable() && client.is_poisoned());
                assert!(matches!(client.noop().await, Err(Error::Poisoned)));
                assert!(matches!(
                    client.send(envelope(), b"y\r\n").await,
                    Err(Error::Poisoned)
                ));
                assert!(matches!(client.quit().await, Err(Error::Poisoned)));
                assert!(server.wait_finished(1, common::WAIT));
                assert_eq!(server.errors(), [None]);
                // Nothing after the message: no NOOP, MAIL or QUIT.
                let sent = server.transcript(0).unwrap().plain_text();
                assert!(sent.ends_with("\r\nDATA\r\nx\r\n.\r\n"), "{sent:?}");
            });
        }

        /// A batch dropped while the server holds its first message: no
        /// result handed on, the client poisoned; the next call fails
        /// without writing and closes the connection, which the cancelled
        /// one could not.
        #[test]
        fn a_dropped_batch_poisons_the_client() {
            let (server, has_message) = common::never_answers_the_first_message();
            $run(async move {
                let mut client = <$client>::connect_to(server.addr(), config(), options())
                    .await
                    .unwrap();
                let bodies: [&[u8]; 3] = [b"one\r\n", b"two\r\n", b"three\r\n"];
                let mut results = Vec::new();
                let send_each = client.send_each(bodies.map(|body| (envelope(), body)), |result| {
                    results.push(result)
                });
                common::assert_send(&send_each);
                let outcome = futures_lite::future::or(async { Some(send_each.await) }, async {
                    has_message.recv().await.unwrap();
                    None
                })
                .await;
                assert!(outcome.is_none(), "the server never answers the first message");
                assert!(results.is_empty(), "{results:?}");
                assert!(!client.is_usable());
                let again = client.send_all([(envelope(), &b"four\r\n"[..])]);
                common::assert_send(&again);
                assert!(matches!(again.await.as_slice(), [Err(Error::Poisoned)]));
                // The client is still here: the server saw it hang up
                // because that call closed the connection.
                assert!(server.wait_finished(1, common::WAIT));
                assert_eq!(server.errors(), [None], "the connection is still open");
                assert!(matches!(client.quit().await, Err(Error::Poisoned)));
                // The second message's commands rode behind the first; then
                // nothing: no body, no third message, no QUIT.
                let sent = server.transcript(0).unwrap().plain_text();
                assert!(
                    sent.ends_with(
                        "DATA\r\none\r\n.\r\n\
                         MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
                    ),
                    "{sent:?}"
                );
            });
        }

        /// The `rustls` feature without a crypto provider (and none
        /// installed for the process): TLS is a configuration error.
        #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
        #[test]
        fn without_a_crypto_provider_tls_is_a_configuration_error() {
            let server = common::starttls_server();
            $run(async move {
                let config = Config::new("localhost").tls(TlsPolicy::Required);
                let err = <$client>::connect_to(server.addr(), config, options())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, Error::Smtp(smtp_tokio::smtp_proto::Error::TlsConfig { reason }) if reason.contains("provider")),
                    "{err:?}"
                );
            });
        }
    };
}
