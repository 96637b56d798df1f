//! The real `tagrun-agent` binary against the fake server: SIGKILL while a step runs,
//! SIGTERM, `--version`, and a bad config.

mod fake;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fake::{ACCESS_KEY, Fake, SECRET_KEY};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

const NODE: &str = "i-0fedcba9876543210";
const WAIT: Duration = Duration::from_secs(30);

fn write_config(fake: &Fake, dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "endpoint = \"{}\"\nregion = \"us-east-1\"\nstate_dir = \"{}\"\n\
         health_interval_secs = 3600\n\n[credentials]\ninstance_id = \"{NODE}\"\n\
         access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n",
        fake.endpoint(),
        dir.join("state").display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn agent(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tagrun-agent"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent binary starts")
}

fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    kill(Pid::from_raw(pid), signal).expect("signal delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_survives_sigkill_of_the_agent_and_its_result_arrives() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&fake, dir.path());
    let counter = dir.path().join("runs");
    let script = format!("echo run >> {}; sleep 2; echo survived", counter.display());

    let mut first = agent(&config);
    fake.push_command("c-kill", NODE, &[&script]);
    fake.wait_for(WAIT, |c| c.operation == "AcknowledgeMessage")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&first, Signal::SIGKILL);
    first.wait().await.expect("reaped");
    let mut second = agent(&config);
    let replies = fake
        .final_replies(&format!("aws.ssm.c-kill.{NODE}"), WAIT)
        .await;
    signal(&second, Signal::SIGTERM);
    let status = tokio::time::timeout(WAIT, second.wait())
        .await
        .expect("exits")
        .expect("status");

    let last = replies.last().expect("final");
    assert_eq!(last["documentStatus"], "Success");
    assert_eq!(
        last["runtimeStatus"]["aws:runShellScript"]["output"],
        "survived\n"
    );
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter"),
        "run\n",
        "ran once"
    );
    assert!(status.success(), "SIGTERM ends the agent cleanly: {status}");
}

#[tokio::test]
async fn prints_its_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_tagrun-agent"))
        .arg("--version")
        .output()
        .await
        .expect("runs");

    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert_eq!(
        text.trim(),
        format!("tagrun-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_bad_config_exits_non_zero_naming_the_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "endpoint = \"http://127.0.0.1:1\"\nregion = \"r\"\nworkers = 2\n",
    )
    .expect("config");

    let output = Command::new(env!("CARGO_BIN_EXE_tagrun-agent"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .expect("runs");

    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        text.contains("agent.toml") && text.contains("workers"),
        "{text}"
    );
}
