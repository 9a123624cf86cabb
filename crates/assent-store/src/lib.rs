//! Assent's storage: one interface, [`Store`], and two implementations, SQLite (the
//! default, embedded) and PostgreSQL (for several engine processes sharing the work).
//!
//! The store never reads the clock: every write is given `now_ms` by its caller, so tests
//! can move time by hand.

mod any;
mod connections;
mod credentials;
mod deliveries;
mod executions;
mod postgres;
mod schedules;
mod shared;
mod sqlite;

use assent_core::model::AppProvider;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;

pub use any::AnyStore;
pub use connections::{AppTriggerEntry, Connection, ConnectionRecord, NewConnection};
pub use credentials::{AuthOutcome, NewCredentials, WorkspaceInfo};
pub use deliveries::{
    AfterAttempt, ClaimedDelivery, DeliveryAttempt, DeliveryFilter, DeliveryPage, DeliveryRecord,
    DeliveryStatus, NewDelivery,
};
pub use executions::{
    ClaimedTimer, DefinitionHead, DispatchLookup, DispatchOutcome, EventPage, EventRecord,
    ExecutionChanges, ExecutionPage, ExecutionRecord, ExecutionStatus, ExecutionWrite,
    HeadDispatch, NewEvent, PinnedVersion, TimerSet,
};
pub use postgres::PgStore;
pub use schedules::{DueSchedule, ScheduleEntry};
pub use sqlite::SqliteStore;

/// Errors a store operation can end with. The API maps them to statuses in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An active definition already holds this id, or a connection this installation.
    #[error("already exists")]
    AlreadyExists,
    /// No active definition (or workspace, key, token) with this id.
    #[error("not found")]
    NotFound,
    /// `ifVersion` did not match the stored version.
    #[error("Version conflict: expected {expected}, current {current}")]
    VersionConflict { expected: i64, current: i64 },
    /// The definition still has executions in flight.
    #[error("definition has executions in flight")]
    InFlight,
    /// The definition exists but is tombstoned: nothing new may start from it.
    #[error("definition is not active")]
    DefinitionNotActive,
    /// A list cursor that no list gave out.
    #[error("malformed cursor")]
    InvalidCursor,
    /// The database failed; the detail is for the log, never for a client.
    #[error("database error: {0}")]
    Database(String),
    /// The store cannot be opened as configured: an unknown URL scheme, a schema newer
    /// than this build.
    #[error("store configuration: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A definition to write: the authored body (kept whole, `webhookConfig` included) and the
/// precomputed parts of its public view (`webhookConfig` never among them).
#[derive(Clone, Debug)]
pub struct NewDefinition {
    pub definition_id: String,
    pub body: Value,
    pub view: Value,
    /// Its enabled schedule triggers, which replace the definition's entries in the
    /// schedule index in the same transaction.
    pub schedules: Vec<ScheduleEntry>,
    /// The installations its app triggers name, each once, which replace the definition's
    /// entries in the app trigger index in the same transaction.
    pub app_triggers: Vec<AppTriggerEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefinitionStatus {
    Active,
    Tombstoned,
}

impl DefinitionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionStatus::Active => "active",
            DefinitionStatus::Tombstoned => "tombstoned",
        }
    }
}

/// One stored version of a definition.
#[derive(Clone, Debug)]
pub struct DefinitionRecord {
    pub definition_id: String,
    pub version: i64,
    pub status: DefinitionStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The per-workspace write sequence number of the last write; the list cursor.
    pub write_seq: i64,
    pub body: Value,
    pub view: Value,
}

/// One page of definitions, newest write first.
#[derive(Clone, Debug)]
pub struct DefinitionPage {
    pub items: Vec<DefinitionRecord>,
    /// The `write_seq` to pass back for the next page; `None` when this page was the last.
    pub next_cursor: Option<i64>,
}

/// The storage interface every shell (HTTP, command line, engine) talks to.
pub trait Store: Send + Sync + 'static {
    /// Wakes `wake` whenever another process commits new timers. Runs until the task is
    /// dropped; a store used by one process only returns at once, as that process wakes
    /// its own timer loop.
    fn watch_timers(&self, wake: Arc<Notify>) -> impl Future<Output = ()> + Send;

    /// Answers once the store can serve a query; the readiness probe.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Creates a workspace with one API key and one auth token, returned in clear once.
    fn create_workspace(
        &self,
        name: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<NewCredentials>> + Send;

    /// Creates a first workspace only if the store has none; several processes racing
    /// here create exactly one. Returns `None` when a workspace already existed.
    fn bootstrap_workspace(
        &self,
        name: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<NewCredentials>>> + Send;

    fn list_workspaces(&self) -> impl Future<Output = StoreResult<Vec<WorkspaceInfo>>> + Send;

    /// A new API key for a workspace (`NotFound` if there is no such workspace).
    fn create_api_key(
        &self,
        workspace_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    /// Revokes a key given in clear; `NotFound` if no live key matches.
    fn revoke_api_key(
        &self,
        api_key: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn create_auth_token(
        &self,
        workspace_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<String>> + Send;

    fn revoke_auth_token(
        &self,
        auth_token: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The workspace of a live API key, for the endpoints that the key alone opens (the
    /// inbound webhook trigger, where a trigger's own secret proves the caller).
    fn workspace_of_api_key(
        &self,
        api_key: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Checks a request's credentials in the order the API reports them.
    fn authenticate(
        &self,
        api_key: Option<&str>,
        auth_token: Option<&str>,
    ) -> impl Future<Output = StoreResult<AuthOutcome>> + Send;

    /// Connects an installation to a workspace. `NotFound` when there is no such workspace,
    /// `AlreadyExists` when the installation is connected already, to any workspace.
    fn add_connection(
        &self,
        connection: NewConnection,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<ConnectionRecord>> + Send;

    /// The connections of one workspace, or of all, by workspace, provider and installation.
    fn list_connections(
        &self,
        workspace_id: Option<&str>,
    ) -> impl Future<Output = StoreResult<Vec<ConnectionRecord>>> + Send;

    /// Removes a connection and answers what it was; `NotFound` when there is none. The
    /// definitions naming the installation are left as they are.
    fn remove_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> impl Future<Output = StoreResult<ConnectionRecord>> + Send;

    /// The connection of an installation, with its webhook secret.
    fn get_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> impl Future<Output = StoreResult<Option<Connection>>> + Send;

    /// The ids of a workspace's active definitions whose app triggers name this installation,
    /// in id order, at most `limit` of them.
    fn app_trigger_definitions(
        &self,
        workspace_id: &str,
        provider: AppProvider,
        installation_ref: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Creates a definition at version 1, over a tombstone if there is one (whose earlier
    /// versions are then gone). `AlreadyExists` if an active one holds the id.
    fn create_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<DefinitionRecord>> + Send;

    /// Replaces an active definition when `if_version` is its version; the earlier version
    /// stays readable through [`Store::get_definition_version`].
    fn update_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        if_version: i64,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<DefinitionRecord>> + Send;

    /// The active definition with this id.
    fn get_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> impl Future<Output = StoreResult<Option<DefinitionRecord>>> + Send;

    /// Whether a definition with this id is active, tombstoned, or absent.
    fn definition_status(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> impl Future<Output = StoreResult<Option<DefinitionStatus>>> + Send;

    /// A version of the current lineage of an active definition.
    fn get_definition_version(
        &self,
        workspace_id: &str,
        definition_id: &str,
        version: i64,
    ) -> impl Future<Output = StoreResult<Option<DefinitionRecord>>> + Send;

    /// Active definitions, newest write first, strictly older than `cursor` when given.
    fn list_definitions(
        &self,
        workspace_id: &str,
        page_size: u32,
        cursor: Option<i64>,
    ) -> impl Future<Output = StoreResult<DefinitionPage>> + Send;

    /// Tombstones (or with `purge`, removes with every version) an active definition, and
    /// takes its entries out of the schedule and app trigger indexes. `InFlight` while it has
    /// executions that are pending or running.
    fn delete_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
        purge: bool,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Starts an execution, in one transaction: the idempotency key is looked up first (a
    /// live one answers `Replayed` whatever the definition's state), then the definition
    /// must still be active (`NotFound`, `DefinitionNotActive`), then the execution, its
    /// key, events and timers are written. A key whose `expires_at_ms` is at or before
    /// `record.started_at_ms` has expired and is replaced; `None` keeps the key as long as
    /// the execution. Racing dispatches of one key create exactly one execution.
    fn dispatch_execution(
        &self,
        workspace_id: &str,
        write: ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> impl Future<Output = StoreResult<DispatchOutcome>> + Send;

    /// Whether [`Store::dispatch_at_head`] is worth trying before [`Store::dispatch_lookup`]:
    /// true where a read costs about as much as a write (a round trip to a database server),
    /// false where reads are cheap beside writes and the lookup comes first.
    fn dispatches_at_head(&self) -> bool;

    /// Starts an execution in one step, without a lookup before it: written only if the
    /// definition is still active at `head` (the version `write` was built from) and the key
    /// is new. A key that was live already answers `Replayed`, whatever the definition's
    /// state; anything else writes nothing and answers `Unsettled`, for the caller to look up
    /// and dispatch with [`Store::dispatch_execution`]. Stores whose
    /// [`Store::dispatches_at_head`] is false always answer `Unsettled`.
    fn dispatch_at_head(
        &self,
        workspace_id: &str,
        head: DefinitionHead,
        write: &ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> impl Future<Output = StoreResult<HeadDispatch>> + Send;

    /// What a dispatch needs before it writes, read together: the execution a live
    /// `idempotency_key` already names, and the head of the definition.
    fn dispatch_lookup(
        &self,
        workspace_id: &str,
        idempotency_key: Option<&str>,
        definition_id: &str,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<DispatchLookup>> + Send;

    fn get_execution(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> impl Future<Output = StoreResult<Option<ExecutionRecord>>> + Send;

    /// The definition version an execution runs; `None` without the execution. One small
    /// read, so that a process that has that version compiled need not read either whole.
    fn pinned_version(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> impl Future<Output = StoreResult<Option<PinnedVersion>>> + Send;

    /// Executions newest first (`started_at_ms`, then `execution_id`), after `cursor` when
    /// given; `InvalidCursor` for a cursor no list gave out.
    fn list_executions(
        &self,
        workspace_id: &str,
        definition_id: Option<&str>,
        status: Option<ExecutionStatus>,
        page_size: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = StoreResult<ExecutionPage>> + Send;

    /// External events with `seq > since_seq`, oldest first; `NotFound` when the execution
    /// is not in this workspace.
    fn get_events(
        &self,
        workspace_id: &str,
        execution_id: &str,
        since_seq: i64,
        page_size: u32,
    ) -> impl Future<Output = StoreResult<EventPage>> + Send;

    /// Runs `command` on the execution inside the write transaction, with the execution
    /// locked, and commits the record as `command` left it (its status, `updated_at_ms`
    /// and state) together with the changes it returns. When `command` returns an error,
    /// nothing is written and the error is handed back. `NotFound` when there is no such
    /// execution in this workspace.
    fn update_execution<T, E, F>(
        &self,
        workspace_id: &str,
        execution_id: &str,
        command: F,
    ) -> impl Future<Output = StoreResult<Result<T, E>>> + Send
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut ExecutionRecord) -> Result<(ExecutionChanges, T), E> + Send + 'static;

    /// Claims up to `limit` timers due at `now_ms`, oldest due first, each for `lease_ms`:
    /// until then no other claim, from this process or another, gets it. A fired timer is
    /// removed by the `timers_cleared` of the command it causes; one whose lease ends
    /// first is claimable again.
    fn claim_due_timers(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<ClaimedTimer>>> + Send;

    /// When the next timer becomes claimable (its due time, or the end of its lease).
    fn next_timer_due_ms(&self) -> impl Future<Output = StoreResult<Option<i64>>> + Send;

    /// Claims up to `limit` pending deliveries whose next attempt is due at `now_ms` and
    /// whose lease has ended, each for `lease_ms`, oldest due first. Only the pending
    /// delivery with the lowest `seq` of its execution is claimable: an execution's later
    /// events wait until the earlier ones are delivered or dead, across every process.
    fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<ClaimedDelivery>>> + Send;

    /// Records an attempt of a claimed delivery and moves it on (`after`), releasing its
    /// lease. Writes nothing and answers `false` when the delivery is no longer pending
    /// with `claimed.attempts` attempts made (a claim whose lease ran out was taken over).
    fn finish_delivery_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: DeliveryAttempt,
        after: AfterAttempt,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// When the next pending delivery becomes claimable (its next attempt, or the end of
    /// its lease, whichever is later). Deliveries waiting behind an earlier pending one of
    /// their execution are not counted: they become claimable only when it is finished.
    fn next_delivery_due_ms(&self) -> impl Future<Output = StoreResult<Option<i64>>> + Send;

    /// A workspace's deliveries, newest first, with their attempts; `InvalidCursor` for a
    /// cursor no list gave out.
    fn list_deliveries(
        &self,
        workspace_id: &str,
        filter: DeliveryFilter<'_>,
    ) -> impl Future<Output = StoreResult<DeliveryPage>> + Send;

    /// Starts a new round of attempts, the first due at `now_ms`, for deliveries of one
    /// execution: those of `event_ids` whatever their status (pending ones are left as they
    /// are), or without ids every dead one. Returns the event ids of the deliveries it
    /// restarted, in `seq` order. `NotFound` when the execution is not in this workspace or
    /// one of `event_ids` has no delivery in it. While a later delivery of the execution is
    /// in flight, the restarted ones wait for the end of its lease.
    fn redeliver(
        &self,
        workspace_id: &str,
        execution_id: &str,
        event_ids: Option<&[String]>,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// The store's server secret (signing callback tokens), made once: the first caller's
    /// `candidate` is kept and every caller, in every process, gets the kept one.
    fn server_secret(&self, candidate: &str) -> impl Future<Output = StoreResult<String>> + Send;
    /// Claims up to `limit` schedules due at `now_ms`, across workspaces, earliest first,
    /// and in the same transaction moves each to the instant `next_fire_at` names (or takes
    /// it out of the index for `None`). So each instant is claimed once, whichever process
    /// asks; a claim that is never dispatched is lost, not retried.
    fn claim_due_schedules<F>(
        &self,
        now_ms: i64,
        limit: u32,
        next_fire_at: F,
    ) -> impl Future<Output = StoreResult<Vec<DueSchedule>>> + Send
    where
        F: Fn(&DueSchedule) -> Option<i64> + Send + 'static;

    /// The earliest instant in the schedule index.
    fn next_schedule_due_ms(&self) -> impl Future<Output = StoreResult<Option<i64>>> + Send;
}
