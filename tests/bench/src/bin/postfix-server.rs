//! A private Postfix smtpd (smtp-tests' `Postfix`: PIPELINING, CHUNKING,
//! 8BITMIME, SIZE) for `e2e.sh`'s CHUNKING workloads, since Debian's
//! smtp-sink offers no CHUNKING.
//!
//! `postfix-server [--discard]`: prints the address it listens on, one
//! line, and runs until its standard input closes, then stops Postfix and
//! removes its directory. With `--discard` messages go to Postfix's
//! `discard` transport (queued, then dropped), so the disk is not what is
//! measured; otherwise the `virtual` agent writes each to a Maildir.

use smtp_tests::{Postfix, PostfixOptions};
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut options = PostfixOptions::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--discard" => options.discard = true,
            _ => {
                eprintln!("usage: postfix-server [--discard]");
                return ExitCode::from(2);
            }
        }
    }
    let server = match Postfix::start(&options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("postfix-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", server.addr())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // Until the script closes our standard input (or exits).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(server);
    ExitCode::SUCCESS
}
