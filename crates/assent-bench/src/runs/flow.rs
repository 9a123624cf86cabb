//! Runs of the approval flow: whole flows (dispatch, a `__mock__` agent step, a human step
//! decided over HTTP, completion), and the latency of one decision on an idle server.

use super::{
    check, create_definition, drive, human_node, list_all, mock_node, reject_route, report, Done,
    Plan, REVIEWER,
};
use crate::client::{text, Api};
use crate::error::BenchError;
use crate::report::{Latencies, RunReport};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Polls of `executions/get` a flow may take to see its execution completed.
const COMPLETION_POLLS_MAX: u32 = 5_000;
/// The pause between two of those polls.
const COMPLETION_POLL_PAUSE: Duration = Duration::from_millis(1);
/// How long decided executions may take to be listed as completed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two listings while they settle.
const SETTLE_PAUSE: Duration = Duration::from_millis(50);

pub const WEBHOOK_NOTE: &str =
    "the execution.completed webhook leg of issue 6 is not measured: webhooks do not exist yet";

pub async fn whole_flows(
    api: &Api,
    plan: Plan,
    store: &'static str,
) -> Result<RunReport, BenchError> {
    const DEFINITION: &str = "bench-flow";
    let (rejected, reject_edge) = reject_route();
    let nodes = json!([mock_node("check"), human_node("review"), rejected]);
    let edges = json!([{ "from": "check", "to": "review", "on": "always" }, reject_edge]);
    create_definition(api, DEFINITION, nodes, edges).await?;

    let api_ = api.clone();
    let driven = drive(plan.connections, plan.duration, move |worker, n| {
        let api = api_.clone();
        async move { one_flow(&api, DEFINITION, format!("f-{worker}-{n}")).await }
    })
    .await?;
    let (mut report, flows) = report("flow", store, plan.connections, driven);
    report.note = Some(WEBHOOK_NOTE);

    let listed = list_all(api, DEFINITION, None).await?.len();
    let completed = list_all(api, DEFINITION, Some("completed")).await?.len();
    check(listed == flows.len() && completed == flows.len(), || {
        format!("{} flows finished; {listed} executions listed, {completed} completed", flows.len())
    })?;
    Ok(report)
}

/// Dispatch, find the waiting human step, approve it, and poll until the execution is
/// completed; returns the requests it took.
async fn one_flow(api: &Api, definition_id: &str, key: String) -> Result<Done<String>, BenchError> {
    let body = json!({ "definitionId": definition_id, "idempotencyKey": key });
    let dispatched = api.call("executions/dispatch", body).await?;
    let execution_id = text(&dispatched, "executionId", "executions/dispatch")?;
    let step_id = waiting_review(&get(api, &execution_id).await?)?;
    decide(api, &execution_id, &step_id).await?;

    let mut requests = 4;
    let mut view = get(api, &execution_id).await?;
    while view["status"] != "completed" {
        check(view["status"] == "running" && requests < COMPLETION_POLLS_MAX as u64, || {
            format!("{execution_id} did not complete after its approval: {view}")
        })?;
        tokio::time::sleep(COMPLETION_POLL_PAUSE).await;
        view = get(api, &execution_id).await?;
        requests += 1;
    }
    Ok(Done { requests, item: execution_id })
}

pub(super) async fn get(api: &Api, execution_id: &str) -> Result<Value, BenchError> {
    api.call("executions/get", json!({ "executionId": execution_id })).await
}

/// The id of the execution's waiting `review` step.
pub(super) fn waiting_review(view: &Value) -> Result<String, BenchError> {
    let steps = view["steps"].as_array().into_iter().flatten();
    let mut waiting = steps.filter(|s| s["nodeId"] == "review" && s["status"] == "waiting");
    match (waiting.next(), waiting.next()) {
        (Some(step), None) => text(step, "stepId", "executions/get"),
        _ => Err(BenchError::Violation(format!("not one waiting review step: {view}"))),
    }
}

/// Approves the step; the answer must say the decision was recorded.
pub(super) async fn decide(api: &Api, execution_id: &str, step_id: &str) -> Result<(), BenchError> {
    let body = json!({ "executionId": execution_id, "stepId": step_id,
                       "reviewerId": REVIEWER, "decision": "approve" });
    let answer = api.call("steps/recordReviewerDecision", body).await?;
    check(answer["recorded"] == true, || {
        format!("a decision on {step_id} was not recorded: {answer}")
    })
}

/// One connection decides the waiting steps of parked executions one at a time.
pub async fn decision_latency(
    api: &Api,
    plan: Plan,
    store: &'static str,
) -> Result<RunReport, BenchError> {
    const DEFINITION: &str = "bench-decide";
    let (rejected, reject_edge) = reject_route();
    let nodes = json!([human_node("review"), rejected]);
    create_definition(api, DEFINITION, nodes, json!([reject_edge])).await?;
    let parked = park(api, DEFINITION, plan.parked_executions, plan.connections).await?;

    let started = Instant::now();
    let mut latencies = Latencies::default();
    for (execution_id, step_id) in &parked {
        if started.elapsed() >= plan.duration {
            break;
        }
        let sent = Instant::now();
        decide(api, execution_id, step_id).await?;
        latencies.push(sent.elapsed());
    }
    let (elapsed, decided) = (started.elapsed(), latencies.len());
    let report = RunReport::new("decision-latency", store, 1, decided as u64, elapsed, latencies);

    decided_ones_complete(api, DEFINITION, decided, parked.len()).await?;
    Ok(report)
}

/// Dispatches `count` executions on `connections` workers; returns each with its waiting
/// step.
async fn park(
    api: &Api,
    definition_id: &'static str,
    count: usize,
    connections: usize,
) -> Result<Vec<(String, String)>, BenchError> {
    let per_worker = count.div_ceil(connections.max(1));
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let api = api.clone();
            let mine = per_worker.min(count.saturating_sub(worker * per_worker));
            tokio::spawn(async move {
                let mut parked = Vec::with_capacity(mine);
                for n in 0..mine {
                    let key = format!("p-{worker}-{n}");
                    let body = json!({ "definitionId": definition_id, "idempotencyKey": key });
                    let dispatched = api.call("executions/dispatch", body).await?;
                    let execution_id = text(&dispatched, "executionId", "executions/dispatch")?;
                    let step_id = waiting_review(&get(&api, &execution_id).await?)?;
                    parked.push((execution_id, step_id));
                }
                Ok::<_, BenchError>(parked)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for worker in workers {
        all.extend(
            worker.await.map_err(|e| BenchError::Server(format!("a worker panicked: {e}")))??,
        );
    }
    Ok(all)
}

/// Every decided execution reaches completed, and every other one still waits.
async fn decided_ones_complete(
    api: &Api,
    definition_id: &str,
    decided: usize,
    parked: usize,
) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let completed = list_all(api, definition_id, Some("completed")).await?.len();
        let running = list_all(api, definition_id, Some("running")).await?.len();
        let settled = completed == decided && running == parked - decided;
        if settled {
            return Ok(());
        }
        check(completed <= decided && started.elapsed() < SETTLE_TIMEOUT, || {
            format!("{decided} of {parked} decided; {completed} completed, {running} running")
        })?;
        tokio::time::sleep(SETTLE_PAUSE).await;
    }
}
