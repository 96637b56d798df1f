//! One authorization decision against a compiled 10-statement policy with tag
//! conditions, as the server makes it for each node of a command.

use std::hint::black_box;

use criterion::Criterion;
use tagrun_policy::{Context, Policy, ResourceRequest, evaluate, evaluate_resource};

const POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Documents", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": ["arn:aws:ssm:*:*:document/*", "arn:aws:ssm:*::document/AWS-*"]},
        {"Sid": "FinanceWeb", "Effect": "Allow", "Action": "ssm:SendCommand",
         "Resource": "arn:aws:ec2:*:*:instance/*",
         "Condition": {"StringLike": {"ssm:resourceTag/Finance": ["WebServers"]}}},
        {"Sid": "TwoTags", "Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*",
         "Condition": {"StringLike": {"ssm:resourceTag/tag_key1": "tag_value1",
                                      "ssm:resourceTag/tag_key2": "tag_value2"}}},
        {"Sid": "TeamNodes", "Effect": "Allow", "Action": ["ssm:SendCommand", "ssm:CancelCommand"],
         "Resource": "arn:aws:ssm:*:*:managed-instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/Team": "${aws:PrincipalTag/team}"}}},
        {"Sid": "NoProdAtNight", "Effect": "Deny", "Action": "ssm:SendCommand", "Resource": "*",
         "Condition": {"StringEquals": {"ssm:resourceTag/Env": "prod"},
                       "DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
        {"Sid": "NoQuarantined", "Effect": "Deny", "Action": "ssm:*", "Resource": "*",
         "Condition": {"StringEqualsIgnoreCase": {"aws:ResourceTag/Quarantine": "true"}}},
        {"Sid": "Office", "Effect": "Deny", "Action": "ssm:*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]},
                       "Bool": {"aws:ViaAWSService": "false"}}},
        {"Sid": "Read", "Effect": "Allow",
         "Action": ["ssm:Describe*", "ssm:Get*", "ssm:List*"], "Resource": "*"},
        {"Sid": "Tls", "Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "Owners", "Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*",
         "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalTag/roles": ["ops-*", "admin"]}}}
    ]
}"#;

fn request_context() -> Context {
    let mut context = Context::new();
    context
        .insert_string("aws:username", "alice")
        .insert_string("aws:PrincipalTag/team", "finance")
        .insert_bool("aws:SecureTransport", true)
        .insert_bool("aws:ViaAWSService", false)
        .insert_ip("aws:SourceIp", [10, 1, 2, 3].into())
        .insert(
            "aws:CurrentTime",
            tagrun_policy::Value::Date(1_767_225_600_000),
        );
    context
}

const NODE: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";
const TAGS: [(&str, &str); 3] = [
    ("Finance", "WebServers"),
    ("Env", "prod"),
    ("Name", "web-1"),
];

fn decision(c: &mut Criterion) {
    let policy = Policy::parse(POLICY).expect("bench policy parses");
    assert_eq!(policy.statement_count(), 10);
    let context = request_context();
    let node = ResourceRequest::new(NODE).with_tags(TAGS);
    assert!(evaluate_resource([&policy], "ssm:SendCommand", &node, &context).is_allowed());

    c.bench_function("decision_10_statements_tag_conditions", |b| {
        b.iter(|| {
            let decision = evaluate_resource(
                [black_box(&policy)],
                black_box("ssm:SendCommand"),
                black_box(&node),
                black_box(&context),
            );
            black_box(decision.is_allowed())
        });
    });

    c.bench_function("decision_including_node_tags", |b| {
        b.iter(|| {
            let node = ResourceRequest::new(black_box(NODE)).with_tags(black_box(TAGS));
            let decision = evaluate([black_box(&policy)], "ssm:SendCommand", &[node], &context);
            black_box(decision.is_allowed())
        });
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    decision(&mut criterion);
    criterion.final_summary();
}
