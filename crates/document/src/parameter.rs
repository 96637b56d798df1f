//! Document parameters: their declarations, their constraints, and the values a command gets.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::DocumentError;
use crate::content::{field, ordered, type_name};

mod values;

pub(crate) use values::{resolve_payload, resolve_supplied};

/// The type of a document parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParameterType {
    /// One string.
    String,
    /// A list of strings.
    StringList,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list of string maps.
    MapList,
    /// A map of string keys to values.
    StringMap,
}

impl ParameterType {
    /// The name used in documents and in DescribeDocument.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::StringList => "StringList",
            Self::Integer => "Integer",
            Self::Boolean => "Boolean",
            Self::MapList => "MapList",
            Self::StringMap => "StringMap",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [
            Self::String,
            Self::StringList,
            Self::Integer,
            Self::Boolean,
            Self::MapList,
            Self::StringMap,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ParameterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `allowedPattern`, kept as written and compiled to match whole values.
#[derive(Debug, Clone)]
pub struct AllowedPattern {
    source: String,
    regex: Regex,
}

impl AllowedPattern {
    /// The pattern as written in the document.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `value` matches the pattern.
    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// One parameter as a document declares it.
#[derive(Debug, Clone)]
pub struct ParameterDefinition {
    name: String,
    kind: ParameterType,
    description: Option<String>,
    default: Option<Value>,
    allowed_values: Vec<String>,
    allowed_pattern: Option<AllowedPattern>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    min_chars: Option<usize>,
    max_chars: Option<usize>,
    display_type: Option<String>,
}

impl ParameterDefinition {
    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter's type.
    pub fn parameter_type(&self) -> ParameterType {
        self.kind
    }

    /// The description, if the document gives one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The default value with its JSON type, if the document gives one.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// The default as DescribeDocument shows it (`DefaultValue`): a String default as it is,
    /// any other type as JSON.
    pub fn default_value_string(&self) -> Option<String> {
        self.default.as_ref().map(|value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A parameter without a default must be given a value.
    pub fn is_required(&self) -> bool {
        self.default.is_none()
    }

    /// The values the parameter may take; empty when any value is allowed.
    pub fn allowed_values(&self) -> &[String] {
        &self.allowed_values
    }

    /// The pattern every value must match, if any.
    pub fn allowed_pattern(&self) -> Option<&AllowedPattern> {
        self.allowed_pattern.as_ref()
    }

    /// `minItems` and `maxItems`.
    pub fn item_limits(&self) -> (Option<usize>, Option<usize>) {
        (self.min_items, self.max_items)
    }

    /// `minChars` and `maxChars`.
    pub fn char_limits(&self) -> (Option<usize>, Option<usize>) {
        (self.min_chars, self.max_chars)
    }

    /// `displayType` (`textfield` or `textarea`), if given.
    pub fn display_type(&self) -> Option<&str> {
        self.display_type.as_deref()
    }
}

/// Parameter values ready for interpolation and for the agent: every declared parameter with
/// its value (or default), each with its JSON type. Serializes to the `Parameters` map of the
/// payload the agent receives: a String as a string, a StringList as a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResolvedParameters(BTreeMap<String, Value>);

impl ResolvedParameters {
    /// Wraps values that are already typed (for tests and for callers that built them).
    pub fn from_map(values: BTreeMap<String, Value>) -> Self {
        Self(values)
    }

    /// The value of one parameter.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// All values by name.
    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        &self.0
    }

    /// The map as one JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

fn content_error(message: String) -> DocumentError {
    DocumentError::Content(message)
}

fn parameters_error(message: String) -> DocumentError {
    DocumentError::Parameters(message)
}

/// Whether the agent can use a parameter of this name: it drops all others.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads the `parameters` element, keeping the written order.
pub(crate) fn parse_definitions(
    element: Option<&Value>,
    order: &[String],
) -> Result<Vec<ParameterDefinition>, DocumentError> {
    let Some(element) = element else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = element else {
        return Err(content_error(format!(
            "parameters must be an object, not {}",
            type_name(element)
        )));
    };

    ordered(map, order)
        .into_iter()
        .map(|(name, definition)| parse_definition(name, definition))
        .collect()
}

fn parse_definition(name: &str, definition: &Value) -> Result<ParameterDefinition, DocumentError> {
    if !is_valid_name(name) {
        return Err(content_error(format!(
            "parameter name {name:?} is not valid; use only letters and digits"
        )));
    }
    let Value::Object(map) = definition else {
        return Err(content_error(format!(
            "parameter {name:?} must be an object"
        )));
    };

    let kind = parse_type(name, map)?;
    let (min_items, max_items) = parse_limits(name, map, "minItems", "maxItems")?;
    let (min_chars, max_chars) = parse_limits(name, map, "minChars", "maxChars")?;

    Ok(ParameterDefinition {
        name: name.to_owned(),
        kind,
        description: optional_string(name, map, "description")?,
        default: parse_default(name, kind, field(map, "default"))?,
        allowed_values: parse_allowed_values(name, field(map, "allowedValues"))?,
        allowed_pattern: parse_pattern(name, field(map, "allowedPattern"))?,
        min_items,
        max_items,
        min_chars,
        max_chars,
        display_type: optional_string(name, map, "displayType")?,
    })
}

fn parse_type(name: &str, map: &Map<String, Value>) -> Result<ParameterType, DocumentError> {
    let Some(value) = field(map, "type") else {
        return Err(content_error(format!("parameter {name:?} has no type")));
    };
    value
        .as_str()
        .and_then(ParameterType::from_name)
        .ok_or_else(|| {
            content_error(format!(
                "parameter {name:?} has type {value}; use String, StringList, Integer, Boolean, \
                 MapList or StringMap"
            ))
        })
}

fn optional_string(
    name: &str,
    map: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, DocumentError> {
    match field(map, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(content_error(format!(
            "{key} of parameter {name:?} must be a string, not {}",
            type_name(other)
        ))),
    }
}

/// Checks that a default has the parameter's type and returns it in canonical form.
///
/// String and StringList defaults written as numbers or booleans (as YAML readily produces)
/// are taken as their text; Integer and Boolean defaults must be real numbers and booleans.
fn parse_default(
    name: &str,
    kind: ParameterType,
    value: Option<&Value>,
) -> Result<Option<Value>, DocumentError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let canonical = match (kind, value) {
        (ParameterType::String, v) => scalar_text(v).map(Value::String),
        (ParameterType::StringList, Value::Array(items)) => items
            .iter()
            .map(|item| scalar_text(item).map(Value::String))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        (ParameterType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Some(value.clone())
        }
        (ParameterType::Boolean, Value::Bool(_)) => Some(value.clone()),
        (ParameterType::StringMap, Value::Object(_)) => Some(value.clone()),
        (ParameterType::MapList, Value::Array(items)) if items.iter().all(Value::is_object) => {
            Some(value.clone())
        }
        _ => None,
    };
    canonical.map(Some).ok_or_else(|| {
        content_error(format!(
            "default of parameter {name:?} is {}, which is not a valid {kind}",
            type_name(value)
        ))
    })
}

/// The text of a string, number or boolean.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_allowed_values(name: &str, value: Option<&Value>) -> Result<Vec<String>, DocumentError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let invalid = || {
        content_error(format!(
            "allowedValues of parameter {name:?} must be a list"
        ))
    };
    let Value::Array(items) = value else {
        return Err(invalid());
    };
    items
        .iter()
        .map(|item| scalar_text(item).ok_or_else(invalid))
        .collect()
}

/// Compiles an `allowedPattern` so that it must match the whole value.
///
/// Limitation: patterns use the `regex` crate's syntax, which covers the Java and Go syntax
/// that documents use in practice but not look-around or back-references; a document with
/// such a pattern is refused.
fn parse_pattern(
    name: &str,
    value: Option<&Value>,
) -> Result<Option<AllowedPattern>, DocumentError> {
    let source = match value {
        None => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(content_error(format!(
                "allowedPattern of parameter {name:?} must be a string, not {}",
                type_name(other)
            )));
        }
    };

    let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|_| {
            content_error(format!(
                "allowedPattern of parameter {name:?} is not a supported regular expression"
            ))
        })?;
    Ok(Some(AllowedPattern {
        source: source.clone(),
        regex,
    }))
}

fn parse_limits(
    name: &str,
    map: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
) -> Result<(Option<usize>, Option<usize>), DocumentError> {
    let min = parse_count(name, min_key, field(map, min_key))?;
    let max = parse_count(name, max_key, field(map, max_key))?;

    if let (Some(low), Some(high)) = (min, max)
        && low > high
    {
        return Err(content_error(format!(
            "{min_key} of parameter {name:?} is larger than its {max_key}"
        )));
    }
    Ok((min, max))
}

fn parse_count(
    name: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<Option<usize>, DocumentError> {
    let count = match value {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Some(Value::String(s)) => s.parse::<usize>().ok(),
        Some(_) => None,
    };
    count.map(Some).ok_or_else(|| {
        content_error(format!(
            "{key} of parameter {name:?} must be a whole number of at least 0"
        ))
    })
}

#[cfg(test)]
mod tests;
