//! `send-latency`: one node answering at once, and the time from `SendCommand` to its
//! final reply being accepted, repeated: the server plus the protocol, nothing else.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;

use super::{Report, runtime};
use crate::fleet::{Fleet, FleetArgs, node_identity};
use crate::load::{percentile_ms, round3};

/// The subcommand's name, also the `scenario` field of the output.
pub const NAME: &str = "send-latency";

/// Flags of this scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Measured commands, one after the other.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100000))]
    pub runs: u64,
    /// Commands sent first and not measured.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub warmup_runs: u64,
    /// Fleet flags.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// The JSON line this scenario prints.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// [`NAME`].
    pub scenario: &'static str,
    /// Measured commands.
    pub runs: usize,
    /// Median from the start of `SendCommand` to the final reply being answered.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// Median of the `SendCommand` call alone.
    pub send_command_p50_ms: f64,
    /// Median from the start of `SendCommand` to the node holding its message.
    pub first_message_p50_ms: f64,
    /// Failed calls of the node.
    pub errors: u64,
}

/// Per-run times in microseconds.
#[derive(Debug, Default)]
struct Times {
    total: Vec<u64>,
    send: Vec<u64>,
    message: Vec<u64>,
}

/// Runs the scenario as its flags say.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    runtime()?.block_on(measure(args))
}

async fn measure(args: &Args) -> anyhow::Result<Report> {
    let mut fleet = Fleet::start(&args.fleet, 1).await?;
    let mut times = Times::default();
    for run in 0..args.warmup_runs + args.runs {
        let (total, send, message) = one_command(&mut fleet, args.fleet.timeout()).await?;
        if run >= args.warmup_runs {
            times.total.push(total);
            times.send.push(send);
            times.message.push(message);
        }
    }
    let errors = fleet.stats.counts().errors;
    let first_error = fleet.stats.first_error();
    fleet.stop().await?;

    let summary = summarize(times, errors);
    Report::new(&summary, summary.errors, first_error)
}

/// Sends one command once the node is polling; returns the microseconds to the final
/// reply, of the `SendCommand` call, and to the message's arrival.
async fn one_command(fleet: &mut Fleet, limit: Duration) -> anyhow::Result<(u64, u64, u64)> {
    let done = fleet.stats.counts();
    // The node polls again right after its final reply; a command sent before that
    // poll would wait for it, which an agent that is already polling never does.
    let polling = fleet.stats.wait_until(limit, |c| c.polls_in_flight > 0);
    if !polling.await {
        bail!("the node stopped polling");
    }

    let sent = fleet.stats.now_us();
    let instance = node_identity(0).instance_id;
    fleet
        .admin
        .send_echo(json!({"InstanceIds": [instance]}))
        .await?;
    let send = fleet.stats.now_us() - sent;
    let finished = fleet
        .stats
        .wait_until(limit, |c| c.successes > done.successes);
    if !finished.await {
        bail!("the command did not finish in time");
    }

    let counts = fleet.stats.counts();
    let last = counts.last_success_us.context("no success recorded")?;
    let message = counts.last_message_us.context("no message recorded")?;
    Ok((last - sent, send, message.saturating_sub(sent)))
}

fn summarize(mut times: Times, errors: u64) -> Summary {
    times.total.sort_unstable();
    times.send.sort_unstable();
    times.message.sort_unstable();
    let ms = |us: Option<&u64>| round3(us.copied().unwrap_or_default() as f64 / 1000.0);
    Summary {
        scenario: NAME,
        runs: times.total.len(),
        p50_ms: percentile_ms(&times.total, 50),
        p99_ms: percentile_ms(&times.total, 99),
        min_ms: ms(times.total.first()),
        max_ms: ms(times.total.last()),
        send_command_p50_ms: percentile_ms(&times.send, 50),
        first_message_p50_ms: percentile_ms(&times.message, 50),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_percentiles_of_each_measure() {
        let times = Times {
            total: (1..=100).rev().map(|ms| ms * 1000).collect(),
            send: vec![500; 100],
            message: vec![700; 100],
        };

        let summary = summarize(times, 0);

        assert_eq!(summary.runs, 100);
        assert_eq!((summary.p50_ms, summary.p99_ms), (50.0, 99.0));
        assert_eq!((summary.min_ms, summary.max_ms), (1.0, 100.0));
        assert_eq!(summary.send_command_p50_ms, 0.5);
        assert_eq!(summary.first_message_p50_ms, 0.7);
    }
}
