//! SQLite store: one file, one writer thread committing in groups, a few reader connections.
//!
//! Writes queue up for the writer ([`writer`]), which commits every waiting write in one
//! transaction, so many writes share one fsync. Reads run on a small pool of read-only
//! connections; WAL mode lets them read while the writer writes.

mod connections;
mod credentials;
mod definitions;
mod deliveries;
mod executions;
mod migrations;
mod schedules;
mod writer;

use crate::credentials::SecretKind;
use crate::deliveries::DeliveryQuery;
use crate::executions::ExecutionCursor;
use crate::{
    AfterAttempt, AuthOutcome, ClaimedDelivery, ClaimedTimer, DefinitionHead, DefinitionPage,
    DefinitionRecord, DeliveryAttempt, DeliveryFilter, DeliveryPage, DispatchLookup,
    DispatchOutcome, DueSchedule, EventPage, ExecutionChanges, ExecutionPage, ExecutionRecord,
    ExecutionStatus, ExecutionWrite, HeadDispatch, NewCredentials, NewDefinition, PinnedVersion,
    Store, StoreError, StoreResult, WorkspaceInfo,
};
use crate::{ConnectionRecord, NewConnection};
use assent_core::model::AppProvider;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::sync::Semaphore;
use writer::Writer;

/// Read-only connections kept open for reads.
const READERS_MAX: usize = 4;

/// Prepared statements each connection keeps: more than the store has distinct statements,
/// so that none is parsed twice.
const STATEMENTS_CACHED: usize = 256;

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

/// Held while any connection of this process closes. SQLite 3.51's unix VFS can deadlock
/// when one connection to a file closes while another to the same file closes its WAL
/// (the two take the VFS mutex and the file's lock mutex in opposite orders), so closes
/// take turns. Connections close only when a store shuts down.
static CLOSING: Mutex<()> = Mutex::new(());

/// Closes `conn` while no other connection of this process is closing.
fn close(conn: Connection) {
    let _closing = CLOSING.lock().unwrap_or_else(|e| e.into_inner());
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "SQLite connection did not close cleanly");
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per idle connection.
    permits: Semaphore,
}

impl Drop for Readers {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|e| e.into_inner());
        idle.drain(..).for_each(close);
    }
}

impl SqliteStore {
    /// Opens (creating if need be) the database file at `path` and brings its schema up
    /// to date.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_owned();
        tokio::task::spawn_blocking(move || open_blocking(path))
            .await
            .map_err(|e| StoreError::Database(format!("opening SQLite: {e}")))?
    }

    /// Runs `work` in the writer's next group commit.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(move |txn| work(txn)).await
    }

    /// Runs `read` on a reader connection, inside one read transaction so that it sees a
    /// single snapshot. The read runs on the calling task's thread: the reads are short
    /// (point lookups and bounded pages over indexes), and handing each to another thread
    /// cost more in wake-ups than the read itself.
    async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = match self.readers.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let permit = self.readers.permits.acquire().await;
                permit.map_err(|e| StoreError::Database(e.to_string()))?
            }
        };
        let idle = self.readers.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // A read that panicked took its connection with it: open another in its place.
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.readers.path)?,
        };
        let result = conn.unchecked_transaction().map_err(StoreError::from).and_then(|txn| {
            let result = read(&txn);
            drop(txn);
            result
        });
        self.readers.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        drop(permit);
        result
    }
}

fn open_blocking(path: PathBuf) -> StoreResult<SqliteStore> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display())))?;
    }

    let mut conn = Connection::open(&path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    use_wal(&conn)?;
    // A commit is on disk before its write is answered.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Each write runs in a savepoint; its journal stays in memory instead of a temporary
    // file opened and unlinked for every group commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate(&mut conn).map_err(during("migrating"))?;

    let idle = (0..READERS_MAX).map(|_| open_reader(&path)).collect::<StoreResult<Vec<_>>>();
    let idle = idle.map_err(during("opening readers"))?;
    let readers = Readers {
        path: path.clone(),
        idle: Mutex::new(idle),
        permits: Semaphore::new(READERS_MAX),
    };
    let writer = Writer::start(conn)?;
    tracing::info!(path = %path.display(), "SQLite store open");
    Ok(SqliteStore { writer, readers: Arc::new(readers) })
}

/// Switches the file to WAL mode. SQLite answers "busy" at once, without waiting, when
/// another connection is switching the same new file, so this retries for a while.
fn use_wal(conn: &Connection) -> StoreResult<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let switched = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match switched {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => return Err(StoreError::Database(format!("journal mode {mode}, not WAL"))),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(StoreError::Database(format!("switching to WAL: {e}"))),
        }
    }
}

/// Names the step of opening that a database error came from.
fn during(step: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Database(detail) => StoreError::Database(format!("{step}: {detail}")),
        other => other,
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    Ok(conn)
}

/// Applies the migrations this database lacks, in one transaction. `BEGIN IMMEDIATE`
/// makes a second process opening the same file wait, then find nothing left to do.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    txn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER NOT NULL PRIMARY KEY,
             name    TEXT    NOT NULL
         )",
    )?;
    let applied: i64 =
        txn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| {
            row.get(0)
        })?;
    let known = migrations::MIGRATIONS.last().map_or(0, |m| m.version);
    if applied > known {
        return Err(StoreError::Config(format!(
            "the database's schema is at version {applied}, newer than this build's {known}"
        )));
    }

    for migration in migrations::MIGRATIONS.iter().filter(|m| m.version > applied) {
        txn.execute_batch(migration.sql)?;
        txn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            rusqlite::params![migration.version, migration.name],
        )?;
        tracing::info!(version = migration.version, name = migration.name, "migration applied");
    }
    txn.commit()?;
    Ok(())
}

impl Store for SqliteStore {
    async fn create_workspace(&self, name: &str, now_ms: i64) -> StoreResult<NewCredentials> {
        let name = name.to_owned();
        self.write(move |conn| credentials::create_workspace(conn, &name, now_ms)).await
    }

    async fn bootstrap_workspace(
        &self,
        name: &str,
        now_ms: i64,
    ) -> StoreResult<Option<NewCredentials>> {
        let name = name.to_owned();
        self.write(move |conn| credentials::bootstrap_workspace(conn, &name, now_ms)).await
    }

    /// One process owns a SQLite store, and it wakes its own timer loop.
    async fn watch_timers(&self, _wake: Arc<Notify>) {}

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<WorkspaceInfo>> {
        self.read(credentials::list_workspaces).await
    }

    async fn create_api_key(&self, workspace_id: &str, now_ms: i64) -> StoreResult<String> {
        let workspace_id = workspace_id.to_owned();
        self.write(move |conn| {
            credentials::create_secret(conn, SecretKind::ApiKey, &workspace_id, now_ms)
        })
        .await
    }

    async fn revoke_api_key(&self, api_key: &str, now_ms: i64) -> StoreResult<()> {
        let api_key = api_key.to_owned();
        self.write(move |conn| {
            credentials::revoke_secret(conn, SecretKind::ApiKey, &api_key, now_ms)
        })
        .await
    }

    async fn create_auth_token(&self, workspace_id: &str, now_ms: i64) -> StoreResult<String> {
        let workspace_id = workspace_id.to_owned();
        self.write(move |conn| {
            credentials::create_secret(conn, SecretKind::AuthToken, &workspace_id, now_ms)
        })
        .await
    }

    async fn revoke_auth_token(&self, auth_token: &str, now_ms: i64) -> StoreResult<()> {
        let auth_token = auth_token.to_owned();
        self.write(move |conn| {
            credentials::revoke_secret(conn, SecretKind::AuthToken, &auth_token, now_ms)
        })
        .await
    }

    async fn workspace_of_api_key(&self, api_key: &str) -> StoreResult<Option<String>> {
        let api_key = api_key.to_owned();
        self.read(move |conn| credentials::workspace_of_api_key(conn, &api_key)).await
    }

    async fn authenticate(
        &self,
        api_key: Option<&str>,
        auth_token: Option<&str>,
    ) -> StoreResult<AuthOutcome> {
        let api_key = api_key.map(str::to_owned);
        let auth_token = auth_token.map(str::to_owned);
        self.read(move |conn| {
            credentials::authenticate(conn, api_key.as_deref(), auth_token.as_deref())
        })
        .await
    }

    async fn add_connection(
        &self,
        connection: NewConnection,
        now_ms: i64,
    ) -> StoreResult<ConnectionRecord> {
        self.write(move |conn| connections::add(conn, &connection, now_ms)).await
    }

    async fn list_connections(
        &self,
        workspace_id: Option<&str>,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        let workspace_id = workspace_id.map(str::to_owned);
        self.read(move |conn| connections::list(conn, workspace_id.as_deref())).await
    }

    async fn remove_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> StoreResult<ConnectionRecord> {
        let installation_ref = installation_ref.to_owned();
        self.write(move |conn| connections::remove(conn, provider, &installation_ref)).await
    }

    async fn get_connection(
        &self,
        provider: AppProvider,
        installation_ref: &str,
    ) -> StoreResult<Option<crate::Connection>> {
        let installation_ref = installation_ref.to_owned();
        self.read(move |conn| connections::get(conn, provider, &installation_ref)).await
    }

    async fn app_trigger_definitions(
        &self,
        workspace_id: &str,
        provider: AppProvider,
        installation_ref: &str,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let (workspace_id, reference) = (workspace_id.to_owned(), installation_ref.to_owned());
        self.read(move |conn| {
            connections::definitions_naming(conn, &workspace_id, provider, &reference, limit)
        })
        .await
    }

    async fn create_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        now_ms: i64,
    ) -> StoreResult<DefinitionRecord> {
        let workspace_id = workspace_id.to_owned();
        self.write(move |conn| definitions::create_definition(conn, &workspace_id, def, now_ms))
            .await
    }

    async fn update_definition(
        &self,
        workspace_id: &str,
        def: NewDefinition,
        if_version: i64,
        now_ms: i64,
    ) -> StoreResult<DefinitionRecord> {
        let workspace_id = workspace_id.to_owned();
        self.write(move |conn| {
            definitions::update_definition(conn, &workspace_id, def, if_version, now_ms)
        })
        .await
    }

    async fn get_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> StoreResult<Option<DefinitionRecord>> {
        let (workspace_id, definition_id) = (workspace_id.to_owned(), definition_id.to_owned());
        self.read(move |conn| definitions::get_definition(conn, &workspace_id, &definition_id))
            .await
    }

    async fn definition_status(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> StoreResult<Option<crate::DefinitionStatus>> {
        let (workspace_id, definition_id) = (workspace_id.to_owned(), definition_id.to_owned());
        self.read(move |conn| definitions::status_of(conn, &workspace_id, &definition_id)).await
    }

    async fn get_definition_version(
        &self,
        workspace_id: &str,
        definition_id: &str,
        version: i64,
    ) -> StoreResult<Option<DefinitionRecord>> {
        let (workspace_id, definition_id) = (workspace_id.to_owned(), definition_id.to_owned());
        self.read(move |conn| {
            definitions::get_definition_version(conn, &workspace_id, &definition_id, version)
        })
        .await
    }

    async fn list_definitions(
        &self,
        workspace_id: &str,
        page_size: u32,
        cursor: Option<i64>,
    ) -> StoreResult<DefinitionPage> {
        let workspace_id = workspace_id.to_owned();
        self.read(move |conn| definitions::list_definitions(conn, &workspace_id, page_size, cursor))
            .await
    }

    async fn delete_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
        purge: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        let (workspace_id, definition_id) = (workspace_id.to_owned(), definition_id.to_owned());
        self.write(move |conn| {
            definitions::delete_definition(conn, &workspace_id, &definition_id, purge, now_ms)
        })
        .await
    }

    async fn dispatch_execution(
        &self,
        workspace_id: &str,
        write: ExecutionWrite,
        idempotency_expires_at_ms: Option<i64>,
    ) -> StoreResult<DispatchOutcome> {
        let workspace_id = workspace_id.to_owned();
        self.write(move |conn| {
            executions::dispatch_execution(conn, &workspace_id, write, idempotency_expires_at_ms)
        })
        .await
    }

    /// Reads run on the calling thread here while every write queues for the one writer:
    /// looking up first keeps replays off the writer.
    fn dispatches_at_head(&self) -> bool {
        false
    }

    async fn dispatch_at_head(
        &self,
        _workspace_id: &str,
        _head: DefinitionHead,
        _write: &ExecutionWrite,
        _idempotency_expires_at_ms: Option<i64>,
    ) -> StoreResult<HeadDispatch> {
        Ok(HeadDispatch::Unsettled)
    }

    async fn dispatch_lookup(
        &self,
        workspace_id: &str,
        idempotency_key: Option<&str>,
        definition_id: &str,
        now_ms: i64,
    ) -> StoreResult<DispatchLookup> {
        let (workspace_id, definition_id) = (workspace_id.to_owned(), definition_id.to_owned());
        let key = idempotency_key.map(str::to_owned);
        self.read(move |conn| {
            executions::dispatch_lookup(conn, &workspace_id, key.as_deref(), &definition_id, now_ms)
        })
        .await
    }

    async fn get_execution(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> StoreResult<Option<ExecutionRecord>> {
        let (workspace_id, execution_id) = (workspace_id.to_owned(), execution_id.to_owned());
        self.read(move |conn| executions::get_execution(conn, &workspace_id, &execution_id)).await
    }

    async fn pinned_version(
        &self,
        workspace_id: &str,
        execution_id: &str,
    ) -> StoreResult<Option<PinnedVersion>> {
        let (workspace_id, execution_id) = (workspace_id.to_owned(), execution_id.to_owned());
        self.read(move |conn| executions::pinned_version(conn, &workspace_id, &execution_id)).await
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
        let workspace_id = workspace_id.to_owned();
        let definition_id = definition_id.map(str::to_owned);
        self.read(move |conn| {
            let definition_id = definition_id.as_deref();
            executions::list_executions(
                conn,
                &workspace_id,
                definition_id,
                status,
                page_size,
                &cursor,
            )
        })
        .await
    }

    async fn get_events(
        &self,
        workspace_id: &str,
        execution_id: &str,
        since_seq: i64,
        page_size: u32,
    ) -> StoreResult<EventPage> {
        let (workspace_id, execution_id) = (workspace_id.to_owned(), execution_id.to_owned());
        self.read(move |conn| {
            executions::get_events(conn, &workspace_id, &execution_id, since_seq, page_size)
        })
        .await
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
        let (workspace_id, execution_id) = (workspace_id.to_owned(), execution_id.to_owned());
        let work = move |conn: &rusqlite::Transaction<'_>| {
            executions::update_execution(conn, &workspace_id, &execution_id, command)
        };
        let refused = |outcome: &Result<T, E>| outcome.is_err();
        self.writer.write_unless(work, refused).await
    }

    async fn claim_due_timers(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedTimer>> {
        self.write(move |conn| executions::claim_due_timers(conn, now_ms, lease_ms, limit)).await
    }

    async fn next_timer_due_ms(&self) -> StoreResult<Option<i64>> {
        self.read(executions::next_timer_due_ms).await
    }

    async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.write(move |conn| deliveries::claim_due_deliveries(conn, now_ms, lease_ms, limit))
            .await
    }

    async fn finish_delivery_attempt(
        &self,
        claimed: &ClaimedDelivery,
        attempt: DeliveryAttempt,
        after: AfterAttempt,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let claimed = claimed.clone();
        self.write(move |conn| {
            deliveries::finish_delivery_attempt(conn, &claimed, &attempt, after, now_ms)
        })
        .await
    }

    async fn next_delivery_due_ms(&self) -> StoreResult<Option<i64>> {
        self.read(deliveries::next_delivery_due_ms).await
    }

    async fn list_deliveries(
        &self,
        workspace_id: &str,
        filter: DeliveryFilter<'_>,
    ) -> StoreResult<DeliveryPage> {
        let list = DeliveryQuery::from_filter(&filter)?;
        let workspace_id = workspace_id.to_owned();
        self.read(move |conn| deliveries::list_deliveries(conn, &workspace_id, &list)).await
    }

    async fn redeliver(
        &self,
        workspace_id: &str,
        execution_id: &str,
        event_ids: Option<&[String]>,
        now_ms: i64,
    ) -> StoreResult<Vec<String>> {
        let (workspace_id, execution_id) = (workspace_id.to_owned(), execution_id.to_owned());
        let event_ids = event_ids.map(<[String]>::to_vec);
        self.write(move |conn| {
            let event_ids = event_ids.as_deref();
            deliveries::redeliver(conn, &workspace_id, &execution_id, event_ids, now_ms)
        })
        .await
    }

    async fn server_secret(&self, candidate: &str) -> StoreResult<String> {
        let candidate = candidate.to_owned();
        self.write(move |conn| server_secret(conn, &candidate)).await
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
        self.write(move |conn| schedules::claim_due(conn, now_ms, limit, next_fire_at)).await
    }

    async fn next_schedule_due_ms(&self) -> StoreResult<Option<i64>> {
        self.read(schedules::next_due_ms).await
    }
}

/// Keeps `candidate` unless a secret is already stored; answers the stored one.
fn server_secret(conn: &Connection, candidate: &str) -> StoreResult<String> {
    conn.execute(
        "INSERT INTO server_secrets (name, value) VALUES ('callback', ?1)
         ON CONFLICT (name) DO NOTHING",
        [candidate],
    )?;
    Ok(conn.query_row("SELECT value FROM server_secrets WHERE name = 'callback'", [], |row| {
        row.get(0)
    })?)
}
