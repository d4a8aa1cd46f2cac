//! Sends one message with the tokio backend, authenticating with an OAuth 2.0
//! access token (XOAUTH2, as Exchange Online and Gmail expect):
//!
//! ```sh
//! SMTP_OAUTH_TOKEN=... cargo run -p smtp-tokio --example send -- \
//!     smtp.office365.com 587 me@example.com you@example.org
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use smtp_tokio::smtp_proto::{Address, Config, Credentials, Envelope};
use smtp_tokio::{tokio::Client, Options};
use std::error::Error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, from, to] = args.as_slice() else {
        return Err("usage: send HOST PORT FROM TO (token in SMTP_OAUTH_TOKEN)".into());
    };
    let token = std::env::var("SMTP_OAUTH_TOKEN")?;
    let config = Config::new(host.as_str()).credentials(Credentials::token(from.as_str(), token));
    let mut client = Client::connect(host, port.parse()?, config, Options::default()).await?;

    let envelope = Envelope::new(
        Some(Address::new(from.as_str())?),
        [Address::new(to.as_str())?],
    )?;
    let message =
        format!("From: {from}\r\nTo: {to}\r\nSubject: hello\r\n\r\nSent by smtp-tokio.\r\n");
    let delivery = client.send(envelope, message.as_bytes()).await?;
    println!("queued: {}", delivery.reply());
    client.quit().await?;
    Ok(())
}
