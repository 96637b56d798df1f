//! `tagrun-agent`: `register` a node with a hybrid activation, or `run` the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tagrun_agent::client::Transport;
use tagrun_agent::config::{self, AgentConfig};
use tagrun_agent::identity;
use tracing_subscriber::EnvFilter;

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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
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
