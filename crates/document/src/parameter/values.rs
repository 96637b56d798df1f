//! Parameter values: SendCommand's lists of strings and the agent's payload, typed and checked.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    ParameterDefinition, ParameterType, ResolvedParameters, is_valid_name, parameters_error,
};
use crate::DocumentError;
use crate::interpolate::has_parameter_store_reference;

/// Turns SendCommand's `Parameters` (every value a list of strings) into typed values, fills in
/// defaults and applies every constraint.
pub(crate) fn resolve_supplied(
    definitions: &[ParameterDefinition],
    supplied: &BTreeMap<String, Vec<String>>,
) -> Result<ResolvedParameters, DocumentError> {
    reject_undeclared(definitions, supplied.keys())?;

    let mut values = BTreeMap::new();
    for definition in definitions {
        let value = match supplied.get(&definition.name) {
            Some(strings) => typed_value(definition, strings)?,
            None => default_or_missing(definition)?,
        };
        check_constraints(definition, &value)?;
        values.insert(definition.name.clone(), value);
    }
    Ok(ResolvedParameters(values))
}

fn reject_undeclared<'a>(
    definitions: &[ParameterDefinition],
    names: impl Iterator<Item = &'a String>,
) -> Result<(), DocumentError> {
    for name in names {
        if definitions.is_empty() {
            return Err(parameters_error(
                "the document does not support parameters".into(),
            ));
        }
        if !definitions.iter().any(|d| &d.name == name) {
            return Err(parameters_error(format!(
                "parameter {name:?} is not declared by the document"
            )));
        }
    }
    Ok(())
}

fn default_or_missing(definition: &ParameterDefinition) -> Result<Value, DocumentError> {
    definition.default.clone().ok_or_else(|| {
        parameters_error(format!(
            "required parameter {:?} has no value",
            definition.name
        ))
    })
}

/// Reads SendCommand's list of strings as a value of the parameter's type.
fn typed_value(
    definition: &ParameterDefinition,
    strings: &[String],
) -> Result<Value, DocumentError> {
    let name = &definition.name;
    if strings.iter().any(|s| has_parameter_store_reference(s)) {
        return Err(parameters_error(format!(
            "parameter {name:?} refers to Parameter Store ({{{{ssm:...}}}}), which is not \
             supported yet"
        )));
    }

    match definition.kind {
        ParameterType::StringList => Ok(Value::from(strings.to_vec())),
        ParameterType::MapList => strings.iter().map(|s| parse_object(name, s)).collect(),
        kind => {
            let [single] = strings else {
                return Err(parameters_error(format!(
                    "parameter {name:?} of type {kind} takes exactly one value, not {}",
                    strings.len()
                )));
            };
            typed_single(name, kind, single)
        }
    }
}

fn typed_single(name: &str, kind: ParameterType, text: &str) -> Result<Value, DocumentError> {
    let invalid = || parameters_error(format!("value of parameter {name:?} is not a valid {kind}"));
    match kind {
        ParameterType::Integer => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            text.parse::<i64>().map(Value::from).map_err(|_| invalid())
        }
        ParameterType::Boolean => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(invalid()),
        },
        ParameterType::StringMap => parse_object(name, text),
        _ => Ok(Value::String(text.to_owned())),
    }
}

fn parse_object(name: &str, text: &str) -> Result<Value, DocumentError> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(parameters_error(format!(
            "value of parameter {name:?} must be a JSON object"
        ))),
    }
}

/// Applies `allowedValues`, `allowedPattern`, the character limits and the item limits.
///
/// Values are checked one string at a time: each item of a StringList, the text of an
/// Integer or a Boolean. Maps are checked only for their number of items.
fn check_constraints(definition: &ParameterDefinition, value: &Value) -> Result<(), DocumentError> {
    check_items(definition, value)?;

    for text in checked_strings(value) {
        check_text(definition, &text)?;
    }
    Ok(())
}

fn check_items(definition: &ParameterDefinition, value: &Value) -> Result<(), DocumentError> {
    let count = match value {
        Value::Array(items) => items.len(),
        Value::Object(map) if definition.kind == ParameterType::StringMap => map.len(),
        _ => return Ok(()),
    };
    let name = &definition.name;

    if let Some(min) = definition.min_items
        && count < min
    {
        return Err(parameters_error(format!(
            "parameter {name:?} has {count} items, fewer than minItems {min}"
        )));
    }
    if let Some(max) = definition.max_items
        && count > max
    {
        return Err(parameters_error(format!(
            "parameter {name:?} has {count} items, more than maxItems {max}"
        )));
    }
    Ok(())
}

fn checked_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Number(_) | Value::Bool(_) => vec![value.to_string()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn check_text(definition: &ParameterDefinition, text: &str) -> Result<(), DocumentError> {
    let name = &definition.name;

    if !definition.allowed_values.is_empty() && !definition.allowed_values.iter().any(|v| v == text)
    {
        return Err(parameters_error(format!(
            "parameter {name:?} has value {text:?}, which is not one of its allowedValues [{}]",
            definition.allowed_values.join(", ")
        )));
    }
    if let Some(pattern) = &definition.allowed_pattern
        && !pattern.matches(text)
    {
        return Err(parameters_error(format!(
            "parameter {name:?} has value {text:?}, which does not match its allowedPattern {:?}",
            pattern.source
        )));
    }
    check_chars(definition, text)
}

fn check_chars(definition: &ParameterDefinition, text: &str) -> Result<(), DocumentError> {
    let name = &definition.name;
    let chars = text.chars().count();

    if let Some(min) = definition.min_chars
        && chars < min
    {
        return Err(parameters_error(format!(
            "parameter {name:?} has a value of {chars} characters, fewer than minChars {min}"
        )));
    }
    if let Some(max) = definition.max_chars
        && chars > max
    {
        return Err(parameters_error(format!(
            "parameter {name:?} has a value of {chars} characters, more than maxChars {max}"
        )));
    }
    Ok(())
}

/// Reads the `Parameters` of a SendCommand payload as the agent does: names other than letters
/// and digits are dropped, `null` counts as absent, defaults fill the gaps, and every string
/// must match its `allowedPattern`.
///
/// Values keep the JSON type the payload gives them; a String parameter sent as a one-item
/// list (as SendCommand requests carry it) is unwrapped.
pub(crate) fn resolve_payload(
    definitions: &[ParameterDefinition],
    payload: Option<&Value>,
) -> Result<ResolvedParameters, DocumentError> {
    let mut values = BTreeMap::new();
    if let Some(Value::Object(map)) = payload {
        for (name, value) in map {
            if is_valid_name(name) && !value.is_null() {
                values.insert(name.clone(), value.clone());
            }
        }
    }

    for definition in definitions {
        let value = match values.remove(&definition.name) {
            Some(value) => unwrap_single(definition.kind, value),
            None => default_or_missing(definition)?,
        };
        check_pattern_only(definition, &value)?;
        values.insert(definition.name.clone(), value);
    }
    Ok(ResolvedParameters(values))
}

fn unwrap_single(kind: ParameterType, value: Value) -> Value {
    match (kind, value) {
        (ParameterType::String, Value::Array(mut items)) if items.len() == 1 => items.remove(0),
        (ParameterType::StringList, Value::String(s)) => Value::from(vec![s]),
        (_, value) => value,
    }
}

fn check_pattern_only(
    definition: &ParameterDefinition,
    value: &Value,
) -> Result<(), DocumentError> {
    let Some(pattern) = &definition.allowed_pattern else {
        return Ok(());
    };
    for text in checked_strings(value) {
        if !pattern.matches(&text) {
            return Err(parameters_error(format!(
                "parameter {:?} has value {text:?}, which does not match its allowedPattern {:?}",
                definition.name, pattern.source
            )));
        }
    }
    Ok(())
}
