use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn parse_json(value: Value) -> Result<Document, DocumentError> {
    Document::parse(&value.to_string(), DocumentFormat::Json)
}

fn content_error(value: Value) -> String {
    let err = parse_json(value).expect_err("invalid document");
    assert_eq!(err.code(), "InvalidDocumentContent", "{err}");
    err.to_string()
}

fn shell_step(name: &str) -> Value {
    json!({"action": "aws:runShellScript", "name": name, "inputs": {"runCommand": ["true"]}})
}

fn doc_22(steps: Value) -> Value {
    json!({"schemaVersion": "2.2", "mainSteps": steps})
}

/// The 1.2 document of a SendCommand payload as the service sends it: explicit nulls,
/// placeholders still in place, a `mainSteps` of null.
const PAYLOAD_1_2: &str = concat!(
    r#"{"schemaVersion":"1.2","description":"Run a shell script.",
 "parameters":{"commands":{"type":"StringList","default":null,"allowedPattern":""},
   "executionTimeout":{"type":"String","default":"3600",
     "allowedPattern":"([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})"#,
    r#"|(172[0-7][0-9]{2})|(172800)"},
   "workingDirectory":{"type":"String","default":""}},
 "runtimeConfig":{"aws:runShellScript":{"settings":null,"properties":[
   {"id":"0.aws:runShellScript","runCommand":"{{ commands }}",
    "timeoutSeconds":"{{ executionTimeout }}","workingDirectory":"{{ workingDirectory }}"}]}},
 "mainSteps":null}"#
);

/// The 2.2 document of a SendCommand payload: one step per platform, step-level fields that
/// the agent ignores, no parameters.
const PAYLOAD_2_2: &str = r#"{"schemaVersion":"2.2","description":"doc","parameters":null,
 "mainSteps":[
  {"action":"aws:runShellScript","name":"pluginLinux",
   "precondition":{"StringEquals":["platformType","Linux"]},
   "inputs":{"runCommand":["echo hi"]},"maxAttempts":0,"onFailure":"","settings":null,
   "timeoutSeconds":0},
  {"action":"aws:runPowerShellScript","name":"pluginWindows",
   "precondition":{"StringEquals":["platformType","Windows"]},
   "inputs":{"runCommand":["echo hi"]}}]}"#;

#[test]
fn reads_the_payload_document_of_schema_1_2() {
    let value: Value = serde_json::from_str(PAYLOAD_1_2).expect("json");

    let document = Document::from_json_value(&value).expect("valid");

    assert_eq!(document.schema_version(), SchemaVersion::V1_2);
    assert_eq!(document.steps().len(), 1);
    assert_eq!(document.steps()[0].name(), "aws:runShellScript");
    assert!(
        document
            .parameter("commands")
            .is_some_and(ParameterDefinition::is_required)
    );
}

#[test]
fn reads_the_payload_document_of_schema_2_2() {
    let value: Value = serde_json::from_str(PAYLOAD_2_2).expect("json");

    let document = Document::from_json_value(&value).expect("valid");

    let names: Vec<_> = document.steps().iter().map(Step::name).collect();
    assert_eq!(names, ["pluginLinux", "pluginWindows"]);
    let precondition = document.steps()[1].precondition().expect("precondition");
    assert_eq!(precondition.operands(), ("platformType", "Windows"));
}

#[test]
fn matches_document_keys_ignoring_case() {
    let value = json!({"SchemaVersion": "1.2", "RuntimeConfig": {"aws:runShellScript": {
        "Properties": [{"RunCommand": ["ls"]}]}}});

    assert!(Document::from_json_value(&value).is_ok());
}

#[cfg(feature = "yaml")]
#[test]
fn reads_a_yaml_document_with_parameters_in_written_order() {
    let yaml = "---\nschemaVersion: '2.2'\ndescription: Prints a message\nparameters:\n  \
        message:\n    type: String\n    default: hello\n  count:\n    type: Integer\n    \
        default: 2\nmainSteps:\n- action: aws:runShellScript\n  name: print\n  inputs:\n    \
        runCommand:\n    - echo {{ message }} {{count}}\n";

    let document = Document::parse(yaml, DocumentFormat::Yaml).expect("valid yaml");

    let names: Vec<_> = document
        .parameters()
        .iter()
        .map(ParameterDefinition::name)
        .collect();
    assert_eq!(names, ["message", "count"]);
    assert_eq!(document.description(), Some("Prints a message"));
    assert_eq!(document.schema_version().as_str(), "2.2");
}

#[cfg(feature = "yaml")]
#[test]
fn accepts_an_unquoted_yaml_schema_version() {
    let yaml = "schemaVersion: 2.0\nmainSteps:\n- action: aws:runShellScript\n  name: a\n  \
        inputs:\n    runCommand: [ls]\n";

    let document = Document::parse(yaml, DocumentFormat::Yaml).expect("valid");

    assert_eq!(document.schema_version(), SchemaVersion::V2_0);
}

#[test]
fn requires_a_schema_version() {
    assert_eq!(
        content_error(json!({"mainSteps": []})),
        "schemaVersion is required"
    );
    assert!(content_error(json!({"schemaVersion": true})).contains("must be a string"));
}

#[test]
fn refuses_unsupported_schema_versions() {
    for version in ["0.3", "1.0", "2.1", "3.0", ""] {
        let err = parse_json(json!({"schemaVersion": version})).expect_err(version);

        assert_eq!(err.code(), "InvalidDocumentSchemaVersion", "{version}");
        assert!(err.to_string().contains(&format!("{version:?}")), "{err}");
    }
}

#[test]
fn refuses_a_description_that_is_not_text() {
    let message = content_error(json!({"schemaVersion": "2.2", "description": 1}));

    assert_eq!(message, "description must be a string, not a number");
}

#[test]
fn requires_runtime_config_in_schema_1_2() {
    assert!(content_error(json!({"schemaVersion": "1.2"})).contains("runtimeConfig is required"));
    assert!(
        content_error(json!({"schemaVersion": "1.2", "runtimeConfig": {}})).contains("required")
    );
    let steps = json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runShellScript": {
        "properties": {"runCommand": "ls"}}}, "mainSteps": [shell_step("a")]});
    assert!(content_error(steps).contains("mainSteps is not allowed in schema version 1.2"));
}

#[test]
fn requires_main_steps_in_schema_2() {
    for version in ["2.0", "2.2"] {
        let missing = content_error(json!({"schemaVersion": version}));
        let empty = content_error(json!({"schemaVersion": version, "mainSteps": []}));

        assert!(missing.contains("mainSteps is required"), "{missing}");
        assert!(empty.contains("at least one step"), "{empty}");
    }
    let both = json!({"schemaVersion": "2.2", "mainSteps": [shell_step("a")],
        "runtimeConfig": {"aws:runShellScript": {}}});
    assert!(content_error(both).contains("runtimeConfig is not allowed in schema version 2.2"));
}

#[test]
fn refuses_unknown_plugins() {
    let step = json!({"action": "aws:runBash", "name": "a", "inputs": {}});

    assert_eq!(
        content_error(doc_22(json!([step]))),
        "step \"a\" names \"aws:runBash\", which is not a command document plugin"
    );
}

#[test]
fn accepts_known_plugins_that_tagrun_does_not_run() {
    let step = json!({"action": "aws:softwareInventory", "name": "inventory", "inputs": {}});

    let document = parse_json(doc_22(json!([step]))).expect("known plugin");

    assert_eq!(document.platform_types(), Platform::ALL);
}

#[test]
fn refuses_run_document_in_schema_1_2() {
    let document = json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runDocument": {}}});

    assert!(content_error(document).contains("needs schema version 2.0 or later"));
}

#[test]
fn requires_step_names_and_actions() {
    let no_name = json!({"action": "aws:runShellScript", "inputs": {"runCommand": "ls"}});
    let no_action = json!({"name": "a", "inputs": {"runCommand": "ls"}});

    assert!(content_error(doc_22(json!([no_name]))).contains("mainSteps[0] needs name"));
    assert!(content_error(doc_22(json!([no_action]))).contains("mainSteps[0] needs action"));
    assert!(content_error(doc_22(json!(["step"]))).contains("mainSteps[0] must be an object"));
}

#[test]
fn refuses_duplicate_step_names() {
    let message = content_error(doc_22(json!([shell_step("same"), shell_step("same")])));

    assert_eq!(
        message,
        "step name \"same\" is used more than once in mainSteps"
    );
}

#[test]
fn refuses_step_names_that_are_unsafe_as_directory_names() {
    for name in ["../etc", "a/b", "..", "a b", &"x".repeat(129)] {
        let message = content_error(doc_22(json!([shell_step(name)])));

        assert!(message.contains("is not valid"), "{name}: {message}");
    }
}

#[test]
fn requires_run_command_for_script_plugins() {
    let none = json!({"action": "aws:runShellScript", "name": "a", "inputs": {}});
    let number = json!({"action": "aws:runPowerShellScript", "name": "a",
        "inputs": {"runCommand": 5}});
    let listed = json!({"action": "aws:runShellScript", "name": "a",
        "inputs": [{"runCommand": ["ls"]}]});

    assert!(content_error(doc_22(json!([none]))).contains("must have runCommand"));
    assert!(content_error(doc_22(json!([number]))).contains("must be a string or a list"));
    assert!(
        content_error(doc_22(json!([listed]))).contains("inputs of step \"a\" must be an object")
    );
}

#[test]
fn checks_script_properties_of_schema_1_2() {
    let with = |properties: Value| {
        json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runShellScript": {
            "properties": properties}}})
    };

    assert!(parse_json(with(json!({"runCommand": "ls"}))).is_ok());
    assert!(parse_json(with(json!([{"runCommand": ["ls"]}, {"runCommand": "pwd"}]))).is_ok());
    assert!(content_error(with(json!([]))).contains("must be an object or a list of objects"));
    assert!(content_error(with(json!(["ls"]))).contains("must list objects"));
    assert!(content_error(with(json!([{"id": "x"}]))).contains("must have runCommand"));
}

#[test]
fn allows_whole_properties_from_a_parameter() {
    let document = json!({"schemaVersion": "1.2",
        "parameters": {"properties": {"type": "MapList"}},
        "runtimeConfig": {"aws:runShellScript": {"properties": "{{ properties }}"}}});

    assert!(parse_json(document).is_ok());
}

#[test]
fn checks_control_flow_inputs() {
    let step = |inputs: Value| {
        doc_22(json!([{"action": "aws:runShellScript", "name": "a", "inputs": inputs}]))
    };

    assert!(
        parse_json(step(
            json!({"runCommand": "ls", "onFailure": "successAndExit",
        "onSuccess": "exit", "finallyStep": true})
        ))
        .is_ok()
    );
    assert!(
        content_error(step(json!({"runCommand": "ls", "onFailure": "stop"})))
            .contains("onFailure in inputs of step \"a\" must be one of exit, successAndExit")
    );
    assert!(
        content_error(step(
            json!({"runCommand": "ls", "onSuccess": "successAndExit"})
        ))
        .contains("onSuccess")
    );
    assert!(
        content_error(step(json!({"runCommand": "ls", "finallyStep": "yes"})))
            .contains("finallyStep")
    );
}

#[test]
fn checks_run_document_inputs() {
    let step = |inputs: Value| {
        doc_22(json!([{"action": "aws:runDocument", "name": "n", "inputs": inputs}]))
    };

    assert!(
        parse_json(step(json!({"documentType": "SSMDocument",
        "documentPath": "AWS-RunShellScript"})))
        .is_ok()
    );
    assert!(content_error(step(json!({"documentPath": "x"}))).contains("documentType"));
    assert!(content_error(step(json!({"documentType": "S3"}))).contains("SSMDocument, LocalPath"));
}

#[test]
fn accepts_platform_preconditions_in_any_case() {
    let step = json!({"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": "ls"},
        "precondition": {"StringEquals": ["platformType", "linux"]}});

    assert!(parse_json(doc_22(json!([step]))).is_ok());
}

#[test]
fn refuses_preconditions_before_schema_2_2() {
    let step = json!({"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": "ls"},
        "precondition": {"StringEquals": ["platformType", "Linux"]}});

    let message = content_error(json!({"schemaVersion": "2.0", "mainSteps": [step]}));

    assert_eq!(
        message,
        "step \"a\" has a precondition, which needs schema version 2.2"
    );
}

#[test]
fn refuses_malformed_preconditions() {
    let with = |precondition: Value| {
        doc_22(json!([{"action": "aws:runShellScript", "name": "a",
            "inputs": {"runCommand": "ls"}, "precondition": precondition}]))
    };

    for bad in [
        json!({"StringLike": ["platformType", "Linux"]}),
        json!({"StringEquals": ["platformType"]}),
        json!({"StringEquals": ["platformType", "Linux", "Windows"]}),
        json!({"StringEquals": ["platformType", 1]}),
        json!({"StringEquals": ["platformType", "Linux"], "StringLike": ["a", "b"]}),
        json!(["platformType", "Linux"]),
    ] {
        assert!(
            content_error(with(bad.clone())).contains("must be StringEquals"),
            "{bad}"
        );
    }
    assert!(
        content_error(with(json!({"StringEquals": ["platformType", "Ubuntu"]})))
            .contains("names platform \"Ubuntu\"")
    );
    assert!(
        content_error(with(json!({"StringEquals": ["a", "b"]})))
            .contains("must compare platformType or a {{ parameter }}")
    );
}

#[test]
fn accepts_preconditions_that_compare_parameters() {
    let document = json!({"schemaVersion": "2.2", "parameters": {"mode": {"type": "String"}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": "ls"},
            "precondition": {"StringEquals": ["{{ mode }}", "full"]}}]});

    assert!(parse_json(document).is_ok());
}

#[test]
fn refuses_references_to_undeclared_parameters() {
    let step = json!({"action": "aws:runShellScript", "name": "a",
        "inputs": {"runCommand": ["echo {{ missing }}"]}});

    let message = content_error(doc_22(json!([step])));

    assert_eq!(
        message,
        "step \"a\" uses parameter \"missing\", which the document does not declare"
    );
}

#[test]
fn refuses_parameter_store_references_naming_where_they_are() {
    let document = json!({"schemaVersion": "2.2",
        "parameters": {"commands": {"type": "StringList", "default": "{{ ssm:myShellCommands }}"}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "a",
            "inputs": {"runCommand": ["{{ commands }}"]}}]});

    let message = content_error(document);

    assert_eq!(
        message,
        "parameters.commands.default refers to Parameter Store ({{ssm:...}}), which is not \
         supported yet"
    );
}

#[test]
fn refuses_parameter_store_references_in_steps() {
    let step = json!({"action": "aws:runShellScript", "name": "a",
        "inputs": {"runCommand": ["ls", "echo {{ssm:/path/name}}"]}});

    let message = content_error(doc_22(json!([step])));

    assert!(message.starts_with("mainSteps[0].inputs.runCommand[1] refers to Parameter Store"));
}

#[test]
fn derives_platform_types_from_the_plugins() {
    let shell = parse_json(doc_22(json!([shell_step("a")]))).expect("valid");
    let power = json!({"action": "aws:runPowerShellScript", "name": "b",
        "inputs": {"runCommand": "dir"}});
    let both = parse_json(doc_22(json!([shell_step("a"), power]))).expect("valid");
    let windows = json!({"action": "aws:applications", "name": "c", "inputs": {}});
    let windows = parse_json(doc_22(json!([windows]))).expect("valid");

    assert_eq!(shell.platform_types(), [Platform::Linux, Platform::MacOS]);
    assert_eq!(both.platform_types(), Platform::ALL);
    assert_eq!(windows.platform_types(), [Platform::Windows]);
    assert!(!shell.supports_platform(Platform::Windows));
    assert_eq!(shell.document_type(), "Command");
}

#[test]
fn refuses_steps_with_top_level_inputs_that_are_not_objects() {
    let value = json!({"schemaVersion": "2.2", "mainSteps": {"a": 1}});

    assert_eq!(
        content_error(value),
        "mainSteps must be a list, not an object"
    );
    assert!(Document::from_json_value(&json!("text")).is_err());
}

proptest! {
    #[test]
    fn parsing_any_text_never_panics(text in any::<String>()) {
        prop_assert!(is_document_outcome(Document::parse(&text, DocumentFormat::Json)));
        prop_assert!(is_document_outcome(Document::parse(&text, DocumentFormat::Yaml)));
    }

    #[test]
    fn parsing_yaml_like_text_never_panics(text in "[a-zA-Z:{}\\[\\], '\"\\-\n 0-9.&*!|>]{0,200}") {
        prop_assert!(is_document_outcome(Document::parse(&text, DocumentFormat::Yaml)));
    }

    #[test]
    fn parsing_any_json_tree_never_panics(value in json_tree()) {
        prop_assert!(is_document_outcome(Document::from_json_value(&value)));
        let text = value.to_string();
        prop_assert!(is_document_outcome(Document::parse(&text, DocumentFormat::Json)));
    }

    #[test]
    fn parsing_near_valid_documents_never_panics(
        version in prop::sample::select(vec!["1.2", "2.0", "2.2", "0.3"]),
        steps in prop::collection::vec(json_tree(), 0..3),
        parameters in json_tree(),
    ) {
        let document = json!({"schemaVersion": version, "parameters": parameters,
            "mainSteps": steps.clone(), "runtimeConfig": {"aws:runShellScript": steps}});

        prop_assert!(is_document_outcome(Document::from_json_value(&document)));
    }
}

/// A parse either succeeds or fails with one of the codes document content can fail with.
fn is_document_outcome(result: Result<Document, DocumentError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => matches!(
            e.code(),
            "InvalidDocumentContent" | "InvalidDocumentSchemaVersion" | "MaxDocumentSizeExceeded"
        ),
    }
}

/// Arbitrary JSON, with strings drawn from document vocabulary so that generated trees reach
/// deep into validation.
fn json_tree() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "aws:runShellScript",
        "aws:runDocument",
        "runCommand",
        "name",
        "action",
        "inputs",
        "String",
        "StringList",
        "{{ a }}",
        "{{ssm:x}}",
        "platformType",
        "Linux",
        "type",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        words.prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "schemaVersion",
                    "mainSteps",
                    "action",
                    "name",
                    "inputs",
                    "runCommand",
                    "type",
                    "default",
                    "precondition",
                    "StringEquals",
                    "a",
                    "properties",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}
