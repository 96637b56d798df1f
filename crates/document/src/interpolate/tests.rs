use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn params(pairs: Value) -> ResolvedParameters {
    let map: BTreeMap<String, Value> = serde_json::from_value(pairs).expect("object");
    ResolvedParameters::from_map(map)
}

#[test]
fn replaces_a_whole_string_reference_with_the_typed_value() {
    let p = params(json!({"commands": ["echo a", "echo b"]}));

    assert_eq!(
        interpolate_str("{{ commands }}", &p),
        json!(["echo a", "echo b"])
    );
    assert_eq!(
        interpolate_str("{{commands}}", &p),
        json!(["echo a", "echo b"])
    );
    assert_eq!(
        interpolate_str("{{\t commands \n}}", &p),
        json!(["echo a", "echo b"])
    );
}

#[test]
fn keeps_integers_booleans_and_maps_typed_in_a_whole_string_reference() {
    let p = params(json!({"n": 5, "flag": true, "env": {"A": "1"}}));

    assert_eq!(interpolate_str("{{ n }}", &p), json!(5));
    assert_eq!(interpolate_str("{{ flag }}", &p), json!(true));
    assert_eq!(interpolate_str("{{ env }}", &p), json!({"A": "1"}));
}

#[test]
fn embeds_strings_as_they_are_and_other_values_as_json() {
    let p = params(json!({"name": "world", "list": ["a", "b"], "n": 3, "m": {"k": "v"}}));

    let out = interpolate_str("hello {{ name }} {{list}} {{ n }} {{ m }}", &p);

    assert_eq!(out, json!(r#"hello world ["a","b"] 3 {"k":"v"}"#));
}

#[test]
fn leaves_unknown_and_malformed_references_untouched() {
    let p = params(json!({"a": "x"}));

    let text = "{{ b }} {{ a-b }} {{ }} {a} {{a} {{ a }}";

    assert_eq!(
        interpolate_str(text, &p),
        json!("{{ b }} {{ a-b }} {{ }} {a} {{a} x")
    );
}

#[test]
fn finds_a_reference_after_an_extra_opening_brace() {
    let p = params(json!({"a": "x"}));

    assert_eq!(interpolate_str("{{{ a }}", &p), json!("{x"));
}

#[test]
fn inserts_values_with_dollars_and_braces_literally() {
    let p = params(json!({"a": "$HOME $$ {{ b }}", "b": "no"}));

    assert_eq!(
        interpolate_str("echo {{ a }}", &p),
        json!("echo $HOME $$ {{ b }}")
    );
}

#[test]
fn interpolates_nested_lists_and_objects() {
    let p = params(json!({"commands": ["ls"], "dir": "/tmp"}));
    let inputs = json!({"runCommand": ["{{ commands }}", "pwd"], "cfg": {"wd": "{{ dir }}"}});

    let out = interpolate(&inputs, &p);

    assert_eq!(
        out,
        json!({"runCommand": [["ls"], "pwd"], "cfg": {"wd": "/tmp"}})
    );
}

#[test]
fn leaves_non_string_values_alone() {
    let p = params(json!({"a": "x"}));

    assert_eq!(
        interpolate(&json!([1, true, null]), &p),
        json!([1, true, null])
    );
}

#[test]
fn lists_references_with_their_spans() {
    let found = references("a {{ x1 }} b {{y}}");

    let names: Vec<_> = found.iter().map(|r| (r.name, r.span.clone())).collect();

    assert_eq!(names, vec![("x1", 2..10), ("y", 13..18)]);
}

#[test]
fn recognises_parameter_store_references() {
    assert!(has_parameter_store_reference("{{ssm:myCommands}}"));
    assert!(has_parameter_store_reference("echo {{ ssm:/a/b:3 }}"));
    assert!(has_parameter_store_reference("{{ssm-secure:pw}}"));
    assert!(!has_parameter_store_reference("{{ ssmName }}"));
    assert!(!has_parameter_store_reference("ssm:name"));
}

proptest! {
    #[test]
    fn interpolating_any_text_never_panics(text in any::<String>(), value in any::<String>()) {
        let p = params(json!({"a": value, "list": ["x"], "n": 1}));

        let out = interpolate_str(&text, &p);
        let found = references(&text);

        prop_assert!(out.is_string() || out == json!(["x"]) || out == json!(1));
        prop_assert!(found.windows(2).all(|w| w[0].span.end <= w[1].span.start));
        prop_assert!(found.iter().all(|r| text.get(r.span.clone()).is_some()));
        prop_assert!(!has_parameter_store_reference(&text) || text.contains("ssm"));
    }

    #[test]
    fn interpolating_brace_heavy_text_never_panics(text in "[{} a\\t1ssm:-]{0,40}") {
        let p = params(json!({"a": "{{ a }}", "ssm": "x"}));

        let out = interpolate_str(&text, &p);

        prop_assert!(out.is_string());
    }

    #[test]
    fn text_without_references_is_unchanged(text in "[^{]*") {
        let p = params(json!({"a": "x"}));

        prop_assert_eq!(interpolate_str(&text, &p), Value::String(text.clone()));
    }
}
