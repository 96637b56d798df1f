//! `{{ name }}` references to document parameters, replaced as AWS's agent replaces them.
//!
//! A string that is exactly one reference (whitespace allowed inside the braces) becomes the
//! parameter's value with its own JSON type, so a StringList turns into a list. References
//! inside longer strings are replaced by text: strings as they are, other values as JSON.
//! References to names that have no value are left untouched.
//!
//! Two deliberate differences from the agent, both about values that contain markup: the agent
//! uses Go's regexp replacement, which treats `$` in a value as a template (`$$` becomes `$`,
//! `$1` disappears), and it replaces one parameter after another, so a value that contains
//! `{{ other }}` may be replaced again. Here values are inserted literally, in one pass.

use std::ops::Range;

use serde_json::Value;

use crate::parameter::ResolvedParameters;

/// One `{{ name }}` found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference<'a> {
    /// Byte range of the whole reference, braces included.
    pub(crate) span: Range<usize>,
    /// The parameter name between the braces.
    pub(crate) name: &'a str,
}

/// Whitespace as Go's `\s` understands it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// Finds the parameter references in `text`, left to right, without overlaps.
///
/// A name is one or more ASCII letters or digits: the agent drops parameters with any other
/// name, so nothing else can ever be replaced.
pub(crate) fn references(text: &str) -> Vec<Reference<'_>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;

    while let Some(offset) = text.get(at..).and_then(|rest| rest.find("{{")) {
        let start = at + offset;
        match reference_at(bytes, start) {
            Some((end, name)) => {
                found.push(Reference {
                    span: start..end,
                    name: &text[name],
                });
                at = end;
            }
            None => at = start + 1,
        }
    }
    found
}

/// Reads a reference that starts with the `{{` at `start`: its end and the name's range.
fn reference_at(bytes: &[u8], start: usize) -> Option<(usize, Range<usize>)> {
    let mut i = start + 2;
    while bytes.get(i).is_some_and(|b| is_space(*b)) {
        i += 1;
    }

    let name_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = name_start..i;

    while bytes.get(i).is_some_and(|b| is_space(*b)) {
        i += 1;
    }
    (bytes.get(i..i + 2) == Some(b"}}")).then_some((i + 2, name))
}

/// Whether `text` refers to Parameter Store (`{{ssm:name}}` or `{{ssm-secure:name}}`).
pub(crate) fn has_parameter_store_reference(text: &str) -> bool {
    let mut rest = text;
    while let Some(offset) = rest.find("{{") {
        let after = rest[offset + 2..].trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
        if after.starts_with("ssm:") || after.starts_with("ssm-secure:") {
            return true;
        }
        rest = &rest[offset + 2..];
    }
    false
}

/// Replaces parameter references in every string inside `value`, at any depth.
pub fn interpolate(value: &Value, parameters: &ResolvedParameters) -> Value {
    match value {
        Value::String(text) => interpolate_str(text, parameters),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| interpolate(item, parameters))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), interpolate(v, parameters)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces the references in one string; see the module documentation for the rules.
pub fn interpolate_str(text: &str, parameters: &ResolvedParameters) -> Value {
    let found = references(text);

    if let [only] = found.as_slice()
        && only.span == (0..text.len())
        && let Some(value) = parameters.get(only.name)
    {
        return value.clone();
    }

    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for reference in &found {
        let Some(value) = parameters.get(reference.name) else {
            continue;
        };
        out.push_str(&text[copied..reference.span.start]);
        push_as_text(&mut out, value);
        copied = reference.span.end;
    }
    out.push_str(&text[copied..]);
    Value::String(out)
}

/// Appends a value as text: a string as it is, anything else as JSON.
fn push_as_text(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests;
