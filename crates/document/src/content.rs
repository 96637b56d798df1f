//! Reading document content: size limit, JSON and YAML, and key lookups as AWS's agent does them.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::DocumentError;

/// The largest document content AWS accepts, in bytes (64 KB).
pub const MAX_DOCUMENT_SIZE: usize = 64 * 1024;

/// The notation a document's content is written in (`DocumentFormat` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DocumentFormat {
    /// JSON content.
    #[serde(rename = "JSON")]
    Json,
    /// YAML content.
    #[serde(rename = "YAML")]
    Yaml,
}

impl DocumentFormat {
    /// The wire spelling: `JSON` or `YAML`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Yaml => "YAML",
        }
    }
}

impl fmt::Display for DocumentFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DocumentFormat {
    type Err = DocumentError;

    /// Accepts `JSON` and `YAML` in any case; `TEXT` and others are not command formats.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("json") {
            Ok(Self::Json)
        } else if s.eq_ignore_ascii_case("yaml") {
            Ok(Self::Yaml)
        } else {
            Err(DocumentError::Content(format!(
                "document format {s:?} is not supported for Command documents; use JSON or YAML"
            )))
        }
    }
}

/// Content read into a JSON tree, with the order in which the author wrote the keys of each
/// top-level element (`serde_json` maps sort their keys; DescribeDocument lists parameters in
/// document order).
pub(crate) struct RawContent {
    pub(crate) root: Map<String, Value>,
    pub(crate) order: KeyOrder,
}

/// Checks the size, then reads `content` in `format`.
pub(crate) fn read(content: &str, format: DocumentFormat) -> Result<RawContent, DocumentError> {
    if content.len() > MAX_DOCUMENT_SIZE {
        return Err(DocumentError::Size {
            size: content.len(),
        });
    }

    let root = match format {
        DocumentFormat::Json => read_json(content)?,
        DocumentFormat::Yaml => read_yaml(content)?,
    };

    // The order is a nicety: if it cannot be read the keys keep the map's order.
    let order = match format {
        DocumentFormat::Json => serde_json::from_str(content).unwrap_or_default(),
        DocumentFormat::Yaml => yaml_order(content),
    };

    Ok(RawContent {
        root: into_object(root, format)?,
        order,
    })
}

fn read_json(content: &str) -> Result<Value, DocumentError> {
    serde_json::from_str(content).map_err(|e| {
        DocumentError::Content(format!(
            "JSON not well-formed at line {}, column {}",
            e.line(),
            e.column()
        ))
    })
}

#[cfg(feature = "yaml")]
fn read_yaml(content: &str) -> Result<Value, DocumentError> {
    serde_yaml_ng::from_str(content).map_err(|e| match e.location() {
        Some(at) => DocumentError::Content(format!(
            "YAML not well-formed at line {}, column {}",
            at.line(),
            at.column()
        )),
        None => DocumentError::Content(format!("YAML not well-formed: {e}")),
    })
}

/// Without the `yaml` feature (the agent's build) YAML content is refused by name.
#[cfg(not(feature = "yaml"))]
fn read_yaml(_content: &str) -> Result<Value, DocumentError> {
    Err(DocumentError::Content(
        "YAML content is not supported by this build; use JSON".to_owned(),
    ))
}

#[cfg(feature = "yaml")]
fn yaml_order(content: &str) -> KeyOrder {
    serde_yaml_ng::from_str(content).unwrap_or_default()
}

#[cfg(not(feature = "yaml"))]
fn yaml_order(_content: &str) -> KeyOrder {
    KeyOrder::default()
}

fn into_object(root: Value, format: DocumentFormat) -> Result<Map<String, Value>, DocumentError> {
    match root {
        Value::Object(map) => Ok(map),
        other => Err(DocumentError::Content(format!(
            "document content must be a {format} object, not {}",
            type_name(&other)
        ))),
    }
}

/// Looks up `key` the way Go's `encoding/json` does: an exact match first, then any key equal
/// ignoring ASCII case. A `null` value counts as absent, as it does for the agent.
pub(crate) fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let found = map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    });
    found.filter(|v| !v.is_null())
}

/// A short name of a JSON value's kind, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The keys of each top-level object element, in the order they were written.
#[derive(Debug, Default)]
pub(crate) struct KeyOrder(Vec<(String, Vec<String>)>);

impl KeyOrder {
    /// The written order of the keys of top-level element `element` (matched like [`field`]).
    pub(crate) fn of(&self, element: &str) -> &[String] {
        let exact = self.0.iter().find(|(k, _)| k == element);
        let any = || self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(element));
        exact.or_else(any).map_or(&[], |(_, keys)| keys.as_slice())
    }
}

/// Returns the entries of `map` in `order`, then any entries `order` does not mention.
pub(crate) fn ordered<'a>(
    map: &'a Map<String, Value>,
    order: &[String],
) -> Vec<(&'a String, &'a Value)> {
    let mut entries: Vec<_> = order.iter().filter_map(|k| map.get_key_value(k)).collect();
    for (k, v) in map {
        if !order.contains(k) {
            entries.push((k, v));
        }
    }
    entries
}

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = KeyOrder;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
        let mut elements = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let ChildKeys(keys) = map.next_value()?;
            elements.push((key, keys));
        }
        Ok(KeyOrder(elements))
    }
}

/// The keys of one value if it is an object; nothing for any other value.
struct ChildKeys(Vec<String>);

impl<'de> Deserialize<'de> for ChildKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ChildVisitor)
    }
}

struct ChildVisitor;

impl<'de> Visitor<'de> for ChildVisitor {
    type Value = ChildKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChildKeys, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(key);
        }
        Ok(ChildKeys(keys))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChildKeys, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<ChildKeys, D::Error> {
        ChildKeys::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<ChildKeys, E> {
        Ok(ChildKeys(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_content_over_64_kb() {
        let content = format!("{{\"description\":\"{}\"}}", "x".repeat(MAX_DOCUMENT_SIZE));

        let err = read(&content, DocumentFormat::Json)
            .err()
            .expect("too large");

        assert_eq!(err.code(), "MaxDocumentSizeExceeded");
    }

    #[test]
    fn accepts_content_of_exactly_64_kb() {
        let head = "{\"description\":\"";
        let filler = "x".repeat(MAX_DOCUMENT_SIZE - head.len() - 2);
        let content = format!("{head}{filler}\"}}");

        assert_eq!(content.len(), MAX_DOCUMENT_SIZE);
        assert!(read(&content, DocumentFormat::Json).is_ok());
    }

    #[test]
    fn reports_line_and_column_of_bad_json() {
        let err = read("{\n  \"a\": ,\n}", DocumentFormat::Json)
            .err()
            .expect("bad json");

        assert_eq!(err.code(), "InvalidDocumentContent");
        assert_eq!(err.to_string(), "JSON not well-formed at line 2, column 8");
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn reports_bad_yaml_with_its_position() {
        let err = read("a: [1, 2\nb: 3", DocumentFormat::Yaml)
            .err()
            .expect("bad yaml");

        assert!(err.to_string().starts_with("YAML not well-formed"), "{err}");
    }

    #[cfg(not(feature = "yaml"))]
    #[test]
    fn refuses_yaml_by_name_without_the_yaml_feature() {
        let err = read("a: 1", DocumentFormat::Yaml).err().expect("yaml off");

        assert_eq!(err.code(), "InvalidDocumentContent");
        assert!(
            err.to_string().contains("YAML content is not supported"),
            "{err}"
        );
    }

    #[test]
    fn refuses_content_that_is_not_an_object() {
        let err = read("[1, 2]", DocumentFormat::Json)
            .err()
            .expect("not an object");

        assert_eq!(
            err.to_string(),
            "document content must be a JSON object, not a list"
        );
    }

    #[test]
    fn keeps_the_written_order_of_keys() {
        let raw = read(
            "{\"parameters\": {\"b\": 1, \"a\": {\"z\": 1}, \"c\": 2}}",
            DocumentFormat::Json,
        )
        .expect("valid");

        assert_eq!(raw.order.of("parameters"), ["b", "a", "c"]);
        assert_eq!(raw.order.of("PARAMETERS"), ["b", "a", "c"]);
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn keeps_the_written_order_of_yaml_keys() {
        let raw = read(
            "parameters:\n  zeta: {}\n  alpha: {}\n",
            DocumentFormat::Yaml,
        )
        .expect("yaml");

        assert_eq!(raw.order.of("parameters"), ["zeta", "alpha"]);
    }

    #[test]
    fn matches_keys_ignoring_case_but_prefers_exact_ones() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"Properties": 1, "runcommand": 2, "runCommand": 3}"#)
                .expect("json");

        assert_eq!(field(&map, "properties"), Some(&Value::from(1)));
        assert_eq!(field(&map, "runCommand"), Some(&Value::from(3)));
    }

    #[test]
    fn treats_null_fields_as_absent() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"mainSteps": null}"#).expect("json");

        assert_eq!(field(&map, "mainSteps"), None);
    }

    #[test]
    fn parses_format_names_in_any_case() {
        assert_eq!("json".parse::<DocumentFormat>(), Ok(DocumentFormat::Json));
        assert_eq!("YAML".parse::<DocumentFormat>(), Ok(DocumentFormat::Yaml));
        assert!("TEXT".parse::<DocumentFormat>().is_err());
    }
}
