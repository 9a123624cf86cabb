//! The storage conformance suite. Each test is written once, over [`Store`], and runs
//! against SQLite always and against PostgreSQL when `ASSENT_TEST_POSTGRES_URL` is set
//! (each test then gets a database of its own, dropped afterwards).

use assent_core::model::AppProvider;
use assent_store::{
    AfterAttempt, AnyStore, AppTriggerEntry, AuthOutcome, ClaimedDelivery, ConnectionRecord,
    DefinitionHead, DefinitionRecord, DefinitionStatus, DeliveryAttempt, DeliveryFilter,
    DeliveryRecord, DeliveryStatus, DispatchLookup, DispatchOutcome, DueSchedule, ExecutionChanges,
    ExecutionRecord, ExecutionStatus, ExecutionWrite, HeadDispatch, NewConnection, NewDefinition,
    NewDelivery, NewEvent, PgStore, PinnedVersion, ScheduleEntry, SqliteStore, Store, StoreError,
    TimerSet,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const NOW_MS: i64 = 1_767_225_600_000;

/// Where a test's store lives. Each `open` is like one more process on the same data.
trait Backend: Send + Sync + 'static {
    type Store: Store;

    fn open(&self) -> impl Future<Output = Self::Store> + Send;

    /// Runs one statement straight on the database, as an operator could, and answers the
    /// first column of its first row if it has one. For what no store method does.
    fn sql(&self, statement: &str) -> impl Future<Output = Option<i64>> + Send;
}

struct SqliteBackend {
    path: PathBuf,
}

impl Backend for SqliteBackend {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).await.expect("SQLite store opens")
    }

    async fn sql(&self, statement: &str) -> Option<i64> {
        let (path, statement) = (self.path.clone(), statement.to_owned());
        let run = move || -> rusqlite::Result<Option<i64>> {
            let conn = rusqlite::Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            let mut stmt = conn.prepare(&statement)?;
            let mut rows = stmt.query([])?;
            rows.next()?.map(|row| row.get(0)).transpose()
        };
        tokio::task::spawn_blocking(run).await.unwrap().expect("SQL runs")
    }
}

struct PgBackend {
    url: String,
}

impl Backend for PgBackend {
    type Store = PgStore;

    async fn open(&self) -> PgStore {
        PgStore::connect(&self.url).await.expect("PostgreSQL store connects")
    }

    async fn sql(&self, statement: &str) -> Option<i64> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connects");
        tokio::spawn(connection);
        let rows = client.query(statement, &[]).await.expect("SQL runs");
        rows.first().map(|row| row.get(0))
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    hex::encode(bytes)
}

/// Runs `test` on a fresh SQLite file in a directory of its own, removed afterwards.
async fn run_sqlite<F, Fut>(name: &str, test: F)
where
    F: FnOnce(SqliteBackend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = std::env::temp_dir().join(format!("assent-store-{name}-{}", random_hex()));
    let backend = SqliteBackend { path: dir.join("data").join("assent.db") };
    let outcome = tokio::spawn(test(backend)).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Runs `test` on a database of its own on the server `ASSENT_TEST_POSTGRES_URL` names.
async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(PgBackend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(url) = std::env::var("ASSENT_TEST_POSTGRES_URL") else {
        eprintln!("skipped: ASSENT_TEST_POSTGRES_URL is not set");
        return;
    };
    let (admin, connection) =
        tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("server reachable");
    tokio::spawn(connection);
    let database = format!("assent_test_{}", random_hex());
    admin.batch_execute(&format!("CREATE DATABASE {database}")).await.expect("database made");

    let backend = PgBackend { url: with_database(&url, &database) };
    let outcome = tokio::spawn(test(backend)).await;
    let drop_database = format!("DROP DATABASE {database} WITH (FORCE)");
    admin.batch_execute(&drop_database).await.expect("database dropped");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Declares each test once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::run_sqlite(stringify!($test), crate::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::run_postgres(crate::$test).await;
                }
            )*
        }
    };
}

conformance!(
    credentials_lifecycle,
    bootstrap_creates_one_workspace,
    bootstrap_race_creates_exactly_one,
    workspaces_are_isolated,
    create_get_update_and_versions,
    update_conflicts_and_missing,
    list_pages_many_writes_in_one_millisecond,
    tombstone_hides_then_recreate_starts_a_new_lineage,
    purge_removes_every_version,
    delete_refused_while_executions_in_flight,
    concurrent_creates_of_one_id_one_wins,
    concurrent_updates_with_one_if_version_one_wins,
    many_concurrent_creates_commit_and_list,
    unknown_workspace_is_not_found,
    dispatch_get_and_replay,
    concurrent_dispatches_of_one_key_create_one,
    expired_trigger_key_is_replaced,
    dispatch_refused_unless_definition_active,
    dispatch_lookup_reads_the_definition_head,
    dispatch_at_head_writes_only_at_that_head,
    pinned_version_names_the_stored_version,
    dispatch_at_head_writes_timers_and_deliveries,
    concurrent_dispatches_at_head_of_one_key_create_one,
    list_pages_many_executions_in_one_millisecond,
    events_page_external_only,
    update_execution_commits_all_or_nothing,
    timers_claimed_once_across_stores,
    lease_expiry_makes_a_timer_claimable_again,
    delete_and_dispatch_take_turns,
    api_key_names_its_workspace,
    schedule_index_follows_definition_writes,
    schedule_claims_advance_and_carry_the_trigger,
    schedule_instants_claimed_once_across_stores,
    deliveries_commit_with_their_events,
    refused_writes_leave_no_deliveries,
    deliveries_claimed_in_order_per_execution,
    stale_attempts_write_nothing_and_retries_wait,
    list_deliveries_pages_newest_first,
    list_deliveries_filters_with_attempts,
    redeliver_refuses_what_it_cannot_find,
    redeliver_restarts_dead_deliveries,
    redelivery_waits_for_the_delivery_in_flight,
    deliveries_outlive_a_purged_definition,
    concurrent_claimers_deliver_each_execution_in_order,
    connections_lifecycle,
    an_installation_connects_once_across_stores,
    app_trigger_index_follows_definition_writes,
);

/// PostgreSQL only: several processes share one database, so a commit that sets timers must
/// wake the timer loops of the others. (A SQLite store belongs to one process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_timer_commits_wake_other_stores() {
    run_postgres(|backend| async move {
        let (writer, watcher) = (backend.open().await, Arc::new(backend.open().await));
        let ws = new_workspace(&writer, "w").await;
        writer.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
        let wake = Arc::new(Notify::new());
        let watching = {
            let (watcher, wake) = (watcher.clone(), wake.clone());
            tokio::spawn(async move { watcher.watch_timers(wake).await })
        };
        // The watcher wakes once when it starts listening; take that one first.
        tokio::time::timeout(Duration::from_secs(5), wake.notified()).await.expect("listening");

        let mut write = execution(&ws, "exec_1", "d", "k1", NOW_MS);
        write.changes.timers_set.push(timer("sla:step", NOW_MS + 1_000));
        writer.dispatch_execution(&ws, write, None).await.unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
        watching.abort();
        assert!(woken.is_ok(), "a commit with timers wakes the other store's watcher");
    })
    .await;
}

fn definition(id: &str, revision: i64) -> NewDefinition {
    NewDefinition {
        definition_id: id.to_owned(),
        // Keys out of alphabetical order: the store must keep the body as written.
        body: json!({
            "name": format!("{id} rev {revision}"),
            "definitionId": id,
            "webhookConfig": {"url": "https://example.com/hook", "secret": "s"},
            "nodes": [{"nodeId": "a", "type": "human"}],
        }),
        view: json!({"name": format!("{id} rev {revision}"), "definitionId": id}),
        schedules: Vec::new(),
        app_triggers: Vec::new(),
    }
}

/// A definition with schedule triggers `(triggerId, first fire)`.
fn scheduled(id: &str, revision: i64, schedules: &[(&str, i64)]) -> NewDefinition {
    let entry = |&(trigger_id, next_fire_at_ms): &(&str, i64)| ScheduleEntry {
        trigger_id: trigger_id.to_owned(),
        cron: "* * * * *".to_owned(),
        timezone: "Europe/Berlin".to_owned(),
        payload: json!({"revision": revision}),
        next_fire_at_ms,
    };
    NewDefinition { schedules: schedules.iter().map(entry).collect(), ..definition(id, revision) }
}

/// Claims what is due at `now_ms`, moving each claimed schedule a minute on; returns
/// `(definitionId, triggerId, scheduledAt)` of each.
async fn claim_schedules<S: Store>(
    store: &S,
    now_ms: i64,
    limit: u32,
) -> Vec<(String, String, i64)> {
    let next = |due: &DueSchedule| Some(due.scheduled_at_ms + 60_000);
    let claimed = store.claim_due_schedules(now_ms, limit, next).await.expect("claim");
    claimed.into_iter().map(|d| (d.definition_id, d.trigger_id, d.scheduled_at_ms)).collect()
}

fn revision_of(record: &DefinitionRecord) -> &Value {
    &record.view["name"]
}

async fn new_workspace<S: Store>(store: &S, name: &str) -> String {
    store.create_workspace(name, NOW_MS).await.expect("workspace created").workspace_id
}

async fn credentials_lifecycle<B: Backend>(backend: B) {
    let store = backend.open().await;
    let first = store.create_workspace("first", NOW_MS).await.unwrap();
    let other = store.create_workspace("other", NOW_MS + 1).await.unwrap();
    let (key, token) = (Some(first.api_key.as_str()), Some(first.auth_token.as_str()));

    let authenticated = AuthOutcome::Authenticated { workspace_id: first.workspace_id.clone() };
    assert_eq!(store.authenticate(key, token).await.unwrap(), authenticated);
    assert_eq!(store.authenticate(None, token).await.unwrap(), AuthOutcome::UnknownApiKey);
    assert_eq!(
        store.authenticate(Some("ak_nope"), token).await.unwrap(),
        AuthOutcome::UnknownApiKey
    );
    assert_eq!(store.authenticate(key, None).await.unwrap(), AuthOutcome::MissingAuthToken);
    assert_eq!(store.authenticate(key, Some("")).await.unwrap(), AuthOutcome::MissingAuthToken);
    assert_eq!(store.authenticate(key, Some("at_nope")).await.unwrap(), AuthOutcome::BadAuthToken);
    // A live token, but of another workspace.
    let foreign = Some(other.auth_token.as_str());
    assert_eq!(store.authenticate(key, foreign).await.unwrap(), AuthOutcome::BadAuthToken);

    let second_key = store.create_api_key(&first.workspace_id, NOW_MS).await.unwrap();
    let second_token = store.create_auth_token(&first.workspace_id, NOW_MS).await.unwrap();
    assert!(second_key.starts_with("ak_") && second_token.starts_with("at_"));
    store.revoke_api_key(&first.api_key, NOW_MS).await.unwrap();
    store.revoke_auth_token(&first.auth_token, NOW_MS).await.unwrap();
    assert_eq!(store.authenticate(key, token).await.unwrap(), AuthOutcome::UnknownApiKey);
    let second_key = Some(second_key.as_str());
    assert_eq!(store.authenticate(second_key, token).await.unwrap(), AuthOutcome::BadAuthToken);
    let second_token = Some(second_token.as_str());
    assert_eq!(store.authenticate(second_key, second_token).await.unwrap(), authenticated);

    let revoked_again = store.revoke_api_key(&first.api_key, NOW_MS).await;
    assert!(matches!(revoked_again, Err(StoreError::NotFound)), "{revoked_again:?}");
    let unknown = store.revoke_auth_token("at_never_issued", NOW_MS).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    let no_workspace = store.create_api_key("ws_missing", NOW_MS).await;
    assert!(matches!(no_workspace, Err(StoreError::NotFound)), "{no_workspace:?}");
    let no_workspace = store.create_auth_token("ws_missing", NOW_MS).await;
    assert!(matches!(no_workspace, Err(StoreError::NotFound)), "{no_workspace:?}");

    let workspaces = store.list_workspaces().await.unwrap();
    let listed: Vec<_> = workspaces
        .iter()
        .map(|w| (w.workspace_id.as_str(), w.name.as_str(), w.live_api_keys, w.live_auth_tokens))
        .collect();
    assert_eq!(
        listed,
        [
            (first.workspace_id.as_str(), "first", 1, 1),
            (other.workspace_id.as_str(), "other", 1, 1)
        ]
    );
    assert_eq!(workspaces[0].created_at_ms, NOW_MS);
}

async fn bootstrap_creates_one_workspace<B: Backend>(backend: B) {
    let store = backend.open().await;
    let created = store.bootstrap_workspace("default", NOW_MS).await.unwrap();
    let created = created.expect("an empty store bootstraps");
    let outcome = store.authenticate(Some(&created.api_key), Some(&created.auth_token)).await;
    assert_eq!(
        outcome.unwrap(),
        AuthOutcome::Authenticated { workspace_id: created.workspace_id.clone() }
    );
    assert!(store.bootstrap_workspace("again", NOW_MS).await.unwrap().is_none());

    // Reopening the same data finds the workspace (and the migrations already applied).
    drop(store);
    let reopened = backend.open().await;
    assert!(reopened.bootstrap_workspace("again", NOW_MS).await.unwrap().is_none());
    assert_eq!(reopened.list_workspaces().await.unwrap().len(), 1);
}

async fn bootstrap_race_creates_exactly_one<B: Backend>(backend: B) {
    const PROCESSES: usize = 4;
    const CALLS_PER_PROCESS: usize = 4;
    let backend = Arc::new(backend);

    // Every "process" opens (and migrates) at the same moment, then bootstraps at once.
    let mut opening = Vec::new();
    for _ in 0..PROCESSES {
        let backend = backend.clone();
        opening.push(tokio::spawn(async move { Arc::new(backend.open().await) }));
    }
    let mut calls = Vec::new();
    for store in opening {
        let store = store.await.unwrap();
        for _ in 0..CALLS_PER_PROCESS {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                store.bootstrap_workspace("default", NOW_MS).await.unwrap()
            }));
        }
    }
    let mut created = 0;
    for call in calls {
        created += usize::from(call.await.unwrap().is_some());
    }
    assert_eq!(created, 1);
    assert_eq!(backend.open().await.list_workspaces().await.unwrap().len(), 1);
}

async fn workspaces_are_isolated<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (mine, theirs) =
        (new_workspace(&store, "mine").await, new_workspace(&store, "theirs").await);
    store.create_definition(&mine, definition("d", 1), NOW_MS).await.unwrap();

    assert!(store.get_definition(&theirs, "d").await.unwrap().is_none());
    assert!(store.get_definition_version(&theirs, "d", 1).await.unwrap().is_none());
    assert!(store.list_definitions(&theirs, 50, None).await.unwrap().items.is_empty());
    let updated = store.update_definition(&theirs, definition("d", 2), 1, NOW_MS).await;
    assert!(matches!(updated, Err(StoreError::NotFound)), "{updated:?}");
    let deleted = store.delete_definition(&theirs, "d", true, NOW_MS).await;
    assert!(matches!(deleted, Err(StoreError::NotFound)), "{deleted:?}");

    // The same id is free in the other workspace, and writing it there leaves mine alone.
    let own = store.create_definition(&theirs, definition("d", 7), NOW_MS).await.unwrap();
    assert_eq!(own.version, 1);
    let kept = store.get_definition(&mine, "d").await.unwrap().unwrap();
    assert_eq!(revision_of(&kept), "d rev 1");
    assert_eq!(store.list_definitions(&mine, 50, None).await.unwrap().items.len(), 1);
}

async fn create_get_update_and_versions<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;

    let created = store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    assert_eq!((created.version, created.status), (1, DefinitionStatus::Active));
    assert_eq!((created.created_at_ms, created.updated_at_ms), (NOW_MS, NOW_MS));
    let fetched = store.get_definition(&ws, "d").await.unwrap().unwrap();
    assert_eq!(fetched.write_seq, created.write_seq);
    // The body comes back whole and in the order it was written.
    assert_eq!(fetched.body.to_string(), definition("d", 1).body.to_string());
    assert_eq!(fetched.view, created.view);

    let again = store.create_definition(&ws, definition("d", 9), NOW_MS).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");

    let updated = store.update_definition(&ws, definition("d", 2), 1, NOW_MS + 5).await.unwrap();
    assert_eq!(
        (updated.version, updated.created_at_ms, updated.updated_at_ms),
        (2, NOW_MS, NOW_MS + 5)
    );
    assert!(updated.write_seq > created.write_seq);
    let fetched = store.get_definition(&ws, "d").await.unwrap().unwrap();
    assert_eq!((fetched.version, revision_of(&fetched)), (2, &json!("d rev 2")));

    let first = store.get_definition_version(&ws, "d", 1).await.unwrap().unwrap();
    assert_eq!((first.version, revision_of(&first)), (1, &json!("d rev 1")));
    assert_eq!((first.created_at_ms, first.updated_at_ms), (NOW_MS, NOW_MS));
    assert_eq!(first.body.to_string(), definition("d", 1).body.to_string());
    let current = store.get_definition_version(&ws, "d", 2).await.unwrap().unwrap();
    assert_eq!(revision_of(&current), "d rev 2");
    assert!(store.get_definition_version(&ws, "d", 3).await.unwrap().is_none());
    assert!(store.get_definition_version(&ws, "d", 0).await.unwrap().is_none());
    assert!(store.get_definition(&ws, "missing").await.unwrap().is_none());
}

async fn update_conflicts_and_missing<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store.update_definition(&ws, definition("d", 2), 1, NOW_MS).await.unwrap();

    let stale = store.update_definition(&ws, definition("d", 3), 1, NOW_MS).await;
    assert!(
        matches!(stale, Err(StoreError::VersionConflict { expected: 1, current: 2 })),
        "{stale:?}"
    );
    let ahead = store.update_definition(&ws, definition("d", 3), 7, NOW_MS).await;
    assert!(
        matches!(ahead, Err(StoreError::VersionConflict { expected: 7, current: 2 })),
        "{ahead:?}"
    );
    let missing = store.update_definition(&ws, definition("nope", 1), 1, NOW_MS).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    // A refused update leaves no trace: no version, no write.
    let page = store.list_definitions(&ws, 50, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].version, 2);
    assert!(store.get_definition_version(&ws, "d", 3).await.unwrap().is_none());
}

async fn list_pages_many_writes_in_one_millisecond<B: Backend>(backend: B) {
    const DEFINITIONS: usize = 60;
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    for i in 0..DEFINITIONS {
        store.create_definition(&ws, definition(&format!("d{i:02}"), 1), NOW_MS).await.unwrap();
    }
    // Updates move a definition to the front; a tombstone takes it out.
    store.update_definition(&ws, definition("d07", 2), 1, NOW_MS).await.unwrap();
    store.update_definition(&ws, definition("d30", 2), 1, NOW_MS).await.unwrap();
    store.delete_definition(&ws, "d12", false, NOW_MS).await.unwrap();

    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_definitions(&ws, 7, cursor).await.unwrap();
        assert!(page.items.len() <= 7);
        listed.extend(page.items.iter().map(|d| (d.definition_id.clone(), d.write_seq)));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.items.len(), 7, "only a full page has a next page");
                assert_eq!(Some(next), page.items.last().map(|d| d.write_seq));
                cursor = Some(next);
            }
            None => break,
        }
    }

    let ids: Vec<_> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), DEFINITIONS - 1);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "no repeats");
    assert!(!ids.contains(&"d12"));
    assert_eq!(ids[..3], ["d30", "d07", "d59"]);
    assert!(listed.windows(2).all(|w| w[0].1 > w[1].1), "newest write first");
    assert!(listed.iter().all(|(_, seq)| *seq > 0 && *seq < 1 << 53));

    // The page size is kept within 1..=500.
    let smallest = store.list_definitions(&ws, 0, None).await.unwrap();
    assert_eq!((smallest.items.len(), smallest.next_cursor.is_some()), (1, true));
    let largest = store.list_definitions(&ws, u32::MAX, None).await.unwrap();
    assert_eq!((largest.items.len(), largest.next_cursor), (DEFINITIONS - 1, None));
}

async fn tombstone_hides_then_recreate_starts_a_new_lineage<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store.update_definition(&ws, definition("d", 2), 1, NOW_MS).await.unwrap();
    store.delete_definition(&ws, "d", false, NOW_MS + 1).await.unwrap();

    assert!(store.get_definition(&ws, "d").await.unwrap().is_none());
    assert!(store.get_definition_version(&ws, "d", 1).await.unwrap().is_none());
    assert!(store.list_definitions(&ws, 50, None).await.unwrap().items.is_empty());
    let updated = store.update_definition(&ws, definition("d", 3), 2, NOW_MS).await;
    assert!(matches!(updated, Err(StoreError::NotFound)), "{updated:?}");
    let deleted = store.delete_definition(&ws, "d", false, NOW_MS).await;
    assert!(matches!(deleted, Err(StoreError::NotFound)), "{deleted:?}");

    let recreated = store.create_definition(&ws, definition("d", 10), NOW_MS + 50).await.unwrap();
    assert_eq!((recreated.version, recreated.created_at_ms), (1, NOW_MS + 50));
    let first = store.get_definition_version(&ws, "d", 1).await.unwrap().unwrap();
    assert_eq!(revision_of(&first), "d rev 10");
    assert!(store.get_definition_version(&ws, "d", 2).await.unwrap().is_none());
    let updated = store.update_definition(&ws, definition("d", 11), 1, NOW_MS + 60).await.unwrap();
    assert_eq!((updated.version, updated.created_at_ms), (2, NOW_MS + 50));
    let second = store.get_definition_version(&ws, "d", 2).await.unwrap().unwrap();
    assert_eq!(revision_of(&second), "d rev 11");
}

async fn purge_removes_every_version<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store.update_definition(&ws, definition("d", 2), 1, NOW_MS).await.unwrap();
    store.delete_definition(&ws, "d", true, NOW_MS).await.unwrap();

    assert!(store.get_definition(&ws, "d").await.unwrap().is_none());
    let again = store.delete_definition(&ws, "d", true, NOW_MS).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");

    // A tombstone can no longer be purged: delete needs an active definition.
    store.create_definition(&ws, definition("t", 1), NOW_MS).await.unwrap();
    store.delete_definition(&ws, "t", false, NOW_MS).await.unwrap();
    let purge_tombstone = store.delete_definition(&ws, "t", true, NOW_MS).await;
    assert!(matches!(purge_tombstone, Err(StoreError::NotFound)), "{purge_tombstone:?}");

    let recreated = store.create_definition(&ws, definition("d", 5), NOW_MS).await.unwrap();
    assert_eq!(recreated.version, 1);
    assert!(store.get_definition_version(&ws, "d", 2).await.unwrap().is_none());
    let first = store.get_definition_version(&ws, "d", 1).await.unwrap().unwrap();
    assert_eq!(revision_of(&first), "d rev 5");
}

async fn delete_refused_while_executions_in_flight<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store.create_definition(&other, definition("d", 1), NOW_MS).await.unwrap();
    dispatch(&store, &ws, "exec_done", "d", "k_done", NOW_MS).await;
    set_status(&store, &ws, "exec_done", ExecutionStatus::Completed).await;
    dispatch(&store, &other, "exec_elsewhere", "d", "k", NOW_MS).await;
    dispatch(&store, &ws, "exec_1", "d", "k_1", NOW_MS).await;
    let elsewhere = store.delete_definition(&other, "d", false, NOW_MS).await;
    assert!(matches!(elsewhere, Err(StoreError::InFlight)), "{elsewhere:?}");

    for purge in [false, true] {
        let refused = store.delete_definition(&ws, "d", purge, NOW_MS).await;
        assert!(matches!(refused, Err(StoreError::InFlight)), "{refused:?}");
    }
    set_status(&store, &ws, "exec_1", ExecutionStatus::Running).await;
    let refused = store.delete_definition(&ws, "d", false, NOW_MS).await;
    assert!(matches!(refused, Err(StoreError::InFlight)), "{refused:?}");
    assert!(store.get_definition(&ws, "d").await.unwrap().is_some(), "a refusal deletes nothing");

    set_status(&store, &ws, "exec_1", ExecutionStatus::Failed).await;
    store.delete_definition(&ws, "d", false, NOW_MS).await.unwrap();
    assert!(store.get_definition(&ws, "d").await.unwrap().is_none());
}

async fn concurrent_creates_of_one_id_one_wins<B: Backend>(backend: B) {
    const RACERS: usize = 16;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let ws = new_workspace(&*stores[0], "w").await;

    let mut racers = Vec::new();
    for i in 0..RACERS {
        let (store, ws) = (stores[i % 2].clone(), ws.clone());
        racers.push(tokio::spawn(async move {
            store.create_definition(&ws, definition("d", i as i64), NOW_MS).await
        }));
    }
    let (mut won, mut already_exists) = (0, 0);
    for racer in racers {
        match racer.await.unwrap() {
            Ok(record) => {
                assert_eq!(record.version, 1);
                won += 1;
            }
            Err(StoreError::AlreadyExists) => already_exists += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, already_exists), (1, RACERS - 1));
    assert_eq!(stores[1].list_definitions(&ws, 50, None).await.unwrap().items.len(), 1);
}

async fn concurrent_updates_with_one_if_version_one_wins<B: Backend>(backend: B) {
    const RACERS: usize = 16;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let ws = new_workspace(&*stores[0], "w").await;
    stores[0].create_definition(&ws, definition("d", 0), NOW_MS).await.unwrap();

    let mut racers = Vec::new();
    for i in 0..RACERS {
        let (store, ws) = (stores[i % 2].clone(), ws.clone());
        racers.push(tokio::spawn(async move {
            store.update_definition(&ws, definition("d", i as i64 + 1), 1, NOW_MS).await
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(record) => winners.push(record),
            Err(StoreError::VersionConflict { expected: 1, current: 2 }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let current = stores[1].get_definition(&ws, "d").await.unwrap().unwrap();
    assert_eq!((current.version, revision_of(&current)), (2, revision_of(&winners[0])));
    assert!(stores[1].get_definition_version(&ws, "d", 3).await.unwrap().is_none());
}

async fn many_concurrent_creates_commit_and_list<B: Backend>(backend: B) {
    const WRITERS: usize = 510;
    let store = Arc::new(backend.open().await);
    let ws = new_workspace(&*store, "w").await;

    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let (store, ws) = (store.clone(), ws.clone());
        writers.push(tokio::spawn(async move {
            store.create_definition(&ws, definition(&format!("d{i}"), 1), NOW_MS).await
        }));
    }
    let mut write_seqs = HashSet::new();
    for writer in writers {
        let record = writer.await.unwrap().expect("every create succeeds");
        assert!(write_seqs.insert(record.write_seq), "write_seq {} taken twice", record.write_seq);
    }

    let first = store.list_definitions(&ws, 1000, None).await.unwrap();
    assert_eq!(first.items.len(), 500, "a page holds 500 at most");
    let rest = store.list_definitions(&ws, 500, first.next_cursor).await.unwrap();
    assert_eq!((rest.items.len(), rest.next_cursor), (WRITERS - 500, None));
    let listed: HashSet<_> = first.items.iter().chain(&rest.items).map(|d| d.write_seq).collect();
    assert_eq!(listed, write_seqs);
}

async fn unknown_workspace_is_not_found<B: Backend>(backend: B) {
    let store = backend.open().await;
    let created = store.create_definition("ws_missing", definition("d", 1), NOW_MS).await;
    assert!(matches!(created, Err(StoreError::NotFound)), "{created:?}");
    let updated = store.update_definition("ws_missing", definition("d", 1), 1, NOW_MS).await;
    assert!(matches!(updated, Err(StoreError::NotFound)), "{updated:?}");
    assert!(store.list_definitions("ws_missing", 10, None).await.unwrap().items.is_empty());
}

fn event(seq: i64, event_type: &str, external: bool) -> NewEvent {
    NewEvent {
        seq,
        event_type: event_type.to_owned(),
        step_id: (seq > 1).then(|| format!("step_{seq}")),
        timestamp_ms: NOW_MS + seq,
        data: json!({"seq": seq, "kind": event_type}),
        external,
    }
}

/// PostgreSQL only: a process keeps the credentials it checked while it listens for
/// revocations, and a revocation made anywhere reaches it. (A SQLite store reads them
/// every time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocations_reach_stores_that_keep_credentials() {
    run_postgres(|backend| async move {
        let (revoker, keeper) = (backend.open().await, Arc::new(backend.open().await));
        let creds = revoker.create_workspace("w", NOW_MS).await.unwrap();
        let second = revoker.create_auth_token(&creds.workspace_id, NOW_MS).await.unwrap();
        let wake = Arc::new(Notify::new());
        let watching = {
            let (keeper, wake) = (keeper.clone(), wake.clone());
            tokio::spawn(async move { keeper.watch_timers(wake).await })
        };
        tokio::time::timeout(Duration::from_secs(5), wake.notified()).await.expect("listening");
        let check = |token: String| {
            let (keeper, api_key) = (keeper.clone(), creds.api_key.clone());
            async move { keeper.authenticate(Some(&api_key), Some(&token)).await.unwrap() }
        };
        let live = AuthOutcome::Authenticated { workspace_id: creds.workspace_id.clone() };
        assert_eq!(check(creds.auth_token.clone()).await, live);

        // Revoked behind the stores' backs, with no notification: the kept answer stands,
        // which shows that it is kept.
        backend.sql("UPDATE auth_tokens SET revoked_at_ms = 1").await;
        assert_eq!(check(creds.auth_token.clone()).await, live);
        backend.sql("UPDATE auth_tokens SET revoked_at_ms = NULL").await;

        // A revocation through another store reaches this one.
        revoker.revoke_auth_token(&creds.auth_token, NOW_MS).await.unwrap();
        let refused = eventually(|| check(creds.auth_token.clone()), AuthOutcome::BadAuthToken);
        assert!(refused.await, "the revocation reached the store that kept the token");

        // The store that revokes forgets at once.
        assert_eq!(check(second.clone()).await, live);
        keeper.revoke_auth_token(&second, NOW_MS).await.unwrap();
        assert_eq!(check(second.clone()).await, AuthOutcome::BadAuthToken);

        // A store that stopped listening keeps nothing.
        let third = revoker.create_auth_token(&creds.workspace_id, NOW_MS).await.unwrap();
        watching.abort();
        let _ = watching.await;
        assert_eq!(check(third.clone()).await, live);
        backend.sql("UPDATE auth_tokens SET revoked_at_ms = 1").await;
        assert_eq!(check(third).await, AuthOutcome::BadAuthToken);
    })
    .await;
}

/// Whether `probe` answers `wanted` within five seconds.
async fn eventually<F, Fut, T>(mut probe: F, wanted: T) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
    T: PartialEq,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if probe().await == wanted {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn timer(timer_key: &str, due_at_ms: i64) -> TimerSet {
    TimerSet { timer_key: timer_key.to_owned(), due_at_ms, payload: json!({"key": timer_key}) }
}

/// A new pending execution with an external and an internal event.
fn execution(
    workspace_id: &str,
    execution_id: &str,
    definition_id: &str,
    idempotency_key: &str,
    started_at_ms: i64,
) -> ExecutionWrite {
    ExecutionWrite {
        record: ExecutionRecord {
            workspace_id: workspace_id.to_owned(),
            execution_id: execution_id.to_owned(),
            definition_id: definition_id.to_owned(),
            definition_version: 1,
            status: ExecutionStatus::Pending,
            correlation_id: format!("corr_{execution_id}"),
            idempotency_key: idempotency_key.to_owned(),
            started_at_ms,
            updated_at_ms: started_at_ms,
            next_seq: 1,
            // Keys out of alphabetical order and spaces: the store keeps the text as written.
            state: json!({"zeta": 1, "alpha": [execution_id]}).to_string().replace(':', ": "),
        },
        changes: ExecutionChanges {
            events: vec![event(1, "execution.dispatched", true), event(2, "step.scheduled", false)],
            ..ExecutionChanges::default()
        },
    }
}

async fn dispatch<S: Store>(
    store: &S,
    workspace_id: &str,
    execution_id: &str,
    definition_id: &str,
    idempotency_key: &str,
    started_at_ms: i64,
) -> DispatchOutcome {
    let write =
        execution(workspace_id, execution_id, definition_id, idempotency_key, started_at_ms);
    store.dispatch_execution(workspace_id, write, None).await.expect("dispatch succeeds")
}

/// Moves an execution to `status` through a command that changes nothing else.
async fn set_status<S: Store>(
    store: &S,
    workspace_id: &str,
    execution_id: &str,
    to: ExecutionStatus,
) {
    let outcome = store
        .update_execution(workspace_id, execution_id, move |record| {
            record.status = to;
            Ok::<_, ()>((ExecutionChanges::default(), ()))
        })
        .await;
    outcome.expect("update succeeds").expect("command succeeds");
}

async fn dispatch_get_and_replay<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store.create_definition(&other, definition("d", 1), NOW_MS).await.unwrap();

    let written = execution(&ws, "exec_1", "d", "k1", NOW_MS);
    let created = store.dispatch_execution(&ws, written.clone(), None).await.unwrap();
    assert_eq!(created, DispatchOutcome::Created);
    let fetched = store.get_execution(&ws, "exec_1").await.unwrap().unwrap();
    assert_eq!(fetched, ExecutionRecord { next_seq: 3, ..written.record.clone() });
    assert!(store.get_execution(&other, "exec_1").await.unwrap().is_none());

    // A replay answers the original's ids whatever else it says, and writes nothing.
    let mut replay = execution(&ws, "exec_2", "other-definition", "k1", NOW_MS + 5);
    replay.record.correlation_id = "corr_mine".into();
    let replayed = store.dispatch_execution(&ws, replay, None).await.unwrap();
    let original = ("exec_1".to_owned(), "corr_exec_1".to_owned());
    assert_eq!(
        replayed,
        DispatchOutcome::Replayed {
            execution_id: original.0.clone(),
            correlation_id: original.1.clone()
        }
    );
    assert!(store.get_execution(&ws, "exec_2").await.unwrap().is_none());
    assert_eq!(replay_of(&store, &ws, "k1", NOW_MS).await, Some(original));
    assert_eq!(replay_of(&store, &other, "k1", NOW_MS).await, None);
    assert_eq!(replay_of(&store, &ws, "k2", NOW_MS).await, None);

    // Keys belong to their workspace.
    assert_eq!(
        dispatch(&store, &other, "exec_3", "d", "k1", NOW_MS).await,
        DispatchOutcome::Created
    );
    let missing =
        store.dispatch_execution(&ws, execution(&ws, "exec_4", "nope", "k4", NOW_MS), None).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert!(replay_of(&store, &ws, "k4", NOW_MS).await.is_none());
}

async fn concurrent_dispatches_of_one_key_create_one<B: Backend>(backend: B) {
    const RACERS: usize = 100;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let ws = new_workspace(&*stores[0], "w").await;
    stores[0].create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();

    let mut racers = Vec::new();
    for i in 0..RACERS {
        let (store, ws) = (stores[i % 2].clone(), ws.clone());
        racers.push(tokio::spawn(async move {
            let id = format!("exec_{i}");
            (id.clone(), dispatch(&*store, &ws, &id, "d", "same-key", NOW_MS).await)
        }));
    }
    let mut created = Vec::new();
    let mut replayed_ids = HashSet::new();
    for racer in racers {
        match racer.await.unwrap() {
            (id, DispatchOutcome::Created) => created.push(id),
            (_, DispatchOutcome::Replayed { execution_id, correlation_id }) => {
                assert_eq!(correlation_id, format!("corr_{execution_id}"));
                replayed_ids.insert(execution_id);
            }
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(replayed_ids, HashSet::from([created[0].clone()]));
    let page = stores[1].list_executions(&ws, None, None, 500, None).await.unwrap();
    let listed: Vec<_> = page.items.iter().map(|e| e.execution_id.clone()).collect();
    assert_eq!(listed, created);
}

async fn expired_trigger_key_is_replaced<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let key = "trig:t1:e1";
    let write = execution(&ws, "exec_a", "d", key, NOW_MS);
    let created = store.dispatch_execution(&ws, write, Some(NOW_MS + 100)).await.unwrap();
    assert_eq!(created, DispatchOutcome::Created);

    let live = replay_of(&store, &ws, key, NOW_MS + 99).await;
    assert_eq!(live.map(|(id, _)| id).as_deref(), Some("exec_a"));
    assert!(replay_of(&store, &ws, key, NOW_MS + 100).await.is_none());
    let write = execution(&ws, "exec_b", "d", key, NOW_MS + 99);
    let replayed = store.dispatch_execution(&ws, write, Some(NOW_MS + 199)).await.unwrap();
    assert!(
        matches!(replayed, DispatchOutcome::Replayed { execution_id, .. } if execution_id == "exec_a")
    );

    let write = execution(&ws, "exec_c", "d", key, NOW_MS + 100);
    let created = store.dispatch_execution(&ws, write, Some(NOW_MS + 200)).await.unwrap();
    assert_eq!(created, DispatchOutcome::Created);
    let live = replay_of(&store, &ws, key, NOW_MS + 150).await;
    assert_eq!(live.map(|(id, _)| id).as_deref(), Some("exec_c"));
    // The first execution is kept, with the key it was started with.
    let first = store.get_execution(&ws, "exec_a").await.unwrap().unwrap();
    assert_eq!(first.idempotency_key, key);
    assert!(store.get_execution(&ws, "exec_b").await.unwrap().is_none());
}

/// The execution a live key names, as the read before a dispatch finds it.
async fn replay_of<S: Store>(
    store: &S,
    ws: &str,
    key: &str,
    now_ms: i64,
) -> Option<(String, String)> {
    store.dispatch_lookup(ws, Some(key), "d", now_ms).await.unwrap().replay
}

async fn dispatch_lookup_reads_the_definition_head<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    let other = new_workspace(&store, "o").await;
    let head = |ws: String| {
        let store = &store;
        async move { store.dispatch_lookup(&ws, None, "d", NOW_MS).await.unwrap().definition }
    };
    assert_eq!(head(ws.clone()).await, None);

    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let active = |version, updated_at_ms| DefinitionHead {
        version,
        status: DefinitionStatus::Active,
        created_at_ms: NOW_MS,
        updated_at_ms,
    };
    assert_eq!(head(ws.clone()).await, Some(active(1, NOW_MS)));
    assert_eq!(head(other.clone()).await, None);
    store.update_definition(&ws, definition("d", 2), 1, NOW_MS + 7).await.unwrap();
    assert_eq!(head(ws.clone()).await, Some(active(2, NOW_MS + 7)));

    dispatch(&store, &ws, "exec_1", "d", "k1", NOW_MS).await;
    set_status(&store, &ws, "exec_1", ExecutionStatus::Completed).await;
    store.delete_definition(&ws, "d", false, NOW_MS + 9).await.unwrap();
    let tombstone = head(ws.clone()).await.expect("a tombstone has a head");
    assert_eq!(tombstone.status, DefinitionStatus::Tombstoned);
    // The key and the head are read together; a key of another workspace is not seen.
    let both = store.dispatch_lookup(&ws, Some("k1"), "d", NOW_MS).await.unwrap();
    assert_eq!(both.replay.map(|(id, _)| id).as_deref(), Some("exec_1"));
    assert_eq!(both.definition, Some(tombstone));
    let theirs = store.dispatch_lookup(&other, Some("k1"), "d", NOW_MS).await.unwrap();
    assert_eq!(theirs, DispatchLookup { replay: None, definition: None });
}

async fn pinned_version_names_the_stored_version<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    let other = new_workspace(&store, "o").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    dispatch(&store, &ws, "exec_1", "d", "k1", NOW_MS).await;
    let stored = store.get_definition_version(&ws, "d", 1).await.unwrap().expect("version 1");
    let pinned = |ws: String| {
        let store = &store;
        async move { store.pinned_version(&ws, "exec_1").await.unwrap() }
    };
    let expected = PinnedVersion {
        definition_id: "d".into(),
        version: 1,
        stored: Some(DefinitionHead {
            version: 1,
            status: DefinitionStatus::Active,
            created_at_ms: stored.created_at_ms,
            updated_at_ms: stored.updated_at_ms,
        }),
    };
    assert_eq!(pinned(ws.clone()).await, Some(expected.clone()));
    assert_eq!(pinned(other.clone()).await, None, "another workspace's execution");
    assert_eq!(store.pinned_version(&ws, "exec_none").await.unwrap(), None);

    // A later version of the definition leaves the execution on the one it started with.
    store.update_definition(&ws, definition("d", 2), 1, NOW_MS + 7).await.unwrap();
    assert_eq!(pinned(ws.clone()).await, Some(expected.clone()));

    // Deleted: the version is no longer there to run, as `get_definition_version` says.
    set_status(&store, &ws, "exec_1", ExecutionStatus::Completed).await;
    store.delete_definition(&ws, "d", false, NOW_MS + 9).await.unwrap();
    assert!(store.get_definition_version(&ws, "d", 1).await.unwrap().is_none());
    assert_eq!(pinned(ws.clone()).await, Some(PinnedVersion { stored: None, ..expected }));
}

/// The head `dispatch_lookup` reads for definition `d`.
async fn head_of<S: Store>(store: &S, ws: &str) -> DefinitionHead {
    store.dispatch_lookup(ws, None, "d", NOW_MS).await.unwrap().definition.expect("a head")
}

async fn dispatch_at_head_writes_only_at_that_head<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let first_head = head_of(&store, &ws).await;
    let written = execution(&ws, "exec_1", "d", "k1", NOW_MS);
    let outcome = store.dispatch_at_head(&ws, first_head, &written, None).await.unwrap();
    if !store.dispatches_at_head() {
        assert_eq!(outcome, HeadDispatch::Unsettled);
        assert!(store.get_execution(&ws, "exec_1").await.unwrap().is_none());
        return;
    }
    assert_eq!(outcome, HeadDispatch::Created);
    let fetched = store.get_execution(&ws, "exec_1").await.unwrap().unwrap();
    assert_eq!(fetched, ExecutionRecord { next_seq: 3, ..written.record.clone() });
    let events = store.get_events(&ws, "exec_1", 0, 10).await.unwrap();
    assert_eq!(events.events.len(), 1, "the external event; the internal one is kept back");

    // A key that was live answers with the original, whatever the head.
    let replay = execution(&ws, "exec_2", "d", "k1", NOW_MS + 1);
    let moved = DefinitionHead { updated_at_ms: NOW_MS - 1, ..first_head };
    let replayed = store.dispatch_at_head(&ws, moved, &replay, None).await.unwrap();
    let original = HeadDispatch::Replayed {
        execution_id: "exec_1".into(),
        correlation_id: "corr_exec_1".into(),
    };
    assert_eq!(replayed, original);
    assert!(store.get_execution(&ws, "exec_2").await.unwrap().is_none());

    // Once the definition moves on, the old head writes nothing, key included.
    store.update_definition(&ws, definition("d", 2), 1, NOW_MS + 7).await.unwrap();
    let stale = execution(&ws, "exec_3", "d", "k3", NOW_MS + 8);
    let unsettled = store.dispatch_at_head(&ws, first_head, &stale, None).await.unwrap();
    assert_eq!(unsettled, HeadDispatch::Unsettled);
    assert!(store.get_execution(&ws, "exec_3").await.unwrap().is_none());
    assert_eq!(replay_of(&store, &ws, "k3", NOW_MS).await, None);
    let mut current = execution(&ws, "exec_3", "d", "k3", NOW_MS + 8);
    current.record.definition_version = 2;
    let second_head = head_of(&store, &ws).await;
    let created = store.dispatch_at_head(&ws, second_head, &current, None).await.unwrap();
    assert_eq!(created, HeadDispatch::Created);

    // A key that expired is left to the transactional path, which replaces it.
    let expiring = execution(&ws, "exec_4", "d", "trig:k4", NOW_MS);
    let expires = Some(NOW_MS + 10);
    let mut expiring = ExecutionWrite {
        record: ExecutionRecord { definition_version: 2, ..expiring.record },
        ..expiring
    };
    assert_eq!(
        store.dispatch_at_head(&ws, second_head, &expiring, expires).await.unwrap(),
        HeadDispatch::Created
    );
    expiring.record.execution_id = "exec_5".into();
    expiring.record.started_at_ms = NOW_MS + 10;
    let again = store.dispatch_at_head(&ws, second_head, &expiring, expires).await.unwrap();
    assert_eq!(again, HeadDispatch::Unsettled);
    assert!(store.get_execution(&ws, "exec_5").await.unwrap().is_none());

    // Neither a deleted definition nor a new lineage at the same version takes a dispatch
    // built from the old head.
    for id in ["exec_1", "exec_3", "exec_4"] {
        set_status(&store, &ws, id, ExecutionStatus::Completed).await;
    }
    store.delete_definition(&ws, "d", false, NOW_MS + 9).await.unwrap();
    let mut late = execution(&ws, "exec_6", "d", "k6", NOW_MS + 10);
    late.record.definition_version = 2;
    let refused = store.dispatch_at_head(&ws, second_head, &late, None).await.unwrap();
    assert_eq!(refused, HeadDispatch::Unsettled);
    store.create_definition(&ws, definition("d", 1), NOW_MS + 11).await.unwrap();
    let old_lineage = execution(&ws, "exec_7", "d", "k7", NOW_MS + 12);
    let other_lineage = store.dispatch_at_head(&ws, first_head, &old_lineage, None).await.unwrap();
    assert_eq!(other_lineage, HeadDispatch::Unsettled);
    for id in ["exec_6", "exec_7"] {
        assert!(store.get_execution(&ws, id).await.unwrap().is_none());
    }
}

async fn dispatch_at_head_writes_timers_and_deliveries<B: Backend>(backend: B) {
    let store = backend.open().await;
    if !store.dispatches_at_head() {
        return;
    }
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let head = head_of(&store, &ws).await;
    // Each combination, as the statement leaves out the parts with nothing to insert.
    for (n, timers, deliveries) in
        [(1, false, false), (2, true, false), (3, false, true), (4, true, true)]
    {
        let mut write = execution_with_deliveries(&ws, &format!("exec_{n}"), 2, NOW_MS);
        if !deliveries {
            write.changes.deliveries.clear();
        }
        if timers {
            write.changes.timers_set.push(timer("sla:step", NOW_MS + n));
        }
        let outcome = store.dispatch_at_head(&ws, head, &write, None).await.unwrap();
        assert_eq!(outcome, HeadDispatch::Created);
    }
    let claimed = store.claim_due_timers(NOW_MS + 10, 1_000, 10).await.unwrap();
    let mut timed: Vec<_> =
        claimed.iter().map(|t| (t.execution_id.as_str(), t.due_at_ms)).collect();
    timed.sort();
    assert_eq!(timed, [("exec_2", NOW_MS + 2), ("exec_4", NOW_MS + 4)]);
    let delivered = listed(&store, &ws).await;
    let mut queued: Vec<_> = delivered.iter().map(|d| (d.execution_id.as_str(), d.seq)).collect();
    queued.sort();
    assert_eq!(queued, [("exec_3", 1), ("exec_3", 2), ("exec_4", 1), ("exec_4", 2)]);
}

async fn concurrent_dispatches_at_head_of_one_key_create_one<B: Backend>(backend: B) {
    const RACERS: usize = 100;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    if !stores[0].dispatches_at_head() {
        return;
    }
    let ws = new_workspace(&*stores[0], "w").await;
    stores[0].create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let head = head_of(&*stores[0], &ws).await;

    let mut racers = Vec::new();
    for i in 0..RACERS {
        let (store, ws) = (stores[i % 2].clone(), ws.clone());
        racers.push(tokio::spawn(async move {
            let write = execution(&ws, &format!("exec_{i}"), "d", "same-key", NOW_MS);
            let outcome = store.dispatch_at_head(&ws, head, &write, None).await.unwrap();
            (write, outcome)
        }));
    }
    let mut created = Vec::new();
    let mut named = HashSet::new();
    for racer in racers {
        match racer.await.unwrap() {
            (write, HeadDispatch::Created) => created.push(write.record.execution_id),
            (_, HeadDispatch::Replayed { execution_id, .. }) => {
                named.insert(execution_id);
            }
            // Racing the winner's insert: the transactional path then finds its key.
            (write, HeadDispatch::Unsettled) => {
                match stores[0].dispatch_execution(&ws, write, None).await.unwrap() {
                    DispatchOutcome::Replayed { execution_id, .. } => named.insert(execution_id),
                    DispatchOutcome::Created => panic!("a second execution for one key"),
                };
            }
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(named.iter().all(|id| *id == created[0]), "{named:?}");
    let page = stores[1].list_executions(&ws, None, None, 500, None).await.unwrap();
    let listed: Vec<_> = page.items.iter().map(|e| e.execution_id.clone()).collect();
    assert_eq!(listed, created);
}

async fn dispatch_refused_unless_definition_active<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    dispatch(&store, &ws, "exec_1", "d", "k1", NOW_MS).await;
    set_status(&store, &ws, "exec_1", ExecutionStatus::Completed).await;
    assert_eq!(store.definition_status(&ws, "d").await.unwrap(), Some(DefinitionStatus::Active));
    store.delete_definition(&ws, "d", false, NOW_MS).await.unwrap();
    let tombstoned = store.definition_status(&ws, "d").await.unwrap();
    assert_eq!(tombstoned, Some(DefinitionStatus::Tombstoned));

    let write = execution(&ws, "exec_2", "d", "k2", NOW_MS);
    let refused = store.dispatch_execution(&ws, write, None).await;
    assert!(matches!(refused, Err(StoreError::DefinitionNotActive)), "{refused:?}");
    assert!(store.get_execution(&ws, "exec_2").await.unwrap().is_none());
    assert!(replay_of(&store, &ws, "k2", NOW_MS).await.is_none());

    // The key is looked up before the definition: a replay still answers.
    let replayed = dispatch(&store, &ws, "exec_3", "d", "k1", NOW_MS).await;
    assert!(
        matches!(replayed, DispatchOutcome::Replayed { execution_id, .. } if execution_id == "exec_1")
    );

    store.create_definition(&ws, definition("p", 1), NOW_MS).await.unwrap();
    store.delete_definition(&ws, "p", true, NOW_MS).await.unwrap();
    assert_eq!(store.definition_status(&ws, "p").await.unwrap(), None);
    let purged =
        store.dispatch_execution(&ws, execution(&ws, "exec_4", "p", "k4", NOW_MS), None).await;
    assert!(matches!(purged, Err(StoreError::NotFound)), "{purged:?}");
}

async fn list_pages_many_executions_in_one_millisecond<B: Backend>(backend: B) {
    const SAME_MS: usize = 50;
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    for id in ["a", "b"] {
        store.create_definition(&ws, definition(id, 1), NOW_MS).await.unwrap();
    }
    for i in 0..SAME_MS {
        dispatch(&store, &ws, &format!("exec_{i:02}"), "a", &format!("k{i}"), NOW_MS).await;
    }
    for i in 0..5 {
        let started_at_ms = NOW_MS - 10 + i;
        dispatch(&store, &ws, &format!("exec_b{i}"), "b", &format!("kb{i}"), started_at_ms).await;
    }
    for id in ["exec_03", "exec_b1", "exec_41"] {
        set_status(&store, &ws, id, ExecutionStatus::Running).await;
    }

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_executions(&ws, None, None, 7, cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 7);
        listed.extend(page.items.iter().map(|e| (e.started_at_ms, e.execution_id.clone())));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.items.len(), 7, "only a full page has a next page");
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(listed.len(), SAME_MS + 5);
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), listed.len(), "no repeats");
    assert!(listed.windows(2).all(|w| w[0] > w[1]), "newest first, then by id");
    assert_eq!(listed[0].1, "exec_49");
    assert_eq!(listed.last().unwrap().1, "exec_b0");

    let of_b = store.list_executions(&ws, Some("b"), None, 50, None).await.unwrap();
    assert_eq!((of_b.items.len(), of_b.next_cursor), (5, None));
    let running = store.list_executions(&ws, None, Some(ExecutionStatus::Running), 50, None).await;
    let running: Vec<_> = running.unwrap().items.into_iter().map(|e| e.execution_id).collect();
    assert_eq!(running, ["exec_41", "exec_03", "exec_b1"]);
    let both = store.list_executions(&ws, Some("b"), Some(ExecutionStatus::Running), 50, None);
    assert_eq!(both.await.unwrap().items.len(), 1);
    assert!(store.list_executions(&ws, Some("c"), None, 50, None).await.unwrap().items.is_empty());

    // A bare millisecond, as the hosted engine's cursors are: what started before it.
    let before = store.list_executions(&ws, None, None, 50, Some(&NOW_MS.to_string())).await;
    assert_eq!(before.unwrap().items.len(), 5);
    for malformed in ["", "abc", "12:", "-1:exec_01", "1.5"] {
        let refused = store.list_executions(&ws, None, None, 50, Some(malformed)).await;
        assert!(matches!(refused, Err(StoreError::InvalidCursor)), "{malformed:?}: {refused:?}");
    }
}

async fn events_page_external_only<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let mut write = execution(&ws, "exec_1", "d", "k1", NOW_MS);
    write.changes.events = (1..=10).map(|seq| event(seq, "step.completed", seq % 2 == 1)).collect();
    store.dispatch_execution(&ws, write, None).await.unwrap();
    let appended = store
        .update_execution(&ws, "exec_1", |record| {
            let seq = record.next_seq;
            let events = vec![
                event(seq, "step.started", false),
                event(seq + 1, "execution.completed", true),
            ];
            Ok::<_, ()>((ExecutionChanges { events, ..ExecutionChanges::default() }, seq))
        })
        .await;
    assert_eq!(appended.unwrap(), Ok(11));

    let seqs_from = |since: i64, page_size: u32| {
        let store = &store;
        let ws = &ws;
        async move {
            let page = store.get_events(ws, "exec_1", since, page_size).await.unwrap();
            (page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), page.has_more)
        }
    };
    assert_eq!(seqs_from(0, 3).await, (vec![1, 3, 5], true));
    assert_eq!(seqs_from(5, 3).await, (vec![7, 9, 12], false));
    assert_eq!(seqs_from(6, 2).await, (vec![7, 9], true));
    assert_eq!(seqs_from(12, 100).await, (vec![], false));
    assert_eq!(seqs_from(0, 0).await, (vec![1], true));

    let last = store.get_events(&ws, "exec_1", 11, 10).await.unwrap().events.remove(0);
    assert_eq!(
        (last.event_type.as_str(), last.correlation_id.as_str()),
        ("execution.completed", "corr_exec_1")
    );
    assert_eq!((last.step_id.as_deref(), last.timestamp_ms), (Some("step_12"), NOW_MS + 12));
    assert_eq!(last.data, json!({"seq": 12, "kind": "execution.completed"}));
    let first = store.get_events(&ws, "exec_1", 0, 1).await.unwrap().events.remove(0);
    assert_eq!(first.step_id, None);

    for (workspace, id) in [(&other, "exec_1"), (&ws, "exec_missing")] {
        let missing = store.get_events(workspace, id, 0, 10).await;
        assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    }
}

async fn update_execution_commits_all_or_nothing<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let mut write = execution(&ws, "exec_1", "d", "k1", NOW_MS);
    write.changes.timers_set = vec![timer("sla", NOW_MS + 500)];
    store.dispatch_execution(&ws, write, None).await.unwrap();
    let before = store.get_execution(&ws, "exec_1").await.unwrap().unwrap();

    // Everything a refused command would have written is dropped.
    let refused = store
        .update_execution(&ws, "exec_1", |record| {
            record.status = ExecutionStatus::Running;
            record.state = json!({"changed": true}).to_string();
            let events = vec![event(3, "execution.completed", true)];
            let _changes = ExecutionChanges {
                events,
                timers_set: vec![timer("retry", NOW_MS + 1)],
                timers_cleared: vec!["sla".into()],
                deliveries: vec![],
            };
            Err::<(ExecutionChanges, ()), _>("refused".to_owned())
        })
        .await;
    assert_eq!(refused.unwrap(), Err("refused".to_owned()));
    assert_eq!(store.get_execution(&ws, "exec_1").await.unwrap().unwrap(), before);
    assert_eq!(store.get_events(&ws, "exec_1", 0, 50).await.unwrap().events.len(), 1);
    assert_eq!(store.next_timer_due_ms().await.unwrap(), Some(NOW_MS + 500));

    let applied = store
        .update_execution(&ws, "exec_1", |record| {
            assert_eq!(record.next_seq, 3);
            record.status = ExecutionStatus::Running;
            record.updated_at_ms = NOW_MS + 7;
            record.state = json!({"changed": true}).to_string();
            let changes = ExecutionChanges {
                events: vec![
                    event(3, "step.awaiting-approval", true),
                    event(4, "step.started", false),
                ],
                timers_set: vec![timer("retry", NOW_MS + 100), timer("sla", NOW_MS + 900)],
                timers_cleared: vec!["sla".into()],
                deliveries: vec![],
            };
            Ok::<_, ()>((changes, "applied".to_owned()))
        })
        .await;
    assert_eq!(applied.unwrap(), Ok("applied".to_owned()));
    let after = store.get_execution(&ws, "exec_1").await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.updated_at_ms, after.next_seq),
        (ExecutionStatus::Running, NOW_MS + 7, 5)
    );
    assert_eq!(
        (after.started_at_ms, &after.state),
        (NOW_MS, &json!({"changed": true}).to_string())
    );
    assert_eq!(store.get_events(&ws, "exec_1", 0, 50).await.unwrap().events.len(), 2);
    let claimed = store.claim_due_timers(NOW_MS + 10_000, 1_000, 10).await.unwrap();
    let claimed: Vec<_> = claimed.iter().map(|t| (t.timer_key.as_str(), t.due_at_ms)).collect();
    assert_eq!(claimed, [("retry", NOW_MS + 100), ("sla", NOW_MS + 900)]);

    let missing = store
        .update_execution(&ws, "exec_missing", |_| Ok::<_, ()>((ExecutionChanges::default(), ())))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

async fn timers_claimed_once_across_stores<B: Backend>(backend: B) {
    const EXECUTIONS: i64 = 30;
    const CLAIMERS: usize = 8;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let ws = new_workspace(&*stores[0], "w").await;
    stores[0].create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    for i in 0..=EXECUTIONS {
        let mut write = execution(&ws, &format!("exec_{i}"), "d", &format!("k{i}"), NOW_MS);
        // The last one is not due yet.
        let due_at_ms = if i == EXECUTIONS { NOW_MS + 10_000 } else { NOW_MS + i };
        write.changes.timers_set = vec![timer("sla", due_at_ms), timer("remind", due_at_ms)];
        stores[0].dispatch_execution(&ws, write, None).await.unwrap();
    }
    assert_eq!(stores[1].next_timer_due_ms().await.unwrap(), Some(NOW_MS));

    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let store = stores[c % 2].clone();
        claimers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = store.claim_due_timers(NOW_MS + 100, 60_000, 3).await.unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                assert!(batch.windows(2).all(|w| w[0].due_at_ms <= w[1].due_at_ms));
                claimed.extend(batch.into_iter().map(|t| (t.execution_id, t.timer_key)));
            }
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(unique.len(), claimed.len(), "a timer was claimed twice");
    assert_eq!(claimed.len(), 2 * EXECUTIONS as usize);
    assert!(!unique.iter().any(|(id, _)| id == &format!("exec_{EXECUTIONS}")));
    assert_eq!(stores[0].next_timer_due_ms().await.unwrap(), Some(NOW_MS + 10_000));
}

async fn lease_expiry_makes_a_timer_claimable_again<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    assert_eq!(store.next_timer_due_ms().await.unwrap(), None);
    let mut write = execution(&ws, "exec_1", "d", "k1", NOW_MS);
    write.changes.timers_set = vec![timer("sla", NOW_MS + 10)];
    store.dispatch_execution(&ws, write, None).await.unwrap();

    assert_eq!(store.next_timer_due_ms().await.unwrap(), Some(NOW_MS + 10));
    assert!(store.claim_due_timers(NOW_MS + 9, 1_000, 10).await.unwrap().is_empty());
    let claimed = store.claim_due_timers(NOW_MS + 10, 1_000, 10).await.unwrap();
    let expected = assent_store::ClaimedTimer {
        workspace_id: ws.clone(),
        execution_id: "exec_1".into(),
        timer_key: "sla".into(),
        due_at_ms: NOW_MS + 10,
        payload: json!({"key": "sla"}),
    };
    assert_eq!(claimed, std::slice::from_ref(&expected));
    assert!(store.claim_due_timers(NOW_MS + 500, 1_000, 10).await.unwrap().is_empty());
    assert_eq!(store.next_timer_due_ms().await.unwrap(), Some(NOW_MS + 1_010));

    // The lease ran out before the timer's command cleared it: it fires again.
    assert_eq!(store.claim_due_timers(NOW_MS + 1_010, 1_000, 10).await.unwrap(), [expected]);

    let cleared = store
        .update_execution(&ws, "exec_1", |_| {
            let changes = ExecutionChanges {
                timers_cleared: vec!["sla".into()],
                ..ExecutionChanges::default()
            };
            Ok::<_, ()>((changes, ()))
        })
        .await;
    cleared.unwrap().unwrap();
    assert_eq!(store.next_timer_due_ms().await.unwrap(), None);
    assert!(store.claim_due_timers(i64::MAX / 2, 1_000, 10).await.unwrap().is_empty());
}

async fn delete_and_dispatch_take_turns<B: Backend>(backend: B) {
    const DISPATCHES: usize = 20;
    enum Answer {
        Dispatch(Result<DispatchOutcome, StoreError>),
        Delete(Result<(), StoreError>),
    }
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let ws = new_workspace(&*stores[0], "w").await;
    stores[0].create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();

    let mut racers = Vec::new();
    for i in 0..DISPATCHES {
        let (store, workspace) = (stores[i % 2].clone(), ws.clone());
        racers.push(tokio::spawn(async move {
            let write = execution(&workspace, &format!("exec_{i}"), "d", &format!("k{i}"), NOW_MS);
            Answer::Dispatch(store.dispatch_execution(&workspace, write, None).await)
        }));
        if i == DISPATCHES / 2 {
            let (store, workspace) = (stores[1].clone(), ws.clone());
            racers.push(tokio::spawn(async move {
                Answer::Delete(store.delete_definition(&workspace, "d", false, NOW_MS).await)
            }));
        }
    }
    let (mut created, mut refused, mut deleted) = (0, 0, None);
    for racer in racers {
        match racer.await.unwrap() {
            Answer::Dispatch(Ok(DispatchOutcome::Created)) => created += 1,
            Answer::Dispatch(Err(StoreError::DefinitionNotActive)) => refused += 1,
            Answer::Delete(Ok(())) => deleted = Some(true),
            Answer::Delete(Err(StoreError::InFlight)) => deleted = Some(false),
            Answer::Dispatch(other) => panic!("unexpected dispatch answer {other:?}"),
            Answer::Delete(other) => panic!("unexpected delete answer {other:?}"),
        }
    }
    assert_eq!(created + refused, DISPATCHES);
    let listed = stores[0].list_executions(&ws, None, None, 500, None).await.unwrap().items;
    assert_eq!(listed.len(), created);
    // A delete that won saw no execution and refused every later one; one that lost saw one.
    match deleted {
        Some(true) => assert_eq!(created, 0),
        Some(false) => assert_eq!(refused, 0),
        None => unreachable!("the delete answered"),
    }
}

#[tokio::test]
async fn any_store_opens_by_url() {
    let dir = std::env::temp_dir().join(format!("assent-store-any-{}", random_hex()));
    for url in
        [format!("sqlite:{}/a.db", dir.display()), format!("sqlite://{}/b.db", dir.display())]
    {
        let store = AnyStore::open(&url).await.expect("sqlite URL opens");
        assert!(matches!(store, AnyStore::Sqlite(_)));
        assert!(store.bootstrap_workspace("default", NOW_MS).await.unwrap().is_some());
    }
    let _ = std::fs::remove_dir_all(&dir);

    for url in ["mysql://root@localhost/x", "sqlite:", "/just/a/path"] {
        let refused = AnyStore::open(url).await;
        assert!(matches!(refused, Err(StoreError::Config(_))), "{url}");
    }

    match std::env::var("ASSENT_TEST_POSTGRES_URL") {
        Ok(_) => {
            run_postgres(|backend: PgBackend| async move {
                let store = AnyStore::open(&backend.url).await.expect("postgres URL opens");
                assert!(matches!(store, AnyStore::Postgres(_)));
                assert!(store.bootstrap_workspace("default", NOW_MS).await.unwrap().is_some());
            })
            .await
        }
        Err(_) => eprintln!("skipped: ASSENT_TEST_POSTGRES_URL is not set"),
    }
}

async fn api_key_names_its_workspace<B: Backend>(backend: B) {
    let store = backend.open().await;
    let creds = store.create_workspace("w", NOW_MS).await.unwrap();
    let found = store.workspace_of_api_key(&creds.api_key).await.unwrap();
    assert_eq!(found.as_deref(), Some(creds.workspace_id.as_str()));
    assert_eq!(store.workspace_of_api_key("ak_unknown").await.unwrap(), None);
    // The auth token is not an API key.
    assert_eq!(store.workspace_of_api_key(&creds.auth_token).await.unwrap(), None);
    store.revoke_api_key(&creds.api_key, NOW_MS).await.unwrap();
    assert_eq!(store.workspace_of_api_key(&creds.api_key).await.unwrap(), None);
}

async fn schedule_index_follows_definition_writes<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), None);
    let first = scheduled("d", 1, &[("a", NOW_MS + 1_000), ("b", NOW_MS + 5_000)]);
    store.create_definition(&ws, first, NOW_MS).await.unwrap();
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 1_000));

    // An update replaces the entries: `a` is gone, `b` moves.
    let second = scheduled("d", 2, &[("b", NOW_MS + 9_000)]);
    store.update_definition(&ws, second, 1, NOW_MS).await.unwrap();
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 9_000));
    assert!(claim_schedules(&store, NOW_MS + 8_999, 10).await.is_empty());

    // A failed write leaves the index as it was.
    let stale = scheduled("d", 3, &[("c", NOW_MS)]);
    let conflict = store.update_definition(&ws, stale, 1, NOW_MS).await;
    assert!(matches!(conflict, Err(StoreError::VersionConflict { .. })), "{conflict:?}");
    let duplicate = store.create_definition(&ws, scheduled("d", 1, &[("c", NOW_MS)]), NOW_MS);
    assert!(matches!(duplicate.await, Err(StoreError::AlreadyExists)));
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 9_000));

    // Tombstoning stops them; re-creating starts afresh; purging stops them too.
    store.delete_definition(&ws, "d", false, NOW_MS).await.unwrap();
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), None);
    store.create_definition(&ws, scheduled("d", 1, &[("a", NOW_MS + 7)]), NOW_MS).await.unwrap();
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 7));
    store.delete_definition(&ws, "d", true, NOW_MS).await.unwrap();
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), None);
    assert!(claim_schedules(&store, i64::MAX, 10).await.is_empty());
}

async fn schedule_claims_advance_and_carry_the_trigger<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    let def = scheduled("d", 4, &[("every-minute", NOW_MS), ("later", NOW_MS + 120_000)]);
    store.create_definition(&ws, def, NOW_MS).await.unwrap();
    store
        .create_definition(&other, scheduled("e", 1, &[("t", NOW_MS + 30)]), NOW_MS)
        .await
        .unwrap();

    let next = |due: &DueSchedule| Some(due.scheduled_at_ms + 60_000);
    let claimed = store.claim_due_schedules(NOW_MS + 30, 10, next).await.unwrap();
    let expected = DueSchedule {
        workspace_id: ws.clone(),
        definition_id: "d".into(),
        trigger_id: "every-minute".into(),
        cron: "* * * * *".into(),
        timezone: "Europe/Berlin".into(),
        payload: json!({"revision": 4}),
        scheduled_at_ms: NOW_MS,
    };
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    assert_eq!(claimed[0], expected, "earliest first");
    assert_eq!(
        (claimed[1].workspace_id.as_str(), claimed[1].scheduled_at_ms),
        (&*other, NOW_MS + 30)
    );
    assert!(claim_schedules(&store, NOW_MS + 30, 10).await.is_empty(), "claimed instants moved on");

    // Each is due again at the instant it was moved to; `None` takes one out of the index.
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 60_000));
    let claimed = store.claim_due_schedules(NOW_MS + 60_030, 10, |_| None).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(store.next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 120_000));
    let later = claim_schedules(&store, NOW_MS + 120_000, 10).await;
    assert_eq!(later, [("d".to_owned(), "later".to_owned(), NOW_MS + 120_000)]);
}

async fn schedule_instants_claimed_once_across_stores<B: Backend>(backend: B) {
    const DEFINITIONS: i64 = 24;
    const CLAIMERS: usize = 8;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let ws = new_workspace(&*stores[0], "w").await;
    for i in 0..DEFINITIONS {
        let def = scheduled(&format!("d{i}"), 1, &[("t", NOW_MS + i)]);
        stores[0].create_definition(&ws, def, NOW_MS).await.unwrap();
    }

    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let store = stores[c % 2].clone();
        claimers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = claim_schedules(&*store, NOW_MS + 1_000, 3).await;
                if batch.is_empty() {
                    return claimed;
                }
                assert!(batch.windows(2).all(|w| w[0].2 <= w[1].2), "earliest first: {batch:?}");
                claimed.extend(batch);
            }
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(unique.len(), claimed.len(), "an instant was claimed twice");
    assert_eq!(claimed.len(), DEFINITIONS as usize);
    assert_eq!(stores[1].next_schedule_due_ms().await.unwrap(), Some(NOW_MS + 60_000));
}

/// The delivery of event `seq` of an execution.
fn delivery(execution_id: &str, seq: i64) -> NewDelivery {
    NewDelivery {
        event_id: event_id(execution_id, seq),
        seq,
        event_type: "step.completed".to_owned(),
        url: "https://example.com/hook".to_owned(),
        secret: format!("whsec_{execution_id}"),
        body: format!(r#"{{"executionId":"{execution_id}","seq":{seq}}}"#),
    }
}

fn event_id(execution_id: &str, seq: i64) -> String {
    format!("evt_{execution_id}_{seq}")
}

/// A new execution of definition `d` whose events `1..=events` are external and delivered.
fn execution_with_deliveries(
    workspace_id: &str,
    execution_id: &str,
    events: i64,
    started_at_ms: i64,
) -> ExecutionWrite {
    let key = format!("key_{execution_id}");
    let mut write = execution(workspace_id, execution_id, "d", &key, started_at_ms);
    write.changes.events = (1..=events).map(|seq| event(seq, "step.completed", true)).collect();
    write.changes.deliveries = (1..=events).map(|seq| delivery(execution_id, seq)).collect();
    write
}

/// Appends `count` delivered events to an execution by a command at `now_ms`.
async fn append_deliveries<S: Store>(
    store: &S,
    workspace_id: &str,
    execution_id: &str,
    count: i64,
    now_ms: i64,
) {
    let id = execution_id.to_owned();
    let appended = store
        .update_execution(workspace_id, execution_id, move |record| {
            record.updated_at_ms = now_ms;
            let seqs = record.next_seq..record.next_seq + count;
            let changes = ExecutionChanges {
                events: seqs.clone().map(|seq| event(seq, "step.completed", true)).collect(),
                deliveries: seqs.map(|seq| delivery(&id, seq)).collect(),
                ..ExecutionChanges::default()
            };
            Ok::<_, ()>((changes, ()))
        })
        .await;
    appended.expect("update succeeds").expect("command succeeds");
}

/// The record of an attempt of `claimed` that the receiver answered with `http_status`.
fn attempt_of(claimed: &ClaimedDelivery, at_ms: i64, http_status: u16) -> DeliveryAttempt {
    let failed = !(200..300).contains(&http_status);
    DeliveryAttempt {
        attempt: claimed.attempts,
        at_ms,
        http_status: Some(http_status),
        error: failed.then(|| format!("HTTP {http_status}")),
        latency_ms: 12,
    }
}

fn every_delivery(page_size: u32) -> DeliveryFilter<'static> {
    DeliveryFilter { execution_id: None, status: None, page_size, cursor: None }
}

async fn listed<S: Store>(store: &S, workspace_id: &str) -> Vec<DeliveryRecord> {
    store.list_deliveries(workspace_id, every_delivery(500)).await.unwrap().items
}

/// `(execution_id, seq)` of each claimed delivery, in the order claimed.
fn heads(claimed: &[ClaimedDelivery]) -> Vec<(&str, i64)> {
    claimed.iter().map(|d| (d.execution_id.as_str(), d.seq)).collect()
}

async fn deliveries_commit_with_their_events<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    let mut write = execution(&ws, "exec_1", "d", "k1", NOW_MS);
    write.changes.deliveries = vec![delivery("exec_1", 1)];
    store.dispatch_execution(&ws, write, None).await.unwrap();

    let items = listed(&store, &ws).await;
    let first = DeliveryRecord {
        delivery_id: items[0].delivery_id,
        execution_id: "exec_1".into(),
        event_id: event_id("exec_1", 1),
        seq: 1,
        event_type: "step.completed".into(),
        url: "https://example.com/hook".into(),
        status: DeliveryStatus::Pending,
        created_at_ms: NOW_MS,
        updated_at_ms: NOW_MS,
        next_attempt_at_ms: Some(NOW_MS),
        attempts: vec![],
    };
    assert_eq!(items, std::slice::from_ref(&first));
    assert!(listed(&store, &other).await.is_empty());

    // An update's deliveries are first due at the record's updated_at_ms as it leaves it.
    append_deliveries(&store, &ws, "exec_1", 2, NOW_MS + 7).await;
    let items = listed(&store, &ws).await;
    let later = |seq| (seq, NOW_MS + 7, NOW_MS + 7, Some(NOW_MS + 7));
    let times: Vec<_> = items
        .iter()
        .map(|d| (d.seq, d.created_at_ms, d.updated_at_ms, d.next_attempt_at_ms))
        .collect();
    assert_eq!(times, [later(4), later(3), (1, NOW_MS, NOW_MS, Some(NOW_MS))]);
    assert_eq!(items[2], first);

    // What a claim hands out is what was written, the secret and body included.
    let claimed = store.claim_due_deliveries(NOW_MS + 7, 1_000, 10).await.unwrap();
    let expected = ClaimedDelivery {
        delivery_id: first.delivery_id,
        workspace_id: ws.clone(),
        execution_id: "exec_1".into(),
        event_id: event_id("exec_1", 1),
        seq: 1,
        url: "https://example.com/hook".into(),
        secret: "whsec_exec_1".into(),
        body: r#"{"executionId":"exec_1","seq":1}"#.into(),
        attempts: 0,
        round_attempts: 0,
    };
    assert_eq!(claimed, [expected]);
}

async fn refused_writes_leave_no_deliveries<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store
        .dispatch_execution(&ws, execution_with_deliveries(&ws, "a", 1, NOW_MS), None)
        .await
        .unwrap();

    let refused = store
        .update_execution(&ws, "a", |record| {
            record.updated_at_ms = NOW_MS + 9;
            let _changes = ExecutionChanges {
                events: vec![event(2, "step.completed", true)],
                deliveries: vec![delivery("a", 2)],
                ..ExecutionChanges::default()
            };
            Err::<(ExecutionChanges, ()), _>("refused".to_owned())
        })
        .await;
    assert_eq!(refused.unwrap(), Err("refused".to_owned()));
    let replay = execution_with_deliveries(&ws, "b", 1, NOW_MS);
    let replay = ExecutionWrite {
        record: ExecutionRecord { idempotency_key: "key_a".into(), ..replay.record },
        ..replay
    };
    let replayed = store.dispatch_execution(&ws, replay, None).await.unwrap();
    assert!(matches!(replayed, DispatchOutcome::Replayed { .. }), "{replayed:?}");
    let mut missing = execution_with_deliveries(&ws, "c", 1, NOW_MS);
    missing.record.definition_id = "nope".into();
    let missing = store.dispatch_execution(&ws, missing, None).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    assert_eq!(heads_of(&listed(&store, &ws).await), [("a", 1)]);
}

async fn deliveries_claimed_in_order_per_execution<B: Backend>(backend: B) {
    const LEASE_MS: i64 = 1_000;
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), None);
    store
        .dispatch_execution(&ws, execution_with_deliveries(&ws, "a", 3, NOW_MS), None)
        .await
        .unwrap();
    store
        .dispatch_execution(&ws, execution_with_deliveries(&ws, "b", 1, NOW_MS + 5), None)
        .await
        .unwrap();
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), Some(NOW_MS));

    assert!(store.claim_due_deliveries(NOW_MS - 1, LEASE_MS, 10).await.unwrap().is_empty());
    let oldest = store.claim_due_deliveries(NOW_MS + 10, LEASE_MS, 1).await.unwrap();
    assert_eq!(heads(&oldest), [("a", 1)]);
    // While a's head is in flight, its next delivery waits, though it is due.
    let rest = store.claim_due_deliveries(NOW_MS + 10, LEASE_MS, 10).await.unwrap();
    assert_eq!(heads(&rest), [("b", 1)]);
    assert!(store.claim_due_deliveries(NOW_MS + 500, LEASE_MS, 10).await.unwrap().is_empty());
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), Some(NOW_MS + 10 + LEASE_MS));

    // The leases ran out unfinished: the same heads, with no attempt counted.
    let again = store.claim_due_deliveries(NOW_MS + 10 + LEASE_MS, LEASE_MS, 10).await.unwrap();
    assert_eq!(again, [oldest[0].clone(), rest[0].clone()]);
    let at_ms = NOW_MS + 1_100;
    let delivered = attempt_of(&again[0], at_ms, 204);
    let after = AfterAttempt::Delivered;
    assert!(store.finish_delivery_attempt(&again[0], delivered, after, at_ms).await.unwrap());
    let second = store.claim_due_deliveries(at_ms, LEASE_MS, 10).await.unwrap();
    assert_eq!(heads(&second), [("a", 2)]);
    assert!(store.claim_due_deliveries(at_ms, LEASE_MS, 10).await.unwrap().is_empty());

    // A dead delivery lets the next one go too.
    let failed = attempt_of(&second[0], at_ms, 500);
    assert!(store
        .finish_delivery_attempt(&second[0], failed, AfterAttempt::Dead, at_ms)
        .await
        .unwrap());
    let third = store.claim_due_deliveries(at_ms, LEASE_MS, 10).await.unwrap();
    assert_eq!(heads(&third), [("a", 3)]);
    for claimed in [&third[0], &again[1]] {
        let delivered = attempt_of(claimed, at_ms, 200);
        let after = AfterAttempt::Delivered;
        assert!(store.finish_delivery_attempt(claimed, delivered, after, at_ms).await.unwrap());
    }
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), None);
    assert!(store.claim_due_deliveries(i64::MAX / 2, LEASE_MS, 10).await.unwrap().is_empty());
    let statuses: Vec<_> = listed(&store, &ws).await.iter().map(|d| d.status).collect();
    use DeliveryStatus::{Dead, Delivered};
    assert_eq!(statuses, [Delivered, Delivered, Dead, Delivered]);
}

async fn stale_attempts_write_nothing_and_retries_wait<B: Backend>(backend: B) {
    const LEASE_MS: i64 = 1_000;
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store
        .dispatch_execution(&ws, execution_with_deliveries(&ws, "a", 2, NOW_MS), None)
        .await
        .unwrap();

    let first = store.claim_due_deliveries(NOW_MS, LEASE_MS, 10).await.unwrap().remove(0);
    let failed = attempt_of(&first, NOW_MS, 503);
    let retry = AfterAttempt::RetryAt(NOW_MS + 2_000);
    assert!(store
        .finish_delivery_attempt(&first, failed.clone(), retry, NOW_MS + 50)
        .await
        .unwrap());
    let head = listed(&store, &ws).await.pop().unwrap();
    assert_eq!((head.seq, head.status), (1, DeliveryStatus::Pending));
    assert_eq!((head.next_attempt_at_ms, head.updated_at_ms), (Some(NOW_MS + 2_000), NOW_MS + 50));
    assert_eq!(head.attempts, std::slice::from_ref(&failed));
    assert_eq!(failed.error.as_deref(), Some("HTTP 503"));

    // Neither the retry nor the delivery behind it goes before the retry is due.
    assert!(store.claim_due_deliveries(NOW_MS + 1_999, LEASE_MS, 10).await.unwrap().is_empty());
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), Some(NOW_MS + 2_000));
    let retried = store.claim_due_deliveries(NOW_MS + 2_000, LEASE_MS, 10).await.unwrap();
    assert_eq!(heads(&retried), [("a", 1)]);
    assert_eq!((retried[0].attempts, retried[0].round_attempts), (1, 1));

    // A claim that was already recorded writes nothing more.
    let stale = attempt_of(&first, NOW_MS + 2_010, 200);
    let refused =
        store.finish_delivery_attempt(&first, stale, AfterAttempt::Delivered, NOW_MS + 2_010);
    assert!(!refused.await.unwrap());
    // A claim whose lease ran out loses to the claim that took the delivery over.
    let taken_over = store.claim_due_deliveries(NOW_MS + 3_000, LEASE_MS, 10).await.unwrap();
    assert_eq!(taken_over, retried);
    let delivered = attempt_of(&taken_over[0], NOW_MS + 3_000, 200);
    let after = AfterAttempt::Delivered;
    assert!(store
        .finish_delivery_attempt(&taken_over[0], delivered.clone(), after, NOW_MS + 3_010)
        .await
        .unwrap());
    let late = attempt_of(&retried[0], NOW_MS + 2_000, 500);
    let after = AfterAttempt::RetryAt(NOW_MS + 9_000);
    assert!(!store
        .finish_delivery_attempt(&retried[0], late, after, NOW_MS + 3_020)
        .await
        .unwrap());

    let head = listed(&store, &ws).await.pop().unwrap();
    assert_eq!((head.status, head.next_attempt_at_ms), (DeliveryStatus::Delivered, None));
    assert_eq!(head.updated_at_ms, NOW_MS + 3_010);
    assert_eq!(head.attempts, [failed, delivered]);
    let next = store.claim_due_deliveries(NOW_MS + 3_020, LEASE_MS, 10).await.unwrap();
    assert_eq!(heads(&next), [("a", 2)]);
}

/// Two workspaces: `w` with executions `e1` (5 deliveries) and `e2` (4), `o` with `x` (2).
/// e1's first is delivered; e2's first dies after a retry; x's first is delivered.
async fn three_executions_settled<S: Store>(store: &S) -> (String, String) {
    let (ws, other) = (new_workspace(store, "w").await, new_workspace(store, "o").await);
    for workspace in [&ws, &other] {
        store.create_definition(workspace, definition("d", 1), NOW_MS).await.unwrap();
    }
    for (workspace, id, count) in [(&ws, "e1", 5), (&ws, "e2", 4), (&other, "x", 2)] {
        let write = execution_with_deliveries(workspace, id, count, NOW_MS);
        store.dispatch_execution(workspace, write, None).await.unwrap();
    }
    let claimed = store.claim_due_deliveries(NOW_MS, 1_000, 10).await.unwrap();
    assert_eq!(heads(&claimed), [("e1", 1), ("e2", 1), ("x", 1)]);
    let retry = AfterAttempt::RetryAt(NOW_MS + 1);
    for (claimed, after) in
        claimed.iter().zip([AfterAttempt::Delivered, retry, AfterAttempt::Delivered])
    {
        let status = if after == AfterAttempt::Delivered { 200 } else { 500 };
        let attempt = attempt_of(claimed, NOW_MS, status);
        assert!(store.finish_delivery_attempt(claimed, attempt, after, NOW_MS + 1).await.unwrap());
    }
    let retried = store.claim_due_deliveries(NOW_MS + 1, 1_000, 10).await.unwrap();
    let retried = retried.iter().find(|d| d.execution_id == "e2").unwrap();
    let attempt = attempt_of(retried, NOW_MS + 1, 404);
    let died = store.finish_delivery_attempt(retried, attempt, AfterAttempt::Dead, NOW_MS + 2);
    assert!(died.await.unwrap());
    (ws, other)
}

async fn list_deliveries_pages_newest_first<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = three_executions_settled(&store).await;

    // Pages of three, newest first, the last one full and without a cursor.
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let filter = DeliveryFilter { cursor: cursor.as_deref(), ..every_delivery(3) };
        let page = store.list_deliveries(&ws, filter).await.unwrap();
        pages.push(page.items.iter().map(|d| (d.execution_id.clone(), d.seq)).collect::<Vec<_>>());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3]);
    let all = listed(&store, &ws).await;
    let ids: Vec<_> = all.iter().map(|d| (d.execution_id.clone(), d.seq)).collect();
    assert_eq!(pages.concat(), ids);
    assert!(all.windows(2).all(|w| w[0].delivery_id > w[1].delivery_id));
    assert!(all.iter().all(|d| d.execution_id != "x"), "only this workspace's deliveries");
    assert_eq!(heads_of(&listed(&store, &other).await), [("x", 2), ("x", 1)]);
    let one = store.list_deliveries(&ws, every_delivery(0)).await.unwrap();
    assert_eq!((one.items.len(), one.next_cursor), (1, Some(all[0].delivery_id.to_string())));

    let start = DeliveryFilter { cursor: Some("0"), ..every_delivery(50) };
    let past_the_end = store.list_deliveries(&ws, start).await.unwrap();
    assert_eq!((past_the_end.items.len(), past_the_end.next_cursor), (0, None));
    for malformed in ["", "abc", "-1", "+3", "1.5", "99999999999999999999", "3:x"] {
        let filter = DeliveryFilter { cursor: Some(malformed), ..every_delivery(50) };
        let refused = store.list_deliveries(&ws, filter).await;
        assert!(matches!(refused, Err(StoreError::InvalidCursor)), "{malformed:?}: {refused:?}");
    }
}

async fn list_deliveries_filters_with_attempts<B: Backend>(backend: B) {
    let store = backend.open().await;
    let (ws, other) = three_executions_settled(&store).await;
    let filtered =
        |execution_id, status| DeliveryFilter { execution_id, status, ..every_delivery(50) };
    let list = |execution_id, status| store.list_deliveries(&ws, filtered(execution_id, status));

    let of_e2 = list(Some("e2"), None).await.unwrap().items;
    assert_eq!(heads_of(&of_e2), [("e2", 4), ("e2", 3), ("e2", 2), ("e2", 1)]);
    let pending = list(Some("e1"), Some(DeliveryStatus::Pending)).await.unwrap().items;
    assert_eq!(heads_of(&pending), [("e1", 5), ("e1", 4), ("e1", 3), ("e1", 2)]);
    assert!(pending.iter().all(|d| d.attempts.is_empty() && d.next_attempt_at_ms == Some(NOW_MS)));
    assert!(list(Some("x"), None).await.unwrap().items.is_empty());

    // Each listed delivery carries its attempts, oldest first.
    let dead = list(None, Some(DeliveryStatus::Dead)).await.unwrap().items;
    assert_eq!(heads_of(&dead), [("e2", 1)]);
    assert_eq!((dead[0].next_attempt_at_ms, dead[0].updated_at_ms), (None, NOW_MS + 2));
    let tried: Vec<_> =
        dead[0].attempts.iter().map(|a| (a.attempt, a.http_status, a.error.as_deref())).collect();
    assert_eq!(tried, [(0, Some(500), Some("HTTP 500")), (1, Some(404), Some("HTTP 404"))]);
    let delivered = list(None, Some(DeliveryStatus::Delivered)).await.unwrap().items;
    assert_eq!(heads_of(&delivered), [("e1", 1)]);
    let expected = DeliveryAttempt {
        attempt: 0,
        at_ms: NOW_MS,
        http_status: Some(200),
        error: None,
        latency_ms: 12,
    };
    assert_eq!(delivered[0].attempts, [expected]);
    let theirs = listed(&store, &other).await;
    assert_eq!(theirs.iter().map(|d| d.attempts.len()).collect::<Vec<_>>(), [0, 1]);
}

fn heads_of(records: &[DeliveryRecord]) -> Vec<(&str, i64)> {
    records.iter().map(|d| (d.execution_id.as_str(), d.seq)).collect()
}

/// Claims the head of the store's only execution with something due at `now_ms`, and
/// records one attempt of it that ends as `after` says.
async fn attempt_head<S: Store>(store: &S, now_ms: i64, after: AfterAttempt) -> ClaimedDelivery {
    let mut claimed = store.claim_due_deliveries(now_ms, 1_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let head = claimed.remove(0);
    let status = if after == AfterAttempt::Delivered { 200 } else { 500 };
    let attempt = attempt_of(&head, now_ms, status);
    assert!(store.finish_delivery_attempt(&head, attempt, after, now_ms).await.unwrap());
    head
}

/// Execution `a` with 1 dead, 2 delivered, 3 dead after a retry and 4 pending; `b` with
/// 1 dead.
async fn two_executions_with_dead_deliveries<S: Store>(store: &S) -> String {
    let ws = new_workspace(store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    store
        .dispatch_execution(&ws, execution_with_deliveries(&ws, "b", 1, NOW_MS), None)
        .await
        .unwrap();
    attempt_head(store, NOW_MS, AfterAttempt::Dead).await;
    store
        .dispatch_execution(&ws, execution_with_deliveries(&ws, "a", 4, NOW_MS), None)
        .await
        .unwrap();
    attempt_head(store, NOW_MS, AfterAttempt::Dead).await;
    attempt_head(store, NOW_MS, AfterAttempt::Delivered).await;
    attempt_head(store, NOW_MS, AfterAttempt::RetryAt(NOW_MS + 1)).await;
    attempt_head(store, NOW_MS + 1, AfterAttempt::Dead).await;
    ws
}

fn event_ids_of_a(seqs: &[i64]) -> Vec<String> {
    seqs.iter().map(|seq| event_id("a", *seq)).collect()
}

async fn redeliver_refuses_what_it_cannot_find<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = two_executions_with_dead_deliveries(&store).await;
    let other = new_workspace(&store, "o").await;

    for (workspace, execution_id, event_ids) in [
        (&ws, "missing", None),
        (&other, "a", None),
        (&ws, "a", Some(event_ids_of_a(&[1, 9]))),
        (&ws, "a", Some(vec![event_id("b", 1)])),
    ] {
        let refused = store.redeliver(workspace, execution_id, event_ids.as_deref(), NOW_MS).await;
        assert!(matches!(refused, Err(StoreError::NotFound)), "{execution_id}: {refused:?}");
    }
    let records = listed(&store, &ws).await;
    let dead = records.iter().filter(|d| d.status == DeliveryStatus::Dead);
    assert_eq!(dead.count(), 3, "nothing was restarted");
}

async fn redeliver_restarts_dead_deliveries<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = two_executions_with_dead_deliveries(&store).await;

    // Without ids, every dead one of the execution; the count of attempts goes on.
    let restarted = store.redeliver(&ws, "a", None, NOW_MS + 100).await.unwrap();
    assert_eq!(restarted, event_ids_of_a(&[1, 3]));
    let of_a = DeliveryFilter { execution_id: Some("a"), ..every_delivery(50) };
    let records = store.list_deliveries(&ws, of_a).await.unwrap().items;
    let state: Vec<_> = records
        .iter()
        .map(|d| (d.seq, d.status, d.next_attempt_at_ms, d.updated_at_ms, d.attempts.len()))
        .collect();
    use DeliveryStatus::{Delivered, Pending};
    let restarted = |seq, attempts| (seq, Pending, Some(NOW_MS + 100), NOW_MS + 100, attempts);
    assert_eq!(
        state,
        [
            (4, Pending, Some(NOW_MS), NOW_MS, 0),
            restarted(3, 2),
            (2, Delivered, None, NOW_MS, 1),
            restarted(1, 1)
        ]
    );
    let first = attempt_head(&store, NOW_MS + 100, AfterAttempt::Delivered).await;
    assert_eq!((first.seq, first.attempts, first.round_attempts), (1, 1, 0));
    let third = attempt_head(&store, NOW_MS + 100, AfterAttempt::Delivered).await;
    assert_eq!((third.seq, third.attempts, third.round_attempts), (3, 2, 0));
    let fourth = attempt_head(&store, NOW_MS + 100, AfterAttempt::Delivered).await;
    assert_eq!((fourth.seq, fourth.attempts, fourth.round_attempts), (4, 0, 0));

    assert!(store.redeliver(&ws, "a", None, NOW_MS + 200).await.unwrap().is_empty());
    assert!(store.redeliver(&ws, "a", Some(&[]), NOW_MS + 200).await.unwrap().is_empty());
    assert_eq!(store.redeliver(&ws, "b", None, NOW_MS + 200).await.unwrap(), [event_id("b", 1)]);
}

async fn redelivery_waits_for_the_delivery_in_flight<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = two_executions_with_dead_deliveries(&store).await;
    let fourth = store.claim_due_deliveries(NOW_MS + 200, 1_000, 10).await.unwrap().remove(0);
    assert_eq!(fourth.seq, 4);

    // With ids, whatever their status; a pending one, here in flight, is left as it is.
    let listed_ids = event_ids_of_a(&[4, 2, 2]);
    let restarted = store.redeliver(&ws, "a", Some(&listed_ids), NOW_MS + 300).await.unwrap();
    assert_eq!(restarted, event_ids_of_a(&[2]));
    // The restarted one comes first, but waits for the lease of the one in flight.
    assert!(store.claim_due_deliveries(NOW_MS + 300, 1_000, 10).await.unwrap().is_empty());
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), Some(NOW_MS + 1_200));
    let attempt = attempt_of(&fourth, NOW_MS + 300, 200);
    let after = AfterAttempt::Delivered;
    assert!(store.finish_delivery_attempt(&fourth, attempt, after, NOW_MS + 310).await.unwrap());
    assert!(store.claim_due_deliveries(NOW_MS + 1_199, 1_000, 10).await.unwrap().is_empty());
    let second = attempt_head(&store, NOW_MS + 1_200, AfterAttempt::Delivered).await;
    assert_eq!((second.seq, second.attempts, second.round_attempts), (2, 1, 0));
    assert_eq!(store.next_delivery_due_ms().await.unwrap(), None);
}

async fn deliveries_outlive_a_purged_definition<B: Backend>(backend: B) {
    let store = backend.open().await;
    let ws = new_workspace(&store, "w").await;
    store.create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    for id in ["a", "b"] {
        store
            .dispatch_execution(&ws, execution_with_deliveries(&ws, id, 2, NOW_MS), None)
            .await
            .unwrap();
        set_status(&store, &ws, id, ExecutionStatus::Completed).await;
    }
    for claimed in store.claim_due_deliveries(NOW_MS, 1_000, 10).await.unwrap() {
        let attempt = attempt_of(&claimed, NOW_MS, 200);
        assert!(store
            .finish_delivery_attempt(&claimed, attempt, AfterAttempt::Delivered, NOW_MS)
            .await
            .unwrap());
    }

    // Purging the definition leaves its executions, and so their deliveries.
    store.delete_definition(&ws, "d", true, NOW_MS).await.unwrap();
    assert_eq!(heads_of(&listed(&store, &ws).await), [("b", 2), ("b", 1), ("a", 2), ("a", 1)]);
}

/// What the concurrent claimers have seen, checked as they go.
#[derive(Default)]
struct DeliveryLog {
    /// The seq of each execution's delivery in flight.
    in_flight: HashMap<String, i64>,
    /// Each execution's deliveries that were delivered or died, in the order they did.
    done: HashMap<String, Vec<i64>>,
    done_count: usize,
}

impl DeliveryLog {
    fn claimed(&mut self, delivery: &ClaimedDelivery) {
        let execution_id = &delivery.execution_id;
        let earlier = self.in_flight.insert(execution_id.clone(), delivery.seq);
        assert_eq!(earlier, None, "{execution_id}: two deliveries in flight at once");
        let done = self.done.get(execution_id).map_or(0, Vec::len) as i64;
        assert_eq!(delivery.seq, done + 1, "{execution_id}: claimed out of order");
    }

    /// Called before the attempt is recorded, since the next claim may follow its commit.
    fn finishing(&mut self, delivery: &ClaimedDelivery, after: AfterAttempt) {
        let in_flight = self.in_flight.remove(&delivery.execution_id);
        assert_eq!(in_flight, Some(delivery.seq));
        if !matches!(after, AfterAttempt::RetryAt(_)) {
            self.done.entry(delivery.execution_id.clone()).or_default().push(delivery.seq);
            self.done_count += 1;
        }
    }
}

/// Every third delivery fails once and is retried at once; every fifth dies.
fn scripted_outcome(delivery: &ClaimedDelivery) -> AfterAttempt {
    match delivery.seq {
        seq if seq % 3 == 0 && delivery.attempts == 0 => AfterAttempt::RetryAt(NOW_MS),
        seq if seq % 5 == 0 => AfterAttempt::Dead,
        _ => AfterAttempt::Delivered,
    }
}

/// Claims and finishes deliveries, a few at a time, until `total` are delivered or dead.
async fn claim_and_finish<S: Store>(store: Arc<S>, log: Arc<Mutex<DeliveryLog>>, total: usize) {
    let now_ms = NOW_MS + 1;
    while log.lock().unwrap().done_count < total {
        let batch = store.claim_due_deliveries(now_ms, 60_000, 3).await.unwrap();
        batch.iter().for_each(|delivery| log.lock().unwrap().claimed(delivery));
        // Others claim while these are in flight.
        tokio::task::yield_now().await;
        for delivery in batch {
            let after = scripted_outcome(&delivery);
            log.lock().unwrap().finishing(&delivery, after);
            let attempt = attempt_of(&delivery, now_ms, 200);
            let finished = store.finish_delivery_attempt(&delivery, attempt, after, now_ms);
            assert!(finished.await.unwrap(), "a live claim's attempt is recorded");
        }
    }
}

async fn concurrent_claimers_deliver_each_execution_in_order<B: Backend>(backend: B) {
    const EXECUTIONS: usize = 24;
    const EVENTS: i64 = 8;
    const STORES: usize = 4;
    const CLAIMERS: usize = 8;
    let mut stores = Vec::new();
    for _ in 0..STORES {
        stores.push(Arc::new(backend.open().await));
    }
    let ws = new_workspace(&*stores[0], "w").await;
    stores[0].create_definition(&ws, definition("d", 1), NOW_MS).await.unwrap();
    for i in 0..EXECUTIONS {
        let write = execution_with_deliveries(&ws, &format!("exec_{i}"), EVENTS / 2, NOW_MS);
        stores[i % STORES].dispatch_execution(&ws, write, None).await.unwrap();
    }
    // The other half come with commands while the claimers run, some queued behind a
    // delivery in flight, some behind one that is being finished.
    let appender = {
        let (stores, ws) = (stores.clone(), ws.clone());
        tokio::spawn(async move {
            for half in 0..2 {
                for i in 0..EXECUTIONS {
                    let (store, id) = (&stores[(i + half) % STORES], format!("exec_{i}"));
                    append_deliveries(&**store, &ws, &id, EVENTS / 4, NOW_MS).await;
                }
            }
        })
    };

    let total = EXECUTIONS * EVENTS as usize;
    let log = Arc::new(Mutex::new(DeliveryLog::default()));
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|c| tokio::spawn(claim_and_finish(stores[c % STORES].clone(), log.clone(), total)))
        .collect();
    let all_done = async {
        appender.await.unwrap();
        for claimer in claimers {
            claimer.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all_done).await.expect("every delivery done");

    let done = std::mem::take(&mut log.lock().unwrap().done);
    let in_order: Vec<i64> = (1..=EVENTS).collect();
    assert_eq!(done.len(), EXECUTIONS);
    assert!(done.values().all(|seqs| *seqs == in_order), "{done:?}");
    let records = listed(&*stores[1], &ws).await;
    assert_eq!(records.len(), total);
    for record in &records {
        let status =
            if record.seq % 5 == 0 { DeliveryStatus::Dead } else { DeliveryStatus::Delivered };
        let attempts = if record.seq % 3 == 0 { 2 } else { 1 };
        assert_eq!((record.status, record.attempts.len()), (status, attempts), "{record:?}");
    }
    assert_eq!(stores[2].next_delivery_due_ms().await.unwrap(), None);
}

fn connection(workspace_id: &str, provider: AppProvider, reference: &str) -> NewConnection {
    NewConnection {
        workspace_id: workspace_id.to_owned(),
        provider,
        installation_ref: reference.to_owned(),
        webhook_secret: format!("secret of {reference}"),
    }
}

/// `(workspaceId, provider, installationRef)` of each record.
fn connections_of(records: &[ConnectionRecord]) -> Vec<(&str, AppProvider, &str)> {
    records
        .iter()
        .map(|r| (r.workspace_id.as_str(), r.provider, r.installation_ref.as_str()))
        .collect()
}

async fn connections_lifecycle<B: Backend>(backend: B) {
    use AppProvider::{Github, Vercel};
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    let (ws, other) = if ws < other { (ws, other) } else { (other, ws) };
    let missing = store.add_connection(connection("ws_missing", Github, "1"), NOW_MS).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    let added = store.add_connection(connection(&ws, Github, "42"), NOW_MS).await.unwrap();
    let expected = ConnectionRecord {
        workspace_id: ws.clone(),
        provider: Github,
        installation_ref: "42".into(),
        created_at_ms: NOW_MS,
    };
    assert_eq!(added, expected);
    // One installation, one workspace: connecting it again is refused, wherever to.
    for target in [&ws, &other] {
        let again = store.add_connection(connection(target, Github, "42"), NOW_MS + 1).await;
        assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    }
    // The same reference of another provider is another installation.
    store.add_connection(connection(&other, Vercel, "42"), NOW_MS).await.unwrap();
    store.add_connection(connection(&ws, Vercel, "icfg_9"), NOW_MS).await.unwrap();

    let all = store.list_connections(None).await.unwrap();
    assert_eq!(
        connections_of(&all),
        [(&*ws, Github, "42"), (&*ws, Vercel, "icfg_9"), (&*other, Vercel, "42")]
    );
    let of_other = store.list_connections(Some(&other)).await.unwrap();
    assert_eq!(connections_of(&of_other), [(&*other, Vercel, "42")]);
    assert!(store.list_connections(Some("ws_missing")).await.unwrap().is_empty());

    let found = store.get_connection(Github, "42").await.unwrap().expect("connected");
    assert_eq!((found.record, found.webhook_secret.as_str()), (expected.clone(), "secret of 42"));
    let vercel = store.get_connection(Vercel, "42").await.unwrap().expect("connected");
    assert_eq!(vercel.record.workspace_id, other);
    assert!(store.get_connection(Github, "43").await.unwrap().is_none());

    assert_eq!(store.remove_connection(Github, "42").await.unwrap(), expected);
    let gone = store.remove_connection(Github, "42").await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
    assert!(store.get_connection(Github, "42").await.unwrap().is_none());
    // Once removed, the installation may be connected again, to another workspace.
    store.add_connection(connection(&other, Github, "42"), NOW_MS + 2).await.unwrap();
    let moved = store.get_connection(Github, "42").await.unwrap().expect("connected");
    assert_eq!((moved.record.workspace_id, moved.record.created_at_ms), (other, NOW_MS + 2));
}

async fn an_installation_connects_once_across_stores<B: Backend>(backend: B) {
    const ATTEMPTS: usize = 8;
    let stores = [Arc::new(backend.open().await), Arc::new(backend.open().await)];
    let mut workspaces = Vec::new();
    for i in 0..ATTEMPTS {
        workspaces.push(new_workspace(&*stores[0], &format!("w{i}")).await);
    }
    let attempts = workspaces.iter().enumerate().map(|(i, ws)| {
        let (store, new) = (stores[i % 2].clone(), connection(ws, AppProvider::Github, "7"));
        tokio::spawn(async move { store.add_connection(new, NOW_MS).await })
    });
    let mut connected = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(record) => connected.push(record.workspace_id),
            Err(StoreError::AlreadyExists) => {}
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(connected.len(), 1, "exactly one workspace gets the installation");
    let kept = stores[1].get_connection(AppProvider::Github, "7").await.unwrap().unwrap();
    assert_eq!(kept.record.workspace_id, connected[0]);
}

/// A definition whose app triggers name these installations.
fn with_app_triggers(id: &str, installations: &[(AppProvider, &str)]) -> NewDefinition {
    let entry = |&(provider, reference): &(AppProvider, &str)| AppTriggerEntry {
        provider,
        installation_ref: reference.to_owned(),
    };
    NewDefinition { app_triggers: installations.iter().map(entry).collect(), ..definition(id, 1) }
}

async fn app_trigger_index_follows_definition_writes<B: Backend>(backend: B) {
    use AppProvider::{Github, Vercel};
    let store = backend.open().await;
    let (ws, other) = (new_workspace(&store, "w").await, new_workspace(&store, "o").await);
    let naming = |workspace: &str, provider, reference: &str, limit| {
        let (store, workspace, reference) = (&store, workspace.to_owned(), reference.to_owned());
        async move {
            let found = store.app_trigger_definitions(&workspace, provider, &reference, limit);
            found.await.expect("index read")
        }
    };
    let both = [(Github, "42"), (Vercel, "42")];
    for id in ["release-b", "release-a", "release-c"] {
        store.create_definition(&ws, with_app_triggers(id, &both), NOW_MS).await.unwrap();
    }
    store
        .create_definition(&ws, with_app_triggers("other-repo", &[(Github, "43")]), NOW_MS)
        .await
        .unwrap();
    store.create_definition(&other, with_app_triggers("release-a", &both), NOW_MS).await.unwrap();

    assert_eq!(naming(&ws, Github, "42", 10).await, ["release-a", "release-b", "release-c"]);
    assert_eq!(naming(&ws, Github, "42", 2).await, ["release-a", "release-b"]);
    assert_eq!(naming(&ws, Vercel, "42", 10).await, ["release-a", "release-b", "release-c"]);
    assert_eq!(naming(&ws, Github, "43", 10).await, ["other-repo"]);
    assert_eq!(naming(&other, Github, "42", 10).await, ["release-a"]);
    assert!(naming(&ws, Vercel, "43", 10).await.is_empty());

    // An update replaces the entries; a failed one leaves them.
    let update = with_app_triggers("release-b", &[(Vercel, "42")]);
    store.update_definition(&ws, update, 1, NOW_MS).await.unwrap();
    let stale = with_app_triggers("release-b", &[(Github, "99")]);
    let conflict = store.update_definition(&ws, stale, 1, NOW_MS).await;
    assert!(matches!(conflict, Err(StoreError::VersionConflict { .. })), "{conflict:?}");
    assert_eq!(naming(&ws, Github, "42", 10).await, ["release-a", "release-c"]);
    assert_eq!(naming(&ws, Vercel, "42", 10).await, ["release-a", "release-b", "release-c"]);
    assert!(naming(&ws, Github, "99", 10).await.is_empty());

    // Tombstoned and purged definitions leave the index; a re-created one comes back.
    store.delete_definition(&ws, "release-a", false, NOW_MS).await.unwrap();
    store.delete_definition(&ws, "release-c", true, NOW_MS).await.unwrap();
    assert!(naming(&ws, Github, "42", 10).await.is_empty());
    assert_eq!(naming(&ws, Vercel, "42", 10).await, ["release-b"]);
    store.create_definition(&ws, with_app_triggers("release-a", &both), NOW_MS).await.unwrap();
    assert_eq!(naming(&ws, Github, "42", 10).await, ["release-a"]);
    assert_eq!(naming(&other, Github, "42", 10).await, ["release-a"], "the other is untouched");
}
