//! `smtp-send`: see the `smtp_cli` crate documentation and the README's
//! CLI reference.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    ExitCode::from(smtp_cli::main_with(std::env::args_os(), &env))
}
