//! Command documents: the schema versions, their steps and their validation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::DocumentError;
use crate::content::{self, DocumentFormat, KeyOrder, field, type_name};
use crate::interpolate::{has_parameter_store_reference, references};
use crate::parameter::{self, ParameterDefinition, ResolvedParameters};
use crate::plugin::{self, Platform};

mod steps;

use steps::{parse_main_steps, parse_runtime_config};

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
    description: Option<String>,
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
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
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

    /// The description, if the document has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
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
