//! Nodes: hybrid activations, registration, credentials for nodes, what agents report
//! about their node, and what operators see of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Tag, tags_from_list};
use crate::api::{output, paginate, timestamp};
use crate::auth::{Caller, Principal, Resource};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{
    Activation, Node, NodeCredentials, PlatformFacts, Registration, RegistrationOutcome,
    ResourceKind, TagSource, now_ms,
};
use crate::{arn, ids};

/// How long credentials issued to a node last; agents refresh at half this.
const CREDENTIALS_LIFETIME_MS: i64 = 60 * 60 * 1000;
/// Default and longest lifetime of an activation.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_ACTIVATION_MS: i64 = 30 * DAY_MS;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateActivationInput {
    description: Option<String>,
    default_instance_name: Option<String>,
    iam_role: String,
    registration_limit: Option<i64>,
    expiration_date: Option<f64>,
    #[serde(default)]
    tags: Vec<Tag>,
}

/// `CreateActivation`: the code is returned once and stored only as a hash.
pub(super) async fn create_activation(
    state: &Arc<AppState>,
    caller: &Caller,
    input: CreateActivationInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:CreateActivation", &[])?;
    let role = input
        .iam_role
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if state.identities.role(&role).is_none() {
        let message = format!(
            "Nonexistent role or missing ssm service principal in trust policy: \
             arn:aws:iam::{}:role/{}",
            state.config.account_id, input.iam_role
        );
        return Err(ApiError::validation(message));
    }
    let limit = input.registration_limit.unwrap_or(1);
    if !(1..=1000).contains(&limit) {
        let constraint = "have value between 1 and 1000";
        return Err(ApiError::constraint(
            &limit.to_string(),
            "registrationLimit",
            constraint,
        ));
    }
    let now = now_ms();
    let expires_ms = expiration(input.expiration_date, now)?;
    let tags = tags_from_list(&input.tags)?;

    let code = ids::new_activation_code();
    let activation = Activation {
        activation_id: ids::new_activation_id(),
        code_sha256: sha256_hex(&code),
        description: input.description.unwrap_or_default(),
        default_instance_name: input.default_instance_name.unwrap_or_default(),
        iam_role: role,
        registration_limit: limit,
        registrations_count: 0,
        expires_ms,
        created_ms: now,
    };
    state.store.create_activation(&activation).await?;
    let id = &activation.activation_id;
    state
        .store
        .add_tags(ResourceKind::Activation, id, TagSource::Admin, &tags)
        .await?;
    tracing::info!(activation_id = %id, limit, "activation created");

    output(json!({ "ActivationId": id, "ActivationCode": code }))
}

/// The expiry of a new activation: 24 hours by default, at most 30 days ahead.
fn expiration(requested: Option<f64>, now: i64) -> Result<i64, ApiError> {
    let Some(seconds) = requested else {
        return Ok(now + DAY_MS);
    };
    // Timestamps arrive as fractional epoch seconds; whole milliseconds are enough.
    #[allow(clippy::cast_possible_truncation)]
    let ms = (seconds * 1000.0) as i64;
    if ms <= now {
        return Err(ApiError::validation(
            "ExpirationDate must be in the future.",
        ));
    }
    if ms > now + MAX_ACTIVATION_MS {
        return Err(ApiError::validation(
            "ExpirationDate can be at most 30 days in the future.",
        ));
    }
    Ok(ms)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeActivationsInput {
    #[serde(default)]
    filters: Vec<ActivationFilter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ActivationFilter {
    filter_key: String,
    #[serde(default)]
    filter_values: Vec<String>,
}

/// `DescribeActivations`.
pub(super) async fn describe_activations(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DescribeActivationsInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:DescribeActivations", &[])?;
    for filter in &input.filters {
        if !["ActivationIds", "DefaultInstanceName", "IamRole"].contains(&&*filter.filter_key) {
            let message = format!("The filter key {} is not valid.", filter.filter_key);
            return Err(ApiError::new("InvalidFilter", message));
        }
    }
    let now = now_ms();
    let all_tags = state.store.all_tags(ResourceKind::Activation).await?;
    let mut list = Vec::new();
    for activation in state.store.activations().await? {
        if !input
            .filters
            .iter()
            .all(|f| activation_matches(f, &activation))
        {
            continue;
        }
        let tags = all_tags
            .get(&activation.activation_id)
            .cloned()
            .unwrap_or_default();
        list.push(json!({
            "ActivationId": activation.activation_id,
            "Description": activation.description,
            "DefaultInstanceName": activation.default_instance_name,
            "IamRole": activation.iam_role,
            "RegistrationLimit": activation.registration_limit,
            "RegistrationsCount": activation.registrations_count,
            "ExpirationDate": timestamp(activation.expires_ms),
            "Expired": activation.expires_ms <= now,
            "CreatedDate": timestamp(activation.created_ms),
            "Tags": Tag::list(&tags),
        }));
    }

    let token = input.next_token.as_deref();
    let (page, next_token) = paginate(list, input.max_results, token, 50)?;
    output(json!({ "ActivationList": page, "NextToken": next_token }))
}

fn activation_matches(filter: &ActivationFilter, activation: &Activation) -> bool {
    let field = match filter.filter_key.as_str() {
        "ActivationIds" => &activation.activation_id,
        "DefaultInstanceName" => &activation.default_instance_name,
        _ => &activation.iam_role,
    };
    filter.filter_values.is_empty() || filter.filter_values.iter().any(|v| v == field)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteActivationInput {
    activation_id: String,
}

/// `DeleteActivation`: nodes it registered stay registered.
pub(super) async fn delete_activation(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DeleteActivationInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:DeleteActivation", &[])?;
    if !state.store.delete_activation(&input.activation_id).await? {
        let message = "The activation ID is not valid. Verify that you entered the correct \
                       ActivationId or ActivationCode and try again.";
        return Err(ApiError::new("InvalidActivationId", message));
    }
    output(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RegisterInput {
    activation_code: String,
    activation_id: String,
    public_key: String,
    public_key_type: Option<String>,
    fingerprint: String,
}

/// `RegisterManagedInstance`: unsigned; the activation code is the proof.
pub(super) async fn register(
    state: &Arc<AppState>,
    input: RegisterInput,
) -> Result<Value, ApiError> {
    if input.public_key_type.as_deref().is_some_and(|t| t != "Rsa") {
        return Err(ApiError::validation("PublicKeyType must be Rsa."));
    }
    check_public_key(&input.public_key)?;

    let instance_id = ids::new_managed_instance_id();
    let registration = Registration {
        instance_id: &instance_id,
        activation_id: &input.activation_id,
        code_sha256: &sha256_hex(&input.activation_code),
        public_key: &input.public_key,
        fingerprint: &input.fingerprint,
        now_ms: now_ms(),
    };
    let message = match state.store.register_node(&registration).await? {
        RegistrationOutcome::Registered => {
            tracing::info!(%instance_id, activation_id = %input.activation_id, "node registered");
            return output(json!({ "InstanceId": instance_id }));
        }
        RegistrationOutcome::InvalidActivation => {
            "Activation ID or activation code is not valid. Verify that you entered the correct \
             ActivationId and ActivationCode and try again."
        }
        RegistrationOutcome::Expired => "The activation has expired.",
        RegistrationOutcome::LimitReached => "The activation has reached its registration limit.",
    };
    Err(ApiError::new("InvalidActivation", message))
}

fn check_public_key(public_key: &str) -> Result<(), ApiError> {
    let valid = BASE64
        .decode(public_key)
        .ok()
        .is_some_and(|der| rsa::RsaPublicKey::from_public_key_der(&der).is_ok());
    if valid {
        Ok(())
    } else {
        Err(ApiError::validation(
            "PublicKey is not a base64 DER RSA public key.",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RoleTokenInput {
    #[serde(default)]
    fingerprint: Option<String>,
}

/// `RequestManagedInstanceRoleToken`: short-lived credentials for the node's role.
pub(super) async fn role_token(
    state: &Arc<AppState>,
    caller: &Caller,
    input: RoleTokenInput,
) -> Result<Value, ApiError> {
    let instance_id = node_key_caller(caller)?;
    let node = state.store.node(instance_id).await?;
    let node = node.ok_or_else(crate::auth::signature::unrecognized_client)?;
    if input.fingerprint.as_deref() != node.fingerprint.as_deref() {
        tracing::debug!(%instance_id, "fingerprint differs from the one registered");
    }

    let now = now_ms();
    let credentials = NodeCredentials {
        access_key_id: ids::new_temporary_access_key_id(),
        instance_id: instance_id.to_owned(),
        secret_access_key: ids::new_secret(),
        session_token: format!("{}{}", ids::new_secret(), ids::new_secret()),
        expires_ms: now + CREDENTIALS_LIFETIME_MS,
    };
    state.store.insert_credentials(&credentials, now).await?;
    state.store.record_ping(instance_id, now, 0).await?;

    output(json!({
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "TokenExpirationDate": timestamp(credentials.expires_ms),
        "UpdateKeyPair": false,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PublicKeyInput {
    new_public_key: String,
    new_public_key_type: Option<String>,
}

/// `UpdateManagedInstancePublicKey`, signed with the old key.
pub(super) async fn update_public_key(
    state: &Arc<AppState>,
    caller: &Caller,
    input: PublicKeyInput,
) -> Result<Value, ApiError> {
    let instance_id = node_key_caller(caller)?;
    if input
        .new_public_key_type
        .as_deref()
        .is_some_and(|t| t != "Rsa")
    {
        return Err(ApiError::validation("NewPublicKeyType must be Rsa."));
    }
    check_public_key(&input.new_public_key)?;
    state
        .store
        .set_public_key(instance_id, &input.new_public_key)
        .await?;
    tracing::info!(%instance_id, "node key rotated");
    output(json!({}))
}

fn node_key_caller(caller: &Caller) -> Result<&str, ApiError> {
    match &caller.principal {
        Principal::NodeKey { instance_id } => Ok(instance_id),
        _ => Err(ApiError::access_denied(
            "Only a managed node signing with its registered key may call this operation.",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateInformationInput {
    instance_id: String,
    agent_name: Option<String>,
    agent_version: Option<String>,
    platform_type: Option<String>,
    platform_name: Option<String>,
    platform_version: Option<String>,
    computer_name: Option<String>,
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    /// tagrun's extension: the tags the node reports for itself.
    tags: Option<Vec<Tag>>,
}

/// `UpdateInstanceInformation`: a node reports its platform and its own tags.
pub(super) async fn update_information(
    state: &Arc<AppState>,
    caller: &Caller,
    input: UpdateInformationInput,
) -> Result<Value, ApiError> {
    let node_arn = arn::node(
        &state.config.region,
        &state.config.account_id,
        &input.instance_id,
    );
    caller.authorize(
        "ssm:UpdateInstanceInformation",
        &[Resource::untagged(node_arn.clone())],
    )?;
    if caller.node_instance_id() != Some(input.instance_id.as_str()) {
        return Err(ApiError::access_denied(format!(
            "User: {} is not authorized to perform: ssm:UpdateInstanceInformation on resource: \
             {node_arn} because a node may only report its own information",
            caller.arn()
        )));
    }

    let facts = PlatformFacts {
        agent_name: input.agent_name,
        agent_version: input.agent_version,
        platform_type: input.platform_type,
        platform_name: input.platform_name,
        platform_version: input.platform_version,
        computer_name: input.computer_name,
        ip_address: input.ip_address,
    };
    state
        .store
        .update_platform_facts(&input.instance_id, &facts, now_ms())
        .await?;
    if let Some(tags) = input.tags {
        let tags = allowed_agent_tags(state, tags_from_list(&tags)?);
        state
            .store
            .replace_agent_tags(&input.instance_id, &tags)
            .await?;
    }
    output(json!({}))
}

/// Drops agent-reported tags whose keys the configuration does not allow.
fn allowed_agent_tags(
    state: &AppState,
    mut tags: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if let Some(allowed) = &state.config.agent_tag_keys {
        tags.retain(|key, _| allowed.contains(key));
    }
    tags
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeInformationInput {
    #[serde(default)]
    instance_information_filter_list: Vec<LegacyNodeFilter>,
    #[serde(default)]
    filters: Vec<NodeFilter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LegacyNodeFilter {
    key: String,
    #[serde(rename = "valueSet", default)]
    value_set: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeFilter {
    key: String,
    #[serde(default)]
    values: Vec<String>,
}

/// `DescribeInstanceInformation`.
pub(super) async fn describe_information(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DescribeInformationInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:DescribeInstanceInformation", &[])?;
    if input.max_results.is_some_and(|n| !(5..=50).contains(&n)) {
        let value = input.max_results.unwrap_or_default().to_string();
        let constraint = "have value between 5 and 50";
        return Err(ApiError::constraint(&value, "maxResults", constraint));
    }
    let filters = node_filters(&input)?;
    let all_tags = state.store.all_tags(ResourceKind::ManagedInstance).await?;
    let now = now_ms();

    let mut list = Vec::new();
    for node in state.store.nodes().await? {
        let tags = all_tags.get(&node.instance_id).cloned().unwrap_or_default();
        let info = Information::new(state, &node, now);
        if filters
            .iter()
            .all(|(key, values)| info.matches(key, values, &tags))
        {
            list.push(info);
        }
    }

    let token = input.next_token.as_deref();
    let (page, next_token) = paginate(list, input.max_results, token, 50)?;
    output(json!({ "InstanceInformationList": page, "NextToken": next_token }))
}

const NODE_FILTER_KEYS: &[&str] = &[
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
];

fn node_filters(input: &DescribeInformationInput) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let legacy = input
        .instance_information_filter_list
        .iter()
        .map(|f| (&f.key, &f.value_set));
    let current = input.filters.iter().map(|f| (&f.key, &f.values));
    let mut filters = Vec::new();
    for (key, values) in legacy.chain(current) {
        let known =
            NODE_FILTER_KEYS.contains(&key.as_str()) || key.starts_with("tag:") || key == "tag-key";
        if !known {
            let message = format!("The filter key {key} is not valid.");
            return Err(ApiError::new(
                "InvalidInstanceInformationFilterValue",
                message,
            ));
        }
        filters.push((key.clone(), values.clone()));
    }
    Ok(filters)
}

/// The `InstanceInformation` shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Information {
    instance_id: String,
    ping_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_ping_date_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_version: Option<String>,
    is_latest_version: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation_id: Option<String>,
    iam_role: String,
    registration_date: f64,
    resource_type: String,
    name: String,
    #[serde(rename = "IPAddress", skip_serializing_if = "Option::is_none")]
    ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    computer_name: Option<String>,
    source_id: String,
    source_type: &'static str,
}

impl Information {
    fn new(state: &AppState, node: &Node, now: i64) -> Information {
        let lost_after =
            i64::try_from(state.config.connection_lost_after_secs * 1000).unwrap_or(i64::MAX);
        let managed = node.resource_type == "ManagedInstance";
        Information {
            instance_id: node.instance_id.clone(),
            ping_status: ping_status(node.last_ping_ms, now, lost_after),
            last_ping_date_time: node.last_ping_ms.map(timestamp),
            agent_version: node.facts.agent_version.clone(),
            is_latest_version: true,
            platform_type: node.facts.platform_type.clone(),
            platform_name: node.facts.platform_name.clone(),
            platform_version: node.facts.platform_version.clone(),
            activation_id: node.activation_id.clone(),
            iam_role: node.iam_role.clone(),
            registration_date: timestamp(node.registered_ms),
            resource_type: node.resource_type.clone(),
            name: node.name.clone(),
            ip_address: node.facts.ip_address.clone(),
            computer_name: node.facts.computer_name.clone(),
            source_id: node.instance_id.clone(),
            source_type: if managed {
                "AWS::SSM::ManagedInstance"
            } else {
                "AWS::EC2::Instance"
            },
        }
    }

    fn matches(&self, key: &str, values: &[String], tags: &BTreeMap<String, String>) -> bool {
        let any = |field: Option<&str>| field.is_some_and(|f| values.iter().any(|v| v == f));
        match key {
            "InstanceIds" => any(Some(&self.instance_id)),
            "AgentVersion" => any(self.agent_version.as_deref()),
            "PingStatus" => any(Some(self.ping_status)),
            "PlatformTypes" => any(self.platform_type.as_deref()),
            "ActivationIds" => any(self.activation_id.as_deref()),
            "IamRole" => any(Some(&self.iam_role)),
            "ResourceType" => any(Some(&self.resource_type)),
            "AssociationStatus" => false,
            "tag-key" => values.iter().any(|v| tags.contains_key(v)),
            _ => key
                .strip_prefix("tag:")
                .and_then(|tag_key| tags.get(tag_key))
                .is_some_and(|value| values.contains(value)),
        }
    }
}

/// `Online` while the node was heard from within `lost_after_ms`, else
/// `ConnectionLost`. Every call a node makes counts, long polls included, so a node
/// whose network returns is `Online` again with its next poll.
fn ping_status(last_ping_ms: Option<i64>, now: i64, lost_after_ms: i64) -> &'static str {
    match last_ping_ms {
        Some(ping) if now - ping <= lost_after_ms => "Online",
        _ => "ConnectionLost",
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeregisterInput {
    instance_id: String,
}

/// `DeregisterManagedInstance`.
pub(super) async fn deregister(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DeregisterInput,
) -> Result<Value, ApiError> {
    authorize_node(
        state,
        caller,
        "ssm:DeregisterManagedInstance",
        &input.instance_id,
    )?;
    if !ids::is_managed_instance_id(&input.instance_id)
        || !state.store.deregister_node(&input.instance_id).await?
    {
        return Err(invalid_instance_id());
    }
    tracing::info!(instance_id = %input.instance_id, "node deregistered");
    output(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListAssociationsInput {
    instance_id: String,
}

/// `ListInstanceAssociations`: agents ask periodically; tagrun has no associations.
pub(super) async fn list_associations(
    state: &Arc<AppState>,
    caller: &Caller,
    input: ListAssociationsInput,
) -> Result<Value, ApiError> {
    authorize_node(
        state,
        caller,
        "ssm:ListInstanceAssociations",
        &input.instance_id,
    )?;
    output(json!({ "Associations": [] }))
}

/// Authorizes `action` on one node, by its ARN (without its tags: the node
/// operations here are not tag-conditioned in AWS either).
fn authorize_node(
    state: &AppState,
    caller: &Caller,
    action: &str,
    instance_id: &str,
) -> Result<(), ApiError> {
    let node_arn = arn::node(&state.config.region, &state.config.account_id, instance_id);
    caller.authorize(action, &[Resource::untagged(node_arn)])
}

/// `InvalidInstanceId`, in the API's general wording.
pub fn invalid_instance_id() -> ApiError {
    ApiError::new(
        "InvalidInstanceId",
        "The following supplied instance ids are not valid or the instance is not registered.",
    )
}

fn sha256_hex(text: &str) -> String {
    hex_lower(&Sha256::digest(text.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_expire_within_thirty_days() {
        let now = 1_000_000;

        assert_eq!(expiration(None, now).unwrap(), now + DAY_MS);
        assert!(expiration(Some(0.0), now).is_err());
        let too_late = (now + MAX_ACTIVATION_MS + 1000) as f64 / 1000.0;
        assert!(expiration(Some(too_late), now).is_err());
    }

    #[test]
    fn nodes_lose_their_connection_after_missed_pings() {
        assert_eq!(ping_status(Some(1_000), 600_999, 600_000), "Online");
        assert_eq!(ping_status(Some(1_000), 601_001, 600_000), "ConnectionLost");
        assert_eq!(ping_status(None, 0, 600_000), "ConnectionLost");
    }

    #[test]
    fn garbage_public_keys_are_refused() {
        assert!(check_public_key("bm90IGEga2V5").is_err());
        assert!(check_public_key("!!").is_err());
    }
}
