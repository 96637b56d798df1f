//! Tags on documents and nodes: add, remove, list.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{MAX_TAGS, Tag, tags_from_list};
use crate::api::output;
use crate::arn;
use crate::auth::{Caller, Resource};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{ResourceKind, TagSource};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AddInput {
    resource_type: String,
    resource_id: String,
    tags: Vec<Tag>,
}

/// `AddTagsToResource`: the administrator's tags, which win over a node's own.
pub(super) async fn add(
    state: &Arc<AppState>,
    caller: &Caller,
    input: AddInput,
) -> Result<Value, ApiError> {
    let kind = resource_kind(&input.resource_type)?;
    let resource = resource(state, kind, &input.resource_id);
    caller.authorize("ssm:AddTagsToResource", &[resource])?;
    check_exists(state, kind, &input.resource_id).await?;
    let tags = tags_from_list(&input.tags)?;
    if tags.is_empty() {
        return Err(ApiError::constraint(
            "[]",
            "tags",
            "have length greater than or equal to 1",
        ));
    }

    let current = state.store.tags(kind, &input.resource_id).await?;
    let total = current
        .keys()
        .chain(tags.keys())
        .collect::<std::collections::BTreeSet<_>>();
    if total.len() > MAX_TAGS {
        let message = "The Targets parameter includes too many tags. Remove one or more tags and \
                       try the command again.";
        return Err(ApiError::new("TooManyTagsError", message));
    }
    state
        .store
        .add_tags(kind, &input.resource_id, TagSource::Admin, &tags)
        .await?;
    output(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RemoveInput {
    resource_type: String,
    resource_id: String,
    tag_keys: Vec<String>,
}

/// `RemoveTagsFromResource`: removes the administrator's tags with these keys.
pub(super) async fn remove(
    state: &Arc<AppState>,
    caller: &Caller,
    input: RemoveInput,
) -> Result<Value, ApiError> {
    let kind = resource_kind(&input.resource_type)?;
    let resource = resource(state, kind, &input.resource_id);
    caller.authorize("ssm:RemoveTagsFromResource", &[resource])?;
    check_exists(state, kind, &input.resource_id).await?;
    state
        .store
        .remove_tags(kind, &input.resource_id, &input.tag_keys)
        .await?;
    output(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInput {
    resource_type: String,
    resource_id: String,
}

/// `ListTagsForResource`: the merged tags, the administrator's winning.
pub(super) async fn list(
    state: &Arc<AppState>,
    caller: &Caller,
    input: ListInput,
) -> Result<Value, ApiError> {
    let kind = resource_kind(&input.resource_type)?;
    let resource = resource(state, kind, &input.resource_id);
    caller.authorize("ssm:ListTagsForResource", &[resource])?;
    check_exists(state, kind, &input.resource_id).await?;
    let tags = state.store.tags(kind, &input.resource_id).await?;
    output(json!({ "TagList": Tag::list(&tags) }))
}

fn resource_kind(resource_type: &str) -> Result<ResourceKind, ApiError> {
    match resource_type {
        "Document" => Ok(ResourceKind::Document),
        "ManagedInstance" => Ok(ResourceKind::ManagedInstance),
        _ => {
            // Limitation: only documents and nodes carry tags here; SSM's other resource
            // types (parameters, maintenance windows, ...) do not exist in tagrun.
            let message = "The resource type is not valid. For example, if you are attempting \
                           to tag an EC2 instance, the instance must be a registered managed \
                           node.";
            Err(ApiError::new("InvalidResourceType", message))
        }
    }
}

fn resource(state: &AppState, kind: ResourceKind, id: &str) -> Resource {
    let (region, account) = (&state.config.region, &state.config.account_id);
    let arn = match kind {
        ResourceKind::Document => arn::document(region, account, id),
        _ => arn::node(region, account, id),
    };
    Resource::untagged(arn)
}

/// Tags can only be set on stored documents and registered nodes.
async fn check_exists(state: &AppState, kind: ResourceKind, id: &str) -> Result<(), ApiError> {
    let exists = match kind {
        ResourceKind::Document => state.store.document(id).await?.is_some(),
        _ => state.store.node(id).await?.is_some(),
    };
    if exists {
        Ok(())
    } else {
        let message = "The resource ID is not valid. Verify that you entered the correct ID and \
                       try again.";
        Err(ApiError::new("InvalidResourceId", message))
    }
}
