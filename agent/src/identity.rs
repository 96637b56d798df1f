//! Who the node is and the credentials it signs with.
//!
//! Three sources, tried in this order: static keys in the config file; a registration made
//! with `tagrun-agent register` (an RSA key that never leaves the node, exchanged for
//! short-lived role credentials with `RequestManagedInstanceRoleToken`); the EC2 instance
//! metadata service (IMDSv2), only when the config enables it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reqwest::Url;
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use tagrun_wire::sigv4::Credentials;
use tagrun_wire::ssm::{
    AgentOperation, KEY_TYPE_RSA, RegisterManagedInstanceRequest, RegisterManagedInstanceResponse,
    RequestManagedInstanceRoleTokenRequest, RequestManagedInstanceRoleTokenResponse, SIGNING_NAME,
    UpdateManagedInstancePublicKeyRequest,
};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::client::{ClientError, Signer, Transport};
use crate::config::AgentConfig;
use crate::spool::{SpoolError, write_atomic};

/// The registration record in the state directory.
pub const REGISTRATION_FILE: &str = "registration.json";

/// The node's private key (PKCS#1 PEM, mode 0600) in the state directory.
pub const KEY_FILE: &str = "private-key.pem";

/// Size of the keys the agent generates.
pub const KEY_BITS: usize = 2048;

/// Why the node's identity or credentials are unavailable.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No static keys, no registration, and IMDS not enabled.
    #[error(
        "node is not registered: run `tagrun-agent register`, or set [credentials] or \
         [imds] in the config"
    )]
    NotRegistered,
    /// The registration or key file could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The registration file is not what the agent wrote.
    #[error("registration file {path} is unreadable")]
    Registration {
        /// The file.
        path: PathBuf,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The key file does not hold a PKCS#1 RSA key.
    #[error("key file {path} does not hold an RSA private key")]
    Key {
        /// The file.
        path: PathBuf,
        /// The decoder's report.
        #[source]
        source: rsa::pkcs1::Error,
    },
    /// Key generation or encoding failed.
    #[error("could not generate an RSA key")]
    Generate(#[source] rsa::Error),
    /// Key encoding failed.
    #[error("could not encode the RSA key")]
    Encode(String),
    /// Writing the registration or key failed.
    #[error("could not store the registration")]
    Store(#[source] SpoolError),
    /// `RegisterManagedInstance` failed.
    #[error("registration was refused or failed")]
    Register(#[source] ClientError),
    /// The server returned an instance id the agent cannot use.
    #[error("server returned an unusable instance id {0:?}")]
    InstanceId(String),
    /// `RequestManagedInstanceRoleToken` failed.
    #[error("could not obtain role credentials")]
    Token(#[source] ClientError),
    /// The instance metadata service failed.
    #[error("instance metadata request for {what} failed")]
    Imds {
        /// What was asked for.
        what: &'static str,
        /// The failure.
        #[source]
        source: reqwest::Error,
    },
    /// The instance metadata service answered something unusable.
    #[error("instance metadata {what} is unusable")]
    ImdsAnswer {
        /// What was asked for.
        what: &'static str,
    },
}

impl IdentityError {
    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            IdentityError::Token(e) | IdentityError::Register(e) => e.is_retryable(),
            IdentityError::Imds { .. } => true,
            _ => false,
        }
    }
}

/// What `tagrun-agent register` stores beside the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The managed instance id (`mi-…`).
    pub instance_id: String,
    /// The region the node registered in.
    pub region: String,
    /// The node's fingerprint, sent with every token request.
    pub fingerprint: String,
    /// When the current key was made, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub key_created_at: String,
}

/// Registers the node with a hybrid activation and stores its key and instance id.
pub async fn register(
    transport: &Transport,
    state_dir: &Path,
    activation_id: &str,
    activation_code: &str,
) -> Result<Registration, IdentityError> {
    register_with_key_size(
        transport,
        state_dir,
        activation_id,
        activation_code,
        KEY_BITS,
    )
    .await
}

/// [`register`] with a chosen key size (tests use small keys).
pub async fn register_with_key_size(
    transport: &Transport,
    state_dir: &Path,
    activation_id: &str,
    activation_code: &str,
    bits: usize,
) -> Result<Registration, IdentityError> {
    tokio::fs::create_dir_all(state_dir)
        .await
        .map_err(|source| IdentityError::Read {
            path: state_dir.to_owned(),
            source,
        })?;
    let key = generate_key(bits).await?;
    // The key is stored before the call, so a node that registered always has its key.
    store_key(state_dir, &key).await?;

    let fingerprint = new_uuid();
    let request = RegisterManagedInstanceRequest {
        activation_code: activation_code.to_owned(),
        activation_id: activation_id.to_owned(),
        public_key: public_key_base64(&key)?,
        public_key_type: KEY_TYPE_RSA.to_owned(),
        fingerprint: fingerprint.clone(),
        iam_role: None,
        tags: None,
    };
    let target = AgentOperation::RegisterManagedInstance.target();
    let response: RegisterManagedInstanceResponse = transport
        .call(SIGNING_NAME, &target, &request, &Signer::Anonymous, None)
        .await
        .map_err(IdentityError::Register)?;
    check_instance_id(&response.instance_id)?;

    let registration = Registration {
        instance_id: response.instance_id,
        region: transport.region().to_owned(),
        fingerprint,
        key_created_at: tagrun_wire::time::iso8601_millis(SystemTime::now()),
    };
    store_registration(state_dir, &registration).await?;
    info!(instance_id = %registration.instance_id, "registered");
    Ok(registration)
}

fn check_instance_id(id: &str) -> Result<(), IdentityError> {
    let usable = id.len() >= 10
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if usable {
        Ok(())
    } else {
        Err(IdentityError::InstanceId(id.to_owned()))
    }
}

async fn generate_key(bits: usize) -> Result<RsaPrivateKey, IdentityError> {
    let generated =
        tokio::task::spawn_blocking(move || RsaPrivateKey::new(&mut rand::rngs::OsRng, bits))
            .await
            .map_err(|e| IdentityError::Encode(format!("key generation task ended: {e}")))?;
    generated.map_err(IdentityError::Generate)
}

fn public_key_base64(key: &RsaPrivateKey) -> Result<String, IdentityError> {
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| IdentityError::Encode(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der.as_bytes()))
}

async fn store_key(state_dir: &Path, key: &RsaPrivateKey) -> Result<(), IdentityError> {
    let pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| IdentityError::Encode(e.to_string()))?;
    write_atomic(&state_dir.join(KEY_FILE), pem.as_bytes())
        .await
        .map_err(IdentityError::Store)
}

async fn store_registration(
    state_dir: &Path,
    registration: &Registration,
) -> Result<(), IdentityError> {
    let path = state_dir.join(REGISTRATION_FILE);
    let bytes =
        serde_json::to_vec_pretty(registration).map_err(|source| IdentityError::Registration {
            path: path.clone(),
            source,
        })?;
    write_atomic(&path, &bytes)
        .await
        .map_err(IdentityError::Store)
}

/// Reads the registration and key, if the node is registered.
pub async fn load_registration(
    state_dir: &Path,
) -> Result<Option<(Registration, RsaPrivateKey)>, IdentityError> {
    let path = state_dir.join(REGISTRATION_FILE);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IdentityError::Read { path, source }),
    };
    let registration: Registration =
        serde_json::from_slice(&bytes).map_err(|source| IdentityError::Registration {
            path: path.clone(),
            source,
        })?;

    let key_path = state_dir.join(KEY_FILE);
    let pem = tokio::fs::read_to_string(&key_path)
        .await
        .map_err(|source| IdentityError::Read {
            path: key_path.clone(),
            source,
        })?;
    let key = RsaPrivateKey::from_pkcs1_pem(&pem).map_err(|source| IdentityError::Key {
        path: key_path,
        source,
    })?;
    Ok(Some((registration, key)))
}

/// A random version 4 UUID, lower-case and hyphenated.
pub fn new_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex_string(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Credentials with the time to renew them.
#[derive(Debug, Clone)]
struct Cached {
    credentials: Credentials,
    refresh_at: SystemTime,
    expires_at: SystemTime,
}

/// When to renew credentials: halfway to expiry, as AWS's agent does, and at least a
/// minute before it.
pub fn refresh_time(now: SystemTime, expires_at: SystemTime) -> SystemTime {
    let lifetime = expires_at.duration_since(now).unwrap_or_default();
    let half = now + lifetime / 2;
    let margin = expires_at
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(now);
    half.min(margin).max(now)
}

enum Source {
    Static(Credentials),
    Registered {
        state_dir: PathBuf,
        registration: Registration,
        key: Box<RsaPrivateKey>,
    },
    Imds {
        http: reqwest::Client,
        address: Url,
    },
}

/// The node's identity and a cache of its current credentials.
pub struct Identity {
    instance_id: String,
    source: Mutex<Source>,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Picks the identity the config and state directory provide.
    pub async fn load(config: &AgentConfig) -> Result<Self, IdentityError> {
        if let Some(identity) = &config.credentials {
            return Ok(Self::new(
                identity.instance_id.clone(),
                Source::Static(identity.credentials.clone()),
            ));
        }
        if let Some((registration, key)) = load_registration(&config.state_dir).await? {
            let instance_id = registration.instance_id.clone();
            let state_dir = config.state_dir.clone();
            let key = Box::new(key);
            return Ok(Self::new(
                instance_id,
                Source::Registered {
                    state_dir,
                    registration,
                    key,
                },
            ));
        }
        if let Some(address) = &config.imds_address {
            return Self::from_imds(address.clone()).await;
        }
        Err(IdentityError::NotRegistered)
    }

    fn new(instance_id: String, source: Source) -> Self {
        Self {
            instance_id,
            source: Mutex::new(source),
            cache: Mutex::new(None),
        }
    }

    async fn from_imds(address: Url) -> Result<Self, IdentityError> {
        // The metadata service is link-local: never through a proxy.
        let http = reqwest::Client::builder()
            .no_proxy()
            // Plain HTTP only: no trust store to load.
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| IdentityError::Imds {
                what: "client",
                source,
            })?;
        let token = imds_token(&http, &address).await?;
        let instance_id = imds_get(&http, &address, &token, "meta-data/instance-id").await?;
        check_instance_id(instance_id.trim()).map_err(|_| IdentityError::ImdsAnswer {
            what: "instance-id",
        })?;
        Ok(Self::new(
            instance_id.trim().to_owned(),
            Source::Imds { http, address },
        ))
    }

    /// The node's instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Current credentials, renewed when due. A failed renewal falls back to credentials
    /// that have not expired yet.
    pub async fn credentials(&self, transport: &Transport) -> Result<Credentials, IdentityError> {
        let now = SystemTime::now();
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| now < c.refresh_at) {
            return Ok(cached.credentials.clone());
        }

        match self.fetch(transport).await {
            Ok(fresh) => {
                let credentials = fresh.credentials.clone();
                *cache = Some(fresh);
                Ok(credentials)
            }
            Err(error) => match cache.as_ref().filter(|c| now < c.expires_at) {
                Some(cached) => {
                    let error = crate::spool::error_chain(&error);
                    warn!(%error, "credential renewal failed, using current ones");
                    Ok(cached.credentials.clone())
                }
                None => Err(error),
            },
        }
    }

    /// Forgets cached credentials, e.g. after the server rejected them.
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self, transport: &Transport) -> Result<Cached, IdentityError> {
        let mut source = self.source.lock().await;
        match &mut *source {
            Source::Static(credentials) => Ok(Cached {
                credentials: credentials.clone(),
                refresh_at: SystemTime::now() + Duration::from_secs(365 * 24 * 3600),
                expires_at: SystemTime::now() + Duration::from_secs(365 * 24 * 3600),
            }),
            Source::Registered {
                state_dir,
                registration,
                key,
            } => {
                let (cached, rotate) = self.request_token(transport, registration, key).await?;
                if rotate {
                    rotate_key(transport, &self.instance_id, state_dir, registration, key).await;
                }
                Ok(cached)
            }
            Source::Imds { http, address } => imds_credentials(http, address).await,
        }
    }

    async fn request_token(
        &self,
        transport: &Transport,
        registration: &Registration,
        key: &RsaPrivateKey,
    ) -> Result<(Cached, bool), IdentityError> {
        let request = RequestManagedInstanceRoleTokenRequest {
            fingerprint: registration.fingerprint.clone(),
        };
        let target = AgentOperation::RequestManagedInstanceRoleToken.target();
        let signer = Signer::Rsa {
            instance_id: &self.instance_id,
            key,
        };
        let response: RequestManagedInstanceRoleTokenResponse = transport
            .call(SIGNING_NAME, &target, &request, &signer, None)
            .await
            .map_err(IdentityError::Token)?;

        let expires_at = epoch_seconds(response.token_expiration_date);
        let cached = Cached {
            credentials: Credentials {
                access_key_id: response.access_key_id,
                secret_access_key: response.secret_access_key,
                session_token: Some(response.session_token),
            },
            refresh_at: refresh_time(SystemTime::now(), expires_at),
            expires_at,
        };
        Ok((cached, response.update_key_pair))
    }
}

/// Replaces the node's key when the server asks: a new key is announced with
/// `UpdateManagedInstancePublicKey` signed by the old one, then stored. Failures are
/// logged and the old key kept; the server asks again with the next token.
async fn rotate_key(
    transport: &Transport,
    instance_id: &str,
    state_dir: &Path,
    registration: &mut Registration,
    key: &mut RsaPrivateKey,
) {
    if let Err(error) = try_rotate_key(transport, instance_id, state_dir, registration, key).await {
        let error = crate::spool::error_chain(&error);
        warn!(%error, "key rotation failed, keeping the current key");
    }
}

async fn try_rotate_key(
    transport: &Transport,
    instance_id: &str,
    state_dir: &Path,
    registration: &mut Registration,
    key: &mut RsaPrivateKey,
) -> Result<(), IdentityError> {
    let bits = key.size() * 8;
    let new_key = generate_key(bits).await?;
    let request = UpdateManagedInstancePublicKeyRequest {
        new_public_key: public_key_base64(&new_key)?,
        new_public_key_type: KEY_TYPE_RSA.to_owned(),
    };
    let target = AgentOperation::UpdateManagedInstancePublicKey.target();
    let signer = Signer::Rsa { instance_id, key };
    let _: tagrun_wire::messages::Empty = transport
        .call(SIGNING_NAME, &target, &request, &signer, None)
        .await
        .map_err(IdentityError::Token)?;

    store_key(state_dir, &new_key).await?;
    *key = new_key;
    registration.key_created_at = tagrun_wire::time::iso8601_millis(SystemTime::now());
    store_registration(state_dir, registration).await?;
    info!(instance_id, "rotated the node key");
    Ok(())
}

fn epoch_seconds(seconds: f64) -> SystemTime {
    let seconds = if seconds.is_finite() && seconds > 0.0 {
        seconds
    } else {
        0.0
    };
    UNIX_EPOCH + Duration::from_secs_f64(seconds.min(4_102_444_800.0))
}

async fn imds_token(http: &reqwest::Client, address: &Url) -> Result<String, IdentityError> {
    let url = imds_url(address, "api/token")?;
    let response = http
        .put(url)
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|source| IdentityError::Imds {
            what: "token",
            source,
        })?;
    response.text().await.map_err(|source| IdentityError::Imds {
        what: "token",
        source,
    })
}

async fn imds_get(
    http: &reqwest::Client,
    address: &Url,
    token: &str,
    path: &'static str,
) -> Result<String, IdentityError> {
    let url = imds_url(address, path)?;
    let response = http
        .get(url)
        .header("X-aws-ec2-metadata-token", token)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|source| IdentityError::Imds { what: path, source })?;
    response
        .text()
        .await
        .map_err(|source| IdentityError::Imds { what: path, source })
}

fn imds_url(address: &Url, path: &'static str) -> Result<Url, IdentityError> {
    address
        .join(&format!("/latest/{path}"))
        .map_err(|_| IdentityError::ImdsAnswer { what: path })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsCredentials {
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

async fn imds_credentials(http: &reqwest::Client, address: &Url) -> Result<Cached, IdentityError> {
    let token = imds_token(http, address).await?;
    let roles = imds_get(http, address, &token, "meta-data/iam/security-credentials/").await?;
    let role = roles
        .lines()
        .next()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let role = role.ok_or(IdentityError::ImdsAnswer {
        what: "instance profile role",
    })?;

    let url = imds_url(address, "meta-data/iam/security-credentials/")?
        .join(role)
        .map_err(|_| IdentityError::ImdsAnswer {
            what: "instance profile role",
        })?;
    let what = "role credentials";
    let response = http
        .get(url)
        .header("X-aws-ec2-metadata-token", &token)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|source| IdentityError::Imds { what, source })?;
    let body = response
        .bytes()
        .await
        .map_err(|source| IdentityError::Imds { what, source })?;
    let parsed: ImdsCredentials =
        serde_json::from_slice(&body).map_err(|_| IdentityError::ImdsAnswer { what })?;

    let expires_at = tagrun_wire::time::parse_iso8601(&parsed.expiration).map_err(|_| {
        IdentityError::ImdsAnswer {
            what: "credential expiration",
        }
    })?;
    Ok(Cached {
        credentials: Credentials {
            access_key_id: parsed.access_key_id,
            secret_access_key: parsed.secret_access_key,
            session_token: Some(parsed.token),
        },
        refresh_at: refresh_time(SystemTime::now(), expires_at),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_halfway_to_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);

        let at = refresh_time(now, now + Duration::from_secs(3600));

        assert_eq!(at, now + Duration::from_secs(1800));
    }

    #[test]
    fn renews_at_least_a_minute_early_and_never_in_the_past() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);

        assert_eq!(
            refresh_time(now, now + Duration::from_secs(100)),
            now + Duration::from_secs(40)
        );
        assert_eq!(refresh_time(now, now - Duration::from_secs(5)), now);
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = new_uuid();
        let b = new_uuid();

        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_instance_ids_that_could_name_paths() {
        assert!(check_instance_id("mi-0123456789abcdef0").is_ok());
        assert!(check_instance_id("mi-../../x").is_err());
        assert!(check_instance_id("mi-1").is_err());
    }
}
