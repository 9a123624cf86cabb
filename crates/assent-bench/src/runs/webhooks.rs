//! The webhook delivery rate: executions of a definition whose every event goes to the
//! receiver. Each worker dispatches an execution and waits until the receiver has verified
//! its last event, `execution.completed`, then dispatches the next.

use super::{check, create_watched_definition, drive, mock_node, Done, Plan};
use crate::client::{text, Api};
use crate::error::BenchError;
use crate::receiver::{Arrival, Receiver};
use crate::report::{Latencies, RunReport};
use crate::runs::flow::COMPLETION_TIMEOUT;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const DEFINITION: &str = "bench-webhooks";
/// Where the definition's webhooks go on the receiver.
const RATE_PATH: &str = "/rate";
/// `__mock__` agent nodes in a chain: an execution completes at its dispatch, with one
/// `step.completed` per node between `execution.dispatched` and `execution.completed`.
const CHAIN_NODES: usize = 8;
/// Events one execution sends, in `seq` order.
const EVENTS_PER_EXECUTION: usize = CHAIN_NODES + 2;
/// Events `executions/getEvents` returns per page (its maximum).
const EVENTS_PAGE_SIZE: u64 = 500;
/// Pages of one execution's events the check reads at most.
const EVENT_PAGES_MAX: usize = 100;

const RATE_NOTE: &str = "ops are deliveries received; latency is from the event's timestamp \
     (whole ms) to its receipt; requests are dispatches";

pub async fn delivery_rate(
    api: &Api,
    receiver: &Arc<Receiver>,
    plan: Plan,
    store: &'static str,
) -> Result<RunReport, BenchError> {
    let nodes: Vec<Value> = (0..CHAIN_NODES).map(|at| mock_node(&format!("a{at}"))).collect();
    let edges: Vec<Value> = (1..CHAIN_NODES)
        .map(|at| json!({ "from": format!("a{}", at - 1), "to": format!("a{at}"), "on": "always" }))
        .collect();
    let url = format!("{}{RATE_PATH}", receiver.base_url);
    create_watched_definition(api, DEFINITION, json!(nodes), json!(edges), url, None).await?;

    let (api_, receiver_) = (api.clone(), receiver.clone());
    let driven = drive(plan.connections, plan.duration, move |worker, n| {
        let (api, receiver) = (api_.clone(), receiver_.clone());
        async move { one_execution(&api, &receiver, format!("w-{worker}-{n}")).await }
    })
    .await?;
    let arrivals = receiver.take(RATE_PATH);
    let mut latencies = Latencies::default();
    for arrival in &arrivals {
        latencies.push(arrival.latency);
    }
    let mut report = RunReport::new(
        "webhook-rate",
        store,
        plan.connections,
        driven.requests,
        driven.elapsed,
        latencies,
    );
    report.note = Some(RATE_NOTE);

    every_event_once_in_order(api, &driven.items, &arrivals, plan.connections).await?;
    Ok(report)
}

/// Dispatches one execution and waits for its `execution.completed` at the receiver, which
/// comes after every other event of it.
async fn one_execution(
    api: &Api,
    receiver: &Receiver,
    key: String,
) -> Result<Done<String>, BenchError> {
    let body = json!({ "definitionId": DEFINITION, "idempotencyKey": key });
    let dispatched = api.call("executions/dispatch", body).await?;
    let execution_id = text(&dispatched, "executionId", "executions/dispatch")?;
    let completed = receiver.completed(&execution_id);
    let arrived = tokio::time::timeout(COMPLETION_TIMEOUT, completed).await;
    check(matches!(arrived, Ok(Ok(()))), || {
        let unverified = receiver.unverified();
        format!(
            "no verified execution.completed webhook of {execution_id} within \
             {COMPLETION_TIMEOUT:?} ({unverified} deliveries failed verification so far)"
        )
    })?;
    Ok(Done { requests: 1, item: execution_id })
}

/// Every event `getEvents` lists for each execution arrived once, verified, on its first
/// attempt, and in `seq` order; nothing arrived for another execution.
async fn every_event_once_in_order(
    api: &Api,
    executions: &[String],
    arrivals: &[Arrival],
    connections: usize,
) -> Result<(), BenchError> {
    let listed = events_of(api, executions, connections).await?;
    arrivals_match_events(executions, arrivals, &listed)
}

/// The check of [`every_event_once_in_order`], given each execution's listed event ids.
fn arrivals_match_events(
    executions: &[String],
    arrivals: &[Arrival],
    listed: &HashMap<String, Vec<String>>,
) -> Result<(), BenchError> {
    let mut received: HashMap<&str, Vec<&str>> = executions
        .iter()
        .map(|id| (id.as_str(), Vec::with_capacity(EVENTS_PER_EXECUTION)))
        .collect();
    for arrival in arrivals {
        check(arrival.verified && arrival.attempt == Some(0), || {
            format!(
                "{} arrived with attempt {:?}, verified: {}",
                arrival.event_id, arrival.attempt, arrival.verified
            )
        })?;
        let Some(events) = received.get_mut(arrival.execution_id.as_str()) else {
            return Err(BenchError::Violation(format!(
                "a webhook of an execution this run did not dispatch: {}",
                arrival.event_id
            )));
        };
        events.push(&arrival.event_id);
    }

    for (execution_id, events) in received {
        let expected = listed.get(execution_id).map(Vec::as_slice).unwrap_or_default();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        check(events == expected && expected.len() == EVENTS_PER_EXECUTION, || {
            format!("{execution_id}: getEvents lists {expected:?}, the receiver got {events:?}")
        })?;
    }
    Ok(())
}

/// The event ids of each execution in `seq` order, read with `connections` workers.
async fn events_of(
    api: &Api,
    executions: &[String],
    connections: usize,
) -> Result<HashMap<String, Vec<String>>, BenchError> {
    let per_worker = executions.len().div_ceil(connections.max(1)).max(1);
    let workers: Vec<_> = executions
        .chunks(per_worker)
        .map(|chunk| {
            let (api, chunk) = (api.clone(), chunk.to_vec());
            tokio::spawn(async move {
                let mut listed = Vec::with_capacity(chunk.len());
                for execution_id in chunk {
                    let events = event_ids(&api, &execution_id).await?;
                    listed.push((execution_id, events));
                }
                Ok::<_, BenchError>(listed)
            })
        })
        .collect();
    let mut all = HashMap::with_capacity(executions.len());
    for worker in workers {
        let listed =
            worker.await.map_err(|e| BenchError::Server(format!("a worker panicked: {e}")))??;
        all.extend(listed);
    }
    Ok(all)
}

/// Every page of `executions/getEvents` for one execution.
async fn event_ids(api: &Api, execution_id: &str) -> Result<Vec<String>, BenchError> {
    let mut ids = Vec::with_capacity(EVENTS_PER_EXECUTION);
    let mut since_seq = 0;
    for _ in 0..EVENT_PAGES_MAX {
        let body = json!({ "executionId": execution_id, "sinceSeq": since_seq,
                           "pageSize": EVENTS_PAGE_SIZE });
        let page = api.call("executions/getEvents", body).await?;
        for event in page["events"].as_array().into_iter().flatten() {
            ids.push(text(event, "eventId", "executions/getEvents")?);
        }
        if page["hasMore"] != true {
            return Ok(ids);
        }
        since_seq = page["nextCursor"].as_u64().unwrap_or(u64::MAX);
    }
    Err(BenchError::Violation(format!("{execution_id} has over {EVENT_PAGES_MAX} event pages")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn arrival(execution_id: &str, seq: usize, attempt: u32, verified: bool) -> Arrival {
        Arrival {
            path: RATE_PATH.into(),
            execution_id: execution_id.into(),
            event_id: format!("evt_{execution_id}_{seq}"),
            event_type: "step.completed".into(),
            attempt: Some(attempt),
            verified,
            latency: Duration::from_millis(1),
        }
    }

    /// Executions `x` and `y`, each with a full set of events listed.
    fn listed() -> (Vec<String>, HashMap<String, Vec<String>>) {
        let executions = vec!["x".to_owned(), "y".to_owned()];
        let events = |id: &String| -> Vec<String> {
            (1..=EVENTS_PER_EXECUTION).map(|seq| format!("evt_{id}_{seq}")).collect()
        };
        let listed = executions.iter().map(|id| (id.clone(), events(id))).collect();
        (executions, listed)
    }
    /// Both executions' events, interleaved, each execution's in `seq` order.
    fn all_arrivals() -> Vec<Arrival> {
        let seqs = 1..=EVENTS_PER_EXECUTION;
        seqs.flat_map(|seq| [arrival("x", seq, 0, true), arrival("y", seq, 0, true)]).collect()
    }

    #[test]
    fn every_event_once_in_order_holds() {
        let (executions, listed) = listed();
        assert!(arrivals_match_events(&executions, &all_arrivals(), &listed).is_ok());
    }

    #[test]
    fn a_missing_duplicated_reordered_retried_or_unsigned_event_breaks_it() {
        let (executions, listed) = listed();
        let mut missing = all_arrivals();
        missing.pop();
        let mut duplicated = all_arrivals();
        duplicated.push(arrival("x", 3, 0, true));
        let mut reordered = all_arrivals();
        reordered.swap(0, 2);
        let mut retried = all_arrivals();
        retried[4] = arrival("x", 3, 1, true);
        let mut unsigned = all_arrivals();
        unsigned[4] = arrival("x", 3, 0, false);
        let mut stranger = all_arrivals();
        stranger.push(arrival("z", 1, 0, true));
        for (name, arrivals) in [
            ("missing", missing),
            ("duplicated", duplicated),
            ("reordered", reordered),
            ("retried", retried),
            ("unsigned", unsigned),
            ("stranger", stranger),
        ] {
            let outcome = arrivals_match_events(&executions, &arrivals, &listed);
            assert!(outcome.is_err_and(|e| e.is_violation()), "{name} passed");
        }
    }
}
