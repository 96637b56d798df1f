//! The plugins (step actions) that command documents name, and the platforms they run on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use self::Platform::{Linux, MacOS, Windows};

/// The operating system family of a node, as SSM names it (`PlatformType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Platform {
    /// Windows Server and desktop Windows.
    Windows,
    /// Linux distributions.
    Linux,
    /// macOS.
    MacOS,
}

impl Platform {
    /// Every platform, in the order AWS lists them.
    pub const ALL: [Platform; 3] = [Platform::Windows, Platform::Linux, Platform::MacOS];

    /// The wire spelling: `Windows`, `Linux` or `MacOS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Windows => "Windows",
            Self::Linux => "Linux",
            Self::MacOS => "MacOS",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform name that is not `Windows`, `Linux` or `MacOS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform type {0:?}; use Windows, Linux or MacOS")]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;

    /// Accepts the names in any case, as preconditions compare them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPlatform(s.to_owned()))
    }
}

/// `aws:runShellScript`: a shell script on Linux and macOS.
pub const RUN_SHELL_SCRIPT: &str = "aws:runShellScript";
/// `aws:runPowerShellScript`: a PowerShell script on Windows, or with `pwsh` elsewhere.
pub const RUN_POWERSHELL_SCRIPT: &str = "aws:runPowerShellScript";
/// `aws:runDocument`: another command document, run as one step.
pub const RUN_DOCUMENT: &str = "aws:runDocument";

/// Every plugin AWS's agent knows, with the platforms it runs on there.
const KNOWN: &[(&str, &[Platform])] = &[
    (RUN_SHELL_SCRIPT, &[Linux, MacOS]),
    (RUN_POWERSHELL_SCRIPT, &[Windows, Linux, MacOS]),
    (RUN_DOCUMENT, &[Windows, Linux, MacOS]),
    ("aws:downloadContent", &[Windows, Linux, MacOS]),
    ("aws:softwareInventory", &[Windows, Linux, MacOS]),
    ("aws:configurePackage", &[Windows, Linux, MacOS]),
    ("aws:configureDaemon", &[Windows, Linux]),
    ("aws:updateSsmAgent", &[Windows, Linux, MacOS]),
    ("aws:updateAgent", &[Windows]),
    ("aws:domainJoin", &[Windows, Linux]),
    ("aws:cloudWatch", &[Windows]),
    ("aws:runDockerAction", &[Windows, Linux]),
    ("aws:configureDocker", &[Windows, Linux]),
    ("aws:refreshAssociation", &[Windows, Linux, MacOS]),
    ("aws:psModule", &[Windows]),
    ("aws:applications", &[Windows]),
];

/// Whether AWS's agent knows a plugin of this name.
pub fn is_known(plugin: &str) -> bool {
    KNOWN.iter().any(|(name, _)| *name == plugin)
}

/// The platforms a known plugin runs on; empty for unknown names.
pub fn platforms_of(plugin: &str) -> &'static [Platform] {
    KNOWN
        .iter()
        .find(|(name, _)| *name == plugin)
        .map_or(&[], |(_, platforms)| platforms)
}

/// Whether tagrun's agent can run this plugin at all (on some platform).
///
/// Limitation: only `aws:runShellScript`, `aws:runPowerShellScript` and `aws:runDocument` run;
/// documents with other plugins are accepted and described, but those steps fail when run.
pub fn is_implemented(plugin: &str) -> bool {
    matches!(
        plugin,
        RUN_SHELL_SCRIPT | RUN_POWERSHELL_SCRIPT | RUN_DOCUMENT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platform_names_in_any_case() {
        assert_eq!("linux".parse(), Ok(Platform::Linux));
        assert_eq!("MACOS".parse(), Ok(Platform::MacOS));
        assert_eq!("Windows".parse(), Ok(Platform::Windows));
        assert!("Ubuntu".parse::<Platform>().is_err());
    }

    #[test]
    fn serializes_platforms_with_aws_spelling() {
        let json = serde_json::to_string(&Platform::ALL).expect("serialize");

        assert_eq!(json, r#"["Windows","Linux","MacOS"]"#);
    }

    #[test]
    fn shell_scripts_do_not_run_on_windows() {
        assert_eq!(
            platforms_of(RUN_SHELL_SCRIPT),
            [Platform::Linux, Platform::MacOS]
        );
        assert!(platforms_of(RUN_POWERSHELL_SCRIPT).contains(&Platform::Windows));
    }

    #[test]
    fn knows_plugins_it_does_not_implement() {
        assert!(is_known("aws:downloadContent"));
        assert!(!is_implemented("aws:downloadContent"));
        assert!(!is_known("aws:runBashScript"));
        assert!(platforms_of("aws:runBashScript").is_empty());
    }
}
