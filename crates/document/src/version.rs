//! Document hashes and versions as the server stores them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DocumentError;

/// The hash type tagrun reports (`HashType`).
pub const HASH_TYPE: &str = "Sha256";

/// The most versions one document may have.
pub const MAX_VERSIONS: usize = 1000;

/// The sha256 of content as stored, in lowercase hex (`DocumentHash`).
pub fn document_hash(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which version a request names (`DocumentVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// `$DEFAULT`, or no version given.
    Default,
    /// `$LATEST`.
    Latest,
    /// A version number.
    Number(u32),
}

impl VersionSelector {
    /// Reads a `DocumentVersion` field; absent or empty means the default version.
    pub fn parse(text: Option<&str>) -> Result<Self, DocumentError> {
        match text {
            None | Some("" | "$DEFAULT") => Ok(Self::Default),
            Some("$LATEST") => Ok(Self::Latest),
            Some(number) => number
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0 && !number.starts_with(['0', '+']))
                .map(Self::Number)
                .ok_or_else(|| {
                    DocumentError::Version(format!(
                        "document version {number:?} is not valid; use $DEFAULT, $LATEST or a \
                         version number"
                    ))
                }),
        }
    }
}

/// The versions of one document: their hashes in version order, and the default.
///
/// Versions are numbered from 1 without gaps; the server keeps each version's content beside
/// this record.
///
/// Limitation: single versions cannot be deleted; only whole documents can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentVersions {
    hashes: Vec<String>,
    default_version: usize,
}

impl DocumentVersions {
    /// A new document: version 1 with this content hash, which is also the default.
    pub fn new(first_hash: String) -> Self {
        Self {
            hashes: vec![first_hash],
            default_version: 1,
        }
    }

    /// Rebuilds the record from stored parts, checking that they fit together.
    pub fn from_parts(hashes: Vec<String>, default_version: &str) -> Result<Self, DocumentError> {
        let versions = Self {
            hashes,
            default_version: 1,
        };
        let default_version = versions.number(default_version)?;
        Ok(Self {
            default_version,
            ..versions
        })
    }

    /// The content hash of every version, version 1 first.
    pub fn hashes(&self) -> &[String] {
        &self.hashes
    }

    /// The newest version number (`LatestVersion`).
    pub fn latest_version(&self) -> String {
        self.hashes.len().to_string()
    }

    /// The default version number (`DefaultVersion`).
    pub fn default_version(&self) -> String {
        self.default_version.to_string()
    }

    /// The version number a request means, or `InvalidDocumentVersion`.
    pub fn resolve(&self, selector: VersionSelector) -> Result<String, DocumentError> {
        match selector {
            VersionSelector::Default => Ok(self.default_version()),
            VersionSelector::Latest => Ok(self.latest_version()),
            VersionSelector::Number(n) => self.number(&n.to_string()).map(|n| n.to_string()),
        }
    }

    /// The content hash of a version.
    pub fn hash_of(&self, version: &str) -> Option<&str> {
        let index = self.number(version).ok()? - 1;
        self.hashes.get(index).map(String::as_str)
    }

    /// Adds a version for UpdateDocument and returns its number.
    ///
    /// `base` is the request's `DocumentVersion`, which must be `$LATEST` or the latest
    /// number. Content equal to an existing version's is `DuplicateDocumentContent`.
    pub fn add(&mut self, hash: String, base: VersionSelector) -> Result<String, DocumentError> {
        let latest = self.hashes.len();
        let base_is_latest = match base {
            VersionSelector::Latest => true,
            VersionSelector::Number(n) => usize::try_from(n).is_ok_and(|n| n == latest),
            VersionSelector::Default => false,
        };
        if !base_is_latest {
            return Err(DocumentError::Version(format!(
                "only the latest version ({latest}) can be updated; pass $LATEST or {latest}"
            )));
        }
        if let Some(index) = self.hashes.iter().position(|h| *h == hash) {
            return Err(DocumentError::DuplicateContent {
                version: (index + 1).to_string(),
            });
        }
        if latest >= MAX_VERSIONS {
            return Err(DocumentError::VersionLimit {
                limit: MAX_VERSIONS,
            });
        }

        self.hashes.push(hash);
        Ok(self.latest_version())
    }

    /// Makes an existing version the default (UpdateDocumentDefaultVersion).
    pub fn set_default(&mut self, version: &str) -> Result<(), DocumentError> {
        self.default_version = self.number(version)?;
        Ok(())
    }

    /// An existing version's number.
    fn number(&self, version: &str) -> Result<usize, DocumentError> {
        version
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=self.hashes.len()).contains(n) && !version.starts_with(['0', '+']))
            .ok_or_else(|| {
                DocumentError::Version(format!(
                    "document version {version:?} does not exist; versions are 1 to {}",
                    self.hashes.len()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_content_as_lowercase_sha256_hex() {
        assert_eq!(
            document_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reads_version_selectors() {
        assert_eq!(VersionSelector::parse(None), Ok(VersionSelector::Default));
        assert_eq!(
            VersionSelector::parse(Some("$DEFAULT")),
            Ok(VersionSelector::Default)
        );
        assert_eq!(
            VersionSelector::parse(Some("$LATEST")),
            Ok(VersionSelector::Latest)
        );
        assert_eq!(
            VersionSelector::parse(Some("12")),
            Ok(VersionSelector::Number(12))
        );
    }

    #[test]
    fn refuses_malformed_versions_as_invalid_document_version() {
        for bad in [
            "0",
            "01",
            "-1",
            "+1",
            "1.0",
            "latest",
            "$latest",
            "99999999999",
        ] {
            let err = VersionSelector::parse(Some(bad)).expect_err(bad);

            assert_eq!(err.code(), "InvalidDocumentVersion", "{bad}");
        }
    }

    #[test]
    fn numbers_versions_from_one_and_keeps_the_default() {
        let mut versions = DocumentVersions::new("h1".into());

        let second = versions
            .add("h2".into(), VersionSelector::Latest)
            .expect("add");
        let third = versions
            .add("h3".into(), VersionSelector::Number(2))
            .expect("add");

        assert_eq!((second.as_str(), third.as_str()), ("2", "3"));
        assert_eq!(versions.latest_version(), "3");
        assert_eq!(versions.default_version(), "1");
        assert_eq!(versions.hash_of("2"), Some("h2"));
    }

    #[test]
    fn resolves_default_latest_and_numbers() {
        let mut versions = DocumentVersions::new("h1".into());
        versions
            .add("h2".into(), VersionSelector::Latest)
            .expect("add");

        assert_eq!(versions.resolve(VersionSelector::Default), Ok("1".into()));
        assert_eq!(versions.resolve(VersionSelector::Latest), Ok("2".into()));
        assert_eq!(versions.resolve(VersionSelector::Number(2)), Ok("2".into()));
        let err = versions
            .resolve(VersionSelector::Number(3))
            .expect_err("missing");
        assert_eq!(err.code(), "InvalidDocumentVersion");
    }

    #[test]
    fn updates_only_from_the_latest_version() {
        let mut versions = DocumentVersions::new("h1".into());
        versions
            .add("h2".into(), VersionSelector::Latest)
            .expect("add");

        let err = versions
            .add("h3".into(), VersionSelector::Number(1))
            .expect_err("old base");

        assert_eq!(err.code(), "InvalidDocumentVersion");
        assert!(versions.add("h3".into(), VersionSelector::Default).is_err());
    }

    #[test]
    fn refuses_content_identical_to_any_version() {
        let mut versions = DocumentVersions::new("h1".into());
        versions
            .add("h2".into(), VersionSelector::Latest)
            .expect("add");

        let err = versions
            .add("h1".into(), VersionSelector::Latest)
            .expect_err("duplicate");

        assert_eq!(err.code(), "DuplicateDocumentContent");
        assert_eq!(
            err.to_string(),
            "the content is identical to version 1 of this document"
        );
    }

    #[test]
    fn stops_at_the_version_limit() {
        let hashes = (1..=MAX_VERSIONS).map(|n| format!("h{n}")).collect();
        let mut versions = DocumentVersions::from_parts(hashes, "1").expect("parts");

        let err = versions
            .add("new".into(), VersionSelector::Latest)
            .expect_err("limit");

        assert_eq!(err.code(), "DocumentVersionLimitExceeded");
    }

    #[test]
    fn changes_the_default_to_an_existing_version_only() {
        let mut versions = DocumentVersions::new("h1".into());
        versions
            .add("h2".into(), VersionSelector::Latest)
            .expect("add");

        versions.set_default("2").expect("exists");
        let err = versions.set_default("3").expect_err("missing");

        assert_eq!(versions.default_version(), "2");
        assert_eq!(err.code(), "InvalidDocumentVersion");
    }

    #[test]
    fn rebuilds_from_stored_parts() {
        let versions = DocumentVersions::from_parts(vec!["a".into(), "b".into()], "2").expect("ok");

        assert_eq!(versions.default_version(), "2");
        assert!(DocumentVersions::from_parts(vec!["a".into()], "2").is_err());
    }

    #[test]
    fn round_trips_through_json() {
        let versions = DocumentVersions::new("h1".into());

        let json = serde_json::to_string(&versions).expect("serialize");
        let back: DocumentVersions = serde_json::from_str(&json).expect("deserialize");

        assert_eq!(back, versions);
    }
}
