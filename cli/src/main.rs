//! `tagrun`: the operator command line.
//!
//! Exit status: 0 when the command did its work (a simulated denial included), 2 when
//! the flags or the input files are wrong (clap uses 2 for usage errors as well).

mod context_entries;
mod simulate;
mod up;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for bad flags, unreadable files and malformed policies.
const USAGE_ERROR: u8 = 2;

/// tagrun: AWS Systems Manager Run Command, self-hosted.
#[derive(Debug, Parser)]
#[command(name = "tagrun", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with IAM policies offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run the server on embedded defaults and one local agent, send a first
    /// command, print how to use it with the aws CLI, and serve until Ctrl-C.
    Up(up::UpArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Evaluate IAM policies for actions and resources, like
    /// `aws iam simulate-custom-policy`, and print the results as JSON.
    Simulate(simulate::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    let output = match cli.command {
        Command::Policy {
            command: PolicyCommand::Simulate(args),
        } => simulate::run(&args),
        Command::Up(args) => {
            init_logging();
            up::run(&args)
        }
    };

    match output.and_then(|text| write_stdout(&text)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            // Nothing better can be done when even stderr is gone.
            let _ignored = writeln!(stderr, "tagrun: {error:#}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

/// Logs of the embedded server and agent go to stderr; warnings only unless
/// `RUST_LOG` asks for more, so the summary stays readable.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}
