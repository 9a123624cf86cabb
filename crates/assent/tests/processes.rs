//! The `assent` binary as several processes meet it: two servers sharing one PostgreSQL
//! database, a server killed under load and started again on the same store, and first starts
//! that race. PostgreSQL cases run when `ASSENT_TEST_POSTGRES_URL` is set, each on a database
//! of its own that is dropped afterwards.

mod common;

use common::pg::Database;
use common::receiver::{signature_holds, Receiver, TestCa};
use common::{example, Answer, TempDir};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an execution may take to leave `running` once nothing waits on a reviewer.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Dispatches of one key that race each other across two servers.
const RACING_DISPATCHES: usize = 100;
/// Decisions on one step that race each other across two servers.
const RACING_DECISIONS: usize = 20;
/// Clients that load a server at once before it is killed.
const LOAD_CLIENTS: usize = 12;
/// Acknowledged dispatches after which the server is killed, mid-load.
const KILL_AFTER_ACKNOWLEDGED: usize = 30;
/// The longest the load runs before the server is killed, however slow it is.
const KILL_WAIT_MAX: Duration = Duration::from_secs(4);
/// A client still running this long after it started was not cut off by the kill.
const LOAD_DEADLINE: Duration = Duration::from_secs(6);
/// Server processes that start at once on an empty database.
const RACING_STARTS: usize = 3;

const DEFINITION_ID: &str = "sequential-signoff";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_act_as_one() {
    let Some(backing) = Backing::postgres("shared").await else { return };
    let creds = backing.create_workspace();
    let (server_a, server_b) = (backing.serve(), backing.serve());
    let (a, b) = (Api::new(&server_a, &creds), Api::new(&server_b, &creds));

    a.result("definitions/create", example(DEFINITION_ID)).await;
    let raced_id = racing_dispatches_make_one_execution(&a, &b).await;
    let via_b = b.result("executions/dispatch", json!({ "definitionId": DEFINITION_ID })).await;
    assert_eq!(via_b["deduplicated"], false, "B runs the definition A created: {via_b}");
    let listed: BTreeSet<String> =
        list_executions(&a).await.iter().map(|e| text(&e["executionId"])).collect();
    let expected = BTreeSet::from([text(&via_b["executionId"]), raced_id]);
    assert_eq!(listed, expected, "one execution for B's dispatch, one for the raced key");

    racing_decisions_record_the_first(&a, &b).await;
    a_decision_at_b_completes_an_execution_dispatched_at_a(&a, &b).await;
}

/// What a server remembers (the definition version it last dispatched, the credentials it
/// checked) gives way when another process changes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sees_changes_made_by_other_processes() {
    let Some(backing) = Backing::postgres("remembered").await else { return };
    let creds = backing.create_workspace();
    let (server_a, server_b) = (backing.serve(), backing.serve());
    let (a, b) = (Api::new(&server_a, &creds), Api::new(&server_b, &creds));
    a.result("definitions/create", example(DEFINITION_ID)).await;
    let version_of = |dispatched: Value| {
        let a = a.clone();
        async move { get(&a, &text(&dispatched["executionId"])).await["definitionVersion"].clone() }
    };
    let first = a.result("executions/dispatch", dispatch_body("before")).await;
    assert_eq!(version_of(first).await, 1);

    let mut updated = example(DEFINITION_ID);
    updated["ifVersion"] = json!(1);
    b.result("definitions/update", updated).await;
    let second = a.result("executions/dispatch", dispatch_body("after")).await;
    assert_eq!(version_of(second).await, 2, "A dispatches the version B wrote");

    let revoked = backing.assent().args(["token", "revoke", &text(&creds["authToken"])]).output();
    assert!(revoked.expect("assent runs").status.success());
    let started = Instant::now();
    let refused = loop {
        let answer = a.call("executions/list", json!({})).await;
        if answer.status == 403 || started.elapsed() > SETTLE_TIMEOUT {
            break answer.status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refused, 403, "A refuses a token revoked by another process");
}

/// Dispatches of one key, split across two servers, make one execution; returns its id.
async fn racing_dispatches_make_one_execution(a: &Api, b: &Api) -> String {
    let body = json!({ "definitionId": DEFINITION_ID, "idempotencyKey": "campaign-race" });
    let racing: Vec<_> = (0..RACING_DISPATCHES)
        .map(|i| {
            let (api, body) = (if i % 2 == 0 { a.clone() } else { b.clone() }, body.clone());
            tokio::spawn(async move { api.call("executions/dispatch", body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in racing {
        answers.push(task.await.expect("a dispatch task ends"));
    }

    let results: Vec<&Value> = answers.iter().map(Answer::result).collect();
    let ids: BTreeSet<String> = results.iter().map(|r| text(&r["executionId"])).collect();
    assert_eq!(ids.len(), 1, "every answer names the same execution: {ids:?}");
    let fresh = results.iter().filter(|r| r["deduplicated"] == false).count();
    let replayed = results.iter().filter(|r| r["deduplicated"] == true).count();
    assert_eq!((fresh, replayed), (1, RACING_DISPATCHES - 1), "one creation, the rest replays");
    ids.into_iter().next().unwrap_or_default()
}

/// One reviewer's decisions on one step, racing across both servers: the first one wins
/// and the execution follows it.
async fn racing_decisions_record_the_first(a: &Api, b: &Api) {
    let dispatched =
        b.result("executions/dispatch", json!({ "definitionId": DEFINITION_ID })).await;
    let id = text(&dispatched["executionId"]);
    let step_id = waiting_step(&get(a, &id).await, "manager").expect("a waiting manager step");
    let racing: Vec<_> = (0..RACING_DECISIONS)
        .map(|i| {
            let (api, decision) =
                if i % 2 == 0 { (a.clone(), "approve") } else { (b.clone(), "reject") };
            let body = decision_body(&id, &step_id, "manager", decision);
            tokio::spawn(
                async move { (decision, api.call("steps/recordReviewerDecision", body).await) },
            )
        })
        .collect();
    let mut recorded = Vec::new();
    for task in racing {
        let (decision, answer) = task.await.expect("a decision task ends");
        if answer.result()["recorded"] == true {
            recorded.push(decision);
        }
    }

    assert_eq!(recorded.len(), 1, "one decision recorded: {recorded:?}");
    let view = get(b, &id).await;
    let next = if recorded[0] == "approve" { "legal" } else { "notify-rejected" };
    assert_eq!(node_ids(&view), ["manager", next], "{view}");
    assert_eq!(view["steps"][0]["output"]["decision"], recorded[0], "{view}");
}

async fn a_decision_at_b_completes_an_execution_dispatched_at_a(a: &Api, b: &Api) {
    let dispatched =
        a.result("executions/dispatch", json!({ "definitionId": DEFINITION_ID })).await;
    let id = text(&dispatched["executionId"]);
    assert_eq!(decide(a, &id, "manager", "approve").await.result()["recorded"], true);
    let last = decide(b, &id, "legal", "approve").await;
    assert_eq!(last.result()["recorded"], true);

    let view = until_settled(a, &id).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(node_ids(&view), ["manager", "legal", "publish"]);
}

/// Executions whose events two servers on one database deliver to one receiver.
const SHARED_DELIVERY_EXECUTIONS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_deliver_each_event_once_and_in_order() {
    let Some(backing) = Backing::postgres("deliver").await else { return };
    let creds = backing.create_workspace();
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let ca_file = ca.ca_file.display().to_string();
    let flags = ["--webhook-allow", "127.0.0.1", "--webhook-ca-file", ca_file.as_str()];
    let (server_a, server_b) = (backing.serve_with(&flags), backing.serve_with(&flags));
    let (a, b) = (Api::new(&server_a, &creds), Api::new(&server_b, &creds));
    let secret = "shared-delivery-secret";
    let mut definition = example(DEFINITION_ID);
    definition["webhookConfig"] =
        json!({ "url": format!("{}/hook", receiver.url), "secret": secret });
    a.result("definitions/create", definition).await;

    let mut ids = Vec::new();
    for i in 0..SHARED_DELIVERY_EXECUTIONS {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let dispatched =
            first.result("executions/dispatch", json!({ "definitionId": DEFINITION_ID }));
        let id = text(&dispatched.await["executionId"]);
        decide(second, &id, "manager", "approve").await.result();
        decide(first, &id, "legal", "approve").await.result();
        ids.push(id);
    }
    let mut expected: HashMap<String, Vec<i64>> = HashMap::new();
    for id in &ids {
        until_settled(&a, id).await;
        let events = a.result("executions/getEvents", json!({ "executionId": id })).await;
        let seqs = events["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap());
        expected.insert(id.clone(), seqs.collect());
    }
    let total = expected.values().map(Vec::len).sum();
    let received = receiver.wait_for(total).await;
    receiver.assert_quiet(total, Duration::from_millis(500)).await;

    let mut got: HashMap<String, Vec<i64>> = HashMap::new();
    for request in &received {
        assert!(signature_holds(secret, &request.body, request.header("x-velt-signature")));
        let body = request.json();
        got.entry(text(&body["executionId"])).or_default().push(body["seq"].as_i64().unwrap());
    }
    assert_eq!(got, expected, "each event once, in seq order, whichever server sent it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_server_killed_under_load_keeps_what_it_acknowledged() {
    killed_under_load(Backing::sqlite("crash")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_killed_under_load_keeps_what_it_acknowledged() {
    let Some(backing) = Backing::postgres("crash").await else { return };
    killed_under_load(backing).await;
}

/// Loads a server with dispatches and decisions, SIGKILLs it mid-load, starts it again on
/// the same store, and checks that everything it acknowledged is there, once.
async fn killed_under_load(backing: Backing) {
    let started = Instant::now();
    let creds = backing.create_workspace();
    let mut server = backing.serve();
    let api = Api::new(&server, &creds);
    api.result("definitions/create", example(DEFINITION_ID)).await;

    let log = load_then_kill(&api, &mut server).await;

    let server = backing.serve();
    let api = Api::new(&server, &creds);
    acknowledged_dispatches_replay(&api, &log).await;
    let listed = list_executions(&api).await;
    each_acknowledged_key_has_one_execution(&listed, &log);
    acknowledged_decisions_hold(&api, &log).await;
    every_execution_ends_on_its_route(&api, &listed).await;
    eprintln!(
        "{} acknowledged dispatches, {} acknowledged decisions, {} executions; {:?}",
        log.acked.len(),
        log.decisions.len(),
        listed.len(),
        started.elapsed()
    );
}

/// Runs the load until it has `KILL_AFTER_ACKNOWLEDGED` acknowledged dispatches, SIGKILLs
/// the server, and returns what the clients saw.
async fn load_then_kill(api: &Api, server: &mut Server) -> LoadLog {
    let acked_count = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..LOAD_CLIENTS)
        .map(|client| tokio::spawn(load_client(api.clone(), client, acked_count.clone())))
        .collect();
    let load_started = Instant::now();
    while acked_count.load(Ordering::SeqCst) < KILL_AFTER_ACKNOWLEDGED
        && load_started.elapsed() < KILL_WAIT_MAX
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let mut log = LoadLog::default();
    for client in clients {
        log.merge(client.await.expect("a load client ends"));
    }
    let first_anomalies = &log.anomalies[..log.anomalies.len().min(3)];
    assert!(
        log.anomalies.is_empty(),
        "before the kill, {} answers were not successes, first {first_anomalies:?}",
        log.anomalies.len()
    );
    assert_eq!(log.cut_off, LOAD_CLIENTS, "the kill cut every client off mid-load");
    assert!(
        log.acked.len() >= KILL_AFTER_ACKNOWLEDGED,
        "only {} dispatches acknowledged in {KILL_WAIT_MAX:?}",
        log.acked.len()
    );
    log
}

/// What one route through `sequential-signoff` decides, named in each dispatch's key so
/// that every decision ever sent for an execution is known, acknowledged or not.
#[derive(Clone, Copy, Debug)]
enum Route {
    Publish,
    LegalRejects,
    ManagerRejects,
}

const ROUTES: [Route; 3] = [Route::Publish, Route::LegalRejects, Route::ManagerRejects];

impl Route {
    fn tag(self) -> &'static str {
        match self {
            Route::Publish => "publish",
            Route::LegalRejects => "legal-rejects",
            Route::ManagerRejects => "manager-rejects",
        }
    }

    fn of_key(key: &str) -> Route {
        let found = ROUTES.into_iter().find(|r| key.ends_with(&format!("-{}", r.tag())));
        found.unwrap_or_else(|| panic!("key {key} names no route"))
    }

    /// The decision on the human node `node_id`.
    fn decision(self, node_id: &str) -> &'static str {
        match (self, node_id) {
            (Route::ManagerRejects, "manager") | (Route::LegalRejects, "legal") => "reject",
            _ => "approve",
        }
    }

    /// The nodes the definition runs on this route, in order.
    fn nodes(self) -> &'static [&'static str] {
        match self {
            Route::Publish => &["manager", "legal", "publish"],
            Route::LegalRejects => &["manager", "legal", "notify-rejected"],
            Route::ManagerRejects => &["manager", "notify-rejected"],
        }
    }

    fn human_nodes(self) -> impl Iterator<Item = &'static str> {
        self.nodes().iter().copied().filter(|node_id| reviewer_of(node_id).is_some())
    }
}

fn reviewer_of(node_id: &str) -> Option<&'static str> {
    match node_id {
        "manager" => Some("u-manager"),
        "legal" => Some("u-legal"),
        _ => None,
    }
}

struct AckedDispatch {
    key: String,
    execution_id: String,
    correlation_id: String,
}

struct AckedDecision {
    execution_id: String,
    step_id: String,
    decision: &'static str,
}

/// What the load sent, and what the server acknowledged.
#[derive(Default)]
struct LoadLog {
    sent_keys: Vec<String>,
    acked: Vec<AckedDispatch>,
    decisions: Vec<AckedDecision>,
    /// Answers that were not the success they should have been.
    anomalies: Vec<String>,
    /// Clients that stopped because a request got no answer.
    cut_off: usize,
}

impl LoadLog {
    fn merge(&mut self, other: LoadLog) {
        self.sent_keys.extend(other.sent_keys);
        self.acked.extend(other.acked);
        self.decisions.extend(other.decisions);
        self.anomalies.extend(other.anomalies);
        self.cut_off += other.cut_off;
    }
}

/// Dispatches under fresh keys and decides each execution along its route, until a request
/// gets no answer.
async fn load_client(api: Api, client: usize, acked_count: Arc<AtomicUsize>) -> LoadLog {
    let mut log = LoadLog::default();
    let started = Instant::now();
    for n in 0.. {
        if started.elapsed() > LOAD_DEADLINE {
            break;
        }
        let route = ROUTES[n % ROUTES.len()];
        let key = format!("crash-{client}-{n}-{}", route.tag());
        log.sent_keys.push(key.clone());
        let dispatched = dispatch_and_decide(&api, &mut log, key, route, &acked_count).await;
        if dispatched.is_err() {
            log.cut_off += 1;
            break;
        }
    }
    log
}

/// Err only when a request got no HTTP answer.
async fn dispatch_and_decide(
    api: &Api,
    log: &mut LoadLog,
    key: String,
    route: Route,
    acked_count: &AtomicUsize,
) -> Result<(), reqwest::Error> {
    let answer = api.try_call("executions/dispatch", dispatch_body(&key)).await?;
    let result = &answer.body["result"];
    if answer.status != 200 || !result["executionId"].is_string() {
        log.anomalies.push(format!("dispatch {key}: {answer:?}"));
        return Ok(());
    }
    let execution_id = text(&result["executionId"]);
    let correlation_id = text(&result["correlationId"]);
    log.acked.push(AckedDispatch { key, execution_id: execution_id.clone(), correlation_id });
    acked_count.fetch_add(1, Ordering::SeqCst);

    for node_id in route.human_nodes() {
        let view = api.try_call("executions/get", json!({ "executionId": execution_id })).await?;
        let Some(step_id) = waiting_step(&view.body["result"], node_id) else {
            log.anomalies.push(format!("{execution_id} has no waiting {node_id}: {view:?}"));
            return Ok(());
        };
        let decision = route.decision(node_id);
        let body = decision_body(&execution_id, &step_id, node_id, decision);
        let answer = api.try_call("steps/recordReviewerDecision", body).await?;
        if answer.status != 200 || answer.body["result"]["recorded"] != true {
            log.anomalies.push(format!("decision on {step_id}: {answer:?}"));
            return Ok(());
        }
        log.decisions.push(AckedDecision { execution_id: execution_id.clone(), step_id, decision });
    }
    Ok(())
}

/// Every acknowledged key, dispatched again, answers with its original execution.
async fn acknowledged_dispatches_replay(api: &Api, log: &LoadLog) {
    let acked: Vec<(String, String, String)> = log
        .acked
        .iter()
        .map(|a| (a.key.clone(), a.execution_id.clone(), a.correlation_id.clone()))
        .collect();
    in_parallel(api, acked, |api, (key, execution_id, correlation_id)| async move {
        let again = api.result("executions/dispatch", dispatch_body(&key)).await;
        let expected = json!({
            "executionId": execution_id, "correlationId": correlation_id, "deduplicated": true
        });
        assert_eq!(again, expected, "replay of acknowledged key {key}");
    })
    .await;
}

/// No key has two executions, every acknowledged key has its own, and every other
/// execution belongs to a dispatch that was in flight when the server died.
fn each_acknowledged_key_has_one_execution(listed: &[Value], log: &LoadLog) {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for execution in listed {
        let key = text(&execution["idempotencyKey"]);
        by_key.entry(key).or_default().push(text(&execution["executionId"]));
    }
    let duplicated: Vec<_> = by_key.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(duplicated.is_empty(), "keys with several executions: {duplicated:?}");
    for acked in &log.acked {
        let found = by_key.get(&acked.key);
        assert_eq!(found, Some(&vec![acked.execution_id.clone()]), "key {}", acked.key);
    }

    let sent: HashSet<&str> = log.sent_keys.iter().map(String::as_str).collect();
    let unknown: Vec<&String> = by_key.keys().filter(|k| !sent.contains(k.as_str())).collect();
    assert!(unknown.is_empty(), "executions nobody dispatched: {unknown:?}");
    let in_flight = log.sent_keys.len() - log.acked.len();
    let unacknowledged = listed.len() - log.acked.len();
    assert!(
        unacknowledged <= in_flight,
        "{unacknowledged} executions beyond {in_flight} in flight"
    );
}

/// Each acknowledged decision is the decision of its step.
async fn acknowledged_decisions_hold(api: &Api, log: &LoadLog) {
    let decisions: Vec<(String, String, &'static str)> = log
        .decisions
        .iter()
        .map(|d| (d.execution_id.clone(), d.step_id.clone(), d.decision))
        .collect();
    in_parallel(api, decisions, |api, (execution_id, step_id, decision)| async move {
        let view = get(&api, &execution_id).await;
        let steps = view["steps"].as_array().cloned().unwrap_or_default();
        let step = steps.iter().find(|s| s["stepId"] == step_id.as_str());
        let step = step.unwrap_or_else(|| panic!("acknowledged step {step_id} is gone: {view}"));
        assert_eq!(step["status"], "completed", "{step}");
        assert_eq!(step["output"]["decision"], decision, "acknowledged decision on {step_id}");
    })
    .await;
}

/// Decides whatever still waits, then checks that each execution ran its route's nodes and
/// completed.
async fn every_execution_ends_on_its_route(api: &Api, listed: &[Value]) {
    let executions: Vec<(String, String)> =
        listed.iter().map(|e| (text(&e["executionId"]), text(&e["idempotencyKey"]))).collect();
    in_parallel(api, executions, |api, (execution_id, key)| async move {
        let route = Route::of_key(&key);
        for node_id in route.human_nodes() {
            let view = get(&api, &execution_id).await;
            if waiting_step(&view, node_id).is_some() {
                let answer = decide(&api, &execution_id, node_id, route.decision(node_id)).await;
                assert_eq!(answer.result()["recorded"], true, "{execution_id} at {node_id}");
            }
        }
        let view = until_settled(&api, &execution_id).await;
        assert_eq!(view["status"], "completed", "{key}: {view}");
        assert_eq!(node_ids(&view), route.nodes(), "{key}: {view}");
        let open =
            view["steps"].as_array().into_iter().flatten().filter(|s| s["status"] != "completed");
        let open: Vec<&Value> = open.collect();
        assert!(open.is_empty(), "{key}: steps not completed: {open:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_starts_racing_on_one_postgres_database_make_one_workspace() {
    let Some(backing) = Backing::postgres("bootstrap").await else { return };
    let dirs: Vec<TempDir> = (0..RACING_STARTS).map(|_| TempDir::new("bootstrap")).collect();
    let mut servers: Vec<Server> = dirs
        .iter()
        .map(|dir| {
            let mut cmd = backing.assent_in(&dir.0);
            cmd.args(["serve", "--listen", "127.0.0.1:0"]);
            Server::spawn(cmd)
        })
        .collect();
    servers.iter_mut().for_each(Server::wait_listening);

    let files: Vec<String> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_to_string(dir.0.join("initial-credentials.json")).ok())
        .collect();
    assert_eq!(files.len(), 1, "one credentials file among the data directories: {files:?}");
    let creds: Value = serde_json::from_str(&files[0]).expect("the credentials file is JSON");
    for server in &servers {
        Api::new(server, &creds).result("executions/list", json!({})).await;
    }

    let mut printed = Vec::new();
    for server in &mut servers {
        let (clean, stdout) = server.terminate();
        assert!(clean, "SIGTERM ends the process with success");
        printed.extend(Some(stdout.trim().to_owned()).filter(|out| !out.is_empty()));
    }
    assert_eq!(printed, [files[0].trim()], "exactly one process prints the credentials");
    let workspaces = json_output(backing.assent().args(["workspace", "list"]));
    let ids: Vec<&Value> =
        workspaces.as_array().into_iter().flatten().map(|w| &w["workspaceId"]).collect();
    assert_eq!(ids, [&creds["workspaceId"]], "one workspace: {workspaces}");
}

/// Where a test's processes keep their data: SQLite in a temp directory, or a PostgreSQL
/// database of the test's own.
struct Backing {
    dir: TempDir,
    database: Option<Database>,
}

impl Backing {
    fn sqlite(tag: &str) -> Backing {
        Backing { dir: TempDir::new(tag), database: None }
    }

    /// A fresh database on the server `ASSENT_TEST_POSTGRES_URL` names; `None` (after saying
    /// so) when it is not set.
    async fn postgres(tag: &str) -> Option<Backing> {
        let Ok(server_url) = std::env::var("ASSENT_TEST_POSTGRES_URL") else {
            eprintln!("skipped: ASSENT_TEST_POSTGRES_URL is not set");
            return None;
        };
        let database = Database::create(&server_url).await;
        Some(Backing { dir: TempDir::new(tag), database: Some(database) })
    }

    /// The `assent` command on this store, with its own data directory.
    fn assent(&self) -> Command {
        self.assent_in(&self.dir.0)
    }

    fn assent_in(&self, data_dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_assent"));
        cmd.env_remove("ASSENT_DATABASE_URL").env("ASSENT_DATA_DIR", data_dir);
        cmd.env("RUST_LOG", "info");
        if let Some(database) = &self.database {
            cmd.args(["--database-url", &database.url]);
        }
        cmd
    }

    /// A workspace made with `assent workspace create`: its printed credentials.
    fn create_workspace(&self) -> Value {
        json_output(self.assent().args(["workspace", "create", "--name", "procs"]))
    }

    /// `assent serve --no-bootstrap` on this store, listening.
    fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// `serve` with more options.
    fn serve_with(&self, flags: &[&str]) -> Server {
        let mut cmd = self.assent();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap"]).args(flags);
        let mut server = Server::spawn(cmd);
        server.wait_listening();
        server
    }
}

/// An `assent serve` child process, killed when the guard goes.
struct Server {
    child: Child,
    listen: mpsc::Receiver<Result<String, String>>,
    base_url: String,
}

impl Server {
    fn spawn(mut cmd: Command) -> Server {
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("assent serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, listen) = mpsc::channel();
        std::thread::spawn(move || report_listen_address(stderr, sender));
        Server { child, listen, base_url: String::new() }
    }

    /// Waits for the `listen=` log line.
    fn wait_listening(&mut self) {
        let addr = match self.listen.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => addr,
            Ok(Err(log)) => panic!("assent serve ended before listening:\n{log}"),
            Err(_) => panic!("assent serve did not listen within {START_TIMEOUT:?}"),
        };
        self.base_url = format!("http://{addr}");
    }

    /// SIGKILL: no shutdown, no flush, nothing in flight finished.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL is sent");
        self.child.wait().expect("the killed server is reaped");
    }

    /// SIGTERM; whether the process ended with success, and what it printed on stdout.
    fn terminate(&mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM is sent to {pid}");
        let status = self.child.wait().expect("the server is reaped");
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).expect("stdout is read");
        }
        (status.success(), stdout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the address of the `listen=` log line (or, if the process ends first, its log),
/// then keeps draining stderr so that the server never blocks on a full pipe, echoing it
/// into the test's captured output (shown when the test fails).
fn report_listen_address(stderr: ChildStderr, sender: mpsc::Sender<Result<String, String>>) {
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.split("listen=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
            let _ = sender.send(Ok(addr));
            lines.map_while(Result::ok).for_each(|line| eprintln!("server: {line}"));
            return;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = sender.send(Err(seen));
}

/// A client of one server with one workspace's credentials.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    auth_token: String,
}

impl Api {
    fn new(server: &Server, creds: &Value) -> Api {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build();
        Api {
            http: http.expect("an HTTP client"),
            base_url: server.base_url.clone(),
            api_key: text(&creds["apiKey"]),
            auth_token: text(&creds["authToken"]),
        }
    }

    /// POSTs `{"data": data}` to `/v2/workflow/<path>`; Err when no HTTP answer came back.
    async fn try_call(&self, path: &str, data: Value) -> Result<Answer, reqwest::Error> {
        let response = self
            .http
            .post(format!("{}/v2/workflow/{path}", self.base_url))
            .header("x-velt-api-key", &self.api_key)
            .header("x-velt-auth-token", &self.auth_token)
            .header("content-type", "application/json")
            .body(json!({ "data": data }).to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    async fn call(&self, path: &str, data: Value) -> Answer {
        let answer = self.try_call(path, data).await;
        answer.unwrap_or_else(|e| panic!("{path}: no answer from {}: {e}", self.base_url))
    }

    /// The `result` of a call that must succeed.
    async fn result(&self, path: &str, data: Value) -> Value {
        self.call(path, data).await.result().clone()
    }
}

/// Runs `check` on every item, `LOAD_CLIENTS` at a time; a failed check fails the test.
async fn in_parallel<T, F, Fut>(api: &Api, items: Vec<T>, check: F)
where
    T: Send + 'static,
    F: Fn(Api, T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let chunk_len = items.len().div_ceil(LOAD_CLIENTS).max(1);
    let mut items = items.into_iter();
    let mut tasks = Vec::new();
    loop {
        let chunk: Vec<T> = items.by_ref().take(chunk_len).collect();
        if chunk.is_empty() {
            break;
        }
        let (api, check) = (api.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            for item in chunk {
                check(api.clone(), item).await;
            }
        }));
    }
    for task in tasks {
        if let Err(failure) = task.await {
            std::panic::resume_unwind(failure.into_panic());
        }
    }
}

fn dispatch_body(key: &str) -> Value {
    json!({ "definitionId": DEFINITION_ID, "idempotencyKey": key })
}

fn decision_body(execution_id: &str, step_id: &str, node_id: &str, decision: &str) -> Value {
    json!({
        "executionId": execution_id,
        "stepId": step_id,
        "reviewerId": reviewer_of(node_id),
        "decision": decision,
    })
}

async fn get(api: &Api, execution_id: &str) -> Value {
    api.result("executions/get", json!({ "executionId": execution_id })).await
}

/// Sends the reviewer's decision on the waiting step of `node_id`.
async fn decide(api: &Api, execution_id: &str, node_id: &str, decision: &str) -> Answer {
    let view = get(api, execution_id).await;
    let step_id = waiting_step(&view, node_id)
        .unwrap_or_else(|| panic!("no waiting {node_id} step in {view}"));
    let body = decision_body(execution_id, &step_id, node_id, decision);
    api.call("steps/recordReviewerDecision", body).await
}

/// Polls, in real time and briefly, until the execution is no longer `running`.
async fn until_settled(api: &Api, execution_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let view = get(api, execution_id).await;
        if view["status"] != "running" || started.elapsed() > SETTLE_TIMEOUT {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// All executions of the workspace, page by page.
async fn list_executions(api: &Api) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut query = json!({ "pageSize": 500 });
        if !cursor.is_null() {
            query["cursor"] = cursor;
        }
        let page = api.result("executions/list", query).await;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            return items;
        }
    }
}

fn waiting_step(view: &Value, node_id: &str) -> Option<String> {
    let steps = view["steps"].as_array()?;
    let waiting = steps.iter().find(|s| s["nodeId"] == node_id && s["status"] == "waiting");
    waiting.map(|s| text(&s["stepId"]))
}

fn node_ids(view: &Value) -> Vec<String> {
    view["steps"].as_array().into_iter().flatten().map(|s| text(&s["nodeId"])).collect()
}

/// A string field that must be there.
fn text(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("expected a string, got {value}")).to_owned()
}

fn json_output(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("assent runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "assent failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON value")
}
