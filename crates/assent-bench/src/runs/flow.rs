//! Runs of the approval flow: whole flows (dispatch, a `__mock__` agent step, a human step
//! decided over HTTP, completion, and the `execution.completed` webhook received and
//! verified), and the latency of one decision on an idle server.

use super::{
    check, create_definition, create_watched_definition, drive, human_node, list_all, mock_node,
    reject_route, report, Done, Plan, REVIEWER,
};
use crate::client::{text, Api};
use crate::error::BenchError;
use crate::receiver::{Arrival, Receiver};
use crate::report::{Latencies, RunReport};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a flow may wait, after its decision, for its `execution.completed` webhook.
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long decided executions may take to be listed as completed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two listings while they settle.
const SETTLE_PAUSE: Duration = Duration::from_millis(50);
/// Where the flow definition's webhooks go on the receiver.
const FLOW_PATH: &str = "/flow";
/// The one event type the flow definition subscribes to.
const COMPLETED: &str = "execution.completed";

pub async fn whole_flows(
    api: &Api,
    receiver: &Arc<Receiver>,
    plan: Plan,
    store: &'static str,
) -> Result<RunReport, BenchError> {
    const DEFINITION: &str = "bench-flow";
    let (rejected, reject_edge) = reject_route();
    let nodes = json!([mock_node("check"), human_node("review"), rejected]);
    let edges = json!([{ "from": "check", "to": "review", "on": "always" }, reject_edge]);
    let url = format!("{}{FLOW_PATH}", receiver.base_url);
    create_watched_definition(api, DEFINITION, nodes, edges, url, Some(&[COMPLETED])).await?;

    let (api_, receiver_) = (api.clone(), receiver.clone());
    let driven = drive(plan.connections, plan.duration, move |worker, n| {
        let (api, receiver) = (api_.clone(), receiver_.clone());
        async move { one_flow(&api, &receiver, DEFINITION, format!("f-{worker}-{n}")).await }
    })
    .await?;
    let (report, flows) = report("flow", store, plan.connections, driven);

    let listed = list_all(api, DEFINITION, None).await?.len();
    let completed = list_all(api, DEFINITION, Some("completed")).await?.len();
    check(listed == flows.len() && completed == flows.len(), || {
        format!("{} flows finished; {listed} executions listed, {completed} completed", flows.len())
    })?;
    one_completed_webhook_each(&flows, &receiver.take(FLOW_PATH))?;
    Ok(report)
}

/// Dispatch, find the waiting human step, approve it, and wait until the receiver has
/// verified the execution's `execution.completed` webhook; returns the requests it took.
async fn one_flow(
    api: &Api,
    receiver: &Receiver,
    definition_id: &str,
    key: String,
) -> Result<Done<String>, BenchError> {
    let body = json!({ "definitionId": definition_id, "idempotencyKey": key });
    let dispatched = api.call("executions/dispatch", body).await?;
    let execution_id = text(&dispatched, "executionId", "executions/dispatch")?;
    let step_id = waiting_review(&get(api, &execution_id).await?)?;
    let completed = receiver.completed(&execution_id);
    decide(api, &execution_id, &step_id).await?;

    let arrived = tokio::time::timeout(COMPLETION_TIMEOUT, completed).await;
    check(matches!(arrived, Ok(Ok(()))), || {
        let unverified = receiver.unverified();
        format!(
            "no verified {COMPLETED} webhook of {execution_id} within {COMPLETION_TIMEOUT:?} \
             of its approval ({unverified} deliveries failed verification so far)"
        )
    })?;
    Ok(Done { requests: 3, item: execution_id })
}

/// Each flow's execution sent exactly one webhook, its `execution.completed`, verified and
/// on the first attempt; nothing else arrived.
fn one_completed_webhook_each(flows: &[String], arrivals: &[Arrival]) -> Result<(), BenchError> {
    let mut per_execution: HashMap<&str, Vec<&Arrival>> =
        flows.iter().map(|id| (id.as_str(), Vec::new())).collect();
    for arrival in arrivals {
        check(arrival.verified, || {
            format!(
                "a flow webhook failed verification: {} of {}",
                arrival.event_id, arrival.execution_id
            )
        })?;
        match per_execution.get_mut(arrival.execution_id.as_str()) {
            Some(seen) => seen.push(arrival),
            None => {
                return Err(BenchError::Violation(format!(
                    "a flow webhook of an execution no flow ran: {}",
                    arrival.execution_id
                )))
            }
        }
    }
    for (execution_id, seen) in per_execution {
        let once = match seen.as_slice() {
            [only] => only.event_type == COMPLETED && only.attempt == Some(0),
            _ => false,
        };
        check(once, || {
            let seen: Vec<_> =
                seen.iter().map(|a| format!("{} attempt {:?}", a.event_type, a.attempt)).collect();
            format!("{execution_id}: expected one {COMPLETED} at attempt 0, received {seen:?}")
        })?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(execution_id: &str, event_type: &str, attempt: u32, verified: bool) -> Arrival {
        Arrival {
            path: FLOW_PATH.into(),
            execution_id: execution_id.into(),
            event_id: format!("evt_{execution_id}_9"),
            event_type: event_type.into(),
            attempt: Some(attempt),
            verified,
            latency: Duration::from_millis(1),
        }
    }

    #[test]
    fn each_flow_needs_exactly_one_verified_completed_webhook() {
        let flows = vec!["x".to_owned(), "y".to_owned()];
        let good = || vec![arrival("x", COMPLETED, 0, true), arrival("y", COMPLETED, 0, true)];
        assert!(one_completed_webhook_each(&flows, &good()).is_ok());

        let mut duplicated = good();
        duplicated.push(arrival("y", COMPLETED, 1, true));
        let mut unsigned = good();
        unsigned[0] = arrival("x", COMPLETED, 0, false);
        let mut retried = good();
        retried[0] = arrival("x", COMPLETED, 1, true);
        let mut other_type = good();
        other_type[1] = arrival("y", "step.completed", 0, true);
        let missing = vec![arrival("x", COMPLETED, 0, true)];
        let mut stranger = good();
        stranger.push(arrival("z", COMPLETED, 0, true));
        for (name, arrivals) in [
            ("duplicated", duplicated),
            ("unsigned", unsigned),
            ("retried", retried),
            ("other type", other_type),
            ("missing", missing),
            ("stranger", stranger),
        ] {
            let outcome = one_completed_webhook_each(&flows, &arrivals);
            assert!(outcome.is_err_and(|e| e.is_violation()), "{name} passed");
        }
    }
}
