//! The agent's configuration file (`/etc/tagrun/agent.toml` by default).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tagrun_wire::sigv4::Credentials;

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tagrun/agent.toml";

/// The state directory used when the config names none.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tagrun-agent";

/// The instance metadata service address used when `[imds]` names none.
pub const DEFAULT_IMDS_ADDRESS: &str = "http://169.254.169.254";

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read config file {path}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config, or a key is unknown or mistyped.
    #[error("invalid config file {path}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's report, naming the key.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range or malformed.
    #[error("invalid value for {key} in {path}: {reason}")]
    Value {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The agent's settings, validated and typed.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// One URL for every service.
    pub endpoint: Url,
    /// The signing region.
    pub region: String,
    /// Where registration, commands in flight, replies and outputs live.
    pub state_dir: PathBuf,
    /// Tags the node reports about itself.
    pub tags: BTreeMap<String, String>,
    /// Time between health reports.
    pub health_interval: Duration,
    /// Commands that may run at once.
    pub command_workers: usize,
    /// Static credentials (an EC2-style node or a test) instead of a registration.
    pub credentials: Option<StaticIdentity>,
    /// Instance metadata service address, when reading an EC2 identity is enabled.
    pub imds_address: Option<Url>,
    /// Extra PEM certificates to trust for the endpoint.
    pub ca_bundle: Option<PathBuf>,
    /// The program and arguments that reboot the node (exit code 194).
    pub reboot_command: Vec<String>,
    /// Time between SIGTERM and SIGKILL when a step is stopped.
    pub kill_grace: Duration,
    /// HTTP timeout of every call; a long poll must be answered within it.
    pub request_timeout: Duration,
}

/// A node identity given in the config file.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticIdentity {
    /// The node's instance id.
    pub instance_id: String,
    /// Its keys.
    pub credentials: Credentials,
}

impl fmt::Debug for StaticIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticIdentity")
            .field("instance_id", &self.instance_id)
            .field("credentials", &self.credentials)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    endpoint: String,
    region: String,
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default = "default_health_interval")]
    health_interval_secs: u64,
    #[serde(default = "default_workers")]
    command_workers: usize,
    #[serde(default)]
    credentials: Option<RawCredentials>,
    #[serde(default)]
    imds: Option<RawImds>,
    #[serde(default)]
    ca_bundle: Option<PathBuf>,
    #[serde(default)]
    reboot_command: Option<Vec<String>>,
    #[serde(default = "default_kill_grace")]
    kill_grace_secs: u64,
    #[serde(default = "default_request_timeout")]
    request_timeout_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    instance_id: String,
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImds {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    address: Option<String>,
}

fn default_health_interval() -> u64 {
    300
}

fn default_workers() -> usize {
    5
}

fn default_kill_grace() -> u64 {
    10
}

fn default_request_timeout() -> u64 {
    20
}

fn default_reboot_command() -> Vec<String> {
    ["/sbin/shutdown", "-r", "+1"].map(str::to_owned).to_vec()
}

impl AgentConfig {
    /// A config with every optional setting at its default, for embedding the agent.
    pub fn new(endpoint: Url, region: &str, state_dir: PathBuf) -> Self {
        Self {
            endpoint,
            region: region.to_owned(),
            state_dir,
            tags: BTreeMap::new(),
            health_interval: Duration::from_secs(default_health_interval()),
            command_workers: default_workers(),
            credentials: None,
            imds_address: None,
            ca_bundle: None,
            reboot_command: default_reboot_command(),
            kill_grace: Duration::from_secs(default_kill_grace()),
            request_timeout: Duration::from_secs(default_request_timeout()),
        }
    }

    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let bad = |key, reason: String| ConfigError::Value {
            path: path.to_owned(),
            key,
            reason,
        };

        let endpoint = parse_url(&raw.endpoint).map_err(|reason| bad("endpoint", reason))?;
        if raw.region.trim().is_empty() {
            return Err(bad("region", "must not be empty".to_owned()));
        }
        if raw.command_workers == 0 {
            return Err(bad("command_workers", "must be at least 1".to_owned()));
        }
        if raw.health_interval_secs == 0 {
            return Err(bad("health_interval_secs", "must be at least 1".to_owned()));
        }
        if raw.request_timeout_secs < 5 {
            return Err(bad("request_timeout_secs", "must be at least 5".to_owned()));
        }

        let imds_address = match raw.imds {
            Some(RawImds {
                enabled: true,
                address,
            }) => {
                let address = address.as_deref().unwrap_or(DEFAULT_IMDS_ADDRESS);
                Some(parse_url(address).map_err(|reason| bad("imds.address", reason))?)
            }
            _ => None,
        };
        let reboot_command = match raw.reboot_command {
            Some(command) if command.is_empty() => {
                return Err(bad("reboot_command", "must name a program".to_owned()));
            }
            Some(command) => command,
            None => default_reboot_command(),
        };

        Ok(Self {
            endpoint,
            region: raw.region,
            state_dir: raw
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            tags: raw.tags,
            health_interval: Duration::from_secs(raw.health_interval_secs),
            command_workers: raw.command_workers,
            credentials: raw.credentials.map(static_identity),
            imds_address,
            ca_bundle: raw.ca_bundle,
            reboot_command,
            kill_grace: Duration::from_secs(raw.kill_grace_secs),
            request_timeout: Duration::from_secs(raw.request_timeout_secs),
        })
    }
}

fn static_identity(raw: RawCredentials) -> StaticIdentity {
    StaticIdentity {
        instance_id: raw.instance_id,
        credentials: Credentials {
            access_key_id: raw.access_key_id,
            secret_access_key: raw.secret_access_key,
            session_token: raw.session_token,
        },
    }
}

/// Parses an `http://` or `https://` URL with a host.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{text:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(text, Path::new("agent.toml"))
    }

    #[test]
    fn reads_the_documented_example() {
        let config = parse(
            r#"
            endpoint = "https://tagrun.example.net:7733"
            region = "us-east-1"
            state_dir = "/var/lib/tagrun-agent"
            tags = { Finance = "WebServer", Env = "prod" }
            health_interval_secs = 300
            command_workers = 5

            [credentials]
            instance_id = "i-0123456789abcdef0"
            access_key_id = "AKIAEXAMPLENODE00001"
            secret_access_key = "node-secret"
            "#,
        )
        .expect("valid config");

        assert_eq!(config.endpoint.as_str(), "https://tagrun.example.net:7733/");
        assert_eq!(
            config.tags.get("Finance").map(String::as_str),
            Some("WebServer")
        );
        assert_eq!(config.command_workers, 5);
        let identity = config.credentials.expect("static identity");
        assert_eq!(identity.instance_id, "i-0123456789abcdef0");
        assert!(!format!("{identity:?}").contains("node-secret"));
        assert_eq!(config.imds_address, None);
    }

    #[test]
    fn a_built_config_matches_a_parsed_one() {
        let parsed = parse("endpoint = \"http://127.0.0.1:7733\"\nregion = \"us-east-1\"")
            .expect("valid config");

        let built = AgentConfig::new(
            parsed.endpoint.clone(),
            "us-east-1",
            parsed.state_dir.clone(),
        );

        assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
    }

    #[test]
    fn applies_defaults() {
        let config = parse("endpoint = \"http://127.0.0.1:7733\"\nregion = \"us-east-1\"")
            .expect("valid config");

        assert_eq!(config.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(config.health_interval, Duration::from_secs(300));
        assert_eq!(config.reboot_command[0], "/sbin/shutdown");
    }

    #[test]
    fn enables_imds_only_when_asked() {
        let base = "endpoint = \"http://127.0.0.1:1\"\nregion = \"r\"\n";
        let enabled = parse(&format!(
            "{base}[imds]\nenabled = true\naddress = \"http://127.0.0.1:9\""
        ))
        .expect("valid config");
        let disabled = parse(&format!("{base}[imds]\naddress = \"http://127.0.0.1:9\""))
            .expect("valid config");

        assert_eq!(
            enabled.imds_address.expect("enabled").as_str(),
            "http://127.0.0.1:9/"
        );
        assert_eq!(disabled.imds_address, None);
    }

    #[test]
    fn names_the_bad_key() {
        let unknown = parse("endpoint = \"http://h\"\nregion = \"r\"\nworkers = 3");
        let zero = parse("endpoint = \"http://h\"\nregion = \"r\"\ncommand_workers = 0");
        let url = parse("endpoint = \"ftp://h\"\nregion = \"r\"");

        let unknown = unknown.expect_err("unknown key").source_text();
        assert!(unknown.contains("workers"), "{unknown}");
        assert!(
            zero.expect_err("zero workers")
                .to_string()
                .contains("command_workers")
        );
        assert!(
            url.expect_err("bad scheme")
                .to_string()
                .contains("endpoint")
        );
    }

    impl ConfigError {
        fn source_text(&self) -> String {
            match self {
                ConfigError::Parse { source, .. } => source.to_string(),
                other => other.to_string(),
            }
        }
    }
}
