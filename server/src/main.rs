//! `tagrun-server`: flags, configuration, logging; the library does the rest.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tagrun_server::Server;
use tagrun_server::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "tagrun-server",
    version,
    about = "Self-hosted AWS Run Command control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or Ctrl-C.
    Serve {
        /// Configuration file (TOML); embedded defaults without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding the file (`127.0.0.1:0` picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory, overriding the file.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL URL, overriding the file.
        #[arg(long)]
        database_url: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tagrun-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve {
        config,
        listen,
        data_dir,
        database_url,
    } = cli.command;
    let mut config = match config {
        Some(path) => Config::load(&path)?,
        None => Config::with_defaults(PathBuf::from("/var/lib/tagrun-server")),
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    if database_url.is_some() {
        config.database_url = database_url;
    }

    let server = Server::bind(config).await.context("starting the server")?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    #[allow(clippy::print_stdout)]
    {
        // Tests and scripts read this first line to find the port.
        println!("listening on {scheme}://{}", server.local_addr());
    }
    server.serve(shutdown_signal()).await;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
