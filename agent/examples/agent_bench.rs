//! Measures the agent binary against the in-crate fake server on 127.0.0.1 and prints JSON:
//! idle RSS after a period of polling, the highest RSS while five steps each print a lot,
//! and the time from a message being queued to the final reply for `echo hi`.
//!
//! `cargo run --release -p tagrun-agent --example agent_bench -- AGENT_BINARY [IDLE_SECS]
//! [RUNS] [PRINT_MB]` (defaults 60, 200, 100).
//!
//! Limitation: the latency is the agent's share only (fake queue to final reply); the
//! server's share of `SendCommand` to `Success` is measured once tagrun-server exists.

#[path = "../tests/fake/mod.rs"]
mod fake;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use fake::{ACCESS_KEY, Fake, SECRET_KEY};
use serde_json::json;
use tokio::process::{Child, Command};

const NODE: &str = "i-0b1e2c3d4e5f60718";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = PathBuf::from(args.get(1).context("usage: agent_bench AGENT_BINARY")?);
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (idle_secs, runs, print_mb) = (number(2, 60), number(3, 200), number(4, 100));

    let fake = Fake::start().await;
    let dir = tempfile::tempdir()?;
    let agent = start_agent(&binary, &fake, dir.path())?;
    let pid = agent.id().context("agent exited")?;

    warm_up(&fake).await;
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_rss = rss_kib(pid)?;
    let busy_rss = busy_rss(&fake, pid, print_mb).await?;
    let latencies = latencies(&fake, runs).await;
    drop(agent);

    let report = json!({
        "binary_bytes": std::fs::metadata(&binary)?.len(),
        "idle_secs": idle_secs,
        "idle_rss_kib": idle_rss,
        "busy_rss_kib": busy_rss,
        "busy_steps": 5,
        "busy_print_mb_per_step": print_mb,
        "runs": runs,
        "echo_p50_ms": percentile(&latencies, 50),
        "echo_p99_ms": percentile(&latencies, 99),
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    Ok(())
}

fn start_agent(binary: &Path, fake: &Fake, dir: &Path) -> anyhow::Result<Child> {
    let config = dir.join("agent.toml");
    let text = format!(
        "endpoint = \"{}\"\nregion = \"us-east-1\"\nstate_dir = \"{}\"\ncommand_workers = 5\n\
         [credentials]\ninstance_id = \"{NODE}\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
         secret_access_key = \"{SECRET_KEY}\"\n",
        fake.endpoint(),
        dir.join("state").display()
    );
    std::fs::write(&config, text)?;
    let child = Command::new(binary)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the agent")?;
    Ok(child)
}

async fn warm_up(fake: &Fake) {
    fake.push_command("warm-up", NODE, &["echo warm"]);
    fake.final_replies(&format!("aws.ssm.warm-up.{NODE}"), Duration::from_secs(60))
        .await;
}

async fn busy_rss(fake: &Fake, pid: u32, print_mb: u64) -> anyhow::Result<u64> {
    let script = format!("head -c {} /dev/zero | tr '\\0' x", print_mb * 1_000_000);
    for n in 0..5 {
        fake.push_command(&format!("busy-{n}"), NODE, &[&script]);
    }
    let mut highest = 0;
    loop {
        highest = highest.max(rss_kib(pid)?);
        let done = (0..5).all(|n| {
            let replies = fake.replies_for(&format!("aws.ssm.busy-{n}.{NODE}"));
            replies.iter().any(|r| r["documentStatus"] != "InProgress")
        });
        if done {
            return Ok(highest);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn latencies(fake: &Fake, runs: u64) -> Vec<f64> {
    let mut times = Vec::new();
    for n in 0..runs {
        let command_id = format!("echo-{n}");
        let started = Instant::now();
        fake.push_command(&command_id, NODE, &["echo hi"]);
        let message_id = format!("aws.ssm.{command_id}.{NODE}");
        while !fake
            .replies_for(&message_id)
            .iter()
            .any(|r| r["documentStatus"] == "Success")
        {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

fn percentile(values: &[f64], p: usize) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = (sorted.len().saturating_sub(1) * p).div_ceil(100);
    sorted.get(index).copied().unwrap_or_default()
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?;
    Ok(kib)
}
