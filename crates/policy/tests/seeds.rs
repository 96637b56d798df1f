//! AWS's tag-based Run Command policies (Systems Manager User Guide, "Restricting Run
//! Command access based on tags"), kept verbatim under `fixtures/seeds/`, against
//! nodes tagged as required, tagged otherwise and untagged.

use tagrun_policy::{Context, Decision, Outcome, Policy, ResourceRequest, evaluate};

const SEND: &str = "ssm:SendCommand";
const AWS_DOC_WEST1: &str = "arn:aws:ssm:us-west-1::document/AWS-RunShellScript";
const AWS_DOC_EAST1: &str = "arn:aws:ssm:us-east-1::document/AWS-RunShellScript";
const OWN_DOC: &str = "arn:aws:ssm:us-east-1:123456789012:document/Deploy";
const INSTANCE: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";
const MANAGED: &str = "arn:aws:ssm:us-east-1:123456789012:managed-instance/mi-0123456789abcdef0";

fn seed(name: &str) -> Policy {
    let path = format!(
        "{}/tests/fixtures/seeds/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    Policy::parse_named(name, &text).expect("AWS's example policy parses")
}

fn decide(policy: &Policy, action: &str, resources: &[ResourceRequest]) -> Decision {
    evaluate([policy], action, resources, &Context::new())
}

fn outcome(policy: &Policy, arn: &str, tags: &[(&str, &str)]) -> Outcome {
    let resource = ResourceRequest::new(arn).with_tags(tags.iter().copied());
    decide(policy, SEND, &[resource]).outcome
}

mod finance_webservers {
    use super::*;

    fn policy() -> Policy {
        seed("allow-send-command-finance-webservers")
    }

    #[test]
    fn allows_any_document_including_aws_owned_ones() {
        let policy = policy();

        for doc in [AWS_DOC_WEST1, AWS_DOC_EAST1, OWN_DOC] {
            assert_eq!(outcome(&policy, doc, &[]), Outcome::Allowed, "{doc}");
        }
    }

    #[test]
    fn allows_instances_tagged_exactly_as_the_policy_says() {
        let policy = policy();

        assert_eq!(
            outcome(&policy, INSTANCE, &[("Finance", "WebServers")]),
            Outcome::Allowed
        );
        assert_eq!(
            outcome(&policy, INSTANCE, &[("finance", "WebServers")]),
            Outcome::Allowed
        );
    }

    #[test]
    fn denies_instances_tagged_otherwise() {
        let policy = policy();

        // The guide's prose says "WebServer" but its policy says "WebServers"; the policy
        // is what AWS evaluates, and StringLike compares values case-sensitively.
        for tags in [
            [("Finance", "WebServer")],
            [("Finance", "webservers")],
            [("Finance", "Database")],
            [("Team", "WebServers")],
        ] {
            assert_eq!(
                outcome(&policy, INSTANCE, &tags),
                Outcome::ImplicitDeny,
                "{tags:?}"
            );
        }
    }

    #[test]
    fn denies_untagged_instances() {
        assert_eq!(outcome(&policy(), INSTANCE, &[]), Outcome::ImplicitDeny);
    }

    #[test]
    fn never_allows_managed_instances_because_its_arn_is_ec2_only() {
        let policy = policy();

        assert_eq!(
            outcome(&policy, MANAGED, &[("Finance", "WebServers")]),
            Outcome::ImplicitDeny
        );
        assert_eq!(outcome(&policy, MANAGED, &[]), Outcome::ImplicitDeny);
    }

    #[test]
    fn a_command_needs_the_document_and_every_node() {
        let policy = policy();
        let doc = ResourceRequest::new(AWS_DOC_EAST1);
        let good = ResourceRequest::new(INSTANCE).with_tags([("Finance", "WebServers")]);
        let bad = ResourceRequest::new(INSTANCE.replace("abcdef0", "abcdef1"));

        let allowed = decide(&policy, SEND, &[doc.clone(), good.clone()]);
        let denied = decide(&policy, SEND, &[doc, good, bad]);

        assert!(allowed.is_allowed());
        assert_eq!(denied.outcome, Outcome::ImplicitDeny);
        assert_eq!(denied.failed, Some(2));
        assert_eq!(denied.resources[1].matched[0].index, 1);
    }

    #[test]
    fn grants_nothing_but_send_command() {
        let policy = policy();

        let decision = decide(&policy, "ssm:ListCommands", &[]);

        assert_eq!(decision.outcome, Outcome::ImplicitDeny);
    }
}

mod two_tags {
    use super::*;

    fn policy() -> Policy {
        seed("allow-send-command-two-tags")
    }

    const BOTH: [(&str, &str); 2] = [("tag_key1", "tag_value1"), ("tag_key2", "tag_value2")];

    #[test]
    fn allows_nodes_with_both_tags_whatever_their_kind() {
        let policy = policy();

        assert_eq!(outcome(&policy, INSTANCE, &BOTH), Outcome::Allowed);
        assert_eq!(outcome(&policy, MANAGED, &BOTH), Outcome::Allowed);
    }

    #[test]
    fn denies_nodes_with_one_tag_other_values_or_none() {
        let policy = policy();
        let cases: [&[(&str, &str)]; 4] = [
            &[("tag_key1", "tag_value1")],
            &[("tag_key2", "tag_value2")],
            &[("tag_key1", "tag_value1"), ("tag_key2", "other")],
            &[],
        ];

        for tags in cases {
            assert_eq!(
                outcome(&policy, INSTANCE, tags),
                Outcome::ImplicitDeny,
                "{tags:?}"
            );
            assert_eq!(
                outcome(&policy, MANAGED, tags),
                Outcome::ImplicitDeny,
                "{tags:?}"
            );
        }
    }

    #[test]
    fn allows_aws_documents_only_in_the_listed_regions() {
        let policy = policy();

        assert_eq!(outcome(&policy, AWS_DOC_WEST1, &[]), Outcome::Allowed);
        assert_eq!(
            outcome(
                &policy,
                "arn:aws:ssm:us-east-2::document/AWS-RunPowerShellScript",
                &[]
            ),
            Outcome::Allowed
        );
        assert_eq!(outcome(&policy, AWS_DOC_EAST1, &[]), Outcome::ImplicitDeny);
    }

    #[test]
    fn an_account_in_the_document_arn_does_not_match_the_empty_account() {
        let own = "arn:aws:ssm:us-west-1:123456789012:document/AWS-Lookalike";

        assert_eq!(outcome(&policy(), own, &[]), Outcome::ImplicitDeny);
    }

    #[test]
    fn a_document_carrying_both_tags_is_allowed_by_the_star_statement() {
        assert_eq!(outcome(&policy(), OWN_DOC, &BOTH), Outcome::Allowed);
    }

    #[test]
    fn allows_the_read_actions_without_a_resource() {
        let policy = policy();

        for action in [
            "ssm:ListCommands",
            "ssm:ListCommandInvocations",
            "SSM:listcommands",
        ] {
            assert!(decide(&policy, action, &[]).is_allowed(), "{action}");
        }
        assert!(!decide(&policy, "ssm:CancelCommand", &[]).is_allowed());
    }
}

mod either_tag_group {
    use super::*;

    fn policy() -> Policy {
        seed("allow-send-command-either-tag-group")
    }

    #[test]
    fn allows_nodes_of_either_group_or_both() {
        let policy = policy();
        let cases: [&[(&str, &str)]; 3] = [
            &[("tag_key1", "tag_value1")],
            &[("tag_key2", "tag_value2")],
            &[("tag_key1", "tag_value1"), ("tag_key2", "tag_value2")],
        ];

        for tags in cases {
            assert_eq!(
                outcome(&policy, INSTANCE, tags),
                Outcome::Allowed,
                "{tags:?}"
            );
            assert_eq!(
                outcome(&policy, MANAGED, tags),
                Outcome::Allowed,
                "{tags:?}"
            );
        }
    }

    #[test]
    fn denies_nodes_of_neither_group_and_untagged_nodes() {
        let policy = policy();
        let cases: [&[(&str, &str)]; 3] = [
            &[("tag_key1", "tag_value2")],
            &[("tag_key3", "tag_value1")],
            &[],
        ];

        for tags in cases {
            assert_eq!(
                outcome(&policy, INSTANCE, tags),
                Outcome::ImplicitDeny,
                "{tags:?}"
            );
            assert_eq!(
                outcome(&policy, MANAGED, tags),
                Outcome::ImplicitDeny,
                "{tags:?}"
            );
        }
    }

    #[test]
    fn explains_which_statement_allowed_each_node() {
        let policy = policy();
        let first = ResourceRequest::new(INSTANCE).with_tags([("tag_key1", "tag_value1")]);
        let second = ResourceRequest::new(MANAGED).with_tags([("tag_key2", "tag_value2")]);
        let doc = ResourceRequest::new(AWS_DOC_WEST1);

        let decision = decide(&policy, SEND, &[doc, first, second]);

        let indexes: Vec<usize> = decision
            .resources
            .iter()
            .map(|r| r.matched[0].index)
            .collect();
        assert!(decision.is_allowed());
        assert_eq!(indexes, [2, 0, 1]);
    }
}
