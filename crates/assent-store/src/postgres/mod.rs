//! PostgreSQL store: several engine processes may share one database.
//!
//! Every operation is one short transaction on a pooled connection. Races between
//! processes are settled by the database: row locks taken by `UPDATE … RETURNING` and
//! `SELECT … FOR UPDATE`, primary keys, and transaction-scoped advisory locks where there
//! is no row to lock yet (migrations, the first workspace).

mod connections;
mod credentials;
mod definitions;
mod deliveries;
mod executions;
mod migrations;
mod schedules;
mod seen_credentials;

use crate::credentials::{secret_hash, SecretKind};
use crate::deliveries::DeliveryQuery;
use crate::executions::ExecutionCursor;
use crate::{
    AfterAttempt, AuthOutcome, ClaimedDelivery, ClaimedTimer, DefinitionHead, DefinitionPage,
    DefinitionRecord, DeliveryAttempt, DeliveryFilter, DeliveryPage, DispatchLookup,
    DispatchOutcome, DueSchedule, EventPage, ExecutionChanges, ExecutionPage, ExecutionRecord,
    ExecutionStatus, ExecutionWrite, HeadDispatch, NewCredentials, NewDefinition, PinnedVersion,
    Store, StoreError, StoreResult, WorkspaceInfo,
};
use crate::{Connection, ConnectionRecord, NewConnection};
use assent_core::model::AppProvider;
use deadpool_postgres::{
    Client, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use seen_credentials::{SeenCredentials, CREDENTIALS_CHANNEL};
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row};

/// Connections one process keeps to the database at most.
const POOL_SIZE_MAX: usize = 16;

/// How long a caller waits for a pooled connection, or for a new one to open.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Advisory lock keys, each held only inside one transaction.
const MIGRATION_LOCK: i64 = 0x6173_7365_6e74_0001;
const BOOTSTRAP_LOCK: i64 = 0x6173_7365_6e74_0002;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        match e.source() {
            Some(cause) => StoreError::Database(format!("{e}: {cause}")),
            None => StoreError::Database(e.to_string()),
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => e.into(),
            other => StoreError::Database(format!("PostgreSQL pool: {other}")),
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// For the listening connection, which lives outside the pool.
    config: tokio_postgres::Config,
    timers_set: TimerNotifier,
    seen: Arc<SeenCredentials>,
}

/// Tells every listening process, after a commit that set timers, to look at the timers.
/// The NOTIFY is sent on its own, after the commit, and never from inside the writing
/// transaction: PostgreSQL makes the commits of notifying transactions take turns, fsync
/// included, which took group commit away from every dispatch that set a timer.
/// Requests made while one is waiting to be sent share it.
#[derive(Clone)]
struct TimerNotifier {
    requests: tokio::sync::mpsc::Sender<()>,
}

impl TimerNotifier {
    /// Starts the task that sends the notifications; it ends with the last store handle.
    fn start(pool: Pool) -> TimerNotifier {
        let (requests, mut pending) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while pending.recv().await.is_some() {
                if let Err(e) = notify_timers_set(&pool).await {
                    tracing::warn!(error = %e, "could not tell other processes about new timers");
                }
            }
        });
        TimerNotifier { requests }
    }

    fn request(&self) {
        // Full means a notification not yet sent: it will cover this commit too.
        let _ = self.requests.try_send(());
    }
}

async fn notify_timers_set(pool: &Pool) -> StoreResult<()> {
    let client = pool.get().await?;
    let statement = client.prepare_cached("SELECT pg_notify($1, '')").await?;
    client.execute(&statement, &[&TIMERS_CHANNEL]).await?;
    Ok(())
}

/// Server settings for every connection: a statement is planned once, not for each
/// execution's values.
///
/// `LIMIT_IN_TEXT`: a generic plan takes a `LIMIT $n` to keep a tenth of the rows, so a
/// claim that joins its chosen rows back to their table (timers, deliveries) was planned
/// as a hash join over the whole table, and slowed as the table grew. Those claims write
/// their limit into the statement's text instead.
const GENERIC_PLANS: &str = "-c plan_cache_mode=force_generic_plan";

/// The channel on which a commit that sets timers notifies every process.
const TIMERS_CHANNEL: &str = "assent_timers";

/// Wait before listening again after the listening connection dropped.
const LISTEN_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `$work` (an expression over the transaction `$txn`, yielding a future) in one
/// transaction on a pooled connection, and commits it if it succeeded.
macro_rules! in_transaction {
    ($store:expr, |$txn:ident| $work:expr) => {{
        let mut client = $store.pool.get().await?;
        let $txn = client.transaction().await?;
        let result = $work.await?;
        $txn.commit().await?;
        Ok(result)
    }};
}

/// One listening connection, counted by the credentials kept while it lasts, however
/// its task ends.
struct Listening(Arc<SeenCredentials>);

impl Listening {
    fn start(seen: &Arc<SeenCredentials>) -> Listening {
        seen.listening(true);
        Listening(seen.clone())
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.listening(false);
    }
}

impl PgStore {
    /// Holds one connection that listens for new timers, waking `wake`, and for
    /// revocations, forgetting the credentials this process kept; returns when the
    /// connection ends.
    async fn listen(&self, wake: &Arc<Notify>) -> StoreResult<()> {
        let (client, mut connection) = self.config.connect(NoTls).await?;
        let (woken, seen) = (wake.clone(), self.seen.clone());
        let messages = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == CREDENTIALS_CHANNEL => {
                        seen.forget_all()
                    }
                    Ok(AsyncMessage::Notification(_)) => woken.notify_one(),
                    Ok(_) => {}
                    Err(e) => return Err(StoreError::from(e)),
                }
            }
            Ok(())
        });
        let listen = format!("LISTEN {TIMERS_CHANNEL}; LISTEN {CREDENTIALS_CHANNEL}");
        if let Err(e) = client.batch_execute(&listen).await {
            messages.abort();
            return Err(e.into());
        }
        let _listening = Listening::start(&self.seen);
        // A notification may have been missed while not listening; look once.
        wake.notify_one();
        let ended = messages.await.map_err(|e| StoreError::Database(e.to_string()))?;
        drop(client);
        ended
    }

    /// Connects to the database `url` names (`postgres://…`) and brings its schema up to
    /// date. Connections are unencrypted.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
        // Every statement is prepared once per connection and runs with the same shape of
        // parameters: planning it anew for each run (the server's default for the first
        // few runs, and whenever it judges a custom plan cheaper) was CPU spent for nothing.
        let options = [config.get_options(), Some(GENERIC_PLANS)].into_iter().flatten();
        config.options(options.collect::<Vec<_>>().join(" "));
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = Manager::from_config(config.clone(), NoTls, manager_config);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE_MAX)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(POOL_WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config(format!("PostgreSQL pool: {e}")))?;

        let timers_set = TimerNotifier::start(pool.clone());
        let seen = Arc::default();
        let store = PgStore { pool, config, timers_set, seen };
        store.migrate().await?;
        tracing::info!("PostgreSQL store open");
        Ok(store)
    }

    /// Applies the migrations the database lacks, in one transaction. The advisory lock
    /// makes a second process wait, then find nothing left to do.
    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        txn.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT NOT NULL PRIMARY KEY,
                 name    TEXT   NOT NULL
             )",
        )
        .await?;
        let applied: i64 = txn
            .query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])
            .await?
            .try_get(0)?;
        let known = migrations::MIGRATIONS.last().map_or(0, |m| m.version);
        if applied > known {
            return Err(StoreError::Config(format!(
                "the database's schema is at version {applied}, newer than this build's {known}"
            )));
        }

        for migration in migrations::MIGRATIONS.iter().filter(|m| m.version > applied) {
            txn.batch_execute(migration.sql).await?;
            txn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
            tracing::info!(version = migration.version, name = migration.name, "migration applied");
        }
        txn.commit().await?;
        Ok(())
    }
}

/// Runs a statement through the connection's statement cache.
/// Runs one read statement on `client`, outside any transaction: a statement sees one
/// snapshot on its own, and skipping BEGIN and COMMIT saves two round trips.
async fn read_opt(client: &Client, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, params).await?)
}

async fn execute(txn: &Transaction<'_>, sql: &str, params: Params<'_>) -> StoreResult<u64> {
    let statement = txn.prepare_cached(sql).await?;
    Ok(txn.execute(&statement, params).await?)
}

async fn query_opt(
    txn: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Option<Row>> {
    let statement = txn.prepare_cached(sql).await?;
    Ok(txn.query_opt(&statement, params).await?)
}

async fn query(txn: &Transaction<'_>, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
    let statement = txn.prepare_cached(sql).await?;
    Ok(txn.query(&statement, params).await?)
}

impl Store for PgStore {
    async fn create_workspace(&self, name: &str, now_ms: i64) -> StoreResult<NewCredentials> {
        in_transaction!(self, |txn| credentials::create_workspace(&txn, name, now_ms))
    }

    async fn bootstrap_workspace(
        &self,
        name: &str,
        now_ms: i64,
    ) -> StoreResult<Option<NewCredentials>> {
        in_transaction!(self, |txn| credentials::bootstrap_workspace(&txn, name, now_ms))
    }

    async fn watch_timers(&self, wake: Arc<Notify>) {
        loop {
            if let Err(e) = self.listen(&wake).await {
                tracing::warn!("listening for timers failed, retrying: {e}");
            }
            tokio::time::sleep(LISTEN_RETRY_WAIT).await;
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        let client = self.pool.get().await?;
        client.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<WorkspaceInfo>> {
        in_transaction!(self, |txn| credentials::list_workspaces(&txn))
    }

    async fn create_api_key(&self, workspace_id: &str, now_ms: i64) -> StoreResult<String> {
        let kind = SecretKind::ApiKey;
        in_transaction!(self, |txn| credentials::create_secret(&txn, kind, workspace_id, now_ms))
    }

    async fn revoke_api_key(&self, api_key: &str, now_ms: i64) -> StoreResult<()> {
        let kind = SecretKind::ApiKey;
        let revoked: StoreResult<()> =
            in_transaction!(self, |txn| credentials::revoke_secret(&txn, kind, api_key, now_ms));
        self.seen.forget_all();
        revoked
    }

    async fn create_auth_token(&self, workspace_id: &str, now_ms: i64) -> StoreResult<String> {
        let kind = SecretKind::AuthToken;
        in_transaction!(self, |txn| credentials::create_secret(&txn, kind, workspace_id, now_ms))
    }

    async fn revoke_auth_token(&self, auth_token: &str, now_ms: i64) -> StoreResult<()> {
        let kind = SecretKind::AuthToken;
        let revoked: StoreResult<()> =
            in_transaction!(self, |txn| credentials::revoke_secret(&txn, kind, auth_token, now_ms));
        self.seen.forget_all();
        revoked
    }

    async fn workspace_of_api_key(&self, api_key: &str) -> StoreResult<Option<String>> {
        in_transaction!(self, |txn| credentials::workspace_of_api_key(&txn, api_key))
    }

    async fn authenticate(
        &self,
        api_key: Option<&str>,
        auth_token: Option<&str>,
    ) -> StoreResult<AuthOutcome> {
        let Some(api_key) = api_key else {
            return Ok(AuthOutcome::UnknownApiKey);
        };
        // An empty header is no token at all.
        let auth_token = auth_token.filter(|token| !token.is_empty());
        let (api_key, auth_token) = (secret_hash(api_key), auth_token.map(secret_hash));
        let Some(auth_token) = auth_token else {
            let client = self.pool.get().await?;
            return credentials::authenticate(&client, &api_key, None).await;
        };
        let hashes = (api_key, auth_token);
        if let Some(workspace_id) = self.seen.workspace(&hashes) {
            return Ok(AuthOutcome::Authenticated { workspace_id });
        }
        let generation = self.seen.generation();
        let client = self.pool.get().await?;
        let outcome = credentials::authenticate(&client, &hashes.0, Some(&hashes.1)).await?;
        if let (Some(generation), AuthOutcome::Authenticated { workspace_id }) =
            (generation, &outcome)
        {
            self.seen.remember(generation, hashes, workspace_id.clone());
        }
        Ok(outcome)
    }

    async fn add_connection(
        &self,
        connection: NewConnection,
        now_ms: i64,
    ) -> StoreResult<ConnectionRecord> {
        in_transaction!(self, |txn| connections::add(&txn, &connection, now_ms))
    }

    async fn list_connections(
        &self,
        workspace_id: Option<&str>,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        in_transaction!(self, |txn| connections::list(&txn, workspace_id))
    }

    async fn remove_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> StoreResult<ConnectionRecord> {
        in_transaction!(self, |txn| connections::remove(&txn, provider, installation_ref))
    }

    async fn get_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> StoreResult<Option<Connection>> {
        in_transaction!(self, |txn| connections::get(&txn, provider, installation_ref))
    }

    async fn app_trigger_definitions(
        &self,
        workspace_id: &str,
        provider: AppProvider,
        installation_ref: &str,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        in_transaction!(self, |txn| connections::definitions_naming(
            &txn,
            workspace_id,
            provider,
            installation_ref,
            limit
        ))
    }

    async fn create_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        now_ms: i64,
    ) -> StoreResult<DefinitionRecord> {
        in_transaction!(self, |txn| definitions::create_definition(&txn, workspace_id, def, now_ms))
    }

    async fn update_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        if_version: i64,
        now_ms: i64,
    ) -> StoreResult<DefinitionRecord> {
        in_transaction!(self, |txn| definitions::update_definition(
            &txn,
            workspace_id,
            def,
            if_version,
            now_ms
        ))
    }

    async fn get_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> StoreResult<Option<DefinitionRecord>> {
        in_transaction!(self, |txn| definitions::get_definition(&txn, workspace_id, definition_id))
    }

    async fn definition_status(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> StoreResult<Option<crate::DefinitionStatus>> {
        in_transaction!(self, |txn| definitions::peek_status(&txn, workspace_id, definition_id))
    }

    async fn get_definition_version(
        &self,
        workspace_id: &str,
        definition_id: &str,
        version: i64,
    ) -> StoreResult<Option<DefinitionRecord>> {
        in_transaction!(self, |txn| definitions::get_definition_version(
            &txn,
            workspace_id,
            definition_id,
            version
        ))
    }

    async fn list_definitions(
        &self,
        workspace_id: &str,
        page_size: u32,
        cursor: Option<i64>,
    ) -> StoreResult<DefinitionPage> {
        in_transaction!(self, |txn| definitions::list_definitions(
            &txn,
            workspace_id,
            page_size,
            cursor
        ))
    }

    async fn delete_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
        purge: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        in_transaction!(self, |txn| definitions::delete_definition(
            &txn,
            workspace_id,
            definition_id,
            purge,
            now_ms
        ))
    }

    async fn dispatch_execution(
        &self,
        workspace_id: &str,
        write: ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> StoreResult<DispatchOutcome> {
        let sets_timers = !write.changes.timers_set.is_empty();
        let outcome = in_transaction!(self, |txn| executions::dispatch_execution(
            &txn,
            workspace_id,
            write,
            idempotency_expires_at_ms
        ));
        if sets_timers && outcome.as_ref().is_ok_and(|o| *o == DispatchOutcome::Created) {
            self.timers_set.request();
        }
        outcome
    }

    fn dispatches_at_head(&self) -> bool {
        true
    }

    async fn dispatch_at_head(
        &self,
        workspace_id: &str,
        head: DefinitionHead,
        write: &ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> StoreResult<HeadDispatch> {
        let client = self.pool.get().await?;
        let outcome = executions::dispatch_at_head(
            &client,
            workspace_id,
            head,
            write,
            idempotency_expires_at_ms,
        )
        .await?;
        if outcome == HeadDispatch::Created && !write.changes.timers_set.is_empty() {
            self.timers_set.request();
        }
        Ok(outcome)
    }

    async fn dispatch_lookup(
        &self,
        workspace_id: &str,
        idempotency_key: Option<&str>,
        definition_id: &str,
        now_ms: i64,
    ) -> StoreResult<DispatchLookup> {
        let client = self.pool.get().await?;
        executions::dispatch_lookup(&client, workspace_id, idempotency_key, definition_id, now_ms)
            .await
    }

    async fn get_execution(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> StoreResult<Option<ExecutionRecord>> {
        let client = self.pool.get().await?;
        executions::get_execution(&client, workspace_id, execution_id).await
    }

    async fn pinned_version(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> StoreResult<Option<PinnedVersion>> {
        let client = self.pool.get().await?;
        executions::pinned_version(&client, workspace_id, execution_id).await
    }

    async fn list_executions(
        &self,
        workspace_id: &str,
        definition_id: Option<&str>,
        status: Option<ExecutionStatus>,
        page_size: u32,
        cursor: Option<&str>,
    ) -> StoreResult<ExecutionPage> {
        let cursor = ExecutionCursor::from_request(cursor)?;
        in_transaction!(self, |txn| executions::list_executions(
            &txn,
            workspace_id,
            definition_id,
            status,
            page_size,
            &cursor
        ))
    }

    async fn get_events(
        &self,
        workspace_id: &str,
        execution_id: &str,
        since_seq: i64,
        page_size: u32,
    ) -> StoreResult<EventPage> {
        in_transaction!(self, |txn| executions::get_events(
            &txn,
            workspace_id,
            execution_id,
            since_seq,
            page_size
        ))
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
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await?;
        let outcome = executions::update_execution(&txn, workspace_id, execution_id, command);
        let (outcome, sets_timers) = outcome.await?;
        // A refused command writes nothing: dropping the transaction rolls it back.
        if outcome.is_ok() {
            txn.commit().await?;
            if sets_timers {
                self.timers_set.request();
            }
        }
        Ok(outcome)
    }

    async fn claim_due_timers(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedTimer>> {
        in_transaction!(self, |txn| executions::claim_due_timers(&txn, now_ms, lease_ms, limit))
    }

    async fn next_timer_due_ms(&self) -> StoreResult<Option<i64>> {
        executions::next_timer_due_ms(&self.pool.get().await?).await
    }

    async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        in_transaction!(self, |txn| deliveries::claim_due_deliveries(&txn, now_ms, lease_ms, limit))
    }

    async fn finish_delivery_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: DeliveryAttempt,
        after: AfterAttempt,
        now_ms: i64,
    ) -> StoreResult<bool> {
        in_transaction!(self, |txn| deliveries::finish_delivery_attempt(
            &txn, claimed, &attempt, after, now_ms
        ))
    }

    async fn next_delivery_due_ms(&self) -> StoreResult<Option<i64>> {
        deliveries::next_delivery_due_ms(&self.pool.get().await?).await
    }

    async fn list_deliveries(
        &self,
        workspace_id: &str,
        filter: DeliveryFilter<'_>,
    ) -> StoreResult<DeliveryPage> {
        let list = DeliveryQuery::from_filter(&filter)?;
        in_transaction!(self, |txn| deliveries::list_deliveries(&txn, workspace_id, &list))
    }

    async fn redeliver(
        &self,
        workspace_id: &str,
        execution_id: &str,
        event_ids: Option<&[String]>,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        in_transaction!(self, |txn| deliveries::redeliver(
            &txn,
            workspace_id,
            execution_id,
            event_ids,
            now_ms
        ))
    }

    async fn server_secret(&self, candidate: &str) -> StoreResult<String> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO server_secrets (name, value) VALUES ('callback', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[&candidate],
            )
            .await?;
        let row = client
            .query_one("SELECT value FROM server_secrets WHERE name = 'callback'", &[])
            .await?;
        Ok(row.get(0))
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
        in_transaction!(self, |txn| schedules::claim_due(&txn, now_ms, limit, next_fire_at))
    }

    async fn next_schedule_due_ms(&self) -> StoreResult<Option<i64>> {
        in_transaction!(self, |txn| schedules::next_due_ms(&txn))
    }
}
