//! TLS and AUTH: implicit TLS, STARTTLS + LOGIN against the Exchange-like
//! server, AUTH PLAIN, XOAUTH2, the mechanism learnt after TLS, and
//! certificates refused before any credential.

use std::sync::Arc;

use proto::{Config, Credentials, TlsPolicy};
use smtp_blocking::smtp_proto as proto;
use smtp_tests::{
    exchange_online, self_signed, ExchangeOptions, ScriptedServer, ServerCert, TestPki,
};

use crate::common::*;
use crate::harness::{Adapter, Opts};

fn exchange(cert: &ServerCert) -> ExchangeOptions {
    ExchangeOptions::new(cert.server_config().unwrap()).user(USER, PASSWORD)
}

/// Implicit TLS (port 465 style): nothing in plaintext, a message, NOOP, QUIT.
pub fn implicit_tls(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let (handler, store) = exchange_online(exchange(&cert).implicit_tls(true));
    let server = ScriptedServer::start(handler).unwrap();

    let config = config_password().tls(TlsPolicy::Implicit);
    let mut client = connect_ok(adapter, &server, config, &opts(&pki));
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism(), Some(proto::Mechanism::Login));
    client.send(envelope(), b"hello\r\n").unwrap();
    client.noop().unwrap();
    client.quit().unwrap();

    let messages = store.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].data, b"hello\r\n");
    assert!(messages[0].tls);
    let received = finished(&server, 1);
    assert!(
        received[0].plain.is_empty(),
        "{:?}",
        received[0].plain_text()
    );
    let tls = lines(&received[0].tls);
    assert!(tls[0].starts_with("EHLO "), "{tls:?}");
    assert_eq!(tls[1], "AUTH LOGIN", "{tls:?}");
    for command in [
        "MAIL FROM:<me@example.com> SIZE=7",
        "RCPT TO:<you@example.org>",
        // The Exchange-like server offers CHUNKING and the size is known.
        "BDAT 7 LAST",
        "NOOP",
    ] {
        assert!(tls.iter().any(|l| l == command), "{command}: {tls:?}");
    }
    assert_eq!(
        verbs(&received[0].tls).last().map(String::as_str),
        Some("QUIT")
    );
}

/// The Microsoft 365 flow: plaintext EHLO, STARTTLS, EHLO, AUTH LOGIN (the
/// only password mechanism offered), a dot-stuffed message stored byte-exact.
pub fn starttls_login_exchange(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let (handler, store) = exchange_online(exchange(&cert));
    let server = ScriptedServer::start(handler).unwrap();

    let mut client = connect_ok(adapter, &server, config_password(), &opts(&pki));
    assert!(client.is_tls());
    assert_eq!(client.auth_mechanism(), Some(proto::Mechanism::Login));
    assert!(client.capabilities().pipelining());
    assert!(client
        .capabilities()
        .supports_auth(&proto::Mechanism::XOAuth2));
    let body = b"Subject: hi\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n";
    let delivery = client.send(envelope(), body).unwrap();
    assert!(delivery.recipients()[0].accepted());
    assert!(delivery
        .reply()
        .to_string()
        .contains("Queued mail for delivery"));
    client.quit().unwrap();

    let messages = store.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].data, body);
    assert!(messages[0].tls);
    assert_eq!(messages[0].from, USER);
    assert_eq!(messages[0].to, ["you@example.org"]);
    assert_eq!(
        messages[0].auth,
        Some(("LOGIN".to_owned(), USER.to_owned()))
    );
    let received = finished(&server, 1);
    assert_eq!(verbs(&received[0].plain), ["EHLO", "STARTTLS"]);
    let tls = lines(&received[0].tls);
    assert!(tls[0].starts_with("EHLO "), "{tls:?}");
    assert_eq!(tls[1], "AUTH LOGIN");
    assert_eq!(tls.last().map(String::as_str), Some("QUIT"));
}

/// AUTH PLAIN when the server offers it after STARTTLS (one line, initial
/// response).
pub fn auth_plain(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["STARTTLS", "AUTH PLAIN LOGIN"])?;
        peer.expect("STARTTLS")?;
        peer.reply("220 go ahead")?;
        peer.start_tls(Arc::clone(&tls))?;
        ehlo(peer, &["AUTH PLAIN LOGIN"])?;
        peer.expect("AUTH PLAIN ")?;
        peer.reply("235 2.7.0 OK")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let client = connect_ok(adapter, &server, config_password(), &opts(&pki));
    assert_eq!(client.auth_mechanism(), Some(proto::Mechanism::Plain));
    client.quit().unwrap();
    let received = finished(&server, 1);
    assert_eq!(server.errors(), vec![None]);
    assert_eq!(verbs(&received[0].plain), ["EHLO", "STARTTLS"]);
    // "\0me@example.com\0hunter2"
    assert_eq!(
        lines(&received[0].tls)[1],
        "AUTH PLAIN AG1lQGV4YW1wbGUuY29tAGh1bnRlcjI="
    );
}

/// XOAUTH2 with a bearer token against the Exchange-like server.
pub fn xoauth2_token(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let opts_ex = ExchangeOptions::new(cert.server_config().unwrap()).token(USER, "ya29.token");
    let (handler, store) = exchange_online(opts_ex);
    let server = ScriptedServer::start(handler).unwrap();

    let config = Config::new(NAME).credentials(Credentials::token(USER, "ya29.token"));
    let mut client = connect_ok(adapter, &server, config, &opts(&pki));
    assert_eq!(client.auth_mechanism(), Some(proto::Mechanism::XOAuth2));
    client
        .send(envelope(), b"Subject: token\r\n\r\nhi\r\n")
        .unwrap();
    client.quit().unwrap();

    let messages = store.wait_for_messages(1, WAIT);
    assert_eq!(messages[0].data, b"Subject: token\r\n\r\nhi\r\n");
    assert_eq!(
        messages[0].auth,
        Some(("XOAUTH2".to_owned(), USER.to_owned()))
    );
    let attempts = store.auth_attempts();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].success && attempts[0].tls);
    let received = finished(&server, 1);
    assert!(!received[0].plain_text().contains("AUTH"));
}

/// Plaintext EHLO offers `AUTH PLAIN`, the EHLO after TLS only `AUTH LOGIN`:
/// the capabilities learnt before TLS are forgotten, LOGIN is used.
pub fn auth_mechanism_learnt_after_tls(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let tls = pki.leaf(&[NAME]).unwrap().server_config().unwrap();
    let server = ScriptedServer::start_fn(move |peer| {
        peer.reply("220 mail.test ESMTP")?;
        ehlo(peer, &["STARTTLS", "AUTH PLAIN"])?;
        peer.expect("STARTTLS")?;
        peer.reply("220 go ahead")?;
        peer.start_tls(Arc::clone(&tls))?;
        ehlo(peer, &["AUTH LOGIN"])?;
        peer.expect("AUTH LOGIN")?;
        peer.reply("334 VXNlcm5hbWU6")?;
        peer.line()?;
        peer.reply("334 UGFzc3dvcmQ6")?;
        peer.line()?;
        peer.reply("235 2.7.0 OK")?;
        peer.expect("QUIT")?;
        peer.reply("221 bye")
    })
    .unwrap();
    let client = connect_ok(adapter, &server, config_password(), &opts(&pki));
    assert_eq!(client.auth_mechanism(), Some(proto::Mechanism::Login));
    client.quit().unwrap();
    let received = finished(&server, 1);
    assert_eq!(server.errors(), vec![None]);
    let tls = lines(&received[0].tls);
    assert_eq!(tls[1], "AUTH LOGIN", "{tls:?}");
    assert_eq!(tls[2], "bWVAZXhhbXBsZS5jb20=");
    assert_eq!(tls[3], "aHVudGVyMg==");
    assert!(!received[0].tls_text().contains("AUTH PLAIN"));
}

/// A TLS failure before any credential: the error is a rustls one, the
/// server saw no AUTH (and over STARTTLS nothing after STARTTLS), no TLS
/// application data, no AUTH attempt.
fn refused(adapter: &dyn Adapter, cert: ServerCert, implicit: bool, opts: Opts) -> rustls::Error {
    let (handler, store) = exchange_online(exchange(&cert).implicit_tls(implicit));
    let server = ScriptedServer::start(handler).unwrap();
    let config = if implicit {
        config_password().tls(TlsPolicy::Implicit)
    } else {
        config_password()
    };
    let err = connect_err(adapter, &server, config, &opts);
    assert!(err.security, "{err:?}");
    assert!(!err.transient, "{err:?}");
    let received = finished(&server, 1);
    assert_nothing_sensitive(&received[0]);
    assert!(received[0].tls.is_empty(), "{:?}", received[0].tls_text());
    if implicit {
        assert!(!received[0].plain_text().contains("EHLO"));
    } else {
        assert_eq!(verbs(&received[0].plain)[..2], ["EHLO", "STARTTLS"]);
        assert!(
            received[0].plain.windows(10).any(|w| w == b"STARTTLS\r\n"),
            "{:?}",
            received[0].plain_text()
        );
    }
    assert!(store.auth_attempts().is_empty());
    assert!(store.messages().is_empty());
    match err.tls() {
        Some(e) => e.clone(),
        None => panic!("expected a TLS error, got {err:?}"),
    }
}

/// A certificate for another name (STARTTLS).
pub fn certificate_for_another_name(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["other.test"]).unwrap();
    let err = refused(adapter, cert, false, opts(&pki));
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{err:?}"
    );
}

/// A certificate for another name (implicit TLS).
pub fn certificate_for_another_name_implicit(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&["other.test"]).unwrap();
    let err = refused(adapter, cert, true, opts(&pki));
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

/// An expired certificate for the right name, from the trusted CA.
pub fn expired_certificate(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.expired_leaf(&[NAME]).unwrap();
    let err = refused(adapter, cert, false, opts(&pki));
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
}

/// A self-signed certificate for the right name, not in the trust roots.
pub fn self_signed_certificate(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = self_signed(&[NAME]).unwrap();
    let err = refused(adapter, cert, false, opts(&pki));
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
}

/// Without a TLS configuration the adapter trusts the bundled Mozilla roots,
/// which do not know the test CA.
pub fn default_roots_refuse_a_private_ca(adapter: &dyn Adapter) {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let err = refused(adapter, cert, true, Opts::new());
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}
