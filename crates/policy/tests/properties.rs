//! Properties that tie the operators together: a negated operator is the complement of
//! its positive form when the key is present, `IfExists` changes nothing when the key is
//! present, and no mix of policy and request values makes evaluation panic.

use std::net::IpAddr;

use proptest::prelude::*;
use tagrun_policy::{Context, Policy, ResourceRequest, Value, evaluate};

const PAIRS: [(&str, &str); 7] = [
    ("StringEquals", "StringNotEquals"),
    ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"),
    ("StringLike", "StringNotLike"),
    ("NumericEquals", "NumericNotEquals"),
    ("DateEquals", "DateNotEquals"),
    ("IpAddress", "NotIpAddress"),
    ("ArnLike", "ArnNotLike"),
];

/// Whether a one-condition Allow policy allows the request; `None` when the policy
/// values do not suit the operator (the document is rejected).
fn allows(operator: &str, values: &[String], request: Option<&Value>) -> Option<bool> {
    let values = serde_json::to_string(values).expect("strings serialize");
    let document = format!(
        r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Action": "t:Do",
            "Resource": "*", "Condition": {{"{operator}": {{"t:key": {values}}}}}}}}}"#
    );
    let policy = Policy::parse(&document).ok()?;
    let mut context = Context::new();
    if let Some(value) = request {
        context.insert("T:Key", value.clone());
    }
    let node = ResourceRequest::new("arn:aws:ec2:us-east-1:1:instance/i-1");
    Some(evaluate([&policy], "t:Do", &[node], &context).is_allowed())
}

fn policy_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[aA*?]{0,4}",
        "[0-9]{1,3}(\\.[0-9])?",
        Just("2020-01-01T00:00:00Z".to_owned()),
        Just("10.0.0.0/8".to_owned()),
        Just("arn:aws:iam::*:role/a*".to_owned()),
        Just("${aws:username}".to_owned()),
    ]
}

fn request_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        "[aA*]{0,4}".prop_map(Value::String),
        (0u8..200).prop_map(|n| Value::Number(f64::from(n) / 2.0)),
        any::<bool>().prop_map(Value::Bool),
        (0i64..3).prop_map(|d| Value::Date(1_577_836_800_000 + d * 1000)),
        any::<[u8; 4]>().prop_map(|ip| Value::Ip(IpAddr::from(ip))),
        Just(Value::arn("arn:aws:iam::1:role/abc")),
        prop::collection::vec(any::<u8>(), 0..4).prop_map(Value::Binary),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar, 0..3).prop_map(Value::List),
    ]
}

proptest! {
    #[test]
    fn negated_operators_complement_their_positive_form(
        pair in prop::sample::select(PAIRS.to_vec()),
        values in prop::collection::vec(policy_value(), 1..3),
        request in request_value(),
    ) {
        // With several request values the negated form is NOR over all of them, which is
        // the complement of the positive form's OR as well.
        let positive = allows(pair.0, &values, Some(&request));
        let negated = allows(pair.1, &values, Some(&request));
        let empty_list = matches!(&request, Value::List(items) if items.is_empty());
        if let (Some(positive), Some(negated), false) = (positive, negated, empty_list) {
            prop_assert_ne!(positive, negated);
        }
    }

    #[test]
    fn if_exists_changes_nothing_when_the_key_is_present(
        pair in prop::sample::select(PAIRS.to_vec()),
        values in prop::collection::vec(policy_value(), 1..3),
        request in request_value(),
        negated in any::<bool>(),
    ) {
        let operator = if negated { pair.1 } else { pair.0 };
        let empty_list = matches!(&request, Value::List(items) if items.is_empty());
        let plain = allows(operator, &values, Some(&request));
        let if_exists = allows(&format!("{operator}IfExists"), &values, Some(&request));
        if !empty_list {
            prop_assert_eq!(plain, if_exists);
        }
    }

    #[test]
    fn set_operators_agree_on_single_values(
        pair in prop::sample::select(PAIRS.to_vec()),
        values in prop::collection::vec(policy_value(), 1..3),
        request in request_value(),
    ) {
        prop_assume!(!matches!(request, Value::List(_)));
        let plain = allows(pair.0, &values, Some(&request));
        let all = allows(&format!("ForAllValues:{}", pair.0), &values, Some(&request));
        let any = allows(&format!("ForAnyValue:{}", pair.0), &values, Some(&request));

        prop_assert_eq!(plain, all);
        prop_assert_eq!(plain, any);
    }

    #[test]
    fn any_operator_on_any_value_never_panics(
        operator in prop::sample::select(vec![
            "Bool", "BinaryEquals", "Null", "NumericLessThan", "DateGreaterThanEquals",
            "ForAnyValue:StringLike", "ForAllValues:ArnEquals", "NotIpAddressIfExists",
        ]),
        values in prop::collection::vec(policy_value(), 1..3),
        request in prop::option::of(request_value()),
    ) {
        let _outcome = allows(operator, &values, request.as_ref());
    }
}
