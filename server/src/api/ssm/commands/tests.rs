use super::*;

fn node(id: &str, platform: Option<&str>) -> TargetNode {
    TargetNode {
        instance_id: id.into(),
        computer_name: None,
        platform_type: platform.map(str::to_owned),
    }
}

fn target(key: &str, values: &[&str]) -> Target {
    Target {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn targets_combine_with_and_and_values_with_or() {
    let tags = BTreeMap::from([
        ("Env".to_string(), "prod".to_string()),
        ("Role".to_string(), "web".to_string()),
    ]);
    let web = node("mi-00000000000000001", None);

    let both = [
        target("tag:Env", &["prod", "dev"]),
        target("tag-key", &["Role"]),
    ];
    let mismatch = [target("tag:Env", &["prod"]), target("tag:Role", &["db"])];
    let by_id = [target("InstanceIds", &["mi-00000000000000001"])];

    assert!(matches_targets(&both, &web, &tags));
    assert!(!matches_targets(&mismatch, &web, &tags));
    assert!(matches_targets(&by_id, &web, &tags));
}

#[test]
fn unknown_platforms_are_given_the_benefit_of_the_doubt() {
    let builtin = tagrun_document::builtin("AWS-RunShellScript").unwrap();
    let document = builtin.document();

    assert!(supports(document, &node("mi-00000000000000001", None)));
    assert!(supports(
        document,
        &node("mi-00000000000000001", Some("Linux"))
    ));
    assert!(!supports(
        document,
        &node("mi-00000000000000001", Some("Windows"))
    ));
}

#[test]
fn document_arns_name_the_document() {
    assert_eq!(
        document_name("arn:aws:ssm:us-east-1:123456789012:document/Mine"),
        "Mine"
    );
    assert_eq!(document_name("AWS-RunShellScript"), "AWS-RunShellScript");
}

#[test]
fn send_input_limits() {
    let base = SendInput {
        document_name: "AWS-RunShellScript".into(),
        instance_ids: vec!["i-0123456789abcdef0".into()],
        ..SendInput::default()
    };
    let check = |input: SendInput| validate::send_input(&input).err().map(|e| e.code);

    assert_eq!(check(base.clone()), None);
    assert_eq!(
        check(SendInput {
            timeout_seconds: Some(29),
            ..base.clone()
        }),
        Some("ValidationException")
    );
    assert_eq!(
        check(SendInput {
            max_concurrency: Some("0".into()),
            ..base.clone()
        }),
        Some("ValidationException")
    );
    assert_eq!(
        check(SendInput {
            max_errors: Some("0".into()),
            ..base.clone()
        }),
        None
    );
    assert_eq!(
        check(SendInput {
            max_errors: Some("10%".into()),
            ..base.clone()
        }),
        None
    );
    assert_eq!(
        check(SendInput {
            instance_ids: vec!["i-0123456789abcdef0".into(), "i-0123456789abcdef0".into()],
            ..base.clone()
        }),
        Some("DuplicateInstanceId")
    );
    assert_eq!(
        check(SendInput {
            targets: vec![target("tag:Env", &["prod"])],
            ..base.clone()
        }),
        Some("InvalidParameters")
    );
    assert_eq!(
        check(SendInput {
            instance_ids: Vec::new(),
            targets: vec![target("resource-groups:Name", &["g"])],
            ..base
        }),
        Some("InvalidParameters")
    );
}

#[test]
fn prefixes_count_characters() {
    assert_eq!(prefix("héllo", 2), "hé");
    assert_eq!(prefix("hi", 5), "hi");
}
