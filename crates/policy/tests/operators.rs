//! A table of condition cases: every operator family, the `IfExists` and set modifiers,
//! the missing-key rules and policy variables. Each case is one Allow statement with one
//! condition, so the request is allowed exactly when the condition holds.

use std::net::IpAddr;

use tagrun_policy::{Context, Policy, ResourceRequest, Value, evaluate};

/// The key every case tests, written in the policy in this spelling and in the context
/// in another, so that each case also checks that key names ignore case.
const POLICY_KEY: &str = "Test:Key";
const CONTEXT_KEY: &str = "test:KEY";

struct Case {
    operator: &'static str,
    /// The JSON written after the key: a string, number, boolean or array.
    values: &'static str,
    /// The request value under the key; `None` leaves the key out.
    request: Option<Value>,
    /// Other context entries the case needs (variables).
    extra: Vec<(&'static str, Value)>,
    holds: bool,
}

fn case(operator: &'static str, values: &'static str, request: Option<Value>, holds: bool) -> Case {
    Case {
        operator,
        values,
        request,
        extra: Vec::new(),
        holds,
    }
}

fn s(text: &str) -> Option<Value> {
    Some(Value::from(text))
}

fn list(items: &[&str]) -> Option<Value> {
    Some(Value::string_list(items.iter().copied()))
}

fn ip(text: &str) -> Option<Value> {
    Some(Value::Ip(text.parse::<IpAddr>().expect("test address")))
}

fn date(text: &str) -> Option<Value> {
    Value::parse_date(text)
}

fn holds(version: &str, case: &Case) -> bool {
    let document = format!(
        r#"{{{version}"Statement": {{"Effect": "Allow", "Action": "test:Do", "Resource": "*",
            "Condition": {{"{}": {{"{POLICY_KEY}": {}}}}}}}}}"#,
        case.operator, case.values
    );
    let policy = Policy::parse(&document).expect("case policy parses");
    let mut context = Context::new();
    if let Some(value) = &case.request {
        context.insert(CONTEXT_KEY, value.clone());
    }
    for (key, value) in &case.extra {
        context.insert(key, value.clone());
    }
    evaluate([&policy], "test:Do", &[ResourceRequest::new("*")], &context).is_allowed()
}

fn check(cases: &[Case]) {
    let version = r#""Version": "2012-10-17", "#;
    let failures: Vec<String> = cases
        .iter()
        .filter(|case| holds(version, case) != case.holds)
        .map(|c| {
            format!(
                "{} {} with {:?}: expected {}",
                c.operator, c.values, c.request, c.holds
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn string_operators() {
    check(&[
        case("StringEquals", r#""prod""#, s("prod"), true),
        case("StringEquals", r#""prod""#, s("Prod"), false),
        case("StringEquals", r#""prod""#, None, false),
        case("StringEquals", r#"["a", "b"]"#, s("b"), true),
        case("StringEquals", r#""a*""#, s("abc"), false),
        case("StringEquals", r#""a*""#, s("a*"), true),
        case("StringEquals", "true", Some(Value::Bool(true)), true),
        case("StringNotEquals", r#""prod""#, s("dev"), true),
        case("StringNotEquals", r#""prod""#, s("prod"), false),
        case("StringNotEquals", r#""prod""#, None, true),
        case("StringNotEquals", r#"["a", "b"]"#, s("a"), false),
        case("StringNotEquals", r#"["a", "b"]"#, s("c"), true),
        case("StringEqualsIgnoreCase", r#""PROD""#, s("prod"), true),
        case("StringEqualsIgnoreCase", r#""PROD""#, s("dev"), false),
        case("StringNotEqualsIgnoreCase", r#""PROD""#, s("prod"), false),
        case("StringNotEqualsIgnoreCase", r#""PROD""#, None, true),
        case("StringLike", r#""web*""#, s("webserver"), true),
        case("StringLike", r#""web*""#, s("web"), true),
        case("StringLike", r#""WEB*""#, s("webserver"), false),
        case("StringLike", r#""w?b""#, s("web"), true),
        case("StringLike", r#""w?b""#, s("wb"), false),
        case("StringLike", r#""*""#, None, false),
        case("StringNotLike", r#""web*""#, s("db"), true),
        case("StringNotLike", r#""web*""#, s("web1"), false),
        case("StringNotLike", r#"["a*", "b*"]"#, s("b1"), false),
        case("StringNotLike", r#""web*""#, None, true),
    ]);
}

#[test]
fn numeric_operators() {
    check(&[
        case("NumericEquals", r#""10""#, Some(Value::Number(10.0)), true),
        case("NumericEquals", r#""10""#, s("10.0"), true),
        case("NumericEquals", "10", Some(Value::Number(11.0)), false),
        case("NumericEquals", r#""10""#, s("ten"), false),
        case(
            "NumericNotEquals",
            r#""10""#,
            Some(Value::Number(11.0)),
            true,
        ),
        case(
            "NumericNotEquals",
            r#"["10", "11"]"#,
            Some(Value::Number(11.0)),
            false,
        ),
        case("NumericNotEquals", r#""10""#, None, true),
        case("NumericLessThan", r#""10""#, Some(Value::Number(9.5)), true),
        case(
            "NumericLessThan",
            r#""10""#,
            Some(Value::Number(10.0)),
            false,
        ),
        case("NumericLessThan", r#""10""#, None, false),
        case(
            "NumericLessThanEquals",
            "10",
            Some(Value::Number(10.0)),
            true,
        ),
        case(
            "NumericGreaterThan",
            r#""1.5""#,
            Some(Value::Number(2.0)),
            true,
        ),
        case(
            "NumericGreaterThan",
            r#""1.5""#,
            Some(Value::Number(1.5)),
            false,
        ),
        case(
            "NumericGreaterThanEquals",
            r#""3600""#,
            Some(Value::Number(3599.0)),
            false,
        ),
        case(
            "NumericGreaterThanEquals",
            r#""3600""#,
            Some(Value::Number(3600.0)),
            true,
        ),
    ]);
}

#[test]
fn date_operators() {
    check(&[
        case(
            "DateGreaterThan",
            r#""2018-08-16T12:00:00Z""#,
            date("2019-04-25T11:00:00Z"),
            true,
        ),
        case(
            "DateLessThan",
            r#""2018-08-16T12:00:00Z""#,
            date("2019-04-25T11:00:00Z"),
            false,
        ),
        case(
            "DateLessThan",
            r#""2018-08-16T12:00:00Z""#,
            s("2017-01-01"),
            true,
        ),
        case(
            "DateEquals",
            r#""2020-01-01T00:00:00Z""#,
            s("1577836800"),
            true,
        ),
        case(
            "DateEquals",
            "1577836800",
            date("2020-01-01T00:00:00Z"),
            true,
        ),
        case(
            "DateEquals",
            r#""2020-01-01T01:00:00+01:00""#,
            date("2020-01-01"),
            true,
        ),
        case("DateNotEquals", r#""2020-01-01""#, date("2020-01-02"), true),
        case("DateNotEquals", r#""2020-01-01""#, None, true),
        case(
            "DateLessThanEquals",
            r#""2020-01-01""#,
            date("2020-01-01"),
            true,
        ),
        case(
            "DateGreaterThanEquals",
            r#""2020-01-01""#,
            date("2019-12-31T23:59:59Z"),
            false,
        ),
        case("DateGreaterThan", r#""2020-01-01""#, None, false),
    ]);
}

#[test]
fn bool_binary_and_null_operators() {
    check(&[
        case("Bool", r#""true""#, Some(Value::Bool(true)), true),
        case("Bool", r#""true""#, Some(Value::Bool(false)), false),
        case("Bool", "false", Some(Value::Bool(false)), true),
        case("Bool", r#""true""#, s("TRUE"), true),
        case("Bool", r#""true""#, None, false),
        case(
            "BinaryEquals",
            r#""QmluYXJ5""#,
            Some(Value::Binary(b"Binary".to_vec())),
            true,
        ),
        case("BinaryEquals", r#""QmluYXJ5""#, s("QmluYXJ5"), true),
        case(
            "BinaryEquals",
            r#""QmluYXJ5""#,
            Some(Value::Binary(b"binary".to_vec())),
            false,
        ),
        case("Null", r#""true""#, None, true),
        case("Null", r#""true""#, s("x"), false),
        case("Null", r#""true""#, list(&[]), true),
        case("Null", r#""false""#, s("x"), true),
        case("Null", "false", None, false),
    ]);
}

#[test]
fn ip_address_operators() {
    check(&[
        case("IpAddress", r#""203.0.113.0/24""#, ip("203.0.113.9"), true),
        case(
            "IpAddress",
            r#""203.0.113.0/24""#,
            ip("198.51.100.1"),
            false,
        ),
        case("IpAddress", r#""203.0.113.0/24""#, s("203.0.113.9"), true),
        case("IpAddress", r#""203.0.113.9""#, ip("203.0.113.9"), true),
        case(
            "IpAddress",
            r#"["203.0.113.0/24", "2001:DB8:1234:5678::/64"]"#,
            ip("2001:db8:1234:5678::9"),
            true,
        ),
        case("IpAddress", r#""203.0.113.0/24""#, None, false),
        case(
            "NotIpAddress",
            r#""203.0.113.0/24""#,
            ip("198.51.100.1"),
            true,
        ),
        case(
            "NotIpAddress",
            r#"["10.0.0.0/8", "203.0.113.0/24"]"#,
            ip("203.0.113.1"),
            false,
        ),
        case("NotIpAddress", r#""203.0.113.0/24""#, None, true),
    ]);
}

#[test]
fn arn_operators() {
    let role = |arn: &str| Some(Value::arn(arn));
    check(&[
        case(
            "ArnLike",
            r#""arn:aws:iam::*:role/admin*""#,
            role("arn:aws:iam::1:role/admin-x"),
            true,
        ),
        case(
            "ArnEquals",
            r#""arn:aws:sns:*:123:topic""#,
            role("arn:aws:sns:us-east-1:123:topic"),
            true,
        ),
        case(
            "ArnLike",
            r#""arn:aws:iam::*:role/Admin""#,
            role("arn:aws:iam::1:role/admin"),
            false,
        ),
        // ArnLike compares part by part, so a wildcard cannot swallow a colon...
        case(
            "ArnLike",
            r#""arn:aws:iam::*:role/x""#,
            role("arn:aws:iam::1:2:role/x"),
            false,
        ),
        // ...while StringLike sees one string and lets it.
        case(
            "StringLike",
            r#""arn:aws:iam::*:role/x""#,
            s("arn:aws:iam::1:2:role/x"),
            true,
        ),
        case(
            "ArnLike",
            r#""arn:aws:iam::*:role/x""#,
            s("not an arn"),
            false,
        ),
        case(
            "ArnNotLike",
            r#""arn:aws:iam::*:role/admin*""#,
            role("arn:aws:iam::1:role/dev"),
            true,
        ),
        case(
            "ArnNotEquals",
            r#""arn:aws:iam::*:role/dev""#,
            role("arn:aws:iam::1:role/dev"),
            false,
        ),
        case("ArnNotLike", r#""arn:aws:iam::*:role/admin*""#, None, true),
    ]);
}

#[test]
fn if_exists_modifier() {
    check(&[
        case("StringEqualsIfExists", r#""prod""#, None, true),
        case("StringEqualsIfExists", r#""prod""#, s("dev"), false),
        case("StringEqualsIfExists", r#""prod""#, s("prod"), true),
        case("StringNotEqualsIfExists", r#""prod""#, None, true),
        case("StringNotEqualsIfExists", r#""prod""#, s("prod"), false),
        case("NumericLessThanIfExists", r#""5""#, None, true),
        case("BoolIfExists", r#""false""#, None, true),
        case(
            "IpAddressIfExists",
            r#""10.0.0.0/8""#,
            ip("192.0.2.1"),
            false,
        ),
        case("ArnLikeIfExists", r#""arn:aws:iam::*:*""#, None, true),
        case("DateLessThanIfExists", r#""2020-01-01""#, None, true),
    ]);
}

#[test]
fn set_operators_on_multivalued_keys() {
    check(&[
        case(
            "ForAllValues:StringEquals",
            r#"["a", "b"]"#,
            list(&["a", "b"]),
            true,
        ),
        case(
            "ForAllValues:StringEquals",
            r#"["a", "b"]"#,
            list(&["a", "c"]),
            false,
        ),
        case("ForAllValues:StringEquals", r#"["a", "b"]"#, None, true),
        case(
            "ForAllValues:StringEquals",
            r#"["a", "b"]"#,
            list(&[]),
            true,
        ),
        case(
            "ForAnyValue:StringEquals",
            r#""a""#,
            list(&["c", "a"]),
            true,
        ),
        case("ForAnyValue:StringEquals", r#""a""#, list(&["c"]), false),
        case("ForAnyValue:StringEquals", r#""a""#, None, false),
        case("ForAnyValue:StringEquals", r#""a""#, list(&[]), false),
        case(
            "ForAllValues:StringNotLike",
            r#""x*""#,
            list(&["a", "b"]),
            true,
        ),
        case(
            "ForAllValues:StringNotLike",
            r#""x*""#,
            list(&["a", "x1"]),
            false,
        ),
        case("ForAllValues:StringNotLike", r#""x*""#, None, true),
        case(
            "ForAnyValue:StringNotEquals",
            r#""a""#,
            list(&["a", "b"]),
            true,
        ),
        case("ForAnyValue:StringNotEquals", r#""a""#, list(&["a"]), false),
        case("ForAnyValue:StringNotEquals", r#""a""#, None, false),
        case("ForAnyValue:StringEqualsIfExists", r#""a""#, None, true),
        case("ForAllValues:StringLike", r#""a*""#, s("abc"), true),
        case(
            "ForAnyValue:NumericGreaterThan",
            r#""10""#,
            Some(Value::List(vec![Value::Number(1.0), Value::Number(11.0)])),
            true,
        ),
        // Without a set operator a list behaves as any-of, and negation as none-of.
        case("StringEquals", r#""a""#, list(&["b", "a"]), true),
        case("StringNotEquals", r#""a""#, list(&["b", "a"]), false),
        case("StringNotEquals", r#""a""#, list(&["b", "c"]), true),
    ]);
}

fn with(mut case: Case, extra: &[(&'static str, &str)]) -> Case {
    case.extra = extra.iter().map(|(k, v)| (*k, Value::from(*v))).collect();
    case
}

#[test]
fn policy_variables_in_condition_values() {
    let alice = [("aws:username", "alice")];
    let account = [("aws:PrincipalAccount", "123456789012")];
    check(&[
        with(
            case("StringEquals", r#""${aws:username}""#, s("alice"), true),
            &alice,
        ),
        with(
            case("StringEquals", r#""${AWS:UserName}""#, s("bob"), false),
            &alice,
        ),
        with(
            case("StringLike", r#""${aws:username}-*""#, s("alice-1"), true),
            &alice,
        ),
        case(
            "StringEquals",
            r#""${aws:PrincipalTag/team}""#,
            s("finance"),
            false,
        ),
        case(
            "StringEquals",
            r#""${aws:PrincipalTag/team}""#,
            s("${aws:PrincipalTag/team}"),
            false,
        ),
        case(
            "StringNotEquals",
            r#""${aws:PrincipalTag/team}""#,
            s("finance"),
            true,
        ),
        case(
            "StringEquals",
            r#""${aws:PrincipalTag/team, 'none'}""#,
            s("none"),
            true,
        ),
        with(
            case(
                "StringEquals",
                r#""${aws:PrincipalTag/Team, 'none'}""#,
                s("ops"),
                true,
            ),
            &[("aws:principaltag/team", "ops")],
        ),
        case("StringEquals", r#""a${*}b""#, s("a*b"), true),
        case("StringLike", r#""a${*}""#, s("ab"), false),
        case("StringLike", r#""a${*}""#, s("a*"), true),
        case("StringLike", r#""a${?}""#, s("ab"), false),
        case("StringEquals", r#""${$}x""#, s("$x"), true),
        with(
            case(
                "ArnLike",
                r#""arn:aws:iam::${aws:PrincipalAccount}:user/*""#,
                s("arn:aws:iam::123456789012:user/x"),
                true,
            ),
            &account,
        ),
        with(
            case(
                "Bool",
                r#""${aws:SecureTransport}""#,
                Some(Value::Bool(true)),
                true,
            ),
            &[("aws:SecureTransport", "true")],
        ),
    ]);
}

#[test]
fn variables_are_literal_text_under_the_old_version_or_none() {
    let literal = case(
        "StringEquals",
        r#""${aws:username}""#,
        s("${aws:username}"),
        true,
    );
    let alice = with(
        case("StringEquals", r#""${aws:username}""#, s("alice"), false),
        &[("aws:username", "alice")],
    );

    for version in [r#""Version": "2008-10-17", "#, ""] {
        assert!(holds(version, &literal) == literal.holds, "{version}");
        assert!(holds(version, &alice) == alice.holds, "{version}");
    }
}
