//! The storage conformance suite. Each test is written once, over [`Store`], and runs
//! against SQLite always and against PostgreSQL when `ASSENT_TEST_POSTGRES_URL` is set
//! (each test then gets a database of its own, dropped afterwards).

use assent_store::{
    AnyStore, AuthOutcome, DefinitionRecord, DefinitionStatus, NewDefinition, PgStore, SqliteStore,
    Store, StoreError,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

const NOW_MS: i64 = 1_767_225_600_000;

/// Where a test's store lives. Each `open` is like one more process on the same data.
trait Backend: Send + Sync + 'static {
    type Store: Store;

    fn open(&self) -> impl Future<Output = Self::Store> + Send;

    /// Writes an execution row, as dispatch will.
    fn put_execution(
        store: &Self::Store,
        workspace_id: &str,
        execution_id: &str,
        definition_id: &str,
        status: &str,
    ) -> impl Future<Output = ()> + Send;
}

struct SqliteBackend {
    path: PathBuf,
}

impl Backend for SqliteBackend {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).await.expect("SQLite store opens")
    }

    async fn put_execution(
        store: &SqliteStore,
        workspace_id: &str,
        execution_id: &str,
        definition_id: &str,
        status: &str,
    ) {
        store
            .put_execution_for_test(workspace_id, execution_id, definition_id, 1, status, NOW_MS)
            .await
            .expect("execution written");
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

    async fn put_execution(
        store: &PgStore,
        workspace_id: &str,
        execution_id: &str,
        definition_id: &str,
        status: &str,
    ) {
        store
            .put_execution_for_test(workspace_id, execution_id, definition_id, 1, status, NOW_MS)
            .await
            .expect("execution written");
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
);

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
    }
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
    B::put_execution(&store, &ws, "exec_done", "d", "completed").await;
    B::put_execution(&store, &other, "exec_elsewhere", "d", "running").await;
    B::put_execution(&store, &ws, "exec_1", "d", "pending").await;

    for purge in [false, true] {
        let refused = store.delete_definition(&ws, "d", purge, NOW_MS).await;
        assert!(matches!(refused, Err(StoreError::InFlight)), "{refused:?}");
    }
    B::put_execution(&store, &ws, "exec_1", "d", "running").await;
    let refused = store.delete_definition(&ws, "d", false, NOW_MS).await;
    assert!(matches!(refused, Err(StoreError::InFlight)), "{refused:?}");
    assert!(store.get_definition(&ws, "d").await.unwrap().is_some(), "a refusal deletes nothing");

    B::put_execution(&store, &ws, "exec_1", "d", "failed").await;
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
