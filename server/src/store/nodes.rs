//! Nodes: registration, platform facts, last contact, temporary credentials.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::tags::{ResourceKind, TagSource};
use super::{Store, StoreError};

/// What `SendCommand` needs of a node to target it, read without the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetNode {
    /// `mi-…` or `i-…`.
    pub instance_id: String,
    /// The host name its agent reported.
    pub computer_name: Option<String>,
    /// `Linux`, `Windows` or `MacOS`, as its agent reported.
    pub platform_type: Option<String>,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `mi-…` or `i-…`.
    pub instance_id: String,
    /// `ManagedInstance` or `EC2Instance`.
    pub resource_type: String,
    /// The activation it registered with, if any.
    pub activation_id: Option<String>,
    /// Role whose policies apply to the node.
    pub iam_role: String,
    /// Name from the activation's `DefaultInstanceName`.
    pub name: String,
    /// Base64 DER public key for RSA-signed calls (managed nodes only).
    pub public_key: Option<String>,
    /// The fingerprint the agent registered with.
    pub fingerprint: Option<String>,
    /// When it registered.
    pub registered_ms: i64,
    /// When it last called the server.
    pub last_ping_ms: Option<i64>,
    /// What its agent last reported.
    pub facts: PlatformFacts,
}

/// What an agent reports about its node in `UpdateInstanceInformation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformFacts {
    /// `AgentName`.
    pub agent_name: Option<String>,
    /// `AgentVersion`.
    pub agent_version: Option<String>,
    /// `Linux`, `Windows` or `MacOS`.
    pub platform_type: Option<String>,
    /// OS name, e.g. `Debian GNU/Linux`.
    pub platform_name: Option<String>,
    /// OS version, e.g. `12`.
    pub platform_version: Option<String>,
    /// Host name.
    pub computer_name: Option<String>,
    /// First non-loopback address.
    pub ip_address: Option<String>,
}

/// Short-lived credentials issued to a node for its role.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The node the credentials belong to.
    pub instance_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// Session token the node must present.
    pub session_token: String,
    /// When they stop working.
    pub expires_ms: i64,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("instance_id", &self.instance_id)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// A registration request, as the API layer checked it.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    /// The new node's id.
    pub instance_id: &'a str,
    /// The activation presented.
    pub activation_id: &'a str,
    /// sha256 of the activation code presented, hex.
    pub code_sha256: &'a str,
    /// The node's public key, base64 DER.
    pub public_key: &'a str,
    /// The node's fingerprint.
    pub fingerprint: &'a str,
    /// Now.
    pub now_ms: i64,
}

/// What became of a registration.
#[derive(Debug, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Registered.
    Registered,
    /// No activation has that id, or the code does not match it.
    InvalidActivation,
    /// The activation has expired.
    Expired,
    /// The activation's registration limit is used up.
    LimitReached,
}

const COLUMNS: &str = "instance_id, resource_type, activation_id, iam_role, name, public_key, \
    fingerprint, registered_ms, last_ping_ms, agent_name, agent_version, platform_type, \
    platform_name, platform_version, computer_name, ip_address";

impl Store {
    /// Registers a managed node with an activation, copying the activation's tags.
    pub async fn register_node(
        &self,
        registration: &Registration<'_>,
    ) -> Result<RegistrationOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let activation: Option<(String, String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT code_sha256, default_instance_name, iam_role, registration_limit, \
             registrations_count, expires_ms FROM activations WHERE activation_id = $1",
        )
        .bind(registration.activation_id)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some((code_sha256, name, role, limit, count, expires_ms)) = activation else {
            return Ok(RegistrationOutcome::InvalidActivation);
        };
        if code_sha256 != registration.code_sha256 {
            return Ok(RegistrationOutcome::InvalidActivation);
        }
        if expires_ms <= registration.now_ms {
            return Ok(RegistrationOutcome::Expired);
        }
        if count >= limit {
            return Ok(RegistrationOutcome::LimitReached);
        }

        sqlx::query(
            "UPDATE activations SET registrations_count = registrations_count + 1 \
             WHERE activation_id = $1",
        )
        .bind(registration.activation_id)
        .execute(&mut *tx.tx)
        .await?;
        sqlx::query(
            "INSERT INTO nodes (instance_id, resource_type, activation_id, iam_role, name, \
             public_key, fingerprint, registered_ms) \
             VALUES ($1, 'ManagedInstance', $2, $3, $4, $5, $6, $7)",
        )
        .bind(registration.instance_id)
        .bind(registration.activation_id)
        .bind(&role)
        .bind(&name)
        .bind(registration.public_key)
        .bind(registration.fingerprint)
        .bind(registration.now_ms)
        .execute(&mut *tx.tx)
        .await?;
        sqlx::query(
            "INSERT INTO tags (resource_type, resource_id, source, tag_key, tag_value) \
             SELECT 'ManagedInstance', $1, 'admin', tag_key, tag_value FROM tags \
             WHERE resource_type = 'Activation' AND resource_id = $2",
        )
        .bind(registration.instance_id)
        .bind(registration.activation_id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(RegistrationOutcome::Registered)
    }

    /// Creates or updates a node that the configuration defines with static keys.
    pub async fn upsert_static_node(
        &self,
        instance_id: &str,
        role: &str,
        tags: &std::collections::BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let resource_type = if crate::ids::is_managed_instance_id(instance_id) {
            "ManagedInstance"
        } else {
            "EC2Instance"
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO nodes (instance_id, resource_type, iam_role, name, registered_ms) \
             VALUES ($1, $2, $3, '', $4) ON CONFLICT (instance_id) DO UPDATE SET \
             resource_type = excluded.resource_type, iam_role = excluded.iam_role",
        )
        .bind(instance_id)
        .bind(resource_type)
        .bind(role)
        .bind(now_ms)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        self.add_tags(
            ResourceKind::ManagedInstance,
            instance_id,
            TagSource::Admin,
            tags,
        )
        .await
    }

    /// One node.
    pub async fn node(&self, instance_id: &str) -> Result<Option<Node>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM nodes WHERE instance_id = $1");
        let row = sqlx::query(&sql)
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| node_from_row(&r)).transpose()
    }

    /// Up to `limit` nodes whose ids sort after `after` (`""` for the first), in id
    /// order, each with its merged tags: `SendCommand` resolves `Targets` a page at a
    /// time.
    pub async fn target_page(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(TargetNode, BTreeMap<String, String>)>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT instance_id, computer_name, platform_type FROM nodes \
             WHERE instance_id > $1 ORDER BY instance_id LIMIT $2",
        )
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let Some((last, _, _)) = rows.last() else {
            return Ok(Vec::new());
        };
        let mut tags = self
            .tags_in_range(ResourceKind::ManagedInstance, after, last)
            .await?;
        let page = rows
            .into_iter()
            .map(|(instance_id, computer_name, platform_type)| {
                let node_tags = tags.remove(&instance_id).unwrap_or_default();
                let node = TargetNode {
                    instance_id,
                    computer_name,
                    platform_type,
                };
                (node, node_tags)
            });
        Ok(page.collect())
    }

    /// Every node, by id.
    pub async fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM nodes ORDER BY instance_id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Records contact from a node, writing at most once per `granularity_ms`.
    ///
    /// Every call a node makes lands here, so the common case (written recently by
    /// this process) is answered from memory without touching the database.
    pub async fn record_ping(
        &self,
        instance_id: &str,
        now_ms: i64,
        granularity_ms: i64,
    ) -> Result<(), StoreError> {
        if !self.pings.is_due(instance_id, now_ms, granularity_ms) {
            return Ok(());
        }
        let _write = self.lock_writes().await;
        sqlx::query(
            "UPDATE nodes SET last_ping_ms = $1 WHERE instance_id = $2 \
             AND (last_ping_ms IS NULL OR last_ping_ms < $3)",
        )
        .bind(now_ms)
        .bind(instance_id)
        .bind(now_ms - granularity_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores what the agent reported about its platform, and the contact.
    pub async fn update_platform_facts(
        &self,
        instance_id: &str,
        facts: &PlatformFacts,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _write = self.lock_writes().await;
        sqlx::query(
            "UPDATE nodes SET last_ping_ms = $1, agent_name = COALESCE($2, agent_name), \
             agent_version = COALESCE($3, agent_version), \
             platform_type = COALESCE($4, platform_type), \
             platform_name = COALESCE($5, platform_name), \
             platform_version = COALESCE($6, platform_version), \
             computer_name = COALESCE($7, computer_name), \
             ip_address = COALESCE($8, ip_address) WHERE instance_id = $9",
        )
        .bind(now_ms)
        .bind(facts.agent_name.as_deref())
        .bind(facts.agent_version.as_deref())
        .bind(facts.platform_type.as_deref())
        .bind(facts.platform_name.as_deref())
        .bind(facts.platform_version.as_deref())
        .bind(facts.computer_name.as_deref())
        .bind(facts.ip_address.as_deref())
        .bind(instance_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the node's public key.
    pub async fn set_public_key(&self, instance_id: &str, key: &str) -> Result<(), StoreError> {
        let _write = self.lock_writes().await;
        sqlx::query("UPDATE nodes SET public_key = $1 WHERE instance_id = $2")
            .bind(key)
            .bind(instance_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a node, its credentials and its tags; `false` when absent.
    pub async fn deregister_node(&self, instance_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM nodes WHERE instance_id = $1")
            .bind(instance_id)
            .execute(&mut *tx.tx)
            .await?;
        for sql in [
            "DELETE FROM node_credentials WHERE instance_id = $1",
            "DELETE FROM tags WHERE resource_type = 'ManagedInstance' AND resource_id = $1",
        ] {
            sqlx::query(sql)
                .bind(instance_id)
                .execute(&mut *tx.tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Stores credentials just issued, dropping the node's expired ones.
    pub async fn insert_credentials(
        &self,
        credentials: &NodeCredentials,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM node_credentials WHERE instance_id = $1 AND expires_ms < $2")
            .bind(&credentials.instance_id)
            .bind(now_ms)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query(
            "INSERT INTO node_credentials (access_key_id, instance_id, secret_access_key, \
             session_token, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&credentials.access_key_id)
        .bind(&credentials.instance_id)
        .bind(&credentials.secret_access_key)
        .bind(&credentials.session_token)
        .bind(credentials.expires_ms)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Credentials by access key id.
    pub async fn credentials(
        &self,
        access_key_id: &str,
    ) -> Result<Option<NodeCredentials>, StoreError> {
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT access_key_id, instance_id, secret_access_key, session_token, expires_ms \
             FROM node_credentials WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(access_key_id, instance_id, secret_access_key, session_token, expires_ms)| {
                NodeCredentials {
                    access_key_id,
                    instance_id,
                    secret_access_key,
                    session_token,
                    expires_ms,
                }
            },
        ))
    }
}

fn node_from_row(row: &AnyRow) -> Result<Node, StoreError> {
    Ok(Node {
        instance_id: row.try_get("instance_id")?,
        resource_type: row.try_get("resource_type")?,
        activation_id: row.try_get("activation_id")?,
        iam_role: row.try_get("iam_role")?,
        name: row.try_get("name")?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        registered_ms: row.try_get("registered_ms")?,
        last_ping_ms: row.try_get("last_ping_ms")?,
        facts: PlatformFacts {
            agent_name: row.try_get("agent_name")?,
            agent_version: row.try_get("agent_version")?,
            platform_type: row.try_get("platform_type")?,
            platform_name: row.try_get("platform_name")?,
            platform_version: row.try_get("platform_version")?,
            computer_name: row.try_get("computer_name")?,
            ip_address: row.try_get("ip_address")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::{Activation, testing};

    fn activation(limit: i64, expires_ms: i64) -> Activation {
        Activation {
            activation_id: "act-1".into(),
            code_sha256: "c0de".into(),
            description: String::new(),
            default_instance_name: "edge".into(),
            iam_role: "SSMServiceRole".into(),
            registration_limit: limit,
            registrations_count: 0,
            expires_ms,
            created_ms: 0,
        }
    }

    fn registration(id: &str) -> Registration<'_> {
        Registration {
            instance_id: id,
            activation_id: "act-1",
            code_sha256: "c0de",
            public_key: "KEY",
            fingerprint: "fp",
            now_ms: 1_000,
        }
    }

    #[tokio::test]
    async fn registration_respects_the_limit_and_copies_tags() {
        let (store, _dir) = testing::store().await;
        store
            .create_activation(&activation(1, 10_000))
            .await
            .unwrap();
        let tags = BTreeMap::from([("Env".to_string(), "prod".to_string())]);
        store
            .add_tags(ResourceKind::Activation, "act-1", TagSource::Admin, &tags)
            .await
            .unwrap();

        let first = store.register_node(&registration("mi-1")).await.unwrap();
        let second = store.register_node(&registration("mi-2")).await.unwrap();

        assert_eq!(first, RegistrationOutcome::Registered);
        assert_eq!(second, RegistrationOutcome::LimitReached);
        let node_tags = store
            .tags(ResourceKind::ManagedInstance, "mi-1")
            .await
            .unwrap();
        assert_eq!(node_tags, tags);
        assert_eq!(store.node("mi-1").await.unwrap().unwrap().name, "edge");
    }

    #[tokio::test]
    async fn wrong_code_and_expired_activation_are_refused() {
        let (store, _dir) = testing::store().await;
        store.create_activation(&activation(5, 500)).await.unwrap();

        let mut wrong = registration("mi-1");
        wrong.code_sha256 = "bad";

        let refused = store.register_node(&wrong).await.unwrap();
        assert_eq!(refused, RegistrationOutcome::InvalidActivation);
        let expired = store.register_node(&registration("mi-1")).await.unwrap();
        assert_eq!(expired, RegistrationOutcome::Expired);
    }

    #[tokio::test]
    async fn pings_are_written_at_most_once_per_granule() {
        let (store, _dir) = testing::store().await;
        store
            .upsert_static_node("i-0123456789abcdef0", "R", &BTreeMap::new(), 0)
            .await
            .unwrap();

        store
            .record_ping("i-0123456789abcdef0", 10_000, 5_000)
            .await
            .unwrap();
        store
            .record_ping("i-0123456789abcdef0", 12_000, 5_000)
            .await
            .unwrap();

        let node = store.node("i-0123456789abcdef0").await.unwrap().unwrap();
        assert_eq!(node.last_ping_ms, Some(10_000));
        assert_eq!(node.resource_type, "EC2Instance");
    }
}
