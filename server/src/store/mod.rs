//! Storage: the only module that speaks SQL.
//!
//! One schema and one set of queries serve both backends through sqlx's `Any`
//! driver: SQLite (a WAL file under the data directory) by default, PostgreSQL when
//! the configuration names a database URL. The SQL sticks to what both understand:
//! `$N` placeholders, `TEXT` and `BIGINT` columns, `ON CONFLICT` upserts, times as
//! epoch milliseconds. Every write is committed before the call returns.

mod activations;
mod documents;
mod nodes;
mod tags;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};
use tracing::info;

pub use activations::Activation;
pub use documents::{AddVersionOutcome, DocumentRecord, DocumentVersion, NewVersion};
pub use nodes::{Node, NodeCredentials, PlatformFacts, Registration, RegistrationOutcome};
pub use tags::{ResourceKind, TagSource};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("could not create data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error("could not open database {url}")]
    Open {
        /// Where, with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A schema migration failed.
    #[error("could not apply schema migration {version}")]
    Migrate {
        /// The migration's number.
        version: i64,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
}

/// The schema, one entry per migration, applied in order and recorded by number.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/0001_foundation.sql"))];

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens the database (`database_url`, else SQLite in `data_dir`) and migrates it.
    pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => sqlite_url(data_dir)?,
        };
        let shown = redact(&url);
        let open_error = |source| StoreError::Open {
            url: shown.clone(),
            source,
        };

        let options = AnyConnectOptions::from_str(&url).map_err(open_error)?;
        let options = options.log_statements(tracing::log::LevelFilter::Trace);
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(open_error)?;

        let store = Store { pool };
        store.migrate().await?;
        info!(database = %shown, "database ready");
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let create = "CREATE TABLE IF NOT EXISTS schema_migrations \
                      (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";
        sqlx::query(create).execute(&self.pool).await?;

        for &(version, script) in MIGRATIONS {
            let applied = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
            if applied.is_none() {
                self.apply(version, script)
                    .await
                    .map_err(|source| StoreError::Migrate { version, source })?;
            }
        }
        Ok(())
    }

    /// Runs one migration's statements and records it, all in one transaction.
    async fn apply(&self, version: i64, script: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for statement in statements(script) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        info!(version, "schema migration applied");
        Ok(())
    }
}

/// The SQLite URL for `data_dir/tagrun.db`, creating the directory if needed.
fn sqlite_url(data_dir: &Path) -> Result<String, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    Ok(format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("tagrun.db").display()
    ))
}

/// `url` without its password, for logs and errors.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// The statements of a migration script, split on `;` at line ends, comments dropped.
fn statements(script: &str) -> impl Iterator<Item = &str> {
    script
        .split(";\n")
        .map(|chunk| chunk.trim().trim_end_matches(';'))
        .filter(|chunk| {
            chunk
                .lines()
                .any(|line| !line.trim_start().starts_with("--"))
        })
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// A store on a fresh SQLite file in a temporary directory.
    pub async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(dir.path(), None).await.expect("open store");
        (store, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_twice_applies_migrations_once() {
        let (store, dir) = testing::store().await;
        drop(store);

        let again = Store::open(dir.path(), None).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&again.pool)
            .await
            .unwrap();

        assert_eq!(count, i64::try_from(MIGRATIONS.len()).unwrap());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("postgres://tagrun:pw@db/tagrun"),
            "postgres://tagrun:***@db/tagrun"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn migration_scripts_split_into_statements() {
        let script = "-- heading\nCREATE TABLE a (x TEXT);\n\nCREATE INDEX i ON a (x);\n";

        let parts: Vec<&str> = statements(script).collect();

        assert_eq!(
            parts,
            [
                "-- heading\nCREATE TABLE a (x TEXT)",
                "CREATE INDEX i ON a (x)"
            ]
        );
    }
}
