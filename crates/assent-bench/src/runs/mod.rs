//! The runs, what they share (the load driver, definitions, listing), and the plan that
//! sizes them.

mod deadlines;
mod dispatch;
mod flow;
mod parked;
mod rate;
mod scale;
mod webhooks;

use crate::client::Api;
use crate::error::BenchError;
use crate::receiver::{Receiver, SECRET};
use crate::report::{Latencies, RunReport};
use crate::server::Backing;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The runs, in the order they run.
pub const RUNS: [&str; 8] = [
    "dispatch",
    "replay",
    "race",
    "flow",
    "webhook-rate",
    "decision-latency",
    "parked",
    "deadlines",
];

/// How big each run is.
#[derive(Clone, Copy)]
pub struct Plan {
    pub connections: usize,
    pub duration: Duration,
    /// Keys dispatched before the replay run replays them.
    pub replay_keys: usize,
    /// Executions dispatched before the decision-latency run decides them.
    pub parked_executions: usize,
    /// Executions the parked run parks in a store of its own.
    pub parked_run_size: usize,
    /// Dispatches per second of the parked run's fixed-rate leg; by default half the
    /// maximum it measured.
    pub dispatch_rate: Option<f64>,
    /// SLA deadlines spread evenly over `deadline_window`.
    pub deadlines_spread: usize,
    /// SLA deadlines due within one second in the middle of that window.
    pub deadlines_burst: usize,
    pub deadline_window: Duration,
}

/// Connections that race one idempotency key.
pub const RACE_CONNECTIONS: usize = 100;
/// Executions `executions/list` returns per page (its maximum).
const LIST_PAGE_SIZE: usize = 500;
/// Pages a listing may take before the bench gives up on it.
const LIST_PAGES_MAX: usize = 10_000;

/// Does one run; most print one row, the parked and deadlines runs several.
pub async fn run(
    name: &str,
    api: &Api,
    receiver: &Arc<Receiver>,
    plan: Plan,
    backing: &Backing,
) -> Result<Vec<RunReport>, BenchError> {
    let store = backing.store_name();
    match name {
        "parked" => parked::parked(plan, backing).await,
        "deadlines" => deadlines::deadlines(api, plan, store).await,
        _ => one_row(name, api, receiver, plan, store).await.map(|report| vec![report]),
    }
}

async fn one_row(
    name: &str,
    api: &Api,
    receiver: &Arc<Receiver>,
    plan: Plan,
    store: &'static str,
) -> Result<RunReport, BenchError> {
    match name {
        "dispatch" => dispatch::unique_keys(api, plan, store).await,
        "replay" => dispatch::replays(api, plan, store).await,
        "race" => dispatch::race(api, plan, store).await,
        "flow" => flow::whole_flows(api, receiver, plan, store).await,
        "webhook-rate" => webhooks::delivery_rate(api, receiver, plan, store).await,
        "decision-latency" => flow::decision_latency(api, plan, store).await,
        other => Err(BenchError::Server(format!("unknown run {other}"))),
    }
}

/// What one operation of a worker saw: how many requests it sent, and what to check after.
pub struct Done<T> {
    pub requests: u64,
    pub item: T,
}

/// What a driven load produced.
pub struct Driven<T> {
    pub latencies: Latencies,
    pub requests: u64,
    pub items: Vec<T>,
    /// From the start until the last operation in flight ended.
    pub elapsed: Duration,
}

/// Runs `connections` workers, each repeating `operation(worker, n)` until `duration` has
/// passed; the operation in flight at the deadline finishes. The first error ends the run.
pub async fn drive<T, F, Fut>(
    connections: usize,
    duration: Duration,
    operation: F,
) -> Result<Driven<T>, BenchError>
where
    T: Send + 'static,
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Done<T>, BenchError>> + Send,
{
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut driven = Driven {
                    latencies: Latencies::default(),
                    requests: 0,
                    items: Vec::new(),
                    elapsed: Duration::ZERO,
                };
                for n in 0.. {
                    if started.elapsed() >= duration {
                        break;
                    }
                    let sent = Instant::now();
                    let done = operation(worker, n).await?;
                    driven.latencies.push(sent.elapsed());
                    driven.requests += done.requests;
                    driven.items.push(done.item);
                }
                Ok::<_, BenchError>(driven)
            })
        })
        .collect();
    let mut all = Driven {
        latencies: Latencies::default(),
        requests: 0,
        items: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let driven =
            worker.await.map_err(|e| BenchError::Server(format!("a worker panicked: {e}")))??;
        all.latencies.extend(driven.latencies);
        all.requests += driven.requests;
        all.items.extend(driven.items);
    }
    all.elapsed = started.elapsed();
    Ok(all)
}

/// Creates a definition of these nodes and edges under `definition_id`.
pub async fn create_definition(
    api: &Api,
    definition_id: &str,
    nodes: Value,
    edges: Value,
) -> Result<(), BenchError> {
    let body = json!({ "definitionId": definition_id, "name": definition_id,
                       "nodes": nodes, "edges": edges });
    api.call("definitions/create", body).await.map(drop)
}

/// Creates a definition whose events go to the receiver's `path` (only the `event_types`
/// given, when there are some).
pub async fn create_watched_definition(
    api: &Api,
    definition_id: &str,
    nodes: Value,
    edges: Value,
    receiver_url: String,
    event_types: Option<&[&str]>,
) -> Result<(), BenchError> {
    let mut webhook = json!({ "url": receiver_url, "secret": SECRET });
    if let Some(types) = event_types {
        webhook["eventTypes"] = json!(types);
    }
    let body = json!({ "definitionId": definition_id, "name": definition_id,
                       "nodes": nodes, "edges": edges, "webhookConfig": webhook });
    api.call("definitions/create", body).await.map(drop)
}

/// A human node with one mandatory reviewer, `REVIEWER`.
pub fn human_node(node_id: &str) -> Value {
    json!({ "nodeId": node_id, "type": "human",
            "config": { "reviewers": [{ "userId": REVIEWER, "mandatory": true }] } })
}

pub const REVIEWER: &str = "u-bench";

/// A `__mock__` agent node: it completes at once with an approval.
pub fn mock_node(node_id: &str) -> Value {
    json!({ "nodeId": node_id, "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/doc" } })
}

/// The reject route every human node needs: `review` to a `rejected` mock node.
pub fn reject_route() -> (Value, Value) {
    (mock_node("rejected"), json!({ "from": "review", "to": "rejected", "on": "reject" }))
}

/// Every execution of `definition_id` (in `status`, when given), all pages.
pub async fn list_all(
    api: &Api,
    definition_id: &str,
    status: Option<&str>,
) -> Result<Vec<Value>, BenchError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..LIST_PAGES_MAX {
        let mut body = json!({ "definitionId": definition_id, "pageSize": LIST_PAGE_SIZE });
        if let Some(status) = status {
            body["status"] = json!(status);
        }
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let page = api.call("executions/list", body).await?;
        items.extend(page["items"].as_array().into_iter().flatten().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
    Err(BenchError::Violation(format!("{definition_id} lists more than {LIST_PAGES_MAX} pages")))
}

/// Fails with `message` unless `holds`.
pub fn check(holds: bool, message: impl FnOnce() -> String) -> Result<(), BenchError> {
    if holds {
        Ok(())
    } else {
        Err(BenchError::Violation(message()))
    }
}

pub fn report<T>(
    run: &'static str,
    store: &'static str,
    connections: usize,
    driven: Driven<T>,
) -> (RunReport, Vec<T>) {
    let report =
        RunReport::new(run, store, connections, driven.requests, driven.elapsed, driven.latencies);
    (report, driven.items)
}
