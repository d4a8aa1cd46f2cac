//! TLS through the adapter: STARTTLS then AUTH, implicit TLS, and a
//! certificate for the wrong name, against a rustls server on a std thread.
//! (The shared scripted server crate covers the full TLS matrix.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

struct Pki {
    cert: CertificateDer<'static>,
    server: Arc<ServerConfig>,
}

fn pki(name: &str) -> Pki {
    let key = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], private)
            .unwrap();
    Pki {
        cert,
        server: Arc::new(server),
    }
}

/// One line from `r`, without CRLF; `None` at EOF or on error.
fn line<R: BufRead>(r: &mut R) -> Option<String> {
    let mut buf = String::new();
    match r.read_line(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(buf.trim_end().to_owned()),
    }
}

/// The dialogue over TLS after the greeting/STARTTLS: EHLO with AUTH, AUTH,
/// one message, QUIT. Returns the commands.
fn serve_tls(tls: StreamOwned<ServerConnection, TcpStream>, greet: bool) -> Vec<String> {
    let mut conn = BufReader::new(tls);
    let mut commands = Vec::new();
    let send = |conn: &mut BufReader<StreamOwned<ServerConnection, TcpStream>>, text: &str| {
        let _ = conn.get_mut().write_all(text.as_bytes());
        let _ = conn.get_mut().flush();
    };
    if greet {
        send(&mut conn, "220 localhost ESMTP over TLS\r\n");
    }
    while let Some(l) = line(&mut conn) {
        commands.push(l.clone());
        let verb = l.split(' ').next().unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => send(&mut conn, "250-localhost\r\n250 AUTH PLAIN LOGIN\r\n"),
            "AUTH" => send(&mut conn, "235 2.7.0 ok\r\n"),
            "MAIL" | "RCPT" => send(&mut conn, "250 ok\r\n"),
            "DATA" => {
                send(&mut conn, "354 go\r\n");
                while let Some(l) = line(&mut conn) {
                    if l == "." {
                        break;
                    }
                }
                send(&mut conn, "250 queued\r\n");
            }
            "QUIT" => {
                send(&mut conn, "221 bye\r\n");
                break;
            }
            _ => send(&mut conn, "502 no\r\n"),
        }
    }
    commands
}

struct Server {
    addr: SocketAddr,
    handle: JoinHandle<Vec<String>>,
}

impl Server {
    fn join(self) -> Vec<String> {
        self.handle.join().expect("server panicked")
    }
}

/// A server that offers STARTTLS (`implicit == false`) or speaks TLS from
/// the first byte.
fn spawn(server: Arc<ServerConfig>, implicit: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut commands = Vec::new();
        if !implicit {
            tcp.write_all(b"220 localhost ESMTP\r\n").unwrap();
            let mut reader = BufReader::new(tcp.try_clone().unwrap());
            for reply in ["250-localhost\r\n250 STARTTLS\r\n", "220 go ahead\r\n"] {
                let Some(l) = line(&mut reader) else {
                    return commands;
                };
                commands.push(l);
                tcp.write_all(reply.as_bytes()).unwrap();
            }
            // The client speaks first after the 220: nothing can be buffered.
            assert!(reader.buffer().is_empty());
        }
        let mut tls = StreamOwned::new(ServerConnection::new(server).unwrap(), tcp);
        // Drive the handshake; a failure (wrong name) ends the dialogue here.
        while tls.conn.is_handshaking() {
            if tls.conn.complete_io(&mut tls.sock).is_err() {
                let mut rest = Vec::new();
                let _ = tls.sock.read_to_end(&mut rest);
                return commands;
            }
        }
        commands.extend(serve_tls(tls, implicit));
        commands
    });
    Server { addr, handle }
}

macro_rules! tls_scenarios {
    ($client:ty, $run:path) => {
        use super::*;
        use smtp_tokio::smtp_proto::{
            self, Address, Config, Credentials, Envelope, Mechanism, TlsPolicy,
        };
        use smtp_tokio::tls::{client_config, TlsRoots};
        use smtp_tokio::{Error, Options};

        fn options(pki: &Pki) -> Options {
            let tls = client_config(&TlsRoots::Certificates(vec![pki.cert.clone()])).unwrap();
            Options::default().tls(tls)
        }

        fn envelope() -> Envelope {
            Envelope::new(
                Some(Address::new("a@example.com").unwrap()),
                [Address::new("b@example.org").unwrap()],
            )
            .unwrap()
        }

        #[test]
        fn starttls_then_auth_plain_then_a_message() {
            let pki = pki("localhost");
            let server = spawn(Arc::clone(&pki.server), false);
            let options = options(&pki);
            $run(async move {
                let config = Config::new("localhost")
                    .tls(TlsPolicy::Required)
                    .credentials(Credentials::password("me", "secret"));
                let mut client = <$client>::connect_to(server.addr, config, options)
                    .await
                    .unwrap();
                assert!(client.session().is_tls());
                assert_eq!(client.session().auth_mechanism(), Some(&Mechanism::Plain));
                client.send(envelope(), b"hello\r\n").await.unwrap();
                client.quit().await.unwrap();
                let commands = server.join();
                assert_eq!(
                    commands[..3],
                    ["EHLO localhost", "STARTTLS", "EHLO localhost"]
                );
                assert!(commands[3].starts_with("AUTH PLAIN "));
                assert_eq!(commands.last().map(String::as_str), Some("QUIT"));
            });
        }

        #[test]
        fn implicit_tls() {
            let pki = pki("localhost");
            let server = spawn(Arc::clone(&pki.server), true);
            let options = options(&pki);
            $run(async move {
                let config = Config::new("localhost").tls(TlsPolicy::Implicit);
                let mut client = <$client>::connect_to(server.addr, config, options)
                    .await
                    .unwrap();
                assert!(client.session().is_tls());
                client.send(envelope(), b"hello\r\n").await.unwrap();
                client.noop().await.unwrap_err(); // this server does not know NOOP: 502
                client.quit().await.unwrap();
                let commands = server.join();
                assert_eq!(commands[0], "EHLO localhost");
            });
        }

        #[test]
        fn a_certificate_for_another_name_is_refused_before_any_credential() {
            let pki = pki("other.example");
            let server = spawn(Arc::clone(&pki.server), false);
            let options = options(&pki);
            $run(async move {
                let config = Config::new("localhost")
                    .tls(TlsPolicy::Required)
                    .credentials(Credentials::password("me", "secret"));
                let err = <$client>::connect_to(server.addr, config, options)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, Error::Tls(rustls::Error::InvalidCertificate(_))),
                    "{err:?}"
                );
                assert!(err.is_security());
                assert!(!err.is_transient());
                let _ = smtp_proto::Stage::TlsHandshake;
                let commands = server.join();
                assert_eq!(commands, ["EHLO localhost", "STARTTLS"]);
                drop::<Error>(err);
            });
        }
    };
}

#[cfg(feature = "tokio")]
mod tokio_runtime {
    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }
    tls_scenarios!(smtp_tokio::tokio::Client, run);
}

#[cfg(feature = "async-std")]
mod async_std_executor {
    use async_std::task::block_on;
    tls_scenarios!(smtp_tokio::futures::Client, block_on);
}

#[cfg(feature = "async-std")]
mod smol_executor {
    use smol::block_on;
    tls_scenarios!(smtp_tokio::futures::Client, block_on);
}
