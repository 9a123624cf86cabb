//! Schedule triggers over HTTP, with the server's clock moved by the test: daylight-saving
//! shifts, missed instants, definition writes that change schedules at once, and two servers
//! on one PostgreSQL database firing each instant once (when `ASSENT_TEST_POSTGRES_URL` is
//! set).

mod common;

use assent::clock::ManualClock;
use assent::engine::Engine;
use assent::http::AppState;
use assent_store::{AnyStore, NewCredentials, Store};
use common::{send_json, Answer, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const DEFINITION_ID: &str = "scheduled-report";

/// Epoch milliseconds of an RFC 3339 instant.
fn ms(instant: &str) -> i64 {
    instant.parse::<jiff::Timestamp>().expect("an RFC 3339 instant").as_millisecond()
}

/// A one-node definition of organization scope whose schedule trigger `nightly` is
/// `schedule`.
fn definition(id: &str, schedule: Value) -> Value {
    json!({
        "definitionId": id,
        "name": "Scheduled report",
        "scope": { "level": "organization", "organizationId": "org-7" },
        "nodes": [{
            "nodeId": "report",
            "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/report" }
        }],
        "edges": [],
        "triggers": [{ "triggerId": "nightly", "schedule": schedule }],
    })
}

fn schedule(cron: &str, timezone: &str) -> Value {
    json!({ "cron": cron, "timezone": timezone, "enabled": true })
}

/// Real-time polls before a wait gives up (10 ms apart).
const POLLS_MAX: usize = 500;
/// How long a loop that was woken gets to show it did nothing.
const SETTLE: Duration = Duration::from_millis(150);

/// The definition's runs, oldest first.
async fn runs(app: &TestApp, definition_id: &str) -> Vec<Value> {
    let body = json!({ "definitionId": definition_id, "pageSize": 500 });
    let answer = app.call("executions/list", body).await;
    let mut items = answer.result()["items"].as_array().expect("items").clone();
    items.reverse();
    items
}

/// Waits until the definition has `count` runs; returns them, oldest first.
async fn until_runs(app: &TestApp, definition_id: &str, count: usize) -> Vec<Value> {
    for _ in 0..POLLS_MAX {
        let found = runs(app, definition_id).await;
        if found.len() >= count {
            assert_eq!(found.len(), count, "too many runs: {found:?}");
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{definition_id} never reached {count} runs");
}

/// Waits until the schedule index's next instant is `expected`.
async fn until_next_fire(app: &TestApp, expected: Option<i64>) {
    for _ in 0..POLLS_MAX {
        if app.store.next_schedule_due_ms().await.unwrap() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let found = app.store.next_schedule_due_ms().await.unwrap();
    panic!("the next scheduled instant is {found:?}, not {expected:?}");
}

/// Sets the clock, lets the schedule loop look, and asserts that no new run started.
async fn no_run_at(app: &TestApp, now_ms: i64, runs_before: usize) {
    app.set_now_ms(now_ms);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(runs(app, DEFINITION_ID).await.len(), runs_before, "a run started at {now_ms}");
}

/// The run's `triggerContext` and scope, as the engine keeps them.
async fn context_of(app: &TestApp, run: &Value) -> (Value, Option<String>) {
    let id = run["executionId"].as_str().expect("executionId");
    let state = app.engine.execution(&app.creds.workspace_id, id).await.expect("execution");
    (state.trigger_context, state.organization_id)
}

#[tokio::test]
async fn a_skipped_wall_clock_time_fires_once_at_the_shifted_instant() {
    let app = common::spawn_app().await;
    app.set_now_ms(ms("2027-03-13T12:00:00Z"));
    // New York skips 02:00-03:00 on 2027-03-14: 02:30 fires at 03:30 EDT (07:30Z).
    let mut nightly = schedule("30 2 * * *", "America/New_York");
    nightly["payloadTemplate"] = json!({ "report": "nightly", "depth": 2 });
    app.call("definitions/create", definition(DEFINITION_ID, nightly)).await.result();
    let shifted = ms("2027-03-14T07:30:00Z");
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), Some(shifted));

    no_run_at(&app, shifted - 1, 0).await;
    app.set_now_ms(shifted);
    let fired = until_runs(&app, DEFINITION_ID, 1).await;
    let key = format!("sched:{DEFINITION_ID}:nightly:{shifted}");
    assert_eq!(fired[0]["idempotencyKey"], key.as_str());
    let (context, organization) = context_of(&app, &fired[0]).await;
    let payload = json!({ "report": "nightly", "depth": 2 });
    let schedule = json!({ "triggerId": "nightly", "scheduledAt": shifted, "payload": payload });
    let expected = json!({ "schedule": schedule });
    assert_eq!(context, expected);
    assert_eq!(organization.as_deref(), Some("org-7"), "the run takes the definition's scope");

    // The next day is back to 02:30, now EDT (06:30Z); nothing fires in between.
    let next_day = ms("2027-03-15T06:30:00Z");
    until_next_fire(&app, Some(next_day)).await;
    no_run_at(&app, ms("2027-03-14T08:30:00Z"), 1).await;
    app.set_now_ms(next_day);
    until_runs(&app, DEFINITION_ID, 2).await;
}

#[tokio::test]
async fn a_repeated_wall_clock_time_fires_once() {
    let app = common::spawn_app().await;
    app.set_now_ms(ms("2027-10-30T12:00:00Z"));
    // Berlin repeats 02:00-03:00 on 2027-10-31: 02:30 CEST (00:30Z), then 02:30 CET (01:30Z).
    let nightly = schedule("30 2 * * *", "Europe/Berlin");
    app.call("definitions/create", definition(DEFINITION_ID, nightly)).await.result();
    let first_pass = ms("2027-10-31T00:30:00Z");
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), Some(first_pass));

    app.set_now_ms(first_pass);
    let fired = until_runs(&app, DEFINITION_ID, 1).await;
    let (context, _) = context_of(&app, &fired[0]).await;
    assert_eq!(context["schedule"]["scheduledAt"], first_pass);
    assert_eq!(context["schedule"]["payload"], json!({}), "no payloadTemplate: an empty payload");
    until_next_fire(&app, Some(ms("2027-11-01T01:30:00Z"))).await;
    no_run_at(&app, ms("2027-10-31T01:30:00Z"), 1).await;
    no_run_at(&app, ms("2027-10-31T01:31:00Z"), 1).await;
}

#[tokio::test]
async fn instants_missed_while_down_are_not_replayed() {
    let app = common::spawn_app().await;
    let hourly = schedule("0 * * * *", "UTC");
    app.call("definitions/create", definition(DEFINITION_ID, hourly)).await.result();
    let hour_ms = 60 * 60 * 1000;
    let t0 = common::T0_MS;
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), Some(t0 + hour_ms));

    // Five hours pass at once: the first missed instant is claimed late and skipped, and
    // the schedule moves past every missed one.
    app.set_now_ms(t0 + 5 * hour_ms + 30_000);
    until_next_fire(&app, Some(t0 + 6 * hour_ms)).await;
    no_run_at(&app, t0 + 5 * hour_ms + 31_000, 0).await;

    app.set_now_ms(t0 + 6 * hour_ms);
    let fired = until_runs(&app, DEFINITION_ID, 1).await;
    assert_eq!(context_of(&app, &fired[0]).await.0["schedule"]["scheduledAt"], t0 + 6 * hour_ms);
    // A little late (under a minute) is still on time.
    app.set_now_ms(t0 + 7 * hour_ms + 45_000);
    let fired = until_runs(&app, DEFINITION_ID, 2).await;
    assert_eq!(context_of(&app, &fired[1]).await.0["schedule"]["scheduledAt"], t0 + 7 * hour_ms);
}

#[tokio::test]
async fn definition_writes_change_or_stop_schedules_at_once() {
    let app = common::spawn_app().await;
    let t0 = common::T0_MS;
    let at = |hour: i64| t0 + hour * 60 * 60 * 1000;
    let created = app
        .call("definitions/create", definition(DEFINITION_ID, schedule("0 9 * * *", "UTC")))
        .await;
    assert_eq!(created.result()["version"], 1);
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), Some(at(9)));

    let update = |version: i64, schedule: Value| {
        let mut body = definition(DEFINITION_ID, schedule);
        body["ifVersion"] = json!(version);
        app.call("definitions/update", body)
    };
    update(1, schedule("0 10 * * *", "UTC")).await.result();
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), Some(at(10)));
    no_run_at(&app, at(9), 0).await;
    app.set_now_ms(at(10));
    until_runs(&app, DEFINITION_ID, 1).await;

    let mut disabled = schedule("0 10 * * *", "UTC");
    disabled["enabled"] = json!(false);
    update(2, disabled).await.result();
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), None);
    no_run_at(&app, at(34), 1).await;

    update(3, schedule("0 11 * * *", "UTC")).await.result();
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), Some(at(35)));
    let deleted = app.call("definitions/delete", json!({ "definitionId": DEFINITION_ID })).await;
    deleted.result();
    assert_eq!(app.store.next_schedule_due_ms().await.unwrap(), None);
}

/// A server over `store` with a clock of its own, stopped when the guard goes.
struct Server {
    base_url: String,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    _shutdown: oneshot::Sender<()>,
}

impl Server {
    async fn start(store: Arc<AnyStore>, now_ms: i64) -> Server {
        let clock = Arc::new(ManualClock::new(now_ms));
        let outbound = common::plain_outbound();
        let state = AppState::new(store, clock.clone(), outbound, None, Default::default());
        let engine = state.engine.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(assent::serve::serve(listener, state, async {
            let _ = stop.await;
        }));
        Server { base_url, engine, clock, _shutdown: shutdown }
    }

    fn set_now_ms(&self, now_ms: i64) {
        self.clock.set_ms(now_ms);
        self.engine.wake_schedules();
    }
}

/// Definitions that each fire every minute, on two servers sharing one database.
const SHARED_DEFINITIONS: usize = 12;
/// Minutes the two servers' clocks are moved through.
const SHARED_MINUTES: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_fire_each_instant_once() {
    let Ok(server_url) = std::env::var("ASSENT_TEST_POSTGRES_URL") else {
        eprintln!("skipped: ASSENT_TEST_POSTGRES_URL is not set");
        return;
    };
    let database = common::pg::Database::create(&server_url).await;
    let (store_a, store_b) = (common::pg::open(&database).await, common::pg::open(&database).await);
    let creds = store_a.create_workspace("shared", common::T0_MS).await.unwrap();
    let t0 = common::T0_MS;
    let servers = [Server::start(store_a.clone(), t0).await, Server::start(store_b, t0).await];
    for i in 0..SHARED_DEFINITIONS {
        let body = definition(&format!("every-minute-{i}"), schedule("* * * * *", "UTC"));
        let created = call(&servers[i % 2], &creds, "definitions/create", body).await;
        created.result();
    }

    for minute in 1..=SHARED_MINUTES {
        let now_ms = t0 + minute * 60_000;
        for server in &servers {
            server.set_now_ms(now_ms);
        }
        until_all_fired(&store_a, &creds.workspace_id, minute as usize * SHARED_DEFINITIONS).await;
    }
    tokio::time::sleep(SETTLE).await;

    let keys = run_keys(&store_a, &creds.workspace_id).await;
    assert_eq!(keys.len(), SHARED_DEFINITIONS * SHARED_MINUTES as usize, "one run per instant");
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "an instant ran twice: {keys:?}");
    for minute in 1..=SHARED_MINUTES {
        let key = format!("sched:every-minute-0:nightly:{}", t0 + minute * 60_000);
        assert!(unique.contains(&key), "{key} is missing");
    }
}

/// POSTs `{"data": data}` to one server of the shared database.
async fn call(server: &Server, creds: &NewCredentials, path: &str, data: Value) -> Answer {
    let url = format!("{}/v2/workflow/{path}", server.base_url);
    let req = reqwest::Client::new()
        .post(url)
        .header("x-velt-api-key", &creds.api_key)
        .header("x-velt-auth-token", &creds.auth_token);
    send_json(req, &json!({ "data": data })).await
}

/// The idempotency keys of every execution in the workspace.
async fn run_keys(store: &AnyStore, workspace_id: &str) -> Vec<String> {
    let page = store.list_executions(workspace_id, None, None, 500, None).await.unwrap();
    page.items.into_iter().map(|e| e.idempotency_key).collect()
}

async fn until_all_fired(store: &AnyStore, workspace_id: &str, count: usize) {
    for _ in 0..POLLS_MAX {
        if run_keys(store, workspace_id).await.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} scheduled runs started");
}
