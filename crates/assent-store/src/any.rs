//! [`AnyStore`]: the store a database URL names, SQLite or PostgreSQL.

use crate::{
    AfterAttempt, AuthOutcome, ClaimedDelivery, ClaimedTimer, DefinitionHead, DefinitionPage,
    DefinitionRecord, DeliveryAttempt, DeliveryFilter, DeliveryPage, DispatchLookup,
    DispatchOutcome, DueSchedule, EventPage, ExecutionChanges, ExecutionPage, ExecutionRecord,
    ExecutionStatus, ExecutionWrite, HeadDispatch, NewCredentials, NewDefinition, PgStore,
    PinnedVersion, SqliteStore, Store, StoreError, StoreResult, WorkspaceInfo,
};
use crate::{Connection, ConnectionRecord, NewConnection};
use assent_core::model::AppProvider;
use std::sync::Arc;
use tokio::sync::Notify;

pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

impl AnyStore {
    /// Opens the store `url` names: `sqlite:PATH` or `sqlite://PATH` (so `sqlite:///abs`
    /// for an absolute path), or `postgres://…` / `postgresql://…`.
    pub async fn open(url: &str) -> StoreResult<AnyStore> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(AnyStore::Postgres(Box::new(PgStore::connect(url).await?)));
        }
        let sqlite_path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
        match sqlite_path {
            Some(path) if !path.is_empty() => Ok(AnyStore::Sqlite(SqliteStore::open(path).await?)),
            Some(_) => Err(StoreError::Config("a sqlite: URL needs a file path".into())),
            None => Err(StoreError::Config(format!(
                "unknown database URL scheme in {:?}: expected sqlite: or postgres://",
                scheme_of(url)
            ))),
        }
    }
}

/// The part of a URL before its first `:`, so that no password reaches a message.
fn scheme_of(url: &str) -> &str {
    url.split_once(':').map_or(url, |(scheme, _)| scheme)
}

/// Calls the same method on whichever store this is.
macro_rules! delegate {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Sqlite(store) => store.$method($($arg),*).await,
            AnyStore::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn create_workspace(&self, name: &str, now_ms: i64) -> StoreResult<NewCredentials> {
        delegate!(self.create_workspace(name, now_ms))
    }

    async fn bootstrap_workspace(
        &self,
        name: &str,
        now_ms: i64,
    ) -> StoreResult<Option<NewCredentials>> {
        delegate!(self.bootstrap_workspace(name, now_ms))
    }

    async fn watch_timers(&self, wake: Arc<Notify>) {
        delegate!(self.watch_timers(wake))
    }

    async fn ping(&self) -> StoreResult<()> {
        delegate!(self.ping())
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<WorkspaceInfo>> {
        delegate!(self.list_workspaces())
    }

    async fn create_api_key(&self, workspace_id: &str, now_ms: i64) -> StoreResult<String> {
        delegate!(self.create_api_key(workspace_id, now_ms))
    }

    async fn revoke_api_key(&self, api_key: &str, now_ms: i64) -> StoreResult<()> {
        delegate!(self.revoke_api_key(api_key, now_ms))
    }

    async fn create_auth_token(&self, workspace_id: &str, now_ms: i64) -> StoreResult<String> {
        delegate!(self.create_auth_token(workspace_id, now_ms))
    }

    async fn revoke_auth_token(&self, auth_token: &str, now_ms: i64) -> StoreResult<()> {
        delegate!(self.revoke_auth_token(auth_token, now_ms))
    }

    async fn workspace_of_api_key(&self, api_key: &str) -> StoreResult<Option<String>> {
        delegate!(self.workspace_of_api_key(api_key))
    }

    async fn authenticate(
        &self,
        api_key: Option<&str>,
        auth_token: Option<&str>,
    ) -> StoreResult<AuthOutcome> {
        delegate!(self.authenticate(api_key, auth_token))
    }

    async fn add_connection(
        &self,
        connection: NewConnection,
        now_ms: i64,
    ) -> StoreResult<ConnectionRecord> {
        delegate!(self.add_connection(connection, now_ms))
    }

    async fn list_connections(
        &self,
        workspace_id: Option<&str>,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        delegate!(self.list_connections(workspace_id))
    }

    async fn remove_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> StoreResult<ConnectionRecord> {
        delegate!(self.remove_connection(provider, installation_ref))
    }

    async fn get_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> StoreResult<Option<Connection>> {
        delegate!(self.get_connection(provider, installation_ref))
    }

    async fn app_trigger_definitions(
        &self,
        workspace_id: &str,
        provider: AppProvider,
        installation_ref: &str,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        delegate!(self.app_trigger_definitions(workspace_id, provider, installation_ref, limit))
    }

    async fn create_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        now_ms: i64,
    ) -> StoreResult<DefinitionRecord> {
        delegate!(self.create_definition(workspace_id, def, now_ms))
    }

    async fn update_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        if_version: i64,
        now_ms: i64,
    ) -> StoreResult<DefinitionRecord> {
        delegate!(self.update_definition(workspace_id, def, if_version, now_ms))
    }

    async fn get_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> StoreResult<Option<DefinitionRecord>> {
        delegate!(self.get_definition(workspace_id, definition_id))
    }

    async fn definition_status(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> StoreResult<Option<crate::DefinitionStatus>> {
        delegate!(self.definition_status(workspace_id, definition_id))
    }

    async fn get_definition_version(
        &self,
        workspace_id: &str,
        definition_id: &str,
        version: i64,
    ) -> StoreResult<Option<DefinitionRecord>> {
        delegate!(self.get_definition_version(workspace_id, definition_id, version))
    }

    async fn list_definitions(
        &self,
        workspace_id: &str,
        page_size: u32,
        cursor: Option<i64>,
    ) -> StoreResult<DefinitionPage> {
        delegate!(self.list_definitions(workspace_id, page_size, cursor))
    }

    async fn delete_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
        purge: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        delegate!(self.delete_definition(workspace_id, definition_id, purge, now_ms))
    }

    async fn dispatch_execution(
        &self,
        workspace_id: &str,
        write: ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> StoreResult<DispatchOutcome> {
        delegate!(self.dispatch_execution(workspace_id, write, idempotency_expires_at_ms))
    }

    fn dispatches_at_head(&self) -> bool {
        match self {
            AnyStore::Sqlite(store) => store.dispatches_at_head(),
            AnyStore::Postgres(store) => store.dispatches_at_head(),
        }
    }

    async fn dispatch_at_head(
        &self,
        workspace_id: &str,
        head: DefinitionHead,
        write: &ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> StoreResult<HeadDispatch> {
        delegate!(self.dispatch_at_head(workspace_id, head, write, idempotency_expires_at_ms))
    }

    async fn dispatch_lookup(
        &self,
        workspace_id: &str,
        idempotency_key: Option<&str>,
        definition_id: &str,
        now_ms: i64,
    ) -> StoreResult<DispatchLookup> {
        delegate!(self.dispatch_lookup(workspace_id, idempotency_key, definition_id, now_ms))
    }

    async fn get_execution(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> StoreResult<Option<ExecutionRecord>> {
        delegate!(self.get_execution(workspace_id, execution_id))
    }

    async fn pinned_version(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> StoreResult<Option<PinnedVersion>> {
        delegate!(self.pinned_version(workspace_id, execution_id))
    }

    async fn list_executions(
        &self,
        workspace_id: &str,
        definition_id: Option<&str>,
        status: Option<ExecutionStatus>,
        page_size: u32,
        cursor: Option<&str>,
    ) -> StoreResult<ExecutionPage> {
        delegate!(self.list_executions(workspace_id, definition_id, status, page_size, cursor))
    }

    async fn get_events(
        &self,
        workspace_id: &str,
        execution_id: &str,
        since_seq: i64,
        page_size: u32,
    ) -> StoreResult<EventPage> {
        delegate!(self.get_events(workspace_id, execution_id, since_seq, page_size))
    }

    async fn update_execution<T, E, F>(
        &self,
        workspace_id: &str,
        execution_id: &str,
        command: F,
    ) -> StoreResult<Result<T, E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut ExecutionRecord) -> Result<(ExecutionChanges, T), E> + Send + 'static,
    {
        delegate!(self.update_execution(workspace_id, execution_id, command))
    }

    async fn claim_due_timers(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedTimer>> {
        delegate!(self.claim_due_timers(now_ms, lease_ms, limit))
    }

    async fn next_timer_due_ms(&self) -> StoreResult<Option<i64>> {
        delegate!(self.next_timer_due_ms())
    }

    async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        delegate!(self.claim_due_deliveries(now_ms, lease_ms, limit))
    }

    async fn finish_delivery_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: DeliveryAttempt,
        after: AfterAttempt,
        now_ms: i64,
    ) -> StoreResult<bool> {
        delegate!(self.finish_delivery_attempt(claimed, attempt, after, now_ms))
    }

    async fn next_delivery_due_ms(&self) -> StoreResult<Option<i64>> {
        delegate!(self.next_delivery_due_ms())
    }

    async fn list_deliveries(
        &self,
        workspace_id: &str,
        filter: DeliveryFilter<'_>,
    ) -> StoreResult<DeliveryPage> {
        delegate!(self.list_deliveries(workspace_id, filter))
    }

    async fn redeliver(
        &self,
        workspace_id: &str,
        execution_id: &str,
        event_ids: Option<&[String]>,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        delegate!(self.redeliver(workspace_id, execution_id, event_ids, now_ms))
    }

    async fn server_secret(&self, candidate: &str) -> StoreResult<String> {
        delegate!(self.server_secret(candidate))
    }

    async fn claim_due_schedules<F>(
        &self,
        now_ms: i64,
        limit: u32,
        next_fire_at: F,
    ) -> StoreResult<Vec<DueSchedule>>
    where
        F: Fn(&DueSchedule) -> Option<i64> + Send + 'static,
    {
        delegate!(self.claim_due_schedules(now_ms, limit, next_fire_at))
    }

    async fn next_schedule_due_ms(&self) -> StoreResult<Option<i64>> {
        delegate!(self.next_schedule_due_ms())
    }
}
