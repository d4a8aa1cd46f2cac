//! `oauth2::TokenProvider` against a real OAuth2 server (oauth2-mock-server,
//! `bash tests/setup.sh`) and the pool against the Exchange-like server,
//! which accepts only the tokens that server issued: one token request for
//! many connections opening at once, a fresh token once the cached one is
//! due, refresh-token rotation, and the endpoint down.
#![cfg(feature = "oauth2")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use smtp_tests::peers::free_port;
use smtp_tests::{
    exchange_online, ExchangeOptions, MailStore, OAuth2Mock, OAuth2MockOptions, ScriptedServer,
    TestPki,
};
use smtp_tokio::oauth2::{Grant, OAuth2Error, TokenEndpoint, TokenProvider};
use smtp_tokio::pool::{Connector, Pool, PoolOptions};
use smtp_tokio::{Address, Config, Envelope, Error, Options, Timeouts};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NAME: &str = "mail.test";
const USER: &str = "sender@contoso.test";
const CLIENT_SECRET: &str = "cs-secret";

fn envelope() -> Envelope {
    Envelope::new(
        Some(Address::new(USER).unwrap()),
        [Address::new("you@example.org").unwrap()],
    )
    .unwrap()
}

fn issued(mock: &OAuth2Mock) -> Vec<String> {
    mock.requests()
        .unwrap()
        .iter()
        .map(|r| r["issued_access_token"].clone())
        .collect()
}

/// The Exchange-like server accepting, for USER, only the access tokens the
/// mock issued, checked as JWTs against its keys and expiry; records the
/// tokens it was given.
fn exchange(
    pki: &TestPki,
    mock: Arc<OAuth2Mock>,
) -> (ScriptedServer, MailStore, Arc<Mutex<Vec<String>>>) {
    let cert = pki.leaf(&[NAME]).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    // Signed by the mock's keys (the JWKS), not expired, and issued.
    let keys = smtp_tests::jwt::Jwks::parse(&mock.jwks().unwrap()).unwrap();
    let opts = ExchangeOptions::new(cert.server_config().unwrap()).verify_token(move |user, t| {
        record.lock().unwrap().push(t.to_owned());
        user == USER && keys.verify(t).is_ok() && issued(&mock).iter().any(|i| i == t)
    });
    let (handler, store) = exchange_online(opts);
    (ScriptedServer::start(handler).unwrap(), store, seen)
}

fn client_credentials(mock: &OAuth2Mock) -> TokenProvider {
    TokenProvider::new(
        TokenEndpoint::new(mock.token_url()).unwrap(),
        Grant::client_credentials("app", CLIENT_SECRET, TokenEndpoint::MICROSOFT_SCOPE),
    )
    .unwrap()
}

fn pool(
    pki: &TestPki,
    server: &ScriptedServer,
    tokens: &TokenProvider,
    options: PoolOptions,
) -> Pool {
    let options_tls = Options::new()
        .tls(pki.client_config().unwrap())
        .timeouts(Timeouts::uniform(Duration::from_secs(10)));
    let connector = Connector::to_addr(server.addr(), Config::new(NAME), options_tls)
        .credential_provider(tokens.for_user(USER));
    Pool::new(connector, options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_connections_opening_at_once_make_one_token_request() {
    const N: usize = 8;
    let pki = TestPki::new().unwrap();
    let mock = Arc::new(OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap());
    let (server, store, seen) = exchange(&pki, mock.clone());
    let tokens = client_credentials(&mock);
    let pool = pool(&pki, &server, &tokens, PoolOptions::new().max_size(N));

    // N sends at once: the pool opens a connection for each one that finds
    // none idle, and each asks the provider for credentials.
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let pool = pool.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                pool.send(envelope(), format!("Subject: {n}\r\n\r\nx\r\n").as_bytes())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Connections opened for sends that another connection served first
    // may still be authenticating: wait until every one is back.
    for _ in 0..200 {
        if pool.status().in_use == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(pool.status().in_use, 0);
    let connections = server.connections();
    let requests = mock.requests().unwrap();
    println!(
        "{N} concurrent sends, {connections} connections, {} token request(s)",
        requests.len()
    );
    assert!(connections >= 2, "{connections} connections");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(tokens.requests(), 1);
    // Every connection authenticated with the one issued token.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), connections);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>(),
        [&requests[0]["issued_access_token"]].into_iter().collect()
    );
    assert!(store
        .auth_attempts()
        .iter()
        .all(|a| a.success && a.mechanism == "XOAUTH2"));
    assert_eq!(store.wait_for_messages(N, Duration::from_secs(10)).len(), N);

    // And N bare calls at once: still the cached token, no new request.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(mock.requests().unwrap().len(), 1);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_callers_of_an_empty_cache_share_one_request() {
    let mock = OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap();
    let tokens = client_credentials(&mock);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await.unwrap().expose().to_owned() })
        })
        .collect();
    let mut got = BTreeSet::new();
    for call in calls {
        got.insert(call.await.unwrap());
    }
    assert_eq!(mock.requests().unwrap().len(), 1);
    assert_eq!(got.into_iter().collect::<Vec<_>>(), issued(&mock));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_between_two_pooled_connections_is_renewed() {
    let pki = TestPki::new().unwrap();
    // Two seconds: renewed after one (half its lifetime before it expires).
    let mock = Arc::new(
        OAuth2Mock::start(&OAuth2MockOptions {
            expires_in: Some(Duration::from_secs(2)),
            ..OAuth2MockOptions::default()
        })
        .unwrap(),
    );
    let (server, store, seen) = exchange(&pki, mock.clone());
    let tokens = client_credentials(&mock);
    // Connections are not reused past 200 ms idle: the second send opens one.
    let pool = pool(
        &pki,
        &server,
        &tokens,
        PoolOptions::new().idle_timeout(Duration::from_millis(200)),
    );
    pool.send(envelope(), b"Subject: 1\r\n\r\nx\r\n")
        .await
        .unwrap();
    assert_eq!(mock.requests().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    pool.send(envelope(), b"Subject: 2\r\n\r\nx\r\n")
        .await
        .unwrap();
    assert_eq!(server.connections(), 2);
    let issued = issued(&mock);
    assert_eq!(issued.len(), 2, "one fresh token for the second connection");
    assert_ne!(issued[0], issued[1]);
    assert_eq!(*seen.lock().unwrap(), issued);
    assert_eq!(store.wait_for_messages(2, Duration::from_secs(10)).len(), 2);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_handed_back_and_used_next() {
    let mock = OAuth2Mock::start(&OAuth2MockOptions::default()).unwrap();
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let hook = rotated.clone();
    let tokens = TokenProvider::builder(
        TokenEndpoint::new(mock.token_url()).unwrap(),
        Grant::refresh_token(
            "app",
            "rt-0",
            "https://outlook.office.com/SMTP.Send offline_access",
        ),
    )
    .on_refresh_token(move |new| hook.lock().unwrap().push(new.expose().to_owned()))
    .build()
    .unwrap();
    tokens.token().await.unwrap();
    tokens.invalidate().await;
    tokens.token().await.unwrap();
    let requests = mock.requests().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["grant_type"], "refresh_token");
    assert_eq!(requests[0]["refresh_token"], "rt-0");
    let first = requests[0]["issued_refresh_token"].clone();
    let second = requests[1]["issued_refresh_token"].clone();
    // The second request used the token the first one handed back.
    assert_eq!(requests[1]["refresh_token"], first);
    assert_eq!(*rotated.lock().unwrap(), vec![first, second.clone()]);
    assert_eq!(
        tokens.refresh_token().await.unwrap().expose(),
        second.as_str()
    );
    // No secret in Debug.
    let debug = format!("{tokens:?}");
    assert!(
        !debug.contains(&second) && !debug.contains("rt-0"),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_down_fails_with_an_oauth2_error_and_opens_no_connection() {
    let pki = TestPki::new().unwrap();
    let cert = pki.leaf(&[NAME]).unwrap();
    let (handler, store) = exchange_online(ExchangeOptions::new(cert.server_config().unwrap()));
    let server = ScriptedServer::start(handler).unwrap();
    let tokens = TokenProvider::new(
        TokenEndpoint::new(format!("http://127.0.0.1:{}/token", free_port().unwrap())).unwrap(),
        Grant::client_credentials("app", CLIENT_SECRET, TokenEndpoint::MICROSOFT_SCOPE),
    )
    .unwrap();
    let pool = pool(&pki, &server, &tokens, PoolOptions::new());
    let err = pool.send(envelope(), b"x\r\n").await.unwrap_err();
    let Error::Credentials(source) = &err else {
        panic!("{err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<OAuth2Error>(),
            Some(OAuth2Error::Transport { .. })
        ),
        "{source:?}"
    );
    assert!(!format!("{err:?} {err}").contains(CLIENT_SECRET));
    assert_eq!(server.connections(), 0);
    assert!(store.auth_attempts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_response_is_rejected_with_its_description() {
    let mock = OAuth2Mock::start(&OAuth2MockOptions {
        error: Some(("invalid_grant".into(), "AADSTS70008: expired".into())),
        ..OAuth2MockOptions::default()
    })
    .unwrap();
    let err = client_credentials(&mock).token().await.unwrap_err();
    assert!(
        matches!(&err, OAuth2Error::Rejected { status: 400, error: Some(e), description: Some(d) }
            if e == "invalid_grant" && d == "AADSTS70008: expired"),
        "{err:?}"
    );
}
