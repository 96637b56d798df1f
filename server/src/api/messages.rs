//! `EC2WindowsMessageDeliveryService.*`: the API agents poll for commands and answer.
//!
//! Every call is tied to the caller's own instance id: a node reads, acknowledges and
//! answers only its own messages.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tagrun_wire::messages::{
    AcknowledgeMessageRequest, DeleteMessageRequest, FailMessageRequest, GetMessagesRequest,
    Message, SendReplyRequest, payload_digest,
};
use tagrun_wire::reply::ReplyPayload;
use tokio::time::Instant;

use crate::api::{input, output};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_ms;

/// Every operation of the service that tagrun answers.
pub const OPERATIONS: &[&str] = &[
    "GetMessages",
    "AcknowledgeMessage",
    "SendReply",
    "FailMessage",
    "DeleteMessage",
];

/// Most messages one `GetMessages` answer carries.
const MAX_MESSAGES: i64 = 10;

/// With a shared database, how often a held poll looks for messages queued by
/// another replica.
const SHARED_RECHECK: Duration = Duration::from_secs(3);

/// Runs one operation.
pub async fn dispatch(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    caller.authorize(&format!("ec2messages:{name}"), &[])?;
    let instance_id = caller
        .node_instance_id()
        .ok_or_else(|| not_a_node(caller, name))?;
    state
        .store
        .record_ping(instance_id, now_ms(), 30_000)
        .await?;
    match name {
        "GetMessages" => get_messages(state, instance_id, input(body)?).await,
        "AcknowledgeMessage" => acknowledge(state, instance_id, input(body)?).await,
        "SendReply" => send_reply(state, instance_id, input(body)?).await,
        "FailMessage" => fail(state, instance_id, input(body)?).await,
        "DeleteMessage" => delete(state, instance_id, input(body)?).await,
        _ => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {name}"),
        )),
    }
}

/// `GetMessages`: answers at once when messages are due, else holds the request
/// until one is queued or the hold time passes.
async fn get_messages(
    state: &Arc<AppState>,
    instance_id: &str,
    request: GetMessagesRequest,
) -> Result<Value, ApiError> {
    if request.destination != instance_id {
        return Err(ApiError::access_denied(format!(
            "The destination {} is not the calling node {instance_id}.",
            request.destination
        )));
    }
    let visibility_secs = request
        .visibility_timeout_in_seconds
        .unwrap_or(10)
        .clamp(1, 43_200);
    let hold = Duration::from_secs(state.config.long_poll_secs);
    let deadline = Instant::now() + hold;

    let visibility_ms = visibility_secs * 1000;
    let mut was_woken = false;
    let claimed = loop {
        let notify = state.wakeups.for_node(instance_id);
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        let now = now_ms();
        let claimed = state
            .store
            .claim_messages(instance_id, now, visibility_ms, MAX_MESSAGES, was_woken)
            .await?;
        if !claimed.is_empty() || Instant::now() >= deadline {
            break claimed;
        }
        let wait_until = next_check(state, instance_id, now, deadline).await?;
        was_woken = tokio::select! {
            () = &mut woken => true,
            () = tokio::time::sleep_until(wait_until) => false,
            () = state.wakeups.shutting_down() => break Vec::new(),
        };
    };

    let messages: Vec<Message> = claimed
        .into_iter()
        .map(|m| Message {
            created_date: tagrun_wire::time::iso8601_millis(epoch(m.created_ms)),
            destination: instance_id.to_owned(),
            payload_digest: payload_digest(&m.payload),
            message_id: m.message_id,
            topic: m.topic,
            payload: m.payload,
            next_token: None,
        })
        .collect();
    if !messages.is_empty() {
        tracing::debug!(%instance_id, count = messages.len(), "messages delivered");
    }
    output(json!({
        "Destination": instance_id,
        "MessagesRequestId": request.messages_request_id,
        "Messages": messages,
    }))
}

/// When a held poll should look again without a wakeup: when a hidden message
/// becomes visible, periodically on a shared database, and at the deadline.
async fn next_check(
    state: &AppState,
    instance_id: &str,
    now: i64,
    deadline: Instant,
) -> Result<Instant, ApiError> {
    let mut wait_until = deadline;
    if let Some(visible) = state.store.next_visible_ms(instance_id).await? {
        let delay = Duration::from_millis(u64::try_from(visible - now).unwrap_or_default());
        wait_until = wait_until.min(Instant::now() + delay);
    }
    if state.store.is_shared() {
        wait_until = wait_until.min(Instant::now() + SHARED_RECHECK);
    }
    Ok(wait_until)
}

async fn acknowledge(
    state: &Arc<AppState>,
    instance_id: &str,
    request: AcknowledgeMessageRequest,
) -> Result<Value, ApiError> {
    if !state
        .store
        .acknowledge_message(instance_id, &request.message_id)
        .await?
    {
        return Err(invalid_message_id(&request.message_id));
    }
    output(json!({}))
}

/// `SendReply`: records step results and, with a final status, ends the invocation.
async fn send_reply(
    state: &Arc<AppState>,
    instance_id: &str,
    request: SendReplyRequest,
) -> Result<Value, ApiError> {
    let reply: ReplyPayload = serde_json::from_str(&request.payload).map_err(|error| {
        ApiError::validation(format!("The reply payload is not a valid reply: {error}"))
    })?;
    let topic = state.topic_suffix();
    let outcome = state
        .store
        .apply_reply(
            instance_id,
            &request.message_id,
            &request.reply_id,
            reply,
            &topic,
            now_ms(),
        )
        .await?;
    if outcome.unknown_message {
        return Err(invalid_message_id(&request.message_id));
    }
    if let Some(detail) = outcome.finished {
        let message_id = &request.message_id;
        tracing::info!(%instance_id, %message_id, %detail, "invocation finished");
    }
    state.wakeups.wake(&outcome.notify);

    let status = if outcome.duplicate {
        "NoActionTaken"
    } else {
        "Queued"
    };
    output(json!({
        "MessageId": request.message_id,
        "ReplyId": request.reply_id,
        "ReplyStatus": status,
    }))
}

async fn fail(
    state: &Arc<AppState>,
    instance_id: &str,
    request: FailMessageRequest,
) -> Result<Value, ApiError> {
    let topic = state.topic_suffix();
    let now = now_ms();
    let failed = state
        .store
        .fail_message(instance_id, &request.message_id, &topic, now)
        .await?;
    let notify = failed.ok_or_else(|| invalid_message_id(&request.message_id))?;
    tracing::warn!(%instance_id, message_id = %request.message_id, failure = ?request.failure_type,
        "node could not handle a message");
    state.wakeups.wake(&notify);
    output(json!({}))
}

async fn delete(
    state: &Arc<AppState>,
    instance_id: &str,
    request: DeleteMessageRequest,
) -> Result<Value, ApiError> {
    if !state
        .store
        .delete_message(instance_id, &request.message_id)
        .await?
    {
        return Err(invalid_message_id(&request.message_id));
    }
    output(json!({}))
}

fn invalid_message_id(message_id: &str) -> ApiError {
    ApiError::new(
        "InvalidMessageIdException",
        format!("The message {message_id} does not exist for this node."),
    )
}

fn not_a_node(caller: &Caller, name: &str) -> ApiError {
    ApiError::access_denied(format!(
        "User: {} is not authorized to perform: ec2messages:{name} because only managed nodes \
         receive messages",
        caller.arn()
    ))
}

fn epoch(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default())
}
