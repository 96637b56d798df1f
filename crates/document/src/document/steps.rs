//! The steps of each schema: `runtimeConfig` plugins (1.2) and `mainSteps` (2.x).

use serde_json::{Map, Value};

use super::{Precondition, SchemaVersion, Step};
use crate::DocumentError;
use crate::content::{field, ordered, type_name};
use crate::interpolate::references;
use crate::plugin::{self, Platform, RUN_DOCUMENT, RUN_POWERSHELL_SCRIPT, RUN_SHELL_SCRIPT};

pub(super) fn parse_runtime_config(
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

pub(super) fn parse_main_steps(
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
