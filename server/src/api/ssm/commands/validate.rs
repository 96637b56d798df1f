//! `SendCommand` input checks and the filters of the list operations, with the codes
//! and wording AWS uses for each.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{SendInput, Target};
use crate::engine::Detail;
use crate::error::ApiError;
use crate::ids;
use crate::store::{CommandRecord, InvocationRecord};

/// Checks every field of a `SendCommand` request against the API's constraints.
pub(super) fn send_input(input: &SendInput) -> Result<(), ApiError> {
    document_name(&input.document_name)?;
    if let Some(version) = &input.document_version {
        document_version(version)?;
    }
    targeting(input)?;
    if let Some(timeout) = input.timeout_seconds
        && !(30..=2_592_000).contains(&timeout)
    {
        let constraint = "have value between 30 and 2592000";
        return Err(ApiError::constraint(
            &timeout.to_string(),
            "timeoutSeconds",
            constraint,
        ));
    }
    if let Some(comment) = &input.comment
        && comment.chars().count() > 100
    {
        return Err(ApiError::constraint(
            comment,
            "comment",
            "have length less than or equal to 100",
        ));
    }
    limit(input.max_concurrency.as_deref(), "maxConcurrency", false)?;
    limit(input.max_errors.as_deref(), "maxErrors", true)?;
    if let Some(bucket) = &input.output_s3_bucket_name
        && !(3..=63).contains(&bucket.len())
    {
        let constraint = "have length between 3 and 63";
        return Err(ApiError::constraint(
            bucket,
            "outputS3BucketName",
            constraint,
        ));
    }
    Ok(())
}

fn document_name(name: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:/".contains(c);
    if (3..=128).contains(&name.len()) && name.chars().all(allowed) {
        return Ok(());
    }
    let constraint = "satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.:/]{3,128}$";
    Err(ApiError::constraint(name, "documentName", constraint))
}

fn document_version(version: &str) -> Result<(), ApiError> {
    let number = !version.starts_with('0')
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit());
    if number || version == "$LATEST" || version == "$DEFAULT" {
        return Ok(());
    }
    let constraint = "satisfy regular expression pattern: ([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$)";
    Err(ApiError::constraint(version, "documentVersion", constraint))
}

/// Exactly one of `InstanceIds` and `Targets`, each within its limits.
fn targeting(input: &SendInput) -> Result<(), ApiError> {
    match (input.instance_ids.is_empty(), input.targets.is_empty()) {
        (false, false) => {
            let message = "Specify either InstanceIds or Targets, not both.";
            return Err(ApiError::new("InvalidParameters", message));
        }
        (true, true) => {
            let message = "Specify the nodes to run the command on with InstanceIds or Targets.";
            return Err(ApiError::new("InvalidParameters", message));
        }
        _ => {}
    }
    if input.instance_ids.len() > 50 {
        let value = format!("{:?}", input.instance_ids.len());
        let constraint = "have length less than or equal to 50";
        return Err(ApiError::constraint(&value, "instanceIds", constraint));
    }
    for id in &input.instance_ids {
        if !ids::is_instance_id(id) {
            let constraint =
                "satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)";
            return Err(ApiError::constraint(id, "instanceIds.member", constraint));
        }
    }
    let unique: BTreeSet<&String> = input.instance_ids.iter().collect();
    if unique.len() != input.instance_ids.len() {
        let message = "You cannot specify an instance ID in more than one association.";
        return Err(ApiError::new("DuplicateInstanceId", message));
    }
    targets(&input.targets)
}

fn targets(targets: &[Target]) -> Result<(), ApiError> {
    if targets.len() > 5 {
        let value = targets.len().to_string();
        return Err(ApiError::constraint(
            &value,
            "targets",
            "have length less than or equal to 5",
        ));
    }
    for target in targets {
        let key = target.key.as_str();
        if key.is_empty() || key.chars().count() > 163 {
            let constraint = "have length between 1 and 163";
            return Err(ApiError::constraint(key, "targets.member.key", constraint));
        }
        if target.values.len() > 50 {
            let value = target.values.len().to_string();
            let constraint = "have length less than or equal to 50";
            return Err(ApiError::constraint(
                &value,
                "targets.member.values",
                constraint,
            ));
        }
        if key.starts_with("resource-groups:") {
            // Limitation: tagrun has no Resource Groups service to resolve a group.
            let message = "Targeting resource groups is not supported; use tag: or InstanceIds.";
            return Err(ApiError::new("InvalidParameters", message));
        }
        let known = key.eq_ignore_ascii_case("InstanceIds")
            || key == "tag-key"
            || key.strip_prefix("tag:").is_some_and(|k| !k.is_empty());
        if !known {
            let message = format!(
                "Target key {key} is not valid: use tag:<key>, tag-key or \
                                   InstanceIds."
            );
            return Err(ApiError::new("InvalidParameters", message));
        }
    }
    Ok(())
}

/// AWS's patterns for `MaxConcurrency` and `MaxErrors`.
const CONCURRENCY_PATTERN: &str = "^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$";
const ERRORS_PATTERN: &str = "^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$";

static CONCURRENCY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(CONCURRENCY_PATTERN).expect("the pattern is valid"));
static ERRORS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(ERRORS_PATTERN).expect("the pattern is valid"));

/// `MaxConcurrency` (`is_errors` false) or `MaxErrors` (`is_errors` true).
fn limit(value: Option<&str>, member: &str, is_errors: bool) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Ok(());
    };
    let (regex, pattern) = if is_errors {
        (&*ERRORS, ERRORS_PATTERN)
    } else {
        (&*CONCURRENCY, CONCURRENCY_PATTERN)
    };
    if value.len() <= 7 && regex.is_match(value) {
        return Ok(());
    }
    let constraint = format!("satisfy regular expression pattern: {pattern}");
    Err(ApiError::constraint(value, member, &constraint))
}

/// A command id must be a 36-character UUID.
pub(super) fn command_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 36 {
        return Ok(());
    }
    let constraint = "have length between 36 and 36";
    Err(ApiError::constraint(id, "commandId", constraint))
}

/// One filter of `ListCommands` or `ListCommandInvocations`.
#[derive(Debug)]
pub(super) enum ListFilter {
    InvokedAfter(i64),
    InvokedBefore(i64),
    Status(String),
    DocumentName(String),
    ExecutionStage(bool),
}

const COMMAND_STATUSES: &[&str] = &[
    "Pending",
    "InProgress",
    "Success",
    "Cancelled",
    "Failed",
    "TimedOut",
    "AccessDenied",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "Incomplete",
    "NoInstancesInTag",
    "LimitExceeded",
];

const INVOCATION_STATUSES: &[&str] = &[
    "Pending",
    "InProgress",
    "Delayed",
    "Success",
    "Cancelled",
    "Failed",
    "TimedOut",
    "AccessDenied",
    "DeliveryTimedOut",
    "ExecutionTimedOut",
    "Undeliverable",
    "InvalidPlatform",
    "Terminated",
];

/// Parses the request's filters; `for_commands` allows `ExecutionStage`.
pub(super) fn filters(
    filters: &[super::Filter],
    for_commands: bool,
) -> Result<Vec<ListFilter>, ApiError> {
    if filters.len() > 5 {
        let value = filters.len().to_string();
        return Err(ApiError::constraint(
            &value,
            "filters",
            "have length less than or equal to 5",
        ));
    }
    filters
        .iter()
        .map(|f| filter(&f.key, &f.value, for_commands))
        .collect()
}

fn filter(key: &str, value: &str, for_commands: bool) -> Result<ListFilter, ApiError> {
    let bad_value = || {
        let message = format!("The filter value {value} is not valid for {key}.");
        ApiError::new("InvalidFilterValue", message)
    };
    let statuses = if for_commands {
        COMMAND_STATUSES
    } else {
        INVOCATION_STATUSES
    };
    match key {
        "InvokedAfter" => Ok(ListFilter::InvokedAfter(
            parse_time(value).ok_or_else(bad_value)?,
        )),
        "InvokedBefore" => Ok(ListFilter::InvokedBefore(
            parse_time(value).ok_or_else(bad_value)?,
        )),
        "Status" if statuses.contains(&value) => Ok(ListFilter::Status(value.to_owned())),
        "Status" => Err(bad_value()),
        "DocumentName" => Ok(ListFilter::DocumentName(value.to_owned())),
        "ExecutionStage" if for_commands => match value {
            "Executing" => Ok(ListFilter::ExecutionStage(true)),
            "Complete" => Ok(ListFilter::ExecutionStage(false)),
            _ => Err(bad_value()),
        },
        _ => Err(ApiError::new(
            "InvalidFilterKey",
            format!("The filter key {key} is not valid."),
        )),
    }
}

/// ISO 8601 as the CLI sends it (`2024-07-07T00:00:00Z`), to epoch milliseconds.
fn parse_time(text: &str) -> Option<i64> {
    let at = tagrun_wire::time::parse_iso8601(text).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

fn status_matches(value: &str, status: &str, details: &str) -> bool {
    if value == "TimedOut" {
        return status == "TimedOut";
    }
    value == status || value == details
}

impl ListFilter {
    /// Whether a command passes this filter.
    pub(super) fn matches_command(&self, command: &CommandRecord) -> bool {
        match self {
            ListFilter::InvokedAfter(at) => command.requested_ms >= *at,
            ListFilter::InvokedBefore(at) => command.requested_ms <= *at,
            ListFilter::Status(value) => {
                status_matches(value, &command.status, &command.status_details)
            }
            ListFilter::DocumentName(name) => &command.document_name == name,
            ListFilter::ExecutionStage(executing) => {
                let running = matches!(command.status.as_str(), "Pending" | "InProgress")
                    || command.status == "Cancelling";
                running == *executing
            }
        }
    }

    /// Whether an invocation of `command` passes this filter.
    pub(super) fn matches_invocation(
        &self,
        command: &CommandRecord,
        invocation: &InvocationRecord,
    ) -> bool {
        match self {
            ListFilter::Status(value) => {
                let detail: Detail = invocation.detail;
                status_matches(value, detail.status().as_str(), detail.as_str())
            }
            other => other.matches_command(command),
        }
    }
}
