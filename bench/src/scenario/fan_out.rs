//! `fan-out`: one `SendCommand` of `AWS-RunShellScript` to every node of a fleet by tag,
//! with `MaxConcurrency` 100%, and how long until the last node's final reply.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::{Report, runtime};
use crate::child::Memory;
use crate::fleet::{self, Fleet, FleetArgs};
use crate::load::round3;

/// The subcommand's name, also the `scenario` field of the output.
pub const NAME: &str = "fan-out";

/// Flags of this scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Simulated nodes, each with its own connection and keys.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=15000))]
    pub nodes: u64,
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
    /// The `SendCommand` call itself.
    pub send_command_ms: f64,
    /// From the start of `SendCommand` to the first node holding its message.
    pub first_message_ms: Option<f64>,
    /// From the start of `SendCommand` to the last node's final reply being answered.
    pub last_success_ms: Option<f64>,
    /// Nodes whose final reply was accepted.
    pub successes: u64,
    /// `ListCommands` shows the command `Success` with `CompletedCount` equal to nodes.
    pub confirmed: bool,
    /// The command's status and counts as `ListCommands` showed them.
    pub command_status: String,
    /// `CompletedCount` as `ListCommands` showed it.
    pub completed_count: u64,
    /// The server's resident memory with every node polling, before the command.
    pub rss_before_mib: f64,
    /// The server's peak resident memory (`VmHWM`) at the end.
    pub peak_rss_mib: f64,
    /// CPU time of the server from `SendCommand` to the last final reply.
    pub server_cpu_seconds: f64,
    /// CPU time of this process (nodes and driver) over the same window.
    pub client_cpu_seconds: f64,
    /// Failed calls of nodes, from the start of the fleet to the end.
    pub errors: u64,
}

/// Runs the scenario as its flags say.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let size = usize::try_from(args.nodes).context("node count out of range")?;
    runtime()?.block_on(measure(&args.fleet, size))
}

async fn measure(args: &FleetArgs, size: usize) -> anyhow::Result<Report> {
    let mut fleet = Fleet::start(args, size).await?;
    let before = fleet.memory()?;
    let server_cpu = fleet.server.cpu_time()?;
    let client_cpu = fleet::client_cpu_seconds()?;

    let sent_us = fleet.stats.now_us();
    let command_id = fleet.admin.send_echo(fleet::fleet_targets()).await?;
    let send_us = fleet.stats.now_us() - sent_us;
    let all = size as u64;
    fleet
        .stats
        .wait_until(args.timeout(), |c| c.successes >= all)
        .await;
    let server_cpu = fleet.server.cpu_time()?.saturating_sub(server_cpu);
    let client_cpu = fleet::client_cpu_seconds()? - client_cpu;

    let state = fleet.admin.command_state(&command_id).await?;
    let memory = fleet.memory()?;
    let counts = fleet.stats.counts();
    let first_error = fleet.stats.first_error();
    let since_send = |us: Option<u64>| us.map(|us| ms(us.saturating_sub(sent_us)));
    let summary = Summary {
        scenario: NAME,
        nodes: size,
        server_start_ms: round3(fleet.server.start_time.as_secs_f64() * 1000.0),
        send_command_ms: ms(send_us),
        first_message_ms: since_send(counts.first_message_us),
        last_success_ms: since_send(counts.last_success_us).filter(|_| counts.successes >= all),
        successes: counts.successes,
        confirmed: state.status == "Success" && state.completed_count == all,
        command_status: state.status,
        completed_count: state.completed_count,
        rss_before_mib: Memory::mib(before.rss_kib),
        peak_rss_mib: Memory::mib(memory.peak_kib),
        server_cpu_seconds: round3(server_cpu.as_secs_f64()),
        client_cpu_seconds: round3(client_cpu),
        errors: counts.errors,
    };
    fleet.stop().await?;

    let failures = summary.errors + u64::from(!summary.confirmed);
    let first_error = first_error.or_else(|| {
        (!summary.confirmed).then(|| format!("command {command_id} did not finish in time"))
    });
    Report::new(&summary, failures, first_error)
}

fn ms(us: u64) -> f64 {
    round3(Duration::from_micros(us).as_secs_f64() * 1000.0)
}
