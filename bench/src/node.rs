//! Simulated nodes: each long-polls `GetMessages` over its own keep-alive connection the
//! way AWS's agent does, and answers every command at once with the agent's sequence of
//! calls: the `InProgress` receipt, `AcknowledgeMessage`, the step's result, and the
//! final `Success` reply.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hyper::body::Bytes;
use serde_json::Value;
use tagrun_wire::messages::{
    AcknowledgeMessageRequest, GetMessagesRequest, GetMessagesResponse, Message, MessageKind,
    Operation, SendReplyRequest, VISIBILITY_TIMEOUT_SECS,
};
use tagrun_wire::reply::{
    AdditionalInfo, AgentInfo, PluginRuntimeStatus, ReplyPayload, ResultStatus, status_counts,
};
use tokio::sync::{Notify, Semaphore};

use crate::client::{CallError, Client, Signer};
use crate::load::micros;

/// After a failed call a node waits this long before trying again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// How often a node sends a reply or an acknowledgement before giving the command up.
const ATTEMPTS: u32 = 5;

/// The step key used when the document names none.
const DEFAULT_STEP: &str = "aws:runShellScript";

/// What the step prints.
const STEP_OUTPUT: &str = "bench\n";

/// One node's identity: its instance id and the static keys it signs with.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// `i-` and 17 hex digits.
    pub instance_id: String,
    /// Its keys, for the `ec2messages` service.
    pub signer: Signer,
}

/// One call of the sequence a node makes for a command message, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `SendReply` with `InProgress` and no results: the command arrived.
    Receipt,
    /// `AcknowledgeMessage`: the command is stored and will not be lost.
    Acknowledge,
    /// `SendReply` with `InProgress` and the step's result.
    StepResult,
    /// `SendReply` with the final `Success` and the step's result.
    Final,
}

/// The calls a node makes for one command message, in the order AWS's agent makes them.
pub const COMMAND_CALLS: [Call; 4] = [
    Call::Receipt,
    Call::Acknowledge,
    Call::StepResult,
    Call::Final,
];

/// What the nodes of a run have done, shared by all of them and the scenario.
///
/// Times are microseconds since [`FleetStats::now_us`]'s origin, kept in atomics so
/// thousands of nodes record without a lock.
#[derive(Debug)]
pub struct FleetStats {
    origin: Instant,
    polling_nodes: AtomicU64,
    polls_started: AtomicU64,
    polls_in_flight: AtomicU64,
    polls_answered: AtomicU64,
    messages: AtomicU64,
    successes: AtomicU64,
    errors: AtomicU64,
    first_message_us: AtomicU64,
    last_message_us: AtomicU64,
    last_success_us: AtomicU64,
    first_error: Mutex<Option<String>>,
    changed: Notify,
}

impl Default for FleetStats {
    fn default() -> Self {
        FleetStats {
            origin: Instant::now(),
            polling_nodes: AtomicU64::new(0),
            polls_started: AtomicU64::new(0),
            polls_in_flight: AtomicU64::new(0),
            polls_answered: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_message_us: AtomicU64::new(u64::MAX),
            last_message_us: AtomicU64::new(0),
            last_success_us: AtomicU64::new(0),
            first_error: Mutex::new(None),
            changed: Notify::new(),
        }
    }
}

/// A snapshot of [`FleetStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Nodes whose first `GetMessages` has been sent.
    pub polling_nodes: u64,
    /// `GetMessages` calls sent.
    pub polls_started: u64,
    /// `GetMessages` calls sent and not answered yet.
    pub polls_in_flight: u64,
    /// `GetMessages` calls answered with HTTP 200.
    pub polls_answered: u64,
    /// Command messages received.
    pub messages: u64,
    /// Final replies accepted by the server.
    pub successes: u64,
    /// Calls that failed.
    pub errors: u64,
    /// When the first command message arrived, if one did.
    pub first_message_us: Option<u64>,
    /// When the latest command message arrived, if one did.
    pub last_message_us: Option<u64>,
    /// When the latest final reply was accepted, if one was.
    pub last_success_us: Option<u64>,
}

impl FleetStats {
    /// Microseconds since these stats were created.
    pub fn now_us(&self) -> u64 {
        micros(self.origin.elapsed())
    }

    /// [`Self::now_us`] for the `last_*` counters, where 0 stands for "never":
    /// an event in the very first microsecond is stamped 1.
    fn stamp_us(&self) -> u64 {
        self.now_us().max(1)
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let first = self.first_message_us.load(Ordering::Acquire);
        let last = self.last_success_us.load(Ordering::Acquire);
        let last_message = self.last_message_us.load(Ordering::Acquire);
        Counts {
            polling_nodes: self.polling_nodes.load(Ordering::Acquire),
            polls_started: self.polls_started.load(Ordering::Acquire),
            polls_in_flight: self.polls_in_flight.load(Ordering::Acquire),
            polls_answered: self.polls_answered.load(Ordering::Acquire),
            messages: self.messages.load(Ordering::Acquire),
            successes: self.successes.load(Ordering::Acquire),
            errors: self.errors.load(Ordering::Acquire),
            first_message_us: (first != u64::MAX).then_some(first),
            last_message_us: (last_message != 0).then_some(last_message),
            last_success_us: (last != 0).then_some(last),
        }
    }

    /// The first failure any node saw.
    pub fn first_error(&self) -> Option<String> {
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.clone()
    }

    /// Waits until `done` holds for the counters, or `limit` passes (`false` then).
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&Counts) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.counts()) {
                return true;
            }
            // Counters that change without a wakeup (answered polls) are read again
            // at least every 100 ms.
            let recheck = tokio::time::Instant::now() + Duration::from_millis(100);
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(recheck.min(deadline)) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return done(&self.counts());
            }
        }
    }

    fn poll_started(&self, first: bool) {
        if first {
            self.polling_nodes.fetch_add(1, Ordering::AcqRel);
        }
        self.polls_started.fetch_add(1, Ordering::AcqRel);
        self.polls_in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn poll_ended(&self, answered: bool) {
        self.polls_in_flight.fetch_sub(1, Ordering::AcqRel);
        if answered {
            self.polls_answered.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn message_received(&self) {
        let now = self.stamp_us();
        self.first_message_us.fetch_min(now, Ordering::AcqRel);
        self.last_message_us.fetch_max(now, Ordering::AcqRel);
        self.messages.fetch_add(1, Ordering::AcqRel);
    }

    fn succeeded(&self) {
        self.last_success_us
            .fetch_max(self.stamp_us(), Ordering::AcqRel);
        self.successes.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::AcqRel);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert_with(|| error.to_owned());
    }
}

/// Runs one node until its task is aborted: connect (at most as many at once as
/// `connecting` allows), then poll and answer forever.
pub async fn run(
    identity: NodeIdentity,
    address: SocketAddr,
    stats: Arc<FleetStats>,
    connecting: Arc<Semaphore>,
) {
    let mut client = Client::new(address);
    if let Ok(_permit) = connecting.acquire().await
        && let Err(error) = client.connect().await
    {
        stats.failed(&tagrun_server::error_chain(&error));
    }

    let mut first = true;
    loop {
        stats.poll_started(first);
        first = false;
        let outcome = poll_once(&mut client, &identity, &stats).await;
        if let Err(error) = outcome {
            let text = tagrun_server::error_chain(&error);
            stats.failed(&format!("{}: {text}", identity.instance_id));
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}

/// One `GetMessages` and the answers to what it brought.
async fn poll_once(
    client: &mut Client,
    identity: &NodeIdentity,
    stats: &FleetStats,
) -> Result<(), NodeError> {
    let target = Operation::GetMessages.target();
    let answer = client
        .call(&identity.signer, &target, poll_body(&identity.instance_id)?)
        .await;
    stats.poll_ended(answer.is_ok());
    let body = answer?;
    let answer: GetMessagesResponse = serde_json::from_slice(&body)?;

    for message in answer.messages {
        if message.kind() != MessageKind::SendCommand {
            continue;
        }
        stats.message_received();
        let step = step_key(&message.payload);
        for call in COMMAND_CALLS {
            let (operation, body) = request(call, &message, &step, SystemTime::now())?;
            send_until_accepted(client, identity, stats, &operation.target(), body).await?;
        }
        stats.succeeded();
    }
    Ok(())
}

/// Sends one call of a command's sequence, again after each failure (as the agent's
/// outbox does, with the same reply id), up to [`ATTEMPTS`] times. Every failure counts
/// as an error.
async fn send_until_accepted(
    client: &mut Client,
    identity: &NodeIdentity,
    stats: &FleetStats,
    target: &str,
    body: Bytes,
) -> Result<(), CallError> {
    let mut attempt = 1;
    loop {
        match client.call(&identity.signer, target, body.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt >= ATTEMPTS => return Err(error),
            Err(error) => {
                let text = tagrun_server::error_chain(&error);
                stats.failed(&format!("{}: {target}: {text}", identity.instance_id));
                tokio::time::sleep(RETRY_DELAY).await;
                attempt += 1;
            }
        }
    }
}

/// Why a node's call failed.
#[derive(Debug, thiserror::Error)]
enum NodeError {
    #[error("call failed")]
    Call(#[from] CallError),
    #[error("unreadable JSON")]
    Json(#[from] serde_json::Error),
}

/// A `GetMessages` body with a fresh request id, as the agent sends every poll.
fn poll_body(instance_id: &str) -> Result<Bytes, serde_json::Error> {
    let request = GetMessagesRequest {
        destination: instance_id.to_owned(),
        messages_request_id: uuid::Uuid::new_v4().to_string(),
        visibility_timeout_in_seconds: Some(VISIBILITY_TIMEOUT_SECS),
        next_token: None,
    };
    Ok(Bytes::from(serde_json::to_vec(&request)?))
}

/// The operation and body of one call of [`COMMAND_CALLS`] for `message`, made `at`.
pub fn request(
    call: Call,
    message: &Message,
    step: &str,
    at: SystemTime,
) -> Result<(Operation, Bytes), serde_json::Error> {
    let message_id = message.message_id.clone();
    if call == Call::Acknowledge {
        let body = serde_json::to_vec(&AcknowledgeMessageRequest { message_id })?;
        return Ok((Operation::AcknowledgeMessage, Bytes::from(body)));
    }

    let payload = reply(call, step, at);
    let request = SendReplyRequest {
        message_id,
        reply_id: uuid::Uuid::new_v4().to_string(),
        payload: serde_json::to_string(&payload)?,
        delivery_options: None,
    };
    Ok((
        Operation::SendReply,
        Bytes::from(serde_json::to_vec(&request)?),
    ))
}

/// The reply payload of a `SendReply` call of the sequence.
pub fn reply(call: Call, step: &str, at: SystemTime) -> ReplyPayload {
    let time = tagrun_wire::time::iso8601_millis(at);
    let result = PluginRuntimeStatus {
        status: ResultStatus::Success,
        code: 0,
        name: step.to_owned(),
        output: STEP_OUTPUT.to_owned(),
        start_date_time: time.clone(),
        end_date_time: time.clone(),
        output_s3_bucket_name: String::new(),
        output_s3_key_prefix: String::new(),
        step_name: String::new(),
        standard_output: STEP_OUTPUT.to_owned(),
        standard_error: String::new(),
    };
    let (status, results) = match call {
        Call::Receipt | Call::Acknowledge => (ResultStatus::InProgress, None),
        Call::StepResult => (ResultStatus::InProgress, Some(result)),
        Call::Final => (ResultStatus::Success, Some(result)),
    };
    let counts = results.as_ref().map(|r| status_counts(&[r.status]));

    ReplyPayload {
        additional_info: AdditionalInfo {
            agent: AgentInfo {
                lang: "en-US".into(),
                name: "tagrun-bench".into(),
                os: "linux".into(),
                osver: "1".into(),
                ver: env!("CARGO_PKG_VERSION").into(),
            },
            date_time: time,
            run_id: String::new(),
            runtime_status_counts: counts,
            able_to_open_mgs_connection: None,
        },
        document_status: status,
        document_trace_output: String::new(),
        runtime_status: results.map(|r| BTreeMap::from([(step.to_owned(), r)])),
    }
}

/// The key a node reports its step under: the first plugin of a 1.2 document
/// (`runtimeConfig`), else the name of the first of `mainSteps`, else
/// `aws:runShellScript`.
pub fn step_key(payload: &str) -> String {
    let payload: Value = serde_json::from_str(payload).unwrap_or_default();
    let document = &payload["DocumentContent"];
    let plugin = document["runtimeConfig"]
        .as_object()
        .and_then(|plugins| plugins.keys().next().cloned());
    let main_step = document["mainSteps"][0]["name"].as_str().map(str::to_owned);
    plugin
        .or(main_step)
        .unwrap_or_else(|| DEFAULT_STEP.to_owned())
}

#[cfg(test)]
mod tests {
    use tagrun_wire::messages::SendReplyRequest;

    use super::*;

    fn message() -> Message {
        Message {
            message_id: "aws.ssm.c-1.i-00000000000000001".into(),
            topic: "aws.ssm.sendCommand.us.east.1.1".into(),
            ..Message::default()
        }
    }

    fn payload_of(call: Call) -> ReplyPayload {
        let (operation, body) =
            request(call, &message(), "aws:runShellScript", SystemTime::now()).unwrap();
        assert_eq!(operation, Operation::SendReply);
        let request: SendReplyRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(request.message_id, "aws.ssm.c-1.i-00000000000000001");
        serde_json::from_str(&request.payload).unwrap()
    }

    #[test]
    fn a_command_is_received_acknowledged_reported_and_finished_in_order() {
        assert_eq!(
            COMMAND_CALLS,
            [
                Call::Receipt,
                Call::Acknowledge,
                Call::StepResult,
                Call::Final
            ]
        );
    }

    #[test]
    fn the_receipt_is_in_progress_without_results() {
        let receipt = payload_of(Call::Receipt);

        assert_eq!(receipt.document_status, ResultStatus::InProgress);
        assert_eq!(receipt.runtime_status, None);
        assert_eq!(receipt.additional_info.runtime_status_counts, None);
    }

    #[test]
    fn the_acknowledgement_names_the_message() {
        let (operation, body) =
            request(Call::Acknowledge, &message(), "x", SystemTime::now()).unwrap();

        assert_eq!(operation, Operation::AcknowledgeMessage);
        let ack: AcknowledgeMessageRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(ack.message_id, "aws.ssm.c-1.i-00000000000000001");
    }

    #[test]
    fn the_step_result_keeps_the_document_in_progress() {
        let interim = payload_of(Call::StepResult);

        assert_eq!(interim.document_status, ResultStatus::InProgress);
        let steps = interim.runtime_status.unwrap();
        assert_eq!(steps["aws:runShellScript"].status, ResultStatus::Success);
        assert_eq!(steps["aws:runShellScript"].standard_output, STEP_OUTPUT);
    }

    #[test]
    fn the_final_reply_succeeds_with_the_step_counted() {
        let last = payload_of(Call::Final);

        assert_eq!(last.document_status, ResultStatus::Success);
        let counts = last.additional_info.runtime_status_counts.unwrap();
        assert_eq!(counts, BTreeMap::from([("Success".to_owned(), 1)]));
        assert_eq!(last.runtime_status.unwrap().len(), 1);
    }

    #[test]
    fn every_reply_gets_a_fresh_reply_id() {
        let id = |call| {
            let (_, body) = request(call, &message(), "s", SystemTime::now()).unwrap();
            serde_json::from_slice::<SendReplyRequest>(&body)
                .unwrap()
                .reply_id
        };

        assert_ne!(id(Call::StepResult), id(Call::StepResult));
    }

    #[test]
    fn polls_ask_for_the_agents_visibility_timeout_with_a_fresh_id() {
        let read = |body: Bytes| serde_json::from_slice::<GetMessagesRequest>(&body).unwrap();

        let first = read(poll_body("i-00000000000000001").unwrap());
        let second = read(poll_body("i-00000000000000001").unwrap());

        assert_eq!(first.destination, "i-00000000000000001");
        assert_eq!(first.visibility_timeout_in_seconds, Some(10));
        assert_ne!(first.messages_request_id, second.messages_request_id);
    }

    #[test]
    fn the_step_key_comes_from_the_document() {
        let v12 = r#"{"DocumentContent":{"runtimeConfig":{"aws:runShellScript":{}}}}"#;
        let v22 = r#"{"DocumentContent":{"mainSteps":[{"name":"hello"}]}}"#;

        assert_eq!(step_key(v12), "aws:runShellScript");
        assert_eq!(step_key(v22), "hello");
        assert_eq!(step_key("not json"), DEFAULT_STEP);
    }

    #[test]
    fn an_event_in_the_first_microsecond_is_still_seen() {
        // An origin in the future makes every elapsed time read 0.
        let stats = FleetStats {
            origin: Instant::now() + Duration::from_secs(60),
            ..FleetStats::default()
        };
        stats.message_received();
        stats.succeeded();

        let counts = stats.counts();
        assert_eq!(counts.first_message_us, Some(1));
        assert_eq!(counts.last_message_us, Some(1));
        assert_eq!(counts.last_success_us, Some(1));
    }

    #[tokio::test]
    async fn waiting_sees_counters_reached_and_gives_up_at_the_limit() {
        let stats = FleetStats::default();
        stats.poll_started(true);
        stats.succeeded();

        let reached = stats
            .wait_until(Duration::from_millis(10), |c| c.successes == 1)
            .await;
        let missed = stats
            .wait_until(Duration::from_millis(10), |c| c.successes == 2)
            .await;

        assert!(reached);
        assert!(!missed);
        let counts = stats.counts();
        assert_eq!((counts.polling_nodes, counts.polls_started), (1, 1));
        assert_eq!(counts.polls_in_flight, 1);
        stats.poll_ended(true);
        assert_eq!(stats.counts().polls_in_flight, 0);
        assert_eq!(stats.counts().polls_answered, 1);
        assert!(counts.last_success_us.is_some());
        assert_eq!(counts.first_message_us, None);
    }
}
