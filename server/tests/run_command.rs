//! Run Command over the real HTTP listener, with the nodes played by a client written
//! against the messages protocol's own types from `tagrun-wire`.

mod common;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Value, json};
use tagrun_server::auth::managed;
use tagrun_server::config::{Config, Role, StaticNode, User};
use tagrun_server::engine::Detail;
use tagrun_server::store::{self, NewCommand, NewInvocation, Store, Unresolved};
use tagrun_wire::messages::{GetMessagesRequest, GetMessagesResponse, SendReplyRequest};
use tagrun_wire::reply::{
    AdditionalInfo, AgentInfo, PluginRuntimeStatus, ReplyPayload, ResultStatus,
};
use tagrun_wire::sigv4::{Credentials, JsonCall, sign_json_call};

use common::{REGION, Reply, TestServer, request};

const NODE: &str = "i-0123456789abcdef0";

fn admin() -> Credentials {
    Credentials {
        access_key_id: "AKIAEXAMPLEADMIN0001".into(),
        secret_access_key: "admin-secret".into(),
        session_token: None,
    }
}

fn node_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIAEXAMPLENODE00001".into(),
        secret_access_key: "node-secret".into(),
        session_token: None,
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut config = common::config(dir);
    let policy = |name| managed::policy(name).expect("a built-in policy").clone();
    config.users.push(User {
        name: "admin".into(),
        access_key_id: admin().access_key_id,
        secret_access_key: admin().secret_access_key,
        policies: vec![policy("AmazonSSMFullAccess")],
        tags: BTreeMap::new(),
    });
    config.roles.push(Role {
        name: "SSMServiceRole".into(),
        policies: vec![policy("AmazonSSMManagedInstanceCore")],
    });
    config.nodes.push(StaticNode {
        instance_id: NODE.into(),
        access_key_id: node_credentials().access_key_id,
        secret_access_key: node_credentials().secret_access_key,
        role: "SSMServiceRole".into(),
        tags: BTreeMap::new(),
    });
    config
}

thread_local! {
    /// One HTTP client per test (each runs on a thread of its own): building one loads
    /// the system's root certificates, some 20 ms in a debug build.
    static CLIENT: reqwest::Client = reqwest::Client::new();
}

/// Calls `target` with `body`, signed for `service` with `credentials`.
async fn call(
    server: &TestServer,
    credentials: &Credentials,
    service: &str,
    target: &str,
    body: &Value,
) -> Reply {
    let body = body.to_string();
    let host = server.host();
    let amz_date = tagrun_wire::time::amz_date(SystemTime::now());
    let signed = JsonCall {
        host: &host,
        target,
        body: body.as_bytes(),
        region: REGION,
        service,
        amz_date: &amz_date,
    };
    let headers = sign_json_call(credentials, &signed);
    let client = CLIENT.with(Clone::clone);
    let url = format!("http://{host}/");
    let response = request(&client, &url, target, body.as_bytes(), &headers)
        .send()
        .await;
    Reply::read(response.expect("the server answers")).await
}

async fn ssm(server: &TestServer, operation: &str, body: Value) -> Reply {
    call(
        server,
        &admin(),
        "ssm",
        &format!("AmazonSSM.{operation}"),
        &body,
    )
    .await
}

async fn poll(server: &TestServer) -> GetMessagesResponse {
    let request = GetMessagesRequest {
        destination: NODE.into(),
        messages_request_id: uuid_like(),
        visibility_timeout_in_seconds: Some(10),
        next_token: None,
    };
    let body = serde_json::to_value(request).expect("a request");
    let target = "EC2WindowsMessageDeliveryService.GetMessages";
    let reply = call(server, &node_credentials(), "ec2messages", target, &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    serde_json::from_value(reply.body).expect("a GetMessages response")
}

async fn reply(server: &TestServer, message_id: &str, status: ResultStatus, stdout: &str) -> Reply {
    final_reply(server, &node_credentials(), message_id, status, stdout).await
}

/// A final reply from the node with `credentials`.
async fn reply_as(
    server: &TestServer,
    credentials: &Credentials,
    message_id: &str,
    status: ResultStatus,
) -> Reply {
    final_reply(server, credentials, message_id, status, "hi\n").await
}

async fn final_reply(
    server: &TestServer,
    credentials: &Credentials,
    message_id: &str,
    status: ResultStatus,
    stdout: &str,
) -> Reply {
    let now = tagrun_wire::time::iso8601_millis(SystemTime::now());
    let step = PluginRuntimeStatus {
        status,
        code: 0,
        name: "aws:runShellScript".into(),
        output: stdout.into(),
        start_date_time: now.clone(),
        end_date_time: now.clone(),
        output_s3_bucket_name: String::new(),
        output_s3_key_prefix: String::new(),
        step_name: String::new(),
        standard_output: stdout.into(),
        standard_error: String::new(),
    };
    let payload = ReplyPayload {
        additional_info: AdditionalInfo {
            agent: AgentInfo::default(),
            date_time: now,
            run_id: String::new(),
            runtime_status_counts: None,
            able_to_open_mgs_connection: None,
        },
        document_status: status,
        document_trace_output: String::new(),
        runtime_status: Some(BTreeMap::from([("aws:runShellScript".to_string(), step)])),
    };
    let request = SendReplyRequest {
        message_id: message_id.into(),
        reply_id: uuid_like(),
        payload: serde_json::to_string(&payload).expect("a payload"),
        delivery_options: None,
    };
    let body = serde_json::to_value(request).expect("a request");
    let target = "EC2WindowsMessageDeliveryService.SendReply";
    call(server, credentials, "ec2messages", target, &body).await
}

fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn invocation(server: &TestServer, command_id: &str) -> Value {
    let body = json!({ "CommandId": command_id, "InstanceId": NODE });
    ssm(server, "GetCommandInvocation", body).await.body
}

#[tokio::test]
async fn a_held_poll_returns_the_command_as_soon_as_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;

    let (polled, sent) = tokio::join!(poll(&server), async {
        // The poll is already waiting when the command arrives; it must not wait out
        // its hold time.
        tokio::task::yield_now().await;
        let body = json!({
            "DocumentName": "AWS-RunShellScript",
            "InstanceIds": [NODE],
            "Parameters": { "commands": ["echo hi"] },
        });
        ssm(&server, "SendCommand", body).await
    });

    let command_id = sent.body["Command"]["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    let messages = polled.messages;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.message_id, format!("aws.ssm.{command_id}.{NODE}"));
    assert!(message.is_complete());
    assert_eq!(
        message.payload_digest,
        tagrun_wire::messages::payload_digest(&message.payload)
    );
    let payload = tagrun_wire::command::SendCommandPayload::parse(&message.payload).unwrap();
    assert_eq!(payload.command_id, command_id);
    server.stop().await;
}

#[tokio::test]
async fn a_reboot_keeps_the_invocation_running_until_the_final_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let body = json!({
        "DocumentName": "AWS-RunShellScript",
        "InstanceIds": [NODE],
        "Parameters": { "commands": ["exit 194"] },
    });
    let command_id = ssm(&server, "SendCommand", body).await.body["Command"]["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    let message_id = poll(&server).await.messages[0].message_id.clone();

    reply(
        &server,
        &message_id,
        ResultStatus::SuccessAndReboot,
        "rebooting\n",
    )
    .await;
    let during = invocation(&server, &command_id).await;
    reply(
        &server,
        &message_id,
        ResultStatus::Success,
        "after the boot\n",
    )
    .await;
    let after = invocation(&server, &command_id).await;

    assert_eq!(during["Status"], "InProgress");
    assert_eq!(after["Status"], "Success");
    assert_eq!(after["StandardOutputContent"], "after the boot\n");
    server.stop().await;
}

#[tokio::test]
async fn a_reply_for_an_unknown_message_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;

    let answer = reply(
        &server,
        &format!("aws.ssm.{}.{NODE}", uuid_like()),
        ResultStatus::Success,
        "",
    )
    .await;

    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_type(), Some("InvalidMessageIdException"));
    server.stop().await;
}

/// Static nodes `i-...1` to `i-...count`, each with its own keys, tagged `fleet=big`.
fn big_fleet(config: &mut Config, count: usize) -> Vec<(String, Credentials)> {
    (1..=count)
        .map(|n| {
            let instance_id = format!("i-{n:017x}");
            let credentials = Credentials {
                access_key_id: format!("AKIABIGFLEET{n:08}"),
                secret_access_key: format!("secret-{n}"),
                session_token: None,
            };
            config.nodes.push(StaticNode {
                instance_id: instance_id.clone(),
                access_key_id: credentials.access_key_id.clone(),
                secret_access_key: credentials.secret_access_key.clone(),
                role: "SSMServiceRole".into(),
                tags: BTreeMap::from([("fleet".to_string(), "big".to_string())]),
            });
            (instance_id, credentials)
        })
        .collect()
}

#[tokio::test]
async fn a_command_to_more_nodes_than_its_first_transaction_holds_reaches_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let fleet = big_fleet(&mut config, 130);
    let server = TestServer::start(config).await;

    let body = json!({
        "DocumentName": "AWS-RunShellScript",
        "Targets": [{ "Key": "tag:fleet", "Values": ["big"] }],
        "MaxConcurrency": "100%",
        "Parameters": { "commands": ["echo hi"] },
    });
    let sent = ssm(&server, "SendCommand", body).await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let command_id = sent.body["Command"]["CommandId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sent.body["Command"]["TargetCount"], 130);

    // Every invocation exists once SendCommand has answered, the last node's too.
    let (last, _) = fleet.last().unwrap();
    let body = json!({ "CommandId": command_id, "InstanceId": last });
    let last_invocation = ssm(&server, "GetCommandInvocation", body).await;
    assert_eq!(last_invocation.status, 200, "{:?}", last_invocation.body);

    for (instance_id, credentials) in &fleet {
        let request = GetMessagesRequest {
            destination: instance_id.clone(),
            messages_request_id: uuid_like(),
            visibility_timeout_in_seconds: Some(10),
            next_token: None,
        };
        let body = serde_json::to_value(request).unwrap();
        let target = "EC2WindowsMessageDeliveryService.GetMessages";
        let polled = call(&server, credentials, "ec2messages", target, &body).await;
        let polled: GetMessagesResponse = serde_json::from_value(polled.body).unwrap();
        assert_eq!(polled.messages.len(), 1, "{instance_id} got no message");
        let message_id = format!("aws.ssm.{command_id}.{instance_id}");
        assert_eq!(polled.messages[0].message_id, message_id);
        let answered = reply_as(&server, credentials, &message_id, ResultStatus::Success).await;
        assert_eq!(answered.status, 200, "{:?}", answered.body);
    }

    let listed = ssm(&server, "ListCommands", json!({ "CommandId": command_id })).await;
    let command = &listed.body["Commands"][0];
    assert_eq!(command["Status"], "Success");
    assert_eq!(command["CompletedCount"], 130);
    server.stop().await;
}

/// A command whose `SendCommand` stopped after storing its first invocations, as if
/// the server had died there: `after` is the last node it had looked at.
fn interrupted_command(command_id: &str, caller_json: &str, first: &[String]) -> NewCommand {
    let requested_ms = store::now_ms() - 60_000;
    let request = json!({
        "DocumentName": "AWS-RunShellScript",
        "Targets": [{ "Key": "tag:fleet", "Values": ["big"] }],
        "MaxConcurrency": "100%",
        "Parameters": { "commands": ["echo hi"] },
    });
    NewCommand {
        command_id: command_id.into(),
        requested_ms,
        delivery_deadline_ms: requested_ms + 3_600_000,
        expires_ms: requested_ms + 7_200_000,
        requester: "arn:aws:iam::123456789012:user/admin".into(),
        document_name: "AWS-RunShellScript".into(),
        document_version: "$DEFAULT".into(),
        comment: String::new(),
        max_concurrency: "100%".into(),
        max_errors: "0".into(),
        request_json: request.to_string(),
        payload: json!({ "CommandId": command_id }).to_string(),
        steps: vec!["aws:runShellScript".into()],
        no_targets: false,
        invocations: first
            .iter()
            .map(|id| NewInvocation {
                instance_id: id.clone(),
                instance_name: String::new(),
                detail: Detail::Pending,
            })
            .collect(),
        unresolved: Some(Unresolved {
            after: first.last().expect("a first node").clone(),
            caller_json: caller_json.into(),
        }),
    }
}

async fn command_row(server: &TestServer, command_id: &str) -> Value {
    let listed = ssm(server, "ListCommands", json!({ "CommandId": command_id })).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    listed.body["Commands"][0].clone()
}

#[tokio::test]
async fn a_restarted_server_finishes_resolving_the_targets_of_an_interrupted_send() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let fleet = big_fleet(&mut config, 130);
    // The first start registers the fleet.
    TestServer::start(config.clone()).await.stop().await;

    let first: Vec<String> = fleet.iter().take(10).map(|(id, _)| id.clone()).collect();
    let sender = r#"{"user":"admin","source_ip":"127.0.0.1","secure":false,"user_agent":"t"}"#;
    let gone = r#"{"user":"gone","source_ip":"127.0.0.1","secure":false,"user_agent":"t"}"#;
    let store = Store::open(dir.path(), None).await.unwrap();
    let topic = "us.east.1.1";
    let by_admin = interrupted_command("11111111-2222-3333-4444-555555555555", sender, &first);
    let by_gone = interrupted_command("66666666-7777-8888-9999-000000000000", gone, &first);
    store.create_command(&by_admin, topic).await.unwrap();
    store.create_command(&by_gone, topic).await.unwrap();
    drop(store);

    let server = TestServer::start(config).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    for command in [&by_admin, &by_gone] {
        loop {
            let row = command_row(&server, &command.command_id).await;
            if row["TargetCount"] == 130 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not resolved: {row}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    // The sender's policies decide the nodes found after the restart: the admin's
    // allow them, a user no longer configured has none.
    let (last, _) = fleet.last().unwrap();
    let last_of =
        |command: &NewCommand| json!({ "CommandId": command.command_id, "InstanceId": last });
    let allowed = ssm(&server, "GetCommandInvocation", last_of(&by_admin)).await;
    assert_eq!(
        allowed.body["StatusDetails"], "Pending",
        "{:?}",
        allowed.body
    );
    let denied = ssm(&server, "GetCommandInvocation", last_of(&by_gone)).await;
    assert_eq!(
        denied.body["StatusDetails"], "AccessDenied",
        "{:?}",
        denied.body
    );
    let gone_row = command_row(&server, &by_gone.command_id).await;
    assert_eq!(gone_row["CompletedCount"], 120);
    assert_eq!(gone_row["Status"], "InProgress");
    server.stop().await;
}
