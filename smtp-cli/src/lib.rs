//! `smtp-send`: a command-line SMTP client to send a message and diagnose a
//! server — which mechanisms it offers, whether LOGIN works, whether
//! STARTTLS is really there — built on the blocking adapter
//! ([`smtp_blocking`]) and rustls.
//!
//! The binary is a thin shell around this library:
//!
//! - [`args`]: the command line (clap);
//! - [`plan`]: flags and environment turned into a checked [`plan::Plan`]
//!   before any socket is opened (usage errors exit 2; an address or name
//!   the core refuses is `invalid_input` with nothing written);
//! - [`run`]: N transactions over C parallel sessions on std threads;
//! - [`report`]: the error kinds ([`report::classify`] is the one mapping
//!   from the adapter's and the core's errors), the `--json` object
//!   (streamed as the run goes) and the human summary (from aggregates);
//! - [`demo`]: `smtp-send demo`, against an in-process Exchange-Online-like
//!   server from the workspace's test support (`smtp-tests`);
//! - [`probe`]: `smtp-send probe`, what a server offers and shows (EHLO
//!   before and after TLS, the certificate, [`certificate`]) without
//!   sending mail.
//!
//! Every protocol decision (TLS policy, credential guard, mechanism choice,
//! dot-stuffing, redaction of the transcript) is the core's; this crate
//! only chooses the configuration and reports.
#![forbid(unsafe_code)]

pub mod args;
pub mod certificate;
pub mod demo;
pub mod plan;
pub mod probe;
pub mod report;
pub mod run;

use clap::Parser;
use report::{Failure, Report};
use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// The whole program: parses `argv` (with the program name first), runs,
/// prints, and returns the exit status (0 ok, 1 failure, 2 usage).
pub fn main_with<I, T>(argv: I, env: &dyn Fn(&str) -> Option<String>) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let started = Instant::now();
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let cli = match args::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let usage = !matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            // --help and --version go to stdout, errors to stderr.
            let _ = err.print();
            if !usage {
                return 0;
            }
            if argv.iter().any(|a| a == "--json") {
                let failure = Failure::usage(err.kind().to_string());
                if probe::is_probe(&argv) {
                    println!("{}", probe::usage_json(failure, started.elapsed()));
                } else {
                    print_json(&Report::failed(failure, started.elapsed()));
                }
            }
            return 2;
        }
    };
    if let Some(args::Command::Probe(probe)) = &cli.command {
        return probe::main(probe, env, started);
    }
    if let Some(args::Command::Demo) = cli.command {
        return match demo::demo() {
            Ok(outcome) => outcome.report.exit_status(),
            Err(failure) => {
                let report = Report::failed(failure, started.elapsed());
                if let Some(line) = report.human_error() {
                    eprintln!("{line}");
                }
                report.exit_status()
            }
        };
    }
    // With --json the object is written as the run goes: the transactions
    // as their results come, the summary after them (see JsonReport).
    let mut json = cli.send.json.then(|| {
        report::JsonReport::start(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ))
    });
    let mut open = None;
    let report = match plan::plan(&cli.send, env) {
        Ok(plan) => {
            let hook: Option<smtp_blocking::TranscriptHook> = if cli.send.transcript {
                Some(Arc::new(|line| {
                    // One locked write per line, so parallel sessions never
                    // interleave inside a line.
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }))
            } else {
                None
            };
            let run::Finished {
                mut report,
                open: connections,
            } = run::run(&plan, hook, json.as_mut());
            report.elapsed = started.elapsed();
            open = Some(connections);
            report
        }
        Err(failure) => Report::failed(failure, started.elapsed()),
    };
    match json {
        Some(json) => {
            if let Some(err) = json.finish(&report) {
                eprintln!("smtp-send: part of the --json report could not be read back: {err}");
            }
        }
        None => {
            if report.attempted > 0 || report.error.is_none() {
                print!("{}", report.human());
            }
            if let Some(line) = report.human_error() {
                eprintln!("{line}");
            }
        }
    }
    // The report is out: only now QUIT, which cannot change it.
    let _ = std::io::stdout().flush();
    if let Some(connections) = open {
        connections.quit();
    }
    report.exit_status()
}

fn print_json(report: &Report) {
    let _ = report::JsonReport::start(std::io::BufWriter::new(std::io::stdout())).finish(report);
}
