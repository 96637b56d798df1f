//! `tagrun policy simulate` run as a process, as an operator runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const DOC: &str = "arn:aws:ssm:us-east-1::document/AWS-RunShellScript";
const NODE: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";
const FINANCE_TAG: &str =
    "ContextKeyName=ssm:resourceTag/Finance,ContextKeyValues=WebServers,ContextKeyType=string";

fn seed(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join(format!("crates/policy/tests/fixtures/seeds/{name}.json"));
    path.display().to_string()
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tagrun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagrun"))
        .args(args)
        .output()
        .expect("tagrun runs")
}

/// Runs a simulation that must succeed and returns its `EvaluationResults`.
fn simulate(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["policy", "simulate"];
    all.extend_from_slice(args);
    let output = tagrun(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");

    let json: Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    json["EvaluationResults"]
        .as_array()
        .expect("EvaluationResults is an array")
        .clone()
}

fn decisions(results: &[Value]) -> Vec<(&str, &str)> {
    results
        .iter()
        .map(|r| {
            let resource = r["EvalResourceName"].as_str().unwrap_or_default();
            (resource, r["EvalDecision"].as_str().unwrap_or_default())
        })
        .collect()
}

#[test]
fn allows_the_document_and_a_node_tagged_as_the_seed_requires() {
    let policy = seed("allow-send-command-finance-webservers");

    let results = simulate(&[
        "--policy-input-list",
        &format!("file://{policy}"),
        "--action-names",
        "ssm:SendCommand",
        "--resource-arns",
        DOC,
        NODE,
        "--context-entries",
        FINANCE_TAG,
    ]);

    assert_eq!(decisions(&results), [(DOC, "allowed"), (NODE, "allowed")]);
    let matched = &results[1]["MatchedStatements"][0];
    assert_eq!(matched["SourcePolicyId"], "PolicyInputList.1");
    assert_eq!(matched["StartPosition"]["Line"], 13);
    assert_eq!(results[1]["EvalDecisionDetails"], serde_json::json!({}));
}

#[test]
fn denies_an_untagged_node_and_names_the_missing_context_key() {
    let policy = seed("allow-send-command-finance-webservers");

    let results = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:SendCommand",
        "--resource-arns",
        NODE,
    ]);

    assert_eq!(decisions(&results), [(NODE, "implicitDeny")]);
    assert_eq!(results[0]["MatchedStatements"], serde_json::json!([]));
    assert_eq!(
        results[0]["MissingContextValues"],
        serde_json::json!(["ssm:resourceTag/Finance"])
    );
}

#[test]
fn takes_several_entries_after_one_flag_and_repeated_flags() {
    let policy = seed("allow-send-command-two-tags");
    let key1 = "ContextKeyName=ssm:resourceTag/tag_key1,ContextKeyValues=tag_value1";
    let key2 = "ContextKeyName=ssm:resourceTag/tag_key2,ContextKeyValues=tag_value2";

    let one_flag = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:SendCommand",
        "--resource-arns",
        NODE,
        "--context-entries",
        key1,
        key2,
    ]);
    let two_flags = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:SendCommand",
        "--resource-arns",
        NODE,
        "--context-entries",
        key1,
        "--context-entries",
        key2,
    ]);
    let only_one = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:SendCommand",
        "--resource-arns",
        NODE,
        "--context-entries",
        key1,
    ]);

    assert_eq!(decisions(&one_flag), [(NODE, "allowed")]);
    assert_eq!(decisions(&two_flags), [(NODE, "allowed")]);
    assert_eq!(decisions(&only_one), [(NODE, "implicitDeny")]);
}

#[test]
fn reads_list_values_for_list_types() {
    let policy = fixture("tag-keys-allowed.json");
    let entry = |values: &str| {
        format!("ContextKeyName=aws:TagKeys,ContextKeyValues={values},ContextKeyType=stringList")
    };

    let within = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:AddTagsToResource",
        "--context-entries",
        &entry("Env,Team"),
    ]);
    let outside = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:AddTagsToResource",
        "--context-entries",
        &entry("Env,Owner"),
    ]);

    assert_eq!(decisions(&within), [("*", "allowed")]);
    assert_eq!(decisions(&outside), [("*", "implicitDeny")]);
}

#[test]
fn reports_each_action_on_each_resource_defaulting_to_star() {
    let policy = seed("allow-send-command-two-tags");

    let results = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "ssm:ListCommands",
        "ssm:CancelCommand",
    ]);

    assert_eq!(
        decisions(&results),
        [("*", "allowed"), ("*", "implicitDeny")]
    );
    assert_eq!(results[0]["EvalActionName"], "ssm:ListCommands");
    assert!(results[0].get("EvalDecisionDetails").is_none());
}

#[test]
fn matches_the_aws_cli_example_output() {
    let results = simulate(&[
        "--policy-input-list",
        &fixture("dynamodb-after-date.json"),
        "--action-names",
        "dynamodb:CreateBackup",
        "--context-entries",
        concat!(
            "ContextKeyName='aws:CurrentTime',",
            "ContextKeyValues='2019-04-25T11:00:00Z',ContextKeyType=date"
        ),
    ]);

    let expected = serde_json::json!({
        "EvalActionName": "dynamodb:CreateBackup",
        "EvalResourceName": "*",
        "EvalDecision": "allowed",
        "MatchedStatements": [{
            "SourcePolicyId": "PolicyInputList.1",
            "StartPosition": {"Line": 1, "Column": 38},
            "EndPosition": {"Line": 1, "Column": 167}
        }],
        "MissingContextValues": []
    });
    assert_eq!(results, [expected]);
}

#[test]
fn explicit_deny_and_caller_derived_username() {
    let policy = fixture("home-prefix-deny-delete.json");
    let alice = "arn:aws:iam::123456789012:user/staff/alice";
    let own = "arn:aws:s3:::home/alice/notes.txt";
    let other = "arn:aws:s3:::home/bob/notes.txt";

    let results = simulate(&[
        "--policy-input-list",
        &policy,
        "--action-names",
        "s3:GetObject",
        "s3:DeleteObject",
        "--resource-arns",
        own,
        other,
        "--caller-arn",
        alice,
    ]);

    assert_eq!(
        decisions(&results),
        [
            (own, "allowed"),
            (other, "implicitDeny"),
            (own, "explicitDeny"),
            (other, "explicitDeny")
        ]
    );
}

#[test]
fn malformed_policy_exits_2_with_the_reason() {
    let output = tagrun(&[
        "policy",
        "simulate",
        "--policy-input-list",
        &fixture("malformed-effect.json"),
        "--action-names",
        "ssm:SendCommand",
    ]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("MalformedPolicyDocument"), "{stderr}");
    assert!(
        stderr.contains("Statement[0].Effect at line 4, column 19"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn bad_flags_and_files_exit_2() {
    let policy = seed("allow-send-command-two-tags");
    let runs = [
        vec!["policy", "simulate", "--action-names", "ssm:SendCommand"],
        vec![
            "policy",
            "simulate",
            "--policy-input-list",
            "/nonexistent/p.json",
            "--action-names",
            "x:Y",
        ],
        vec![
            "policy",
            "simulate",
            "--policy-input-list",
            &policy,
            "--action-names",
            "ssm:X",
            "--context-entries",
            "ContextKeyName=aws:SourceIp,ContextKeyValues=nope,ContextKeyType=ip",
        ],
        vec![
            "policy",
            "simulate",
            "--policy-input-list",
            &policy,
            "--action-names",
            "ssm:X",
            "--context-entries",
            "Colour=red",
        ],
        vec!["policy", "simulate", "--policy-input-list", &policy],
    ];

    for args in runs {
        let output = tagrun(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}
