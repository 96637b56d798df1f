//! tagrun-server: the self-hosted control plane for Run Command.
//!
//! It speaks AWS JSON 1.1 on one listener so that the unmodified `aws` CLI, boto3
//! and AWS's own agent work against it. Start reading at [`Server`], then `http`
//! (routing and the AWS response shape), `auth` (SigV4 and IAM policies), `api`
//! (one module per group of operations) and `store` (all SQL).

pub mod api;
pub mod arn;
pub mod auth;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod ids;
pub mod state;
pub mod store;
mod tls;
pub mod wakeup;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::Identities;
use crate::config::Config;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("could not listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("storage is not available")]
    Store(#[from] StoreError),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS is misconfigured")]
    Tls(#[from] tls::TlsError),
}

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
}

impl Server {
    /// Opens storage, loads identities and binds the listener.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let store = Store::open(&config.data_dir, config.database_url.as_deref()).await?;
        for node in &config.nodes {
            store
                .upsert_static_node(&node.instance_id, &node.role, &node.tags, store::now_ms())
                .await?;
        }

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    address: config.listen,
                    source,
                })?;
        let identities = Identities::from_config(&config);
        let state = Arc::new(AppState {
            config,
            identities,
            store,
            wakeups: wakeup::Wakeups::default(),
        });
        Ok(Server {
            listener,
            state,
            tls,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// Whether the listener speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then drains requests in flight.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let router = http::router(self.state.clone());
        tracing::info!(address = %self.local_addr(), tls = self.tls.is_some(), "serving");
        let sweeper = tokio::spawn(sweep_timeouts(self.state.clone()));
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.wakeups.shut_down();
        };
        http::serve(self.listener, router, self.tls, shutdown).await;
        sweeper.abort();
    }
}

/// How often deadlines are checked. Deadlines live in the database, so they hold
/// across restarts; this only bounds how late a timeout is noticed.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Times out invocations past their delivery or execution deadlines, and finishes what
/// a `SendCommand` cut short by a restart left to store, forever.
async fn sweep_timeouts(state: Arc<AppState>) {
    let mut failing = false;
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // A command whose resolution keeps failing must not hold up the timeouts.
        let resumed = api::ssm::resume_interrupted(&state).await;
        let swept = state
            .store
            .sweep_timeouts(&state.topic_suffix(), store::now_ms())
            .await;
        if let Ok(notify) = &swept {
            state.wakeups.wake(notify);
        }
        match resumed.and(swept) {
            Ok(_) => {
                if failing {
                    tracing::info!("timeout checks work again");
                    failing = false;
                }
            }
            Err(error) if failing => {
                tracing::debug!(error = %error_chain(&error), "timeout check failed again");
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "timeout check failed, will retry");
                failing = true;
            }
        }
    }
}

/// An error and its sources on one line, for logs.
pub use tagrun_wire::error_chain;
