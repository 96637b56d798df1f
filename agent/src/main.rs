//! `tagrun-agent`: `register` a node with a hybrid activation, or `run` the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tagrun_agent::client::Transport;
use tagrun_agent::config::{self, AgentConfig};
use tagrun_agent::identity;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The tagrun node agent.
#[derive(Parser)]
#[command(name = "tagrun-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register this node with a hybrid activation and print its managed instance id.
    Register {
        /// The tagrun (or Systems Manager) endpoint URL.
        #[arg(long)]
        endpoint: String,
        /// The region the activation belongs to.
        #[arg(long)]
        region: String,
        /// The activation id from `aws ssm create-activation`.
        #[arg(long)]
        activation_id: String,
        /// The activation code from `aws ssm create-activation`.
        #[arg(long)]
        activation_code: String,
        /// Where the registration and key are stored.
        #[arg(long, default_value = config::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Run the agent.
    Run {
        /// The config file.
        #[arg(long, default_value = config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(log_filter())
        .init();

    // One thread is plenty for an agent that mostly waits, and keeps its memory small;
    // file I/O and key generation run on tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tagrun-agent: could not start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tagrun-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter from `RUST_LOG` (`info` when unset or unreadable): a default level and
/// `target=level` pairs, such as `warn,tagrun_agent::runner=debug`.
///
/// Limitation: span and field filters (`[span{field=value}]=level`) are not understood;
/// a `RUST_LOG` using them falls back to `info`. The full filter would bring a regular
/// expression engine into the agent's memory at every start.
fn log_filter() -> Targets {
    let text = std::env::var("RUST_LOG").unwrap_or_default();
    parse_log_filter(&text).unwrap_or_else(|error| {
        eprintln!("tagrun-agent: RUST_LOG not understood ({error}), logging at info");
        Targets::new().with_default(LevelFilter::INFO)
    })
}

fn parse_log_filter(text: &str) -> Result<Targets, tracing_subscriber::filter::ParseError> {
    if text.trim().is_empty() {
        return Ok(Targets::new().with_default(LevelFilter::INFO));
    }
    text.parse()
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Register {
            endpoint,
            region,
            activation_id,
            activation_code,
            state_dir,
        } => {
            let endpoint = config::parse_url(&endpoint)
                .map_err(anyhow::Error::msg)
                .context("reading --endpoint")?;
            let transport = Transport::new(endpoint, &region, None, Duration::from_secs(30))
                .context("setting up the HTTP client")?;
            let registration =
                identity::register(&transport, &state_dir, &activation_id, &activation_code)
                    .await
                    .context("registering the node")?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", registration.instance_id);
            }
            Ok(())
        }
        Command::Run { config } => {
            let config = AgentConfig::load(&config).context("reading agent config")?;
            tagrun_agent::run(config, shutdown_signal())
                .await
                .context("running the agent")
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};

    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers; stop the agent with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn log_filter_takes_a_default_level_and_per_target_levels() {
        let filter = parse_log_filter("warn,tagrun_agent::runner=debug").expect("filter");

        assert!(filter.would_enable("tagrun_agent::runner", &Level::DEBUG));
        assert!(!filter.would_enable("tagrun_agent::poller", &Level::INFO));
        assert!(filter.would_enable("hyper", &Level::WARN));
    }

    #[test]
    fn log_filter_defaults_to_info_and_refuses_what_it_cannot_read() {
        let filter = parse_log_filter("").expect("default");

        assert!(filter.would_enable("tagrun_agent", &Level::INFO));
        assert!(!filter.would_enable("tagrun_agent", &Level::DEBUG));
        assert!(parse_log_filter("tagrun_agent=loud").is_err());
    }
}
