//! The blocking client against a tiny plaintext server on a loopback socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smtp_blocking::{
    Address, Client, Config, Credentials, Envelope, Error, Options, Stage, Timeouts, TlsPolicy,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The server side of one connection, recording every byte it received.
struct Peer {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    received: Vec<u8>,
}

impl Peer {
    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// One line from the client, CRLF included.
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        self.received.extend_from_slice(&line);
        String::from_utf8(line).unwrap()
    }

    /// Reads a command line and checks how it starts.
    fn expect(&mut self, prefix: &str) -> String {
        let line = self.line();
        assert!(
            line.starts_with(prefix),
            "expected {prefix:?}, got {line:?}"
        );
        line
    }

    /// The standard opening: greeting, EHLO with these extension lines.
    fn greet(&mut self, extensions: &[&str]) {
        self.send("220 localhost ESMTP test\r\n");
        self.expect("EHLO ");
        // Build "250-localhost\r\n250-EXT1\r\n250 EXT2\r\n".
        let mut lines = vec!["localhost".to_owned()];
        lines.extend(extensions.iter().map(|e| (*e).to_owned()));
        let last = lines.len() - 1;
        let text: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
            .collect();
        self.send(&text);
    }

    /// The raw DATA bytes up to and including the terminating `.CRLF`.
    fn data(&mut self) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(n > 0, "EOF inside DATA");
            data.extend_from_slice(&line);
            if line == b".\r\n" {
                break;
            }
        }
        self.received.extend_from_slice(&data);
        data
    }

    /// Waits for the client to close (or 5 s), keeping what it sent.
    fn drain(&mut self) {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        self.received.extend_from_slice(&rest);
    }
}

/// A one-connection server running `script`; the handle returns the bytes it received.
fn serve(script: impl FnOnce(&mut Peer) + Send + 'static) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut peer = Peer {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            received: Vec::new(),
        };
        script(&mut peer);
        peer.received
    });
    (addr, handle)
}

fn plain_config() -> Config {
    Config::new("localhost").tls(TlsPolicy::Disabled)
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new("me@example.com").unwrap()),
        [Address::new("you@example.org").unwrap()],
    )
    .unwrap()
}

/// The message as the server gets it back: dot-unstuffed, terminator removed.
fn unstuff(data: &[u8]) -> Vec<u8> {
    let data = data.strip_suffix(b".\r\n").expect("terminator");
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

fn standard_transaction(peer: &mut Peer) -> Vec<u8> {
    peer.expect("MAIL FROM:<me@example.com>");
    peer.send("250 2.1.0 OK\r\n");
    peer.expect("RCPT TO:<you@example.org>");
    peer.send("250 2.1.5 OK\r\n");
    peer.expect("DATA");
    peer.send("354 go ahead\r\n");
    let data = peer.data();
    peer.send("250 2.0.0 queued as 42\r\n");
    data
}

#[test]
fn sends_a_message_dot_stuffed_and_records_a_transcript() {
    let (addr, server) = serve(|peer| {
        peer.greet(&["SIZE 1000000", "8BITMIME"]);
        let data = standard_transaction(peer);
        assert_eq!(
            data,
            b"Subject: t\r\n\r\n..leading dot\r\nline\r\n...two\r\n.\r\n"
        );
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
        peer.drain();
    });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let options =
        Options::new().transcript(move |line| sink.lock().unwrap().push(line.to_string()));
    let mut client = Client::connect("127.0.0.1", addr.port(), plain_config(), options).unwrap();
    assert!(!client.is_tls());
    assert!(client.capabilities().size_limit().is_some());
    let body = b"Subject: t\n\n.leading dot\nline\r\n..two\n";
    let delivery = client.send(envelope(), body).unwrap();
    assert!(delivery.recipients()[0].accepted());
    assert_eq!(delivery.reply().code().get(), 250);
    client.quit().unwrap();

    let received = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(
        received.contains(&format!(
            "MAIL FROM:<me@example.com> SIZE={}\r\n",
            body.len()
        )),
        "{received}"
    );
    let lines = lines.lock().unwrap();
    for expected in [
        "S: 220 localhost ESMTP test",
        "C: RCPT TO:<you@example.org>",
        "S: 250 2.0.0 queued as 42",
        "C: QUIT",
        "S: 221 bye",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} not in {lines:#?}"
        );
    }
}

#[test]
fn a_stalled_server_times_out() {
    let (addr, server) = serve(|peer| {
        peer.send("220 localhost ESMTP\r\n");
        peer.expect("EHLO ");
        peer.drain(); // never answers
    });
    let options = Options::new().timeouts(Timeouts::uniform(Duration::from_millis(200)));
    let started = Instant::now();
    let err = Client::connect_to(addr, plain_config(), options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Smtp(smtp_blocking::smtp_proto::Error::Timeout { stage: Stage::Ehlo })
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(3));
    server.join().unwrap();
}

#[test]
fn a_trickling_server_times_out_too() {
    // A byte every 100 ms never completes the greeting: the whole reply must
    // arrive within the stage's timeout, not each byte.
    let (addr, server) = serve(|peer| {
        for b in "220 localhost ESMTP this is a very slow greeting".bytes() {
            if peer.writer.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let options = Options::new().timeouts(Timeouts::uniform(Duration::from_millis(500)));
    let started = Instant::now();
    let err = Client::connect_to(addr, plain_config(), options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Smtp(smtp_blocking::smtp_proto::Error::Timeout {
                stage: Stage::Greeting
            })
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    server.join().unwrap();
}

#[test]
fn a_stall_at_end_of_data_uses_its_own_timeout_and_poisons_the_client() {
    let (addr, server) = serve(|peer| {
        peer.greet(&[]);
        peer.expect("MAIL");
        peer.send("250 OK\r\n");
        peer.expect("RCPT");
        peer.send("250 OK\r\n");
        peer.expect("DATA");
        peer.send("354 go\r\n");
        peer.data();
        peer.drain(); // no verdict
    });
    let timeouts =
        Timeouts::uniform(Duration::from_secs(5)).with(Stage::DataEnd, Duration::from_millis(200));
    let options = Options::new().timeouts(timeouts);
    let mut client = Client::connect_to(addr, plain_config(), options).unwrap();
    let err = client.send(envelope(), b"hello\r\n").unwrap_err();
    // The final dot went out: the server may have the message.
    let Error::DeliveryUnknown { source } = err else {
        panic!("{err:?}");
    };
    assert!(
        matches!(
            *source,
            Error::Smtp(smtp_blocking::smtp_proto::Error::Timeout {
                stage: Stage::DataEnd
            })
        ),
        "{source:?}"
    );
    assert!(client.is_poisoned());
    assert!(matches!(client.noop(), Err(Error::Poisoned)));
    assert!(matches!(
        client.send(envelope(), b"x"),
        Err(Error::Poisoned)
    ));
    client.quit().unwrap(); // only closes
    server.join().unwrap();
}

#[test]
fn eof_in_the_middle_of_a_reply_is_connection_closed() {
    let (addr, server) = serve(|peer| {
        peer.send("220-localhost wel");
    });
    let err = Client::connect_to(addr, plain_config(), Options::new()).unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(smtp_blocking::smtp_proto::Error::ConnectionClosed {
                stage: Stage::Greeting
            })
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    server.join().unwrap();
}

/// A reader handing out irregular small pieces, so chunks split lines and dots.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    max_read: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.max_read = self.max_read.max(buf.len());
        self.step = (self.step * 7 + 3) % 9001;
        let n = self.data.len().min(buf.len()).min(self.step + 1);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_1_mib_body_streams_byte_exact() {
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
    let expected = body.clone();
    let (addr, server) = serve(move |peer| {
        peer.greet(&["PIPELINING"]);
        let data = standard_transaction(peer);
        assert_eq!(unstuff(&data).len(), expected.len());
        assert!(unstuff(&data) == expected, "the body changed on the way");
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
    });
    let mut client = Client::connect_to(addr, plain_config(), Options::new()).unwrap();
    let mut reader = Trickle {
        data: &body,
        step: 1,
        max_read: 0,
    };
    let delivery = client.send_reader(envelope(), &mut reader).unwrap();
    assert!(delivery.recipients()[0].accepted());
    assert!(reader.max_read <= 64 * 1024);
    client.quit().unwrap();
    server.join().unwrap();
}

#[test]
fn a_failing_body_reader_drops_the_connection_without_the_terminator() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            buf[..6].copy_from_slice(b"data\r\n");
            Ok(6)
        }
    }
    let (addr, server) = serve(|peer| {
        peer.greet(&[]);
        peer.expect("MAIL");
        peer.send("250 OK\r\n");
        peer.expect("RCPT");
        peer.send("250 OK\r\n");
        peer.expect("DATA");
        peer.send("354 go\r\n");
        peer.drain();
    });
    let mut client = Client::connect_to(addr, plain_config(), Options::new()).unwrap();
    let err = client.send_reader(envelope(), Failing(3)).unwrap_err();
    assert!(matches!(err, Error::BodyRead(_)), "{err:?}");
    assert!(client.is_poisoned());
    let received = server.join().unwrap();
    // Small bodies are written once a chunk's worth is pending, so the
    // abandoned body never left the client; above all, no terminator did.
    assert!(
        received.ends_with(b"DATA\r\n"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(!received.windows(5).any(|w| w == b"\r\n.\r\n"));
}

#[test]
fn refused_recipients_leave_the_client_ready() {
    let (addr, server) = serve(|peer| {
        peer.greet(&[]);
        peer.expect("MAIL");
        peer.send("250 OK\r\n");
        peer.expect("RCPT");
        peer.send("550 5.1.1 no such user\r\n");
        peer.expect("RSET");
        peer.send("250 OK\r\n");
        peer.expect("NOOP");
        peer.send("250 OK\r\n");
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
    });
    let mut client = Client::connect_to(addr, plain_config(), Options::new()).unwrap();
    let err = client.send(envelope(), b"hi\r\n").unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(smtp_blocking::smtp_proto::Error::RecipientsRejected { .. })
        ),
        "{err:?}"
    );
    assert!(!err.is_transient() && !client.is_poisoned());
    client.noop().unwrap();
    client.quit().unwrap();
    server.join().unwrap();
}

#[cfg(feature = "rustls")]
#[test]
fn tls_required_refuses_a_server_without_starttls() {
    let (addr, server) = serve(|peer| {
        peer.greet(&["AUTH PLAIN LOGIN"]);
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
        peer.drain();
    });
    let config = Config::new("localhost").credentials(Credentials::password("me", "secret"));
    let err = Client::connect_to(addr, config, Options::new()).unwrap_err();
    assert!(
        matches!(
            err.smtp(),
            Some(smtp_blocking::smtp_proto::Error::TlsRequired { reply: None })
        ),
        "{err:?}"
    );
    assert!(err.is_security());
    let received = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(
        !received.contains("AUTH") && !received.contains("MAIL"),
        "{received}"
    );
}

#[test]
fn auth_plain_to_localhost_is_redacted_in_the_transcript() {
    let (addr, server) = serve(|peer| {
        peer.greet(&["AUTH PLAIN LOGIN"]);
        let auth = peer.expect("AUTH PLAIN ");
        // "\0me\0secret"
        assert_eq!(auth, "AUTH PLAIN AG1lAHNlY3JldA==\r\n");
        peer.send("235 2.7.0 OK\r\n");
        peer.expect("QUIT");
        peer.send("221 bye\r\n");
    });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let options =
        Options::new().transcript(move |line| sink.lock().unwrap().push(line.to_string()));
    let config = plain_config().credentials(Credentials::password("me", "secret"));
    let client = Client::connect_to(addr, config, options).unwrap();
    assert_eq!(client.auth_mechanism().map(|m| m.as_str()), Some("PLAIN"));
    client.quit().unwrap();
    server.join().unwrap();
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l == "C: AUTH PLAIN <redacted>"),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("AG1lAHNlY3JldA")));
}

#[test]
fn connection_refused_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Client::connect_to(addr, plain_config(), Options::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Connect { address, .. } if *address == addr),
        "{err:?}"
    );
    assert!(err.is_transient());
    let err =
        Client::connect("localhost", addr.port(), plain_config(), Options::new()).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[test]
fn an_invalid_configuration_fails_before_connecting() {
    // Port 9 on loopback: nothing listens, but nothing is even tried.
    let err = Client::connect(
        "127.0.0.1",
        9,
        Config::new("bad name").tls(TlsPolicy::Disabled),
        Options::new(),
    )
    .unwrap_err();
    assert!(err.smtp().is_some_and(|e| e.is_input()), "{err:?}");
}

#[cfg(not(feature = "rustls"))]
#[test]
fn tls_policies_need_the_rustls_feature() {
    let err =
        Client::connect("127.0.0.1", 9, Config::new("localhost"), Options::new()).unwrap_err();
    assert!(matches!(err, Error::TlsConfig { .. }), "{err:?}");
}
