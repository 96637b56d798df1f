use std::collections::BTreeMap;

use serde_json::json;
use tagrun_wire::reply::ReplyPayload;

use super::*;

struct Harness {
    dir: tempfile::TempDir,
    spool: Arc<Spool>,
    runner: Runner,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(dir.path()).await.expect("spool"));
    let outbox = Arc::new(Outbox::new(Arc::clone(&spool)));
    let reboot_marker = dir.path().join("rebooted");
    let settings = RunnerSettings {
        instance_id: "mi-0123456789abcdef0".to_owned(),
        region: "us-east-1".to_owned(),
        kill_grace: Duration::from_secs(1),
        reboot_command: vec!["touch".to_owned(), reboot_marker.display().to_string()],
    };
    let runner = Runner::new(Arc::clone(&spool), outbox, settings);
    Harness { dir, spool, runner }
}

impl Harness {
    /// Every reply queued so far, oldest first, removing them.
    async fn replies(&self) -> Vec<ReplyPayload> {
        let mut replies = Vec::new();
        while let Some((path, request)) = self.spool.next_reply().await.expect("next") {
            replies.push(serde_json::from_str(&request.payload).expect("payload"));
            self.spool.remove_reply(&path).await.expect("remove");
        }
        replies
    }

    async fn execute(&self, record: CommandRecord) -> Finish {
        let (_switch, cancel) = watch::channel(false);
        let run = self.runner.execute(record, cancel, Gate::open());
        run.await.expect("runs")
    }
}

fn record(payload: &serde_json::Value) -> CommandRecord {
    CommandRecord {
        message_id: "aws.ssm.c1.mi-0123456789abcdef0".to_owned(),
        command_id: "c1".to_owned(),
        created_date: "2026-12-03T12:50:55.000Z".to_owned(),
        payload: payload.to_string(),
        cancel_requested: false,
        steps: Vec::new(),
    }
}

/// AWS-RunShellScript as AWS's service sends it (schema 1.2).
fn shell_payload(commands: &[&str], timeout: &str) -> serde_json::Value {
    json!({
        "CommandId": "c1",
        "DocumentName": "AWS-RunShellScript",
        "Parameters": {"commands": commands, "workingDirectory": "", "executionTimeout": timeout},
        "DocumentContent": {
            "schemaVersion": "1.2",
            "description": "Run a shell script.",
            "parameters": {
                "commands": {"type": "StringList", "description": "commands"},
                "workingDirectory": {"type": "String", "default": "", "description": "dir"},
                "executionTimeout": {"type": "String", "default": "3600", "description": "t"}
            },
            "runtimeConfig": {"aws:runShellScript": {"properties": [{
                "id": "0.aws:runShellScript",
                "runCommand": "{{ commands }}",
                "workingDirectory": "{{ workingDirectory }}",
                "timeoutSeconds": "{{ executionTimeout }}"
            }]}}
        },
        "OutputS3BucketName": "", "OutputS3KeyPrefix": "",
        "CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": "false"
    })
}

/// A 2.2 document with one shell step per entry.
fn steps_payload(steps: &[(&str, &str)]) -> serde_json::Value {
    let main_steps: Vec<_> = steps
        .iter()
        .map(|(name, script)| {
            json!({"action": "aws:runShellScript", "name": name,
                   "inputs": {"runCommand": [script]}})
        })
        .collect();
    json!({
        "CommandId": "c1",
        "DocumentName": "multi",
        "Parameters": null,
        "DocumentContent": {"schemaVersion": "2.2", "description": "d", "mainSteps": main_steps}
    })
}

fn statuses(reply: &ReplyPayload) -> Vec<(String, ResultStatus)> {
    let steps = reply.runtime_status.clone().unwrap_or_default();
    steps
        .into_iter()
        .map(|(name, r)| (name, r.status))
        .collect()
}

#[tokio::test]
async fn runs_the_captured_shell_command_and_replies_like_aws() {
    let h = harness().await;

    let finish = h
        .execute(record(&shell_payload(
            &["echo hello", "echo oops >&2"],
            "3600",
        )))
        .await;
    let replies = h.replies().await;

    assert_eq!(finish, Finish::Done);
    assert_eq!(replies.len(), 2, "one interim reply and the final reply");
    assert_eq!(replies[0].document_status, ResultStatus::InProgress);
    assert_eq!(replies[1].document_status, ResultStatus::Success);
    let step = &replies[1].runtime_status.as_ref().expect("results")["aws:runShellScript"];
    assert_eq!(step.output, "hello\n\n----------ERROR-------\noops\n");
    assert_eq!((step.standard_output.as_str(), step.code), ("hello\n", 0));
    assert_eq!(step.name, "aws:runShellScript");
}

#[tokio::test]
async fn environment_names_the_node_and_region() {
    let h = harness().await;
    let script = "echo $AWS_SSM_INSTANCE_ID $AWS_SSM_REGION_NAME";

    h.execute(record(&shell_payload(&[script], "3600"))).await;
    let replies = h.replies().await;

    let step = &replies[1].runtime_status.as_ref().expect("results")["aws:runShellScript"];
    assert_eq!(step.standard_output, "mi-0123456789abcdef0 us-east-1\n");
}

#[tokio::test]
async fn exit_168_succeeds_and_skips_the_rest() {
    let h = harness().await;
    let payload = steps_payload(&[("first", "exit 168"), ("second", "echo never")]);

    h.execute(record(&payload)).await;
    let replies = h.replies().await;

    assert_eq!(
        statuses(&replies[0]),
        [("first".to_owned(), ResultStatus::Success)]
    );
    assert_eq!(
        statuses(&replies[1]),
        [("second".to_owned(), ResultStatus::Skipped)]
    );
    assert_eq!(replies[2].document_status, ResultStatus::Success);
    assert_eq!(replies[2].runtime_status, Some(BTreeMap::new()));
}

#[tokio::test]
async fn exit_169_fails_and_skips_the_rest() {
    let h = harness().await;
    let payload = steps_payload(&[("first", "exit 169"), ("second", "echo never")]);

    h.execute(record(&payload)).await;
    let replies = h.replies().await;

    assert_eq!(
        statuses(&replies[1]),
        [("second".to_owned(), ResultStatus::Skipped)]
    );
    assert_eq!(replies[2].document_status, ResultStatus::Failed);
}

#[tokio::test]
async fn a_failed_step_does_not_stop_the_next_without_on_failure() {
    let h = harness().await;
    let payload = steps_payload(&[("first", "exit 3"), ("second", "echo ran")]);

    h.execute(record(&payload)).await;
    let replies = h.replies().await;

    let first = &replies[0].runtime_status.as_ref().expect("results")["first"];
    assert_eq!((first.status, first.code), (ResultStatus::Failed, 3));
    assert_eq!(
        statuses(&replies[1]),
        [("second".to_owned(), ResultStatus::Success)]
    );
    assert_eq!(replies[2].document_status, ResultStatus::Failed);
}

#[tokio::test]
async fn exit_194_reboots_and_runs_the_step_again_afterwards() {
    let h = harness().await;
    let counter = h.dir.path().join("runs");
    let script = format!(
        "echo run >> {c}\n[ $(wc -l < {c}) -ge 2 ] || exit 194",
        c = counter.display()
    );
    let payload = steps_payload(&[("patch", &script), ("after", "echo done")]);

    let first = h.execute(record(&payload)).await;
    let saved = h.spool.load_commands().await.expect("load");
    let before_reboot = h.replies().await;
    let second = h.execute(saved[0].clone()).await;
    let after_reboot = h.replies().await;

    assert_eq!(first, Finish::Rebooting);
    assert!(h.dir.path().join("rebooted").exists(), "reboot command ran");
    assert_eq!(
        before_reboot.last().expect("final").document_status,
        ResultStatus::SuccessAndReboot
    );
    assert_eq!(second, Finish::Done);
    assert_eq!(
        after_reboot.last().expect("final").document_status,
        ResultStatus::Success
    );
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter"),
        "run\nrun\n"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_timeout_is_timed_out() {
    let h = harness().await;

    h.execute(record(&shell_payload(&["sleep 600"], "5"))).await;
    let replies = h.replies().await;

    let step = &replies[1].runtime_status.as_ref().expect("results")["aws:runShellScript"];
    assert_eq!(
        (step.status, step.code),
        (ResultStatus::TimedOut, EXIT_STOPPED)
    );
    assert_eq!(replies[1].document_status, ResultStatus::TimedOut);
}

#[tokio::test]
async fn a_command_cancelled_before_it_starts_runs_nothing() {
    let h = harness().await;
    let marker = h.dir.path().join("ran");
    let mut command = record(&shell_payload(
        &[&format!("touch {}", marker.display())],
        "3600",
    ));
    command.cancel_requested = true;

    h.execute(command).await;
    let replies = h.replies().await;

    assert!(!marker.exists());
    assert_eq!(
        replies.last().expect("final").document_status,
        ResultStatus::Cancelled
    );
}

#[tokio::test]
async fn an_unusable_document_gets_one_failed_reply_with_the_reason() {
    let h = harness().await;
    let payload = json!({"CommandId": "c1", "DocumentName": "bad",
        "DocumentContent": {"schemaVersion": "9.9", "mainSteps": []}});

    h.execute(record(&payload)).await;
    let replies = h.replies().await;

    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].document_status, ResultStatus::Failed);
    assert!(
        replies[0].document_trace_output.contains("bad"),
        "{}",
        replies[0].document_trace_output
    );
}

#[tokio::test]
async fn output_stays_bounded_whatever_the_step_prints() {
    let h = harness().await;
    let script = "head -c 5000000 /dev/zero | tr '\\0' 'x'";

    h.execute(record(&shell_payload(&[script], "3600"))).await;
    let replies = h.replies().await;

    let step = &replies[1].runtime_status.as_ref().expect("results")["aws:runShellScript"];
    assert_eq!(
        step.standard_output.len(),
        tagrun_wire::reply::STANDARD_STREAM_LIMIT
    );
    assert!(step.standard_output.ends_with("--output truncated--"));
    assert!(step.output.len() <= tagrun_wire::reply::OUTPUT_LIMIT);
}

#[test]
fn exit_codes_map_to_aws_statuses() {
    assert_eq!(classify(&ScriptEnd::Exited(0)).0, ResultStatus::Success);
    assert_eq!(
        classify(&ScriptEnd::Exited(2)),
        (ResultStatus::Failed, 2, Stop::No)
    );
    assert_eq!(classify(&ScriptEnd::Exited(194)).2, Stop::Reboot);
    assert_eq!(classify(&ScriptEnd::Cancelled).0, ResultStatus::Cancelled);
    assert_eq!(
        classify(&ScriptEnd::Lost(String::new())),
        (ResultStatus::Failed, 1, Stop::No)
    );
}

#[tokio::test]
async fn a_command_whose_record_was_not_stored_runs_and_queues_nothing() {
    let h = harness().await;
    let marker = h.dir.path().join("ran");
    let payload = shell_payload(&[&format!("touch {}", marker.display())], "3600");
    let (switch, gate) = Gate::pending();
    let (_cancel_switch, cancel) = watch::channel(false);

    switch.send_replace(Some(false));
    let result = h.runner.execute(record(&payload), cancel, gate).await;

    assert!(
        matches!(result, Err(RunError::NotStored { .. })),
        "{result:?}"
    );
    assert!(!marker.exists());
    assert!(h.replies().await.is_empty());
}
