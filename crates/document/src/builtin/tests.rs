use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::{ParameterType, Platform, StepAction};

fn shell() -> &'static BuiltinDocument {
    builtin("AWS-RunShellScript").expect("built in")
}

fn power_shell() -> &'static BuiltinDocument {
    builtin("AWS-RunPowerShellScript").expect("built in")
}

fn commands(lines: &[&str]) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([(
        "commands".to_owned(),
        lines.iter().map(|l| (*l).to_owned()).collect(),
    )])
}

#[test]
fn ships_both_documents_as_version_1_in_json() {
    let names: Vec<_> = builtins().iter().map(BuiltinDocument::name).collect();

    assert_eq!(names, ["AWS-RunShellScript", "AWS-RunPowerShellScript"]);
    for b in builtins() {
        assert_eq!(b.version(), "1");
        assert_eq!(b.format(), DocumentFormat::Json);
        assert_eq!(b.owner(), "Amazon");
        assert_eq!(b.document().document_type(), "Command");
        assert_eq!(b.document().schema_version().as_str(), "1.2");
    }
}

#[test]
fn hashes_the_content_as_served() {
    for b in builtins() {
        assert_eq!(b.hash(), document_hash(b.content()));
        assert_eq!(b.hash().len(), 64);
    }
}

#[test]
fn finds_built_ins_by_exact_name_only() {
    assert!(builtin("AWS-RunShellScript").is_some());
    assert!(builtin("aws-runshellscript").is_none());
    assert!(builtin("AWS-RunRemoteScript").is_none());
}

#[test]
fn declares_aws_parameters_in_aws_order() {
    for b in builtins() {
        let parameters = b.document().parameters();
        let names: Vec<_> = parameters.iter().map(|p| p.name()).collect();

        assert_eq!(names, ["commands", "workingDirectory", "executionTimeout"]);
        assert_eq!(parameters[0].parameter_type(), ParameterType::StringList);
        assert_eq!(parameters[0].item_limits(), (Some(1), None));
        assert_eq!(parameters[0].display_type(), Some("textarea"));
        assert!(parameters[0].is_required());
        assert_eq!(parameters[1].default_value_string().as_deref(), Some(""));
        assert_eq!(parameters[1].char_limits(), (None, Some(4096)));
        assert_eq!(
            parameters[2].default_value_string().as_deref(),
            Some("3600")
        );
    }
}

#[test]
fn describes_the_documents_as_aws_does() {
    assert_eq!(
        shell().document().description(),
        Some("Run a shell script or specify the commands to run.")
    );
    assert_eq!(
        power_shell().document().description(),
        Some("Run a PowerShell script or specify the paths to scripts to run.")
    );
    assert_eq!(
        shell().document().platform_types(),
        [Platform::Linux, Platform::MacOS]
    );
    assert_eq!(power_shell().document().platform_types(), Platform::ALL);
}

#[test]
fn allows_execution_timeouts_from_1_to_172800_seconds() {
    for b in builtins() {
        let pattern = b.document().parameters()[2]
            .allowed_pattern()
            .expect("pattern");
        for ok in [
            "1", "5", "99", "3600", "99999", "100000", "169999", "171999", "172799", "172800",
        ] {
            assert!(pattern.matches(ok), "{ok}");
        }
        for bad in [
            "0", "172801", "180000", "200000", "999999", "01", "-1", "1.5", "", "36 00",
        ] {
            assert!(!pattern.matches(bad), "{bad}");
        }
    }
}

#[test]
fn requires_at_least_one_command() {
    let err = shell()
        .document()
        .validate_parameters(&commands(&[]))
        .expect_err("no commands");
    let missing = shell()
        .document()
        .validate_parameters(&BTreeMap::new())
        .expect_err("missing");

    assert_eq!(err.code(), "InvalidParameters");
    assert_eq!(
        missing.to_string(),
        "required parameter \"commands\" has no value"
    );
}

#[test]
fn refuses_an_execution_timeout_outside_the_pattern() {
    let mut supplied = commands(&["ls"]);
    supplied.insert("executionTimeout".into(), vec!["172801".into()]);

    let err = shell()
        .document()
        .validate_parameters(&supplied)
        .expect_err("too long");

    assert!(err.to_string().contains("executionTimeout"), "{err}");
}

#[test]
fn resolves_the_parameters_the_service_sends_to_the_agent() {
    let resolved = shell()
        .document()
        .validate_parameters(&commands(&["echo hello"]))
        .expect("ok");

    assert_eq!(
        serde_json::to_value(&resolved).expect("serialize"),
        json!({"commands": ["echo hello"], "executionTimeout": "3600", "workingDirectory": ""})
    );
}

#[test]
fn plans_a_shell_script_with_aws_plugin_name_and_id() {
    let document = shell().document();
    let parameters = document
        .validate_parameters(&commands(&["echo a", "echo b"]))
        .expect("ok");

    let plan = document.plan(&parameters, Platform::Linux).expect("plan");

    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].name, "aws:runShellScript");
    let StepAction::Run { scripts } = &plan.steps[0].action else {
        panic!("expected a script, got {:?}", plan.steps[0].action);
    };
    assert_eq!(scripts[0].id, "0.aws:runShellScript");
    assert_eq!(scripts[0].commands, ["echo a", "echo b"]);
    assert_eq!(scripts[0].text(), "echo a\necho b\n");
}

#[test]
fn fails_the_shell_document_on_windows() {
    let document = shell().document();
    let parameters = document
        .validate_parameters(&commands(&["ls"]))
        .expect("ok");

    let plan = document.plan(&parameters, Platform::Windows).expect("plan");

    assert!(matches!(plan.steps[0].action, StepAction::Fail { .. }));
}

#[test]
fn plans_power_shell_everywhere() {
    let document = power_shell().document();
    let parameters = document
        .validate_parameters(&commands(&["Get-Date"]))
        .expect("ok");

    for platform in Platform::ALL {
        let plan = document.plan(&parameters, platform).expect("plan");

        assert_eq!(plan.steps[0].name, "aws:runPowerShellScript");
        assert!(
            matches!(plan.steps[0].action, StepAction::Run { .. }),
            "{platform}"
        );
    }
}

#[test]
fn reserves_aws_document_names() {
    assert!(is_reserved_name("AWS-MyDocument"));
    assert!(is_reserved_name("aws-lower"));
    assert!(is_reserved_name("AmazonThing"));
    assert!(is_reserved_name("amzn-doc"));
    assert!(!is_reserved_name("MyAWS-Document"));
    assert!(!is_reserved_name("awsome"));
}
