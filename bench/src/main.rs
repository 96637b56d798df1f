//! `tagrun-bench`: benchmarks of tagrun's hot paths, one subcommand per scenario.
//!
//! Each run prints one JSON object on stdout, e.g. `{"scenario": ..., "requests": N,
//! "seconds": S, "requests_per_second": R, "p50_ms": ..., "p99_ms": ..., "errors": E}`,
//! and exits 1 when any request failed (the first failure goes to stderr), 2 on bad
//! flags and 1 when the run could not be set up. Results are recorded by hand in
//! `bench/RESULTS.md`.

mod child;
mod client;
mod cpu;
mod fleet;
mod load;
mod node;
mod scenario;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::scenario::{Report, describe_instance_information, fan_out, idle_nodes, send_latency};

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
    /// One SendCommand to every node of a simulated fleet, polling the real server
    /// binary: time to the first message and to the last Success, memory, CPU.
    FanOut(fan_out::Args),
    /// A simulated fleet long-polling with nothing to receive: the server's memory
    /// and CPU per second.
    IdleNodes(idle_nodes::Args),
    /// One node answering at once: SendCommand to its final reply, repeated.
    SendLatency(send_latency::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.scenario {
        Scenario::DescribeInstanceInformation(args) => {
            describe_instance_information::run(&args).and_then(|o| o.into_report())
        }
        Scenario::FanOut(args) => fan_out::run(&args),
        Scenario::IdleNodes(args) => idle_nodes::run(&args),
        Scenario::SendLatency(args) => send_latency::run(&args),
    };
    match outcome {
        Ok(report) => print(&report),
        Err(error) => {
            eprintln!("tagrun-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the summary; a run with failures measured something else, so it fails.
fn print(report: &Report) -> ExitCode {
    #[allow(clippy::print_stdout)]
    {
        println!("{}", report.json);
    }
    if report.failures == 0 {
        return ExitCode::SUCCESS;
    }
    let first = report.first_error.as_deref().unwrap_or("unknown");
    eprintln!("tagrun-bench: {} failures; first: {first}", report.failures);
    ExitCode::FAILURE
}
