//! A small fake of the server side on 127.0.0.1:0: it checks every signature the agent
//! sends, records the calls, hands out queued messages on GetMessages, registers nodes and
//! issues role credentials.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::pss::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::Sha256;
use tagrun_wire::messages::{Message, message_id, payload_digest};
use tagrun_wire::sigv4::{self, Authorization};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Static keys the fake accepts.
pub const ACCESS_KEY: &str = "AKIAEXAMPLENODE00001";
/// Their secret.
pub const SECRET_KEY: &str = "node-secret";
/// Role credentials the fake issues for registered nodes.
pub const ROLE_KEY: &str = "ASIAEXAMPLEROLE00001";
const ROLE_SECRET: &str = "role-secret";
const ROLE_TOKEN: &str = "role-session-token";

/// One call the agent made.
#[derive(Debug, Clone)]
pub struct Call {
    /// `X-Amz-Target` without the service prefix, e.g. `SendReply`.
    pub operation: String,
    /// The JSON body.
    pub body: Value,
}

impl Call {
    /// The reply payload of a SendReply call.
    pub fn reply(&self) -> Value {
        serde_json::from_str(self.body["Payload"].as_str().unwrap_or("null")).expect("payload")
    }
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    queue: VecDeque<Message>,
    /// Answer SendReply with a server error while set.
    refuse_replies: bool,
    /// Public keys of registered nodes.
    keys: HashMap<String, RsaPublicKey>,
    bad_signatures: Vec<String>,
    registrations: u32,
    /// Ask the next token caller to rotate its key.
    rotate_next: bool,
    /// Lifetime of issued role credentials.
    token_lifetime: Option<Duration>,
}

/// The running fake.
#[derive(Clone)]
pub struct Fake {
    /// Its address.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

impl Fake {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = Fake {
            addr: listener.local_addr().expect("addr"),
            state: Arc::default(),
            wake: Arc::default(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let fake = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let fake = fake.clone();
                        async move { Ok::<_, Infallible>(fake.answer(request).await) }
                    });
                    let connection =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = connection.await {
                        eprintln!("fake connection ended: {error}");
                    }
                });
            }
        });
        fake
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a message for the next GetMessages.
    pub fn push(&self, message: Message) {
        self.lock().queue.push_back(message);
        self.wake.notify_waiters();
    }

    /// Queues a sendCommand message running `commands` with AWS-RunShellScript.
    pub fn push_command(&self, command_id: &str, instance_id: &str, commands: &[&str]) {
        self.push(command_message(
            command_id,
            instance_id,
            &shell_payload(command_id, commands),
        ));
    }

    /// Makes SendReply fail (HTTP 500) or succeed again.
    pub fn refuse_replies(&self, refuse: bool) {
        self.lock().refuse_replies = refuse;
    }

    /// Asks the node to rotate its key with the next token, and sets the lifetime of the
    /// role credentials it issues.
    pub fn rotate_key_next(&self, token_lifetime: Duration) {
        let mut state = self.lock();
        state.rotate_next = true;
        state.token_lifetime = Some(token_lifetime);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The SendReply payloads for a message id, in arrival order.
    pub fn replies_for(&self, message_id: &str) -> Vec<Value> {
        // Scanned under the lock rather than cloned: the benchmark calls this in a loop.
        self.lock()
            .calls
            .iter()
            .filter(|c| c.operation == "SendReply" && c.body["MessageId"] == message_id)
            .map(Call::reply)
            .collect()
    }

    /// Waits until the final reply for `message_id` arrived and returns all its replies.
    pub async fn final_replies(&self, message_id: &str, limit: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let replies = self.replies_for(message_id);
            if replies.iter().any(|r| r["documentStatus"] != "InProgress") {
                return replies;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no final reply: {replies:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a call satisfies `wanted`.
    pub async fn wait_for(&self, limit: Duration, wanted: impl Fn(&Call) -> bool) -> Call {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(call) = self.calls().into_iter().find(|c| wanted(c)) {
                return call;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call never came: {:?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> Vec<String> {
        self.lock().bad_signatures.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if parts.uri.path().starts_with("/latest/") {
            return imds(parts.method.as_str(), parts.uri.path(), &parts.headers);
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let target = header("x-amz-target");
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();

        if let Err(reason) = self.verify(&operation, &headers, &body) {
            self.lock()
                .bad_signatures
                .push(format!("{operation}: {reason}"));
            return respond(
                400,
                json!({"__type": "InvalidSignatureException", "Message": reason}),
            );
        }
        self.lock().calls.push(Call {
            operation: operation.clone(),
            body: json.clone(),
        });
        self.dispatch(&operation, &json).await
    }

    async fn dispatch(&self, operation: &str, body: &Value) -> Response<Full<Bytes>> {
        match operation {
            "GetMessages" => self.get_messages(body).await,
            "SendReply" if self.lock().refuse_replies => respond(
                500,
                json!({"__type": "InternalServerException", "Message": "down"}),
            ),
            "RegisterManagedInstance" => self.register(body),
            "RequestManagedInstanceRoleToken" => self.issue_token(),
            "UpdateManagedInstancePublicKey" => respond(200, json!({})),
            _ => respond(200, json!({})),
        }
    }

    fn issue_token(&self) -> Response<Full<Bytes>> {
        let mut state = self.lock();
        let lifetime = state.token_lifetime.unwrap_or(Duration::from_secs(3600));
        let rotate = std::mem::take(&mut state.rotate_next);
        let expires = SystemTime::now() + lifetime;
        let expires = expires
            .duration_since(UNIX_EPOCH)
            .expect("epoch")
            .as_secs_f64();
        respond(
            200,
            json!({"AccessKeyId": ROLE_KEY, "SecretAccessKey": ROLE_SECRET,
                "SessionToken": ROLE_TOKEN, "TokenExpirationDate": expires,
                "UpdateKeyPair": rotate}),
        )
    }

    async fn get_messages(&self, body: &Value) -> Response<Full<Bytes>> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        loop {
            let woken = self.wake.notified();
            let messages: Vec<Message> = self.lock().queue.drain(..).collect();
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline {
                return respond(
                    200,
                    json!({"Destination": body["Destination"],
                    "MessagesRequestId": body["MessagesRequestId"], "Messages": messages}),
                );
            }
            // Either a message arrived or the hold time is over; the loop checks which.
            tokio::time::timeout_at(deadline, woken)
                .await
                .unwrap_or_default();
        }
    }

    fn register(&self, body: &Value) -> Response<Full<Bytes>> {
        let key = public_key(&body["PublicKey"]);
        let mut state = self.lock();
        state.registrations += 1;
        let instance_id = format!("mi-{:017x}", 0xabc00 + u64::from(state.registrations));
        state.keys.insert(instance_id.clone(), key);
        respond(200, json!({"InstanceId": instance_id}))
    }

    fn verify(
        &self,
        operation: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), String> {
        let all: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let authorization = all
            .iter()
            .find(|(n, _)| *n == "authorization")
            .map(|(_, v)| *v);
        if operation == "RegisterManagedInstance" {
            return match authorization {
                None => Ok(()),
                Some(_) => Err("registration must be unsigned".to_owned()),
            };
        }
        let parsed = Authorization::parse(authorization.ok_or("unsigned request")?)
            .map_err(|e| e.to_string())?;
        let signed = parsed
            .select_signed_headers(&all)
            .map_err(|e| e.to_string())?;
        let amz_date = all
            .iter()
            .find(|(n, _)| *n == "x-amz-date")
            .map(|(_, v)| *v)
            .unwrap_or("");
        let hash = sigv4::payload_hash(body);
        let request = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &signed,
            payload_sha256: &hash,
        };

        if operation == "RequestManagedInstanceRoleToken" {
            return self.verify_rsa(&parsed, &request, amz_date);
        }
        if operation == "UpdateManagedInstancePublicKey" {
            self.verify_rsa(&parsed, &request, amz_date)?;
            let body: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            let key = public_key(&body["NewPublicKey"]);
            self.lock().keys.insert(parsed.access_key_id.clone(), key);
            return Ok(());
        }
        let secret = match parsed.access_key_id.as_str() {
            ACCESS_KEY => SECRET_KEY,
            ROLE_KEY
                if signed
                    .iter()
                    .any(|(n, v)| *n == "x-amz-security-token" && *v == ROLE_TOKEN) =>
            {
                ROLE_SECRET
            }
            other => return Err(format!("unknown access key {other}")),
        };
        let expected = sigv4::expected_signature(&request, secret, amz_date, &parsed.scope);
        if sigv4::signatures_match(&expected, &parsed.signature) {
            Ok(())
        } else {
            Err("signature mismatch".to_owned())
        }
    }

    fn verify_rsa(
        &self,
        parsed: &Authorization,
        request: &sigv4::Request<'_>,
        amz_date: &str,
    ) -> Result<(), String> {
        let key = self
            .lock()
            .keys
            .get(&parsed.access_key_id)
            .cloned()
            .ok_or("unknown node")?;
        let to_sign =
            sigv4::string_to_sign(amz_date, &parsed.scope, &sigv4::canonical_request(request));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&parsed.signature)
            .map_err(|e| e.to_string())?;
        let signature = Signature::try_from(bytes.as_slice()).map_err(|e| e.to_string())?;
        VerifyingKey::<Sha256>::new(key)
            .verify(to_sign.as_bytes(), &signature)
            .map_err(|e| format!("RSA-PSS signature invalid: {e}"))
    }
}

fn public_key(text: &Value) -> RsaPublicKey {
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.as_str().unwrap_or_default())
        .expect("base64 key");
    RsaPublicKey::from_public_key_der(&der).expect("SubjectPublicKeyInfo")
}

/// The instance metadata service (IMDSv2) of an EC2 node named `IMDS_NODE`.
fn imds(method: &str, path: &str, headers: &hyper::HeaderMap) -> Response<Full<Bytes>> {
    let text = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    if method == "PUT" && path == "/latest/api/token" {
        return text(200, IMDS_TOKEN.to_owned());
    }
    if headers
        .get("x-aws-ec2-metadata-token")
        .is_none_or(|t| t != IMDS_TOKEN)
    {
        return text(401, String::new());
    }
    let expires = SystemTime::now() + Duration::from_secs(3600);
    match path {
        "/latest/meta-data/instance-id" => text(200, IMDS_NODE.to_owned()),
        "/latest/meta-data/iam/security-credentials/" => text(200, "NodeRole".to_owned()),
        "/latest/meta-data/iam/security-credentials/NodeRole" => text(
            200,
            json!({"Code": "Success", "AccessKeyId": ROLE_KEY, "SecretAccessKey": ROLE_SECRET,
                "Token": ROLE_TOKEN,
                "Expiration": tagrun_wire::time::iso8601_millis(expires)})
            .to_string(),
        ),
        _ => text(404, String::new()),
    }
}

/// The instance id the fake metadata service reports.
pub const IMDS_NODE: &str = "i-0a1b2c3d4e5f60718";
const IMDS_TOKEN: &str = "imds-session-token";

fn respond(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// A sendCommand message as AWS's service shapes it.
pub fn command_message(command_id: &str, instance_id: &str, payload: &Value) -> Message {
    let payload = payload.to_string();
    Message {
        created_date: tagrun_wire::time::iso8601_millis(SystemTime::now()),
        destination: instance_id.to_owned(),
        message_id: message_id(command_id, instance_id),
        topic: "aws.ssm.sendCommand.us.east.1.1".to_owned(),
        payload_digest: payload_digest(&payload),
        payload,
        next_token: None,
    }
}

/// A cancelCommand message for `target_command_id`, with its own id.
pub fn cancel_message(cancel_id: &str, instance_id: &str, target_command_id: &str) -> Message {
    let payload = json!({"CancelMessageId": message_id(target_command_id, instance_id)});
    Message {
        topic: "aws.ssm.cancelCommand.us.east.1.1".to_owned(),
        ..command_message(cancel_id, instance_id, &payload)
    }
}

/// AWS-RunShellScript's payload (schema 1.2) with the values already filled in.
pub fn shell_payload(command_id: &str, commands: &[&str]) -> Value {
    json!({
        "CommandId": command_id,
        "DocumentName": "AWS-RunShellScript",
        "Parameters": {"commands": commands, "workingDirectory": "", "executionTimeout": "3600"},
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
