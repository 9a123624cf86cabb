//! Dispatch runs: fresh idempotency keys, replays of keys that exist, and many connections
//! racing one key. Each checks afterwards that every acknowledged key has one execution.

use super::{
    check, create_definition, drive, human_node, list_all, reject_route, report, Done, Plan,
    RACE_CONNECTIONS,
};
use crate::client::{text, Api};
use crate::error::BenchError;
use crate::report::{Latencies, RunReport};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Barrier;

/// Rounds the race run may take, whatever its duration.
const RACE_ROUNDS_MAX: usize = 10_000;

/// An acknowledged dispatch: the key sent, the execution it answered with, and whether the
/// answer said it was a replay.
struct Acked {
    key: String,
    execution_id: String,
    deduplicated: bool,
}

async fn dispatch(api: &Api, definition_id: &str, key: String) -> Result<Acked, BenchError> {
    let body = json!({ "definitionId": definition_id, "idempotencyKey": key });
    let answer = api.call("executions/dispatch", body).await?;
    let execution_id = text(&answer, "executionId", "executions/dispatch")?;
    let Some(deduplicated) = answer["deduplicated"].as_bool() else {
        return Err(BenchError::Violation(format!(
            "dispatch answered without deduplicated: {answer}"
        )));
    };
    Ok(Acked { key, execution_id, deduplicated })
}

/// A definition of one human node, so each dispatch parks one execution.
async fn parking_definition(api: &Api, definition_id: &str) -> Result<(), BenchError> {
    let (rejected, reject_edge) = reject_route();
    create_definition(
        api,
        definition_id,
        json!([human_node("review"), rejected]),
        json!([reject_edge]),
    )
    .await
}

pub async fn unique_keys(
    api: &Api,
    plan: Plan,
    store: &'static str,
) -> Result<RunReport, BenchError> {
    const DEFINITION: &str = "bench-dispatch";
    parking_definition(api, DEFINITION).await?;
    let api_ = api.clone();
    let driven = drive(plan.connections, plan.duration, move |worker, n| {
        let api = api_.clone();
        async move {
            let acked = dispatch(&api, DEFINITION, format!("d-{worker}-{n}")).await?;
            Ok(Done { requests: 1, item: acked })
        }
    })
    .await?;
    let (report, acked) = report("dispatch", store, plan.connections, driven);

    let fresh = acked.iter().filter(|a| !a.deduplicated).count();
    check(fresh == acked.len(), || {
        format!("{} of {} fresh keys were deduplicated", acked.len() - fresh, acked.len())
    })?;
    each_key_listed_once(api, DEFINITION, &acked).await?;
    Ok(report)
}

pub async fn replays(api: &Api, plan: Plan, store: &'static str) -> Result<RunReport, BenchError> {
    const DEFINITION: &str = "bench-replay";
    parking_definition(api, DEFINITION).await?;
    let keys: Vec<String> = (0..plan.replay_keys).map(|i| format!("r-{i}")).collect();
    let originals = Arc::new(dispatch_all(api, DEFINITION, &keys, plan.connections).await?);

    let (api_, seeded) = (api.clone(), originals.clone());
    let driven = drive(plan.connections, plan.duration, move |worker, n| {
        let (api, seeded) = (api_.clone(), seeded.clone());
        async move {
            let original = &seeded[(worker + n as usize * 7919) % seeded.len()];
            let replayed = dispatch(&api, DEFINITION, original.key.clone()).await?;
            let same = replayed.deduplicated && replayed.execution_id == original.execution_id;
            check(same, || {
                format!(
                    "a replay of {} answered {} (deduplicated: {}), not {}",
                    original.key,
                    replayed.execution_id,
                    replayed.deduplicated,
                    original.execution_id
                )
            })?;
            Ok(Done { requests: 1, item: () })
        }
    })
    .await?;
    let (report, _) = report("replay", store, plan.connections, driven);
    each_key_listed_once(api, DEFINITION, &originals).await?;
    Ok(report)
}

/// Dispatches each key once, on `connections` workers; every answer must be fresh.
async fn dispatch_all(
    api: &Api,
    definition_id: &'static str,
    keys: &[String],
    connections: usize,
) -> Result<Vec<Acked>, BenchError> {
    let chunk = keys.len().div_ceil(connections.max(1)).max(1);
    let workers: Vec<_> = keys
        .chunks(chunk)
        .map(|keys| {
            let (api, keys) = (api.clone(), keys.to_vec());
            tokio::spawn(async move {
                let mut acked = Vec::with_capacity(keys.len());
                for key in keys {
                    acked.push(dispatch(&api, definition_id, key).await?);
                }
                Ok::<_, BenchError>(acked)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(keys.len());
    for worker in workers {
        all.extend(
            worker.await.map_err(|e| BenchError::Server(format!("a worker panicked: {e}")))??,
        );
    }
    let replayed = all.iter().filter(|a| a.deduplicated).count();
    check(replayed == 0, || format!("{replayed} fresh keys answered as replays"))?;
    Ok(all)
}

/// Rounds of `RACE_CONNECTIONS` dispatches of one fresh key, released together: each round
/// makes one execution, and exactly one answer says `deduplicated: false`.
pub async fn race(api: &Api, plan: Plan, store: &'static str) -> Result<RunReport, BenchError> {
    const DEFINITION: &str = "bench-race";
    parking_definition(api, DEFINITION).await?;
    let started = Instant::now();
    let (mut latencies, mut winners) = (Latencies::default(), Vec::new());
    while started.elapsed() < plan.duration && winners.len() < RACE_ROUNDS_MAX {
        let key = format!("race-{}", winners.len());
        let (round, round_latencies) = race_round(api, DEFINITION, &key).await?;
        latencies.extend(round_latencies);
        winners.push(one_winner(&key, round)?);
    }
    let elapsed = started.elapsed();
    let requests = latencies.len() as u64;
    let report = RunReport::new("race", store, RACE_CONNECTIONS, requests, elapsed, latencies);
    each_key_listed_once(api, DEFINITION, &winners).await?;
    Ok(report)
}

async fn race_round(
    api: &Api,
    definition_id: &'static str,
    key: &str,
) -> Result<(Vec<Acked>, Latencies), BenchError> {
    let barrier = Arc::new(Barrier::new(RACE_CONNECTIONS));
    let racers: Vec<_> = (0..RACE_CONNECTIONS)
        .map(|_| {
            let (api, barrier, key) = (api.clone(), barrier.clone(), key.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                let sent = Instant::now();
                let acked = dispatch(&api, definition_id, key).await?;
                Ok::<_, BenchError>((acked, sent.elapsed()))
            })
        })
        .collect();
    let (mut answers, mut latencies) = (Vec::new(), Latencies::default());
    for racer in racers {
        let (acked, latency) =
            racer.await.map_err(|e| BenchError::Server(format!("a racer panicked: {e}")))??;
        answers.push(acked);
        latencies.push(latency);
    }
    Ok((answers, latencies))
}

/// The one fresh answer of a round, after checking that every answer names its execution.
fn one_winner(key: &str, round: Vec<Acked>) -> Result<Acked, BenchError> {
    let fresh = round.iter().filter(|a| !a.deduplicated).count();
    check(fresh == 1, || {
        format!("{fresh} of {} racing dispatches of {key} were fresh", round.len())
    })?;
    let mut round = round;
    let Some(winner_at) = round.iter().position(|a| !a.deduplicated) else {
        return Err(BenchError::Violation(format!("no racing dispatch of {key} was fresh")));
    };
    let winner_id = round[winner_at].execution_id.clone();
    let all_agree = round.iter().all(|a| a.execution_id == winner_id);
    check(all_agree, || format!("racing dispatches of {key} named different executions"))?;
    Ok(round.swap_remove(winner_at))
}

/// The definition's executions are exactly the acknowledged ones: each key once, with the
/// execution id its dispatch answered.
async fn each_key_listed_once(
    api: &Api,
    definition_id: &str,
    acked: &[Acked],
) -> Result<(), BenchError> {
    let listed = list_all(api, definition_id, None).await?;
    check(listed.len() == acked.len(), || {
        format!(
            "{definition_id}: {} executions listed, {} dispatches acknowledged",
            listed.len(),
            acked.len()
        )
    })?;
    let mut by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    for item in &listed {
        by_key.entry(item["idempotencyKey"].as_str().unwrap_or("")).or_default().push(item);
    }
    for a in acked {
        let found = by_key.get(a.key.as_str()).map(Vec::as_slice).unwrap_or_default();
        let once = matches!(found, [only] if only["executionId"] == a.execution_id.as_str());
        check(once, || format!("key {} ({}) is listed as {found:?}", a.key, a.execution_id))?;
    }
    Ok(())
}
