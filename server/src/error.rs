//! The one error type that operations return, and its AWS JSON shape.
//!
//! Every failure a caller can see is an [`ApiError`]: an AWS error code, a message
//! in AWS's wording and an HTTP status. Internal failures (storage, bugs) become
//! `InternalServerError` with a generic message; their detail goes to the log only.

use axum::http::StatusCode;
use serde_json::json;

/// An error in the shape AWS JSON 1.1 services return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The `__type` code clients branch on (`InvalidDocument`, `AccessDeniedException`).
    pub code: &'static str,
    /// The `Message` text.
    pub message: String,
    /// HTTP status: 400 for the caller's mistakes, 5xx for ours.
    pub status: StatusCode,
}

impl ApiError {
    /// A client error (HTTP 400) with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// `ValidationException`, for input that breaks the API model's constraints.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new("ValidationException", message)
    }

    /// AWS's model-constraint message: `1 validation error detected: Value ... at ...`.
    pub fn constraint(value: &str, member: &str, constraint: &str) -> ApiError {
        ApiError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must {constraint}"
        ))
    }

    /// `AccessDeniedException` with a message already in AWS's wording.
    pub fn access_denied(message: impl Into<String>) -> ApiError {
        ApiError::new("AccessDeniedException", message)
    }

    /// `InternalServerError` (HTTP 500). The cause must be logged by the caller.
    pub fn internal() -> ApiError {
        ApiError {
            code: "InternalServerError",
            message: "An internal error occurred. Try the request again.".into(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"__type": code, "Message": message}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "__type": self.code, "Message": self.message })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        tracing::error!(error = %crate::error_chain(&error), "storage failed");
        ApiError::internal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_message_reads_like_aws() {
        let error = ApiError::constraint("x".repeat(3).as_str(), "comment", "have length <= 2");

        assert_eq!(error.code, "ValidationException");
        assert_eq!(
            error.message,
            "1 validation error detected: Value 'xxx' at 'comment' failed to satisfy \
             constraint: Member must have length <= 2"
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let error = ApiError::internal();

        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.body()["__type"], "InternalServerError");
    }
}
