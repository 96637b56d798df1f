//! Hybrid activations: codes that let a node register once.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// A stored activation. The code itself is never stored, only its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The id (`ActivationId`).
    pub activation_id: String,
    /// sha256 of the activation code, hex.
    pub code_sha256: String,
    /// Free text.
    pub description: String,
    /// Name given to nodes that register with it.
    pub default_instance_name: String,
    /// Role the nodes get credentials for.
    pub iam_role: String,
    /// How many nodes may register.
    pub registration_limit: i64,
    /// How many have.
    pub registrations_count: i64,
    /// When the activation stops working.
    pub expires_ms: i64,
    /// When it was created.
    pub created_ms: i64,
}

const COLUMNS: &str = "activation_id, code_sha256, description, default_instance_name, iam_role, \
                       registration_limit, registrations_count, expires_ms, created_ms";

impl Store {
    /// Stores a new activation.
    pub async fn create_activation(&self, activation: &Activation) -> Result<(), StoreError> {
        let _write = self.lock_writes().await;
        let sql = format!(
            "INSERT INTO activations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        sqlx::query(&sql)
            .bind(&activation.activation_id)
            .bind(&activation.code_sha256)
            .bind(&activation.description)
            .bind(&activation.default_instance_name)
            .bind(&activation.iam_role)
            .bind(activation.registration_limit)
            .bind(activation.registrations_count)
            .bind(activation.expires_ms)
            .bind(activation.created_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One activation.
    pub async fn activation(&self, id: &str) -> Result<Option<Activation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM activations WHERE activation_id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// Every activation, oldest first.
    pub async fn activations(&self) -> Result<Vec<Activation>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM activations ORDER BY created_ms, activation_id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Deletes an activation (nodes it registered stay); `false` when absent.
    pub async fn delete_activation(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM activations WHERE activation_id = $1")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query("DELETE FROM tags WHERE resource_type = 'Activation' AND resource_id = $1")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() > 0)
    }
}

fn from_row(row: &AnyRow) -> Result<Activation, StoreError> {
    Ok(Activation {
        activation_id: row.try_get("activation_id")?,
        code_sha256: row.try_get("code_sha256")?,
        description: row.try_get("description")?,
        default_instance_name: row.try_get("default_instance_name")?,
        iam_role: row.try_get("iam_role")?,
        registration_limit: row.try_get("registration_limit")?,
        registrations_count: row.try_get("registrations_count")?,
        expires_ms: row.try_get("expires_ms")?,
        created_ms: row.try_get("created_ms")?,
    })
}
