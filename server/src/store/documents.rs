//! Documents and their versions.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// A document's header: everything but the content of its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    /// Document name.
    pub name: String,
    /// `Command` for every document tagrun runs.
    pub document_type: String,
    /// Optional `TargetType` (`/AWS::EC2::Instance`).
    pub target_type: Option<String>,
    /// The version commands use when they name none.
    pub default_version: i64,
    /// The newest version.
    pub latest_version: i64,
    /// When version 1 was created.
    pub created_ms: i64,
}

/// One stored version of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentVersion {
    /// Document name.
    pub name: String,
    /// 1, 2, ...
    pub version: i64,
    /// Optional label given by the author.
    pub version_name: Option<String>,
    /// The content exactly as submitted.
    pub content: String,
    /// `JSON` or `YAML`.
    pub format: String,
    /// sha256 of the content, hex.
    pub hash: String,
    /// When this version was created.
    pub created_ms: i64,
}

/// The content of a new version, as the API layer validated it.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// Optional label.
    pub version_name: Option<&'a str>,
    /// Content as submitted.
    pub content: &'a str,
    /// `JSON` or `YAML`.
    pub format: &'a str,
    /// sha256 of the content, hex.
    pub hash: &'a str,
}

/// Why a new version could not be added, in terms the API maps to AWS errors.
#[derive(Debug, PartialEq, Eq)]
pub enum AddVersionOutcome {
    /// Stored under this number.
    Added(i64),
    /// No document has that name.
    NoSuchDocument,
    /// The latest version already has exactly this content.
    DuplicateContent,
    /// Another version already carries this version name.
    DuplicateVersionName,
}

const HEADER_COLUMNS: &str =
    "name, document_type, target_type, default_version, latest_version, created_ms";
const VERSION_COLUMNS: &str = "name, version, version_name, content, format, hash, created_ms";

impl Store {
    /// Creates a document with its first version; `false` when the name is taken.
    pub async fn create_document(
        &self,
        name: &str,
        document_type: &str,
        target_type: Option<&str>,
        first: &NewVersion<'_>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO documents (name, document_type, target_type, default_version, \
             latest_version, created_ms) VALUES ($1, $2, $3, 1, 1, $4) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(document_type)
        .bind(target_type)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        insert_version(&mut tx.tx, name, 1, first, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The header of document `name`.
    pub async fn document(&self, name: &str) -> Result<Option<DocumentRecord>, StoreError> {
        let sql = format!("SELECT {HEADER_COLUMNS} FROM documents WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| header_from_row(&r)).transpose()
    }

    /// Every document header, by name.
    pub async fn documents(&self) -> Result<Vec<DocumentRecord>, StoreError> {
        let sql = format!("SELECT {HEADER_COLUMNS} FROM documents ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(header_from_row).collect()
    }

    /// Version `version` of document `name`.
    pub async fn document_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<DocumentVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions WHERE name = $1 AND version = $2"
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| version_from_row(&r)).transpose()
    }

    /// The version of `name` labelled `version_name`.
    pub async fn document_version_named(
        &self,
        name: &str,
        version_name: &str,
    ) -> Result<Option<DocumentVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions WHERE name = $1 AND version_name = $2"
        );
        let query = sqlx::query(&sql).bind(name).bind(version_name);
        let row = query.fetch_optional(&self.pool).await?;
        row.map(|r| version_from_row(&r)).transpose()
    }

    /// Every version of `name`, newest first.
    pub async fn document_versions(&self, name: &str) -> Result<Vec<DocumentVersion>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM document_versions WHERE name = $1 ORDER BY version DESC"
        );
        let rows = sqlx::query(&sql).bind(name).fetch_all(&self.pool).await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Adds the next version of `name`.
    pub async fn add_document_version(
        &self,
        name: &str,
        new: &NewVersion<'_>,
    ) -> Result<AddVersionOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT latest_version FROM documents WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx.tx)
                .await?;
        let Some(latest) = latest else {
            return Ok(AddVersionOutcome::NoSuchDocument);
        };

        let latest_hash: Option<String> = sqlx::query_scalar(
            "SELECT hash FROM document_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(latest)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if latest_hash.as_deref() == Some(new.hash) {
            return Ok(AddVersionOutcome::DuplicateContent);
        }
        if let Some(version_name) = new.version_name {
            let taken: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM document_versions WHERE name = $1 AND version_name = $2",
            )
            .bind(name)
            .bind(version_name)
            .fetch_optional(&mut *tx.tx)
            .await?;
            if taken.is_some() {
                return Ok(AddVersionOutcome::DuplicateVersionName);
            }
        }

        let version = latest + 1;
        insert_version(&mut tx.tx, name, version, new, now_ms()).await?;
        sqlx::query("UPDATE documents SET latest_version = $1 WHERE name = $2")
            .bind(version)
            .bind(name)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(AddVersionOutcome::Added(version))
    }

    /// Makes `version` the default of `name`; `false` when there is no such version.
    pub async fn set_default_document_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<bool, StoreError> {
        let _write = self.lock_writes().await;
        let updated = sqlx::query(
            "UPDATE documents SET default_version = $1 WHERE name = $2 AND EXISTS \
             (SELECT 1 FROM document_versions v WHERE v.name = $2 AND v.version = $1)",
        )
        .bind(version)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Deletes document `name`, every version and its tags; `false` when absent.
    pub async fn delete_document(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM documents WHERE name = $1")
            .bind(name)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query("DELETE FROM document_versions WHERE name = $1")
            .bind(name)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query("DELETE FROM tags WHERE resource_type = 'Document' AND resource_id = $1")
            .bind(name)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Deletes one version that is not the default; `false` when absent.
    pub async fn delete_document_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<bool, StoreError> {
        let _write = self.lock_writes().await;
        let deleted = sqlx::query("DELETE FROM document_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    version: i64,
    new: &NewVersion<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO document_versions (name, version, version_name, content, format, hash, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(name)
    .bind(version)
    .bind(new.version_name)
    .bind(new.content)
    .bind(new.format)
    .bind(new.hash)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn header_from_row(row: &AnyRow) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        name: row.try_get("name")?,
        document_type: row.try_get("document_type")?,
        target_type: row.try_get("target_type")?,
        default_version: row.try_get("default_version")?,
        latest_version: row.try_get("latest_version")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<DocumentVersion, StoreError> {
    Ok(DocumentVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        version_name: row.try_get("version_name")?,
        content: row.try_get("content")?,
        format: row.try_get("format")?,
        hash: row.try_get("hash")?,
        created_ms: row.try_get("created_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn version<'a>(content: &'a str, hash: &'a str) -> NewVersion<'a> {
        NewVersion {
            version_name: None,
            content,
            format: "JSON",
            hash,
        }
    }

    #[tokio::test]
    async fn versions_count_up_and_default_stays_until_changed() {
        let (store, _dir) = testing::store().await;
        assert!(
            store
                .create_document("Doc", "Command", None, &version("a", "ha"))
                .await
                .unwrap()
        );

        let second = store
            .add_document_version("Doc", &version("b", "hb"))
            .await
            .unwrap();
        let header = store.document("Doc").await.unwrap().unwrap();

        assert_eq!(second, AddVersionOutcome::Added(2));
        assert_eq!((header.default_version, header.latest_version), (1, 2));
        assert!(store.set_default_document_version("Doc", 2).await.unwrap());
        assert!(!store.set_default_document_version("Doc", 7).await.unwrap());
    }

    #[tokio::test]
    async fn same_content_twice_is_a_duplicate() {
        let (store, _dir) = testing::store().await;
        store
            .create_document("Doc", "Command", None, &version("a", "ha"))
            .await
            .unwrap();

        let outcome = store
            .add_document_version("Doc", &version("a", "ha"))
            .await
            .unwrap();

        assert_eq!(outcome, AddVersionOutcome::DuplicateContent);
    }

    #[tokio::test]
    async fn a_taken_name_is_not_created_again() {
        let (store, _dir) = testing::store().await;
        store
            .create_document("Doc", "Command", None, &version("a", "ha"))
            .await
            .unwrap();

        let again = store
            .create_document("Doc", "Command", None, &version("b", "hb"))
            .await;

        assert!(!again.unwrap());
        assert_eq!(store.document_versions("Doc").await.unwrap().len(), 1);
    }
}
