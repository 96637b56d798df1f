//! `AmazonSSM.*`: documents, nodes, activations, tags.

mod commands;
pub mod documents;
mod nodes;
mod tags;

pub use commands::resume_interrupted;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::input;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Every `AmazonSSM` operation tagrun answers.
pub const OPERATIONS: &[&str] = &[
    "CreateDocument",
    "GetDocument",
    "DescribeDocument",
    "ListDocuments",
    "UpdateDocument",
    "UpdateDocumentDefaultVersion",
    "ListDocumentVersions",
    "DeleteDocument",
    "CreateActivation",
    "DescribeActivations",
    "DeleteActivation",
    "RegisterManagedInstance",
    "RequestManagedInstanceRoleToken",
    "UpdateManagedInstancePublicKey",
    "UpdateInstanceInformation",
    "DescribeInstanceInformation",
    "DeregisterManagedInstance",
    "ListInstanceAssociations",
    "AddTagsToResource",
    "RemoveTagsFromResource",
    "ListTagsForResource",
    "SendCommand",
    "CancelCommand",
    "ListCommands",
    "ListCommandInvocations",
    "GetCommandInvocation",
];

/// Runs one `AmazonSSM` operation.
pub async fn dispatch(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    match name {
        "CreateDocument" => documents::create(state, caller, input(body)?).await,
        "GetDocument" => documents::get(state, caller, input(body)?).await,
        "DescribeDocument" => documents::describe_document(state, caller, input(body)?).await,
        "ListDocuments" => documents::list(state, caller, input(body)?).await,
        "UpdateDocument" => documents::update(state, caller, input(body)?).await,
        "UpdateDocumentDefaultVersion" => {
            documents::update_default_version(state, caller, input(body)?).await
        }
        "ListDocumentVersions" => documents::list_versions(state, caller, input(body)?).await,
        "DeleteDocument" => documents::delete(state, caller, input(body)?).await,
        "CreateActivation" => nodes::create_activation(state, caller, input(body)?).await,
        "DescribeActivations" => nodes::describe_activations(state, caller, input(body)?).await,
        "DeleteActivation" => nodes::delete_activation(state, caller, input(body)?).await,
        "RegisterManagedInstance" => nodes::register(state, input(body)?).await,
        "RequestManagedInstanceRoleToken" => nodes::role_token(state, caller, input(body)?).await,
        "UpdateManagedInstancePublicKey" => {
            nodes::update_public_key(state, caller, input(body)?).await
        }
        "UpdateInstanceInformation" => nodes::update_information(state, caller, input(body)?).await,
        "DescribeInstanceInformation" => {
            nodes::describe_information(state, caller, input(body)?).await
        }
        "DeregisterManagedInstance" => nodes::deregister(state, caller, input(body)?).await,
        "ListInstanceAssociations" => nodes::list_associations(state, caller, input(body)?).await,
        "AddTagsToResource" => tags::add(state, caller, input(body)?).await,
        "RemoveTagsFromResource" => tags::remove(state, caller, input(body)?).await,
        "ListTagsForResource" => tags::list(state, caller, input(body)?).await,
        "SendCommand" => commands::send(state, caller, input(body)?).await,
        "CancelCommand" => commands::cancel(state, caller, input(body)?).await,
        "ListCommands" => commands::list_commands(state, caller, input(body)?).await,
        "ListCommandInvocations" => commands::list_invocations(state, caller, input(body)?).await,
        "GetCommandInvocation" => commands::get_invocation(state, caller, input(body)?).await,
        _ => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {name}"),
        )),
    }
}

/// A `{Key, Value}` tag as SSM's API carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key, 1 to 128 characters.
    pub key: String,
    /// Value, 0 to 256 characters.
    pub value: String,
}

impl Tag {
    /// A map of tags as the API's list, by key.
    pub fn list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
        tags.iter()
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

/// Most tags one resource may carry.
pub const MAX_TAGS: usize = 1000;

/// Validates a tag list and turns it into a map; a key given twice keeps the last value.
pub fn tags_from_list(tags: &[Tag]) -> Result<BTreeMap<String, String>, ApiError> {
    for tag in tags {
        check_tag_text(&tag.key, "key", 1, 128)?;
        check_tag_text(&tag.value, "value", 0, 256)?;
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            let message = format!(
                "Tag key {} is not valid: the aws: prefix is reserved.",
                tag.key
            );
            return Err(ApiError::validation(message));
        }
    }
    Ok(tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect())
}

/// Letters, digits, white space and `_ . : / = + - @`, within the length bounds.
fn check_tag_text(text: &str, member: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let length = text.chars().count();
    if length < min || length > max {
        let constraint = format!("have length between {min} and {max}");
        return Err(ApiError::constraint(
            text,
            &format!("tags.member.{member}"),
            &constraint,
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if !text.chars().all(allowed) {
        let constraint = r"satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$";
        return Err(ApiError::constraint(
            text,
            &format!("tags.member.{member}"),
            constraint,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn tags_are_checked_like_the_api_model() {
        assert!(tags_from_list(&[tag("Env", "prod"), tag("Team Name", "a/b@c")]).is_ok());
        assert!(tags_from_list(&[tag("", "x")]).is_err());
        assert!(tags_from_list(&[tag("k", &"v".repeat(257))]).is_err());
        assert!(tags_from_list(&[tag("k", "semi;colon")]).is_err());
        assert!(tags_from_list(&[tag("aws:owner", "x")]).is_err());
    }
}
