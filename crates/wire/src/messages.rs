//! `EC2WindowsMessageDeliveryService.*`: the message service that agents long-poll.
//!
//! Every operation is `POST /` with `X-Amz-Target: EC2WindowsMessageDeliveryService.<Op>`,
//! signed for the service name [`SIGNING_NAME`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SigV4 signing name of the message service.
pub const SIGNING_NAME: &str = "ec2messages";

/// The `X-Amz-Target` prefix of the message service.
pub const TARGET_PREFIX: &str = "EC2WindowsMessageDeliveryService";

/// Topic prefix of a message that carries a command to run.
pub const SEND_COMMAND_TOPIC: &str = "aws.ssm.sendCommand";

/// Topic prefix of a message that cancels an earlier one.
pub const CANCEL_COMMAND_TOPIC: &str = "aws.ssm.cancelCommand";

/// The visibility timeout AWS's agent always asks for, in seconds.
pub const VISIBILITY_TIMEOUT_SECS: i64 = 10;

/// The operations of the message service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Long poll for messages.
    GetMessages,
    /// Confirm that a message was received and stored.
    AcknowledgeMessage,
    /// Send a reply (status, results) for a message.
    SendReply,
    /// Report that a message cannot be handled.
    FailMessage,
    /// Remove a message.
    DeleteMessage,
    /// Ask for the endpoint of a destination.
    GetEndpoint,
}

impl Operation {
    /// Every operation, for routing tables.
    pub const ALL: [Operation; 6] = [
        Operation::GetMessages,
        Operation::AcknowledgeMessage,
        Operation::SendReply,
        Operation::FailMessage,
        Operation::DeleteMessage,
        Operation::GetEndpoint,
    ];

    /// The operation name, e.g. `GetMessages`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetMessages => "GetMessages",
            Operation::AcknowledgeMessage => "AcknowledgeMessage",
            Operation::SendReply => "SendReply",
            Operation::FailMessage => "FailMessage",
            Operation::DeleteMessage => "DeleteMessage",
            Operation::GetEndpoint => "GetEndpoint",
        }
    }

    /// The full `X-Amz-Target` value.
    pub fn target(self) -> String {
        format!("{TARGET_PREFIX}.{}", self.name())
    }

    /// Recognises an `X-Amz-Target` value of this service.
    pub fn from_target(target: &str) -> Option<Self> {
        let name = target.strip_prefix(TARGET_PREFIX)?.strip_prefix('.')?;
        Self::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// `GetMessages` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMessagesRequest {
    /// The instance id of the polling node.
    pub destination: String,
    /// A fresh UUID per poll.
    pub messages_request_id: String,
    /// Seconds before an unacknowledged message may be handed out again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_in_seconds: Option<i64>,
    /// Continuation token; the agent never sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `GetMessages` response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMessagesResponse {
    /// The destination of the request.
    #[serde(default)]
    pub destination: String,
    /// The messages waiting, possibly none.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// The request id of the poll this answers.
    #[serde(default)]
    pub messages_request_id: String,
}

/// One message for a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    #[serde(default)]
    pub created_date: String,
    /// The instance id the message is for.
    #[serde(default)]
    pub destination: String,
    /// `aws.ssm.<CommandId>.<InstanceId>`.
    #[serde(default)]
    pub message_id: String,
    /// `aws.ssm.sendCommand.…` or `aws.ssm.cancelCommand.…`.
    #[serde(default)]
    pub topic: String,
    /// JSON text: a [`crate::command::SendCommandPayload`] or a cancel payload.
    #[serde(default)]
    pub payload: String,
    /// Lower-case hex SHA-256 of `payload` ([`payload_digest`]).
    #[serde(default)]
    pub payload_digest: String,
    /// Unused continuation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl Message {
    /// Whether the fields AWS's agent requires are present; others are dropped unanswered.
    pub fn is_complete(&self) -> bool {
        [
            &self.topic,
            &self.destination,
            &self.message_id,
            &self.created_date,
        ]
        .iter()
        .all(|field| !field.is_empty())
    }

    /// What the topic asks for.
    pub fn kind(&self) -> MessageKind {
        MessageKind::from_topic(&self.topic)
    }
}

/// The kinds of message, told apart by topic prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Run a command.
    SendCommand,
    /// Cancel a command.
    CancelCommand,
    /// A topic the agent has no handler for.
    Unknown,
}

impl MessageKind {
    /// Classifies a topic by prefix, as AWS's agent does.
    pub fn from_topic(topic: &str) -> Self {
        if topic.starts_with(SEND_COMMAND_TOPIC) {
            MessageKind::SendCommand
        } else if topic.starts_with(CANCEL_COMMAND_TOPIC) {
            MessageKind::CancelCommand
        } else {
            MessageKind::Unknown
        }
    }
}

/// Builds `aws.ssm.<command_id>.<instance_id>`.
pub fn message_id(command_id: &str, instance_id: &str) -> String {
    format!("aws.ssm.{command_id}.{instance_id}")
}

/// The command id inside a message id: the second-to-last dot-separated part of
/// `aws.ssm.<CommandId>.<InstanceId>`, or the whole id when it has another form.
pub fn command_id_from_message_id(message_id: &str) -> &str {
    let Some(rest) = message_id.strip_prefix("aws.ssm.") else {
        return message_id;
    };
    let mut parts = rest.rsplit('.');
    match (parts.next(), parts.next()) {
        (Some(_instance), Some(command)) if !command.is_empty() => command,
        _ => message_id,
    }
}

/// Lower-case hex SHA-256 of a payload, the `PayloadDigest` of a message.
pub fn payload_digest(payload: &str) -> String {
    hex::encode(Sha256::digest(payload.as_bytes()))
}

/// `AcknowledgeMessage` request; the response is `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AcknowledgeMessageRequest {
    /// The message being acknowledged.
    pub message_id: String,
}

/// `SendReply` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendReplyRequest {
    /// The message this reply is about.
    pub message_id: String,
    /// A fresh UUID per reply; the same id on a resend, so the server can deduplicate.
    pub reply_id: String,
    /// JSON text of a [`crate::reply::ReplyPayload`].
    pub payload: String,
    /// Delivery options; AWS's agent never sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_options: Option<DeliveryOptions>,
}

/// Optional delivery settings of a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeliveryOptions {
    /// Seconds after which the reply may be dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<i64>,
    /// A key that lets a later reply replace this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_key: Option<String>,
    /// `EVENTUALLY` or `ASAP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_push: Option<String>,
}

/// `SendReply` response; every field is optional and the agent ignores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendReplyResponse {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The message id of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The reply id of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<String>,
    /// `Created`, `Queued`, `Acknowledged` or `NoActionTaken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_status: Option<String>,
}

/// Why a message cannot be handled, as `FailMessage` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureType {
    /// No handler exists for the topic.
    NoHandlerExists,
    /// The handler failed, e.g. on an unreadable cancel payload.
    InternalHandlerException,
}

/// `FailMessage` request; the response is `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailMessageRequest {
    /// The message that failed.
    pub message_id: String,
    /// Why it failed.
    pub failure_type: FailureType,
}

/// `DeleteMessage` request; the response is `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteMessageRequest {
    /// The message to delete.
    pub message_id: String,
}

/// `GetEndpoint` request (AWS's agent never calls it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetEndpointRequest {
    /// The instance id.
    pub destination: String,
}

/// `GetEndpoint` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetEndpointResponse {
    /// The endpoint for the destination.
    pub endpoint: String,
}

/// The empty response of `AcknowledgeMessage`, `FailMessage` and `DeleteMessage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_captured_get_messages_response() {
        let body = r#"{"Destination":"mi-0123456789abcdef0","Messages":[{"CreatedDate":
            "2026-12-03T12:50:55.000Z","Destination":"mi-0123456789abcdef0","MessageId":
            "aws.ssm.fe61f246-47b9-4227-a896-f77b4907ea2c.mi-0123456789abcdef0","Payload":"{}",
            "Topic":"aws.ssm.sendCommand.us.east.1.1"}],"MessagesRequestId":"e9db"}"#;

        let parsed: GetMessagesResponse = serde_json::from_str(body).expect("parses");

        let message = &parsed.messages[0];
        assert!(message.is_complete());
        assert_eq!(message.kind(), MessageKind::SendCommand);
        assert_eq!(
            command_id_from_message_id(&message.message_id),
            "fe61f246-47b9-4227-a896-f77b4907ea2c"
        );
    }

    #[test]
    fn writes_get_messages_like_the_captured_agent() {
        let request = GetMessagesRequest {
            destination: "mi-0123456789abcdef0".to_owned(),
            messages_request_id: "660cdb28-4ab4-4924-98e2-8d5394b840a5".to_owned(),
            visibility_timeout_in_seconds: Some(VISIBILITY_TIMEOUT_SECS),
            next_token: None,
        };

        let json = serde_json::to_string(&request).expect("serializes");

        assert_eq!(
            json,
            concat!(
                r#"{"Destination":"mi-0123456789abcdef0","#,
                r#""MessagesRequestId":"660cdb28-4ab4-4924-98e2-8d5394b840a5","#,
                r#""VisibilityTimeoutInSeconds":10}"#
            )
        );
    }

    #[test]
    fn a_message_id_of_another_form_is_its_own_command_id() {
        assert_eq!(command_id_from_message_id("custom-id"), "custom-id");
        assert_eq!(command_id_from_message_id("aws.ssm.x"), "aws.ssm.x");
        assert_eq!(message_id("c1", "i-1"), "aws.ssm.c1.i-1");
    }

    #[test]
    fn routes_targets_of_this_service_only() {
        let target = Operation::SendReply.target();

        assert_eq!(Operation::from_target(&target), Some(Operation::SendReply));
        assert_eq!(Operation::from_target("AmazonSSM.SendReply"), None);
        assert_eq!(
            MessageKind::from_topic("aws.ssm.cancelCommand.x"),
            MessageKind::CancelCommand
        );
        assert_eq!(MessageKind::from_topic("aws.other"), MessageKind::Unknown);
    }

    #[test]
    fn digest_is_the_hex_sha256_of_the_payload() {
        assert_eq!(
            payload_digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
