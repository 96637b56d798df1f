//! Compiled policies and statements.

use std::sync::Arc;

use crate::arn::{RequestArn, ResourcePattern};
use crate::condition::Condition;
use crate::context::Scope;
use crate::glob::Glob;
use crate::json::Position;
use crate::parse::{self, PolicyError};

/// The most characters a policy document may have at the API (`PolicyDocument`).
pub const MAX_DOCUMENT_CHARS: usize = 131_072;
/// IAM quota for one customer managed policy, whitespace not counted.
pub const MANAGED_POLICY_QUOTA: usize = 6_144;
/// IAM quota for all inline policies of one user together, whitespace not counted.
pub const USER_INLINE_QUOTA: usize = 2_048;
/// IAM quota for all inline policies of one group together, whitespace not counted.
pub const GROUP_INLINE_QUOTA: usize = 5_120;
/// IAM quota for all inline policies of one role together, whitespace not counted.
pub const ROLE_INLINE_QUOTA: usize = 10_240;

/// Whether a statement grants or refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// The policy language version, which decides whether `${...}` is a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2012-10-17`: the current language, with policy variables.
    V2012_10_17,
    /// `2008-10-17`: the original language; `${...}` is plain text.
    V2008_10_17,
}

impl Version {
    /// The version as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2012_10_17 => "2012-10-17",
            Version::V2008_10_17 => "2008-10-17",
        }
    }
}

/// A parsed and compiled IAM identity-based policy, cheap to clone and to share
/// between threads.
#[derive(Clone, Debug)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: Arc<str>,
    version: Option<Version>,
    statements: Vec<Statement>,
    size: usize,
}

impl Policy {
    /// Parses and compiles a policy document named `Policy` in explanations.
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse_named("Policy", json)
    }

    /// Parses and compiles a policy document; `name` identifies it in explanations
    /// (`SourcePolicyId` in the simulator's output).
    pub fn parse_named(name: &str, json: &str) -> Result<Policy, PolicyError> {
        let name: Arc<str> = Arc::from(name);
        let document = parse::parse_document(json, &name)?;
        let size = json.chars().filter(|c| !c.is_whitespace()).count();
        let inner = Inner {
            name,
            version: document.version,
            statements: document.statements,
            size,
        };
        Ok(Policy {
            inner: Arc::new(inner),
        })
    }

    /// The name given when parsing.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The `Version` element, if the document has one.
    pub fn version(&self) -> Option<Version> {
        self.inner.version
    }

    /// How many statements the policy has.
    pub fn statement_count(&self) -> usize {
        self.inner.statements.len()
    }

    /// The size IAM counts against its quotas: characters other than whitespace.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Checks the size against an IAM quota such as [`MANAGED_POLICY_QUOTA`].
    pub fn check_size(&self, quota: usize) -> Result<(), PolicyError> {
        if self.inner.size > quota {
            return Err(PolicyError::Size {
                size: self.inner.size,
                quota,
            });
        }
        Ok(())
    }

    /// Every condition key the policy tests, as written, without repeats.
    pub fn condition_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let all = self.inner.statements.iter().flat_map(|s| &s.conditions);
        for key in all.map(Condition::key) {
            if !keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                keys.push(key.to_owned());
            }
        }
        keys
    }

    pub(crate) fn statements(&self) -> &[Statement] {
        &self.inner.statements
    }
}

/// A statement that took part in a decision, located in its document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatchedStatement {
    /// The name of the policy the statement is in.
    pub policy: Arc<str>,
    /// The statement's place in the policy's `Statement` list, from 0.
    pub index: usize,
    /// The statement's `Sid`, if it has one.
    pub sid: Option<Arc<str>>,
    /// What the statement does.
    pub effect: Effect,
    /// Where the statement starts, in the simulator's convention: the line of its opening
    /// brace and the column just after it.
    pub start: Position,
    /// Where the statement ends, in the same convention: just after its closing brace.
    pub end: Position,
}

/// Either a list of patterns or everything except them (`NotAction`, `NotResource`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Either<T> {
    pub except: bool,
    pub items: Vec<T>,
}

/// One compiled statement.
#[derive(Clone, Debug)]
pub(crate) struct Statement {
    pub matched: MatchedStatement,
    pub actions: Either<Glob>,
    pub resources: Either<ResourcePattern>,
    pub conditions: Vec<Condition>,
}

impl Statement {
    /// Whether the statement covers the action, which must be folded with
    /// [`crate::glob::fold_text`] (action names ignore case).
    pub fn covers_action(&self, folded_action: &str) -> bool {
        let listed = self
            .actions
            .items
            .iter()
            .any(|glob| glob.matches(folded_action, false));
        listed != self.actions.except
    }

    /// Whether the statement covers the resource.
    pub fn covers_resource(&self, resource: &RequestArn<'_>, scope: &Scope<'_>) -> bool {
        let listed = self
            .resources
            .items
            .iter()
            .any(|pattern| pattern.matches(resource, scope));
        listed != self.resources.except
    }

    /// Whether every condition holds.
    pub fn conditions_hold(&self, scope: &Scope<'_>) -> bool {
        self.conditions
            .iter()
            .all(|condition| condition.holds(scope))
    }

    /// The condition keys of this statement.
    pub fn condition_keys(&self) -> impl Iterator<Item = &str> {
        self.conditions.iter().map(Condition::key)
    }
}
