//! Scenarios, one module and one subcommand each.
//!
//! Load scenarios start the server in this process and drive it from a client runtime:
//! a new one adds a module with its flags (flattening [`LoadArgs`]), the server
//! configuration it needs and its [`Workload`], and a variant in `main.rs`. Fleet
//! scenarios (`fan-out`, `idle-nodes`, `send-latency`) run the real server binary as a
//! child process with simulated nodes (`crate::fleet`). Each returns a [`Report`].

pub mod describe_instance_information;
pub mod fan_out;
pub mod idle_nodes;
pub mod send_latency;

use std::time::{Duration, Instant};

use anyhow::Context;
use tagrun_server::config::Config;

use crate::cpu::{self, CpuTimeError, Placement};
use crate::load::{self, LoadOptions, Summary, Window, Workload};
use crate::server::{self, ServerThread};

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

/// What a scenario prints, and whether the run measured what it meant to.
#[derive(Debug)]
pub struct Report {
    /// The JSON summary.
    pub json: serde_json::Value,
    /// Failed requests, or other reasons the figures do not stand (0 when they do).
    pub failures: u64,
    /// What went wrong first, when something did.
    pub first_error: Option<String>,
}

impl Report {
    /// A report of `summary`.
    pub fn new(
        summary: &impl serde::Serialize,
        failures: u64,
        first_error: Option<String>,
    ) -> anyhow::Result<Report> {
        Ok(Report {
            json: serde_json::to_value(summary).context("formatting the summary")?,
            failures,
            first_error,
        })
    }
}

impl Outcome {
    /// The report of a load scenario: every failed request counts.
    pub fn into_report(self) -> anyhow::Result<Report> {
        Report::new(&self.summary, self.summary.errors, self.first_error)
    }
}

/// The client runtime of fleet scenarios: a worker thread per CPU, shared by the nodes.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(cpu::CLIENT_THREAD_NAME)
        .enable_all()
        .build()
        .context("building the client runtime")
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
        .thread_name(cpu::CLIENT_THREAD_NAME)
        .enable_all()
        .build()
        .context("building the client runtime")?;

    let window = options.window(Instant::now());
    let (measured, server_cpu) = runtime.block_on(async {
        let sampler = tokio::spawn(server_cpu_during(window));
        let measured = load::drive(server.address, workload, options.connections, window).await;
        (measured, sampler.await)
    });
    // Closing the client's connections first lets the server drain at once.
    drop(runtime);
    server.stop()?;

    let server_cpu = match server_cpu {
        Ok(Ok(cpu)) => Some(cpu),
        Ok(Err(error)) => {
            eprintln!("tagrun-bench: server CPU time unknown: {error}");
            None
        }
        Err(error) => {
            eprintln!("tagrun-bench: server CPU time unknown: {error}");
            None
        }
    };
    let first_error = measured.first_error.clone();
    let summary = Summary::new(scenario, options.connections, measured, server_cpu);
    Ok(Outcome {
        summary,
        first_error,
    })
}

/// CPU time the server's threads use between the window's two instants.
async fn server_cpu_during(window: Window) -> Result<Duration, CpuTimeError> {
    tokio::time::sleep_until(window.from.into()).await;
    let before = cpu::thread_cpu_time(server::is_server_thread)?;
    tokio::time::sleep_until(window.until.into()).await;
    let after = cpu::thread_cpu_time(server::is_server_thread)?;
    Ok(after.saturating_sub(before))
}
