//! Decisions: explicit deny over allow over implicit deny, resource by resource.

use std::fmt;

use crate::arn::RequestArn;
use crate::context::{Context, Key, Scope};
use crate::glob::fold_text;
use crate::policy::{Effect, MatchedStatement, Policy};

/// The resource named for actions that have no resource type.
pub const NO_RESOURCE: &str = "*";

/// One resource of a request, with context entries of its own (typically its tags as
/// `aws:ResourceTag/<Key>` and `ssm:resourceTag/<Key>`), which take precedence over the
/// request-wide entries of the same name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceRequest {
    arn: String,
    context: Context,
}

impl ResourceRequest {
    /// A resource without entries of its own.
    pub fn new(arn: impl Into<String>) -> ResourceRequest {
        ResourceRequest {
            arn: arn.into(),
            context: Context::new(),
        }
    }

    /// Adds the resource's tags under both tag condition keys.
    #[must_use]
    pub fn with_tags<I, K, V>(mut self, tags: I) -> ResourceRequest
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.context.insert_resource_tags(tags);
        self
    }

    /// Replaces the resource's own entries.
    #[must_use]
    pub fn with_context(mut self, context: Context) -> ResourceRequest {
        self.context = context;
        self
    }

    /// The resource's own entries, to add more.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// The resource's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }
}

/// The result of evaluating a request, or one resource of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A statement allows it and none denies it.
    Allowed,
    /// A statement denies it.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

impl Outcome {
    /// The simulator's spelling: `allowed`, `explicitDeny` or `implicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::ExplicitDeny => "explicitDeny",
            Outcome::ImplicitDeny => "implicitDeny",
        }
    }
}

/// The decision on one resource, with the statements that made it: the matching Deny
/// statements for an explicit deny, the matching Allow statements otherwise (none for an
/// implicit deny).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDecision {
    /// The resource's ARN, or `*`.
    pub resource: String,
    /// What the policies decided.
    pub outcome: Outcome,
    /// The statements behind the outcome.
    pub matched: Vec<MatchedStatement>,
}

/// The decision on a whole request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed only when every resource is allowed; otherwise the outcome of the first
    /// resource that was not.
    pub outcome: Outcome,
    /// The position in `resources` of the first resource that was not allowed.
    pub failed: Option<usize>,
    /// The decision on each resource, in request order.
    pub resources: Vec<ResourceDecision>,
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// Whether a statement denied the request.
    pub fn is_explicit_deny(&self) -> bool {
        self.outcome == Outcome::ExplicitDeny
    }

    /// The first resource that was not allowed.
    pub fn failed_resource(&self) -> Option<&ResourceDecision> {
        self.failed.and_then(|index| self.resources.get(index))
    }

    /// AWS's AccessDenied message for this decision, naming the first resource that was
    /// not allowed (no resource clause for actions without a resource type).
    pub fn access_denied_message(&self, principal_arn: &str, action: &str) -> String {
        let resource = self
            .failed_resource()
            .map(|decision| decision.resource.as_str())
            .filter(|arn| *arn != NO_RESOURCE);
        access_denied_message(principal_arn, action, resource, self)
    }
}

impl fmt::Display for Decision {
    /// One line for logs: the outcome and the statements or resource behind it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decisive = match self.failed_resource() {
            Some(failed) => failed,
            None => match self.resources.first() {
                Some(first) => first,
                None => return f.write_str(self.outcome.as_str()),
            },
        };
        write!(f, "{} on {}", self.outcome.as_str(), decisive.resource)?;
        if decisive.matched.is_empty() {
            return f.write_str(": no statement allows it");
        }
        let by = if self.is_allowed() {
            "allowed by"
        } else {
            "denied by"
        };
        write!(f, ": {by}")?;
        for (n, statement) in decisive.matched.iter().enumerate() {
            let sep = if n == 0 { " " } else { ", " };
            write!(
                f,
                "{sep}{} statement {}",
                statement.policy,
                statement.index + 1
            )?;
            if let Some(sid) = &statement.sid {
                write!(f, " ({sid})")?;
            }
        }
        Ok(())
    }
}

/// Evaluates `action` on every resource. The request is allowed only when each
/// resource is; an empty `resources` means the action has no resource type and is
/// evaluated against `*`.
pub fn evaluate<'p, I>(
    policies: I,
    action: &str,
    resources: &[ResourceRequest],
    context: &Context,
) -> Decision
where
    I: IntoIterator<Item = &'p Policy>,
    I::IntoIter: Clone,
{
    let policies = policies.into_iter();
    let action = fold_text(action);
    let action = action.as_ref();
    if resources.is_empty() {
        let only = ResourceRequest::new(NO_RESOURCE);
        let decision = decide(policies, action, &only, context);
        return combine(vec![decision]);
    }

    let decisions = resources
        .iter()
        .map(|resource| decide(policies.clone(), action, resource, context))
        .collect();
    combine(decisions)
}

/// Evaluates `action` on one resource.
pub fn evaluate_resource<'p, I>(
    policies: I,
    action: &str,
    resource: &ResourceRequest,
    context: &Context,
) -> Decision
where
    I: IntoIterator<Item = &'p Policy>,
    I::IntoIter: Clone,
{
    evaluate(policies, action, std::slice::from_ref(resource), context)
}

/// Evaluates an action that has no resource type (only `*` resources apply).
pub fn evaluate_without_resource<'p, I>(policies: I, action: &str, context: &Context) -> Decision
where
    I: IntoIterator<Item = &'p Policy>,
    I::IntoIter: Clone,
{
    evaluate(policies, action, &[], context)
}

/// Condition keys that the statements covering `action` and `resource` test but that
/// neither the resource nor the request context holds (the simulator's
/// `MissingContextValues`), as written in the policies, without repeats.
pub fn missing_context_keys<'p, I>(
    policies: I,
    action: &str,
    resource: &ResourceRequest,
    context: &Context,
) -> Vec<String>
where
    I: IntoIterator<Item = &'p Policy>,
{
    let scope = Scope {
        resource: &resource.context,
        request: context,
    };
    let action = fold_text(action);
    let action = action.as_ref();
    let arn = RequestArn::new(&resource.arn);
    let mut missing: Vec<String> = Vec::new();
    let covering = policies
        .into_iter()
        .flat_map(Policy::statements)
        .filter(|s| s.covers_action(action) && s.covers_resource(&arn, &scope));
    for key in covering.flat_map(|s| s.condition_keys()) {
        let known = scope.get(&Key::new(key)).is_some();
        if !known && !missing.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            missing.push(key.to_owned());
        }
    }
    missing
}

/// AWS's AccessDeniedException message. `resource` is `None` for actions without a
/// resource type; an explicit deny is worded differently from an implicit one.
pub fn access_denied_message(
    principal_arn: &str,
    action: &str,
    resource: Option<&str>,
    decision: &Decision,
) -> String {
    let on = resource.map_or_else(String::new, |arn| format!(" on resource: {arn}"));
    let head = format!("User: {principal_arn} is not authorized to perform: {action}{on}");
    if decision.is_explicit_deny() {
        format!("{head} with an explicit deny in an identity-based policy")
    } else {
        format!("{head} because no identity-based policy allows the {action} action")
    }
}

/// Decides one resource: every statement of every policy is consulted.
fn decide<'p>(
    policies: impl Iterator<Item = &'p Policy>,
    action: &str,
    resource: &ResourceRequest,
    context: &Context,
) -> ResourceDecision {
    let scope = Scope {
        resource: &resource.context,
        request: context,
    };
    let arn = RequestArn::new(&resource.arn);
    let mut allows = Vec::new();
    let mut denies = Vec::new();
    for statement in policies.flat_map(Policy::statements) {
        let applies = statement.covers_action(action)
            && statement.covers_resource(&arn, &scope)
            && statement.conditions_hold(&scope);
        if !applies {
            continue;
        }
        match statement.matched.effect {
            Effect::Allow => allows.push(statement.matched.clone()),
            Effect::Deny => denies.push(statement.matched.clone()),
        }
    }

    let (outcome, matched) = if !denies.is_empty() {
        (Outcome::ExplicitDeny, denies)
    } else if !allows.is_empty() {
        (Outcome::Allowed, allows)
    } else {
        (Outcome::ImplicitDeny, Vec::new())
    };
    ResourceDecision {
        resource: resource.arn.clone(),
        outcome,
        matched,
    }
}

fn combine(resources: Vec<ResourceDecision>) -> Decision {
    let failed = resources.iter().position(|r| r.outcome != Outcome::Allowed);
    let outcome = failed.map_or(Outcome::Allowed, |index| resources[index].outcome);
    Decision {
        outcome,
        failed,
        resources,
    }
}
