//! `Client::open` and `Client::establish`, the TLS accessors, and
//! `tls::recording_client_config`, against a scripted loopback server with
//! real TLS (`smtp-tests`). What every adapter does is in the adapter
//! suite (`tests/tests/adapters`); these APIs are smtp-blocking's own.
#![cfg(feature = "rustls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smtp_blocking::rustls::{self, ProtocolVersion, ServerConfig};
use smtp_blocking::tls::{recording_client_config, TlsRoots};
use smtp_blocking::{Client, Config, Credentials, Error, Options, TlsPolicy};
use smtp_tests::{Peer, ScriptedServer, ServerCert, TestPki};
use std::io;
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "smtp.test.invalid";
const WAIT: Duration = Duration::from_secs(10);

/// Greeting, EHLO offering STARTTLS, STARTTLS, EHLO over TLS offering
/// `AUTH PLAIN`, AUTH answered with `auth`, then QUIT.
fn serve(peer: &mut Peer, tls: &Arc<ServerConfig>, auth: &str) -> io::Result<()> {
    peer.reply("220 mail.test ESMTP hello")?;
    peer.expect("EHLO")?;
    peer.reply("250-mail.test\n250-SIZE  1000\n250 STARTTLS")?;
    peer.expect("STARTTLS")?;
    peer.reply("220 go ahead")?;
    peer.start_tls(Arc::clone(tls))?;
    peer.expect("EHLO")?;
    peer.reply("250-mail.test\n250 AUTH PLAIN")?;
    peer.expect("AUTH")?;
    peer.reply(auth)?;
    let _ = peer.expect("QUIT");
    peer.reply("221 bye")
}

fn server(cert: &ServerCert, tls12_only: bool, auth: &'static str) -> ScriptedServer {
    let tls = if tls12_only {
        Arc::new(
            ServerConfig::builder_with_provider(smtp_tests::certs::provider())
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(cert.chain.clone(), cert.key.clone_key())
                .unwrap(),
        )
    } else {
        cert.server_config().unwrap()
    };
    ScriptedServer::start_fn(move |peer| serve(peer, &tls, auth)).unwrap()
}

fn config() -> Config {
    Config::new(NAME).credentials(Credentials::password("me@example.com", "pw"))
}

fn lines(reply: Option<&smtp_blocking::smtp_proto::Reply>) -> Vec<String> {
    reply
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

#[test]
fn open_then_establish_reports_tls_parameters_and_the_presented_chain() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    for tls12_only in [false, true] {
        let server = server(&cert, tls12_only, "235 2.7.0 ok");
        let (tls, presented) =
            recording_client_config(&TlsRoots::Pem(pki.ca_pem().into())).unwrap();
        let mut client = Client::open_to(server.addr(), config(), Options::new().tls(tls)).unwrap();
        // Nothing read or written yet.
        assert!(client.session().greeting().is_none());
        assert!(client.tls_protocol_version().is_none());
        assert!(presented.chain().is_none());
        client.establish().unwrap();
        // Ready: establishing again does nothing.
        client.establish().unwrap();
        let want = if tls12_only {
            ProtocolVersion::TLSv1_2
        } else {
            ProtocolVersion::TLSv1_3
        };
        assert_eq!(client.tls_protocol_version(), Some(want));
        let suite = client.tls_cipher_suite().unwrap();
        assert_eq!(suite.version().version, want);
        assert!(suite.suite().as_str().unwrap().starts_with(if tls12_only {
            "TLS_ECDHE_"
        } else {
            "TLS13_"
        }));
        assert_eq!(
            client.tls_peer_certificates().unwrap(),
            cert.chain.as_slice()
        );
        assert_eq!(presented.chain().unwrap(), cert.chain);
        assert_eq!(presented.verified(), Some(true));
        let session = client.session();
        assert_eq!(
            session.greeting().unwrap().message(),
            b"mail.test ESMTP hello"
        );
        assert_eq!(
            lines(session.ehlo_reply_before_tls()),
            ["SIZE  1000", "STARTTLS"]
        );
        assert_eq!(lines(session.ehlo_reply()), ["AUTH PLAIN"]);
        assert_eq!(session.auth_reply().unwrap().code().get(), 235);
        client.quit().unwrap();
        assert!(server.wait_finished(1, WAIT));
        let sent = server.transcript(0).unwrap();
        assert_eq!(sent.plain_text(), "EHLO localhost\r\nSTARTTLS\r\n");
        assert!(sent.tls_text().starts_with("EHLO localhost\r\nAUTH PLAIN "));
        assert!(sent.tls_text().ends_with("QUIT\r\n"));
    }
}

#[test]
fn a_failed_establish_keeps_what_the_session_learnt() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let server = server(&cert, false, "535 5.7.8 no");
    let tls = pki.client_config().unwrap();
    let mut client = Client::open_to(server.addr(), config(), Options::new().tls(tls)).unwrap();
    let err = client.establish().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Smtp(smtp_blocking::smtp_proto::Error::AuthFailed { .. })
        ),
        "{err:?}"
    );
    // The failure again, and the session as far as it got.
    assert!(client.establish().is_err());
    assert!(client.is_tls());
    assert_eq!(
        client.tls_peer_certificates().unwrap(),
        cert.chain.as_slice()
    );
    assert_eq!(client.session().auth_reply().unwrap().code().get(), 535);
    assert_eq!(lines(client.session().ehlo_reply()), ["AUTH PLAIN"]);
    client.quit().unwrap();
}

#[test]
fn a_certificate_that_fails_verification_is_still_recorded() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["other.test.invalid"]).unwrap();
    let server = server(&cert, false, "235 ok");
    let (tls, presented) = recording_client_config(&TlsRoots::Pem(pki.ca_pem().into())).unwrap();
    let mut client = Client::open_to(server.addr(), config(), Options::new().tls(tls)).unwrap();
    let err = client.establish().unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert_eq!(presented.chain().unwrap(), cert.chain);
    assert_eq!(presented.verified(), Some(false));
    assert!(!client.is_tls() && client.tls_protocol_version().is_none());
    assert!(client.tls_peer_certificates().is_none());
    // What came before the handshake is still there.
    assert_eq!(client.session().greeting().unwrap().code().get(), 220);
    assert_eq!(
        lines(client.session().ehlo_reply()),
        ["SIZE  1000", "STARTTLS"]
    );
    client.quit().unwrap();
    assert!(server.wait_finished(1, WAIT));
    assert_eq!(
        server.transcript(0).unwrap().plain_text(),
        "EHLO localhost\r\nSTARTTLS\r\n"
    );
    assert!(server.transcript(0).unwrap().tls.is_empty());
}

#[test]
fn plaintext_has_no_tls_parameters_and_open_fails_like_connect() {
    let server = ScriptedServer::start_fn(|peer| {
        peer.reply("220 mail.test")?;
        peer.expect("EHLO")?;
        peer.reply("250 mail.test")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let mut client = Client::open_to(
        server.addr(),
        Config::new("127.0.0.1").tls(TlsPolicy::Disabled),
        Options::new(),
    )
    .unwrap();
    client.establish().unwrap();
    assert!(client.tls_protocol_version().is_none() && client.tls_cipher_suite().is_none());
    assert!(client.tls_peer_certificates().is_none());
    assert!(client
        .session()
        .ehlo_reply()
        .unwrap()
        .lines()
        .nth(1)
        .is_none());
    client.quit().unwrap();

    // Nothing listens there: the error `connect_to` gives.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = Config::new("127.0.0.1").tls(TlsPolicy::Disabled);
    let err = Client::open_to(closed, config, Options::new()).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}
