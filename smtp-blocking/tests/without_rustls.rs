//! Built without the `rustls` feature, every TLS policy but `Disabled` is a
//! configuration error, reported before anything is tried.
//! `cargo test -p smtp-blocking --no-default-features`
#![cfg(not(feature = "rustls"))]
#![allow(clippy::unwrap_used)]

use smtp_blocking::{Client, Config, Error, Options};

#[test]
fn tls_policies_need_the_rustls_feature() {
    // Port 9 on loopback: nothing listens, but nothing is even tried.
    let err =
        Client::connect("127.0.0.1", 9, Config::new("localhost"), Options::new()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Smtp(smtp_blocking::smtp_proto::Error::TlsConfig { .. })
        ),
        "{err:?}"
    );
}
