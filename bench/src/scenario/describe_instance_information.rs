//! `describe-instance-information`: a read-only user lists the server's nodes with
//! `AmazonSSM.DescribeInstanceInformation`, each request freshly signed, so every call
//! pays for SigV4 verification, the IAM policy check and the node query.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use hyper::body::Bytes;
use tagrun_server::config::Config;
use tagrun_wire::sigv4::Credentials;

use super::{LoadArgs, Outcome};
use crate::client::Signer;
use crate::cpu::Placement;
use crate::load::{LoadOptions, Workload};

/// The subcommand's name, also the `scenario` field of the output.
pub const NAME: &str = "describe-instance-information";

const REGION: &str = "us-east-1";
const USER_KEY: &str = "AKIAEXAMPLEBENCH0001";
const USER_SECRET: &str = "bench-secret-access-key";

/// Flags of this scenario.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Load flags.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Static nodes the server knows (each answer lists them all, up to 50).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(0..=50))]
    pub nodes: u16,
}

/// Runs the scenario as its flags say.
pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    measure(args.nodes, args.load.options(), &args.load.placement()?)
}

/// Serves `nodes` static nodes from a fresh data directory and measures the calls.
pub fn measure(nodes: u16, options: LoadOptions, placement: &Placement) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir().context("creating a data directory")?;
    let config = config(dir.path(), nodes)?;
    super::run_against_server(NAME, config, workload(), options, placement)
}

/// The request every connection repeats.
fn workload() -> Workload {
    Workload {
        target: "AmazonSSM.DescribeInstanceInformation",
        body: Bytes::from_static(b"{}"),
        signer: Signer {
            credentials: Credentials {
                access_key_id: USER_KEY.into(),
                secret_access_key: USER_SECRET.into(),
                session_token: None,
            },
            region: REGION.into(),
            service: "ssm",
        },
    }
}

/// The server's configuration, written as an operator would and parsed like theirs.
fn config(data_dir: &Path, nodes: u16) -> anyhow::Result<Config> {
    let path = data_dir.join("bench.toml");
    let mut config = Config::parse(&config_text(nodes), &path).context("parsing bench.toml")?;
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.data_dir = data_dir.join("data");
    Ok(config)
}

fn config_text(nodes: u16) -> String {
    let mut text = format!(
        "region = \"{REGION}\"\n\
         \n\
         [[users]]\n\
         name = \"bench\"\n\
         access_key_id = \"{USER_KEY}\"\n\
         secret_access_key = \"{USER_SECRET}\"\n\
         managed_policies = [\"AmazonSSMReadOnlyAccess\"]\n\
         \n\
         [[roles]]\n\
         name = \"BenchNodeRole\"\n\
         managed_policies = [\"AmazonSSMManagedInstanceCore\"]\n"
    );
    for n in 0..nodes {
        text.push_str(&format!(
            "\n[[nodes]]\n\
             instance_id = \"i-{n:017x}\"\n\
             access_key_id = \"AKIABENCHNODE{n:07}\"\n\
             secret_access_key = \"node-secret-{n}\"\n\
             role = \"BenchNodeRole\"\n\
             tags = {{ Name = \"bench-{n}\", Environment = \"benchmark\" }}\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn configuration_holds_the_user_and_every_node() {
        let dir = tempfile::tempdir().unwrap();

        let config = config(dir.path(), 20).unwrap();

        assert_eq!(config.users.len(), 1);
        assert_eq!(config.nodes.len(), 20);
        assert_eq!(config.nodes[19].instance_id, "i-00000000000000013");
    }

    #[test]
    fn short_run_is_answered_without_errors() {
        let options = LoadOptions {
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(300),
        };

        let outcome = measure(3, options, &Placement::default()).unwrap();

        assert_eq!(outcome.summary.errors, 0, "{:?}", outcome.first_error);
        assert!(outcome.summary.requests > 0);
        assert!(outcome.summary.p50_ms <= outcome.summary.p99_ms);
        assert!(outcome.summary.server_cpu_seconds.is_some());
    }
}
