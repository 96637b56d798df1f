//! Errors of document handling, each tied to the AWS error code a caller returns.

/// Why a document, its parameters or a version request was refused.
///
/// `Display` is the message a caller shows to the operator; [`DocumentError::code`] is the
/// AWS error code (`__type`) that goes with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The content is not a well-formed command document; the message names the element.
    #[error("{0}")]
    Content(String),

    /// The document declares a schema version that command documents do not support.
    #[error("schema version {version:?} is not supported; use 1.2, 2.0 or 2.2")]
    SchemaVersion {
        /// The schema version as written in the document.
        version: String,
    },

    /// The content is larger than the 64 KB that AWS allows.
    #[error("document content is {size} bytes, more than the 64 KB limit")]
    Size {
        /// Size of the content in bytes.
        size: usize,
    },

    /// The supplied parameters do not fit the document; the message names the parameter.
    #[error("{0}")]
    Parameters(String),

    /// A document version does not exist or is not a valid version string.
    #[error("{0}")]
    Version(String),

    /// New content is identical to an existing version of the same document.
    #[error("the content is identical to version {version} of this document")]
    DuplicateContent {
        /// The existing version with the same content.
        version: String,
    },

    /// The document already has as many versions as AWS allows.
    #[error("the document already has the maximum of {limit} versions")]
    VersionLimit {
        /// The number of versions a document may have.
        limit: usize,
    },
}

impl DocumentError {
    /// The AWS error code for this error, as sent in `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Content(_) => "InvalidDocumentContent",
            Self::SchemaVersion { .. } => "InvalidDocumentSchemaVersion",
            Self::Size { .. } => "MaxDocumentSizeExceeded",
            Self::Parameters(_) => "InvalidParameters",
            Self::Version(_) => "InvalidDocumentVersion",
            Self::DuplicateContent { .. } => "DuplicateDocumentContent",
            Self::VersionLimit { .. } => "DocumentVersionLimitExceeded",
        }
    }
}
