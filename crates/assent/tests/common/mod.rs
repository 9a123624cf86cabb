//! The black-box harness: a real server on port 0 over a fresh store, and a client that
//! speaks HTTP to it as any other client would.

#![allow(dead_code)]

pub mod pg;
pub mod receiver;
pub mod smtp;

use assent::clock::ManualClock;
use assent::engine::{AgentRunner, Engine, NotificationSettings, Notifications};
use assent::http::AppState;
use assent::outbound::{Outbound, OutboundOptions, StaticResolver};
use assent_core::address::AddressPolicy;
use assent_store::{AnyStore, NewCredentials, Store};
use receiver::TestCa;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// 2026-12-01T00:00:00Z, a fixed start for the test clock.
pub const T0_MS: i64 = 1_796_083_200_000;

pub struct TestApp {
    pub base_url: String,
    pub engine: Arc<Engine>,
    pub store: Arc<AnyStore>,
    pub clock: Arc<ManualClock>,
    pub creds: NewCredentials,
    pub http: reqwest::Client,
    /// The names the server's outbound requests can resolve.
    pub resolver: Arc<StaticResolver>,
    _shutdown: oneshot::Sender<()>,
    _dir: TempDir,
}

/// A directory removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("assent-{tag}-{}", hex::encode(bytes)));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a server over a fresh SQLite store with one workspace.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

/// Starts a server whose agent nodes call the agent runner at `agent_runner_url`.
pub async fn spawn_app_with(agent_runner_url: Option<&str>) -> TestApp {
    spawn_app_opts(AppOptions { agent_runner_url, ..AppOptions::default() }).await
}

/// An outbound client under the default address rules, resolving no names.
pub fn plain_outbound() -> Outbound {
    Outbound::new(OutboundOptions {
        policy: Arc::new(AddressPolicy::default()),
        extra_ca_pem: None,
        resolver: Arc::new(StaticResolver::default()),
    })
    .expect("outbound client")
}

/// How a test server is set up beyond the defaults.
#[derive(Default)]
pub struct AppOptions<'a> {
    pub agent_runner_url: Option<&'a str>,
    /// A CA the server trusts, as `--webhook-ca-file` gives one.
    pub ca: Option<&'a TestCa>,
    /// `--webhook-allow` entries.
    pub allow: &'a [&'a str],
    /// `--smtp-url`, `--smtp-from`, `--slack-bot-token`, `--slack-api-base-url`.
    pub notifications: NotificationSettings,
}

pub async fn spawn_app_opts(options: AppOptions<'_>) -> TestApp {
    let dir = TempDir::new("http");
    let url = format!("sqlite:{}", dir.0.join("assent.db").display());
    let store = Arc::new(AnyStore::open(&url).await.expect("store opens"));
    let clock = Arc::new(ManualClock::new(T0_MS));
    let creds = store.create_workspace("test", T0_MS).await.expect("workspace");
    let ca_pem = options.ca.map(|ca| ca.ca_pem.as_bytes().to_vec());
    let runner = options
        .agent_runner_url
        .map(|url| AgentRunner::new(url, ca_pem.as_deref()).expect("agent runner"));
    let allow: Vec<String> = options.allow.iter().map(|e| e.to_string()).collect();
    let policy = AddressPolicy::with_allow_list(false, &allow).expect("allow list");
    let resolver = Arc::new(StaticResolver::default());
    let notifications = Notifications::new(&options.notifications, ca_pem.as_deref(), &policy)
        .expect("notification settings");
    let outbound = Outbound::new(OutboundOptions {
        policy: Arc::new(policy),
        extra_ca_pem: ca_pem,
        resolver: resolver.clone(),
    })
    .expect("outbound client");
    let state = AppState::new(store.clone(), clock.clone(), outbound, runner, notifications);
    let engine = state.engine.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    engine.set_public_url(&base_url);
    let (shutdown, stop) = oneshot::channel::<()>();
    tokio::spawn(assent::serve::serve(listener, state, async {
        let _ = stop.await;
    }));
    let http = reqwest::Client::new();
    TestApp {
        base_url,
        engine,
        store,
        clock,
        creds,
        http,
        resolver,
        _shutdown: shutdown,
        _dir: dir,
    }
}

/// An HTTP answer: its status and its JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn result(&self) -> &Value {
        assert_eq!(self.status, 200, "expected success, got {}", self.body);
        &self.body["result"]
    }

    /// Asserts an error envelope with this HTTP status and status name; returns its message.
    pub fn error(&self, http_status: u16, status: &str) -> String {
        assert_eq!(self.status, http_status, "body: {}", self.body);
        assert_eq!(self.body["error"]["status"], status, "body: {}", self.body);
        self.body["error"]["message"].as_str().expect("message").to_owned()
    }
}

impl TestApp {
    /// Moves the server's clock and lets its timer and schedule loops look at what became
    /// due.
    pub fn advance_ms(&self, delta_ms: i64) {
        self.clock.advance_ms(delta_ms);
        self.engine.wake();
        self.engine.wake_schedules();
    }

    /// Sets the server's clock to `now_ms` and lets its loops look at what became due.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.clock.set_ms(now_ms);
        self.engine.wake();
        self.engine.wake_schedules();
    }

    /// POSTs `{"data": data}` to `/v2/workflow/<path>` with this app's credentials.
    pub async fn call(&self, path: &str, data: Value) -> Answer {
        self.call_as(&self.creds, path, data).await
    }

    pub async fn call_as(&self, creds: &NewCredentials, path: &str, data: Value) -> Answer {
        let req = self
            .http
            .post(format!("{}/v2/workflow/{path}", self.base_url))
            .header("x-velt-api-key", &creds.api_key)
            .header("x-velt-auth-token", &creds.auth_token);
        send_json(req, &json!({ "data": data })).await
    }

    /// A second workspace in the same store.
    pub async fn other_workspace(&self) -> NewCredentials {
        self.store.create_workspace("other", T0_MS).await.unwrap()
    }
}

pub async fn send_json(req: reqwest::RequestBuilder, body: &Value) -> Answer {
    let req = req.header("content-type", "application/json").body(body.to_string());
    send(req).await
}

pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

/// One of the shared example definitions, as a create body.
pub fn example(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("example is JSON")
}

pub const EXAMPLES: [&str; 7] = [
    "marketing-copy-approval",
    "sequential-signoff",
    "parallel-quorum",
    "revision-loop",
    "sla-escalation",
    "agent-check-then-review",
    "webhook-and-notification",
];

/// The execution as `executions/get` shows it.
pub async fn get(app: &TestApp, execution_id: &str) -> Value {
    app.call("executions/get", json!({ "executionId": execution_id })).await.result().clone()
}

/// Real-time polls of the execution before a wait gives up (10 ms apart).
const POLLS_MAX: usize = 500;

/// Waits (briefly, in real time) until the timer loop has carried the execution to `status`.
pub async fn until_status(app: &TestApp, execution_id: &str, status: &str) -> Value {
    until(app, execution_id, &format!("status {status}"), |view| view["status"] == status).await
}

/// Waits (briefly, in real time) until the execution view satisfies `done`.
pub async fn until(
    app: &TestApp,
    execution_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..POLLS_MAX {
        let view = get(app, execution_id).await;
        if done(&view) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("execution {execution_id} never reached {what}: {}", get(app, execution_id).await);
}

/// The steps of a node, in creation order.
pub fn steps_of<'a>(view: &'a Value, node_id: &str) -> Vec<&'a Value> {
    let steps = view["steps"].as_array().expect("steps");
    steps.iter().filter(|s| s["nodeId"] == node_id).collect()
}

/// The one step of a node; panics when there is none or more than one.
pub fn step<'a>(view: &'a Value, node_id: &str) -> &'a Value {
    match steps_of(view, node_id).as_slice() {
        [only] => only,
        other => panic!("expected one step of {node_id}, found {}: {view}", other.len()),
    }
}

/// The id of the one step of a node.
pub fn step_id(view: &Value, node_id: &str) -> String {
    step(view, node_id)["stepId"].as_str().expect("stepId").to_owned()
}

/// Every external event of an execution, in `seq` order.
pub async fn events(app: &TestApp, execution_id: &str) -> Vec<Value> {
    let body = json!({ "executionId": execution_id, "pageSize": 500 });
    let answer = app.call("executions/getEvents", body).await;
    assert_eq!(answer.result()["hasMore"], false);
    answer.result()["events"].as_array().expect("events").clone()
}

/// `"<type> <stepId>"` of each event (`-` for execution-level events), for comparing a run's
/// trail with the expected one in a single assertion.
pub fn trail(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!("{} {}", e["type"].as_str().unwrap_or("?"), e["stepId"].as_str().unwrap_or("-"))
        })
        .collect()
}
