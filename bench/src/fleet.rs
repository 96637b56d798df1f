//! A fleet of simulated nodes against the real server binary: the configuration that
//! declares them, the server process, the node tasks, and an administrator's calls.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::body::Bytes;
use serde_json::{Value, json};
use tagrun_wire::sigv4::Credentials;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::child::{self, Memory, ServerProcess};
use crate::client::{Client, Signer};
use crate::cpu;
use crate::load::round3;
use crate::node::{self, FleetStats, NodeIdentity};

/// The region of the server and of every signature.
pub const REGION: &str = "us-east-1";

const ADMIN_KEY: &str = "AKIABENCHADMIN000001";
const ADMIN_SECRET: &str = "bench-admin-secret";

/// The tag every node carries, as `Targets` names it.
pub const FLEET_TAG: (&str, &str) = ("fleet", "bench");

/// Connections opened at once while the fleet starts: more would overflow the server's
/// listen backlog, and a dropped SYN costs a one-second retransmit.
const CONNECTS_AT_ONCE: usize = 128;

/// The identity of node number `n`.
pub fn node_identity(n: usize) -> NodeIdentity {
    NodeIdentity {
        instance_id: format!("i-{n:017x}"),
        signer: Signer {
            credentials: Credentials {
                access_key_id: format!("AKIABENCHNODE{n:07}"),
                secret_access_key: format!("node-secret-{n}"),
                session_token: None,
            },
            region: REGION.into(),
            service: tagrun_wire::messages::SIGNING_NAME,
        },
    }
}

/// The server configuration: an administrator with `AmazonSSMFullAccess` and `nodes`
/// static nodes tagged `fleet = bench`, with data in `data` beside the file.
pub fn config_text(nodes: usize) -> String {
    let (tag_key, tag_value) = FLEET_TAG;
    let mut text = format!(
        "region = \"{REGION}\"\n\
         data_dir = \"data\"\n\
         \n\
         [[users]]\n\
         name = \"bench-admin\"\n\
         access_key_id = \"{ADMIN_KEY}\"\n\
         secret_access_key = \"{ADMIN_SECRET}\"\n\
         managed_policies = [\"AmazonSSMFullAccess\"]\n\
         \n\
         [[roles]]\n\
         name = \"BenchNodeRole\"\n\
         managed_policies = [\"AmazonSSMManagedInstanceCore\"]\n"
    );
    for n in 0..nodes {
        let node = node_identity(n);
        let keys = &node.signer.credentials;
        text.push_str(&format!(
            "\n[[nodes]]\n\
             instance_id = \"{}\"\n\
             access_key_id = \"{}\"\n\
             secret_access_key = \"{}\"\n\
             role = \"BenchNodeRole\"\n\
             tags = {{ {tag_key} = \"{tag_value}\" }}\n",
            node.instance_id, keys.access_key_id, keys.secret_access_key
        ));
    }
    text
}

/// Flags every fleet scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// The `tagrun-server` binary; by default the one next to this program.
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Longest wait for the fleet to come online, or for a command to finish.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_seconds: u64,
    /// `RUST_LOG` of the server; its log is kept in the temporary directory until exit.
    #[arg(long, default_value = "info")]
    pub server_log: String,
    /// Keep the temporary directory (configuration, database, server log) after the run.
    #[arg(long)]
    pub keep_data: bool,
}

impl FleetArgs {
    /// [`FleetArgs::timeout_seconds`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }
}

/// The server process, its nodes polling, and an administrator's connection.
#[derive(Debug)]
pub struct Fleet {
    /// The server.
    pub server: ServerProcess,
    /// What the nodes did.
    pub stats: Arc<FleetStats>,
    /// The administrator's connection.
    pub admin: Admin,
    /// Node count.
    pub size: usize,
    nodes: JoinSet<()>,
    // Removed at drop, with the database and the server log, unless kept.
    _dir: Option<tempfile::TempDir>,
}

impl Fleet {
    /// Starts the server with `size` nodes in its configuration, starts every node and
    /// waits until each has sent its first poll and the server shows it `Online`.
    pub async fn start(args: &FleetArgs, size: usize) -> anyhow::Result<Fleet> {
        child::raise_open_files_limit().context("raising the open-files limit")?;
        let binary = child::server_binary(args.server_binary.as_deref())?;
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let config = dir.path().join("tagrun.toml");
        std::fs::write(&config, config_text(size)).context("writing the configuration")?;
        let log = dir.path().join("server.log");
        let server = ServerProcess::start(&binary, &config, &log, &args.server_log).await?;
        // On stderr, so `perf top -p` can be pointed at the server during the run.
        eprintln!(
            "tagrun-bench: server pid {} on {}, started in {:?}",
            server.pid(),
            server.address,
            server.start_time
        );

        let stats = Arc::new(FleetStats::default());
        let nodes = spawn_nodes(size, server.address, &stats);
        let mut fleet = Fleet {
            admin: Admin::new(server.address),
            server,
            stats,
            size,
            nodes,
            _dir: if args.keep_data {
                eprintln!("tagrun-bench: keeping {}", dir.keep().display());
                None
            } else {
                Some(dir)
            },
        };
        fleet.wait_online(args.timeout()).await?;
        Ok(fleet)
    }

    /// Waits for every node's first poll, then until no node shows `ConnectionLost`.
    async fn wait_online(&mut self, limit: Duration) -> anyhow::Result<()> {
        let size = self.size as u64;
        let polling = self.stats.wait_until(limit, |c| c.polling_nodes == size);
        if !polling.await {
            bail!(
                "only {} of {size} nodes polled in time",
                self.stats.counts().polling_nodes
            );
        }

        let deadline = tokio::time::Instant::now() + limit;
        while self.admin.any_node_offline().await? {
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "some nodes were not Online in time; see {}",
                    self.server.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Resident memory of the server.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        self.server.memory()
    }

    /// Ends every node, then stops the server.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.nodes.abort_all();
        while self.nodes.join_next().await.is_some() {}
        self.server.stop().await
    }
}

/// One task per node, in a set that aborts them all when dropped.
fn spawn_nodes(size: usize, address: SocketAddr, stats: &Arc<FleetStats>) -> JoinSet<()> {
    let connecting = Arc::new(Semaphore::new(CONNECTS_AT_ONCE));
    let mut nodes = JoinSet::new();
    for n in 0..size {
        nodes.spawn(node::run(
            node_identity(n),
            address,
            stats.clone(),
            connecting.clone(),
        ));
    }
    nodes
}

/// CPU time this process (the nodes and the driver) has used, in seconds.
pub fn client_cpu_seconds() -> anyhow::Result<f64> {
    let used = cpu::process_cpu_time(std::process::id()).context("reading this process's CPU")?;
    Ok(round3(used.as_secs_f64()))
}

/// An administrator (`AmazonSSMFullAccess`) calling `AmazonSSM.*` on its own connection.
#[derive(Debug)]
pub struct Admin {
    client: Client,
    signer: Signer,
}

/// A command as `ListCommands` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    /// `Status`.
    pub status: String,
    /// `TargetCount`.
    pub target_count: u64,
    /// `CompletedCount`.
    pub completed_count: u64,
}

impl Admin {
    /// An administrator's client of the server at `address`.
    pub fn new(address: SocketAddr) -> Admin {
        Admin {
            client: Client::new(address),
            signer: Signer {
                credentials: Credentials {
                    access_key_id: ADMIN_KEY.into(),
                    secret_access_key: ADMIN_SECRET.into(),
                    session_token: None,
                },
                region: REGION.into(),
                service: "ssm",
            },
        }
    }

    /// Calls `AmazonSSM.<operation>` with `input` and returns the answer.
    pub async fn call(&mut self, operation: &str, input: &Value) -> anyhow::Result<Value> {
        let target = format!("AmazonSSM.{operation}");
        let body = Bytes::from(serde_json::to_vec(input)?);
        let answer = self.client.call(&self.signer, &target, body).await;
        let answer = answer.with_context(|| format!("calling {operation}"))?;
        serde_json::from_slice(&answer).with_context(|| format!("reading the {operation} answer"))
    }

    /// Whether any node of the fleet shows `ConnectionLost` (one filtered page suffices).
    pub async fn any_node_offline(&mut self) -> anyhow::Result<bool> {
        let (tag_key, tag_value) = FLEET_TAG;
        let input = json!({
            "Filters": [
                {"Key": "PingStatus", "Values": ["ConnectionLost"]},
                {"Key": format!("tag:{tag_key}"), "Values": [tag_value]},
            ],
            "MaxResults": 5,
        });
        let answer = self.call("DescribeInstanceInformation", &input).await?;
        let list = answer["InstanceInformationList"].as_array();
        Ok(list.is_some_and(|nodes| !nodes.is_empty()))
    }

    /// Sends `AWS-RunShellScript` with `echo` to `targets` (a `SendCommand` input
    /// fragment), all at once, and returns the command id.
    pub async fn send_echo(&mut self, targets: Value) -> anyhow::Result<String> {
        let mut input = json!({
            "DocumentName": "AWS-RunShellScript",
            "Parameters": {"commands": ["echo bench"]},
            "MaxConcurrency": "100%",
            "Comment": "tagrun-bench",
        });
        if let (Some(input), Some(targets)) = (input.as_object_mut(), targets.as_object()) {
            input.extend(targets.clone());
        }
        let answer = self.call("SendCommand", &input).await?;
        let id = answer["Command"]["CommandId"].as_str();
        Ok(id
            .context("SendCommand answered without a CommandId")?
            .to_owned())
    }

    /// The command as `ListCommands` shows it.
    pub async fn command_state(&mut self, command_id: &str) -> anyhow::Result<CommandState> {
        let answer = self
            .call("ListCommands", &json!({"CommandId": command_id}))
            .await?;
        let command = &answer["Commands"][0];
        let count = |field: &str| command[field].as_u64().unwrap_or_default();
        Ok(CommandState {
            status: command["Status"].as_str().unwrap_or_default().to_owned(),
            target_count: count("TargetCount"),
            completed_count: count("CompletedCount"),
        })
    }
}

/// The whole fleet's `Targets`: every node tagged `fleet = bench`.
pub fn fleet_targets() -> Value {
    let (tag_key, tag_value) = FLEET_TAG;
    json!({"Targets": [{"Key": format!("tag:{tag_key}"), "Values": [tag_value]}]})
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The configuration as the server reads it from a file in `dir`.
    fn parse(text: &str, dir: &Path) -> tagrun_server::config::Config {
        tagrun_server::config::Config::parse(text, &dir.join("tagrun.toml")).unwrap()
    }

    #[test]
    fn every_node_is_declared_with_its_own_keys_and_the_fleet_tag() {
        let dir = tempfile::tempdir().unwrap();

        let config = parse(&config_text(3), dir.path());

        assert_eq!(config.nodes.len(), 3);
        assert_eq!(config.nodes[2].instance_id, "i-00000000000000002");
        assert_eq!(config.nodes[2].access_key_id, "AKIABENCHNODE0000002");
        assert_eq!(config.nodes[2].tags["fleet"], "bench");
        assert_eq!(config.users[0].access_key_id, ADMIN_KEY);
        assert_eq!(config.data_dir, dir.path().join("data"));
    }

    #[test]
    fn instance_ids_have_seventeen_hex_digits() {
        let id = node_identity(9999).instance_id;

        assert_eq!(id, "i-0000000000000270f");
        assert_eq!(id.len(), 19);
    }
}
