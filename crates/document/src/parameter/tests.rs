use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn definitions(parameters: Value) -> Result<Vec<ParameterDefinition>, DocumentError> {
    parse_definitions(Some(&parameters), &[])
}

fn one(definition: Value) -> ParameterDefinition {
    let mut parsed = definitions(json!({ "p": definition })).expect("valid definition");
    parsed.remove(0)
}

fn content_error(definition: Value) -> String {
    let err = definitions(json!({ "p": definition })).expect_err("invalid definition");
    assert_eq!(err.code(), "InvalidDocumentContent");
    err.to_string()
}

fn supplied(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

fn resolve(definition: Value, values: &[&str]) -> Result<Value, DocumentError> {
    let defs = vec![one(definition)];
    resolve_supplied(&defs, &supplied(&[("p", values)])).map(|r| r.get("p").cloned().expect("p"))
}

fn parameters_error(definition: Value, values: &[&str]) -> String {
    let err = resolve(definition, values).expect_err("refused");
    assert_eq!(err.code(), "InvalidParameters");
    err.to_string()
}

#[test]
fn reads_every_attribute_of_a_definition() {
    let p = one(json!({
        "type": "StringList", "description": "d", "default": ["a"], "allowedValues": ["a", "b"],
        "allowedPattern": "[ab]", "minItems": 1, "maxItems": "3", "minChars": 1, "maxChars": 2,
        "displayType": "textarea"
    }));

    assert_eq!(p.parameter_type(), ParameterType::StringList);
    assert_eq!(p.description(), Some("d"));
    assert_eq!(p.default_value(), Some(&json!(["a"])));
    assert_eq!(p.allowed_values(), ["a", "b"]);
    assert_eq!(
        p.allowed_pattern().map(AllowedPattern::as_str),
        Some("[ab]")
    );
    assert_eq!(p.item_limits(), (Some(1), Some(3)));
    assert_eq!(p.char_limits(), (Some(1), Some(2)));
    assert_eq!(p.display_type(), Some("textarea"));
    assert!(!p.is_required());
}

#[test]
fn keeps_parameters_in_written_order() {
    let parameters = json!({"b": {"type": "String"}, "a": {"type": "String"}});
    let order = ["b".to_owned(), "a".to_owned()];

    let parsed = parse_definitions(Some(&parameters), &order).expect("valid");

    let names: Vec<_> = parsed.iter().map(ParameterDefinition::name).collect();
    assert_eq!(names, ["b", "a"]);
}

#[test]
fn accepts_every_parameter_type() {
    for kind in [
        "String",
        "StringList",
        "Integer",
        "Boolean",
        "MapList",
        "StringMap",
    ] {
        assert_eq!(one(json!({ "type": kind })).parameter_type().as_str(), kind);
    }
}

#[test]
fn refuses_unknown_or_missing_types() {
    assert!(content_error(json!({"type": "Number"})).contains("has type \"Number\""));
    assert_eq!(content_error(json!({})), "parameter \"p\" has no type");
}

#[test]
fn refuses_names_the_agent_cannot_interpolate() {
    let err = definitions(json!({"my_param": {"type": "String"}})).expect_err("bad name");

    assert!(
        err.to_string().contains("\"my_param\" is not valid"),
        "{err}"
    );
}

#[test]
fn refuses_a_parameters_element_that_is_not_an_object() {
    let err = parse_definitions(Some(&json!(["a"])), &[]).expect_err("list");

    assert_eq!(err.to_string(), "parameters must be an object, not a list");
}

#[test]
fn checks_defaults_against_the_type() {
    assert_eq!(
        one(json!({"type": "Integer", "default": 100})).default_value(),
        Some(&json!(100))
    );
    assert_eq!(
        one(json!({"type": "Boolean", "default": true})).default_value(),
        Some(&json!(true))
    );
    assert!(
        content_error(json!({"type": "Integer", "default": "3"})).contains("not a valid Integer")
    );
    assert!(content_error(json!({"type": "Integer", "default": 3.5})).contains("Integer"));
    assert!(content_error(json!({"type": "Boolean", "default": "true"})).contains("Boolean"));
    assert!(content_error(json!({"type": "StringMap", "default": ["a"]})).contains("StringMap"));
    assert!(content_error(json!({"type": "MapList", "default": ["a"]})).contains("MapList"));
    assert!(
        content_error(json!({"type": "StringList", "default": [["a"]]})).contains("StringList")
    );
}

#[test]
fn takes_numbers_written_for_string_defaults_as_text() {
    let p = one(json!({"type": "String", "default": 3600}));

    assert_eq!(p.default_value(), Some(&json!("3600")));
}

#[test]
fn treats_a_null_default_as_no_default() {
    assert!(one(json!({"type": "StringList", "default": null})).is_required());
}

#[test]
fn shows_defaults_as_describe_document_does() {
    let text = |d: Value| one(d).default_value_string();

    assert_eq!(
        text(json!({"type": "String", "default": ""})),
        Some(String::new())
    );
    assert_eq!(
        text(json!({"type": "String", "default": "3600"})),
        Some("3600".into())
    );
    assert_eq!(
        text(json!({"type": "StringList", "default": ["a", "b"]})),
        Some(r#"["a","b"]"#.into())
    );
    assert_eq!(
        text(json!({"type": "Integer", "default": 5})),
        Some("5".into())
    );
    assert_eq!(
        text(json!({"type": "Boolean", "default": false})),
        Some("false".into())
    );
    assert_eq!(text(json!({"type": "String"})), None);
}

#[test]
fn refuses_malformed_constraints() {
    assert!(
        content_error(json!({"type": "String", "allowedValues": "a"})).contains("must be a list")
    );
    assert!(
        content_error(json!({"type": "String", "allowedPattern": 5})).contains("must be a string")
    );
    assert!(content_error(json!({"type": "String", "allowedPattern": "(a"})).contains("regular"));
    assert!(content_error(json!({"type": "String", "maxChars": -1})).contains("whole number"));
    assert!(content_error(json!({"type": "String", "minChars": 1.5})).contains("whole number"));
    let swapped = content_error(json!({"type": "StringList", "minItems": 3, "maxItems": 2}));
    assert_eq!(
        swapped,
        "minItems of parameter \"p\" is larger than its maxItems"
    );
}

#[test]
fn refuses_java_only_pattern_features_clearly() {
    let message = content_error(json!({"type": "String", "allowedPattern": "(?=a)a"}));

    assert_eq!(
        message,
        "allowedPattern of parameter \"p\" is not a supported regular expression"
    );
}

#[test]
fn treats_an_empty_pattern_as_no_pattern() {
    assert!(
        one(json!({"type": "String", "allowedPattern": ""}))
            .allowed_pattern()
            .is_none()
    );
}

#[test]
fn matches_patterns_against_the_whole_value() {
    let pattern = one(json!({"type": "String", "allowedPattern": "[0-9]+|x"}));
    let pattern = pattern.allowed_pattern().expect("pattern");

    assert!(pattern.matches("123"));
    assert!(pattern.matches("x"));
    assert!(!pattern.matches("12a"));
    assert!(!pattern.matches("a12"));
}

#[test]
fn types_supplied_values() {
    assert_eq!(
        resolve(json!({"type": "String"}), &["a b"]),
        Ok(json!("a b"))
    );
    assert_eq!(
        resolve(json!({"type": "StringList"}), &["a", "b"]),
        Ok(json!(["a", "b"]))
    );
    assert_eq!(resolve(json!({"type": "StringList"}), &[]), Ok(json!([])));
    assert_eq!(
        resolve(json!({"type": "Integer"}), &["-42"]),
        Ok(json!(-42))
    );
    assert_eq!(
        resolve(json!({"type": "Boolean"}), &["false"]),
        Ok(json!(false))
    );
    assert_eq!(
        resolve(json!({"type": "StringMap"}), &[r#"{"a":"1"}"#]),
        Ok(json!({"a": "1"}))
    );
    assert_eq!(
        resolve(json!({"type": "MapList"}), &[r#"{"a":"1"}"#, "{}"]),
        Ok(json!([{"a": "1"}, {}]))
    );
}

#[test]
fn refuses_values_of_the_wrong_type() {
    assert!(parameters_error(json!({"type": "Integer"}), &["3.5"]).contains("not a valid Integer"));
    assert!(parameters_error(json!({"type": "Integer"}), &["+3"]).contains("Integer"));
    assert!(parameters_error(json!({"type": "Integer"}), &[""]).contains("Integer"));
    assert!(
        parameters_error(json!({"type": "Integer"}), &["99999999999999999999"]).contains("Integer")
    );
    assert!(parameters_error(json!({"type": "Boolean"}), &["True"]).contains("Boolean"));
    assert!(parameters_error(json!({"type": "StringMap"}), &["[1]"]).contains("JSON object"));
    assert!(parameters_error(json!({"type": "MapList"}), &["{}", "x"]).contains("JSON object"));
}

#[test]
fn takes_exactly_one_value_for_single_valued_types() {
    let message = parameters_error(json!({"type": "String"}), &["a", "b"]);

    assert_eq!(
        message,
        "parameter \"p\" of type String takes exactly one value, not 2"
    );
    assert!(parameters_error(json!({"type": "Integer"}), &[]).contains("not 0"));
}

#[test]
fn applies_allowed_values_to_each_item() {
    let definition = json!({"type": "StringList", "allowedValues": ["a", "b"]});

    assert!(resolve(definition.clone(), &["a", "b", "a"]).is_ok());
    let message = parameters_error(definition, &["a", "c"]);
    assert_eq!(
        message,
        "parameter \"p\" has value \"c\", which is not one of its allowedValues [a, b]"
    );
}

#[test]
fn applies_allowed_values_to_integers_and_booleans_as_text() {
    assert!(resolve(json!({"type": "Integer", "allowedValues": [1, 2]}), &["2"]).is_ok());
    assert!(resolve(json!({"type": "Integer", "allowedValues": [1, 2]}), &["3"]).is_err());
    assert!(
        resolve(
            json!({"type": "Boolean", "allowedValues": ["true"]}),
            &["false"]
        )
        .is_err()
    );
}

#[test]
fn applies_allowed_pattern_to_strings_and_list_items() {
    let single = json!({"type": "String", "allowedPattern": "^[a-z]+$"});
    let list = json!({"type": "StringList", "allowedPattern": "[a-z]+"});

    assert!(resolve(single.clone(), &["abc"]).is_ok());
    assert!(parameters_error(single, &["ab1"]).contains("does not match its allowedPattern"));
    assert!(resolve(list.clone(), &["a", "b"]).is_ok());
    assert!(resolve(list, &["a", "B"]).is_err());
}

#[test]
fn applies_character_limits_to_each_string() {
    let definition = json!({"type": "StringList", "minChars": 2, "maxChars": 3});

    assert!(resolve(definition.clone(), &["ab", "abc"]).is_ok());
    assert!(parameters_error(definition.clone(), &["a"]).contains("fewer than minChars 2"));
    assert!(parameters_error(definition, &["abcd"]).contains("more than maxChars 3"));
    let unicode = json!({"type": "String", "maxChars": 2});
    assert!(resolve(unicode, &["éé"]).is_ok());
}

#[test]
fn applies_item_limits_to_lists_and_maps() {
    let list = json!({"type": "StringList", "minItems": 1, "maxItems": 2});
    let map = json!({"type": "StringMap", "maxItems": 1});

    assert!(parameters_error(list.clone(), &[]).contains("0 items, fewer than minItems 1"));
    assert!(parameters_error(list.clone(), &["a", "b", "c"]).contains("more than maxItems 2"));
    assert!(resolve(list, &["a"]).is_ok());
    assert!(resolve(map, &[r#"{"a":"1","b":"2"}"#]).is_err());
}

#[test]
fn fills_in_defaults_and_checks_them() {
    let defs = definitions(json!({
        "a": {"type": "String", "default": "x"},
        "b": {"type": "String", "default": "bad", "allowedValues": ["good"]}
    }))
    .expect("valid");

    let err = resolve_supplied(&defs, &BTreeMap::new()).expect_err("bad default");
    let ok = resolve_supplied(&defs, &supplied(&[("b", &["good"])])).expect("valid");

    assert_eq!(err.code(), "InvalidParameters");
    assert_eq!(ok.to_json(), json!({"a": "x", "b": "good"}));
}

#[test]
fn refuses_missing_required_parameters() {
    let defs = definitions(json!({"commands": {"type": "StringList"}})).expect("valid");

    let err = resolve_supplied(&defs, &BTreeMap::new()).expect_err("missing");

    assert_eq!(
        err.to_string(),
        "required parameter \"commands\" has no value"
    );
}

#[test]
fn refuses_undeclared_parameters() {
    let defs = definitions(json!({"a": {"type": "String"}})).expect("valid");

    let err = resolve_supplied(&defs, &supplied(&[("a", &["x"]), ("b", &["y"])])).expect_err("b");

    assert_eq!(err.code(), "InvalidParameters");
    assert_eq!(
        err.to_string(),
        "parameter \"b\" is not declared by the document"
    );
}

#[test]
fn refuses_any_parameter_for_a_document_without_parameters() {
    let err = resolve_supplied(&[], &supplied(&[("a", &["x"])])).expect_err("no parameters");

    assert_eq!(err.to_string(), "the document does not support parameters");
    assert!(resolve_supplied(&[], &BTreeMap::new()).is_ok());
}

#[test]
fn refuses_parameter_store_references_in_values() {
    let message = parameters_error(json!({"type": "StringList"}), &["echo", "{{ssm:cmds}}"]);

    assert!(
        message.contains("Parameter Store ({{ssm:...}}), which is not supported yet"),
        "{message}"
    );
}

#[test]
fn serializes_resolved_parameters_as_the_agent_payload_map() {
    let defs = definitions(json!({
        "commands": {"type": "StringList"},
        "executionTimeout": {"type": "String", "default": "3600"}
    }))
    .expect("valid");

    let resolved = resolve_supplied(&defs, &supplied(&[("commands", &["echo hi"])])).expect("ok");

    let json = serde_json::to_value(&resolved).expect("serialize");
    assert_eq!(
        json,
        json!({"commands": ["echo hi"], "executionTimeout": "3600"})
    );
    let back: ResolvedParameters = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back, resolved);
}

#[test]
fn reads_payload_parameters_as_the_agent_does() {
    let defs = definitions(json!({
        "commands": {"type": "StringList"},
        "workingDirectory": {"type": "String", "default": ""},
        "executionTimeout": {"type": "String", "default": "3600", "allowedPattern": "[0-9]+"}
    }))
    .expect("valid");
    let payload = json!({"commands": "echo one", "executionTimeout": ["60"], "bad_name": "x",
        "extra": "kept", "workingDirectory": null});

    let resolved = resolve_payload(&defs, Some(&payload)).expect("valid");

    assert_eq!(
        resolved.to_json(),
        json!({"commands": ["echo one"], "executionTimeout": "60", "extra": "kept",
            "workingDirectory": ""})
    );
}

#[test]
fn checks_payload_values_against_allowed_pattern() {
    let defs =
        definitions(json!({"t": {"type": "String", "allowedPattern": "[0-9]+"}})).expect("ok");

    let err = resolve_payload(&defs, Some(&json!({"t": "1; rm -rf /"}))).expect_err("pattern");

    assert_eq!(err.code(), "InvalidParameters");
}

#[test]
fn refuses_payloads_without_required_values() {
    let defs = definitions(json!({"commands": {"type": "StringList"}})).expect("valid");

    assert!(resolve_payload(&defs, None).is_err());
    assert!(resolve_payload(&defs, Some(&Value::Null)).is_err());
}
