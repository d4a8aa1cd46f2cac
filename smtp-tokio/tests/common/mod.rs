//! A tiny plaintext SMTP server on a std thread, runtime-independent, and the
//! scenarios every backend and executor runs.
// Test support: panicking on a broken fixture is the point.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server saw.
#[derive(Debug, Default)]
pub struct Received {
    /// Command lines, without CRLF.
    pub commands: Vec<String>,
    /// Each message as sent on the wire (dot-stuffed), without the final `.CRLF`.
    pub messages: Vec<Vec<u8>>,
    /// Bytes that arrived after the server stopped speaking SMTP.
    pub trailing: Vec<u8>,
    /// Whether the client closed the connection while the server drained
    /// it (rather than the read timing out).
    pub closed: bool,
}

pub struct Server {
    pub addr: SocketAddr,
    handle: JoinHandle<Received>,
}

impl Server {
    pub fn join(self) -> Received {
        self.handle.join().expect("server thread panicked")
    }
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub received: Received,
}

impl Conn {
    pub fn send(&mut self, text: &str) {
        // The client may have gone; the test asserts on its side.
        let _ = self.writer.write_all(text.as_bytes());
        let _ = self.writer.flush();
    }

    /// One line without CRLF; `None` at EOF or timeout.
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                self.received.commands.push(line.clone());
                Some(line)
            }
        }
    }

    /// The DATA section up to `.CRLF`, as sent.
    pub fn data(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        loop {
            let mut buf = Vec::new();
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return message,
                Ok(_) if buf == b".\r\n" => return message,
                Ok(_) => message.extend_from_slice(&buf),
            }
        }
    }

    /// Everything until EOF (or the read timeout).
    pub fn drain(&mut self) {
        let mut rest = Vec::new();
        self.received.closed = self.reader.read_to_end(&mut rest).is_ok();
        self.received.trailing.extend_from_slice(&rest);
    }
}

/// Accepts one connection and runs `script` on it.
pub fn spawn(script: impl FnOnce(&mut Conn) + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut conn = Conn {
            reader: BufReader::new(stream),
            writer,
            received: Received::default(),
        };
        script(&mut conn);
        conn.received
    });
    Server { addr, handle }
}

/// How the well-behaved server deviates.
#[derive(Clone, Copy, Default)]
pub struct Script {
    /// EHLO keywords after the greeting line.
    pub extensions: &'static [&'static str],
    /// Stop answering at this command verb (`"."` for the end of data) and
    /// wait for the client to go.
    pub stall_on: Option<&'static str>,
}

/// A minimal SMTP server: greeting, EHLO, MAIL, RCPT (`reject` in the
/// address gets 550), DATA, NOOP, RSET, QUIT.
pub fn smtp(conn: &mut Conn, script: Script) {
    conn.send("220 localhost ESMTP test\r\n");
    while let Some(line) = conn.line() {
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if script.stall_on == Some(verb.as_str()) {
            conn.drain();
            return;
        }
        match verb.as_str() {
            "EHLO" => {
                let mut reply = String::new();
                let mut lines = vec!["localhost"];
                lines.extend_from_slice(script.extensions);
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                    reply.push_str(&format!("250{sep}{l}\r\n"));
                }
                conn.send(&reply);
            }
            "MAIL" | "NOOP" | "RSET" => conn.send("250 2.0.0 OK\r\n"),
            "RCPT" if line.contains("reject") => conn.send("550 5.1.1 no such user\r\n"),
            "RCPT" => conn.send("250 2.1.5 OK\r\n"),
            "DATA" => {
                conn.send("354 go ahead\r\n");
                let message = conn.data();
                conn.received.messages.push(message);
                if script.stall_on == Some(".") {
                    conn.drain();
                    return;
                }
                conn.send("250 2.0.0 queued as 42\r\n");
            }
            "QUIT" => {
                conn.send("221 2.0.0 bye\r\n");
                return;
            }
            _ => conn.send("502 5.5.2 what?\r\n"),
        }
    }
}

/// Undoes dot-stuffing of a DATA section.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    for line in wire.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

pub fn assert_send<T: Send>(_: &T) {}

/// The scenarios, for one client type and one executor.
///
/// `$client`: the client type; `$run`: runs a future to completion;
/// `$sleep`: an async sleep, `fn(Duration) -> impl Future`.
macro_rules! scenarios {
    ($client:ty, $run:path, $sleep:path) => {
        use crate::common::{self, Script};
        use smtp_tokio::smtp_proto::{self, Address, Config, Envelope, Stage, Timeouts, TlsPolicy};
        use smtp_tokio::{Error, Options};
        use std::sync::{Arc, Mutex};
        use std::time::{Duration, Instant};

        fn config() -> Config {
            Config::new("localhost").tls(TlsPolicy::Disabled)
        }

        fn options() -> Options {
            Options::default().timeouts(Timeouts::uniform(Duration::from_secs(10)))
        }

        fn envelope(to: &[&str]) -> Envelope {
            Envelope::new(
                Some(Address::new("a@example.com").unwrap()),
                to.iter().map(|t| Address::new(*t).unwrap()),
            )
            .unwrap()
        }

        #[test]
        fn sends_a_message_dot_stuffed() {
            let server = common::spawn(|c| {
                common::smtp(
                    c,
                    Script {
                        extensions: &["8BITMIME", "SIZE 1000000"],
                        ..Script::default()
                    },
                )
            });
            let lines = Arc::new(Mutex::new(Vec::new()));
            let hook = Arc::clone(&lines);
            let options = options().transcript(move |line| {
                hook.lock().unwrap().push(line.to_string());
            });
            $run(async move {
                let mut client = <$client>::connect_to(server.addr, config(), options)
                    .await
                    .unwrap();
                assert!(client.is_usable());
                let body = b"Subject: t\n\n.leading dot\nline\r\n..two\n";
                let send = client.send(envelope(&["b@example.org"]), body);
                common::assert_send(&send);
                let delivery = send.await.unwrap();
                assert!(delivery.recipients()[0].accepted());
                assert_eq!(delivery.reply().code().get(), 250);
                assert!(client.is_usable());
                client.noop().await.unwrap();
                client.quit().await.unwrap();

                let received = server.join();
                assert_eq!(
                    received.commands,
                    [
                        "EHLO localhost",
                        "MAIL FROM:<a@example.com> SIZE=37",
                        "RCPT TO:<b@example.org>",
                        "DATA",
                        "NOOP",
                        "QUIT",
                    ]
                );
                assert_eq!(
                    received.messages,
                    [b"Subject: t\r\n\r\n..leading dot\r\nline\r\n...two\r\n".to_vec()]
                );
            });
            let lines = lines.lock().unwrap();
            assert!(
                lines.contains(&"C: MAIL FROM:<a@example.com> SIZE=37".to_owned()),
                "{lines:?}"
            );
            assert!(
                lines.contains(&"S: 250 2.0.0 queued as 42".to_owned()),
                "{lines:?}"
            );
        }

        #[test]
        fn refused_recipients_leave_the_client_usable() {
            let server = common::spawn(|c| {
                common::smtp(
                    c,
                    Script {
                        extensions: &["PIPELINING"],
                        ..Script::default()
                    },
                )
            });
            $run(async move {
                let mut client = <$client>::connect_to(server.addr, config(), options())
                    .await
                    .unwrap();
                // Every recipient refused: an SMTP error, nothing delivered.
                let err = client
                    .send(envelope(&["reject@example.org"]), b"x\r\n")
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        err.smtp(),
                        Some(smtp_proto::Error::RecipientsRejected { .. })
                    ),
                    "{err:?}"
                );
                assert!(client.is_usable());
                // One of two refused: delivered, with the refusal reported.
                let delivery = client
                    .send(
                        envelope(&["reject@example.org", "ok@example.org"]),
                        b"x\r\n",
                    )
                    .await
                    .unwrap();
                assert_eq!(delivery.rejected().count(), 1);
                client.noop().await.unwrap();
                client.quit().await.unwrap();
                let received = server.join();
                // With PIPELINING the server (this one says 354 regardless)
                // gets an empty body for the undeliverable message.
                assert_eq!(received.messages, [b"".to_vec(), b"x\r\n".to_vec()]);
            });
        }

        #[test]
        fn one_mib_body_via_send_reader_arrives_byte_exact() {
            let mut body = Vec::with_capacity(1 << 20);
            let mut i = 0u32;
            while body.len() < (1 << 20) - 100 {
                if i % 7 == 0 {
                    body.push(b'.');
                }
                body.extend_from_slice(format!("line {i} of the big message\r\n").as_bytes());
                i += 1;
            }
            body.extend(std::iter::repeat(b'x').take((1 << 20) - 2 - body.len()));
            body.extend_from_slice(b"\r\n");
            assert_eq!(body.len(), 1 << 20);
            let server = common::spawn(|c| common::smtp(c, Script::default()));
            let expected = body.clone();
            $run(async move {
                let mut client = <$client>::connect_to(server.addr, config(), options())
                    .await
                    .unwrap();
                let envelope = envelope(&["b@example.org"]).size(body.len() as u64);
                client.send_reader(envelope, &body[..]).await.unwrap();
                client.quit().await.unwrap();
                let received = server.join();
                assert_eq!(received.messages.len(), 1);
                assert!(common::unstuff(&received.messages[0]) == expected);
            });
        }

        #[test]
        fn a_stalled_greeting_times_out() {
            let server = common::spawn(|c| c.drain());
            $run(async move {
                let options = options().timeouts(Timeouts::uniform(Duration::from_millis(200)));
                let start = Instant::now();
                let err = <$client>::connect_to(server.addr, config(), options)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::Smtp(smtp_tokio::smtp_proto::Error::Timeout {
                            stage: Stage::Greeting
                        })
                    ),
                    "{err:?}"
                );
                assert!(err.is_transient());
                assert!(start.elapsed() < Duration::from_secs(5));
            });
        }

        #[test]
        fn a_stalled_reply_times_out_and_poisons() {
            let server = common::spawn(|c| {
                common::smtp(
                    c,
                    Script {
                        stall_on: Some("MAIL"),
                        ..Script::default()
                    },
                )
            });
            $run(async move {
                let options = options().timeouts(Timeouts::uniform(Duration::from_millis(200)));
                let mut client = <$client>::connect_to(server.addr, config(), options)
                    .await
                    .unwrap();
                let err = client
                    .send(envelope(&["b@example.org"]), b"x\r\n")
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, Error::Smtp(smtp_tokio::smtp_proto::Error::Timeout { stage: Stage::Mail })),
                    "{err:?}"
                );
                assert!(!client.is_usable());
                assert!(matches!(client.noop().await, Err(Error::Poisoned)));
                drop(client);
                server.join();
            });
        }

        #[test]
        fn eof_mid_reply_is_connection_closed() {
            let server = common::spawn(|c| {
                c.send("220 localhost\r\n");
                c.line();
                c.send("250-localhost\r\n250-PIPEL");
            });
            $run(async move {
                let err = <$client>::connect_to(server.addr, config(), options())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        err.smtp(),
                        Some(smtp_proto::Error::ConnectionClosed { stage: Stage::Ehlo })
                    ),
                    "{err:?}"
                );
                assert!(err.is_transient());
                server.join();
            });
        }

        #[test]
        fn a_dropped_send_poisons_the_client() {
            let server = common::spawn(|c| {
                common::smtp(
                    c,
                    Script {
                        stall_on: Some("."),
                        ..Script::default()
                    },
                )
            });
            $run(async move {
                let mut client = <$client>::connect_to(server.addr, config(), options())
                    .await
                    .unwrap();
                let outcome = futures_lite::future::or(
                    async { Some(client.send(envelope(&["b@example.org"]), b"x\r\n").await) },
                    async {
                        $sleep(Duration::from_millis(300)).await;
                        None
                    },
                )
                .await;
                assert!(outcome.is_none(), "the server never answers the final dot");
                assert!(!client.is_usable());
                assert!(matches!(client.noop().await, Err(Error::Poisoned)));
                assert!(matches!(
                    client.send(envelope(&["b@example.org"]), b"y\r\n").await,
                    Err(Error::Poisoned)
                ));
                assert!(matches!(client.quit().await, Err(Error::Poisoned)));
                let received = server.join();
                // Nothing after the message: no NOOP or second MAIL in the middle of it.
                assert_eq!(received.commands.last().map(String::as_str), Some("DATA"));
                assert!(received.trailing.is_empty(), "{:?}", received.trailing);
            });
        }

        #[test]
        fn a_dropped_batch_poisons_the_client() {
            let server = common::spawn(|c| {
                common::smtp(
                    c,
                    Script {
                        extensions: &["PIPELINING"],
                        stall_on: Some("."),
                    },
                )
            });
            $run(async move {
                let mut client = <$client>::connect_to(server.addr, config(), options())
                    .await
                    .unwrap();
                let bodies: [&[u8]; 3] = [b"one\r\n", b"two\r\n", b"three\r\n"];
                let mut results = Vec::new();
                let send_each = client.send_each(
                    bodies.map(|body| (envelope(&["b@example.org"]), body)),
                    |result| results.push(result),
                );
                common::assert_send(&send_each);
                let outcome = futures_lite::future::or(async { Some(send_each.await) }, async {
                    $sleep(Duration::from_millis(300)).await;
                    None
                })
                .await;
                assert!(
                    outcome.is_none(),
                    "the server never answers the first message"
                );
                assert!(results.is_empty(), "{results:?}");
                assert!(!client.is_usable());
                let again = client.send_all([(envelope(&["b@example.org"]), &b"four\r\n"[..])]);
                common::assert_send(&again);
                assert!(matches!(again.await.as_slice(), [Err(Error::Poisoned)]));
                // That call closed the connection: the cancelled one could not.
                let received = server.join();
                assert!(received.closed, "the connection is still open");
                assert!(matches!(client.quit().await, Err(Error::Poisoned)));
                assert_eq!(received.messages, [b"one\r\n".to_vec()]);
                // The second message's commands rode behind the first; then
                // nothing: no body, no third message, no QUIT.
                assert_eq!(
                    String::from_utf8_lossy(&received.trailing),
                    "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
                );
            });
        }

        #[test]
        fn plaintext_after_the_starttls_220_is_refused() {
            let server = common::spawn(|c| {
                c.send("220 localhost\r\n");
                c.line();
                c.send("250-localhost\r\n250 STARTTLS\r\n");
                c.line();
                c.send("220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n");
                c.drain();
            });
            $run(async move {
                let config = Config::new("localhost").tls(TlsPolicy::Required);
                let err = <$client>::connect_to(server.addr, config, options())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err.smtp(), Some(smtp_proto::Error::StartTlsInjection)),
                    "{err:?}"
                );
                assert!(err.is_security());
                let received = server.join();
                // No TLS ClientHello (or anything else) followed STARTTLS.
                assert_eq!(received.commands, ["EHLO localhost", "STARTTLS"]);
                assert!(received.trailing.is_empty(), "{:?}", received.trailing);
            });
        }

        #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
        #[test]
        fn without_a_crypto_provider_tls_is_a_configuration_error() {
            let server = common::spawn(|c| {
                c.send("220 localhost\r\n");
                c.line();
                c.send("250-localhost\r\n250 STARTTLS\r\n");
                c.line();
                c.send("220 go ahead\r\n");
                c.drain();
            });
            $run(async move {
                let config = Config::new("localhost").tls(TlsPolicy::Required);
                let err = <$client>::connect_to(server.addr, config, options())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&err, Error::Smtp(smtp_tokio::smtp_proto::Error::TlsConfig { reason }) if reason.contains("provider")),
                    "{err:?}"
                );
            });
        }

        // Needs a crypto provider for the default TLS configuration; without
        // one (the `rustls` feature alone, no process-wide provider) TLS is
        // a configuration error instead, checked below.
        #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
        #[test]
        fn a_stalled_tls_handshake_times_out() {
            let server = common::spawn(|c| {
                c.send("220 localhost\r\n");
                c.line();
                c.send("250-localhost\r\n250 STARTTLS\r\n");
                c.line();
                c.send("220 go ahead\r\n");
                c.drain();
            });
            $run(async move {
                let config = Config::new("localhost").tls(TlsPolicy::Required);
                let options = options().timeouts(
                    Timeouts::uniform(Duration::from_secs(10))
                        .with(Stage::TlsHandshake, Duration::from_millis(200)),
                );
                let err = <$client>::connect_to(server.addr, config, options)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::Smtp(smtp_tokio::smtp_proto::Error::Timeout {
                            stage: Stage::TlsHandshake
                        })
                    ),
                    "{err:?}"
                );
                drop(err);
                let received = server.join();
                // The client hello went out over the socket, not before STARTTLS's 220.
                assert_eq!(received.trailing.first(), Some(&0x16));
            });
        }

        #[test]
        fn starttls_missing_fails_before_mail() {
            let server = common::spawn(|c| common::smtp(c, Script::default()));
            $run(async move {
                let config = Config::new("localhost").tls(TlsPolicy::Required);
                let err = <$client>::connect_to(server.addr, config, options())
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        err.smtp(),
                        Some(smtp_proto::Error::TlsRequired { reply: None })
                    ),
                    "{err:?}"
                );
                assert!(err.is_security());
                let received = server.join();
                assert_eq!(received.commands, ["EHLO localhost", "QUIT"]);
            });
        }

        #[test]
        fn connect_resolves_a_host_name() {
            let server = common::spawn(|c| common::smtp(c, Script::default()));
            $run(async move {
                let client =
                    <$client>::connect("localhost", server.addr.port(), config(), options()).await;
                // "localhost" may resolve to ::1 first; the client tries each address.
                let client = client.unwrap();
                client.quit().await.unwrap();
                server.join();
            });
        }

        #[test]
        fn connect_refused_is_a_connect_error() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            $run(async move {
                let err = <$client>::connect_to(addr, config(), options())
                    .await
                    .unwrap_err();
                assert!(matches!(err, Error::Connect { .. }), "{err:?}");
                assert!(err.is_transient());
            });
        }
    };
}
