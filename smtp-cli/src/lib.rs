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
//!   server and a throwaway PKI from the `smtp-tests` crate (without its
//!   `peers` feature, which only the tests use);
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
pub mod message;
pub mod plan;
pub mod probe;
pub mod progress;
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
            let failed =
                || Report::failed(Failure::usage(err.kind().to_string()), started.elapsed());
            if argv.iter().any(|a| a == "--json") {
                if probe::is_probe(&argv) {
                    let failure = Failure::usage(err.kind().to_string());
                    println!("{}", probe::usage_json(failure, started.elapsed()));
                } else {
                    print_json(&failed());
                }
            } else if argv.iter().any(|a| a == "--json-lines") {
                report::JsonLines::new(std::io::stdout()).finish(&failed());
            }
            return 2;
        }
    };
    match &cli.command {
        Some(args::Command::Completions { shell }) => {
            let mut command = <args::Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics on a failed write (a
            // reader that went away), a closed stdout is no failure here.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "smtp-send", &mut script);
            let _ = std::io::stdout().write_all(&script);
            return 0;
        }
        Some(args::Command::Man) => {
            let command = <args::Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            return match clap_mangen::Man::new(command).render(&mut page) {
                Ok(()) => {
                    let _ = std::io::stdout().write_all(&page);
                    0
                }
                Err(err) => {
                    eprintln!("smtp-send: rendering the manual page: {err}");
                    1
                }
            };
        }
        Some(args::Command::Probe(probe)) => return probe::main(probe, env, started),
        _ => {}
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
    // With --json-lines, a line per transaction as it comes, then the summary.
    let lines = cli
        .send
        .json_lines
        .then(|| report::JsonLines::new(std::io::stdout()));
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
            let progress =
                progress::Progress::for_run(plan.repeat, cli.send.json, cli.send.transcript);
            let output = match (&mut json, &lines) {
                (Some(json), _) => run::Output::Json(json),
                (None, Some(lines)) => run::Output::Lines(lines),
                (None, None) => run::Output::Summary,
            };
            let run::Finished {
                mut report,
                open: connections,
            } = run::run(&plan, hook, output, progress.as_ref());
            if let Some(progress) = &progress {
                progress.finish();
            }
            report.elapsed = started.elapsed();
            open = Some(connections);
            report
        }
        Err(failure) => Report::failed(failure, started.elapsed()),
    };
    match (json, lines) {
        (Some(json), _) => {
            if let Some(err) = json.finish(&report) {
                eprintln!("smtp-send: part of the --json report could not be read back: {err}");
            }
        }
        (None, Some(lines)) => lines.finish(&report),
        (None, None) => {
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
