//! From document text to compiled statements, with IAM's grammar and limits.
//!
//! Every rejection names the element at fault and where it is, so that the message can
//! be returned as the text of a `MalformedPolicyDocument` error.

use std::sync::Arc;

use crate::arn::ResourcePattern;
use crate::condition::Condition;
use crate::glob::Glob;
use crate::json::{self, Kind, Node, Position};
use crate::policy::{Effect, Either, MAX_DOCUMENT_CHARS, MatchedStatement, Statement, Version};

/// Why a policy document was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document has no text at all.
    #[error("policy document is empty")]
    Empty,
    /// The document is longer than the API accepts.
    #[error("policy document has {length} characters, more than the {limit} allowed")]
    TooLong {
        /// Characters in the document.
        length: usize,
        /// The most allowed.
        limit: usize,
    },
    /// A character outside tab, line feed, carriage return and U+0020 to U+00FF.
    #[error(
        "policy document contains the character {found:?} at line {}, column {}, \
         outside the allowed range",
        at.line,
        at.column
    )]
    Character {
        /// The character found.
        found: char,
        /// Where it is.
        at: Position,
    },
    /// The text is not JSON.
    #[error("syntax error at line {}, column {}: {reason}", at.line, at.column)]
    Syntax {
        /// Where the reader gave up.
        at: Position,
        /// What it expected.
        reason: String,
    },
    /// An element breaks the policy grammar.
    #[error("{element} at line {}, column {}: {reason}", at.line, at.column)]
    Element {
        /// The element, such as `Statement[1].Effect`.
        element: String,
        /// Where it is.
        at: Position,
        /// What is wrong with it.
        reason: String,
    },
    /// The policy is larger than an IAM quota (whitespace not counted).
    #[error("policy size {size} exceeds the quota of {quota} characters")]
    Size {
        /// Characters other than whitespace.
        size: usize,
        /// The quota checked.
        quota: usize,
    },
}

fn element_error(element: &str, at: Position, reason: impl Into<String>) -> PolicyError {
    PolicyError::Element {
        element: element.to_owned(),
        at,
        reason: reason.into(),
    }
}

/// What a document compiles to.
pub(crate) struct Document {
    pub version: Option<Version>,
    pub statements: Vec<Statement>,
}

/// Checks, parses and compiles a document.
pub(crate) fn parse_document(text: &str, name: &Arc<str>) -> Result<Document, PolicyError> {
    check_text(text)?;
    let root = json::parse(text).map_err(|error| PolicyError::Syntax {
        at: error.at,
        reason: error.reason,
    })?;
    let Kind::Object(members) = root.kind else {
        return Err(element_error("policy", root.start, "must be a JSON object"));
    };

    let mut version = None;
    let mut statement_node = None;
    for (key, node) in members {
        match key.as_str() {
            "Version" => version = Some(parse_version(&node)?),
            "Statement" => statement_node = Some(node),
            "Id" => return Err(element_error("Id", node.start, IDENTITY_ONLY)),
            other => return Err(unknown_element("policy", other, node.start)),
        }
    }
    let Some(statement_node) = statement_node else {
        return Err(element_error(
            "policy",
            root.start,
            "has no Statement element",
        ));
    };

    let variables = version == Some(Version::V2012_10_17);
    let statements = parse_statements(statement_node, name, variables)?;
    Ok(Document {
        version,
        statements,
    })
}

const IDENTITY_ONLY: &str = "is not allowed in an identity-based policy";

fn unknown_element(parent: &str, name: &str, at: Position) -> PolicyError {
    element_error(parent, at, format!("has an unknown element \"{name}\""))
}

/// Length and character set, as the API checks them before reading the JSON.
fn check_text(text: &str) -> Result<(), PolicyError> {
    if text.is_empty() {
        return Err(PolicyError::Empty);
    }
    let mut at = Position { line: 1, column: 1 };
    let mut length = 0;
    for c in text.chars() {
        let allowed = matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}');
        if !allowed {
            return Err(PolicyError::Character { found: c, at });
        }
        length += 1;
        if c == '\n' {
            at = Position {
                line: at.line + 1,
                column: 1,
            };
        } else {
            at.column += 1;
        }
    }
    if length > MAX_DOCUMENT_CHARS {
        return Err(PolicyError::TooLong {
            length,
            limit: MAX_DOCUMENT_CHARS,
        });
    }
    Ok(())
}

fn parse_version(node: &Node) -> Result<Version, PolicyError> {
    match &node.kind {
        Kind::String(v) if v == "2012-10-17" => Ok(Version::V2012_10_17),
        Kind::String(v) if v == "2008-10-17" => Ok(Version::V2008_10_17),
        Kind::String(v) => Err(element_error(
            "Version",
            node.start,
            format!("\"{v}\" is not 2012-10-17 or 2008-10-17"),
        )),
        other => Err(element_error(
            "Version",
            node.start,
            format!("must be a string, not {}", other.name()),
        )),
    }
}

fn parse_statements(
    node: Node,
    name: &Arc<str>,
    variables: bool,
) -> Result<Vec<Statement>, PolicyError> {
    let nodes = match node.kind {
        Kind::Object(_) => vec![node],
        Kind::Array(items) if items.is_empty() => {
            return Err(element_error(
                "Statement",
                node.start,
                "must have at least one statement",
            ));
        }
        Kind::Array(items) => items,
        other => {
            return Err(element_error(
                "Statement",
                node.start,
                format!(
                    "must be an object or an array of objects, not {}",
                    other.name()
                ),
            ));
        }
    };

    let mut statements: Vec<Statement> = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.into_iter().enumerate() {
        let statement = parse_statement(node, index, name, variables)?;
        if let Some(sid) = statement.matched.sid.as_ref().filter(|sid| !sid.is_empty()) {
            let repeated = statements
                .iter()
                .any(|s| s.matched.sid.as_ref() == Some(sid));
            if repeated {
                let at = statement.matched.start;
                return Err(element_error(
                    &format!("Statement[{index}].Sid"),
                    at,
                    format!("\"{sid}\" is used by an earlier statement; Sids must be unique"),
                ));
            }
        }
        statements.push(statement);
    }
    Ok(statements)
}

/// The members of one statement, before compiling.
#[derive(Default)]
struct Members {
    sid: Option<Node>,
    effect: Option<Node>,
    action: Option<(bool, Node)>,
    resource: Option<(bool, Node)>,
    condition: Option<Node>,
}

fn parse_statement(
    node: Node,
    index: usize,
    name: &Arc<str>,
    variables: bool,
) -> Result<Statement, PolicyError> {
    let path = format!("Statement[{index}]");
    let (start, end) = (node.start, node.end);
    let Kind::Object(fields) = node.kind else {
        return Err(element_error(
            &path,
            node.start,
            format!("must be an object, not {}", node.kind.name()),
        ));
    };
    let members = sort_members(fields, &path)?;

    let effect = parse_effect(members.effect, &path, start)?;
    let sid = members.sid.map(|sid| parse_sid(sid, &path)).transpose()?;
    let (except, action) = members
        .action
        .ok_or_else(|| element_error(&path, start, "must have an Action or NotAction element"))?;
    let actions = parse_actions(action, except, &path)?;
    let (except, resource) = members.resource.ok_or_else(|| {
        element_error(&path, start, "must have a Resource or NotResource element")
    })?;
    let resources = parse_resources(resource, except, &path, variables)?;
    let conditions = match members.condition {
        Some(node) => parse_conditions(node, &path, variables)?,
        None => Vec::new(),
    };

    let matched = MatchedStatement {
        policy: Arc::clone(name),
        index,
        sid,
        effect,
        start: after(start),
        end: after(end),
    };
    Ok(Statement {
        matched,
        actions,
        resources,
        conditions,
    })
}

/// The simulator reports the position just after a brace.
fn after(at: Position) -> Position {
    Position {
        line: at.line,
        column: at.column + 1,
    }
}

fn sort_members(fields: Vec<(String, Node)>, path: &str) -> Result<Members, PolicyError> {
    let mut members = Members::default();
    for (key, node) in fields {
        let pair = |except: bool, slot: &mut Option<(bool, Node)>, other: &str| {
            if slot.is_some() {
                let reason = format!("has both {key} and {other}; use one of them");
                return Err(element_error(path, node.start, reason));
            }
            *slot = Some((except, node.clone()));
            Ok(())
        };
        match key.as_str() {
            "Sid" => members.sid = Some(node),
            "Effect" => members.effect = Some(node),
            "Action" => pair(false, &mut members.action, "NotAction")?,
            "NotAction" => pair(true, &mut members.action, "Action")?,
            "Resource" => pair(false, &mut members.resource, "NotResource")?,
            "NotResource" => pair(true, &mut members.resource, "Resource")?,
            "Condition" => members.condition = Some(node),
            "Principal" | "NotPrincipal" => {
                return Err(element_error(
                    &format!("{path}.{key}"),
                    node.start,
                    IDENTITY_ONLY,
                ));
            }
            other => return Err(unknown_element(path, other, node.start)),
        }
    }
    Ok(members)
}

fn parse_effect(node: Option<Node>, path: &str, start: Position) -> Result<Effect, PolicyError> {
    let Some(node) = node else {
        return Err(element_error(path, start, "must have an Effect element"));
    };
    match &node.kind {
        Kind::String(e) if e == "Allow" => Ok(Effect::Allow),
        Kind::String(e) if e == "Deny" => Ok(Effect::Deny),
        Kind::String(e) => Err(element_error(
            &format!("{path}.Effect"),
            node.start,
            format!("must be \"Allow\" or \"Deny\" (case matters), not \"{e}\""),
        )),
        other => Err(element_error(
            &format!("{path}.Effect"),
            node.start,
            format!("must be a string, not {}", other.name()),
        )),
    }
}

fn parse_sid(node: Node, path: &str) -> Result<Arc<str>, PolicyError> {
    let element = format!("{path}.Sid");
    let Kind::String(sid) = node.kind else {
        return Err(element_error(
            &element,
            node.start,
            format!("must be a string, not {}", node.kind.name()),
        ));
    };
    if !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
        let reason = format!("\"{sid}\" may contain only letters A-Z, a-z and digits 0-9");
        return Err(element_error(&element, node.start, reason));
    }
    Ok(Arc::from(sid))
}

/// A string or a non-empty array of strings, with each string's position.
fn string_list(node: Node, element: &str) -> Result<Vec<(String, Position)>, PolicyError> {
    let items = match node.kind {
        Kind::String(s) => return Ok(vec![(s, node.start)]),
        Kind::Array(items) if items.is_empty() => {
            return Err(element_error(
                element,
                node.start,
                "must list at least one value",
            ));
        }
        Kind::Array(items) => items,
        other => {
            let reason = format!(
                "must be a string or an array of strings, not {}",
                other.name()
            );
            return Err(element_error(element, node.start, reason));
        }
    };
    items
        .into_iter()
        .map(|item| match item.kind {
            Kind::String(s) => Ok((s, item.start)),
            other => Err(element_error(
                element,
                item.start,
                format!("must hold only strings, not {}", other.name()),
            )),
        })
        .collect()
}

fn parse_actions(node: Node, except: bool, path: &str) -> Result<Either<Glob>, PolicyError> {
    let element = format!("{path}.{}", if except { "NotAction" } else { "Action" });
    let mut items = Vec::new();
    for (action, at) in string_list(node, &element)? {
        let valid = action == "*"
            || action
                .split_once(':')
                .is_some_and(|(service, name)| !service.is_empty() && !name.is_empty());
        if !valid || action.chars().any(char::is_whitespace) {
            let reason =
                format!("\"{action}\" must be \"*\" or service:action, such as ssm:SendCommand");
            return Err(element_error(&element, at, reason));
        }
        items.push(Glob::compile(&action, true));
    }
    Ok(Either { except, items })
}

fn parse_resources(
    node: Node,
    except: bool,
    path: &str,
    variables: bool,
) -> Result<Either<ResourcePattern>, PolicyError> {
    let element = format!("{path}.{}", if except { "NotResource" } else { "Resource" });
    let items = string_list(node, &element)?
        .into_iter()
        .map(|(text, at)| {
            ResourcePattern::parse(&text, variables)
                .map_err(|reason| element_error(&element, at, reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Either { except, items })
}

fn parse_conditions(
    node: Node,
    path: &str,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let element = format!("{path}.Condition");
    let Kind::Object(operators) = node.kind else {
        let reason = format!("must be an object, not {}", node.kind.name());
        return Err(element_error(&element, node.start, reason));
    };

    let mut conditions = Vec::new();
    for (operator, keys) in operators {
        let element = format!("{element}.{operator}");
        let keys = match keys.kind {
            Kind::Object(keys) if !keys.is_empty() => keys,
            other => {
                let reason = format!(
                    "must be an object naming at least one key, not {}",
                    other.name()
                );
                return Err(element_error(&element, keys.start, reason));
            }
        };
        for (key, values) in keys {
            let at = values.start;
            let values = condition_values(values, &format!("{element}.{key}"))?;
            let condition = Condition::parse(&operator, &key, &values, variables)
                .map_err(|reason| element_error(&element, at, reason))?;
            conditions.push(condition);
        }
    }
    Ok(conditions)
}

/// Condition values: strings, numbers or booleans, alone or in an array.
fn condition_values(node: Node, element: &str) -> Result<Vec<String>, PolicyError> {
    let items = match node.kind {
        Kind::Array(items) => items,
        kind => vec![Node { kind, ..node }],
    };
    items
        .into_iter()
        .map(|item| match item.kind {
            Kind::String(s) | Kind::Number(s) => Ok(s),
            Kind::Bool(b) => Ok(b.to_string()),
            other => Err(element_error(
                element,
                item.start,
                format!(
                    "values must be strings, numbers or booleans, not {}",
                    other.name()
                ),
            )),
        })
        .collect()
}
