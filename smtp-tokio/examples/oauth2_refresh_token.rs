//! A pool sending as a user who consented once (delegated `SMTP.Send` on
//! Microsoft 365, or Gmail's `https://mail.google.com/` scope): the refresh
//! token grant, XOAUTH2 on every new connection, and the rotated refresh
//! token handed back to be stored.
//!
//! ```sh
//! REFRESH_TOKEN=... cargo run -p smtp-tokio --features oauth2 \
//!     --example oauth2_refresh_token -- TENANT CLIENT_ID me@contoso.com you@example.org
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use smtp_tokio::oauth2::{Grant, TokenEndpoint, TokenProvider};
use smtp_tokio::pool::{Connector, Pool, PoolOptions};
use smtp_tokio::{Address, Config, Envelope, Options};
use std::error::Error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tenant, client_id, from, to] = args.as_slice() else {
        return Err(
            "usage: oauth2_refresh_token TENANT CLIENT_ID FROM TO (token in REFRESH_TOKEN)".into(),
        );
    };
    // Gmail: TokenEndpoint::new(TokenEndpoint::GOOGLE_URL)?, the scope
    // TokenEndpoint::GMAIL_SCOPE, and `.with_client_secret(..)` on the grant.
    let tokens = TokenProvider::builder(
        TokenEndpoint::microsoft(tenant)?,
        Grant::refresh_token(
            client_id.as_str(),
            std::env::var("REFRESH_TOKEN")?,
            TokenEndpoint::MICROSOFT_DELEGATED_SCOPE,
        ),
    )
    // Store it where REFRESH_TOKEN came from: the old one may stop working.
    .on_refresh_token(|_new| eprintln!("the refresh token was rotated: store the new one"))
    .build()?;
    let connector = Connector::new(
        "smtp.office365.com",
        587,
        Config::new("smtp.office365.com"),
        Options::new(),
    )
    .credential_provider(tokens.for_user(from.as_str()));
    let pool = Pool::new(connector, PoolOptions::new());
    let envelope = Envelope::new(
        Some(Address::new(from.as_str())?),
        [Address::new(to.as_str())?],
    )?;
    let message =
        format!("From: {from}\r\nTo: {to}\r\nSubject: hello\r\n\r\nSent with OAuth2.\r\n");
    let delivery = pool.send(envelope, message.as_bytes()).await?;
    println!("queued: {}", delivery.reply());
    pool.close().await;
    Ok(())
}
