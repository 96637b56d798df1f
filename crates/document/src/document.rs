//! Command documents: the schema versions, their steps and their validation.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::DocumentError;
use crate::content::{self, DocumentFormat, KeyOrder, field, ordered, type_name};
use crate::interpolate::{has_parameter_store_reference, references};
use crate::parameter::{self, ParameterDefinition, ResolvedParameters};
use crate::plugin::{self, Platform, RUN_DOCUMENT, RUN_POWERSHELL_SCRIPT, RUN_SHELL_SCRIPT};

/// The schema versions of command documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaVersion {
    /// `1.2`: plugins under `runtimeConfig`, in no particular order.
    V1_2,
    /// `2.0`: named steps under `mainSteps`, run in order.
    V2_0,
    /// `2.2`: like 2.0, plus preconditions.
    V2_2,
}

impl SchemaVersion {
    /// The version as documents write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_2 => "1.2",
            Self::V2_0 => "2.0",
            Self::V2_2 => "2.2",
        }
    }

    fn parse(value: Option<&Value>) -> Result<Self, DocumentError> {
        let text = match value {
            None => return Err(DocumentError::Content("schemaVersion is required".into())),
            Some(Value::String(s)) => s.clone(),
            // YAML turns an unquoted 2.2 into a number; its text is still the version.
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(DocumentError::Content(format!(
                    "schemaVersion must be a string, not {}",
                    type_name(other)
                )));
            }
        };
        match text.as_str() {
            "1.2" => Ok(Self::V1_2),
            "2.0" => Ok(Self::V2_0),
            "2.2" => Ok(Self::V2_2),
            _ => Err(DocumentError::SchemaVersion { version: text }),
        }
    }
}

/// A `StringEquals` precondition of a 2.2 step: two operands that must be equal.
///
/// With `platformType` as the first operand the second names a platform, compared ignoring
/// case; otherwise the operands are compared after parameter interpolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    left: String,
    right: String,
}

impl Precondition {
    /// The two operands as written.
    pub fn operands(&self) -> (&str, &str) {
        (&self.left, &self.right)
    }

    /// Whether the precondition holds on `platform` with these parameter values.
    pub fn holds(&self, platform: Platform, parameters: &ResolvedParameters) -> bool {
        let left = interpolated_text(&self.left, parameters);
        let right = interpolated_text(&self.right, parameters);

        if left == "platformType" {
            right.eq_ignore_ascii_case(platform.as_str())
        } else {
            left == right
        }
    }
}

fn interpolated_text(text: &str, parameters: &ResolvedParameters) -> String {
    match crate::interpolate::interpolate_str(text, parameters) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// One step of a document: a `mainSteps` entry, or one `runtimeConfig` plugin of a 1.2
/// document (named after its plugin, as AWS reports it).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    name: String,
    action: String,
    inputs: Value,
    precondition: Option<Precondition>,
}

impl Step {
    /// The step name that results are reported under (`PluginName`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin, such as `aws:runShellScript`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The step's inputs before interpolation: `inputs` of a 2.x step, `properties` of a 1.2
    /// plugin (an object, a list of objects, or a reference to a parameter).
    pub fn inputs(&self) -> &Value {
        &self.inputs
    }

    /// The precondition, if the step has one.
    pub fn precondition(&self) -> Option<&Precondition> {
        self.precondition.as_ref()
    }
}

/// A parsed and validated command document.
#[derive(Debug, Clone)]
pub struct Document {
    schema_version: SchemaVersion,
    description: String,
    parameters: Vec<ParameterDefinition>,
    steps: Vec<Step>,
}

impl Document {
    /// Parses and validates document content as CreateDocument and UpdateDocument receive it.
    ///
    /// Errors carry AWS's codes: `MaxDocumentSizeExceeded` over 64 KB,
    /// `InvalidDocumentSchemaVersion` for a schema other than 1.2, 2.0 and 2.2, and
    /// `InvalidDocumentContent` for anything else, naming the element that is wrong.
    pub fn parse(content: &str, format: DocumentFormat) -> Result<Self, DocumentError> {
        let raw = content::read(content, format)?;
        Self::from_object(&raw.root, &raw.order)
    }

    /// Validates a document that arrives already parsed, such as `DocumentContent` in a
    /// SendCommand payload. Keys of objects are matched ignoring case, as the agent does.
    pub fn from_json_value(value: &Value) -> Result<Self, DocumentError> {
        match value {
            Value::Object(map) => Self::from_object(map, &KeyOrder::default()),
            other => Err(DocumentError::Content(format!(
                "document content must be an object, not {}",
                type_name(other)
            ))),
        }
    }

    fn from_object(root: &Map<String, Value>, order: &KeyOrder) -> Result<Self, DocumentError> {
        reject_parameter_store(root)?;

        let schema_version = SchemaVersion::parse(field(root, "schemaVersion"))?;
        let description = match field(root, "description") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(DocumentError::Content(format!(
                    "description must be a string, not {}",
                    type_name(other)
                )));
            }
        };
        let parameters =
            parameter::parse_definitions(field(root, "parameters"), order.of("parameters"))?;

        let steps = match schema_version {
            SchemaVersion::V1_2 => parse_runtime_config(root, order.of("runtimeConfig"))?,
            _ => parse_main_steps(root, schema_version)?,
        };
        check_references_declared(&steps, &parameters)?;

        Ok(Self {
            schema_version,
            description,
            parameters,
            steps,
        })
    }

    /// The schema version: `1.2`, `2.0` or `2.2`.
    pub fn schema_version(&self) -> SchemaVersion {
        self.schema_version
    }

    /// The description, empty when the document has none.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The declared parameters in document order.
    pub fn parameters(&self) -> &[ParameterDefinition] {
        &self.parameters
    }

    /// One declared parameter by name.
    pub fn parameter(&self, name: &str) -> Option<&ParameterDefinition> {
        self.parameters.iter().find(|p| p.name() == name)
    }

    /// The steps in the order they run (1.2 plugins in document order).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The document type; tagrun handles command documents only.
    pub fn document_type(&self) -> &'static str {
        "Command"
    }

    /// The platforms the document's plugins run on (DescribeDocument `PlatformTypes`), in
    /// AWS's order: Windows, Linux, MacOS.
    pub fn platform_types(&self) -> Vec<Platform> {
        let set: BTreeSet<Platform> = self
            .steps
            .iter()
            .flat_map(|step| plugin::platforms_of(&step.action).iter().copied())
            .collect();
        set.into_iter().collect()
    }

    /// Whether some step of the document can run on `platform`.
    pub fn supports_platform(&self, platform: Platform) -> bool {
        self.platform_types().contains(&platform)
    }

    /// Checks SendCommand's `Parameters` against the declarations: unknown names, missing
    /// required values, types, `allowedValues`, `allowedPattern`, `minItems`/`maxItems` and
    /// `minChars`/`maxChars`. Fills in defaults. Errors are `InvalidParameters`.
    pub fn validate_parameters(
        &self,
        supplied: &BTreeMap<String, Vec<String>>,
    ) -> Result<ResolvedParameters, DocumentError> {
        parameter::resolve_supplied(&self.parameters, supplied)
    }

    /// Reads the `Parameters` of a SendCommand payload on the agent; see
    /// [`ResolvedParameters`]. `None` or `null` means no parameters were sent.
    pub fn resolve_payload_parameters(
        &self,
        payload: Option<&Value>,
    ) -> Result<ResolvedParameters, DocumentError> {
        parameter::resolve_payload(&self.parameters, payload)
    }
}

/// Refuses `{{ssm:...}}` anywhere in the document, naming where it was found.
///
/// Limitation: Parameter Store is not implemented, so references to it cannot be resolved.
fn reject_parameter_store(root: &Map<String, Value>) -> Result<(), DocumentError> {
    for (key, value) in root {
        if let Some(path) = parameter_store_path(value, key.clone()) {
            return Err(DocumentError::Content(format!(
                "{path} refers to Parameter Store ({{{{ssm:...}}}}), which is not supported yet"
            )));
        }
    }
    Ok(())
}

fn parameter_store_path(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(s) => has_parameter_store_reference(s).then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| parameter_store_path(item, format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| parameter_store_path(v, format!("{path}.{k}"))),
        _ => None,
    }
}

fn parse_runtime_config(
    root: &Map<String, Value>,
    order: &[String],
) -> Result<Vec<Step>, DocumentError> {
    if field(root, "mainSteps").is_some() {
        return Err(DocumentError::Content(
            "mainSteps is not allowed in schema version 1.2; use runtimeConfig".into(),
        ));
    }
    let config = match field(root, "runtimeConfig") {
        Some(Value::Object(map)) if !map.is_empty() => map,
        Some(Value::Object(_)) | None => {
            return Err(DocumentError::Content(
                "runtimeConfig is required in schema version 1.2 and must name a plugin".into(),
            ));
        }
        Some(other) => {
            return Err(DocumentError::Content(format!(
                "runtimeConfig must be an object, not {}",
                type_name(other)
            )));
        }
    };

    ordered(config, order)
        .into_iter()
        .map(|(plugin, settings)| parse_runtime_plugin(plugin, settings))
        .collect()
}

fn parse_runtime_plugin(name: &str, config: &Value) -> Result<Step, DocumentError> {
    check_action(name, &format!("runtimeConfig plugin {name:?}"))?;
    if name == RUN_DOCUMENT {
        return Err(DocumentError::Content(format!(
            "plugin {RUN_DOCUMENT} needs schema version 2.0 or later"
        )));
    }
    let Value::Object(map) = config else {
        return Err(DocumentError::Content(format!(
            "runtimeConfig plugin {name:?} must be an object"
        )));
    };

    let properties = field(map, "properties").cloned().unwrap_or(Value::Null);
    if is_script(name) {
        check_script_properties(name, &properties)?;
    }
    Ok(Step {
        name: name.to_owned(),
        action: name.to_owned(),
        inputs: properties,
        precondition: None,
    })
}

fn is_script(action: &str) -> bool {
    action == RUN_SHELL_SCRIPT || action == RUN_POWERSHELL_SCRIPT
}

fn check_action(action: &str, place: &str) -> Result<(), DocumentError> {
    if plugin::is_known(action) {
        Ok(())
    } else {
        Err(DocumentError::Content(format!(
            "{place} names {action:?}, which is not a command document plugin"
        )))
    }
}

/// A 1.2 script plugin's `properties`: an object, a list of objects, or one parameter.
fn check_script_properties(name: &str, properties: &Value) -> Result<(), DocumentError> {
    let place = format!("properties of plugin {name:?}");
    match properties {
        Value::Object(map) => check_run_command(map, &place),
        Value::Array(items) if !items.is_empty() => items.iter().try_for_each(|item| match item {
            Value::Object(map) => check_run_command(map, &place),
            other => Err(DocumentError::Content(format!(
                "{place} must list objects, not {}",
                type_name(other)
            ))),
        }),
        Value::String(s) if is_single_reference(s) => Ok(()),
        _ => Err(DocumentError::Content(format!(
            "{place} must be an object or a list of objects"
        ))),
    }
}

fn is_single_reference(text: &str) -> bool {
    matches!(references(text).as_slice(), [only] if only.span == (0..text.len()))
}

fn check_run_command(inputs: &Map<String, Value>, place: &str) -> Result<(), DocumentError> {
    match field(inputs, "runCommand") {
        Some(Value::String(_) | Value::Array(_)) => Ok(()),
        Some(other) => Err(DocumentError::Content(format!(
            "runCommand in {place} must be a string or a list, not {}",
            type_name(other)
        ))),
        None => Err(DocumentError::Content(format!(
            "{place} must have runCommand"
        ))),
    }
}

fn parse_main_steps(
    root: &Map<String, Value>,
    version: SchemaVersion,
) -> Result<Vec<Step>, DocumentError> {
    if field(root, "runtimeConfig").is_some() {
        return Err(DocumentError::Content(format!(
            "runtimeConfig is not allowed in schema version {}; use mainSteps",
            version.as_str()
        )));
    }
    let steps = match field(root, "mainSteps") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | None => {
            return Err(DocumentError::Content(format!(
                "mainSteps is required in schema version {} and must list at least one step",
                version.as_str()
            )));
        }
        Some(other) => {
            return Err(DocumentError::Content(format!(
                "mainSteps must be a list, not {}",
                type_name(other)
            )));
        }
    };

    let mut parsed: Vec<Step> = Vec::with_capacity(steps.len());
    for (index, step) in steps.iter().enumerate() {
        let step = parse_main_step(index, step, version)?;
        if parsed.iter().any(|s| s.name == step.name) {
            return Err(DocumentError::Content(format!(
                "step name {:?} is used more than once in mainSteps",
                step.name
            )));
        }
        parsed.push(step);
    }
    Ok(parsed)
}

fn parse_main_step(
    index: usize,
    step: &Value,
    version: SchemaVersion,
) -> Result<Step, DocumentError> {
    let Value::Object(map) = step else {
        return Err(DocumentError::Content(format!(
            "mainSteps[{index}] must be an object, not {}",
            type_name(step)
        )));
    };

    let name = step_string(map, "name", index)?;
    check_step_name(&name)?;
    let action = step_string(map, "action", index)?;
    check_action(&action, &format!("step {name:?}"))?;

    let inputs = match field(map, "inputs") {
        None => Map::new(),
        Some(Value::Object(inputs)) => inputs.clone(),
        Some(other) => {
            return Err(DocumentError::Content(format!(
                "inputs of step {name:?} must be an object, not {}",
                type_name(other)
            )));
        }
    };
    check_step_inputs(&name, &action, &inputs)?;

    let precondition = match field(map, "precondition") {
        None => None,
        Some(value) => Some(parse_precondition(&name, value, version)?),
    };
    Ok(Step {
        name,
        action,
        inputs: Value::Object(inputs),
        precondition,
    })
}

fn step_string(map: &Map<String, Value>, key: &str, index: usize) -> Result<String, DocumentError> {
    match field(map, key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(DocumentError::Content(format!(
            "mainSteps[{index}] needs {key}, a non-empty string"
        ))),
    }
}

/// Step names become directory names on the node, so they are kept to a safe alphabet.
fn check_step_name(name: &str) -> Result<(), DocumentError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if name.len() <= 128 && name.chars().all(allowed) && !name.chars().all(|c| c == '.') {
        Ok(())
    } else {
        Err(DocumentError::Content(format!(
            "step name {name:?} is not valid; use up to 128 letters, digits, '_', '-', '.' or ':'"
        )))
    }
}

fn check_step_inputs(
    name: &str,
    action: &str,
    inputs: &Map<String, Value>,
) -> Result<(), DocumentError> {
    let place = format!("inputs of step {name:?}");
    if is_script(action) {
        check_run_command(inputs, &place)?;
    }
    if action == RUN_DOCUMENT {
        check_literal(
            inputs,
            "documentType",
            &["SSMDocument", "LocalPath"],
            &place,
            true,
        )?;
    }
    check_literal(
        inputs,
        "onFailure",
        &["exit", "successAndExit"],
        &place,
        false,
    )?;
    check_literal(inputs, "onSuccess", &["exit"], &place, false)?;
    match field(inputs, "finallyStep") {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(Value::String(s)) if s == "true" || s == "false" || is_single_reference(s) => Ok(()),
        Some(_) => Err(DocumentError::Content(format!(
            "finallyStep in {place} must be true or false"
        ))),
    }
}

/// Checks an input that takes one of a few words, unless it is a parameter reference.
fn check_literal(
    inputs: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    place: &str,
    required: bool,
) -> Result<(), DocumentError> {
    match field(inputs, key) {
        None if !required => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) || is_single_reference(s) => Ok(()),
        _ => Err(DocumentError::Content(format!(
            "{key} in {place} must be one of {}",
            allowed.join(", ")
        ))),
    }
}

fn parse_precondition(
    step: &str,
    value: &Value,
    version: SchemaVersion,
) -> Result<Precondition, DocumentError> {
    if version != SchemaVersion::V2_2 {
        return Err(DocumentError::Content(format!(
            "step {step:?} has a precondition, which needs schema version 2.2"
        )));
    }
    let invalid = || {
        DocumentError::Content(format!(
            "precondition of step {step:?} must be StringEquals with a list of two strings"
        ))
    };
    let Value::Object(map) = value else {
        return Err(invalid());
    };
    let (Some(Value::Array(operands)), 1) = (map.get("StringEquals"), map.len()) else {
        return Err(invalid());
    };
    let [Value::String(left), Value::String(right)] = operands.as_slice() else {
        return Err(invalid());
    };

    check_operands(step, left, right)?;
    Ok(Precondition {
        left: left.clone(),
        right: right.clone(),
    })
}

fn check_operands(step: &str, left: &str, right: &str) -> Result<(), DocumentError> {
    if left == "platformType" {
        return right.parse::<Platform>().map(|_| ()).map_err(|_| {
            DocumentError::Content(format!(
                "precondition of step {step:?} names platform {right:?}; use Windows, Linux \
                 or MacOS"
            ))
        });
    }
    if references(left).is_empty() && references(right).is_empty() {
        return Err(DocumentError::Content(format!(
            "precondition of step {step:?} must compare platformType or a {{{{ parameter }}}}"
        )));
    }
    Ok(())
}

/// Every `{{ name }}` in the steps must name a declared parameter.
fn check_references_declared(
    steps: &[Step],
    parameters: &[ParameterDefinition],
) -> Result<(), DocumentError> {
    for step in steps {
        let mut texts = Vec::new();
        collect_strings(&step.inputs, &mut texts);
        if let Some(p) = &step.precondition {
            texts.extend([p.left.as_str(), p.right.as_str()]);
        }

        for text in texts {
            for reference in references(text) {
                if !parameters.iter().any(|p| p.name() == reference.name) {
                    return Err(DocumentError::Content(format!(
                        "step {:?} uses parameter {:?}, which the document does not declare",
                        step.name, reference.name
                    )));
                }
            }
        }
    }
    Ok(())
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(map) => map.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
