//! Document operations: create, read, describe, list, update, version, delete.
//!
//! Built-in AWS documents (`AWS-RunShellScript`, ...) come from the document crate,
//! are always present and cannot be changed. Documents that users create live in the
//! store with every version.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tagrun_document::{Document, DocumentFormat};

use super::{Tag, tags_from_list};
use crate::api::{output, paginate, timestamp};
use crate::arn;
use crate::auth::{Caller, Resource};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AddVersionOutcome, DocumentRecord, DocumentVersion, NewVersion, ResourceKind};

/// A document version as every operation here sees it, built-in or stored.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Name.
    pub name: String,
    /// Owner: `Amazon` for built-ins, else the account id.
    pub owner: String,
    /// This version's number.
    pub version: i64,
    /// The default version's number.
    pub default_version: i64,
    /// The latest version's number.
    pub latest_version: i64,
    /// This version's label.
    pub version_name: Option<String>,
    /// Content as stored.
    pub content: String,
    /// How it is written.
    pub format: DocumentFormat,
    /// sha256 of the content, hex.
    pub hash: String,
    /// When this version was created.
    pub created_ms: i64,
    /// Optional target type.
    pub target_type: Option<String>,
}

impl Resolved {
    /// The parsed document; stored content was validated when it was created.
    pub fn document(&self) -> Result<Document, ApiError> {
        Document::parse(&self.content, self.format).map_err(|error| {
            tracing::error!(document = %self.name, %error, "stored document no longer parses");
            ApiError::internal()
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateInput {
    content: String,
    name: String,
    display_name: Option<String>,
    version_name: Option<String>,
    document_type: Option<String>,
    document_format: Option<String>,
    target_type: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    requires: Vec<Value>,
    #[serde(default)]
    attachments: Vec<Value>,
}

/// `CreateDocument`.
pub(super) async fn create(
    state: &Arc<AppState>,
    caller: &Caller,
    input: CreateInput,
) -> Result<Value, ApiError> {
    check_new_name(&input.name)?;
    let resource = Resource::untagged(document_arn(state, &input.name));
    caller.authorize("ssm:CreateDocument", &[resource])?;
    check_command_type(input.document_type.as_deref())?;
    reject_unsupported(&input.requires, &input.attachments)?;
    if input.display_name.is_some() {
        tracing::debug!("DisplayName is accepted and not stored");
    }

    let format = parse_format(input.document_format.as_deref())?;
    let tags = tags_from_list(&input.tags)?;
    validate_content(&input.content, format)?;
    let hash = tagrun_document::document_hash(&input.content);
    let first = NewVersion {
        version_name: input.version_name.as_deref(),
        content: &input.content,
        format: format.as_str(),
        hash: &hash,
    };
    let created = state
        .store
        .create_document(&input.name, "Command", input.target_type.as_deref(), &first)
        .await?;
    if !created || tagrun_document::builtin(&input.name).is_some() {
        return Err(ApiError::new(
            "DocumentAlreadyExists",
            "Document with same name already exists",
        ));
    }
    let admin = crate::store::TagSource::Admin;
    state
        .store
        .add_tags(ResourceKind::Document, &input.name, admin, &tags)
        .await?;

    let resolved = resolve(state, &input.name, None, None).await?;
    output(CreateOutput {
        document_description: describe(state, &resolved).await?,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateOutput {
    document_description: Description,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetInput {
    name: String,
    document_version: Option<String>,
    version_name: Option<String>,
    document_format: Option<String>,
}

/// `GetDocument`.
pub(super) async fn get(
    state: &Arc<AppState>,
    caller: &Caller,
    input: GetInput,
) -> Result<Value, ApiError> {
    authorize_read(state, caller, "ssm:GetDocument", &input.name)?;
    let version = input.document_version.as_deref();
    let resolved = resolve(state, &input.name, version, input.version_name.as_deref()).await?;
    let format = match input.document_format.as_deref() {
        None => resolved.format,
        Some(text) => parse_format(Some(text))?,
    };
    let content = convert(&resolved, format)?;

    output(GetOutput {
        name: resolved.name.clone(),
        created_date: timestamp(resolved.created_ms),
        version_name: resolved.version_name.clone(),
        document_version: resolved.version.to_string(),
        status: "Active",
        content,
        document_type: "Command",
        document_format: format.as_str(),
        requires: Vec::new(),
        attachments_content: Vec::new(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetOutput {
    name: String,
    created_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    document_version: String,
    status: &'static str,
    content: String,
    document_type: &'static str,
    document_format: &'static str,
    requires: Vec<Value>,
    attachments_content: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeInput {
    name: String,
    document_version: Option<String>,
    version_name: Option<String>,
}

/// `DescribeDocument`.
pub(super) async fn describe_document(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DescribeInput,
) -> Result<Value, ApiError> {
    authorize_read(state, caller, "ssm:DescribeDocument", &input.name)?;
    let version = input.document_version.as_deref();
    let resolved = resolve(state, &input.name, version, input.version_name.as_deref()).await?;
    output(serde_json::json!({ "Document": describe(state, &resolved).await? }))
}

/// The `DocumentDescription` shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Description {
    hash: String,
    hash_type: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    owner: String,
    created_date: f64,
    status: &'static str,
    document_version: String,
    description: String,
    parameters: Vec<ParameterShape>,
    platform_types: Vec<&'static str>,
    document_type: &'static str,
    schema_version: &'static str,
    latest_version: String,
    default_version: String,
    document_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_type: Option<String>,
    tags: Vec<Tag>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ParameterShape {
    name: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_value: Option<String>,
}

async fn describe(state: &Arc<AppState>, resolved: &Resolved) -> Result<Description, ApiError> {
    let document = resolved.document()?;
    let tags = state
        .store
        .tags(ResourceKind::Document, &resolved.name)
        .await?;
    let parameters = document.parameters().iter().map(|p| ParameterShape {
        name: p.name().to_owned(),
        kind: p.parameter_type().as_str(),
        description: p.description().unwrap_or_default().to_owned(),
        default_value: p.default_value_string(),
    });

    Ok(Description {
        hash: resolved.hash.clone(),
        hash_type: "Sha256",
        name: resolved.name.clone(),
        version_name: resolved.version_name.clone(),
        owner: resolved.owner.clone(),
        created_date: timestamp(resolved.created_ms),
        status: "Active",
        document_version: resolved.version.to_string(),
        description: document.description().unwrap_or_default().to_owned(),
        parameters: parameters.collect(),
        platform_types: document
            .platform_types()
            .iter()
            .map(|p| p.as_str())
            .collect(),
        document_type: "Command",
        schema_version: document.schema_version().as_str(),
        latest_version: resolved.latest_version.to_string(),
        default_version: resolved.default_version.to_string(),
        document_format: resolved.format.as_str(),
        target_type: resolved.target_type.clone(),
        tags: Tag::list(&tags),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInput {
    #[serde(default)]
    document_filter_list: Vec<LegacyFilter>,
    #[serde(default)]
    filters: Vec<KeyValuesFilter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LegacyFilter {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyValuesFilter {
    key: String,
    #[serde(default)]
    values: Vec<String>,
}

/// `ListDocuments`: built-ins first, then stored documents, both by name.
pub(super) async fn list(
    state: &Arc<AppState>,
    caller: &Caller,
    input: ListInput,
) -> Result<Value, ApiError> {
    caller.authorize("ssm:ListDocuments", &[])?;
    let filters = list_filters(&input)?;
    let all_tags = state.store.all_tags(ResourceKind::Document).await?;
    let mut identifiers = Vec::new();
    for resolved in all_defaults(state).await? {
        let document = resolved.document()?;
        let tags = all_tags.get(&resolved.name).cloned().unwrap_or_default();
        let identifier = Identifier::new(&resolved, &document, &tags);
        if filters.iter().all(|f| f.matches(&identifier, &tags)) {
            identifiers.push(identifier);
        }
    }

    let token = input.next_token.as_deref();
    let (page, next_token) = paginate(identifiers, input.max_results, token, 50)?;
    output(serde_json::json!({ "DocumentIdentifiers": page, "NextToken": next_token }))
}

/// The `DocumentIdentifier` shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Identifier {
    name: String,
    created_date: f64,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_name: Option<String>,
    platform_types: Vec<&'static str>,
    document_version: String,
    document_type: &'static str,
    schema_version: &'static str,
    document_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_type: Option<String>,
    tags: Vec<Tag>,
}

impl Identifier {
    fn new(resolved: &Resolved, document: &Document, tags: &BTreeMap<String, String>) -> Self {
        Identifier {
            name: resolved.name.clone(),
            created_date: timestamp(resolved.created_ms),
            owner: resolved.owner.clone(),
            version_name: resolved.version_name.clone(),
            platform_types: document
                .platform_types()
                .iter()
                .map(|p| p.as_str())
                .collect(),
            document_version: resolved.version.to_string(),
            document_type: "Command",
            schema_version: document.schema_version().as_str(),
            document_format: resolved.format.as_str(),
            target_type: resolved.target_type.clone(),
            tags: Tag::list(tags),
        }
    }
}

/// One `ListDocuments` filter, in either of the two request forms.
#[derive(Debug)]
enum ListFilter {
    Name(Vec<String>),
    Owner(Vec<String>),
    PlatformTypes(Vec<String>),
    DocumentType(Vec<String>),
    SearchKeyword(Vec<String>),
    Tag(String, Vec<String>),
}

fn list_filters(input: &ListInput) -> Result<Vec<ListFilter>, ApiError> {
    let legacy = input
        .document_filter_list
        .iter()
        .map(|f| (f.key.as_str(), vec![f.value.clone()]));
    let current = input
        .filters
        .iter()
        .map(|f| (f.key.as_str(), f.values.clone()));
    legacy
        .chain(current)
        .map(|(key, values)| list_filter(key, values))
        .collect()
}

fn list_filter(key: &str, values: Vec<String>) -> Result<ListFilter, ApiError> {
    Ok(match key {
        "Name" => ListFilter::Name(values),
        "Owner" => ListFilter::Owner(values),
        "PlatformTypes" => ListFilter::PlatformTypes(values),
        "DocumentType" => ListFilter::DocumentType(values),
        "SearchKeyword" => ListFilter::SearchKeyword(values),
        _ => match key.strip_prefix("tag:") {
            Some(tag_key) => ListFilter::Tag(tag_key.to_owned(), values),
            None if key == "tag-key" => ListFilter::Tag(String::new(), values),
            None => {
                let message = format!("The filter key {key} is not valid.");
                return Err(ApiError::new("InvalidFilterKey", message));
            }
        },
    })
}

impl ListFilter {
    fn matches(&self, identifier: &Identifier, tags: &BTreeMap<String, String>) -> bool {
        let any = |values: &[String], test: &dyn Fn(&str) -> bool| values.iter().any(|v| test(v));
        match self {
            ListFilter::Name(values) => any(values, &|v| identifier.name.starts_with(v)),
            ListFilter::Owner(values) => any(values, &|v| owner_matches(v, &identifier.owner)),
            ListFilter::PlatformTypes(values) => {
                any(values, &|v| identifier.platform_types.contains(&v))
            }
            ListFilter::DocumentType(values) => any(values, &|v| v == identifier.document_type),
            ListFilter::SearchKeyword(values) => any(values, &|v| {
                identifier.name.to_lowercase().contains(&v.to_lowercase())
            }),
            ListFilter::Tag(key, values) if key.is_empty() => {
                any(values, &|v| tags.contains_key(v))
            }
            ListFilter::Tag(key, values) => tags
                .get(key)
                .is_some_and(|value| values.is_empty() || values.contains(value)),
        }
    }
}

fn owner_matches(filter: &str, owner: &str) -> bool {
    match filter {
        "Self" | "Private" => owner != "Amazon",
        "Amazon" => owner == "Amazon",
        "All" | "Public" => true,
        "ThirdParty" => false,
        account => owner == account,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateInput {
    content: String,
    name: String,
    version_name: Option<String>,
    document_version: Option<String>,
    document_format: Option<String>,
    target_type: Option<String>,
    #[serde(default)]
    attachments: Vec<Value>,
}

/// `UpdateDocument`: adds a new version; the default stays where it was.
pub(super) async fn update(
    state: &Arc<AppState>,
    caller: &Caller,
    input: UpdateInput,
) -> Result<Value, ApiError> {
    authorize_write(state, caller, "ssm:UpdateDocument", &input.name)?;
    reject_unsupported(&[], &input.attachments)?;
    if input.target_type.is_some() {
        tracing::debug!("TargetType on UpdateDocument is accepted and not changed");
    }
    let current = resolve(state, &input.name, None, None).await?;
    if let Some(requested) = input.document_version.as_deref() {
        let latest = current.latest_version.to_string();
        if requested != "$LATEST" && requested != latest {
            let message = "The document version is not valid or does not exist.";
            return Err(ApiError::new("InvalidDocumentVersion", message));
        }
    }

    let format = parse_format(input.document_format.as_deref())?;
    validate_content(&input.content, format)?;
    let hash = tagrun_document::document_hash(&input.content);
    let new = NewVersion {
        version_name: input.version_name.as_deref(),
        content: &input.content,
        format: format.as_str(),
        hash: &hash,
    };
    let version = match state.store.add_document_version(&input.name, &new).await? {
        AddVersionOutcome::Added(version) => version,
        AddVersionOutcome::NoSuchDocument => return Err(no_such_document()),
        AddVersionOutcome::DuplicateContent => {
            let message = "The content of the association document matches another document. \
                           Change the content of the document and try again.";
            return Err(ApiError::new("DuplicateDocumentContent", message));
        }
        AddVersionOutcome::DuplicateVersionName => {
            let message = "The version name has already been used in this document. Specify a \
                           different version name, and then try again.";
            return Err(ApiError::new("DuplicateDocumentVersionName", message));
        }
    };

    let resolved = resolve(state, &input.name, Some(&version.to_string()), None).await?;
    output(CreateOutput {
        document_description: describe(state, &resolved).await?,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DefaultVersionInput {
    name: String,
    document_version: String,
}

/// `UpdateDocumentDefaultVersion`.
pub(super) async fn update_default_version(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DefaultVersionInput,
) -> Result<Value, ApiError> {
    authorize_write(
        state,
        caller,
        "ssm:UpdateDocumentDefaultVersion",
        &input.name,
    )?;
    let version = parse_version_number(&input.document_version)?;
    let resolved = resolve(state, &input.name, Some(&input.document_version), None).await?;
    if !state
        .store
        .set_default_document_version(&input.name, version)
        .await?
    {
        return Err(invalid_version());
    }
    output(serde_json::json!({
        "Description": {
            "Name": input.name,
            "DefaultVersion": version.to_string(),
            "DefaultVersionName": resolved.version_name,
        }
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListVersionsInput {
    name: String,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `ListDocumentVersions`, newest first.
pub(super) async fn list_versions(
    state: &Arc<AppState>,
    caller: &Caller,
    input: ListVersionsInput,
) -> Result<Value, ApiError> {
    authorize_read(state, caller, "ssm:ListDocumentVersions", &input.name)?;
    let versions = all_versions(state, &input.name).await?;
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            serde_json::json!({
                "Name": v.name,
                "DocumentVersion": v.version.to_string(),
                "VersionName": v.version_name,
                "CreatedDate": timestamp(v.created_ms),
                "IsDefaultVersion": v.version == v.default_version,
                "DocumentFormat": v.format.as_str(),
                "Status": "Active",
            })
        })
        .collect();

    let token = input.next_token.as_deref();
    let (page, next_token) = paginate(entries, input.max_results, token, 50)?;
    output(serde_json::json!({ "DocumentVersions": page, "NextToken": next_token }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteInput {
    name: String,
    document_version: Option<String>,
    version_name: Option<String>,
}

/// `DeleteDocument`: the whole document, or one version other than the default.
pub(super) async fn delete(
    state: &Arc<AppState>,
    caller: &Caller,
    input: DeleteInput,
) -> Result<Value, ApiError> {
    authorize_write(state, caller, "ssm:DeleteDocument", &input.name)?;
    let version = input.document_version.as_deref();
    let one_version = version.is_some() || input.version_name.is_some();
    if !one_version {
        if !state.store.delete_document(&input.name).await? {
            return Err(no_such_document());
        }
        return output(serde_json::json!({}));
    }

    let resolved = resolve(state, &input.name, version, input.version_name.as_deref()).await?;
    if resolved.version == resolved.default_version {
        let message = "You can't delete the default version of a document. Set another version \
                       as the default, and then try again.";
        return Err(ApiError::new("InvalidDocumentOperation", message));
    }
    state
        .store
        .delete_document_version(&input.name, resolved.version)
        .await?;
    output(serde_json::json!({}))
}

/// Finds a document version by number (`$DEFAULT`, `$LATEST`, `N`) or by label.
pub async fn resolve(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    version_name: Option<&str>,
) -> Result<Resolved, ApiError> {
    if let Some(builtin) = tagrun_document::builtin(name) {
        if !matches!(version, None | Some("$DEFAULT" | "$LATEST" | "1")) || version_name.is_some() {
            return Err(invalid_version());
        }
        return Ok(builtin_resolved(builtin));
    }

    let header = state
        .store
        .document(name)
        .await?
        .ok_or_else(no_such_document)?;
    let stored = match (version, version_name) {
        (Some(version), _) => {
            let number = match version {
                "$DEFAULT" => header.default_version,
                "$LATEST" => header.latest_version,
                number => parse_version_number(number)?,
            };
            state.store.document_version(name, number).await?
        }
        (None, Some(label)) => state.store.document_version_named(name, label).await?,
        (None, None) => {
            state
                .store
                .document_version(name, header.default_version)
                .await?
        }
    };
    let stored = stored.ok_or_else(invalid_version)?;
    stored_resolved(state, &header, stored)
}

fn stored_resolved(
    state: &AppState,
    header: &DocumentRecord,
    stored: DocumentVersion,
) -> Result<Resolved, ApiError> {
    let format = stored.format.parse().map_err(|_| ApiError::internal())?;
    Ok(Resolved {
        name: stored.name,
        owner: state.config.account_id.clone(),
        version: stored.version,
        default_version: header.default_version,
        latest_version: header.latest_version,
        version_name: stored.version_name,
        content: stored.content,
        format,
        hash: stored.hash,
        created_ms: stored.created_ms,
        target_type: header.target_type.clone(),
    })
}

fn builtin_resolved(builtin: &tagrun_document::BuiltinDocument) -> Resolved {
    Resolved {
        name: builtin.name().to_owned(),
        owner: "Amazon".to_owned(),
        version: 1,
        default_version: 1,
        latest_version: 1,
        version_name: None,
        content: builtin.content().to_owned(),
        format: DocumentFormat::Json,
        hash: builtin.hash().to_owned(),
        created_ms: 0,
        target_type: None,
    }
}

/// Every document at its default version: built-ins, then stored ones.
async fn all_defaults(state: &Arc<AppState>) -> Result<Vec<Resolved>, ApiError> {
    let mut all: Vec<Resolved> = tagrun_document::builtins()
        .iter()
        .map(builtin_resolved)
        .collect();
    for header in state.store.documents().await? {
        let version = state
            .store
            .document_version(&header.name, header.default_version)
            .await?;
        if let Some(version) = version {
            all.push(stored_resolved(state, &header, version)?);
        }
    }
    Ok(all)
}

async fn all_versions(state: &Arc<AppState>, name: &str) -> Result<Vec<Resolved>, ApiError> {
    if let Some(builtin) = tagrun_document::builtin(name) {
        return Ok(vec![builtin_resolved(builtin)]);
    }
    let header = state
        .store
        .document(name)
        .await?
        .ok_or_else(no_such_document)?;
    let versions = state.store.document_versions(name).await?;
    versions
        .into_iter()
        .map(|v| stored_resolved(state, &header, v))
        .collect()
}

fn document_arn(state: &AppState, name: &str) -> String {
    arn::document(&state.config.region, &state.config.account_id, name)
}

fn authorize_read(
    state: &AppState,
    caller: &Caller,
    action: &str,
    name: &str,
) -> Result<(), ApiError> {
    caller.authorize(action, &[Resource::untagged(document_arn(state, name))])
}

/// Authorizes a change, and refuses any change to a built-in AWS document.
fn authorize_write(
    state: &AppState,
    caller: &Caller,
    action: &str,
    name: &str,
) -> Result<(), ApiError> {
    authorize_read(state, caller, action, name)?;
    if tagrun_document::builtin(name).is_some() {
        let message = format!("{name} is owned by Amazon and can't be changed or deleted.");
        return Err(ApiError::new("InvalidDocumentOperation", message));
    }
    Ok(())
}

/// Checks a new document's name against SSM's pattern and reserved prefixes.
fn check_new_name(name: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    if !(3..=128).contains(&name.len()) || !name.chars().all(allowed) {
        return Err(ApiError::constraint(
            name,
            "name",
            "satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.]{3,128}$",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if ["aws", "amazon", "amzn"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        let message = format!(
            "Document name {name} is not valid: names that start with aws, amazon or amzn are \
             reserved."
        );
        return Err(ApiError::validation(message));
    }
    Ok(())
}

fn check_command_type(document_type: Option<&str>) -> Result<(), ApiError> {
    match document_type {
        None | Some("Command") => Ok(()),
        Some(other) => {
            // Limitation: only Command documents exist here; tagrun runs no
            // Automation, Session or Package documents.
            let message = format!("Document type {other} is not supported; use Command.");
            Err(ApiError::new("InvalidDocumentType", message))
        }
    }
}

fn reject_unsupported(requires: &[Value], attachments: &[Value]) -> Result<(), ApiError> {
    if !requires.is_empty() || !attachments.is_empty() {
        // Limitation: no document depends on another or carries attachments here.
        let message = "Requires and Attachments are not supported.";
        return Err(ApiError::new("InvalidDocumentContent", message));
    }
    Ok(())
}

fn parse_format(format: Option<&str>) -> Result<DocumentFormat, ApiError> {
    match format {
        None => Ok(DocumentFormat::Json),
        Some(text) => text.parse().map_err(|_| {
            let message = format!("Document format {text} is not supported; use JSON or YAML.");
            ApiError::new("InvalidDocumentContent", message)
        }),
    }
}

fn validate_content(content: &str, format: DocumentFormat) -> Result<(), ApiError> {
    Document::parse(content, format)
        .map(|_| ())
        .map_err(|error| ApiError::new(error.code(), error.to_string()))
}

/// The content in `format`, converting between JSON and YAML when asked.
///
/// Limitation: a converted document loses comments and the author's key order
/// (keys come out sorted); the stored content is returned unchanged when no other
/// format is asked for.
fn convert(resolved: &Resolved, format: DocumentFormat) -> Result<String, ApiError> {
    if format == resolved.format {
        return Ok(resolved.content.clone());
    }
    let converted = match resolved.format {
        DocumentFormat::Json => serde_json::from_str::<Value>(&resolved.content)
            .map_err(|e| e.to_string())
            .and_then(|value| serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())),
        DocumentFormat::Yaml => serde_yaml_ng::from_str::<Value>(&resolved.content)
            .map_err(|e| e.to_string())
            .and_then(|value| serde_json::to_string_pretty(&value).map_err(|e| e.to_string())),
    };
    converted.map_err(|error| {
        tracing::error!(document = %resolved.name, %error, "document format conversion failed");
        ApiError::internal()
    })
}

fn parse_version_number(text: &str) -> Result<i64, ApiError> {
    let valid = !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    text.parse().ok().filter(|_| valid).ok_or_else(|| {
        ApiError::constraint(
            text,
            "documentVersion",
            "satisfy regular expression pattern: ([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$)",
        )
    })
}

/// `InvalidDocument`: no document of that name.
pub fn no_such_document() -> ApiError {
    ApiError::new("InvalidDocument", "The specified document does not exist.")
}

fn invalid_version() -> ApiError {
    ApiError::new(
        "InvalidDocumentVersion",
        "The document version is not valid or does not exist.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_follow_the_pattern_and_reserved_prefixes() {
        assert!(check_new_name("My-Doc.v1").is_ok());
        assert_eq!(
            check_new_name("ab").unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            check_new_name("AWS-Mine").unwrap_err().code,
            "ValidationException"
        );
        assert!(check_new_name("has space").is_err());
    }

    #[test]
    fn version_numbers_are_positive_integers() {
        assert_eq!(parse_version_number("12").unwrap(), 12);
        assert!(parse_version_number("0").is_err());
        assert!(parse_version_number("01").is_err());
        assert!(parse_version_number("x").is_err());
    }

    #[test]
    fn owner_filter_values() {
        assert!(owner_matches("Self", "123456789012"));
        assert!(!owner_matches("Self", "Amazon"));
        assert!(owner_matches("Amazon", "Amazon"));
        assert!(owner_matches("All", "Amazon"));
    }
}
