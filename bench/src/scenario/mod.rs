//! Scenarios, one module and one subcommand each, and the path they share: start the
//! server in this process, drive it from a client runtime, sum up.
//!
//! A new scenario adds a module here with its flags (flattening [`LoadArgs`]), the
//! server configuration it needs and its [`Workload`], and a variant in `main.rs`.

pub mod describe_instance_information;

use std::time::Duration;

use anyhow::Context;
use tagrun_server::config::Config;

use crate::cpu::{self, Placement};
use crate::load::{self, LoadOptions, Summary, Workload};
use crate::server::ServerThread;

/// Flags every load scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Measured seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub connections: u16,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup_seconds: u64,
    /// Let the server and the client share every CPU instead of pinning the server to
    /// one CPU and the client to the others.
    #[arg(long)]
    pub no_pin: bool,
}

impl LoadArgs {
    /// The driver's options.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            connections: usize::from(self.connections),
            warmup: Duration::from_secs(self.warmup_seconds),
            duration: Duration::from_secs(self.seconds),
        }
    }

    /// Where the server and the client run.
    pub fn placement(&self) -> anyhow::Result<Placement> {
        if self.no_pin {
            return Ok(Placement::default());
        }
        Placement::for_this_process().context("reading the CPUs this process may use")
    }
}

/// A scenario's result: the summary to print and the first failure, if any.
#[derive(Debug)]
pub struct Outcome {
    /// The JSON summary.
    pub summary: Summary,
    /// What went wrong first, when something did.
    pub first_error: Option<String>,
}

/// Serves `config` on one thread and sends it `workload` from the client CPUs.
///
/// The calling thread is pinned to the client CPUs for the rest of its life, so call
/// this once per process (as the binary does).
pub fn run_against_server(
    scenario: &'static str,
    config: Config,
    workload: Workload,
    options: LoadOptions,
    placement: &Placement,
) -> anyhow::Result<Outcome> {
    let server = ServerThread::start(config, placement.server)?;
    if !placement.client.is_empty() {
        cpu::pin_current_thread(&placement.client).context("pinning the client")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(placement.client.len().max(1))
        .enable_all()
        .build()
        .context("building the client runtime")?;

    let measured = runtime.block_on(load::drive(server.address, workload, options));
    // Closing the client's connections first lets the server drain at once.
    drop(runtime);
    server.stop()?;

    let first_error = measured.first_error.clone();
    Ok(Outcome {
        summary: Summary::new(scenario, options.connections, measured),
        first_error,
    })
}
