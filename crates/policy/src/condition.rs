//! The `Condition` element: operators, set modifiers, `IfExists`, and how each compares
//! request values with policy values.
//!
//! The rules, in AWS's terms:
//! - several values for one key: any may match (OR); for negated operators the request
//!   value must match none of them (NOR);
//! - a key absent from the request: positive operators are false, negated ones true,
//!   `...IfExists` true, `ForAllValues:` true and `ForAnyValue:` false;
//! - a policy variable without a value matches nothing, so a negated operator holds.
//!
//! AWS leaves undocumented what a key holding several request values means without a set
//! operator (two tags whose keys differ only in case, or a list); here it behaves like
//! `ForAnyValue:` for positive operators and like `ForAllValues:` for negated ones: one
//! match satisfies a positive operator, and a negated operator needs every value to match
//! none.

use std::net::IpAddr;

use crate::context::{Key, Scope, Value};
use crate::glob::Glob;
use crate::scalar::{self, Cidr};
use crate::template::Template;

/// The comparison an operator makes, before negation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Order),
    Date(Order),
    Bool,
    BinaryEquals,
    IpAddress,
    Arn,
    Null,
}

/// How two ordered values must compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Order {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Order::Equal => request == policy,
            Order::Less => request < policy,
            Order::LessOrEqual => request <= policy,
            Order::Greater => request > policy,
            Order::GreaterOrEqual => request >= policy,
        }
    }
}

/// `ForAllValues:` or `ForAnyValue:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOperator {
    ForAllValues,
    ForAnyValue,
}

/// A parsed operator name such as `ForAnyValue:StringNotLikeIfExists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Operator {
    test: Test,
    negated: bool,
    set: Option<SetOperator>,
    if_exists: bool,
}

impl Operator {
    /// Reads an operator name; names are matched without regard to case.
    fn parse(name: &str) -> Result<Operator, String> {
        let folded = name.to_lowercase();
        let (set, rest) = if let Some(rest) = folded.strip_prefix("forallvalues:") {
            (Some(SetOperator::ForAllValues), rest)
        } else if let Some(rest) = folded.strip_prefix("foranyvalue:") {
            (Some(SetOperator::ForAnyValue), rest)
        } else {
            (None, folded.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("ifexists") {
            Some(base) => (base, true),
            None => (rest, false),
        };

        let (test, negated) =
            base_operator(base).ok_or_else(|| format!("unknown condition operator {name}"))?;
        if test == Test::Null && (if_exists || set.is_some()) {
            return Err(format!(
                "{name}: Null takes neither IfExists nor a set operator"
            ));
        }
        Ok(Operator {
            test,
            negated,
            set,
            if_exists,
        })
    }
}

fn base_operator(name: &str) -> Option<(Test, bool)> {
    let found = match name {
        "stringequals" => (Test::StringEquals, false),
        "stringnotequals" => (Test::StringEquals, true),
        "stringequalsignorecase" => (Test::StringEqualsIgnoreCase, false),
        "stringnotequalsignorecase" => (Test::StringEqualsIgnoreCase, true),
        "stringlike" => (Test::StringLike, false),
        "stringnotlike" => (Test::StringLike, true),
        "bool" => (Test::Bool, false),
        "binaryequals" => (Test::BinaryEquals, false),
        "ipaddress" => (Test::IpAddress, false),
        "notipaddress" => (Test::IpAddress, true),
        "arnequals" | "arnlike" => (Test::Arn, false),
        "arnnotequals" | "arnnotlike" => (Test::Arn, true),
        "null" => (Test::Null, false),
        _ => return ordered_operator(name),
    };
    Some(found)
}

fn ordered_operator(name: &str) -> Option<(Test, bool)> {
    let (family, order): (fn(Order) -> Test, &str) =
        if let Some(order) = name.strip_prefix("numeric") {
            (Test::Numeric, order)
        } else {
            (Test::Date, name.strip_prefix("date")?)
        };
    let (order, negated) = match order {
        "equals" => (Order::Equal, false),
        "notequals" => (Order::Equal, true),
        "lessthan" => (Order::Less, false),
        "lessthanequals" => (Order::LessOrEqual, false),
        "greaterthan" => (Order::Greater, false),
        "greaterthanequals" => (Order::GreaterOrEqual, false),
        _ => return None,
    };
    Some((family(order), negated))
}

/// The policy values of one condition, compiled for their operator.
#[derive(Clone, Debug, PartialEq)]
enum Values {
    Strings(Vec<Template>),
    Folded(Vec<Template>),
    Patterns(Vec<Pattern>),
    Numbers(Vec<f64>),
    Dates(Vec<i64>),
    Bools(Vec<Template>),
    Bytes(Vec<Vec<u8>>),
    Ranges(Vec<Cidr>),
    Arns(Vec<ArnValue>),
    Null(Vec<bool>),
}

/// A `StringLike` value: compiled once unless it uses a variable.
#[derive(Clone, Debug, PartialEq)]
enum Pattern {
    Static(Glob),
    Dynamic(Template),
}

/// An `ArnLike` value: six parts compared one by one, unless it uses a variable.
#[derive(Clone, Debug, PartialEq)]
enum ArnValue {
    Static(Vec<Glob>),
    Dynamic(Template),
}

/// One operator applied to one key: `"StringLike": {"ssm:resourceTag/Env": ["prod"]}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Condition {
    operator: Operator,
    /// The key as written, for explanations.
    key: String,
    /// The key in lower case, for lookups.
    folded_key: Key,
    values: Values,
}

impl Condition {
    /// Compiles one operator/key pair; `values` are the policy values as text.
    pub fn parse(
        operator: &str,
        key: &str,
        values: &[String],
        variables: bool,
    ) -> Result<Condition, String> {
        let operator = Operator::parse(operator)?;
        if !key.contains(':') || key.starts_with(':') {
            return Err(format!(
                "condition key \"{key}\" must start with a service prefix, such as aws:"
            ));
        }
        if values.is_empty() {
            return Err(format!("condition key \"{key}\" has no values"));
        }
        let values = compile_values(operator.test, values, variables)?;
        Ok(Condition {
            operator,
            key: key.to_owned(),
            folded_key: Key::new(key),
            values,
        })
    }

    /// The key as written in the policy.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the condition holds for the request.
    pub fn holds(&self, scope: &Scope<'_>) -> bool {
        let found = scope.get(&self.folded_key);
        let present = found.is_some_and(|values| flatten(values).next().is_some());
        if let Values::Null(expected) = &self.values {
            return expected.iter().any(|&absent| absent != present);
        }

        let Some(found) = found.filter(|_| present) else {
            return self.holds_when_absent();
        };
        let negated = self.operator.negated;
        let one = |value: &Value| self.matches_any(value, scope) != negated;
        match (self.operator.set, negated) {
            (Some(SetOperator::ForAnyValue), _) | (None, false) => flatten(found).any(one),
            (Some(SetOperator::ForAllValues), _) | (None, true) => flatten(found).all(one),
        }
    }

    fn holds_when_absent(&self) -> bool {
        if self.operator.if_exists {
            return true;
        }
        match self.operator.set {
            Some(SetOperator::ForAllValues) => true,
            Some(SetOperator::ForAnyValue) => false,
            None => self.operator.negated,
        }
    }

    /// Whether one request value satisfies the positive form of the test against at
    /// least one policy value.
    fn matches_any(&self, value: &Value, scope: &Scope<'_>) -> bool {
        match (&self.values, self.operator.test) {
            (Values::Strings(policy), _) => strings_equal(value, policy, scope),
            (Values::Folded(policy), _) => strings_equal_folded(value, policy, scope),
            (Values::Patterns(policy), _) => strings_like(value, policy, scope),
            (Values::Numbers(policy), Test::Numeric(order)) => {
                as_number(value).is_some_and(|n| policy.iter().any(|&p| order.holds(n, p)))
            }
            (Values::Dates(policy), Test::Date(order)) => {
                as_date(value).is_some_and(|d| policy.iter().any(|&p| order.holds(d, p)))
            }
            (Values::Bools(policy), _) => bools_equal(value, policy, scope),
            (Values::Bytes(policy), _) => {
                as_bytes(value).is_some_and(|bytes| policy.iter().any(|p| **p == *bytes))
            }
            (Values::Ranges(policy), _) => {
                as_ip(value).is_some_and(|ip| policy.iter().any(|range| range.contains(ip)))
            }
            (Values::Arns(policy), _) => arns_like(value, policy, scope),
            _ => false,
        }
    }
}

/// Request values with lists opened up: `["a", ["b", "c"]]` gives `a`, `b`, `c`.
fn flatten(values: &[Value]) -> impl Iterator<Item = &Value> {
    values.iter().flat_map(|value| match value {
        Value::List(items) => items.iter(),
        single => std::slice::from_ref(single).iter(),
    })
}

fn compile_values(test: Test, values: &[String], variables: bool) -> Result<Values, String> {
    let templates = || -> Result<Vec<Template>, String> {
        values
            .iter()
            .map(|v| Template::parse(v, variables))
            .collect()
    };
    let compiled = match test {
        Test::StringEquals => Values::Strings(templates()?),
        Test::StringEqualsIgnoreCase => Values::Folded(templates()?),
        Test::StringLike => Values::Patterns(patterns(templates()?)),
        Test::Numeric(_) => Values::Numbers(typed(values, "a number", scalar::parse_number)?),
        Test::Date(_) => Values::Dates(typed(values, "a date", scalar::parse_date)?),
        Test::Bool => Values::Bools(checked_bools(templates()?)?),
        Test::BinaryEquals => Values::Bytes(typed(values, "base64 data", scalar::decode_base64)?),
        Test::IpAddress => Values::Ranges(typed(values, "an IP address range", Cidr::parse)?),
        Test::Arn => Values::Arns(arn_values(templates()?)?),
        Test::Null => Values::Null(typed(values, "true or false", parse_bool)?),
    };
    Ok(compiled)
}

fn typed<T>(
    values: &[String],
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    values
        .iter()
        .map(|v| parse(v).ok_or_else(|| format!("\"{v}\" is not {what}")))
        .collect()
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn checked_bools(templates: Vec<Template>) -> Result<Vec<Template>, String> {
    for template in &templates {
        if let Some(text) = template.resolve_text(None).filter(|_| template.is_static()) {
            parse_bool(&text).ok_or_else(|| format!("\"{text}\" is not true or false"))?;
        }
    }
    Ok(templates)
}

fn patterns(templates: Vec<Template>) -> Vec<Pattern> {
    templates
        .into_iter()
        .map(|template| match template.resolve_tokens(None, false) {
            Some(tokens) if template.is_static() => Pattern::Static(Glob::from_tokens(tokens)),
            _ => Pattern::Dynamic(template),
        })
        .collect()
}

fn arn_values(templates: Vec<Template>) -> Result<Vec<ArnValue>, String> {
    templates
        .into_iter()
        .map(|template| {
            if !template.is_static() {
                return Ok(ArnValue::Dynamic(template));
            }
            let text = template.resolve_text(None).unwrap_or_default().into_owned();
            let tokens = template.resolve_tokens(None, false).unwrap_or_default();
            arn_parts(&tokens)
                .map(ArnValue::Static)
                .ok_or_else(|| format!("\"{text}\" is not an ARN (six parts separated by ':')"))
        })
        .collect()
}

/// Splits pattern tokens at their first five literal colons into six part patterns.
fn arn_parts(tokens: &[crate::glob::Token]) -> Option<Vec<Glob>> {
    use crate::glob::Token;
    let mut parts = Vec::with_capacity(6);
    let mut rest = tokens;
    for _ in 0..5 {
        let colon = rest.iter().position(|t| *t == Token::Char(':'))?;
        parts.push(Glob::from_tokens(rest[..colon].to_vec()));
        rest = &rest[colon + 1..];
    }
    parts.push(Glob::from_tokens(rest.to_vec()));
    Some(parts)
}

fn strings_equal(value: &Value, policy: &[Template], scope: &Scope<'_>) -> bool {
    let Some(text) = value.as_text() else {
        return false;
    };
    policy
        .iter()
        .any(|p| p.resolve_text(Some(scope)).is_some_and(|p| *p == *text))
}

fn strings_equal_folded(value: &Value, policy: &[Template], scope: &Scope<'_>) -> bool {
    let Some(text) = value.as_text() else {
        return false;
    };
    let fold = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<String>();
    let text = fold(&text);
    policy.iter().any(|p| {
        p.resolve_text(Some(scope))
            .is_some_and(|p| fold(&p) == text)
    })
}

fn strings_like(value: &Value, policy: &[Pattern], scope: &Scope<'_>) -> bool {
    let Some(text) = value.as_text() else {
        return false;
    };
    policy.iter().any(|pattern| match pattern {
        Pattern::Static(glob) => glob.matches(&text, false),
        Pattern::Dynamic(template) => template
            .resolve_tokens(Some(scope), false)
            .is_some_and(|tokens| Glob::from_tokens(tokens).matches(&text, false)),
    })
}

fn bools_equal(value: &Value, policy: &[Template], scope: &Scope<'_>) -> bool {
    let request = match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        _ => None,
    };
    let Some(request) = request else {
        return false;
    };
    policy.iter().any(|p| {
        p.resolve_text(Some(scope))
            .and_then(|text| parse_bool(&text))
            .is_some_and(|b| b == request)
    })
}

fn arns_like(value: &Value, policy: &[ArnValue], scope: &Scope<'_>) -> bool {
    let (Value::Arn(text) | Value::String(text)) = value else {
        return false;
    };
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    if parts.len() != 6 {
        return false;
    }
    let fits = |globs: &[Glob]| {
        globs
            .iter()
            .zip(&parts)
            .all(|(g, part)| g.matches(part, false))
    };
    policy.iter().any(|arn| match arn {
        ArnValue::Static(globs) => fits(globs),
        ArnValue::Dynamic(template) => template
            .resolve_tokens(Some(scope), false)
            .and_then(|tokens| arn_parts(&tokens))
            .is_some_and(|globs| fits(&globs)),
    })
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => Some(*n),
        Value::String(s) => scalar::parse_number(s),
        _ => None,
    }
}

fn as_date(value: &Value) -> Option<i64> {
    match value {
        Value::Date(millis) => Some(*millis),
        Value::String(s) => scalar::parse_date(s),
        Value::Number(seconds) => scalar::parse_date(&seconds.to_string()),
        _ => None,
    }
}

fn as_bytes(value: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    match value {
        Value::Binary(bytes) => Some(std::borrow::Cow::Borrowed(bytes)),
        Value::String(s) => scalar::decode_base64(s).map(std::borrow::Cow::Owned),
        _ => None,
    }
}

fn as_ip(value: &Value) -> Option<IpAddr> {
    match value {
        Value::Ip(ip) => Some(*ip),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_carry_modifiers_and_ignore_case() {
        let op = Operator::parse("ForAnyValue:StringNotLikeIfExists").expect("valid");

        assert_eq!(op.test, Test::StringLike);
        assert!(op.negated && op.if_exists);
        assert_eq!(op.set, Some(SetOperator::ForAnyValue));
        assert!(Operator::parse("stringequals").is_ok());
    }

    #[test]
    fn rejects_unknown_operators_and_modified_null() {
        assert!(Operator::parse("StringSimilar").is_err());
        assert!(Operator::parse("NullIfExists").is_err());
        assert!(Operator::parse("ForAllValues:Null").is_err());
        assert!(Operator::parse("NumericBetween").is_err());
    }

    #[test]
    fn typed_values_are_checked_when_compiled() {
        let bad = |op: &str, value: &str| Condition::parse(op, "aws:k", &[value.to_owned()], true);

        assert!(bad("NumericEquals", "ten").is_err());
        assert!(bad("DateLessThan", "soon").is_err());
        assert!(bad("IpAddress", "10.0.0.0/40").is_err());
        assert!(bad("BinaryEquals", "***").is_err());
        assert!(bad("Bool", "yes").is_err());
        assert!(bad("ArnLike", "arn:aws:s3").is_err());
        assert!(bad("Null", "maybe").is_err());
        assert!(bad("Bool", "${aws:SecureTransport}").is_ok());
    }
}
