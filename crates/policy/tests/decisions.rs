//! How statements combine into decisions, how decisions explain themselves, and AWS's
//! AccessDenied wording.

use tagrun_policy::{
    Context, Decision, Effect, Outcome, Policy, Position, ResourceRequest, access_denied_message,
    evaluate, evaluate_resource, evaluate_without_resource, missing_context_keys,
};

const USER: &str = "arn:aws:iam::123456789012:user/alice";
const DOC: &str = "arn:aws:ssm:us-east-1::document/AWS-RunShellScript";
const NODE: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";

fn policy(statements: &str) -> Policy {
    let text = format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#);
    Policy::parse_named("test", &text).expect("test policy parses")
}

fn on(policy: &Policy, action: &str, arn: &str, context: &Context) -> Outcome {
    evaluate_resource([policy], action, &ResourceRequest::new(arn), context).outcome
}

#[test]
fn explicit_deny_wins_over_allow_in_any_order_and_policy() {
    let allow = policy(r#"{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}"#);
    let deny = policy(r#"{"Effect": "Deny", "Action": "ssm:SendCommand", "Resource": "*"}"#);

    let decision = evaluate([&deny, &allow], "ssm:SendCommand", &[], &Context::new());

    assert_eq!(decision.outcome, Outcome::ExplicitDeny);
    assert_eq!(decision.resources[0].matched[0].effect, Effect::Deny);
    assert!(evaluate([&allow, &deny], "ssm:ListCommands", &[], &Context::new()).is_allowed());
}

#[test]
fn nothing_allowed_is_an_implicit_deny() {
    let decision = evaluate_without_resource(&[] as &[Policy], "ssm:ListCommands", &Context::new());

    assert_eq!(decision.outcome, Outcome::ImplicitDeny);
    assert!(decision.resources[0].matched.is_empty());
}

#[test]
fn actions_ignore_case_and_take_wildcards() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": ["SSM:Send*", "ec2:Describe?nstances"], "Resource": "*"}"#,
    );
    let none = Context::new();

    assert_eq!(on(&p, "ssm:sendcommand", NODE, &none), Outcome::Allowed);
    assert_eq!(
        on(&p, "ec2:DescribeInstances", NODE, &none),
        Outcome::Allowed
    );
    assert_eq!(
        on(&p, "ssm:ListCommands", NODE, &none),
        Outcome::ImplicitDeny
    );
}

#[test]
fn not_action_and_not_resource_cover_everything_else() {
    let p = policy(
        r#"{"Effect": "Allow", "NotAction": "ssm:SendCommand", "Resource": "*"},
           {"Effect": "Allow", "Action": "ssm:SendCommand",
            "NotResource": "arn:aws:ec2:*:*:instance/*"}"#,
    );
    let none = Context::new();

    assert_eq!(on(&p, "ssm:ListCommands", NODE, &none), Outcome::Allowed);
    assert_eq!(on(&p, "ssm:SendCommand", DOC, &none), Outcome::Allowed);
    assert_eq!(
        on(&p, "ssm:SendCommand", NODE, &none),
        Outcome::ImplicitDeny
    );
}

#[test]
fn not_action_with_deny_denies_everything_not_listed() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "*", "Resource": "*"},
           {"Effect": "Deny", "NotAction": ["ssm:Get*", "ssm:List*"], "Resource": "*"}"#,
    );

    assert!(evaluate_without_resource([&p], "ssm:GetDocument", &Context::new()).is_allowed());
    assert!(evaluate_without_resource([&p], "ssm:SendCommand", &Context::new()).is_explicit_deny());
}

#[test]
fn keys_and_operators_in_one_condition_must_all_hold() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*", "Condition": {
             "StringEquals": {"ssm:resourceTag/Env": "prod", "ssm:resourceTag/Team": "web"},
             "Bool": {"aws:SecureTransport": "true"}}}"#,
    );
    let secure = Context::new().with("aws:SecureTransport", true);
    let both = ResourceRequest::new(NODE).with_tags([("Env", "prod"), ("Team", "web")]);
    let one = ResourceRequest::new(NODE).with_tags([("Env", "prod")]);

    assert!(
        evaluate(
            [&p],
            "ssm:SendCommand",
            std::slice::from_ref(&both),
            &secure
        )
        .is_allowed()
    );
    assert!(!evaluate([&p], "ssm:SendCommand", &[one], &secure).is_allowed());
    assert!(!evaluate([&p], "ssm:SendCommand", &[both], &Context::new()).is_allowed());
}

#[test]
fn deny_with_a_negated_if_exists_operator_still_denies_when_the_key_is_absent() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*"},
           {"Effect": "Deny", "Action": "ssm:SendCommand", "Resource": "*",
            "Condition": {"StringNotEqualsIfExists": {"ssm:resourceTag/Env": "dev"}}}"#,
    );
    let untagged = ResourceRequest::new(NODE);
    let dev = ResourceRequest::new(NODE).with_tags([("Env", "dev")]);
    let prod = ResourceRequest::new(NODE).with_tags([("Env", "prod")]);
    let none = Context::new();

    assert!(evaluate([&p], "ssm:SendCommand", &[dev], &none).is_allowed());
    assert!(evaluate([&p], "ssm:SendCommand", &[prod], &none).is_explicit_deny());
    assert!(evaluate([&p], "ssm:SendCommand", &[untagged], &none).is_explicit_deny());
}

#[test]
fn tag_keys_differing_only_in_case_both_answer_to_the_condition_key() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}"#,
    );
    let node = ResourceRequest::new(NODE).with_tags([("Env", "dev"), ("ENV", "prod")]);

    assert!(evaluate([&p], "ssm:SendCommand", &[node], &Context::new()).is_allowed());
}

#[test]
fn request_context_applies_to_every_resource_and_resource_entries_win() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*",
            "Condition": {"StringEquals": {"ssm:resourceTag/Env": "prod"}}}"#,
    );
    let request = Context::new().with("ssm:resourceTag/Env", "prod");
    let plain = ResourceRequest::new(DOC);
    let dev = ResourceRequest::new(NODE).with_tags([("env", "dev")]);

    let decision = evaluate([&p], "ssm:SendCommand", &[plain, dev], &request);

    assert_eq!(decision.resources[0].outcome, Outcome::Allowed);
    assert_eq!(decision.failed, Some(1));
}

#[test]
fn resource_variables_match_per_principal_and_match_nothing_without_a_value() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::home/${aws:username}/*"}"#,
    );
    let alice = Context::new().with("aws:username", "alice");

    assert_eq!(
        on(&p, "s3:GetObject", "arn:aws:s3:::home/alice/a.txt", &alice),
        Outcome::Allowed
    );
    assert_eq!(
        on(&p, "s3:GetObject", "arn:aws:s3:::home/bob/a.txt", &alice),
        Outcome::ImplicitDeny
    );
    let literal = "arn:aws:s3:::home/${aws:username}/a.txt";
    assert_eq!(
        on(&p, "s3:GetObject", literal, &Context::new()),
        Outcome::ImplicitDeny
    );
}

#[test]
fn resource_variables_are_literal_under_the_2008_version() {
    let text = r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow",
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#;
    let p = Policy::parse(text).expect("valid");
    let alice = Context::new().with("aws:username", "alice");

    let literal = "arn:aws:s3:::home/${aws:username}/a.txt";
    assert_eq!(on(&p, "s3:GetObject", literal, &alice), Outcome::Allowed);
    assert_eq!(
        on(&p, "s3:GetObject", "arn:aws:s3:::home/alice/a", &alice),
        Outcome::ImplicitDeny
    );
}

#[test]
fn the_first_resource_that_fails_decides_and_is_named() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "ssm:SendCommand",
            "Resource": "arn:aws:ssm:*:*:document/*"}"#,
    );
    let resources = [ResourceRequest::new(DOC), ResourceRequest::new(NODE)];

    let decision = evaluate([&p], "ssm:SendCommand", &resources, &Context::new());

    assert_eq!(
        decision.failed_resource().map(|r| r.resource.as_str()),
        Some(NODE)
    );
    assert_eq!(
        decision.access_denied_message(USER, "ssm:SendCommand"),
        format!(
            "User: {USER} is not authorized to perform: ssm:SendCommand on resource: {NODE} \
             because no identity-based policy allows the ssm:SendCommand action"
        )
    );
}

#[test]
fn explicit_deny_message_has_aws_wording() {
    let p = policy(r#"{"Effect": "Deny", "Action": "ssm:*", "Resource": "*"}"#);
    let decision = evaluate(
        [&p],
        "ssm:SendCommand",
        &[ResourceRequest::new(DOC)],
        &Context::new(),
    );

    let message = access_denied_message(USER, "ssm:SendCommand", Some(DOC), &decision);

    assert_eq!(
        message,
        format!(
            "User: {USER} is not authorized to perform: ssm:SendCommand on resource: {DOC} \
             with an explicit deny in an identity-based policy"
        )
    );
}

#[test]
fn messages_without_a_resource_leave_the_resource_clause_out() {
    let deny = policy(r#"{"Effect": "Deny", "Action": "ssm:ListCommands", "Resource": "*"}"#);
    let implicit: Decision =
        evaluate_without_resource(&[] as &[Policy], "ssm:ListCommands", &Context::new());
    let explicit = evaluate_without_resource([&deny], "ssm:ListCommands", &Context::new());

    assert_eq!(
        implicit.access_denied_message(USER, "ssm:ListCommands"),
        format!(
            "User: {USER} is not authorized to perform: ssm:ListCommands because no \
             identity-based policy allows the ssm:ListCommands action"
        )
    );
    assert_eq!(
        explicit.access_denied_message(USER, "ssm:ListCommands"),
        format!(
            "User: {USER} is not authorized to perform: ssm:ListCommands with an explicit deny \
             in an identity-based policy"
        )
    );
}

#[test]
fn matched_statements_carry_name_sid_and_simulator_positions() {
    // The example of `aws iam simulate-custom-policy` in the aws CLI's documentation,
    // whose output places the statement at line 1, columns 38 to 167.
    let text = concat!(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","#,
        r#""Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"#,
        r#""2018-08-16T12:00:00Z"}}}}"#
    );
    let p = Policy::parse_named("PolicyInputList.1", text).expect("valid");
    let context = Context::new().with("aws:CurrentTime", "2019-04-25T11:00:00Z");

    let decision = evaluate_without_resource([&p], "dynamodb:CreateBackup", &context);

    let matched = &decision.resources[0].matched[0];
    assert_eq!(&*matched.policy, "PolicyInputList.1");
    assert_eq!(
        matched.start,
        Position {
            line: 1,
            column: 38
        }
    );
    assert_eq!(
        matched.end,
        Position {
            line: 1,
            column: 167
        }
    );
}

#[test]
fn decisions_explain_themselves_in_one_line() {
    let p = policy(
        r#"{"Sid": "Docs", "Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*"}"#,
    );

    let allowed = evaluate(
        [&p],
        "ssm:SendCommand",
        &[ResourceRequest::new(DOC)],
        &Context::new(),
    );
    let denied = evaluate(
        [&p],
        "ssm:GetDocument",
        &[ResourceRequest::new(DOC)],
        &Context::new(),
    );

    assert_eq!(
        allowed.to_string(),
        format!("allowed on {DOC}: allowed by test statement 1 (Docs)")
    );
    assert_eq!(
        denied.to_string(),
        format!("implicitDeny on {DOC}: no statement allows it")
    );
}

#[test]
fn lists_condition_keys_the_request_lacks() {
    let p = policy(
        r#"{"Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*",
            "Condition": {"StringLike": {"ssm:resourceTag/Finance": "Web*"},
                          "Bool": {"aws:SecureTransport": "true"}}}"#,
    );
    let context = Context::new().with("aws:securetransport", true);

    let missing = missing_context_keys(
        [&p],
        "ssm:SendCommand",
        &ResourceRequest::new(NODE),
        &context,
    );

    assert_eq!(missing, ["ssm:resourceTag/Finance"]);
}

#[test]
fn policies_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Context>();
    assert_send_sync::<Decision>();
}
