//! The documents AWS owns that tagrun ships: `AWS-RunShellScript` and `AWS-RunPowerShellScript`.

use std::sync::LazyLock;

use crate::content::DocumentFormat;
use crate::document::Document;
use crate::version::document_hash;

/// A document that every account can use without creating it.
#[derive(Debug)]
pub struct BuiltinDocument {
    name: &'static str,
    content: &'static str,
    hash: String,
    document: Document,
}

impl BuiltinDocument {
    /// The document name, such as `AWS-RunShellScript`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The content exactly as GetDocument returns it.
    pub fn content(&self) -> &'static str {
        self.content
    }

    /// The sha256 of the content (`Hash`, `HashType` `Sha256`).
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The parsed document.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The only version of a built-in document, which is also its default and latest.
    pub fn version(&self) -> &'static str {
        "1"
    }

    /// The format of the content.
    pub fn format(&self) -> DocumentFormat {
        DocumentFormat::Json
    }

    /// The owner DescribeDocument and ListDocuments show for AWS's documents.
    pub fn owner(&self) -> &'static str {
        "Amazon"
    }
}

const SOURCES: [(&str, &str); 2] = [
    (
        "AWS-RunShellScript",
        include_str!("builtin/AWS-RunShellScript.json"),
    ),
    (
        "AWS-RunPowerShellScript",
        include_str!("builtin/AWS-RunPowerShellScript.json"),
    ),
];

static BUILTINS: LazyLock<Vec<BuiltinDocument>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(name, content)| BuiltinDocument {
            name,
            content,
            hash: document_hash(content),
            document: Document::parse(content, DocumentFormat::Json)
                .expect("built-in documents are valid, as the tests check"),
        })
        .collect()
});

/// Every built-in document, in name order.
pub fn builtins() -> &'static [BuiltinDocument] {
    &BUILTINS
}

/// The built-in document with this exact name.
pub fn builtin(name: &str) -> Option<&'static BuiltinDocument> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Whether a name is reserved for AWS's documents, so that accounts cannot create it: names
/// starting with `AWS-`, `Amazon` or `AMZN`, in any case.
pub fn is_reserved_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["aws-", "amazon", "amzn"]
        .iter()
        .any(|prefix| lower.starts_with(prefix))
}

#[cfg(test)]
mod tests;
