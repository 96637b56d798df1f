//! What every request handler shares: configuration, identities, storage.

use crate::auth::Identities;
use crate::config::Config;
use crate::store::Store;

/// Shared server state, behind an `Arc`.
#[derive(Debug)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Config,
    /// Users, static nodes and roles, indexed by access key and name.
    pub identities: Identities,
    /// The database.
    pub store: Store,
}
