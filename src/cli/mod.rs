//! The `canary-gate` command-line tool (native targets only): checks, queries
//! and renders plugin configurations with the filter's own code, so it can
//! never disagree with the filter. [`config::parse`](crate::config::parse)
//! validates, [`Plan::decide`](crate::config::Plan::decide) routes,
//! [`SplitPlan`](crate::split::SplitPlan) splits.
//!
//! One module per concern:
//! - `args`: the command line (clap), the contract scripts call;
//! - `input`: reading a configuration from JSON, a WasmPlugin or an Envoy YAML;
//! - `check`, `route`, `shares` (simulate, diff), `edit` (promote, rollback),
//!   `render` (Istio, Envoy), `secrets` (key-digest, htpasswd), `stat`;
//! - `emit`: JSON and YAML printers with a stable key order; `table`: columns.
//!
//! Exit codes: 0 success, 1 a check failed, 2 usage or I/O error. Every error
//! is one line on stderr.

mod args;
mod check;
mod edit;
mod emit;
mod input;
mod live;
mod render;
mod route;
mod secrets;
mod shares;
mod stat;
mod table;

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command, Output, Render};

/// A check failed: exit 1.
pub const EXIT_FAILED: u8 = 1;
/// A usage or I/O error: exit 2.
pub const EXIT_USAGE: u8 = 2;

/// Why a command stopped: its exit code and one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Usage or I/O error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A failed check, e.g. a configuration the filter refuses (exit 1).
    pub fn check(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a command returns: the exit code it chose (0, or 1 after printing
/// what failed), or a [`Failure`].
pub type Outcome = Result<u8, Failure>;

/// Runs the tool with the process's arguments; the exit code to return.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // Help and version go to stdout, exit 0.
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                eprint!("{e}");
                return ExitCode::from(EXIT_USAGE);
            }
            // One line: clap's first line, without its multi-line usage block.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", one_line(&failure.message));
            ExitCode::from(failure.code)
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Outcome {
    let output = cli.output;
    match cli.command {
        Command::Check { files } => check::run(&files, output),
        Command::Route(a) => route::run(&a, output),
        Command::Simulate(a) => shares::simulate(&a, output),
        Command::Diff(a) => shares::diff(&a, output),
        Command::Promote(a) => edit::promote(&a, output),
        Command::Rollback(a) => edit::rollback(&a, output),
        Command::Render(Render::Istio(a)) => render::istio::run(&a, output),
        Command::Render(Render::Envoy(a)) => render::envoy::run(&a, output),
        Command::KeyDigest { consumer } => secrets::key_digest(consumer.as_deref(), output),
        Command::Htpasswd { user, cost } => secrets::htpasswd(&user, cost, output),
        Command::Stat(a) => stat::run(&a, output),
    }
}

/// Errors are one line: any line break becomes a space.
fn one_line(message: &str) -> String {
    message.split(['\n', '\r']).collect::<Vec<_>>().join(" ")
}

/// Prints a JSON value on one line (the `--output json` form).
fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// `--at` as Unix seconds (default: now).
fn unix_time(at: Option<&str>) -> Result<u64, Failure> {
    match at {
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|e| Failure::usage(format!("the clock is before 1970: {e}"))),
        Some(text) => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                    Failure::usage(format!(
                        "--at {text:?}: not an RFC 3339 time ({e}); e.g. 2030-01-31T12:00:00Z"
                    ))
                })?;
            u64::try_from(t.unix_timestamp())
                .map_err(|_| Failure::usage(format!("--at {text:?}: before 1970")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_rfc3339_with_any_offset() {
        assert_eq!(unix_time(Some("2030-01-01T00:00:00Z")), Ok(1_893_456_000));
        assert_eq!(
            unix_time(Some("2030-01-01T02:00:00+02:00")),
            Ok(1_893_456_000)
        );
        let e = unix_time(Some("tomorrow")).unwrap_err();
        assert_eq!(e.code, EXIT_USAGE);
        assert!(e
            .message
            .starts_with("--at \"tomorrow\": not an RFC 3339 time"));
        assert!(unix_time(Some("1969-12-31T23:59:59Z")).is_err());
        assert!(unix_time(None).unwrap() > 1_700_000_000);
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
