//! Microsoft 365 with an app registration (application permission
//! `SMTP.SendAsApp`, admin consent, the Exchange service principal
//! registered): the client credentials grant, then AUTH XOAUTH2.
//!
//! ```sh
//! CLIENT_SECRET=... cargo run -p smtp-blocking --features oauth2 \
//!     --example oauth2_client_credentials -- TENANT CLIENT_ID me@contoso.com you@example.org
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use smtp_blocking::oauth2::{Grant, TokenEndpoint, TokenProvider};
use smtp_blocking::{Address, Client, Config, Envelope, Options};
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tenant, client_id, from, to] = args.as_slice() else {
        return Err(
            "usage: oauth2_client_credentials TENANT CLIENT_ID FROM TO (secret in CLIENT_SECRET)"
                .into(),
        );
    };
    let tokens = TokenProvider::new(
        TokenEndpoint::microsoft(tenant)?,
        Grant::client_credentials(
            client_id.as_str(),
            std::env::var("CLIENT_SECRET")?,
            TokenEndpoint::MICROSOFT_SCOPE,
        ),
    )?;
    // Cached: every connection made within the token's lifetime reuses it;
    // a new one is fetched a minute before it expires.
    let credentials = tokens.credentials(from.as_str())?;
    let config = Config::new("smtp.office365.com").credentials(credentials);
    let mut client = Client::connect("smtp.office365.com", 587, config, Options::default())?;
    let envelope = Envelope::new(
        Some(Address::new(from.as_str())?),
        [Address::new(to.as_str())?],
    )?;
    let message =
        format!("From: {from}\r\nTo: {to}\r\nSubject: hello\r\n\r\nSent with OAuth2.\r\n");
    let delivery = client.send(envelope, message.as_bytes())?;
    println!("queued: {}", delivery.reply());
    client.quit()?;
    Ok(())
}
