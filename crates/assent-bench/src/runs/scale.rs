//! What the scale runs (parked, deadlines) share: work spread over a fixed number of
//! connections, fresh dispatches, listing without keeping whole pages, and deciding parked
//! executions one at a time.

use super::flow::{decide, get, waiting_review};
use super::{check, create_definition, human_node, reject_route, LIST_PAGES_MAX, LIST_PAGE_SIZE};
use crate::client::{text, Api};
use crate::error::BenchError;
use crate::report::Latencies;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long decided executions may take to read as completed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause between two reads of an execution that has not settled yet.
const SETTLE_PAUSE: Duration = Duration::from_millis(20);
/// Connections that check decided executions.
const CHECK_CONNECTIONS: usize = 16;

/// Runs `work` on every item, on `connections` workers that take the items in order, and
/// returns the outputs in the items' order. The first error ends every worker.
pub async fn in_parallel<I, T, F, Fut>(
    items: Vec<I>,
    connections: usize,
    work: F,
) -> Result<Vec<T>, BenchError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, BenchError>> + Send,
{
    let queue = Arc::new(Mutex::new(items.into_iter().enumerate()));
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = |queue: &Mutex<std::iter::Enumerate<std::vec::IntoIter<I>>>| {
        queue.lock().unwrap_or_else(|e| e.into_inner()).next()
    };
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (queue, failed, work) = (queue.clone(), failed.clone(), work.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                while let Some((at, item)) = next(&queue) {
                    if failed.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let output = work(item).await;
                    failed.fetch_or(output.is_err(), std::sync::atomic::Ordering::Relaxed);
                    done.push((at, output?));
                }
                Ok::<_, BenchError>(done)
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(
            worker.await.map_err(|e| BenchError::Server(format!("a worker panicked: {e}")))??,
        );
    }
    all.sort_unstable_by_key(|(at, _)| *at);
    Ok(all.into_iter().map(|(_, output)| output).collect())
}

/// A definition of one human node, `review`, so each dispatch parks one execution.
pub async fn parking_definition(api: &Api, definition_id: &str) -> Result<(), BenchError> {
    let (rejected, reject_edge) = reject_route();
    let nodes = json!([human_node("review"), rejected]);
    create_definition(api, definition_id, nodes, json!([reject_edge])).await
}

/// Dispatches a fresh key; the answer must say it started a new execution, whose id it
/// returns.
pub async fn dispatch_fresh(
    api: &Api,
    definition_id: &str,
    key: &str,
) -> Result<String, BenchError> {
    let body = json!({ "definitionId": definition_id, "idempotencyKey": key });
    let answer = api.call("executions/dispatch", body).await?;
    check(answer["deduplicated"] == false, || {
        format!("a dispatch of the fresh key {key} answered {answer}")
    })?;
    text(&answer, "executionId", "executions/dispatch")
}

/// Calls `each` with every execution of `definition_id` (in `status`, when given), one
/// page at a time, keeping no page.
pub async fn for_each_listed(
    api: &Api,
    definition_id: &str,
    status: Option<&str>,
    mut each: impl FnMut(&Value),
) -> Result<(), BenchError> {
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
        page["items"].as_array().into_iter().flatten().for_each(&mut each);
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
    Err(BenchError::Violation(format!("{definition_id} lists more than {LIST_PAGES_MAX} pages")))
}

/// Whether `definition_id` has an execution in `status`: one request for one item.
pub async fn any_listed(api: &Api, definition_id: &str, status: &str) -> Result<bool, BenchError> {
    let body = json!({ "definitionId": definition_id, "status": status, "pageSize": 1 });
    let page = api.call("executions/list", body).await?;
    Ok(page["items"].as_array().is_some_and(|items| !items.is_empty()))
}

/// On one connection, decides parked executions in order until `until` or until they run
/// out: reads the waiting step (not timed), then approves it (timed). Returns the decision
/// latencies and the executions decided.
pub async fn decide_in_turn(
    api: &Api,
    parked: &[String],
    until: Instant,
) -> Result<(Latencies, Vec<String>), BenchError> {
    let (mut latencies, mut decided) = (Latencies::default(), Vec::new());
    for execution_id in parked {
        if Instant::now() >= until {
            break;
        }
        let step_id = waiting_review(&get(api, execution_id).await?)?;
        let sent = Instant::now();
        decide(api, execution_id, &step_id).await?;
        latencies.push(sent.elapsed());
        decided.push(execution_id.clone());
    }
    Ok((latencies, decided))
}

/// Every decided execution reads as completed within [`SETTLE_TIMEOUT`].
pub async fn all_completed(api: &Api, decided: Vec<String>) -> Result<(), BenchError> {
    let api = api.clone();
    in_parallel(decided, CHECK_CONNECTIONS, move |execution_id| {
        let api = api.clone();
        async move {
            let started = Instant::now();
            loop {
                let view = get(&api, &execution_id).await?;
                if view["status"] == "completed" {
                    return Ok(());
                }
                check(view["status"] == "running" && started.elapsed() < SETTLE_TIMEOUT, || {
                    format!("{execution_id} did not complete after its approval: {view}")
                })?;
                tokio::time::sleep(SETTLE_PAUSE).await;
            }
        }
    })
    .await
    .map(drop)
}

/// Milliseconds since the Unix epoch, as the server's clock counts them.
pub fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub const MIB: f64 = 1024.0 * 1024.0;
