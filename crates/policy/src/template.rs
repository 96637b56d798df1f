//! Policy variables: `${aws:username}`, `${aws:PrincipalTag/team, 'none'}`, and the
//! escapes `${*}`, `${?}` and `${$}` that stand for a literal character.

use std::borrow::Cow;

use crate::context::{Key, Scope};
use crate::glob::{self, Token};

/// One piece of a policy string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Text as written; `*` and `?` in it are wildcards where the operator has them.
    Text(String),
    /// A character that is never a wildcard (from `${*}`, `${?}`, `${$}`).
    Literal(char),
    /// A variable: the key and the default used when the key has no value.
    Variable { key: Key, default: Option<String> },
}

/// A policy string that may refer to request context values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Reads `text`; with `variables` off (Version 2008-10-17 or none) everything is text.
    pub fn parse(text: &str, variables: bool) -> Result<Template, String> {
        if !variables || !text.contains("${") {
            return Ok(Template {
                pieces: vec![Piece::Text(text.to_owned())],
            });
        }

        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            push_text(&mut pieces, &rest[..start]);
            let inner = &rest[start + 2..];
            let end = inner
                .find('}')
                .ok_or_else(|| format!("policy variable in \"{text}\" is not closed with '}}'"))?;
            pieces.push(parse_variable(&inner[..end])?);
            rest = &inner[end + 1..];
        }
        push_text(&mut pieces, rest);
        Ok(Template { pieces })
    }

    /// Whether the string refers to no variable, so it can be compiled once.
    pub fn is_static(&self) -> bool {
        !self
            .pieces
            .iter()
            .any(|piece| matches!(piece, Piece::Variable { .. }))
    }

    /// The string with variables replaced, wildcards left as plain characters (for
    /// operators without wildcards); `None` when a variable has no value and no default.
    pub fn resolve_text(&self, scope: Option<&Scope<'_>>) -> Option<Cow<'_, str>> {
        if let [Piece::Text(text)] = self.pieces.as_slice() {
            return Some(Cow::Borrowed(text));
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Literal(c) => out.push(*c),
                Piece::Variable { key, default } => out.push_str(&lookup(scope, key, default)?),
            }
        }
        Some(Cow::Owned(out))
    }

    /// The string as wildcard tokens: `*` and `?` in written text are wildcards, while
    /// escapes and variable values are literal. `None` when a variable has no value.
    pub fn resolve_tokens(&self, scope: Option<&Scope<'_>>, fold: bool) -> Option<Vec<Token>> {
        let mut tokens = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => tokens.extend(glob::tokenize(text, fold)),
                Piece::Literal(c) => tokens.push(literal(*c, fold)),
                Piece::Variable { key, default } => {
                    let value = lookup(scope, key, default)?;
                    tokens.extend(value.chars().map(|c| literal(c, fold)));
                }
            }
        }
        Some(tokens)
    }
}

fn literal(c: char, fold: bool) -> Token {
    Token::Char(if fold { glob::fold_char(c) } else { c })
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_owned()));
    }
}

fn lookup<'a>(
    scope: Option<&Scope<'a>>,
    key: &Key,
    default: &'a Option<String>,
) -> Option<Cow<'a, str>> {
    scope
        .and_then(|scope| scope.text(key))
        .or_else(|| default.as_deref().map(Cow::Borrowed))
}

/// Reads what stands between `${` and `}`.
fn parse_variable(inner: &str) -> Result<Piece, String> {
    match inner {
        "*" => return Ok(Piece::Literal('*')),
        "?" => return Ok(Piece::Literal('?')),
        "$" => return Ok(Piece::Literal('$')),
        _ => {}
    }

    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => (key.trim(), Some(parse_default(default.trim())?)),
        None => (inner.trim(), None),
    };
    let valid_key = key.contains(':') && !key.chars().any(|c| c.is_whitespace() || c == '$');
    if !valid_key {
        return Err(format!("\"${{{inner}}}\" is not a valid policy variable"));
    }
    Ok(Piece::Variable {
        key: Key::new(key),
        default,
    })
}

fn parse_default(text: &str) -> Result<String, String> {
    text.strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .map(str::to_owned)
        .ok_or_else(|| format!("default value {text} must be written in single quotes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;

    fn scope_text(template: &str, context: &Context) -> Option<String> {
        let empty = Context::new();
        let scope = Scope {
            resource: &empty,
            request: context,
        };
        let template = Template::parse(template, true).expect("valid template");
        template.resolve_text(Some(&scope)).map(Cow::into_owned)
    }

    #[test]
    fn substitutes_variables_with_any_key_case() {
        let context = Context::new().with("aws:username", "alice");

        assert_eq!(
            scope_text("home/${AWS:UserName}/*", &context).as_deref(),
            Some("home/alice/*")
        );
    }

    #[test]
    fn uses_the_default_when_the_key_is_absent() {
        let context = Context::new();

        let text = scope_text("${aws:PrincipalTag/team, 'company-wide'}", &context);

        assert_eq!(text.as_deref(), Some("company-wide"));
    }

    #[test]
    fn has_no_value_when_the_key_is_absent_without_default() {
        assert_eq!(scope_text("a-${aws:username}", &Context::new()), None);
    }

    #[test]
    fn escapes_are_literal_characters_not_wildcards() {
        let template = Template::parse("a${*}b*", true).expect("valid");
        let tokens = template.resolve_tokens(None, false).expect("no variables");

        assert_eq!(
            tokens,
            [
                Token::Char('a'),
                Token::Char('*'),
                Token::Char('b'),
                Token::Many
            ]
        );
    }

    #[test]
    fn without_variables_the_syntax_is_plain_text() {
        let template = Template::parse("${aws:username}", false).expect("valid");

        assert!(template.is_static());
        assert_eq!(
            template.resolve_text(None).as_deref(),
            Some("${aws:username}")
        );
    }

    #[test]
    fn rejects_unclosed_and_malformed_variables() {
        assert!(Template::parse("${aws:username", true).is_err());
        assert!(Template::parse("${}", true).is_err());
        assert!(Template::parse("${aws:x, none}", true).is_err());
    }
}
