//! The agent against a fake of the server side on 127.0.0.1: signatures, the order of
//! replies and acknowledgements, registration, outages, restarts, cancel, concurrency.

mod fake;

use std::path::Path;
use std::time::Duration;

use fake::{ACCESS_KEY, Fake, SECRET_KEY, cancel_message, command_message};
use serde_json::{Value, json};
use tagrun_agent::client::Transport;
use tagrun_agent::config::AgentConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NODE: &str = "i-0123456789abcdef0";
const WAIT: Duration = Duration::from_secs(20);

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).expect("agent listens");
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent stops")
            .expect("task");
    }
}

fn config_text(fake: &Fake, state_dir: &Path, extra: &str) -> String {
    format!(
        "endpoint = \"{}\"\nregion = \"us-east-1\"\nstate_dir = \"{}\"\n\
         health_interval_secs = 3600\nkill_grace_secs = 1\n{extra}",
        fake.endpoint(),
        state_dir.display()
    )
}

fn static_keys() -> String {
    format!(
        "[credentials]\ninstance_id = \"{NODE}\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
         secret_access_key = \"{SECRET_KEY}\"\n"
    )
}

fn start(text: &str) -> Running {
    let config = AgentConfig::parse(text, Path::new("agent.toml")).expect("config");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            // A dropped sender stops the agent too.
            stopped.await.unwrap_or_default();
        };
        tagrun_agent::run(config, shutdown)
            .await
            .expect("agent runs");
    });
    Running { stop, task }
}

fn operations(fake: &Fake) -> Vec<String> {
    fake.calls().into_iter().map(|c| c.operation).collect()
}

fn step(reply: &Value) -> &Value {
    &reply["runtimeStatus"]["aws:runShellScript"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_command_with_aws_reply_order_and_valid_signatures() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tags = "tags = { Finance = \"WebServer\" }\n";
    let agent = start(&config_text(
        &fake,
        dir.path(),
        &format!("{tags}{}", static_keys()),
    ));

    fake.push_command("c-hello", NODE, &["echo hello"]);
    let message_id = format!("aws.ssm.c-hello.{NODE}");
    let replies = fake.final_replies(&message_id, WAIT).await;
    agent.stop().await;

    assert_eq!(fake.bad_signatures(), Vec::<String>::new());
    let ops = operations(&fake);
    assert_eq!(
        ops[0], "UpdateInstanceInformation",
        "minimal health report comes first"
    );
    let first_reply = ops.iter().position(|o| o == "SendReply").expect("reply");
    let ack = ops
        .iter()
        .position(|o| o == "AcknowledgeMessage")
        .expect("ack");
    assert!(
        first_reply < ack,
        "InProgress reply precedes the acknowledgement: {ops:?}"
    );
    assert_eq!(replies[0]["documentStatus"], "InProgress");
    assert_eq!(replies[0]["runtimeStatus"], Value::Null);
    assert_eq!(step(&replies[1])["status"], "Success");
    let last = replies.last().expect("final");
    assert_eq!(last["documentStatus"], "Success");
    assert_eq!(step(last)["output"], "hello\n");
    let health = fake
        .wait_for(WAIT, |c| c.body["AgentStatus"] == "Active")
        .await;
    assert_eq!(
        health.body["Tags"],
        json!([{"Key": "Finance", "Value": "WebServer"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_then_polls_with_rsa_signed_role_credentials() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = tagrun_agent::config::parse_url(&fake.endpoint()).expect("url");
    let transport =
        Transport::new(endpoint, "us-east-1", None, Duration::from_secs(10)).expect("transport");

    let registration = tagrun_agent::identity::register_with_key_size(
        &transport,
        dir.path(),
        "0c9c1c8a-1d2c-4b5e-8e1f-123456789abc",
        "activation-code-0123456789",
        1024,
    )
    .await
    .expect("registers");
    let agent = start(&config_text(&fake, dir.path(), ""));
    fake.push_command("c-reg", &registration.instance_id, &["echo registered"]);
    let message_id = format!("aws.ssm.c-reg.{}", registration.instance_id);
    let replies = fake.final_replies(&message_id, WAIT).await;
    agent.stop().await;

    assert!(registration.instance_id.starts_with("mi-"));
    assert_eq!(fake.bad_signatures(), Vec::<String>::new());
    assert_eq!(operations(&fake)[1], "RequestManagedInstanceRoleToken");
    assert_eq!(replies.last().expect("final")["documentStatus"], "Success");
    let mode = std::fs::metadata(dir.path().join("private-key.pem"))
        .expect("key")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_wait_on_disk_while_the_server_refuses_them_and_arrive_in_order() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    fake.refuse_replies(true);
    let agent = start(&config_text(&fake, dir.path(), &static_keys()));

    fake.push_command("c-outage", NODE, &["echo one", "echo two"]);
    fake.wait_for(WAIT, |c| c.operation == "AcknowledgeMessage")
        .await;
    // Receipt, step and final reply all wait on disk while the server refuses them.
    let replies_dir = dir.path().join("replies");
    let count = || std::fs::read_dir(&replies_dir).expect("replies").count();
    let deadline = tokio::time::Instant::now() + WAIT;
    while count() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = count();
    fake.refuse_replies(false);
    let replies = fake
        .final_replies(&format!("aws.ssm.c-outage.{NODE}"), WAIT)
        .await;
    agent.stop().await;

    assert_eq!(queued, 3, "replies were kept on disk");
    let statuses: Vec<&Value> = replies.iter().map(|r| &r["documentStatus"]).collect();
    assert_eq!(statuses.last().copied(), Some(&json!("Success")));
    let times: Vec<&str> = replies
        .iter()
        .map(|r| r["additionalInfo"]["dateTime"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "replies arrive in the order they were made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_payload_gets_a_failed_reply_and_the_agent_keeps_going() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(&config_text(&fake, dir.path(), &static_keys()));

    let mut bad = command_message("c-bad", NODE, &json!({}));
    bad.payload = "{not json".to_owned();
    fake.push(bad);
    fake.push_command("c-good", NODE, &["echo fine"]);
    let bad_replies = fake
        .final_replies(&format!("aws.ssm.c-bad.{NODE}"), WAIT)
        .await;
    let good_replies = fake
        .final_replies(&format!("aws.ssm.c-good.{NODE}"), WAIT)
        .await;
    agent.stop().await;

    assert_eq!(bad_replies.len(), 1);
    assert_eq!(bad_replies[0]["documentStatus"], "Failed");
    assert!(
        bad_replies[0]["documentTraceOutput"]
            .as_str()
            .unwrap_or("")
            .contains("payload")
    );
    assert_eq!(
        good_replies.last().expect("final")["documentStatus"],
        "Success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_outlives_the_agent_is_reported_by_the_next_one() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config_text(&fake, dir.path(), &static_keys());
    let counter = dir.path().join("runs");
    let script = format!(
        "echo run >> {}; sleep 2; echo finished; exit 3",
        counter.display()
    );

    let first = start(&text);
    fake.push_command("c-restart", NODE, &[&script]);
    fake.wait_for(WAIT, |c| c.operation == "AcknowledgeMessage")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    let second = start(&text);
    let replies = fake
        .final_replies(&format!("aws.ssm.c-restart.{NODE}"), WAIT)
        .await;
    second.stop().await;

    let last = replies.last().expect("final");
    assert_eq!(last["documentStatus"], "Failed");
    assert_eq!(step(last)["code"], 3);
    assert_eq!(step(last)["standardOutput"], "finished\n");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter"),
        "run\n",
        "ran once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_command() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(&config_text(&fake, dir.path(), &static_keys()));

    fake.push_command("c-long", NODE, &["sleep 600"]);
    fake.wait_for(WAIT, |c| c.operation == "AcknowledgeMessage")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.push(cancel_message("c-cancel", NODE, "c-long"));
    let replies = fake
        .final_replies(&format!("aws.ssm.c-long.{NODE}"), WAIT)
        .await;
    agent.stop().await;

    assert_eq!(
        replies.last().expect("final")["documentStatus"],
        "Cancelled"
    );
    let cancel_replies = fake.replies_for(&format!("aws.ssm.c-cancel.{NODE}"));
    assert_eq!(cancel_replies[0]["documentStatus"], "InProgress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_commands_run_at_the_same_time() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(&config_text(&fake, dir.path(), &static_keys()));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    // Each command waits for the other's file, so they only finish if both run at once.
    let wait_for = |mine: &Path, other: &Path| {
        format!(
            "touch {}; n=0; while [ ! -f {} ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done; \
             [ -f {} ]",
            mine.display(),
            other.display(),
            other.display()
        )
    };

    fake.push_command("c-a", NODE, &[&wait_for(&a, &b)]);
    fake.push_command("c-b", NODE, &[&wait_for(&b, &a)]);
    let first = fake
        .final_replies(&format!("aws.ssm.c-a.{NODE}"), WAIT)
        .await;
    let second = fake
        .final_replies(&format!("aws.ssm.c-b.{NODE}"), WAIT)
        .await;
    agent.stop().await;

    assert_eq!(first.last().expect("final")["documentStatus"], "Success");
    assert_eq!(second.last().expect("final")["documentStatus"], "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_record_never_reached_the_disk_runs_when_it_comes_again() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // What a crash leaves when it comes after the step's started marker was written but
    // before the command's record was: a marker, and no record.
    let step_dir = dir.path().join("output/c-again/0-aws_runShellScript.0.0");
    std::fs::create_dir_all(&step_dir).expect("step dir");
    std::fs::write(
        step_dir.join("started"),
        br#"{"boot_id":"","started_at_ms":1}"#,
    )
    .expect("marker");
    let agent = start(&config_text(&fake, dir.path(), &static_keys()));

    fake.push_command("c-again", NODE, &["echo again"]);
    let replies = fake
        .final_replies(&format!("aws.ssm.c-again.{NODE}"), WAIT)
        .await;
    agent.stop().await;

    let last = replies.last().expect("final");
    assert_eq!(last["documentStatus"], "Success");
    assert_eq!(step(last)["output"], "again\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_is_acknowledged_but_not_run_again() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start(&config_text(&fake, dir.path(), &static_keys()));
    let counter = dir.path().join("runs");
    let script = format!("echo run >> {}", counter.display());

    fake.push_command("c-once", NODE, &[&script]);
    let message_id = format!("aws.ssm.c-once.{NODE}");
    fake.final_replies(&message_id, WAIT).await;
    fake.push_command("c-once", NODE, &[&script]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.wait_for(WAIT, |c| {
        c.operation == "AcknowledgeMessage" && c.body["MessageId"] == message_id
    })
    .await;
    let acks = fake
        .calls()
        .iter()
        .filter(|c| c.operation == "AcknowledgeMessage" && c.body["MessageId"] == message_id)
        .count();
    agent.stop().await;

    assert_eq!(acks, 2);
    assert_eq!(std::fs::read_to_string(&counter).expect("counter"), "run\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_its_key_when_asked_and_signs_with_the_new_one() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = tagrun_agent::config::parse_url(&fake.endpoint()).expect("url");
    let transport =
        Transport::new(endpoint, "us-east-1", None, Duration::from_secs(10)).expect("transport");
    tagrun_agent::identity::register_with_key_size(
        &transport,
        dir.path(),
        "0c9c1c8a-1d2c-4b5e-8e1f-123456789abc",
        "activation-code-0123456789",
        1024,
    )
    .await
    .expect("registers");
    let old_key = std::fs::read_to_string(dir.path().join("private-key.pem")).expect("key");

    fake.rotate_key_next(Duration::from_secs(62));
    let agent = start(&config_text(&fake, dir.path(), ""));
    fake.wait_for(WAIT, |c| c.operation == "UpdateManagedInstancePublicKey")
        .await;
    let token_calls = |fake: &Fake| {
        let calls = fake.calls();
        calls
            .iter()
            .filter(|c| c.operation == "RequestManagedInstanceRoleToken")
            .count()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while token_calls(&fake) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.stop().await;

    let new_key = std::fs::read_to_string(dir.path().join("private-key.pem")).expect("key");
    assert_ne!(old_key, new_key);
    assert!(token_calls(&fake) >= 2, "credentials renewed before expiry");
    assert_eq!(fake.bad_signatures(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_an_ec2_identity_from_imds_only_when_enabled() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let imds = format!(
        "[imds]\nenabled = true\naddress = \"{}\"\n",
        fake.endpoint()
    );
    let agent = start(&config_text(&fake, dir.path(), &imds));

    fake.push_command("c-ec2", fake::IMDS_NODE, &["echo ec2"]);
    let replies = fake
        .final_replies(&format!("aws.ssm.c-ec2.{}", fake::IMDS_NODE), WAIT)
        .await;
    agent.stop().await;

    assert_eq!(replies.last().expect("final")["documentStatus"], "Success");
    assert_eq!(fake.bad_signatures(), Vec::<String>::new());
    let disabled = AgentConfig::parse(
        &config_text(
            &fake,
            dir.path(),
            &format!("[imds]\naddress = \"{}\"\n", fake.endpoint()),
        ),
        Path::new("agent.toml"),
    )
    .expect("config");
    assert!(disabled.imds_address.is_none());
}
