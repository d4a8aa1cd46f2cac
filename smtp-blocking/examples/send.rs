//! Sends one message through an SMTP submission server, e.g. Microsoft 365:
//!
//! ```sh
//! SMTP_PASSWORD=... cargo run -p smtp-blocking --example send -- \
//!     smtp.office365.com 587 me@example.com you@example.org
//! ```
//!
//! STARTTLS is required (the default policy), the mechanism is chosen from
//! what the server offers after TLS (PLAIN, else LOGIN), and the password is
//! never written to a connection that is not TLS.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use smtp_blocking::{Address, Client, Config, Credentials, Envelope, Options};
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, from, to] = args.as_slice() else {
        return Err("usage: send HOST PORT FROM TO (password in SMTP_PASSWORD)".into());
    };
    let password = std::env::var("SMTP_PASSWORD")?;
    let config =
        Config::new(host.as_str()).credentials(Credentials::password(from.as_str(), password));
    let mut client = Client::connect(host, port.parse()?, config, Options::default())?;

    let envelope = Envelope::new(
        Some(Address::new(from.as_str())?),
        [Address::new(to.as_str())?],
    )?;
    let message =
        format!("From: {from}\r\nTo: {to}\r\nSubject: hello\r\n\r\nSent by smtp-blocking.\r\n");
    let delivery = client.send(envelope, message.as_bytes())?;
    for recipient in delivery.recipients() {
        println!("{}: {}", recipient.address(), recipient.reply());
    }
    println!("queued: {}", delivery.reply());
    client.quit()?;
    Ok(())
}
