//! tagrun-agent: the node daemon. It registers the node, reports its health and tags,
//! long-polls for commands, runs their steps as processes and replies in AWS's shape.
//!
//! Modules, in the order a command meets them: [`identity`] (registration, key,
//! credentials) → [`client`] (signed calls) → [`poller`] and [`health`] (the two loops) →
//! [`runner`] (steps as processes, timeouts, cancel) → [`spool`] (state on disk) →
//! [`reply`] (payloads in AWS's shape, the outbox).

pub mod backoff;
pub mod client;
pub mod config;
pub mod health;
pub mod identity;
pub mod poller;
pub mod reply;
pub mod runner;
pub mod spool;
pub mod systemd;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::client::{Client, ClientError, Transport};
use crate::config::AgentConfig;
use crate::identity::{Identity, IdentityError};
use crate::poller::Dispatcher;
use crate::reply::Outbox;
use crate::runner::{Runner, RunnerSettings};
use crate::spool::{Spool, SpoolError};

/// How long replies may take to flush on shutdown.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(10);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state directory is unusable.
    #[error("state directory unusable")]
    Spool(#[from] SpoolError),
    /// The HTTP client could not be set up.
    #[error("HTTP client unusable")]
    Client(#[from] ClientError),
    /// The node has no usable identity.
    #[error("node identity unavailable")]
    Identity(#[from] IdentityError),
}

/// Runs the agent until `shutdown` completes: then it stops polling, leaves running steps
/// alone (a restarted agent picks them up), delivers what replies it can and returns.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let spool = Arc::new(Spool::open(&config.state_dir).await?);
    let transport = Transport::new(
        config.endpoint.clone(),
        &config.region,
        config.ca_bundle.as_deref(),
        config.request_timeout,
    )?;
    let identity = Arc::new(Identity::load(&config).await?);
    let client = Client::new(transport, identity);
    let instance_id = client.instance_id().to_owned();
    info!(%instance_id, endpoint = %config.endpoint, "agent starting");

    let outbox = Arc::new(Outbox::new(Arc::clone(&spool)));
    let settings = RunnerSettings {
        instance_id,
        region: config.region.clone(),
        kill_grace: config.kill_grace,
        reboot_command: config.reboot_command.clone(),
    };
    let runner = Arc::new(Runner::new(
        Arc::clone(&spool),
        Arc::clone(&outbox),
        settings,
    ));
    let dispatcher = Dispatcher::new(
        client.clone(),
        Arc::clone(&spool),
        Arc::clone(&outbox),
        runner,
        config.command_workers,
    );

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop.send_replace(true);
    });
    let served = serve(&config, &client, &dispatcher, &outbox, stopped).await;
    dispatcher.abandon().await;
    served?;

    systemd::notify_stopping();
    flush_replies(&outbox, &client).await;
    info!("agent stopped");
    Ok(())
}

async fn serve(
    config: &AgentConfig,
    client: &Client,
    dispatcher: &Dispatcher,
    outbox: &Arc<Outbox>,
    stopped: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let sender = {
        let (outbox, client, stopped) = (Arc::clone(outbox), client.clone(), stopped.clone());
        tokio::spawn(async move { outbox.run(&client, stopped).await })
    };
    if !health::wait_until_accepted(client, stopped.clone()).await {
        return Ok(());
    }
    let resumed = dispatcher.resume_all().await?;
    info!(resumed, "commands in flight resumed");

    let health = {
        let (client, tags, stopped) = (client.clone(), config.tags.clone(), stopped.clone());
        let interval = config.health_interval;
        tokio::spawn(async move { health::run(&client, &tags, interval, stopped).await })
    };
    let watchdog = tokio::spawn(systemd::run_watchdog(stopped.clone()));
    poller::run(dispatcher, client, config.request_timeout, stopped, || {
        info!("polling for commands");
        systemd::notify_ready();
    })
    .await;

    for task in [sender, health, watchdog] {
        if let Err(error) = task.await {
            warn!(%error, "a background task ended abnormally");
        }
    }
    Ok(())
}

async fn flush_replies(outbox: &Outbox, client: &Client) {
    match tokio::time::timeout(FLUSH_ON_SHUTDOWN, outbox.flush(client)).await {
        Ok(Ok(true)) => info!("all replies delivered"),
        Ok(Ok(false)) | Err(_) => warn!("some replies stay on disk until the next start"),
        Ok(Err(error)) => {
            warn!(error = %spool::error_chain(&error), "could not read the reply outbox");
        }
    }
}
