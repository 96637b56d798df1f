//! Request and response shapes shared by the tagrun agent and server, AWS Signature
//! Version 4, and the AWS error shape.
//!
//! Field names are exactly those on the wire (PascalCase for the JSON 1.1 operations,
//! camelCase inside reply payloads), so the same types talk to AWS itself.

pub mod command;
pub mod error;
pub mod messages;
pub mod reply;
pub mod sigv4;
pub mod ssm;
pub mod time;

pub use error::{AwsError, ErrorBody, error_chain};
