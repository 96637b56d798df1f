//! Operations, one module per group, each thin: parse the input, authorize, call the
//! store, shape the output. This module routes `X-Amz-Target` values to them and
//! holds the helpers they share (input parsing, pagination, timestamps).

pub mod messages;
pub mod ssm;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN_BASE64;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{Caller, SigningRule};
use crate::error::ApiError;
use crate::state::AppState;

/// The services the listener answers, by their `X-Amz-Target` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `AmazonSSM.*`, signing name `ssm`.
    Ssm,
    /// `EC2WindowsMessageDeliveryService.*`, signing name `ec2messages`.
    Messages,
}

/// One known operation of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The service.
    pub service: Service,
    /// The operation name, e.g. `CreateDocument`.
    pub name: &'static str,
}

impl Operation {
    /// The operation an `X-Amz-Target` header names, if tagrun serves it.
    pub fn from_target(target: &str) -> Option<Operation> {
        let (prefix, name) = target.split_once('.')?;
        let (service, known) = match prefix {
            "AmazonSSM" => (Service::Ssm, ssm::OPERATIONS),
            "EC2WindowsMessageDeliveryService" => (Service::Messages, messages::OPERATIONS),
            _ => return None,
        };
        let name = known.iter().find(|op| **op == name)?;
        Some(Operation { service, name })
    }

    /// The SigV4 signing name requests for this operation must be scoped to.
    pub fn signing_name(self) -> &'static str {
        match self.service {
            Service::Ssm => "ssm",
            Service::Messages => "ec2messages",
        }
    }

    /// How requests for this operation are signed.
    pub fn signing_rule(self) -> SigningRule {
        match self.name {
            "RegisterManagedInstance" => SigningRule::Anonymous,
            "RequestManagedInstanceRoleToken" | "UpdateManagedInstancePublicKey" => {
                SigningRule::NodeKey
            }
            _ => SigningRule::Hmac,
        }
    }
}

/// Runs `operation` for `caller` with the request `body`.
pub async fn dispatch(
    state: &Arc<AppState>,
    caller: &Caller,
    operation: Operation,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    match operation.service {
        Service::Ssm => ssm::dispatch(state, caller, operation.name, body).await,
        Service::Messages => messages::dispatch(state, caller, operation.name, body).await,
    }
}

/// Parses a JSON 1.1 request body (empty means `{}`) into the operation's input.
pub fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| {
        let message = match error.classify() {
            serde_json::error::Category::Data => format!("Invalid request: {error}"),
            _ => format!("Request body is not valid JSON: {error}"),
        };
        ApiError::new("SerializationException", message)
    })
}

/// Serializes an operation's output.
pub fn output<T: Serialize>(value: T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|error| {
        tracing::error!(%error, "could not serialize a response");
        ApiError::internal()
    })
}

/// Epoch milliseconds as the JSON 1.1 `timestamp` shape: epoch seconds, fractional.
pub fn timestamp(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// One page of `items`: `MaxResults` (bounded by `max`) from the offset `NextToken`
/// names. Returns the page and the token for the next one.
pub fn paginate<T>(
    items: Vec<T>,
    max_results: Option<i64>,
    next_token: Option<&str>,
    max: i64,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = match max_results {
        None => max,
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            let constraint = format!("have value less than or equal to {max}");
            let constraint = if n < 1 {
                "have value greater than or equal to 1".to_owned()
            } else {
                constraint
            };
            return Err(ApiError::constraint(
                &n.to_string(),
                "maxResults",
                &constraint,
            ));
        }
    };
    let start = match next_token {
        None => 0,
        Some(token) => decode_token(token).ok_or_else(invalid_next_token)?,
    };
    if start > items.len() {
        return Err(invalid_next_token());
    }

    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(items.len());
    let next = (end < items.len()).then(|| TOKEN_BASE64.encode(format!("offset:{end}")));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}

fn decode_token(token: &str) -> Option<usize> {
    let bytes = TOKEN_BASE64.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("offset:")?.parse().ok()
}

fn invalid_next_token() -> ApiError {
    ApiError::new("InvalidNextToken", "The specified token is not valid.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<u32> = (0..7).collect();
        let mut token = None;
        let mut seen = Vec::new();
        loop {
            let (page, next) = paginate(items.clone(), Some(3), token.as_deref(), 50).unwrap();
            seen.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn bad_tokens_and_limits_are_rejected() {
        let items = vec![1, 2, 3];

        let bad_token = paginate(items.clone(), None, Some("garbage"), 50).unwrap_err();
        let too_many = paginate(items, Some(51), None, 50).unwrap_err();

        assert_eq!(bad_token.code, "InvalidNextToken");
        assert_eq!(too_many.code, "ValidationException");
    }

    #[test]
    fn wrong_json_types_are_serialization_errors() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Input {
            #[serde(rename = "Name")]
            name: String,
        }

        let error = input::<Input>(br#"{"Name": 5}"#).err().unwrap();
        let not_json = input::<Input>(b"{nope").err().unwrap();

        assert_eq!(error.code, "SerializationException");
        assert!(not_json.message.contains("not valid JSON"));
    }

    #[test]
    fn targets_route_to_known_operations_only() {
        assert!(Operation::from_target("AmazonSSM.CreateDocument").is_some());
        assert!(Operation::from_target("AmazonSSM.Nope").is_none());
        assert!(Operation::from_target("Other.CreateDocument").is_none());
        assert!(Operation::from_target("").is_none());
    }
}
