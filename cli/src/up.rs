//! `tagrun up`: the server on embedded defaults and one local agent in one process.
//!
//! The first run writes `server.toml` (with a generated administrator key) and
//! `agent.toml` into the data directory, creates an activation, registers the local
//! node with it and sends a first command by tag; later runs reuse all of it. Then it
//! serves until Ctrl-C, so the `aws` CLI can be pointed at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};
use tagrun_wire::sigv4::{Credentials, JsonCall, sign_json_call};
use tokio::sync::watch;

/// Flags of `tagrun up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the server's database, the agent's state and both config files live.
    #[arg(long, default_value = "tagrun-data")]
    data_dir: PathBuf,
    /// The server's listen address.
    #[arg(long, default_value = "127.0.0.1:7733")]
    listen: SocketAddr,
}

const REGION: &str = "us-east-1";
const ADMIN_KEY_FILE: &str = "admin-credentials.json";
/// The tags the local node carries: one from its activation, one it reports itself.
const NODE_TAG: (&str, &str) = ("Role", "local");

/// Runs `tagrun up` until Ctrl-C.
pub fn run(args: &UpArgs) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: &UpArgs) -> anyhow::Result<String> {
    let mut signals = StopSignals::new()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let admin = admin_credentials(&data_dir)?;
    let server_config = write_server_config(&data_dir, args.listen, &admin)?;

    // The agent stops first, so that it does not see its server go away.
    let (stop_server, server_stopped) = watch::channel(false);
    let (stop_agent, agent_stopped) = watch::channel(false);
    let (address, server) = start_server(&server_config, server_stopped).await?;
    let api = Api::new(address, admin.clone());
    let agent = start_agent(&data_dir, &api, agent_stopped).await?;

    let instance_id = agent.instance_id.clone();
    let first = first_command(&api, &instance_id).await;
    print_summary(&api, &instance_id, &data_dir, &admin, &first);

    signals.wait().await;
    eprintln!("stopping");
    stop_agent.send_replace(true);
    agent.task.await.context("the agent task")??;
    stop_server.send_replace(true);
    server.await.context("the server task")?;
    Ok(String::new())
}

/// The administrator's keys, generated once and kept in the data directory.
fn admin_credentials(data_dir: &Path) -> anyhow::Result<Credentials> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Credentials {
            access_key_id: text_field(&value, "AccessKeyId")?,
            secret_access_key: text_field(&value, "SecretAccessKey")?,
            session_token: None,
        });
    }
    let upper: String = random_text(16).to_ascii_uppercase();
    let credentials = Credentials {
        access_key_id: format!("AKIA{upper}"),
        secret_access_key: random_text(40),
        session_token: None,
    };
    let text = json!({
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
    });
    write_private(&path, &serde_json::to_string_pretty(&text)?)?;
    Ok(credentials)
}

fn text_field(value: &Value, key: &str) -> anyhow::Result<String> {
    match value[key].as_str() {
        Some(text) => Ok(text.to_owned()),
        None => bail!("{ADMIN_KEY_FILE} lacks {key}"),
    }
}

fn random_text(len: usize) -> String {
    let rng = rand::rng();
    rng.sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Writes `server.toml` (each run, so `--listen` takes effect) and returns its path.
fn write_server_config(
    data_dir: &Path,
    listen: SocketAddr,
    admin: &Credentials,
) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("server.toml");
    let text = format!(
        r#"# Written by `tagrun up`; edit freely, it is rewritten on the next `tagrun up`.
listen = "{listen}"
region = "{REGION}"
account_id = "123456789012"
data_dir = "{server_dir}"

[[users]]
name = "admin"
access_key_id = "{key}"
secret_access_key = "{secret}"
managed_policies = ["AmazonSSMFullAccess"]

[[roles]]
name = "SSMServiceRole"
managed_policies = ["AmazonSSMManagedInstanceCore"]
"#,
        server_dir = data_dir.join("server").display(),
        key = admin.access_key_id,
        secret = admin.secret_access_key,
    );
    write_private(&path, &text)?;
    Ok(path)
}

async fn start_server(
    path: &Path,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let config = tagrun_server::config::Config::load(path)?;
    let listen = config.listen;
    let server = tagrun_server::Server::bind(config)
        .await
        .with_context(|| format!("starting the server on {listen} (is another one running?)"))?;
    let address = server.local_addr();
    let task = tokio::spawn(server.serve(async move {
        // A closed channel means the process is going away: stop as well.
        let _closed = stopped.wait_for(|stop| *stop).await;
    }));
    Ok((address, task))
}

/// The local agent, running in this process.
struct Agent {
    instance_id: String,
    task: tokio::task::JoinHandle<Result<(), tagrun_agent::AgentError>>,
}

async fn start_agent(
    data_dir: &Path,
    api: &Api,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<Agent> {
    let state_dir = data_dir.join("agent");
    let endpoint = format!("http://{}", api.address);
    let config_path = data_dir.join("agent.toml");
    let text = format!(
        r#"# Written by `tagrun up`; rewritten on the next `tagrun up`.
endpoint = "{endpoint}"
region = "{REGION}"
state_dir = "{state}"
tags = {{ Env = "dev" }}
health_interval_secs = 300
command_workers = 5
# A step that exits 194 asks for a reboot; this is a developer's machine, so say so
# instead. The step runs again when the agent next starts.
reboot_command = ["/bin/sh", "-c", "echo 'tagrun up: not rebooting this machine' >&2"]
"#,
        state = state_dir.display()
    );
    write_private(&config_path, &text)?;
    let config = tagrun_agent::config::AgentConfig::load(&config_path)?;

    let registered = tagrun_agent::identity::load_registration(&state_dir).await?;
    let instance_id = match registered {
        Some((registration, _key)) => registration.instance_id,
        None => register(api, &config).await?,
    };
    let task = tokio::spawn(tagrun_agent::run(config, async move {
        let _closed = stopped.wait_for(|stop| *stop).await;
    }));
    Ok(Agent { instance_id, task })
}

/// Creates an activation tagged `Role=local` and registers the local node with it.
async fn register(api: &Api, config: &tagrun_agent::config::AgentConfig) -> anyhow::Result<String> {
    let (key, value) = NODE_TAG;
    let activation = api
        .call(
            "CreateActivation",
            json!({
                "IamRole": "SSMServiceRole",
                "DefaultInstanceName": "local",
                "Description": "the node of `tagrun up`",
                "Tags": [{ "Key": key, "Value": value }],
            }),
        )
        .await?;
    let transport = tagrun_agent::client::Transport::new(
        config.endpoint.clone(),
        REGION,
        None,
        Duration::from_secs(30),
    )?;
    let registration = tagrun_agent::identity::register(
        &transport,
        &config.state_dir,
        &text_field(&activation, "ActivationId")?,
        &text_field(&activation, "ActivationCode")?,
    )
    .await?;
    Ok(registration.instance_id)
}

/// What became of the first command.
struct FirstCommand {
    command_id: String,
    status: String,
    output: String,
}

/// Sends `uname -a` to the local node by its tag and waits for the answer.
async fn first_command(api: &Api, instance_id: &str) -> anyhow::Result<FirstCommand> {
    wait_until_online(api, instance_id).await?;
    let (key, value) = NODE_TAG;
    let sent = api
        .call(
            "SendCommand",
            json!({
                "DocumentName": "AWS-RunShellScript",
                "Targets": [{ "Key": format!("tag:{key}"), "Values": [value] }],
                "Parameters": { "commands": ["uname -a"] },
                "Comment": "tagrun up",
            }),
        )
        .await?;
    let command_id = text_field(&sent["Command"], "CommandId")?;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = json!({ "CommandId": command_id, "InstanceId": instance_id });
        if let Ok(answer) = api.call("GetCommandInvocation", body).await {
            let status = text_field(&answer, "Status")?;
            if !matches!(status.as_str(), "Pending" | "InProgress" | "Delayed") {
                let output = text_field(&answer, "StandardOutputContent")?;
                return Ok(FirstCommand {
                    command_id,
                    status,
                    output,
                });
            }
        }
        if Instant::now() > deadline {
            bail!("command {command_id} did not finish within a minute");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until_online(api: &Api, instance_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = json!({ "Filters": [{ "Key": "InstanceIds", "Values": [instance_id] }] });
        let answer = api.call("DescribeInstanceInformation", body).await?;
        if answer["InstanceInformationList"][0]["PingStatus"] == "Online" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {instance_id} did not come online within 30 seconds");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_summary(
    api: &Api,
    instance_id: &str,
    data_dir: &Path,
    admin: &Credentials,
    first: &anyhow::Result<FirstCommand>,
) {
    let endpoint = format!("http://{}", api.address);
    let (key, value) = NODE_TAG;
    let outcome = match first {
        Ok(first) => format!(
            "command: {} AWS-RunShellScript `uname -a`\nstatus:  {}\noutput:\n{}",
            first.command_id,
            first.status,
            indent(&first.output)
        ),
        Err(error) => format!("the first command failed: {error:#}\n"),
    };
    let text = format!(
        r#"tagrun is up at {endpoint} (data in {data})
node:    {instance_id} (tags {key}={value}, Env=dev)
{outcome}
Try it with the aws CLI:

  export AWS_ACCESS_KEY_ID={key_id}
  export AWS_SECRET_ACCESS_KEY={secret}
  export AWS_DEFAULT_REGION={REGION}
  aws --endpoint-url {endpoint} ssm describe-instance-information
  aws --endpoint-url {endpoint} ssm send-command --document-name AWS-RunShellScript \
      --targets Key=tag:{key},Values={value} --parameters 'commands=uptime'
  aws --endpoint-url {endpoint} ssm list-command-invocations --details
  aws --endpoint-url {endpoint} ssm get-command-invocation \
      --command-id COMMAND_ID --instance-id {instance_id}

Serving until Ctrl-C.
"#,
        data = data_dir.display(),
        key_id = admin.access_key_id,
        secret = admin.secret_access_key,
    );
    #[allow(clippy::print_stdout)]
    {
        print!("{text}");
    }
}

fn indent(output: &str) -> String {
    output.lines().map(|line| format!("  {line}\n")).collect()
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the start so that a signal sent
/// right after the summary is printed is not lost.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Signed calls to the local server as the administrator.
struct Api {
    address: SocketAddr,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Api {
    fn new(address: SocketAddr, credentials: Credentials) -> Api {
        Api {
            address,
            credentials,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, operation: &str, body: Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let host = self.address.to_string();
        let target = format!("AmazonSSM.{operation}");
        let amz_date = tagrun_wire::time::amz_date(SystemTime::now());
        let call = JsonCall {
            host: &host,
            target: &target,
            body: body.as_bytes(),
            region: REGION,
            service: "ssm",
            amz_date: &amz_date,
        };
        let mut request = self
            .http
            .post(format!("http://{host}/"))
            .header("content-type", tagrun_wire::sigv4::JSON_CONTENT_TYPE)
            .header("x-amz-target", &target)
            .body(body.clone());
        for (name, value) in sign_json_call(&self.credentials, &call) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {operation}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading {operation}"))?;
        let answer: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading the answer to {operation}"))?;
        if !status.is_success() {
            bail!(
                "{operation} failed: {} {}",
                answer["__type"],
                answer["Message"]
            );
        }
        Ok(answer)
    }
}
