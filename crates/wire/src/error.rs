//! The error body of AWS JSON 1.1 services and a parsed error with its retry class.

use serde::{Deserialize, Serialize};

/// The JSON body of an AWS error response: `{"__type": "...", "Message": "..."}`.
///
/// `__type` may carry a namespace prefix (`com.amazonaws.ssm#InvalidInstanceId`); reading
/// accepts `message` in either case, as AWS's SDKs do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error code, possibly prefixed by a namespace and `#`.
    #[serde(rename = "__type")]
    pub error_type: String,
    /// The human-readable message.
    #[serde(rename = "Message", alias = "message", default)]
    pub message: String,
}

/// An error answered by an AWS-shaped service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service answered {code}: {message}")]
pub struct AwsError {
    code: String,
    message: String,
    status: u16,
}

/// Codes that say the request may succeed if sent again later.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyUpdates",
    "InternalServerError",
    "InternalServerException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
];

impl AwsError {
    /// Builds an error from a code without namespace, a message and the HTTP status.
    pub fn new(code: impl Into<String>, message: impl Into<String>, status: u16) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status,
        }
    }

    /// Reads an error response. A body that is not an AWS error body still yields an error
    /// whose code names the HTTP status class, so the caller can decide about retrying.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => Self::from_body(status, parsed),
            Err(_) => {
                let code = if status >= 500 {
                    "InternalFailure"
                } else {
                    "UnknownError"
                };
                let text = String::from_utf8_lossy(body);
                let message: String = text.chars().take(200).collect();
                Self::new(code, message, status)
            }
        }
    }

    /// Builds the error from a parsed body, dropping a namespace prefix from `__type`.
    pub fn from_body(status: u16, body: ErrorBody) -> Self {
        let code = body.error_type.rsplit('#').next().unwrap_or_default();
        // Some services append `:http://…` to the code; it is not part of the name.
        let code = code.split(':').next().unwrap_or_default();
        Self::new(code, body.message, status)
    }

    /// The error code without namespace, e.g. `InvalidInstanceId`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message the service gave.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether sending the same request again later may succeed: throttling, server-side
    /// failures and every 5xx status.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500 || self.status == 429 || RETRYABLE_CODES.contains(&self.code.as_str())
    }

    /// The body a server sends for this error.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error_type: self.code.clone(),
            message: self.message.clone(),
        }
    }
}

/// An error and its sources joined with `: `, for one log line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_join_every_source() {
        let inner = std::io::Error::other("disk full");
        let outer = std::io::Error::other(Wrapped(inner));

        assert_eq!(error_chain(&outer), "writing the spool: disk full");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("writing the spool")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn strips_the_namespace_from_the_code() {
        let body = br#"{"__type":"com.amazonaws.ssm#InvalidInstanceId","message":"no such node"}"#;

        let error = AwsError::from_response(400, body);

        assert_eq!(error.code(), "InvalidInstanceId");
        assert_eq!(error.message(), "no such node");
        assert!(!error.is_retryable());
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        let throttled = AwsError::from_response(400, br#"{"__type":"ThrottlingException"}"#);
        let internal = AwsError::from_response(500, br#"{"__type":"SomethingElse"}"#);
        let garbage = AwsError::from_response(502, b"<html>bad gateway</html>");
        let denied = AwsError::from_response(400, br#"{"__type":"AccessDeniedException"}"#);

        assert!(throttled.is_retryable());
        assert!(internal.is_retryable());
        assert!(garbage.is_retryable());
        assert_eq!(garbage.code(), "InternalFailure");
        assert!(!denied.is_retryable());
    }

    #[test]
    fn serializes_the_aws_body_shape() {
        let error = AwsError::new("InvalidMessageIdException", "unknown message", 400);

        let json = serde_json::to_string(&error.to_body()).expect("serializes");

        assert_eq!(
            json,
            r#"{"__type":"InvalidMessageIdException","Message":"unknown message"}"#
        );
    }
}
