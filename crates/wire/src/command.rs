//! The payloads inside messages: a command to run and a cancel request.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The payload of an `aws.ssm.sendCommand` message.
///
/// `DocumentContent` stays raw JSON; the document crate reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendCommandPayload {
    /// The command id (a UUID).
    #[serde(default)]
    pub command_id: String,
    /// The document name, e.g. `AWS-RunShellScript`.
    #[serde(default)]
    pub document_name: String,
    /// The whole SSM document.
    #[serde(default)]
    pub document_content: Value,
    /// Parameter values given by the caller (strings or string lists), or `null`.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// S3 bucket for output, empty for none.
    #[serde(default, rename = "OutputS3BucketName")]
    pub output_s3_bucket_name: String,
    /// S3 key prefix for output.
    #[serde(default, rename = "OutputS3KeyPrefix")]
    pub output_s3_key_prefix: String,
    /// CloudWatch log group, empty for the default.
    #[serde(default)]
    pub cloud_watch_log_group_name: String,
    /// `"true"` or `"false"`: a string on the wire, not a JSON boolean.
    #[serde(default)]
    pub cloud_watch_output_enabled: String,
}

/// The wire names of [`SendCommandPayload`], for case-insensitive reading.
const SEND_COMMAND_KEYS: [&str; 8] = [
    "CommandId",
    "DocumentName",
    "DocumentContent",
    "Parameters",
    "OutputS3BucketName",
    "OutputS3KeyPrefix",
    "CloudWatchLogGroupName",
    "CloudWatchOutputEnabled",
];

impl SendCommandPayload {
    /// Reads the payload text of a message. Keys match case-insensitively and unknown keys
    /// are ignored, as in AWS's agent.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_str(text)?;
        serde_json::from_value(canonical_keys(value, &SEND_COMMAND_KEYS))
    }

    /// Whether CloudWatch output was asked for.
    pub fn is_cloud_watch_enabled(&self) -> bool {
        self.cloud_watch_output_enabled.eq_ignore_ascii_case("true")
    }
}

/// The payload of an `aws.ssm.cancelCommand` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelCommandPayload {
    /// The message id of the command to cancel.
    pub cancel_message_id: String,
}

impl CancelCommandPayload {
    /// Reads a cancel payload, keys case-insensitive.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_str(text)?;
        serde_json::from_value(canonical_keys(value, &["CancelMessageId"]))
    }
}

/// Renames the top-level keys of an object that equal a known key ignoring case.
fn canonical_keys(value: Value, known: &[&str]) -> Value {
    let Value::Object(map) = value else {
        return value;
    };
    let renamed = map
        .into_iter()
        .map(|(key, v)| {
            let name = known.iter().find(|k| k.eq_ignore_ascii_case(&key));
            (name.map_or(key, |k| (*k).to_owned()), v)
        })
        .collect();
    Value::Object(renamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_captured_send_command_payload() {
        let text = r#"{"Parameters":{"commands":["echo hello"],"workingDirectory":"",
            "executionTimeout":"3600"},"DocumentContent":{"schemaVersion":"1.2"},
            "CommandId":"fe61f246-47b9-4227-a896-f77b4907ea2c","DocumentName":"AWS-RunShellScript",
            "OutputS3KeyPrefix":"","OutputS3BucketName":"","CloudWatchLogGroupName":"",
            "CloudWatchOutputEnabled":"false"}"#;

        let payload = SendCommandPayload::parse(text).expect("parses");

        assert_eq!(payload.command_id, "fe61f246-47b9-4227-a896-f77b4907ea2c");
        assert_eq!(payload.document_content["schemaVersion"], "1.2");
        assert_eq!(
            payload.parameters.as_ref().expect("present")["commands"][0],
            "echo hello"
        );
        assert!(!payload.is_cloud_watch_enabled());
    }

    #[test]
    fn matches_keys_ignoring_case_and_accepts_null_parameters() {
        let text = r#"{"commandid":"c1","documentNAME":"d","parameters":null,"Extra":1}"#;

        let payload = SendCommandPayload::parse(text).expect("parses");

        assert_eq!(payload.command_id, "c1");
        assert_eq!(payload.document_name, "d");
        assert_eq!(payload.parameters, None);
    }

    #[test]
    fn rejects_a_boolean_cloud_watch_flag_like_aws() {
        let text = r#"{"CommandId":"c1","CloudWatchOutputEnabled":false}"#;

        assert!(SendCommandPayload::parse(text).is_err());
    }

    #[test]
    fn reads_a_cancel_payload() {
        let payload = CancelCommandPayload::parse(r#"{"cancelMessageId":"aws.ssm.c1.mi-1"}"#)
            .expect("parses");

        assert_eq!(payload.cancel_message_id, "aws.ssm.c1.mi-1");
        assert!(CancelCommandPayload::parse("{}").is_err());
    }
}
