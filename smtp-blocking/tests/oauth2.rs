//! `oauth2::TokenProvider` against a real OAuth2 server (oauth2-mock-server,
//! `bash tests/setup.sh`): client credentials end to end to the
//! Exchange-like server over TLS, which accepts only the tokens that server
//! issued; threads sharing one request; the cache; rotation; failures.
#![cfg(feature = "oauth2")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use smtp_blocking::oauth2::{Grant, OAuth2Error, TokenEndpoint, TokenProvider};
use smtp_blocking::{Address, Client, Config, Envelope, Options};
use smtp_tests::peers::free_port;
use smtp_tests::{
    exchange_online, ExchangeOptions, OAuth2Mock, OAuth2MockOptions, ScriptedServer, TestPki,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NAME: &str = "mail.test";
const USER: &str = "sender@contoso.test";

fn issued(mock: &OAuth2Mock) -> Vec<String> {
    mock.requests()
        .unwrap()
        .iter()
        .map(|r| r["issued_access_token"].clone())
        .collect()
}

fn provider(mock: &OAuth2Mock) -> TokenProvider {
    TokenProvider::new(
        TokenEndpoint::new(mock.token_url()).unwrap(),
        Grant::client_credentials("app", "cs-secret", TokenEndpoint::MICROSOFT_SCOPE),
    )
    .unwrap()
}

#[test]
fn client_credentials_end_to_end_and_one_request_for_many_threads() {
    let pki = TestPki::new().unwrap();
    let mock = Arc::new(OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap());
    let cert = pki.leaf(&[NAME]).unwrap();
    let check = mock.clone();
    let opts = ExchangeOptions::new(cert.server_config().unwrap())
        .verify_token(move |user, t| user == USER && issued(&check).iter().any(|i| i == t));
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let tokens = Arc::new(provider(&mock));

    // Eight threads at once, each connecting with the provider's credentials.
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let tokens = tokens.clone();
            let tls = pki.client_config().unwrap();
            let addr = server.addr();
            std::thread::spawn(move || {
                let config = Config::new(NAME).credentials(tokens.credentials(USER).unwrap());
                let mut client = Client::connect_to(addr, config, Options::new().tls(tls)).unwrap();
                let envelope = Envelope::new(
                    Some(Address::new(USER).unwrap()),
                    [Address::new("you@example.org").unwrap()],
                )
                .unwrap();
                client
                    .send(envelope, format!("Subject: {n}\r\n\r\nx\r\n").as_bytes())
                    .unwrap();
                client.quit().unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(mock.requests().unwrap().len(), 1);
    assert_eq!(tokens.requests(), 1);
    assert_eq!(store.messages().len(), 8);
    assert!(store
        .auth_attempts()
        .iter()
        .all(|a| a.success && a.mechanism == "XOAUTH2" && a.tls));
    let debug = format!("{tokens:?}");
    assert!(!debug.contains("cs-secret") && !debug.contains(&issued(&mock)[0]));
}

#[test]
fn a_due_token_is_renewed_and_a_rotated_refresh_token_handed_back() {
    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        expires_in: Some(Duration::from_secs(2)),
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let hook = rotated.clone();
    let tokens = TokenProvider::builder(
        TokenEndpoint::new(mock.token_url()).unwrap(),
        Grant::refresh_token("app", "rt-0", "https://mail.google.com/").with_client_secret("cs"),
    )
    .on_refresh_token(move |new| hook.lock().unwrap().push(new.expose().to_owned()))
    .build()
    .unwrap();
    let first = tokens.token().unwrap();
    assert_eq!(tokens.token().unwrap(), first, "cached");
    std::thread::sleep(Duration::from_millis(1200));
    let second = tokens.token().unwrap();
    assert_ne!(second, first, "renewed once due");
    let requests = mock.requests().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["refresh_token"], "rt-0");
    assert_eq!(requests[0]["client_secret"], "cs");
    assert_eq!(
        requests[1]["refresh_token"],
        requests[0]["issued_refresh_token"]
    );
    assert_eq!(
        *rotated.lock().unwrap(),
        vec![
            requests[0]["issued_refresh_token"].clone(),
            requests[1]["issued_refresh_token"].clone()
        ]
    );
    assert_eq!(
        tokens.refresh_token().unwrap().expose(),
        requests[1]["issued_refresh_token"]
    );
}

#[test]
fn failures_are_oauth2_errors_without_secrets() {
    let down = TokenProvider::new(
        TokenEndpoint::new(format!("http://127.0.0.1:{}/token", free_port().unwrap())).unwrap(),
        Grant::client_credentials("app", "cs-secret", "s"),
    )
    .unwrap();
    let err = down.token().unwrap_err();
    assert!(matches!(err, OAuth2Error::Transport { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("cs-secret"));

    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        error: Some(("invalid_client".into(), "bad secret".into())),
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    let err = provider(&mock).token().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the OAuth2 token endpoint refused (HTTP 400): invalid_client: bad secret"
    );
    // The guard.
    assert!(matches!(
        TokenEndpoint::new("http://login.example.com/token"),
        Err(OAuth2Error::InsecureEndpoint { .. })
    ));
}

/// Sends with `token` to an Exchange-like server that checks JWTs against
/// `jwks`: the error, if any, and what the server answered.
fn send_with_jwt(
    pki: &TestPki,
    jwks: &str,
    token: &str,
) -> (Result<(), smtp_blocking::Error>, String) {
    let cert = pki.leaf(&[NAME]).unwrap();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).verify_jwt(jwks);
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let replies = Arc::new(Mutex::new(String::new()));
    let record = replies.clone();
    let options = Options::new()
        .tls(pki.client_config().unwrap())
        .transcript(move |line| {
            record.lock().unwrap().push_str(&format!("{line}\n"));
        });
    let config = Config::new(NAME).credentials(smtp_blocking::Credentials::token(USER, token));
    let result = Client::connect_to(server.addr(), config, options).and_then(|mut client| {
        let envelope = Envelope::new(
            Some(Address::new(USER).unwrap()),
            [Address::new("you@example.org").unwrap()],
        )
        .unwrap();
        client.send(envelope, b"Subject: jwt\r\n\r\nx\r\n")?;
        client.quit()
    });
    let accepted = store.auth_attempts().iter().any(|a| a.success);
    assert_eq!(accepted, result.is_ok());
    let transcript = replies.lock().unwrap().clone();
    (result, transcript)
}

#[test]
fn the_exchange_like_server_checks_the_jwt_signature_and_expiry() {
    let pki = TestPki::new().unwrap();
    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        expires_in: Some(Duration::from_secs(2)),
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    let jwks = mock.jwks().unwrap();
    assert!(jwks.contains("\"kty\":\"RSA\""), "{jwks}");
    let token = provider(&mock).token().unwrap().expose().to_owned();

    // Signed by the mock's key, not expired: accepted.
    let (result, _) = send_with_jwt(&pki, &jwks, &token);
    result.unwrap();

    let refused = |result: Result<(), smtp_blocking::Error>, transcript: &str| {
        let err = result.unwrap_err();
        assert!(err.to_string().contains("535"), "{err}");
        assert!(
            transcript.contains("5.7.3 Authentication unsuccessful"),
            "{transcript}"
        );
        // Exchange's error challenge came first (base64 of its JSON).
        assert!(
            transcript.contains("S: 334 eyJzdGF0dXMiOiI0MDEi"),
            "{transcript}"
        );
        // The token itself is never in the transcript.
        assert!(!transcript.contains(&token[..40]));
    };
    // A forged signature.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", sig.chars().rev().collect::<String>());
    let (result, transcript) = send_with_jwt(&pki, &jwks, &forged);
    refused(result, &transcript);
    // Another issuer's keys.
    let other = OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap();
    let (result, transcript) = send_with_jwt(&pki, &other.jwks().unwrap(), &token);
    refused(result, &transcript);
    // Expired.
    std::thread::sleep(Duration::from_millis(2100));
    let (result, transcript) = send_with_jwt(&pki, &jwks, &token);
    refused(result, &transcript);
}

/// The blocking pool with the provider as its credential provider: eight
/// threads open four connections at once, and one token request serves
/// them all.
#[test]
fn the_blocking_pool_asks_the_provider_per_connection_and_it_asks_the_endpoint_once() {
    use smtp_blocking::pool::{Connector, Pool, PoolOptions};
    let pki = TestPki::new().unwrap();
    let mock = Arc::new(OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap());
    let cert = pki.leaf(&[NAME]).unwrap();
    let check = mock.clone();
    let opts = ExchangeOptions::new(cert.server_config().unwrap())
        .verify_token(move |user, t| user == USER && issued(&check).iter().any(|i| i == t));
    let (handler, store) = exchange_online(opts);
    let server = ScriptedServer::start(handler).unwrap();
    let tokens = Arc::new(provider(&mock));
    let connector = Connector::to_addr(
        server.addr(),
        Config::new(NAME),
        Options::new().tls(pki.client_config().unwrap()),
    )
    .credential_provider(tokens.for_user(USER));
    let pool = Pool::new(connector, PoolOptions::new().max_size(4));
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let envelope = Envelope::new(
                    Some(Address::new(USER).unwrap()),
                    [Address::new("you@example.org").unwrap()],
                )
                .unwrap();
                pool.send(envelope, format!("Subject: {n}\r\n\r\nx\r\n").as_bytes())
                    .unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    pool.close();
    assert_eq!(store.messages().len(), 8);
    assert!(
        (1..=4).contains(&pool.status().opened),
        "{:?}",
        pool.status()
    );
    assert_eq!(mock.requests().unwrap().len(), 1);
    assert_eq!(tokens.requests(), 1);
}
