//! The reply payload (`SendReply.Payload`): document status, per-step results, agent facts,
//! and the rules that shape it: status precedence and output truncation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The status of a step or a document, spelled as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResultStatus {
    /// Not run yet.
    NotStarted,
    /// Received or running.
    InProgress,
    /// Finished with exit code 0 (or 168).
    Success,
    /// Finished and asked for a reboot (exit code 194).
    SuccessAndReboot,
    /// Passed and asked for a reboot (updater only).
    PassedAndReboot,
    /// Finished with a failure.
    Failed,
    /// Stopped by a cancel request.
    Cancelled,
    /// Stopped at its time limit.
    TimedOut,
    /// Not run: precondition unmet or an earlier step exited the document.
    Skipped,
}

impl ResultStatus {
    /// The wire spelling, e.g. `SuccessAndReboot`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::NotStarted => "NotStarted",
            ResultStatus::InProgress => "InProgress",
            ResultStatus::Success => "Success",
            ResultStatus::SuccessAndReboot => "SuccessAndReboot",
            ResultStatus::PassedAndReboot => "PassedAndReboot",
            ResultStatus::Failed => "Failed",
            ResultStatus::Cancelled => "Cancelled",
            ResultStatus::TimedOut => "TimedOut",
            ResultStatus::Skipped => "Skipped",
        }
    }

    /// Whether the status ends a step (everything but `NotStarted` and `InProgress`).
    pub fn is_terminal(self) -> bool {
        !matches!(self, ResultStatus::NotStarted | ResultStatus::InProgress)
    }

    /// Rank used when several results of one 1.x plugin are merged: the higher wins.
    fn merge_rank(self) -> u8 {
        match self {
            ResultStatus::Skipped => 0,
            ResultStatus::Success => 1,
            ResultStatus::SuccessAndReboot => 2,
            ResultStatus::PassedAndReboot => 3,
            ResultStatus::NotStarted => 4,
            ResultStatus::InProgress => 5,
            ResultStatus::Failed => 6,
            ResultStatus::Cancelled => 7,
            ResultStatus::TimedOut => 8,
        }
    }
}

/// The final status of a document from its steps' statuses; first rule that matches wins:
/// any `SuccessAndReboot`, any `Failed`, any `TimedOut`, any `Cancelled`, then `Success`
/// when every step succeeded or was skipped, else `InProgress`.
pub fn document_status(steps: &[ResultStatus]) -> ResultStatus {
    let any = |wanted: ResultStatus| steps.contains(&wanted);
    let precedence = [
        ResultStatus::SuccessAndReboot,
        ResultStatus::Failed,
        ResultStatus::TimedOut,
        ResultStatus::Cancelled,
    ];
    if let Some(status) = precedence.into_iter().find(|s| any(*s)) {
        return status;
    }
    let all_done = steps
        .iter()
        .all(|s| matches!(s, ResultStatus::Success | ResultStatus::Skipped));
    if all_done {
        ResultStatus::Success
    } else {
        ResultStatus::InProgress
    }
}

/// Merges the statuses of several property sets of one 1.x plugin into one.
pub fn merge_status(a: ResultStatus, b: ResultStatus) -> ResultStatus {
    if b.merge_rank() > a.merge_rank() {
        b
    } else {
        a
    }
}

/// Counts statuses by wire name, the `runtimeStatusCounts` object.
pub fn status_counts(steps: &[ResultStatus]) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for status in steps {
        *counts.entry(status.as_str().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// `SendReply.Payload`, serialized to JSON text inside the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyPayload {
    /// Agent facts and the time of the reply.
    pub additional_info: AdditionalInfo,
    /// The document status; `InProgress` in every reply but the last.
    pub document_status: ResultStatus,
    /// Why a document failed before any step ran (parse errors), else empty.
    #[serde(default)]
    pub document_trace_output: String,
    /// Step results keyed by step id; `null` in the receipt reply, `{}` in the final reply
    /// of a document with more than one step.
    #[serde(default)]
    pub runtime_status: Option<BTreeMap<String, PluginRuntimeStatus>>,
}

/// `additionalInfo` of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalInfo {
    /// Who sent the reply.
    pub agent: AgentInfo,
    /// When the reply was made, `YYYY-MM-DDTHH:MM:SS.mmmZ`; order replies by it.
    pub date_time: String,
    /// Always empty.
    #[serde(default)]
    pub run_id: String,
    /// Statuses of the steps finished so far, by name; `null` in the receipt reply.
    #[serde(default)]
    pub runtime_status_counts: Option<BTreeMap<String, u32>>,
    /// Whether the agent could open the session channel; omitted when it has none.
    #[serde(
        default,
        rename = "ableToOpenMGSConnection",
        skip_serializing_if = "Option::is_none"
    )]
    pub able_to_open_mgs_connection: Option<bool>,
}

/// `additionalInfo.agent` of a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Language, `en-US`.
    #[serde(default)]
    pub lang: String,
    /// Agent name.
    #[serde(default)]
    pub name: String,
    /// OS family (`linux`); may be empty.
    #[serde(default)]
    pub os: String,
    /// OS version as configured; AWS's agent sends `1`.
    #[serde(default)]
    pub osver: String,
    /// Agent version; may be empty.
    #[serde(default)]
    pub ver: String,
}

/// The result of one step, a value of `runtimeStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRuntimeStatus {
    /// The step status.
    pub status: ResultStatus,
    /// The exit code; 1 when the step failed with exit code 0.
    pub code: i32,
    /// The action, e.g. `aws:runShellScript`.
    pub name: String,
    /// Combined output within [`OUTPUT_LIMIT`] bytes ([`combined_output`]).
    pub output: String,
    /// Start time, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub start_date_time: String,
    /// End time, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub end_date_time: String,
    /// S3 bucket of uploaded output, empty when none.
    #[serde(default, rename = "outputS3BucketName")]
    pub output_s3_bucket_name: String,
    /// S3 key prefix of uploaded output.
    #[serde(default, rename = "outputS3KeyPrefix")]
    pub output_s3_key_prefix: String,
    /// Step name, set only with S3 output.
    #[serde(default)]
    pub step_name: String,
    /// Standard output within [`STANDARD_STREAM_LIMIT`] bytes.
    #[serde(default)]
    pub standard_output: String,
    /// Standard error within [`STANDARD_STREAM_LIMIT`] bytes.
    #[serde(default)]
    pub standard_error: String,
}

/// Byte capacity of the combined `output` field.
pub const OUTPUT_LIMIT: usize = 2500;

/// Byte capacity of `standardOutput` and `standardError`, suffix included.
pub const STANDARD_STREAM_LIMIT: usize = 24_000;

/// Sits between stdout and stderr in `output` when stderr is not empty.
pub const ERROR_SEPARATOR: &str = "\n----------ERROR-------\n";

/// Ends a cut stdout in `output`.
pub const OUTPUT_TRUNCATED: &str = "\n---Output truncated---";

/// Ends a cut stderr in `output`.
pub const ERROR_TRUNCATED: &str = "\n---Error truncated----";

/// Ends a cut `standardOutput` or `standardError`.
pub const STREAM_TRUNCATED: &str = "--output truncated--";

/// Builds the `output` field from a step's stdout and stderr within [`OUTPUT_LIMIT`].
///
/// When both do not fit, the cut side ends with its marker: each side gets half the space
/// when both exceed half, otherwise only the longer one is cut. Cuts fall on character
/// boundaries, so the result may be a few bytes shorter than the limit.
pub fn combined_output(stdout: &str, stderr: &str) -> String {
    if stderr.is_empty() {
        return cut_with_marker(stdout, OUTPUT_LIMIT, OUTPUT_TRUNCATED);
    }

    let space = OUTPUT_LIMIT - ERROR_SEPARATOR.len();
    let (out_len, err_len) = (stdout.len(), stderr.len());
    let half = space / 2;
    let (out_room, err_room) = if out_len + err_len <= space {
        (out_len, err_len)
    } else if out_len > half && err_len > half {
        (half, space - half)
    } else if out_len > err_len {
        (space - err_len, err_len)
    } else {
        (out_len, space - out_len)
    };

    let out = cut_with_marker(stdout, out_room, OUTPUT_TRUNCATED);
    let err = cut_with_marker(stderr, err_room, ERROR_TRUNCATED);
    format!("{out}{ERROR_SEPARATOR}{err}")
}

/// Cuts `standardOutput` or `standardError` to [`STANDARD_STREAM_LIMIT`] bytes including
/// the [`STREAM_TRUNCATED`] suffix, which is added when the text reaches the limit.
pub fn truncate_stream(text: &str) -> String {
    if text.len() < STANDARD_STREAM_LIMIT {
        return text.to_owned();
    }
    let keep = floor_char_boundary(text, STANDARD_STREAM_LIMIT - STREAM_TRUNCATED.len());
    format!("{}{STREAM_TRUNCATED}", &text[..keep])
}

fn cut_with_marker(text: &str, room: usize, marker: &str) -> String {
    if text.len() <= room {
        return text.to_owned();
    }
    let keep = floor_char_boundary(text, room.saturating_sub(marker.len()));
    format!("{}{marker}", &text[..keep])
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests;
