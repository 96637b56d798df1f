//! Storage: the only module that speaks SQL.
//!
//! One schema and one set of queries serve both backends through sqlx's `Any`
//! driver: SQLite (a WAL file under the data directory) by default, PostgreSQL when
//! the configuration names a database URL. The SQL sticks to what both understand:
//! `$N` placeholders, `TEXT` and `BIGINT` columns, `ON CONFLICT` upserts, times as
//! epoch milliseconds. Every write is committed before the call returns.

mod activations;
mod batch;
mod commands;
mod documents;
mod messages;
mod nodes;
mod tags;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::info;

pub use activations::Activation;
pub use commands::{
    CommandRecord, InterruptedResolution, InvocationRecord, NewCommand, NewInvocation,
    PluginResult, ReplyOutcome, Unresolved,
};
pub use documents::{AddVersionOutcome, DocumentRecord, DocumentVersion, NewVersion};
pub use messages::QueuedMessage;
pub use nodes::{
    Node, NodeCredentials, PlatformFacts, Registration, RegistrationOutcome, TargetNode,
};
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
    /// A write shared a transaction with others, and that transaction failed.
    #[error("a batch of writes failed")]
    Batch(#[source] Arc<StoreError>),
    /// The task that runs batched writes has stopped.
    #[error("the store is shutting down")]
    Stopped,
}

/// The schema, one entry per migration, applied in order and recorded by number.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_foundation.sql")),
    (2, include_str!("../../migrations/0002_run_command.sql")),
    (
        3,
        include_str!("../../migrations/0003_unstored_invocations.sql"),
    ),
    (
        4,
        include_str!("../../migrations/0004_targets_resolved_in_pages.sql"),
    ),
];

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite allows one writer at a time, and a transaction that reads before it
    /// writes fails outright (no waiting) when another wrote in between. Writers
    /// therefore queue here; PostgreSQL needs no such lock.
    write_lock: Option<Arc<Mutex<()>>>,
    /// When this process last wrote each node's ping.
    pings: Arc<PingCache>,
    /// Where the messages API's writes queue to share transactions (see `batch`);
    /// `None` on the store that the queue's own task uses.
    queue: Option<batch::BatchQueue>,
}

/// The last ping time this process wrote per node, so that a node's frequent calls
/// write its ping once per granule.
#[derive(Debug, Default)]
pub(crate) struct PingCache {
    written: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl PingCache {
    /// Whether a ping at `now_ms` should be written; records it when so.
    pub(crate) fn is_due(&self, instance_id: &str, now_ms: i64, granularity_ms: i64) -> bool {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match written.get(instance_id) {
            Some(last) if now_ms - last < granularity_ms => false,
            _ => {
                written.insert(instance_id.to_owned(), now_ms);
                true
            }
        }
    }
}

/// A write transaction, holding the SQLite write lock for its whole life.
pub(crate) struct WriteTx {
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Any>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then releases the write lock.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
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

        let sqlite = url.starts_with("sqlite:");
        let options = AnyConnectOptions::from_str(&url).map_err(open_error)?;
        let options = options.log_statements(tracing::log::LevelFilter::Trace);
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        connection.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;

        let write_lock = sqlite.then(|| Arc::new(Mutex::new(())));
        let mut store = Store {
            pool,
            write_lock,
            pings: Arc::default(),
            queue: None,
        };
        store.migrate().await?;
        store.queue = Some(batch::BatchQueue::start(store.clone()));
        info!(database = %shown, "database ready");
        Ok(store)
    }

    /// Whether other server processes may share this database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.write_lock.is_none()
    }

    /// Starts a write transaction (queueing behind other writers on SQLite).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let guard = self.lock_writes().await;
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Holds the SQLite write lock for a single-statement write. Every write takes it:
    /// one that bypassed it would make another writer's transaction fail at once.
    pub(crate) async fn lock_writes(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        }
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

/// Set on every SQLite connection. WAL lets readers run beside the writer;
/// `synchronous = NORMAL` makes a commit durable against a crash of the process (the
/// WAL is written before the call returns) without an fsync per commit, which would
/// cap the server at a few hundred replies per second.
///
/// Limitation: with NORMAL, a power failure can lose the last commits before the
/// next checkpoint; use PostgreSQL where that matters.
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;";

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
