//! Run Command: `SendCommand`, `CancelCommand`, `ListCommands`,
//! `ListCommandInvocations` and `GetCommandInvocation`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tagrun_document::{Document, DocumentFormat, Platform, ResolvedParameters};

use super::documents::{self, Resolved};
use super::nodes::invalid_instance_id;
use crate::api::{output, paginate};
use crate::auth::{Caller, CallerFacts, Resource};
use crate::engine::{Detail, Limit};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{
    CommandRecord, InterruptedResolution, NewCommand, NewInvocation, PluginResult, ResourceKind,
    StoreError, TargetNode, Unresolved, now_ms,
};
use crate::{arn, ids};

mod output_shape;
mod validate;

use output_shape::{command_shape, invocation_shape, iso_duration, plugin_rows};

/// Delivery timeout when `TimeoutSeconds` is not given.
const DEFAULT_TIMEOUT_SECS: i64 = 3600;
/// Execution timeout when the document has no `executionTimeout` parameter.
const DEFAULT_EXECUTION_SECS: i64 = 3600;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SendInput {
    document_name: String,
    document_version: Option<String>,
    document_hash: Option<String>,
    document_hash_type: Option<String>,
    #[serde(default)]
    instance_ids: Vec<String>,
    #[serde(default)]
    targets: Vec<Target>,
    timeout_seconds: Option<i64>,
    comment: Option<String>,
    #[serde(default)]
    parameters: BTreeMap<String, Vec<String>>,
    output_s3_region: Option<String>,
    output_s3_bucket_name: Option<String>,
    output_s3_key_prefix: Option<String>,
    max_concurrency: Option<String>,
    max_errors: Option<String>,
    service_role_arn: Option<String>,
    notification_config: Option<Value>,
    cloud_watch_output_config: Option<CloudWatchOutputConfig>,
    alarm_configuration: Option<Value>,
}

/// One `Targets` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Target {
    key: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CloudWatchOutputConfig {
    #[serde(default)]
    cloud_watch_log_group_name: String,
    #[serde(default)]
    cloud_watch_output_enabled: bool,
}

/// `SendCommand`.
pub(super) async fn send(
    state: &Arc<AppState>,
    caller: &Caller,
    input: SendInput,
) -> Result<Value, ApiError> {
    validate::send_input(&input)?;
    let name = document_name(&input.document_name);
    let version = input.document_version.as_deref();
    let resolved = documents::resolve(state, name, version, None).await?;
    check_hash(&input, &resolved)?;
    // The document's own tags are offered as resource tags, as AWS offers them;
    // AWS-owned documents carry none.
    let doc_tags = state.store.tags(ResourceKind::Document, name).await?;
    let doc_arn = arn::document(&state.config.region, &state.config.account_id, name);
    let document_resource = Resource {
        arn: doc_arn,
        tags: doc_tags,
    };
    caller.authorize("ssm:SendCommand", &[document_resource])?;

    let document = resolved.document()?;
    let parameters = document
        .validate_parameters(&input.parameters)
        .map_err(|e| ApiError::new("InvalidParameters", e.to_string()))?;
    let plan = plan_invocations(state, caller, &input, &document).await?;
    let unresolved = plan.resume_after.clone().map(|after| Unresolved {
        after,
        caller_json: serde_json::to_string(&caller.facts()).unwrap_or_default(),
    });
    let command = new_command(
        caller,
        &input,
        &resolved,
        &document,
        &parameters,
        plan.invocations,
        unresolved,
    )?;

    let topic = state.topic_suffix();
    let first = state.store.create_command(&command, &topic).await?;
    state.wakeups.wake(&first);
    // The command is durable from here on: what follows stores the rest of its
    // invocations, which the timeout sweep also does should this fail part way.
    let command_id = &command.command_id;
    let rest = state
        .store
        .store_remaining_invocations(command_id, &topic, now_ms(), |nodes| {
            state.wakeups.wake(&nodes);
        })
        .await;
    if let Err(error) = rest {
        tracing::warn!(%command_id, error = %crate::error_chain(&error),
            "storing invocations failed, the sweep will retry");
    }
    if let Some(after) = plan.resume_after {
        let rest = resolve_remaining(state, caller, command_id, &input.targets, &document, after);
        if let Err(error) = rest.await {
            tracing::warn!(%command_id, error = %crate::error_chain(&error),
                "resolving targets failed, the sweep will retry");
        }
    }

    let record = state
        .store
        .command(command_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    tracing::info!(%command_id, document = %name, targets = record.counters.target_count,
        "command accepted");
    output(json!({ "Command": command_shape(&record) }))
}

/// Finishes resolving the `Targets` of commands whose `SendCommand` stopped part way
/// (the server was restarted), on behalf of their senders: see
/// [`crate::auth::CallerFacts`].
pub async fn resume_interrupted(state: &AppState) -> Result<(), StoreError> {
    let mut failed = None;
    for interrupted in state.store.interrupted_resolutions(now_ms()).await? {
        // One command that fails does not hold up the others.
        if let Err(error) = resume(state, &interrupted).await {
            failed.get_or_insert(error);
        }
    }
    failed.map_or(Ok(()), Err)
}

async fn resume(state: &AppState, interrupted: &InterruptedResolution) -> Result<(), StoreError> {
    let command_id = &interrupted.command_id;
    let after = interrupted.after.clone();
    tracing::info!(%command_id, "resolving the targets of an interrupted command");
    match resumable(state, interrupted).await {
        Ok((input, caller, document)) => {
            let targets = &input.targets;
            resolve_remaining(state, &caller, command_id, targets, &document, after).await
        }
        Err(why) => {
            tracing::warn!(%command_id, why, "no more targets can be resolved");
            let topic = state.topic_suffix();
            let end = state.store.add_resolved_invocations(
                command_id,
                &after,
                None,
                &[],
                &topic,
                now_ms(),
            );
            end.await.map(drop)
        }
    }
}

/// What resolving the rest of an interrupted command needs: its request, its sender
/// and its document. A sender that cannot be read is denied every node.
async fn resumable(
    state: &AppState,
    interrupted: &InterruptedResolution,
) -> Result<(SendInput, Caller, Document), &'static str> {
    let input = serde_json::from_str::<SendInput>(&interrupted.request_json)
        .map_err(|_| "the command's request is unreadable")?;
    let name = document_name(&input.document_name);
    let version = input.document_version.as_deref();
    let document = documents::resolve(state, name, version, None)
        .await
        .and_then(|resolved| resolved.document())
        .map_err(|_| "the command's document is gone")?;
    let facts =
        serde_json::from_str::<CallerFacts>(&interrupted.caller_json).unwrap_or_else(|_| {
            let command_id = &interrupted.command_id;
            tracing::warn!(%command_id, "the command's sender is unreadable; denying the rest");
            CallerFacts::nobody()
        });
    let caller = Caller::from_facts(facts, &state.config, &state.identities);
    Ok((input, caller, document))
}

/// A document ARN names the document; the name is its last path segment.
fn document_name(name_or_arn: &str) -> &str {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.rsplit('/').next().unwrap_or(name_or_arn)
    } else {
        name_or_arn
    }
}

fn check_hash(input: &SendInput, resolved: &Resolved) -> Result<(), ApiError> {
    let Some(hash) = &input.document_hash else {
        return Ok(());
    };
    if input
        .document_hash_type
        .as_deref()
        .is_some_and(|t| t != "Sha256")
    {
        let message = "Only Sha256 document hashes are supported.";
        return Err(ApiError::new("InvalidDocument", message));
    }
    if !hash.eq_ignore_ascii_case(&resolved.hash) {
        let message = "The document hash does not match the document's content.";
        return Err(ApiError::new("InvalidDocument", message));
    }
    Ok(())
}

/// Nodes matching `Targets` whose invocations a new command stores before its first
/// nodes are woken. The others are found and stored while those nodes already work,
/// so the first message does not wait for a whole fleet to be read and authorized.
const FIRST_TARGETS: usize = 10;

/// Nodes read per query while resolving `Targets`, and the most invocations stored
/// per later transaction.
const RESOLVE_PAGE: usize = 100;

/// The invocations planned so far.
struct Plan {
    /// One per node, with `AccessDenied` or `InvalidPlatform` already decided for
    /// nodes reached through `Targets`.
    invocations: Vec<NewInvocation>,
    /// The last node looked at, when nodes after it remain to be.
    resume_after: Option<String>,
}

/// The first invocations of a new command: all of them for `InstanceIds`, the
/// first [`FIRST_TARGETS`] for `Targets`.
///
/// Percentages are of the whole target count. While it is not known, a percentage
/// in `MaxConcurrency` is taken of the nodes resolved so far, which releases no more
/// than the whole count would; one in `MaxErrors` could stop a command too early,
/// so then every node is resolved first.
async fn plan_invocations(
    state: &AppState,
    caller: &Caller,
    input: &SendInput,
    document: &Document,
) -> Result<Plan, ApiError> {
    if !input.instance_ids.is_empty() {
        let mut invocations = Vec::new();
        for id in &input.instance_ids {
            let (node, tags) = tokio::try_join!(
                state.store.node(id),
                state.store.tags(ResourceKind::ManagedInstance, id)
            )?;
            let node = node.ok_or_else(invalid_instance_id)?;
            let node = TargetNode {
                instance_id: node.instance_id,
                computer_name: node.facts.computer_name,
                platform_type: node.facts.platform_type,
            };
            let resource = node_resource(state, &node, tags);
            caller.authorize("ssm:SendCommand", &[resource])?;
            if !supports(document, &node) {
                let message = format!("The document does not support the platform of {id}.");
                return Err(ApiError::new("UnsupportedPlatformType", message));
            }
            invocations.push(new_invocation(&node, Detail::Pending));
        }
        return Ok(Plan {
            invocations,
            resume_after: None,
        });
    }

    let max_errors = input.max_errors.as_deref().and_then(Limit::parse);
    let first = match max_errors {
        Some(Limit::Percent(_)) => usize::MAX,
        _ => FIRST_TARGETS,
    };
    let allowed = caller.authorizer("ssm:SendCommand");
    let targets = Targeting {
        state,
        allowed: &allowed,
        targets: &input.targets,
        document,
    };
    Ok(targets.resolve("", first).await?)
}

/// What resolving `Targets` into invocations needs.
struct Targeting<'a, A> {
    state: &'a AppState,
    allowed: &'a A,
    targets: &'a [Target],
    document: &'a Document,
}

impl<A: Fn(&Resource) -> bool> Targeting<'_, A> {
    /// The invocations of the nodes after `after` that match, until `wanted` are
    /// found or every node was looked at.
    async fn resolve(&self, after: &str, wanted: usize) -> Result<Plan, StoreError> {
        let mut invocations = Vec::new();
        let mut after = after.to_owned();
        loop {
            let page = self.state.store.target_page(&after, RESOLVE_PAGE).await?;
            let last_page = page.len() < RESOLVE_PAGE;
            for (node, tags) in page {
                after.clone_from(&node.instance_id);
                if !matches_targets(self.targets, &node, &tags) {
                    continue;
                }
                let resource = node_resource(self.state, &node, tags);
                let detail = if !(self.allowed)(&resource) {
                    Detail::AccessDenied
                } else if !supports(self.document, &node) {
                    Detail::InvalidPlatform
                } else {
                    Detail::Pending
                };
                invocations.push(new_invocation(&node, detail));
                if invocations.len() == wanted {
                    return Ok(Plan {
                        invocations,
                        resume_after: Some(after),
                    });
                }
            }
            if last_page {
                return Ok(Plan {
                    invocations,
                    resume_after: None,
                });
            }
        }
    }
}

/// Finds and stores the invocations of the nodes after `after` that match
/// `targets`, a page at a time, waking the nodes each page releases. Another
/// replica, or the sweep, may be at the same command: each page is stored by one
/// of them, and each goes on from where the other left off.
async fn resolve_remaining(
    state: &AppState,
    caller: &Caller,
    command_id: &str,
    targets: &[Target],
    document: &Document,
    mut after: String,
) -> Result<(), StoreError> {
    let allowed = caller.authorizer("ssm:SendCommand");
    let targeting = Targeting {
        state,
        allowed: &allowed,
        targets,
        document,
    };
    let topic = state.topic_suffix();
    loop {
        let plan = targeting.resolve(&after, RESOLVE_PAGE).await?;
        let next = plan.resume_after.as_deref();
        let stored = state
            .store
            .add_resolved_invocations(
                command_id,
                &after,
                next,
                &plan.invocations,
                &topic,
                now_ms(),
            )
            .await?;
        let next = match stored {
            Some(released) => {
                state.wakeups.wake(&released);
                plan.resume_after
            }
            None => state.store.resolve_after(command_id).await?,
        };
        match next {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

fn node_resource(state: &AppState, node: &TargetNode, tags: BTreeMap<String, String>) -> Resource {
    Resource {
        arn: arn::node(
            &state.config.region,
            &state.config.account_id,
            &node.instance_id,
        ),
        tags,
    }
}

fn new_invocation(node: &TargetNode, detail: Detail) -> NewInvocation {
    NewInvocation {
        instance_id: node.instance_id.clone(),
        instance_name: node.computer_name.clone().unwrap_or_default(),
        detail,
    }
}

/// Whether a node whose platform is known runs the document; unknown platforms pass.
fn supports(document: &Document, node: &TargetNode) -> bool {
    let platform = node
        .platform_type
        .as_deref()
        .and_then(|p| p.parse::<Platform>().ok());
    platform.is_none_or(|p| document.supports_platform(p))
}

/// Whether a node satisfies every target (AND); within one target any value (OR).
fn matches_targets(targets: &[Target], node: &TargetNode, tags: &BTreeMap<String, String>) -> bool {
    targets.iter().all(|target| {
        let key = target.key.as_str();
        if key.eq_ignore_ascii_case("InstanceIds") {
            return target.values.contains(&node.instance_id);
        }
        if key == "tag-key" {
            return target.values.iter().any(|k| tags.contains_key(k));
        }
        let tag = key.strip_prefix("tag:").unwrap_or_default();
        tags.get(tag)
            .is_some_and(|value| target.values.contains(value))
    })
}

fn new_command(
    caller: &Caller,
    input: &SendInput,
    resolved: &Resolved,
    document: &Document,
    parameters: &ResolvedParameters,
    invocations: Vec<NewInvocation>,
    unresolved: Option<Unresolved>,
) -> Result<NewCommand, ApiError> {
    let command_id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let timeout = input.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS);
    let execution = parameters
        .get("executionTimeout")
        .and_then(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v.as_i64())
        })
        .unwrap_or(DEFAULT_EXECUTION_SECS);

    Ok(NewCommand {
        payload: payload(&command_id, input, resolved, parameters)?,
        requested_ms: now,
        delivery_deadline_ms: now + timeout * 1000,
        expires_ms: now + (timeout + execution) * 1000,
        requester: caller.arn(),
        document_name: input.document_name.clone(),
        document_version: input
            .document_version
            .clone()
            .unwrap_or_else(|| "$DEFAULT".into()),
        comment: input.comment.clone().unwrap_or_default(),
        max_concurrency: input.max_concurrency.clone().unwrap_or_else(|| "50".into()),
        max_errors: input.max_errors.clone().unwrap_or_else(|| "0".into()),
        request_json: serde_json::to_string(input).map_err(|_| ApiError::internal())?,
        steps: document
            .steps()
            .iter()
            .map(|s| s.name().to_owned())
            .collect(),
        no_targets: input.instance_ids.is_empty() && invocations.is_empty() && unresolved.is_none(),
        invocations,
        unresolved,
        command_id,
    })
}

/// The message payload every node of the command receives.
fn payload(
    command_id: &str,
    input: &SendInput,
    resolved: &Resolved,
    parameters: &ResolvedParameters,
) -> Result<String, ApiError> {
    let content: Value = match resolved.format {
        DocumentFormat::Json => serde_json::from_str(&resolved.content).ok(),
        DocumentFormat::Yaml => serde_yaml_ng::from_str(&resolved.content).ok(),
    }
    .ok_or_else(ApiError::internal)?;
    let cloud_watch = input.cloud_watch_output_config.clone().unwrap_or_default();
    let payload = json!({
        "CommandId": command_id,
        "DocumentName": resolved.name,
        "DocumentContent": content,
        "Parameters": parameters.to_json(),
        "OutputS3BucketName": input.output_s3_bucket_name.clone().unwrap_or_default(),
        "OutputS3KeyPrefix": input.output_s3_key_prefix.clone().unwrap_or_default(),
        "CloudWatchLogGroupName": cloud_watch.cloud_watch_log_group_name,
        "CloudWatchOutputEnabled": cloud_watch.cloud_watch_output_enabled.to_string(),
    });
    Ok(payload.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CancelInput {
    command_id: String,
    #[serde(default)]
    instance_ids: Vec<String>,
}

/// `CancelCommand`: best effort, as on AWS.
pub(super) async fn cancel(
    state: &Arc<AppState>,
    caller: &Caller,
    input: CancelInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:CancelCommand", &[])?;
    validate::command_id(&input.command_id)?;
    let unique: BTreeSet<&String> = input.instance_ids.iter().collect();
    if unique.len() != input.instance_ids.len() {
        let message = "You cannot specify an instance ID in more than one association.";
        return Err(ApiError::new("DuplicateInstanceId", message));
    }
    if input.instance_ids.iter().any(|id| !ids::is_instance_id(id)) {
        return Err(invalid_instance_id());
    }
    let topic = state.topic_suffix();
    let now = now_ms();
    let cancelled = state
        .store
        .cancel_command(&input.command_id, &input.instance_ids, &topic, now);
    let notify = cancelled.await?.ok_or_else(invalid_command_id)?;
    state.wakeups.wake(&notify);
    tracing::info!(command_id = %input.command_id, "cancel requested");
    output(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInput {
    command_id: Option<String>,
    instance_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    details: bool,
}

#[derive(Debug, Deserialize)]
struct Filter {
    key: String,
    value: String,
}

/// `ListCommands`, newest first.
pub(super) async fn list_commands(
    state: &Arc<AppState>,
    caller: &Caller,
    input: ListInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:ListCommands", &[])?;
    let filters = validate::filters(&input.filters, true)?;
    let mut commands = state.store.commands(input.instance_id.as_deref()).await?;
    if let Some(command_id) = &input.command_id {
        validate::command_id(command_id)?;
        commands.retain(|c| &c.command_id == command_id);
        if commands.is_empty() && input.instance_id.is_none() {
            return Err(invalid_command_id());
        }
    }
    commands.retain(|c| filters.iter().all(|f| f.matches_command(c)));

    let shapes: Vec<Value> = commands.iter().map(command_shape).collect();
    let token = input.next_token.as_deref();
    let (page, next_token) = paginate(shapes, input.max_results, token, 50)?;
    output(json!({ "Commands": page, "NextToken": next_token }))
}

/// `ListCommandInvocations`.
pub(super) async fn list_invocations(
    state: &Arc<AppState>,
    caller: &Caller,
    input: ListInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:ListCommandInvocations", &[])?;
    let filters = validate::filters(&input.filters, false)?;
    if let Some(command_id) = &input.command_id {
        validate::command_id(command_id)?;
    }
    let commands = state.store.commands(input.instance_id.as_deref()).await?;
    let by_id: BTreeMap<&str, &CommandRecord> = commands
        .iter()
        .map(|c| (c.command_id.as_str(), c))
        .collect();
    let invocations = state
        .store
        .invocations(input.command_id.as_deref(), input.instance_id.as_deref())
        .await?;

    let mut rows = Vec::new();
    for invocation in &invocations {
        let Some(command) = by_id.get(invocation.command_id.as_str()) else {
            continue;
        };
        if filters
            .iter()
            .all(|f| f.matches_invocation(command, invocation))
        {
            rows.push(invocation_shape(command, invocation, input.details));
        }
    }
    let token = input.next_token.as_deref();
    let (page, next_token) = paginate(rows, input.max_results, token, 50)?;
    output(json!({ "CommandInvocations": page, "NextToken": next_token }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetInvocationInput {
    command_id: String,
    instance_id: String,
    plugin_name: Option<String>,
}

/// Most characters of standard output `GetCommandInvocation` returns.
const STDOUT_LIMIT: usize = 24_000;
/// Most characters of standard error `GetCommandInvocation` returns.
const STDERR_LIMIT: usize = 8_000;

/// `GetCommandInvocation`: one step of one node, with its output.
pub(super) async fn get_invocation(
    state: &Arc<AppState>,
    caller: &Caller,
    input: GetInvocationInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:GetCommandInvocation", &[])?;
    validate::command_id(&input.command_id)?;
    if !ids::is_instance_id(&input.instance_id) {
        return Err(invalid_instance_id());
    }
    let command = state.store.command(&input.command_id).await?;
    let invocations = state
        .store
        .invocations(Some(&input.command_id), Some(&input.instance_id))
        .await?;
    let (Some(command), Some(invocation)) = (command, invocations.first()) else {
        return Err(ApiError::new("InvocationDoesNotExist", ""));
    };

    let plugins = plugin_rows(&command, invocation);
    let plugin = match &input.plugin_name {
        Some(name) => plugins
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| ApiError::new("InvalidPluginName", "The plugin name is not valid."))?,
        None if plugins.len() == 1 => &plugins[0],
        None => {
            let message = "The document has more than one step: specify PluginName.";
            return Err(ApiError::new("InvalidPluginName", message));
        }
    };
    let result = plugin.result;
    let (start, end) = result.map_or((String::new(), String::new()), |r| {
        (
            r.start.clone(),
            if is_running(r) {
                String::new()
            } else {
                r.end.clone()
            },
        )
    });
    let request: SendInput = serde_json::from_str(&command.request_json).unwrap_or_default();

    output(json!({
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": command.document_version,
        "PluginName": plugin.name,
        "ResponseCode": result.map_or(-1, |r| if is_running(r) { -1 } else { r.code }),
        "ExecutionStartDateTime": start,
        "ExecutionElapsedTime": iso_duration(&start, &end),
        "ExecutionEndDateTime": end,
        "Status": plugin.status.as_str(),
        "StatusDetails": plugin.details,
        "StandardOutputContent": result.map_or("", |r| prefix(&r.standard_output, STDOUT_LIMIT)),
        "StandardOutputUrl": "",
        "StandardErrorContent": result.map_or("", |r| prefix(&r.standard_error, STDERR_LIMIT)),
        "StandardErrorUrl": "",
        "CloudWatchOutputConfig": cloud_watch_shape(&request),
    }))
}

fn is_running(result: &PluginResult) -> bool {
    matches!(result.status.as_str(), "InProgress" | "NotStarted")
}

/// The first `limit` characters of `text`.
fn prefix(text: &str, limit: usize) -> &str {
    match text.char_indices().nth(limit) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn cloud_watch_shape(request: &SendInput) -> Value {
    let config = request
        .cloud_watch_output_config
        .clone()
        .unwrap_or_default();
    json!({
        "CloudWatchLogGroupName": config.cloud_watch_log_group_name,
        "CloudWatchOutputEnabled": config.cloud_watch_output_enabled,
    })
}

fn invalid_command_id() -> ApiError {
    ApiError::new("InvalidCommandId", "The specified command ID is not valid.")
}

#[cfg(test)]
mod tests;
