//! `idle-nodes`: a fleet long-polling with nothing to receive, and what that costs the
//! server in memory and CPU.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::{Report, runtime};
use crate::child::Memory;
use crate::fleet::{self, Fleet, FleetArgs};
use crate::load::round3;

/// The subcommand's name, also the `scenario` field of the output.
pub const NAME: &str = "idle-nodes";

/// Flags of this scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Simulated nodes, each with its own connection and keys.
    #[arg(long, default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..=15000))]
    pub nodes: u64,
    /// Measured seconds, starting once every node is online.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Fleet flags.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// The JSON line this scenario prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// [`NAME`].
    pub scenario: &'static str,
    /// Nodes in the fleet.
    pub nodes: usize,
    /// From starting the server process to its `listening on` line.
    pub server_start_ms: f64,
    /// Length of the measured window.
    pub seconds: f64,
    /// The server's resident memory at the end of the window.
    pub rss_mib: f64,
    /// The most the server's resident memory was during the window (sampled each second).
    pub window_peak_rss_mib: f64,
    /// The server's peak resident memory since it started (`VmHWM`).
    pub peak_rss_mib: f64,
    /// Server CPU seconds per wall second over the window.
    pub server_cpu_per_second: f64,
    /// CPU seconds per wall second of this process (the nodes) over the window.
    pub client_cpu_per_second: f64,
    /// `GetMessages` calls answered (empty, after the hold) in the window.
    pub polls_answered: u64,
    /// `polls_answered / seconds`.
    pub polls_per_second: f64,
    /// Failed calls in the window.
    pub errors: u64,
}

/// Runs the scenario as its flags say.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let size = usize::try_from(args.nodes).context("node count out of range")?;
    let window = Duration::from_secs(args.seconds);
    runtime()?.block_on(measure(&args.fleet, size, window))
}

async fn measure(args: &FleetArgs, size: usize, window: Duration) -> anyhow::Result<Report> {
    let fleet = Fleet::start(args, size).await?;
    let before = fleet.stats.counts();
    let server_cpu = fleet.server.cpu_time()?;
    let client_cpu = fleet::client_cpu_seconds()?;
    let started = Instant::now();

    let mut peak_kib = fleet.memory()?.rss_kib;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    while started.elapsed() < window {
        ticks.tick().await;
        peak_kib = peak_kib.max(fleet.memory()?.rss_kib);
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = fleet
        .server
        .cpu_time()?
        .saturating_sub(server_cpu)
        .as_secs_f64();
    let client_cpu = fleet::client_cpu_seconds()? - client_cpu;
    let after = fleet.stats.counts();
    let memory = fleet.memory()?;
    let first_error = fleet.stats.first_error();

    let polls = after.polls_answered - before.polls_answered;
    let summary = Summary {
        scenario: NAME,
        nodes: size,
        server_start_ms: round3(fleet.server.start_time.as_secs_f64() * 1000.0),
        seconds: round3(seconds),
        rss_mib: Memory::mib(memory.rss_kib),
        window_peak_rss_mib: Memory::mib(peak_kib.max(memory.rss_kib)),
        peak_rss_mib: Memory::mib(memory.peak_kib),
        server_cpu_per_second: round3(server_cpu / seconds),
        client_cpu_per_second: round3(client_cpu / seconds),
        polls_answered: polls,
        polls_per_second: round3(polls as f64 / seconds),
        errors: after.errors - before.errors,
    };
    fleet.stop().await?;
    Report::new(&summary, summary.errors, first_error)
}
