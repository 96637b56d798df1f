//! The policy grammar: what parses, what is rejected and how the rejection reads, and
//! that no input makes the parser panic.

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use tagrun_policy::{
    Context, MANAGED_POLICY_QUOTA, Policy, PolicyError, ResourceRequest, Version, evaluate,
};

fn error(text: &str) -> String {
    Policy::parse(text)
        .expect_err("document should be rejected")
        .to_string()
}

fn statement(body: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": {body}}}"#)
}

#[test]
fn accepts_aws_managed_policy_shapes() {
    let read_only = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ssm:Describe*", "ssm:Get*", "ssm:List*"],
                "Resource": "*"
            }
        ]
    }"#;
    let policy = Policy::parse(read_only).expect("managed policy parses");
    let context = Context::new();

    assert_eq!(policy.version(), Some(Version::V2012_10_17));
    assert!(evaluate([&policy], "ssm:DescribeInstanceInformation", &[], &context).is_allowed());
    assert!(!evaluate([&policy], "ssm:SendCommand", &[], &context).is_allowed());
}

#[test]
fn accepts_scalars_where_arrays_are_allowed_and_members_in_any_order() {
    let text = r#"{"Statement": {"Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": true}}, "Action": "ssm:GetDocument",
        "Effect": "Allow", "Sid": "Read1"}, "Version": "2012-10-17"}"#;

    let policy = Policy::parse(text).expect("valid");

    assert_eq!(policy.statement_count(), 1);
    assert_eq!(policy.condition_keys(), ["aws:SecureTransport"]);
}

/// A statement that allows everything, with `extra` members added.
fn allow_all_with(extra: &str) -> String {
    statement(&format!(
        r#"{{"Effect": "Allow", "Action": "*", "Resource": "*"{extra}}}"#
    ))
}

fn check_errors(cases: &[(String, &str)]) {
    for (text, expected) in cases {
        let message = error(text);
        assert!(
            message.contains(expected),
            "{text}\n=> {message}\nwanted {expected}"
        );
    }
}

#[test]
fn names_the_statement_element_and_the_reason() {
    let sid_a = r#"{"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"}"#;
    check_errors(&[
        (
            statement(r#"{"Effect": "allow", "Action": "*", "Resource": "*"}"#),
            "Statement[0].Effect",
        ),
        (
            statement(r#"{"Action": "*", "Resource": "*"}"#),
            "must have an Effect element",
        ),
        (
            statement(r#"{"Effect": "Allow", "Resource": "*"}"#),
            "Action or NotAction",
        ),
        (
            statement(r#"{"Effect": "Allow", "Action": "*"}"#),
            "Resource or NotResource",
        ),
        (allow_all_with(r#", "NotAction": "s3:*""#), "has both"),
        (
            statement(r#"{"Effect": "Allow", "Action": "Send", "Resource": "*"}"#),
            "service:action",
        ),
        (
            statement(r#"{"Effect": "Allow", "Action": [], "Resource": "*"}"#),
            "at least one value",
        ),
        (
            statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "i-1"}"#),
            "must be an ARN",
        ),
        (
            allow_all_with(r#", "Principal": "*""#),
            "Statement[0].Principal",
        ),
        (
            allow_all_with(r#", "Colour": "red""#),
            "unknown element \"Colour\"",
        ),
        (
            allow_all_with(r#", "Sid": "no-dashes""#),
            "Statement[0].Sid",
        ),
        (statement(&format!("[{sid_a}, {sid_a}]")), "unique"),
    ]);
}

#[test]
fn names_the_condition_element_and_the_reason() {
    let condition = |body: &str| allow_all_with(&format!(r#", "Condition": {body}"#));
    check_errors(&[
        (
            condition(r#"{"StringEqual": {"aws:username": "a"}}"#),
            "operator StringEqual",
        ),
        (
            condition(r#"{"NumericEquals": {"aws:EpochTime": "soon"}}"#),
            "is not a number",
        ),
        (
            condition(r#"{"StringEquals": {"username": "a"}}"#),
            "service prefix",
        ),
        (
            condition(r#"{"StringEquals": {"aws:username": null}}"#),
            "not null",
        ),
        (condition(r#"{"StringEquals": {}}"#), "at least one key"),
        (
            condition(r#"{"StringLike": {"aws:username": "${aws:x"}}"#),
            "not closed",
        ),
        (condition("[]"), "Statement[0].Condition"),
    ]);
}

#[test]
fn names_the_document_element_and_the_reason() {
    check_errors(&[
        (statement("[]"), "at least one statement"),
        (
            r#"{"Version": "2012-10-17"}"#.to_owned(),
            "has no Statement element",
        ),
        (
            r#"{"Version": "2013-01-01", "Statement": []}"#.to_owned(),
            "Version",
        ),
        (
            r#"{"Id": "x", "Statement": []}"#.to_owned(),
            "identity-based",
        ),
        (
            r#"{"Statement": {"Effect": "Allow", "Effect": "Deny"}}"#.to_owned(),
            "duplicate member",
        ),
        (r#"{"Statement": "#.to_owned(), "syntax error at line 1"),
        ("[1, 2]".to_owned(), "must be a JSON object"),
    ]);
}

#[test]
fn reports_the_line_and_column_of_the_element() {
    let text =
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {\n    \"Effect\": \"Permit\"\n  }\n}";

    assert_eq!(
        error(text),
        "Statement[0].Effect at line 4, column 15: must be \"Allow\" or \"Deny\" (case matters), \
         not \"Permit\""
    );
}

#[test]
fn enforces_aws_character_set_and_length() {
    let emoji = statement("{\"Sid\": \"\u{1F600}\"}");

    assert_eq!(Policy::parse("").expect_err("empty"), PolicyError::Empty);
    assert!(matches!(
        Policy::parse(&emoji),
        Err(PolicyError::Character {
            found: '\u{1F600}',
            ..
        })
    ));
    assert!(
        Policy::parse(&statement("{\"Sid\": \"caf\u{e9}\"}"))
            .is_err_and(|e| !matches!(e, PolicyError::Character { .. }))
    );
    let long = format!(
        "{}{}",
        statement(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#),
        " ".repeat(131_072)
    );
    assert!(matches!(
        Policy::parse(&long),
        Err(PolicyError::TooLong { .. })
    ));
}

#[test]
fn size_quota_ignores_whitespace() {
    let padded = format!(
        r#"{{"Statement": {{"Effect": "Allow", "Action": "*",
            "Resource": "arn:aws:s3:::{}"}}}}"#,
        "a".repeat(6_100)
    );
    let policy = Policy::parse(&padded).expect("valid");

    assert!(policy.check_size(MANAGED_POLICY_QUOTA).is_err());
    assert!(policy.check_size(10_240).is_ok());
    let spaced = Policy::parse(&statement(
        r#"{ "Effect" : "Allow" , "Action" : "*" , "Resource" : "*" }"#,
    ))
    .expect("valid");
    assert_eq!(
        spaced.size(),
        statement(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#)
            .chars()
            .filter(|c| !c.is_whitespace())
            .count()
    );
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Json::String),
        prop::sample::select(vec![
            "*",
            "ssm:*",
            "arn:aws:ssm:*:*:document/*",
            "Allow",
            "Deny",
            "${aws:username}",
            "${*}",
            "true",
            "10.0.0.0/8",
            "2020-01-01"
        ])
        .prop_map(|s| json!(s)),
    ];
    let names = prop::sample::select(vec![
        "Version",
        "Statement",
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "StringLike",
        "ForAnyValue:StringEquals",
        "NumericLessThanIfExists",
        "Null",
        "IpAddress",
        "DateGreaterThan",
        "ArnLike",
        "Bool",
        "BinaryEquals",
        "aws:username",
        "ssm:resourceTag/Env",
        "Principal",
        "x",
    ]);
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::btree_map(names.clone(), inner, 0..6).prop_map(|m| Json::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _outcome = Policy::parse(&text);
    }

    #[test]
    fn parsing_and_evaluating_arbitrary_json_never_panics(
        value in json_value(),
        version in prop::bool::ANY,
    ) {
        let document = if version {
            json!({"Version": "2012-10-17", "Statement": value})
        } else {
            value
        };
        if let Ok(policy) = Policy::parse(&document.to_string()) {
            let context = Context::new()
                .with("aws:username", "alice")
                .with("ssm:resourceTag/Env", "prod");
            let node = ResourceRequest::new("arn:aws:ec2:us-east-1:1:instance/i-1")
                .with_tags([("Env", "x")]);
            let _decision = evaluate([&policy], "ssm:SendCommand", &[node], &context);
        }
    }
}
