//! What every request handler shares: configuration, identities, storage.

use crate::auth::Identities;
use crate::config::Config;
use crate::store::Store;
use crate::wakeup::Wakeups;

/// Shared server state, behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Config,
    /// Users, static nodes and roles, indexed by access key and name.
    pub identities: Identities,
    /// The database.
    pub store: Store,
    /// Wakes held polls when messages are queued.
    pub wakeups: Wakeups,
}

impl AppState {
    /// The part of message topics after the prefix, e.g. `us.east.1.1`; AWS's agent
    /// reads only the prefix.
    pub fn topic_suffix(&self) -> String {
        format!("{}.1", self.config.region.replace('-', "."))
    }
}
