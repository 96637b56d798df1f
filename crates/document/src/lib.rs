//! SSM command documents: schema, parameters, interpolation, built-ins.
//!
//! The server uses this crate to validate documents (CreateDocument, UpdateDocument), to
//! describe them and to check SendCommand's parameters; the agent uses it to turn the document
//! and parameters of a command into a [`Plan`] of steps to run.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use tagrun_document::{Platform, StepAction, builtin};
//!
//! let document = builtin("AWS-RunShellScript").expect("built in").document();
//! let supplied = BTreeMap::from([("commands".to_owned(), vec!["echo hello".to_owned()])]);
//! let parameters = document.validate_parameters(&supplied)?;
//!
//! let plan = document.plan(&parameters, Platform::Linux)?;
//!
//! assert_eq!(plan.steps[0].name, "aws:runShellScript");
//! let StepAction::Run { scripts } = &plan.steps[0].action else { panic!("runs") };
//! assert_eq!(scripts[0].commands, ["echo hello"]);
//! assert_eq!(scripts[0].timeout_seconds, 3600);
//! # Ok::<(), tagrun_document::DocumentError>(())
//! ```

mod builtin;
mod content;
mod document;
mod error;
mod interpolate;
mod parameter;
mod plan;
mod plugin;
mod version;

pub use builtin::{BuiltinDocument, builtin, builtins, is_reserved_name};
pub use content::{DocumentFormat, MAX_DOCUMENT_SIZE};
pub use document::{Document, Precondition, SchemaVersion, Step};
pub use error::DocumentError;
pub use interpolate::{interpolate, interpolate_str};
pub use parameter::{AllowedPattern, ParameterDefinition, ParameterType, ResolvedParameters};
pub use plan::{
    DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, OnFailure, OnSuccess, Plan,
    PlanStep, Script, Shell, StepAction, timeout_seconds,
};
pub use plugin::{
    Platform, RUN_DOCUMENT, RUN_POWERSHELL_SCRIPT, RUN_SHELL_SCRIPT, UnknownPlatform,
    is_implemented, is_known, platforms_of,
};
pub use version::{DocumentVersions, HASH_TYPE, MAX_VERSIONS, VersionSelector, document_hash};
