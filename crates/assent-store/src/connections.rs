//! Connections and the app trigger index. A connection ties a provider's installation (a
//! GitHub App installation, a Vercel integration configuration) to one workspace, with the
//! secret the provider signs that installation's webhooks with; an installation is connected
//! to at most one workspace in the whole store, so a webhook finds its workspace. The index
//! lists, per definition, the installations its app triggers name; it is rewritten by each
//! definition write, as the schedule index is.

use crate::{StoreError, StoreResult};
use assent_core::model::AppProvider;
use std::fmt;

/// The most definitions one `app_trigger_definitions` answers.
pub(crate) const APP_TRIGGER_DEFINITIONS_MAX: u32 = 1000;

/// A connection to make. The webhook secret is kept as given, since checking a signature
/// needs it, and is never listed.
#[derive(Clone)]
pub struct NewConnection {
    pub workspace_id: String,
    pub provider: AppProvider,
    pub installation_ref: String,
    pub webhook_secret: String,
}

/// A connection as it is listed: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub workspace_id: String,
    pub provider: AppProvider,
    pub installation_ref: String,
    pub created_at_ms: i64,
}

/// A connection with its webhook secret, for checking a delivery's signature.
#[derive(Clone)]
pub struct Connection {
    pub record: ConnectionRecord,
    pub webhook_secret: String,
}

impl fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewConnection")
            .field("workspace_id", &self.workspace_id)
            .field("provider", &self.provider)
            .field("installation_ref", &self.installation_ref)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("record", &self.record).finish_non_exhaustive()
    }
}

/// One installation that a definition's app triggers name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppTriggerEntry {
    pub provider: AppProvider,
    pub installation_ref: String,
}

/// The provider a stored name stands for.
pub(crate) fn provider_named(name: &str) -> StoreResult<AppProvider> {
    AppProvider::from_name(name)
        .ok_or_else(|| StoreError::Database(format!("unknown provider {name:?} in the store")))
}
