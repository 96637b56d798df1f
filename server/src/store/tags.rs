//! Tags on documents, managed nodes and activations.
//!
//! A node's tags come from two sources: the administrator (activation tags,
//! configuration, `AddTagsToResource`) and the agent on the node (its
//! `UpdateInstanceInformation` reports). Both are stored; reads merge them with the
//! administrator's value winning on the same key, so an agent can neither change nor
//! remove a tag an administrator set.

use std::collections::BTreeMap;

use super::{Store, StoreError};

/// The resource types that carry tags, named as `ListTagsForResource` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// An SSM document.
    Document,
    /// A node: managed (`mi-`) or EC2-style (`i-`).
    ManagedInstance,
    /// A hybrid activation.
    Activation,
}

impl ResourceKind {
    fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Document => "Document",
            ResourceKind::ManagedInstance => "ManagedInstance",
            ResourceKind::Activation => "Activation",
        }
    }
}

/// Who set a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSource {
    /// An administrator, through the API, an activation or the configuration.
    Admin,
    /// The node's own agent.
    Agent,
}

impl TagSource {
    fn as_str(self) -> &'static str {
        match self {
            TagSource::Admin => "admin",
            TagSource::Agent => "agent",
        }
    }
}

impl Store {
    /// The merged tags of one resource.
    pub async fn tags(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT source, tag_key, tag_value FROM tags \
             WHERE resource_type = $1 AND resource_id = $2",
        )
        .bind(kind.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(merge(rows))
    }

    /// The merged tags of every resource of `kind`, by resource id.
    pub async fn all_tags(
        &self,
        kind: ResourceKind,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT resource_id, source, tag_key, tag_value FROM tags WHERE resource_type = $1",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(merge_by_resource(rows))
    }

    /// The merged tags of the resources of `kind` whose ids sort after `after` and
    /// no later than `last`, by resource id.
    pub(super) async fn tags_in_range(
        &self,
        kind: ResourceKind,
        after: &str,
        last: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT resource_id, source, tag_key, tag_value FROM tags \
             WHERE resource_type = $1 AND resource_id > $2 AND resource_id <= $3",
        )
        .bind(kind.as_str())
        .bind(after)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        Ok(merge_by_resource(rows))
    }

    /// Sets (adds or overwrites) tags from `source`.
    pub async fn add_tags(
        &self,
        kind: ResourceKind,
        id: &str,
        source: TagSource,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (key, value) in tags {
            upsert(&mut tx.tx, kind, id, source, key, value).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the administrator's tags with these keys.
    pub async fn remove_tags(
        &self,
        kind: ResourceKind,
        id: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for key in keys {
            sqlx::query(
                "DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2 \
                 AND source = 'admin' AND tag_key = $3",
            )
            .bind(kind.as_str())
            .bind(id)
            .bind(key)
            .execute(&mut *tx.tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces every tag the node's agent reported with `tags`.
    pub async fn replace_agent_tags(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let kind = ResourceKind::ManagedInstance;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2 AND source = 'agent'",
        )
        .bind(kind.as_str())
        .bind(instance_id)
        .execute(&mut *tx.tx)
        .await?;
        for (key, value) in tags {
            upsert(&mut tx.tx, kind, instance_id, TagSource::Agent, key, value).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes every tag of a resource, from both sources.
    pub async fn clear_tags(&self, kind: ResourceKind, id: &str) -> Result<(), StoreError> {
        let _write = self.lock_writes().await;
        sqlx::query("DELETE FROM tags WHERE resource_type = $1 AND resource_id = $2")
            .bind(kind.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn upsert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: ResourceKind,
    id: &str,
    source: TagSource,
    key: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tags (resource_type, resource_id, source, tag_key, tag_value) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource_type, resource_id, source, tag_key) \
         DO UPDATE SET tag_value = excluded.tag_value",
    )
    .bind(kind.as_str())
    .bind(id)
    .bind(source.as_str())
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Agent tags first, then administrator tags over them.
/// Rows of several resources, merged per resource.
fn merge_by_resource(
    rows: Vec<(String, String, String, String)>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut by_resource: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (id, source, key, value) in rows {
        by_resource
            .entry(id)
            .or_default()
            .push((source, key, value));
    }
    by_resource
        .into_iter()
        .map(|(id, rows)| (id, merge(rows)))
        .collect()
}

fn merge(rows: Vec<(String, String, String)>) -> BTreeMap<String, String> {
    let (admin, agent): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(s, _, _)| s == "admin");
    agent
        .into_iter()
        .chain(admin)
        .map(|(_, key, value)| (key, value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn administrator_tags_win_and_survive_agent_reports() {
        let (store, _dir) = testing::store().await;
        let kind = ResourceKind::ManagedInstance;
        let admin = map(&[("Env", "prod")]);
        store
            .add_tags(kind, "mi-1", TagSource::Admin, &admin)
            .await
            .unwrap();

        let reported = map(&[("Env", "dev"), ("Role", "web")]);
        store.replace_agent_tags("mi-1", &reported).await.unwrap();
        store
            .replace_agent_tags("mi-1", &map(&[("Role", "db")]))
            .await
            .unwrap();

        let tags = store.tags(kind, "mi-1").await.unwrap();
        assert_eq!(tags, map(&[("Env", "prod"), ("Role", "db")]));
    }

    #[tokio::test]
    async fn removing_a_tag_leaves_the_agents_value() {
        let (store, _dir) = testing::store().await;
        let kind = ResourceKind::ManagedInstance;
        store
            .add_tags(kind, "mi-1", TagSource::Admin, &map(&[("Env", "prod")]))
            .await
            .unwrap();
        store
            .replace_agent_tags("mi-1", &map(&[("Env", "dev")]))
            .await
            .unwrap();

        store
            .remove_tags(kind, "mi-1", &["Env".to_string()])
            .await
            .unwrap();

        assert_eq!(
            store.tags(kind, "mi-1").await.unwrap(),
            map(&[("Env", "dev")])
        );
    }
}
