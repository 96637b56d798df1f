use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::content::DocumentFormat;

fn document(value: Value) -> Document {
    Document::parse(&value.to_string(), DocumentFormat::Json).expect("valid document")
}

fn supplied(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

fn plan_on(document: &Document, pairs: &[(&str, &[&str])], platform: Platform) -> Plan {
    let parameters = document
        .validate_parameters(&supplied(pairs))
        .expect("valid parameters");
    document.plan(&parameters, platform).expect("plan")
}

fn scripts(step: &PlanStep) -> &[Script] {
    match &step.action {
        StepAction::Run { scripts } => scripts,
        other => panic!("step {} does not run: {other:?}", step.name),
    }
}

fn reason(step: &PlanStep) -> &str {
    match &step.action {
        StepAction::Skip { reason } | StepAction::Fail { reason } => reason,
        StepAction::Run { .. } => panic!("step {} runs", step.name),
    }
}

fn step_22(inputs: Value) -> Document {
    document(json!({"schemaVersion": "2.2", "parameters": {
            "commands": {"type": "StringList", "default": ["echo a", "echo b"]},
            "dir": {"type": "String", "default": "/srv"},
            "timeout": {"type": "String", "default": "60"}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "run", "inputs": inputs}]}))
}

#[test]
fn splices_a_string_list_into_run_command_as_lines() {
    let doc = step_22(json!({"runCommand": ["set -e", "{{ commands }}", "echo done"]}));

    let plan = plan_on(&doc, &[], Platform::Linux);

    assert_eq!(
        scripts(&plan.steps[0])[0].commands,
        ["set -e", "echo a", "echo b", "echo done"]
    );
}

#[test]
fn takes_a_whole_run_command_from_a_string_list() {
    let doc = step_22(json!({"runCommand": "{{ commands }}"}));

    let plan = plan_on(&doc, &[("commands", &["one", "two"])], Platform::Linux);

    assert_eq!(scripts(&plan.steps[0])[0].commands, ["one", "two"]);
}

#[test]
fn embeds_a_string_list_inside_a_line_as_json() {
    let doc = step_22(json!({"runCommand": ["echo {{ commands }}"]}));

    let plan = plan_on(&doc, &[], Platform::Linux);

    assert_eq!(
        scripts(&plan.steps[0])[0].commands,
        [r#"echo ["echo a","echo b"]"#]
    );
}

#[test]
fn keeps_a_multi_line_run_command_string_as_one_entry() {
    let doc = step_22(json!({"runCommand": "echo a\necho b"}));

    let plan = plan_on(&doc, &[], Platform::MacOS);
    let script = &scripts(&plan.steps[0])[0];

    assert_eq!(script.commands, ["echo a\necho b"]);
    assert_eq!(script.text(), "echo a\necho b\n");
}

#[test]
fn resolves_working_directory_timeout_and_environment() {
    let doc = step_22(
        json!({"runCommand": ["ls"], "workingDirectory": "{{ dir }}",
        "timeoutSeconds": "{{ timeout }}", "environment": {"MODE": "{{ dir }}", "N": 3}}),
    );

    let plan = plan_on(&doc, &[], Platform::Linux);
    let script = &scripts(&plan.steps[0])[0];

    assert_eq!(script.working_directory, "/srv");
    assert_eq!(script.timeout_seconds, 60);
    assert_eq!(script.shell, Shell::Sh);
    assert_eq!(script.id, "");
    let environment: Vec<_> = script
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(environment, [("MODE", "/srv"), ("N", "3")]);
}

#[test]
fn applies_the_timeout_rules() {
    let cases = [
        (None, 3600),
        (Some(json!("")), 3600),
        (Some(json!("5")), 5),
        (Some(json!("4")), 3600),
        (Some(json!(" 900 ")), 900),
        (Some(json!(172_800)), 172_800),
        (Some(json!(172_801)), 3600),
        (Some(json!("90.9")), 90),
        (Some(json!(12.5)), 12),
        (Some(json!("-10")), 3600),
        (Some(json!("ten")), 3600),
        (Some(json!(true)), 3600),
        (Some(json!(-1)), 3600),
        (Some(json!(1e300)), 3600),
    ];

    for (input, expected) in cases {
        assert_eq!(timeout_seconds(input.as_ref()), expected, "{input:?}");
    }
}

#[test]
fn evaluates_platform_preconditions() {
    let value: Value = json!({"schemaVersion": "2.2", "mainSteps": [
        {"action": "aws:runShellScript", "name": "linux", "inputs": {"runCommand": "uname"},
         "precondition": {"StringEquals": ["platformType", "Linux"]}},
        {"action": "aws:runPowerShellScript", "name": "windows", "inputs": {"runCommand": "ver"},
         "precondition": {"StringEquals": ["platformType", "windows"]}}]});
    let doc = document(value);

    let linux = plan_on(&doc, &[], Platform::Linux);
    let windows = plan_on(&doc, &[], Platform::Windows);

    assert!(linux.steps[0].precondition_met);
    assert!(!linux.steps[1].precondition_met);
    assert!(reason(&linux.steps[1]).starts_with("Step execution skipped due to unsatisfied"));
    assert!(!windows.steps[0].precondition_met);
    assert_eq!(scripts(&windows.steps[1])[0].shell, Shell::PowerShell);
}

#[test]
fn evaluates_preconditions_on_parameters() {
    let doc = document(json!({"schemaVersion": "2.2",
        "parameters": {"mode": {"type": "String", "default": "full"}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": "ls"},
            "precondition": {"StringEquals": ["{{ mode }}", "full"]}}]}));

    assert!(plan_on(&doc, &[], Platform::Linux).steps[0].precondition_met);
    assert!(!plan_on(&doc, &[("mode", &["quick"])], Platform::Linux).steps[0].precondition_met);
}

#[test]
fn skips_shell_steps_on_windows_in_schema_2_2_and_fails_them_before() {
    let step = json!({"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": "ls"}});
    let v22 = document(json!({"schemaVersion": "2.2", "mainSteps": [step.clone()]}));
    let v20 = document(json!({"schemaVersion": "2.0", "mainSteps": [step]}));

    let skipped = plan_on(&v22, &[], Platform::Windows);
    let failed = plan_on(&v20, &[], Platform::Windows);

    assert!(matches!(skipped.steps[0].action, StepAction::Skip { .. }));
    assert!(skipped.steps[0].precondition_met);
    assert_eq!(
        reason(&failed.steps[0]),
        "plugin aws:runShellScript does not run on Windows"
    );
    assert!(matches!(failed.steps[0].action, StepAction::Fail { .. }));
}

#[test]
fn fails_plugins_that_tagrun_does_not_run() {
    let doc = document(json!({"schemaVersion": "2.2", "mainSteps": [
        {"action": "aws:downloadContent", "name": "get", "inputs": {"sourceType": "S3"}}]}));

    let plan = plan_on(&doc, &[], Platform::Linux);

    assert_eq!(
        reason(&plan.steps[0]),
        "plugin aws:downloadContent is not supported by tagrun yet"
    );
    assert!(matches!(plan.steps[0].action, StepAction::Fail { .. }));
}

#[test]
fn reads_control_flow_from_inputs() {
    let doc = document(json!({"schemaVersion": "2.2", "mainSteps": [
        {"action": "aws:runShellScript", "name": "a",
         "inputs": {"runCommand": "ls", "onFailure": "successAndExit", "finallyStep": true}},
        {"action": "aws:runShellScript", "name": "b",
         "inputs": {"runCommand": "ls", "onSuccess": "exit", "onFailure": "exit"}},
        {"action": "aws:runShellScript", "name": "c",
         "inputs": {"runCommand": "ls", "finallyStep": "true"}}]}));

    let steps = plan_on(&doc, &[], Platform::Linux).steps;

    assert_eq!(steps[0].on_failure, Some(OnFailure::SuccessAndExit));
    assert!(
        !steps[0].finally_step,
        "finallyStep counts on the last step only"
    );
    assert_eq!(steps[1].on_success, Some(OnSuccess::Exit));
    assert_eq!(steps[1].on_failure, Some(OnFailure::Exit));
    assert!(steps[2].finally_step);
}

#[test]
fn runs_each_property_entry_of_a_1_2_plugin_in_turn() {
    let doc = document(
        json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runShellScript": {
        "properties": [{"runCommand": ["echo one"], "timeoutSeconds": "30"},
                       {"id": "second", "runCommand": "echo two"}]}}}),
    );

    let plan = plan_on(&doc, &[], Platform::Linux);

    let runs = scripts(&plan.steps[0]);
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].id.as_str(), runs[0].timeout_seconds),
        ("0.aws:runShellScript", 30)
    );
    assert_eq!(
        (runs[1].id.as_str(), runs[1].commands[0].as_str()),
        ("second", "echo two")
    );
}

#[test]
fn takes_1_2_properties_from_a_map_list_parameter() {
    let doc = document(json!({"schemaVersion": "1.2",
        "parameters": {"properties": {"type": "MapList"}},
        "runtimeConfig": {"aws:runShellScript": {"properties": "{{ properties }}"}}}));

    let plan = plan_on(
        &doc,
        &[("properties", &[r#"{"runCommand":["id"]}"#])],
        Platform::Linux,
    );
    let wrong = plan_on(&doc, &[("properties", &["{}"])], Platform::Linux);

    assert_eq!(scripts(&plan.steps[0])[0].commands, ["id"]);
    assert_eq!(reason(&wrong.steps[0]), "the step has no runCommand input");
}

#[test]
fn fails_a_step_whose_inputs_interpolate_to_the_wrong_type() {
    let doc = document(json!({"schemaVersion": "2.2",
        "parameters": {"env": {"type": "StringList", "default": ["A=1"]}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "a",
            "inputs": {"runCommand": "env", "environment": "{{ env }}"}}]}));

    let plan = plan_on(&doc, &[], Platform::Linux);

    assert_eq!(
        reason(&plan.steps[0]),
        "the environment input is not an object"
    );
}

#[test]
fn refuses_to_plan_without_a_value_for_every_parameter() {
    let doc = step_22(json!({"runCommand": "{{ commands }}"}));

    let err = doc
        .plan(&ResolvedParameters::default(), Platform::Linux)
        .expect_err("missing");

    assert_eq!(err.code(), "InvalidParameters");
}

fn run_document(inputs: Value) -> Document {
    document(json!({"schemaVersion": "2.2",
        "parameters": {"script": {"type": "String", "default": "uptime"}},
        "mainSteps": [{"action": "aws:runDocument", "name": "nested", "inputs": inputs}]}))
}

#[test]
fn expands_run_document_into_the_built_in_documents_script() {
    let doc = run_document(json!({"documentType": "SSMDocument",
        "documentPath": "AWS-RunShellScript",
        "documentParameters": {"commands": ["{{ script }}", "date"], "executionTimeout": "120"}}));

    let plan = plan_on(&doc, &[], Platform::Linux);

    assert_eq!(plan.steps[0].name, "nested");
    assert_eq!(plan.steps[0].plugin, "aws:runDocument");
    let script = &scripts(&plan.steps[0])[0];
    assert_eq!(script.commands, ["uptime", "date"]);
    assert_eq!(script.timeout_seconds, 120);
    assert_eq!(script.shell, Shell::Sh);
}

#[test]
fn reads_run_document_parameters_given_as_json_text() {
    let doc = run_document(json!({"documentType": "SSMDocument",
        "documentPath": "AWS-RunPowerShellScript",
        "documentParameters": "{\"commands\": \"Get-Date\"}"}));

    let plan = plan_on(&doc, &[], Platform::Windows);

    assert_eq!(scripts(&plan.steps[0])[0].commands, ["Get-Date"]);
    assert_eq!(scripts(&plan.steps[0])[0].shell, Shell::PowerShell);
}

#[test]
fn fails_run_document_steps_it_cannot_expand() {
    let cases = [
        (
            json!({"documentType": "SSMDocument", "documentPath": "My-Document"}),
            "\"My-Document\"",
        ),
        (
            json!({"documentType": "LocalPath", "documentPath": "/tmp/doc.json"}),
            "LocalPath",
        ),
        (
            json!({"documentType": "SSMDocument", "documentPath": "AWS-RunShellScript"}),
            "required parameter \"commands\" has no value",
        ),
        (
            json!({"documentType": "SSMDocument", "documentPath": "AWS-RunShellScript",
            "documentParameters": "not json"}),
            "documentParameters is not a JSON object",
        ),
        (
            json!({"documentType": "SSMDocument", "documentPath": "AWS-RunShellScript",
            "documentParameters": {"commands": ["ls"], "extra": "x"}}),
            "\"extra\"",
        ),
    ];

    for (inputs, expected) in cases {
        let plan = plan_on(&run_document(inputs), &[], Platform::Linux);

        assert!(matches!(plan.steps[0].action, StepAction::Fail { .. }));
        assert!(
            reason(&plan.steps[0]).contains(expected),
            "{}",
            reason(&plan.steps[0])
        );
    }
}

#[test]
fn fails_a_nested_shell_document_on_windows() {
    let doc = run_document(json!({"documentType": "SSMDocument",
        "documentPath": "AWS-RunShellScript", "documentParameters": {"commands": ["ls"]}}));

    let plan = plan_on(&doc, &[], Platform::Windows);

    assert_eq!(
        reason(&plan.steps[0]),
        "plugin aws:runShellScript does not run on Windows"
    );
}

#[test]
fn round_trips_a_plan_through_json() {
    let doc = step_22(json!({"runCommand": "{{ commands }}", "onFailure": "exit"}));
    let plan = plan_on(&doc, &[], Platform::Linux);

    let text = serde_json::to_string(&plan).expect("serialize");
    let back: Plan = serde_json::from_str(&text).expect("deserialize");

    assert_eq!(back, plan);
    assert!(text.contains(r#""kind":"Run""#), "{text}");
    assert!(text.contains(r#""on_failure":"exit""#), "{text}");
}

proptest! {
    #[test]
    fn planning_with_any_parameter_values_never_panics(
        values in prop::collection::vec(any::<String>(), 0..4),
        platform in prop::sample::select(Platform::ALL.to_vec()),
    ) {
        let doc = step_22(json!({"runCommand": ["{{ commands }}", "x {{ dir }}"],
            "workingDirectory": "{{ dir }}", "timeoutSeconds": "{{ timeout }}"}));
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let pairs: [(&str, &[&str]); 3] = [("commands", &refs), ("dir", &refs), ("timeout", &refs)];

        if let Ok(parameters) = doc.validate_parameters(&supplied(&pairs)) {
            prop_assert!(doc.plan(&parameters, platform).is_ok());
        }
    }

    #[test]
    fn timeouts_always_stay_in_range(text in any::<String>(), number in any::<f64>()) {
        let from_text = timeout_seconds(Some(&Value::String(text)));
        let number = serde_json::Number::from_f64(number).map(Value::Number);
        let from_number = timeout_seconds(number.as_ref());

        prop_assert!((MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&from_text));
        prop_assert!((MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&from_number));
    }
}

/// A SendCommand message payload as AWS's service delivered it to an agent (recorded capture,
/// descriptions shortened): parameters with defaults filled in, placeholders in the document.
const CAPTURED_PAYLOAD: &str = r#"{
  "Parameters": {"commands": ["echo hello"], "workingDirectory": "", "executionTimeout": "3600"},
  "DocumentContent": {
    "schemaVersion": "1.2",
    "description": "Run a shell script or specify the commands to run.",
    "parameters": {
      "commands": {"type": "StringList", "description": "(Required) commands", "minItems": 1,
        "displayType": "textarea"},
      "workingDirectory": {"type": "String", "default": "", "description": "(Optional) dir",
        "maxChars": 4096},
      "executionTimeout": {"type": "String", "default": "3600", "description": "(Optional)",
        "allowedPattern": "([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172800)"}
    },
    "runtimeConfig": {"aws:runShellScript": {"properties": [{"id": "0.aws:runShellScript",
      "runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}",
      "timeoutSeconds": "{{ executionTimeout }}"}]}}
  },
  "CommandId": "fe61f246-47b9-4227-a896-f77b4907ea2c",
  "DocumentName": "AWS-RunShellScript",
  "CloudWatchOutputEnabled": "false"
}"#;

fn plan_payload(payload: &Value, platform: Platform) -> Result<Plan, DocumentError> {
    let document = Document::from_json_value(&payload["DocumentContent"])?;
    let parameters = document.resolve_payload_parameters(payload.get("Parameters"))?;
    document.plan(&parameters, platform)
}

#[test]
fn plans_a_captured_aws_payload() {
    let payload: Value = serde_json::from_str(CAPTURED_PAYLOAD).expect("json");

    let plan = plan_payload(&payload, Platform::Linux).expect("plan");

    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].name, "aws:runShellScript");
    let script = &scripts(&plan.steps[0])[0];
    assert_eq!(script.id, "0.aws:runShellScript");
    assert_eq!(script.commands, ["echo hello"]);
    assert_eq!(script.working_directory, "");
    assert_eq!(script.timeout_seconds, 3600);
}

#[test]
fn plans_a_payload_whose_values_the_service_already_substituted() {
    let mut payload: Value = serde_json::from_str(CAPTURED_PAYLOAD).expect("json");
    payload["DocumentContent"]["runtimeConfig"]["aws:runShellScript"]["properties"][0] = json!({
        "id": "0.aws:runShellScript", "runCommand": ["echo hi", "echo err >&2"],
        "timeoutSeconds": "900", "workingDirectory": "/tmp"});

    let plan = plan_payload(&payload, Platform::Linux).expect("plan");

    let script = &scripts(&plan.steps[0])[0];
    assert_eq!(script.commands, ["echo hi", "echo err >&2"]);
    assert_eq!(
        (script.timeout_seconds, script.working_directory.as_str()),
        (900, "/tmp")
    );
}

#[test]
fn refuses_a_payload_value_that_breaks_the_allowed_pattern() {
    let mut payload: Value = serde_json::from_str(CAPTURED_PAYLOAD).expect("json");
    payload["Parameters"]["executionTimeout"] = json!("0");

    let err = plan_payload(&payload, Platform::Linux).expect_err("pattern");

    assert_eq!(err.code(), "InvalidParameters");
}

#[test]
fn plans_the_sample_2_2_payload_per_platform() {
    let payload = json!({"Parameters": null, "DocumentContent": {"schemaVersion": "2.2",
        "description": "doc", "parameters": null, "mainSteps": [
        {"action": "aws:runShellScript", "name": "pluginLinux",
         "precondition": {"StringEquals": ["platformType", "Linux"]},
         "inputs": {"runCommand": ["echo hi"]}, "maxAttempts": 0, "onFailure": "",
         "settings": null, "timeoutSeconds": 0},
        {"action": "aws:runPowerShellScript", "name": "pluginWindows",
         "precondition": {"StringEquals": ["platformType", "Windows"]},
         "inputs": {"runCommand": ["echo hi"]}}]}});

    let linux = plan_payload(&payload, Platform::Linux).expect("plan");
    let windows = plan_payload(&payload, Platform::Windows).expect("plan");

    let met = |plan: &Plan| {
        plan.steps
            .iter()
            .map(|s| s.precondition_met)
            .collect::<Vec<_>>()
    };
    assert_eq!(met(&linux), [true, false]);
    assert_eq!(met(&windows), [false, true]);
    assert_eq!(scripts(&linux.steps[0])[0].timeout_seconds, 3600);
    assert_eq!(linux.steps[0].on_failure, None);
    assert_eq!(scripts(&windows.steps[1])[0].shell, Shell::PowerShell);
}
