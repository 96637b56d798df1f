//! The `Command`, `CommandInvocation` and `CommandPlugin` shapes, with AWS's
//! conventions: unset strings as `""`, timestamps as epoch seconds, and steps listed
//! from the document until the node reports them.

use serde_json::{Value, json};

use super::SendInput;
use crate::api::timestamp;
use crate::engine::{self, Detail, Status};
use crate::store::{CommandRecord, InvocationRecord, PluginResult};

/// The `Command` shape.
pub(super) fn command_shape(command: &CommandRecord) -> Value {
    let request: SendInput = serde_json::from_str(&command.request_json).unwrap_or_default();
    let counters = &command.counters;
    json!({
        "CommandId": command.command_id,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "Comment": command.comment,
        "ExpiresAfter": timestamp(command.expires_ms),
        "Parameters": request.parameters,
        "InstanceIds": request.instance_ids,
        "Targets": request.targets,
        "RequestedDateTime": timestamp(command.requested_ms),
        "Status": command.status,
        "StatusDetails": command.status_details,
        "OutputS3Region": request.output_s3_region.clone().unwrap_or_default(),
        "OutputS3BucketName": request.output_s3_bucket_name.clone().unwrap_or_default(),
        "OutputS3KeyPrefix": request.output_s3_key_prefix.clone().unwrap_or_default(),
        "MaxConcurrency": command.max_concurrency,
        "MaxErrors": command.max_errors,
        "TargetCount": counters.target_count,
        "CompletedCount": counters.completed_count,
        "ErrorCount": counters.error_count,
        "DeliveryTimedOutCount": counters.delivery_timed_out_count,
        "ServiceRole": request.service_role_arn.clone().unwrap_or_default(),
        "NotificationConfig": notification_shape(&request),
        "CloudWatchOutputConfig": super::cloud_watch_shape(&request),
        "TimeoutSeconds": request.timeout_seconds.unwrap_or(super::DEFAULT_TIMEOUT_SECS),
    })
}

fn notification_shape(request: &SendInput) -> Value {
    let given = request
        .notification_config
        .clone()
        .unwrap_or_else(|| json!({}));
    json!({
        "NotificationArn": given.get("NotificationArn").cloned().unwrap_or(json!("")),
        "NotificationEvents": given.get("NotificationEvents").cloned().unwrap_or(json!([])),
        "NotificationType": given.get("NotificationType").cloned().unwrap_or(json!("")),
    })
}

/// The `CommandInvocation` shape; `CommandPlugins` is empty unless `details`.
pub(super) fn invocation_shape(
    command: &CommandRecord,
    invocation: &InvocationRecord,
    details: bool,
) -> Value {
    let request: SendInput = serde_json::from_str(&command.request_json).unwrap_or_default();
    let plugins: Vec<Value> = if details {
        plugin_rows(command, invocation)
            .iter()
            .map(PluginRow::shape)
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": invocation.instance_name,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "RequestedDateTime": timestamp(command.requested_ms),
        "Status": invocation.detail.status().as_str(),
        "StatusDetails": invocation.detail.as_str(),
        "TraceOutput": truncate(&invocation.trace_output, 2500),
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": plugins,
        "ServiceRole": request.service_role_arn.clone().unwrap_or_default(),
        "NotificationConfig": notification_shape(&request),
        "CloudWatchOutputConfig": super::cloud_watch_shape(&request),
    })
}

/// One step of one invocation, reported or not.
pub(super) struct PluginRow<'a> {
    /// Step name.
    pub(super) name: String,
    /// Coarse status.
    pub(super) status: Status,
    /// `StatusDetails`.
    pub(super) details: &'static str,
    /// What the node reported, if anything yet.
    pub(super) result: Option<&'a PluginResult>,
}

/// The steps of an invocation in document order, then any others the node reported.
pub(super) fn plugin_rows<'a>(
    command: &CommandRecord,
    invocation: &'a InvocationRecord,
) -> Vec<PluginRow<'a>> {
    let mut names = command.steps.clone();
    for reported in invocation.plugins.keys() {
        if !names.contains(reported) {
            names.push(reported.clone());
        }
    }
    // While the invocation runs, the first step not yet reported is the one running.
    let mut running_seen = invocation.detail != Detail::InProgress;
    names
        .into_iter()
        .map(|name| {
            let result = invocation.plugins.get(&name);
            let (status, details) = match result {
                Some(result) => engine::plugin_status(&result.status),
                None if invocation.detail.is_terminal() => {
                    (invocation.detail.status(), invocation.detail.as_str())
                }
                None if !running_seen => {
                    running_seen = true;
                    (Status::InProgress, "InProgress")
                }
                None if invocation.detail == Detail::InProgress => (Status::Pending, "Pending"),
                None => (invocation.detail.status(), invocation.detail.as_str()),
            };
            PluginRow {
                name,
                status,
                details,
                result,
            }
        })
        .collect()
}

impl PluginRow<'_> {
    fn shape(&self) -> Value {
        let result = self.result;
        let when = |text: &str| parse_ms(text).map(timestamp);
        json!({
            "Name": self.name,
            "Status": self.status.as_str(),
            "StatusDetails": self.details,
            "ResponseCode": result.map_or(-1, |r| r.code),
            "ResponseStartDateTime": result.and_then(|r| when(&r.start)),
            "ResponseFinishDateTime": result.and_then(|r| when(&r.end)),
            "Output": result.map_or(String::new(), |r| truncate(&r.output, 2500)),
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "OutputS3Region": "",
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
        })
    }
}

/// The first `limit` characters of `text`.
fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

fn parse_ms(text: &str) -> Option<i64> {
    let at = tagrun_wire::time::parse_iso8601(text).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// The time between two agent timestamps as an ISO 8601 duration (`PT0.091S`,
/// `PT1H0.271S`), empty when either is missing.
pub(super) fn iso_duration(start: &str, end: &str) -> String {
    let (Some(start), Some(end)) = (parse_ms(start), parse_ms(end)) else {
        return String::new();
    };
    let total = (end - start).max(0);
    let (hours, rest) = (total / 3_600_000, total % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);

    let mut text = String::from("PT");
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if millis > 0 {
        let fraction = format!("{millis:03}");
        text.push_str(&format!("{seconds}.{}S", fraction.trim_end_matches('0')));
    } else if seconds > 0 || text.len() == 2 {
        text.push_str(&format!("{seconds}S"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_aws() {
        let at = |ms: &str| format!("2024-01-01T00:00:{ms}Z");

        assert_eq!(iso_duration(&at("00.000"), &at("00.091")), "PT0.091S");
        assert_eq!(iso_duration(&at("00.000"), &at("12.500")), "PT12.5S");
        assert_eq!(iso_duration(&at("00.000"), &at("00.000")), "PT0S");
        assert_eq!(
            iso_duration("2024-01-01T00:00:00.000Z", "2024-01-01T01:00:00.271Z"),
            "PT1H0.271S"
        );
        assert_eq!(iso_duration("", &at("00.000")), "");
    }
}
