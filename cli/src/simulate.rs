//! `tagrun policy simulate`: the flags and JSON output of `aws iam simulate-custom-policy`,
//! evaluated offline with tagrun's policy engine.
//!
//! The default resource `*` is the literal resource of actions without a resource type:
//! only statements whose `Resource` is `*` (or whose `NotResource` leaves it in) apply to
//! it, as in AWS's simulator.
//!
//! Limitation: only identity-based policies are simulated; there is no
//! `--resource-policy`, and results carry no `ResourceSpecificResults`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Serialize;
use tagrun_policy::{
    Context, MatchedStatement, Policy, Position, ResourceRequest, Value, evaluate_resource,
    missing_context_keys,
};

use crate::context_entries;

/// Flags of `tagrun policy simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Policy documents to evaluate together: file paths, or `file://` paths.
    #[arg(long, num_args = 1.., required = true, value_name = "FILE")]
    policy_input_list: Vec<String>,

    /// Actions to evaluate, such as ssm:SendCommand.
    #[arg(long, num_args = 1.., required = true, value_name = "ACTION")]
    action_names: Vec<String>,

    /// Resources to evaluate each action on; `*` when left out.
    #[arg(long, num_args = 1.., value_name = "ARN")]
    resource_arns: Vec<String>,

    /// Context entries, in the aws CLI's shorthand
    /// (ContextKeyName=KEY,ContextKeyValues=V1,V2,ContextKeyType=TYPE) or JSON; the flag
    /// may be repeated and may take several entries.
    #[arg(long, num_args = 1.., action = clap::ArgAction::Append, value_name = "ENTRY")]
    context_entries: Vec<String>,

    /// The caller. tagrun derives aws:PrincipalArn, aws:PrincipalAccount,
    /// aws:PrincipalType and, for IAM users, aws:username from it, unless context entries
    /// set them.
    #[arg(long, value_name = "ARN")]
    caller_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    evaluation_results: Vec<EvaluationResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EvaluationResult {
    eval_action_name: String,
    eval_resource_name: String,
    eval_decision: &'static str,
    matched_statements: Vec<StatementOut>,
    missing_context_values: Vec<String>,
    /// Present, empty, when a resource other than `*` was evaluated (as AWS does for
    /// simulations within one account).
    #[serde(skip_serializing_if = "Option::is_none")]
    eval_decision_details: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatementOut {
    source_policy_id: String,
    start_position: PositionOut,
    end_position: PositionOut,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PositionOut {
    line: usize,
    column: usize,
}

impl From<Position> for PositionOut {
    fn from(at: Position) -> PositionOut {
        PositionOut {
            line: at.line,
            column: at.column,
        }
    }
}

impl From<&MatchedStatement> for StatementOut {
    fn from(statement: &MatchedStatement) -> StatementOut {
        StatementOut {
            source_policy_id: statement.policy.to_string(),
            start_position: statement.start.into(),
            end_position: statement.end.into(),
        }
    }
}

/// Runs the simulation and returns the JSON to print.
pub fn run(args: &SimulateArgs) -> anyhow::Result<String> {
    let policies = load_policies(&args.policy_input_list)?;
    let context = build_context(args)?;
    let resources: Vec<String> = if args.resource_arns.is_empty() {
        vec!["*".to_owned()]
    } else {
        args.resource_arns.clone()
    };

    let mut results = Vec::new();
    for action in &args.action_names {
        for arn in &resources {
            results.push(simulate_one(&policies, action, arn, &context));
        }
    }
    let output = Output {
        evaluation_results: results,
    };
    to_json(&output)
}

fn simulate_one(
    policies: &[Policy],
    action: &str,
    arn: &str,
    context: &Context,
) -> EvaluationResult {
    let resource = ResourceRequest::new(arn);
    let decision = evaluate_resource(policies, action, &resource, context);
    let matched = decision
        .resources
        .first()
        .map(|r| r.matched.iter().map(StatementOut::from).collect())
        .unwrap_or_default();

    EvaluationResult {
        eval_action_name: action.to_owned(),
        eval_resource_name: arn.to_owned(),
        eval_decision: decision.outcome.as_str(),
        matched_statements: matched,
        missing_context_values: missing_context_keys(policies, action, &resource, context),
        eval_decision_details: (arn != "*").then(BTreeMap::new),
    }
}

/// Reads and compiles each policy; they are named `PolicyInputList.N` as in AWS's output.
fn load_policies(paths: &[String]) -> anyhow::Result<Vec<Policy>> {
    paths
        .iter()
        .enumerate()
        .map(|(index, path)| {
            let path = path.strip_prefix("file://").unwrap_or(path);
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading policy file {path}"))?;
            let name = format!("PolicyInputList.{}", index + 1);
            Policy::parse_named(&name, &text)
                .with_context(|| format!("MalformedPolicyDocument in {path}"))
        })
        .collect()
}

fn build_context(args: &SimulateArgs) -> anyhow::Result<Context> {
    let mut context = Context::new();
    if let Some(caller) = &args.caller_arn {
        add_caller(&mut context, caller);
    }
    for text in &args.context_entries {
        for entry in context_entries::parse(text)? {
            entry.add_to(&mut context)?;
        }
    }
    Ok(context)
}

/// Principal keys that follow from the caller's ARN
/// (`arn:aws:iam::ACCOUNT:user/PATH/NAME` or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
fn add_caller(context: &mut Context, caller: &str) {
    context.insert("aws:PrincipalArn", Value::arn(caller));
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    let [_, _, service, _, account, resource] = parts.as_slice() else {
        return;
    };
    context.insert("aws:PrincipalAccount", *account);

    let kind = resource.split('/').next().unwrap_or_default();
    match (*service, kind) {
        ("iam", "user") => {
            context.insert("aws:PrincipalType", "User");
            if let Some(name) = resource.rsplit('/').next() {
                context.insert("aws:username", name);
            }
        }
        ("sts", "assumed-role") => {
            context.insert("aws:PrincipalType", "AssumedRole");
        }
        ("iam", "root") => {
            context.insert("aws:PrincipalType", "Account");
        }
        _ => {}
    }
}

/// Pretty JSON with four-space indentation, as the aws CLI prints it.
fn to_json(output: &Output) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    output
        .serialize(&mut serializer)
        .context("writing the results as JSON")?;
    String::from_utf8(bytes).context("writing the results as JSON")
}
