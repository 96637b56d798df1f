//! `--context-entries` in the aws CLI's forms: shorthand
//! (`ContextKeyName=k,ContextKeyValues=v1,v2,ContextKeyType=stringList`) or JSON (one
//! entry object, or an array of them).

use std::net::IpAddr;

use anyhow::{Context as _, anyhow, bail};
use tagrun_policy::{Context, Value};

/// One context entry: a key, its values as text, and the declared type.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ContextEntry {
    pub name: String,
    pub values: Vec<String>,
    pub kind: Option<String>,
}

impl ContextEntry {
    /// Adds the entry to `context` with the value type it declares.
    pub fn add_to(&self, context: &mut Context) -> anyhow::Result<()> {
        let kind = self.kind.as_deref().unwrap_or(if self.values.len() > 1 {
            "stringList"
        } else {
            "string"
        });
        let (scalar, is_list) = match kind.strip_suffix("List") {
            Some(scalar) => (scalar, true),
            None => (kind, false),
        };
        if !is_list && self.values.len() != 1 {
            bail!(
                "context key {} has {} values but ContextKeyType {kind} takes exactly one",
                self.name,
                self.values.len()
            );
        }

        let values = self
            .values
            .iter()
            .map(|text| typed_value(scalar, text))
            .collect::<anyhow::Result<Vec<Value>>>()
            .with_context(|| format!("context key {}", self.name))?;
        let value = if is_list {
            Value::List(values)
        } else {
            values.into_iter().next().unwrap_or(Value::List(Vec::new()))
        };
        context.insert(&self.name, value);
        Ok(())
    }
}

fn typed_value(kind: &str, text: &str) -> anyhow::Result<Value> {
    let value = match kind {
        "string" | "binary" => Value::String(text.to_owned()),
        "numeric" => Value::Number(
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| anyhow!("{text:?} is not a number"))?,
        ),
        "boolean" => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => bail!("{text:?} is not true or false"),
        },
        "ip" => Value::Ip(
            text.trim()
                .parse::<IpAddr>()
                .map_err(|_| anyhow!("{text:?} is not an IP address"))?,
        ),
        "date" => Value::parse_date(text).ok_or_else(|| anyhow!("{text:?} is not a date"))?,
        other => bail!(
            "unknown ContextKeyType {other}; use string, numeric, boolean, ip, binary or date, \
             or one of them followed by List"
        ),
    };
    Ok(value)
}

/// Reads one `--context-entries` argument, which may hold several entries (JSON array).
pub fn parse(text: &str) -> anyhow::Result<Vec<ContextEntry>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return parse_json(text);
    }
    parse_shorthand(text).map(|entry| vec![entry])
}

fn parse_json(text: &str) -> anyhow::Result<Vec<ContextEntry>> {
    let json: serde_json::Value =
        serde_json::from_str(text).context("reading context entries JSON")?;
    let items = match json {
        serde_json::Value::Array(items) => items,
        object => vec![object],
    };
    items.iter().map(json_entry).collect()
}

fn json_entry(item: &serde_json::Value) -> anyhow::Result<ContextEntry> {
    let name = item["ContextKeyName"]
        .as_str()
        .ok_or_else(|| anyhow!("a context entry has no ContextKeyName string"))?;
    let values = match &item["ContextKeyValues"] {
        serde_json::Value::Array(values) => values.iter().map(json_text).collect(),
        serde_json::Value::Null => Vec::new(),
        single => vec![json_text(single)],
    };
    Ok(ContextEntry {
        name: name.to_owned(),
        values,
        kind: item["ContextKeyType"].as_str().map(str::to_owned),
    })
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const FIELDS: [&str; 3] = ["ContextKeyName", "ContextKeyValues", "ContextKeyType"];

/// Shorthand: `Field=value` pairs separated by commas. A piece without a known
/// `Field=` continues the list of the field before it, so `ContextKeyValues=a,b` is two
/// values; `ContextKeyValues=[a,b]` says the same, and values may be quoted.
fn parse_shorthand(text: &str) -> anyhow::Result<ContextEntry> {
    let mut entry = ContextEntry::default();
    let mut current: Option<&str> = None;
    for piece in split_top_level(text, ',')? {
        let field = FIELDS
            .iter()
            .find(|field| piece.trim_start().starts_with(&format!("{field}=")));
        let (field, raw) = match field {
            Some(field) => (*field, &piece.trim_start()[field.len() + 1..]),
            None => match current {
                Some("ContextKeyValues") => ("ContextKeyValues", piece.as_str()),
                _ => bail!("unexpected {piece:?} in context entry {text:?}"),
            },
        };
        current = Some(field);
        store(&mut entry, field, raw)?;
    }

    if entry.name.is_empty() {
        bail!("context entry {text:?} has no ContextKeyName");
    }
    Ok(entry)
}

fn store(entry: &mut ContextEntry, field: &str, raw: &str) -> anyhow::Result<()> {
    match field {
        "ContextKeyName" => entry.name = unquote(raw),
        "ContextKeyType" => entry.kind = Some(unquote(raw)),
        _ => {
            let raw = raw.trim();
            match raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Some(inner) => {
                    let items = split_top_level(inner, ',')?;
                    entry.values.extend(items.iter().map(|item| unquote(item)));
                }
                None => entry.values.push(unquote(raw)),
            }
        }
    }
    Ok(())
}

/// Splits at `separator` outside quotes and brackets.
fn split_top_level(text: &str, separator: char) -> anyhow::Result<Vec<String>> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, c) if c == separator && depth == 0 => {
                pieces.push(std::mem::take(&mut piece));
                continue;
            }
            _ => {}
        }
        piece.push(c);
    }
    if quote.is_some() {
        bail!("unclosed quote in {text:?}");
    }
    pieces.push(piece);
    Ok(pieces)
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, values: &[&str], kind: Option<&str>) -> ContextEntry {
        ContextEntry {
            name: name.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            kind: kind.map(str::to_owned),
        }
    }

    #[test]
    fn reads_the_design_example() {
        let text = "ContextKeyName=ssm:resourceTag/Finance,ContextKeyValues=WebServer,\
                    ContextKeyType=string";

        let parsed = parse(text).expect("valid");

        assert_eq!(
            parsed,
            [entry(
                "ssm:resourceTag/Finance",
                &["WebServer"],
                Some("string")
            )]
        );
    }

    #[test]
    fn reads_quoted_values_and_lists() {
        let quoted = "ContextKeyName='aws:CurrentTime',ContextKeyValues='2019-04-25T11:00:00Z',\
                      ContextKeyType=date";
        let list = "ContextKeyName=aws:TagKeys,ContextKeyValues=a,b,ContextKeyType=stringList";
        let bracketed =
            "ContextKeyName=aws:TagKeys,ContextKeyValues=[a,'b,c'],ContextKeyType=stringList";

        assert_eq!(
            parse(quoted).expect("valid")[0].values,
            ["2019-04-25T11:00:00Z"]
        );
        assert_eq!(parse(list).expect("valid")[0].values, ["a", "b"]);
        assert_eq!(parse(bracketed).expect("valid")[0].values, ["a", "b,c"]);
    }

    #[test]
    fn reads_json_entries() {
        let text = r#"[{"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.0.0.1"],
                        "ContextKeyType": "ip"}]"#;

        assert_eq!(
            parse(text).expect("valid"),
            [entry("aws:SourceIp", &["10.0.0.1"], Some("ip"))]
        );
    }

    #[test]
    fn rejects_values_that_do_not_fit_their_type() {
        let mut context = Context::new();

        assert!(
            entry("aws:SourceIp", &["nope"], Some("ip"))
                .add_to(&mut context)
                .is_err()
        );
        assert!(
            entry("aws:EpochTime", &["1", "2"], Some("numeric"))
                .add_to(&mut context)
                .is_err()
        );
        assert!(
            entry("aws:x", &["1"], Some("colour"))
                .add_to(&mut context)
                .is_err()
        );
        assert!(parse("ContextKeyValues=a").is_err());
        assert!(parse("Colour=red").is_err());
    }

    #[test]
    fn converts_to_typed_values() {
        let mut context = Context::new();
        entry("aws:SecureTransport", &["true"], Some("boolean"))
            .add_to(&mut context)
            .expect("ok");
        entry("aws:TagKeys", &["a", "b"], None)
            .add_to(&mut context)
            .expect("ok");

        assert_eq!(
            context.get("aws:securetransport"),
            Some(&[Value::Bool(true)][..])
        );
        assert_eq!(
            context.get("aws:TagKeys"),
            Some(&[Value::string_list(["a", "b"])][..])
        );
    }
}
