//! AWS managed policies that the configuration may name, with AWS's names and meaning.
//!
//! Only the statements that concern services tagrun serves matter for decisions, but
//! the documents keep the shape of AWS's so that explanations read the same.

use std::sync::LazyLock;

use tagrun_policy::Policy;

/// The names the configuration accepts in `managed_policies`.
pub const NAMES: &[&str] = &[
    "AmazonSSMFullAccess",
    "AmazonSSMReadOnlyAccess",
    "AmazonSSMManagedInstanceCore",
];

static POLICIES: LazyLock<Vec<Policy>> = LazyLock::new(|| {
    let sources = [
        include_str!("managed/AmazonSSMFullAccess.json"),
        include_str!("managed/AmazonSSMReadOnlyAccess.json"),
        include_str!("managed/AmazonSSMManagedInstanceCore.json"),
    ];
    NAMES
        .iter()
        .zip(sources)
        .map(|(name, json)| {
            let arn = format!("arn:aws:iam::aws:policy/{name}");
            Policy::parse_named(&arn, json).expect("built-in managed policies are well-formed")
        })
        .collect()
});

/// The managed policy called `name`, if tagrun knows it.
pub fn policy(name: &str) -> Option<&'static Policy> {
    NAMES.iter().position(|n| *n == name).map(|i| &POLICIES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_policy_parses() {
        for name in NAMES {
            assert!(policy(name).is_some(), "{name}");
        }
        assert!(policy("AdministratorAccess").is_none());
    }
}
