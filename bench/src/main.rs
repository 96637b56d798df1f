//! `tagrun-bench`: benchmarks of tagrun's hot paths, one subcommand per scenario.
//!
//! Each run prints one JSON object on stdout, e.g. `{"scenario": ..., "requests": N,
//! "seconds": S, "requests_per_second": R, "p50_ms": ..., "p99_ms": ..., "errors": E}`,
//! and exits 1 when any request failed (the first failure goes to stderr), 2 on bad
//! flags and 1 when the run could not be set up. Results are recorded by hand in
//! `bench/RESULTS.md`.

mod cpu;
mod load;
mod scenario;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::scenario::{Outcome, describe_instance_information};

/// Benchmarks of tagrun, printed as JSON.
#[derive(Debug, Parser)]
#[command(name = "tagrun-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Authenticated DescribeInstanceInformation calls against an in-process server
    /// on one CPU, over keep-alive HTTP/1.1 connections.
    DescribeInstanceInformation(describe_instance_information::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.scenario {
        Scenario::DescribeInstanceInformation(args) => describe_instance_information::run(&args),
    };
    match outcome {
        Ok(outcome) => report(&outcome),
        Err(error) => {
            eprintln!("tagrun-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the summary; a run with failed requests measured something else, so it fails.
fn report(outcome: &Outcome) -> ExitCode {
    let json = match serde_json::to_string(&outcome.summary) {
        Ok(json) => json,
        Err(error) => {
            eprintln!("tagrun-bench: could not format the summary: {error}");
            return ExitCode::FAILURE;
        }
    };
    #[allow(clippy::print_stdout)]
    {
        println!("{json}");
    }
    if outcome.summary.errors == 0 {
        return ExitCode::SUCCESS;
    }
    let first = outcome.first_error.as_deref().unwrap_or("unknown");
    eprintln!(
        "tagrun-bench: {} requests failed; first: {first}",
        outcome.summary.errors
    );
    ExitCode::FAILURE
}
