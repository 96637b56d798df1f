//! The server's configuration file, read once at start into typed values.
//!
//! The file format is fixed by the design contract: TOML with `listen`, `region`,
//! `account_id`, `data_dir`, an optional `database_url`, and the `[[users]]`,
//! `[[roles]]` and `[[nodes]]` tables. Policy files named by a user are read and
//! compiled here, so a malformed policy stops the server at start with the file's name
//! rather than failing a request later.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tagrun_policy::Policy;

use crate::auth::managed;

/// Default address: loopback only, so a fresh server is never reachable from outside.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7733";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation, naming the key.
        message: String,
    },
    /// A value is present but not acceptable.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the one HTTP listener.
    pub listen: SocketAddr,
    /// AWS region this server pretends to be; used in ARNs and SigV4 scopes.
    pub region: String,
    /// AWS account id used in ARNs.
    pub account_id: String,
    /// Directory for the SQLite database and other server state.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; when set, used instead of SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// Certificate and key for HTTPS; plain HTTP without them.
    pub tls: Option<TlsConfig>,
    /// IAM users with access keys.
    pub users: Vec<User>,
    /// Roles that activations (and static nodes) name.
    pub roles: Vec<Role>,
    /// Nodes with static keys (EC2-style).
    pub nodes: Vec<StaticNode>,
    /// When set, the only tag keys an agent may report for its own node.
    pub agent_tag_keys: Option<Vec<String>>,
    /// A node not heard from for this long shows `ConnectionLost`.
    pub connection_lost_after_secs: u64,
    /// How long an empty `GetMessages` is held open; under the agents' 20-second
    /// client timeout.
    pub long_poll_secs: u64,
}

/// Certificate chain and private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// An IAM user: access keys, policies and principal tags.
#[derive(Clone)]
pub struct User {
    /// Friendly name, as in `arn:aws:iam::<account>:user/<name>`.
    pub name: String,
    /// Access key id that requests are signed with.
    pub access_key_id: String,
    /// Secret key; never printed.
    pub secret_access_key: String,
    /// Inline and managed policies, compiled.
    pub policies: Vec<Policy>,
    /// Principal tags (`aws:PrincipalTag/<key>`).
    pub tags: BTreeMap<String, String>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("policies", &self.policies.len())
            .field("tags", &self.tags)
            .finish()
    }
}

/// A role that nodes receive credentials for.
#[derive(Debug, Clone)]
pub struct Role {
    /// Role name, as activations name it.
    pub name: String,
    /// The role's policies, compiled.
    pub policies: Vec<Policy>,
}

/// A node with static keys instead of an activation.
#[derive(Clone)]
pub struct StaticNode {
    /// `i-…` or `mi-…`.
    pub instance_id: String,
    /// Access key id the agent signs with.
    pub access_key_id: String,
    /// Secret key; never printed.
    pub secret_access_key: String,
    /// Role whose policies apply to the node.
    pub role: String,
    /// Administrator tags.
    pub tags: BTreeMap<String, String>,
}

impl fmt::Debug for StaticNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticNode")
            .field("instance_id", &self.instance_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("role", &self.role)
            .field("tags", &self.tags)
            .finish()
    }
}

/// The file as written, before policies are read and values checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    tls: Option<TlsConfig>,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    roles: Vec<RawRole>,
    #[serde(default)]
    nodes: Vec<RawNode>,
    agent_tag_keys: Option<Vec<String>>,
    connection_lost_after_secs: Option<u64>,
    long_poll_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    policy_files: Vec<PathBuf>,
    #[serde(default)]
    managed_policies: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    #[serde(default)]
    policy_files: Vec<PathBuf>,
    #[serde(default)]
    managed_policies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    instance_id: String,
    access_key_id: String,
    secret_access_key: String,
    role: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

impl Config {
    /// Reads and checks the file at `path`; relative paths inside are relative to it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned() + &describe_span(text, e.span()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Loader { path, base }.build(raw)
    }

    /// Embedded defaults: loopback listener, SQLite under `data_dir`, no identities.
    pub fn with_defaults(data_dir: PathBuf) -> Config {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("the default address is valid"),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            data_dir,
            database_url: None,
            tls: None,
            users: Vec::new(),
            roles: Vec::new(),
            nodes: Vec::new(),
            agent_tag_keys: None,
            connection_lost_after_secs: 600,
            long_poll_secs: 15,
        }
    }
}

/// Says where in the file a parse error is, as `(line N)`.
fn describe_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    format!(" (line {line})")
}

/// Turns the raw file into a [`Config`], reading policy files relative to `base`.
struct Loader<'a> {
    path: &'a Path,
    base: &'a Path,
}

impl Loader<'_> {
    fn build(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen
            .parse()
            .map_err(|_| self.invalid("listen", "not an ADDR:PORT"))?;

        let region = raw.region.unwrap_or_else(|| "us-east-1".into());
        if !is_region(&region) {
            return Err(self.invalid("region", "not a region name such as us-east-1"));
        }
        let account_id = raw.account_id.unwrap_or_else(|| "123456789012".into());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid("account_id", "must be 12 digits"));
        }

        let long_poll_secs = raw.long_poll_secs.unwrap_or(15);
        if !(1..=18).contains(&long_poll_secs) {
            return Err(self.invalid("long_poll_secs", "must be 1 to 18 seconds"));
        }

        let roles = raw.roles.into_iter().enumerate();
        let roles = roles
            .map(|(i, r)| self.role(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let users = raw.users.into_iter().enumerate();
        let users = users
            .map(|(i, u)| self.user(i, u))
            .collect::<Result<Vec<_>, _>>()?;
        let nodes = raw.nodes.into_iter().enumerate();
        let nodes = nodes
            .map(|(i, n)| self.node(i, n, &roles))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_unique_keys(&users, &nodes)?;

        Ok(Config {
            listen,
            region,
            account_id,
            data_dir: self.resolve(
                &raw.data_dir
                    .unwrap_or_else(|| "/var/lib/tagrun-server".into()),
            ),
            database_url: raw.database_url,
            tls: raw.tls.map(|t| TlsConfig {
                certificate: self.resolve(&t.certificate),
                key: self.resolve(&t.key),
            }),
            users,
            roles,
            nodes,
            agent_tag_keys: raw.agent_tag_keys,
            connection_lost_after_secs: raw.connection_lost_after_secs.unwrap_or(600),
            long_poll_secs,
        })
    }

    fn user(&self, index: usize, raw: RawUser) -> Result<User, ConfigError> {
        let key = format!("users[{index}]");
        if raw.name.is_empty() || raw.name.len() > 64 {
            return Err(self.invalid(&format!("{key}.name"), "must be 1 to 64 characters"));
        }
        let policies = self.policies(&key, &raw.policy_files, &raw.managed_policies)?;
        Ok(User {
            name: raw.name,
            access_key_id: raw.access_key_id,
            secret_access_key: raw.secret_access_key,
            policies,
            tags: raw.tags,
        })
    }

    fn role(&self, index: usize, raw: RawRole) -> Result<Role, ConfigError> {
        let key = format!("roles[{index}]");
        let policies = self.policies(&key, &raw.policy_files, &raw.managed_policies)?;
        Ok(Role {
            name: raw.name,
            policies,
        })
    }

    fn node(&self, index: usize, raw: RawNode, roles: &[Role]) -> Result<StaticNode, ConfigError> {
        let key = format!("nodes[{index}]");
        if !crate::ids::is_instance_id(&raw.instance_id) {
            let message = "must look like i-0123456789abcdef0 or mi-0123456789abcdef0";
            return Err(self.invalid(&format!("{key}.instance_id"), message));
        }
        if !roles.iter().any(|r| r.name == raw.role) {
            let message = format!("no [[roles]] entry is named {:?}", raw.role);
            return Err(self.invalid(&format!("{key}.role"), &message));
        }
        Ok(StaticNode {
            instance_id: raw.instance_id,
            access_key_id: raw.access_key_id,
            secret_access_key: raw.secret_access_key,
            role: raw.role,
            tags: raw.tags,
        })
    }

    /// Reads policy files and looks up managed policies by their AWS names.
    fn policies(
        &self,
        key: &str,
        files: &[PathBuf],
        managed_names: &[String],
    ) -> Result<Vec<Policy>, ConfigError> {
        let mut policies = Vec::new();
        for file in files {
            let path = self.resolve(file);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let name = path.display().to_string();
            let policy = Policy::parse_named(&name, &text).map_err(|e| {
                self.invalid(&format!("{key}.policy_files"), &format!("{name}: {e}"))
            })?;
            policies.push(policy);
        }
        for name in managed_names {
            let policy = managed::policy(name).ok_or_else(|| {
                let known = managed::NAMES.join(", ");
                let message = format!("unknown managed policy {name:?} (known: {known})");
                self.invalid(&format!("{key}.managed_policies"), &message)
            })?;
            policies.push(policy.clone());
        }
        Ok(policies)
    }

    fn check_unique_keys(&self, users: &[User], nodes: &[StaticNode]) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        let keys = users.iter().map(|u| &u.access_key_id);
        for key in keys.chain(nodes.iter().map(|n| &n.access_key_id)) {
            if !seen.insert(key) {
                let message = format!("access key {key} is used twice");
                return Err(self.invalid("access_key_id", &message));
            }
        }
        Ok(())
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }

    fn invalid(&self, key: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// Whether `name` looks like an AWS region (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/tagrun/server.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = parse("").unwrap();

        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.region, "us-east-1");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/tagrun-server"));
    }

    #[test]
    fn users_get_managed_policies_by_aws_name() {
        let config = parse(
            r#"
            [[users]]
            name = "alice"
            access_key_id = "AKIAEXAMPLEALICE0001"
            secret_access_key = "alice-secret"
            managed_policies = ["AmazonSSMReadOnlyAccess"]
            tags = { team = "finance" }
            "#,
        )
        .unwrap();

        assert_eq!(config.users[0].policies.len(), 1);
        assert_eq!(config.users[0].tags["team"], "finance");
        assert!(!format!("{:?}", config.users[0]).contains("alice-secret"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let error = parse("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();

        let text = error.to_string();
        assert!(text.contains("lisen"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn node_naming_an_unknown_role_is_rejected() {
        let error = parse(
            r#"
            [[nodes]]
            instance_id = "i-0123456789abcdef0"
            access_key_id = "AKIAEXAMPLENODE00001"
            secret_access_key = "node-secret"
            role = "Missing"
            "#,
        )
        .unwrap_err();

        assert!(error.to_string().contains("nodes[0].role"), "{error}");
    }

    #[test]
    fn missing_policy_file_names_the_file() {
        let error = parse(
            r#"
            [[users]]
            name = "bob"
            access_key_id = "AKIAEXAMPLEBOB000001"
            secret_access_key = "s"
            policy_files = ["policies/nope.json"]
            "#,
        )
        .unwrap_err();

        assert!(
            error.to_string().contains("/etc/tagrun/policies/nope.json"),
            "{error}"
        );
    }

    #[test]
    fn bad_region_is_rejected() {
        assert!(parse("region = \"moon\"").is_err());
        assert!(parse("region = \"eu-central-2\"").is_ok());
    }
}
