//! AWS IAM policy language: parse, evaluate, explain.
//!
//! Policies are parsed once into a compiled form ([`Policy`]) and then evaluated against
//! a request: an action, the resources it touches, and a typed [`Context`]. Decisions
//! follow IAM's rules for identity-based policies in one account: an explicit deny wins
//! over an allow, which wins over the default implicit deny, and a request that touches
//! several resources is allowed only when each of them is.
//!
//! Limitation: only identity-based policies of one account are evaluated; resource-based
//! policies, permissions boundaries, session policies and organization policies are not
//! part of a decision.
//!
//! Limitation: numbers in Numeric conditions are compared as 64-bit floating point, so
//! integers beyond 2^53 lose precision.
//!
//! ```
//! use tagrun_policy::{Context, Policy, ResourceRequest, evaluate};
//!
//! let policy = Policy::parse(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": {
//!         "Effect": "Allow",
//!         "Action": "ssm:SendCommand",
//!         "Resource": "*",
//!         "Condition": {"StringEquals": {"ssm:resourceTag/Env": "prod"}}
//!     }
//! }"#)?;
//! let node = ResourceRequest::new("arn:aws:ec2:us-east-1:123456789012:instance/i-1")
//!     .with_tags([("env", "prod")]);
//!
//! let decision = evaluate([&policy], "ssm:SendCommand", &[node], &Context::new());
//!
//! assert!(decision.is_allowed());
//! # Ok::<(), tagrun_policy::PolicyError>(())
//! ```

mod arn;
mod condition;
mod context;
mod eval;
mod glob;
mod json;
mod parse;
mod policy;
mod scalar;
mod template;

pub use context::{Context, Value};
pub use eval::{
    Decision, NO_RESOURCE, Outcome, ResourceDecision, ResourceRequest, access_denied_message,
    evaluate, evaluate_resource, evaluate_without_resource, missing_context_keys,
};
pub use json::Position;
pub use parse::PolicyError;
pub use policy::{
    Effect, GROUP_INLINE_QUOTA, MANAGED_POLICY_QUOTA, MAX_DOCUMENT_CHARS, MatchedStatement, Policy,
    ROLE_INLINE_QUOTA, USER_INLINE_QUOTA, Version,
};
