//! The parked run: a store of its own filled with parked executions, and what they cost:
//! the store's size, the server's idle memory, the time from a SIGKILL to ready again.
//! Then, with all of them still parked, decision latency on an idle server, the maximum
//! dispatch rate, and decision latency while dispatches arrive at half that rate.

use super::rate::{drive_at_rate, IN_FLIGHT_MAX};
use super::scale::{
    all_completed, decide_in_turn, dispatch_fresh, for_each_listed, in_parallel,
    parking_definition, MIB,
};
use super::{check, drive, report, Done, Plan};
use crate::client::Api;
use crate::error::BenchError;
use crate::report::{Latencies, RunReport};
use crate::server::{Backing, Server};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The definition whose executions park.
const DEFINITION: &str = "bench-parked";
/// The definition the load legs dispatch to.
const LOAD_DEFINITION: &str = "bench-parked-load";
/// How long the server is left alone before its memory is read (at most a run's duration).
const IDLE_BEFORE_RSS: Duration = Duration::from_secs(5);
/// How long a restarted server may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two `/readyz` probes.
const READY_POLL: Duration = Duration::from_millis(2);
/// Parked executions set aside for the deciders, at most.
const DECIDE_SAMPLE_MAX: usize = 50_000;
/// How often parking prints how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

pub const HALF_LOAD_NOTE: &str =
    "open loop: dispatches start on a fixed schedule and latency counts from it";

pub async fn parked(plan: Plan, backing: &Backing) -> Result<Vec<RunReport>, BenchError> {
    let own = backing.sibling().await?;
    let measured = parked_on(plan, &own).await;
    let closed = own.close().await;
    let reports = measured?;
    closed?;
    Ok(reports)
}

async fn parked_on(plan: Plan, own: &Backing) -> Result<Vec<RunReport>, BenchError> {
    let store = own.store_name();
    let creds = own.create_workspace().await?;
    let server = own.serve(None).await?;
    let api = Api::new(&server.base_url, &creds)?;
    parking_definition(&api, DEFINITION).await?;
    let (mut row, parked) = park_all(&api, plan, store).await?;
    let idle = plan.duration.min(IDLE_BEFORE_RSS);

    tokio::time::sleep(idle).await;
    row.figure("storeMiB", own.store_bytes().await? as f64 / MIB);
    row.figure("idleRssMiB", server.rss_bytes()? as f64 / MIB);
    let (server, restart) = kill_and_restart(own, server).await?;
    row.figure("listeningAfterKillMs", restart.listening.as_secs_f64() * 1000.0);
    row.figure("readyAfterKillMs", restart.ready.as_secs_f64() * 1000.0);
    tokio::time::sleep(idle).await;
    row.figure("restartedIdleRssMiB", server.rss_bytes()? as f64 / MIB);

    let api = Api::new(&server.base_url, &creds)?;
    all_still_parked(&api, &parked).await?;
    let sample = sample(&parked);
    drop(parked);
    let mut rows = vec![row];
    rows.extend(decide_and_load(&api, plan, store, sample).await?);
    server.stop().await?;
    Ok(rows)
}

/// Dispatches `plan.parked_run_size` fresh keys on `plan.connections` connections; returns
/// the row and the executions, in key order.
async fn park_all(
    api: &Api,
    plan: Plan,
    store: &'static str,
) -> Result<(RunReport, Vec<String>), BenchError> {
    let count = plan.parked_run_size;
    let parked_so_far = Arc::new(AtomicUsize::new(0));
    let progress = tokio::spawn(print_progress(parked_so_far.clone(), count));
    let started = Instant::now();
    let api_ = api.clone();
    let parked = in_parallel((0..count).collect(), plan.connections, move |n: usize| {
        let (api, parked_so_far) = (api_.clone(), parked_so_far.clone());
        async move {
            let sent = Instant::now();
            let execution_id = dispatch_fresh(&api, DEFINITION, &format!("park-{n}")).await?;
            parked_so_far.fetch_add(1, Ordering::Relaxed);
            Ok((execution_id, sent.elapsed()))
        }
    })
    .await;
    progress.abort();
    let elapsed = started.elapsed();

    let mut latencies = Latencies::default();
    let ids = parked?
        .into_iter()
        .map(|(execution_id, latency)| {
            latencies.push(latency);
            execution_id
        })
        .collect();
    let mut row =
        RunReport::new("parked", store, plan.connections, count as u64, elapsed, latencies);
    row.figure("parkedExecutions", count as f64);
    Ok((row, ids))
}

async fn print_progress(parked_so_far: Arc<AtomicUsize>, count: usize) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let parked = parked_so_far.load(Ordering::Relaxed);
        let per_second = parked as f64 / started.elapsed().as_secs_f64();
        eprintln!("  parked {parked} of {count} ({per_second:.0}/s)");
    }
}

/// How long a restart took, from the SIGKILL: until the new process logged its address,
/// and until its `/readyz` answered 200.
struct Restart {
    listening: Duration,
    ready: Duration,
}

async fn kill_and_restart(own: &Backing, server: Server) -> Result<(Server, Restart), BenchError> {
    let killed_at = Instant::now();
    server.kill().await?;
    let server = own.serve(None).await?;
    let listening = killed_at.elapsed();
    let probe = reqwest::Client::new();
    let url = format!("{}/readyz", server.base_url);
    loop {
        let answer = probe.get(&url).send().await;
        if answer.is_ok_and(|answer| answer.status() == reqwest::StatusCode::OK) {
            return Ok((server, Restart { listening, ready: killed_at.elapsed() }));
        }
        if killed_at.elapsed() > READY_TIMEOUT {
            return Err(BenchError::Server(format!("not ready {READY_TIMEOUT:?} after SIGKILL")));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// After the SIGKILL, the definition lists exactly the acknowledged executions, all still
/// running.
async fn all_still_parked(api: &Api, parked: &[String]) -> Result<(), BenchError> {
    let mut listed = HashSet::with_capacity(parked.len());
    let mut not_running = 0;
    for_each_listed(api, DEFINITION, None, |item| {
        not_running += usize::from(item["status"] != "running");
        listed.insert(item["executionId"].as_str().unwrap_or_default().to_owned());
    })
    .await?;
    let missing = parked.iter().filter(|id| !listed.contains(id.as_str())).count();
    check(missing == 0 && listed.len() == parked.len() && not_running == 0, || {
        format!(
            "{} parked before the SIGKILL; after it {} listed ({missing} of those parked \
             missing, {not_running} not running)",
            parked.len(),
            listed.len()
        )
    })
}

/// Up to [`DECIDE_SAMPLE_MAX`] parked executions, evenly spaced over the keys.
fn sample(parked: &[String]) -> Vec<String> {
    let size = parked.len().min(DECIDE_SAMPLE_MAX);
    (0..size).map(|i| parked[i * parked.len() / size].clone()).collect()
}

/// Decisions on an idle server (on the first half of `sample`); the maximum dispatch rate;
/// dispatches at half of it with decisions alongside (on the second half). Then every
/// dispatch is listed once and every decided execution is completed.
async fn decide_and_load(
    api: &Api,
    plan: Plan,
    store: &'static str,
    sample: Vec<String>,
) -> Result<Vec<RunReport>, BenchError> {
    let (sample, rest) = sample.split_at(sample.len() / 2);
    let started = Instant::now();
    let (latencies, mut decided) = decide_in_turn(api, sample, started + plan.duration).await?;
    let idle = RunReport::new(
        "decide-idle",
        store,
        1,
        latencies.len() as u64,
        started.elapsed(),
        latencies,
    );

    parking_definition(api, LOAD_DEFINITION).await?;
    let (full, mut acked) = dispatch_flat_out(api, plan, store).await?;
    let per_second = plan.dispatch_rate.unwrap_or(full.per_second() / 2.0);
    let (half, deciding, half_acked, decided_loaded) =
        dispatch_at_rate(api, plan, store, per_second, rest.to_vec()).await?;

    acked.extend(half_acked);
    each_load_key_listed_once(api, &acked).await?;
    decided.extend(decided_loaded);
    all_completed(api, decided).await?;
    Ok(vec![idle, full, half, deciding])
}

/// Keys and the executions their dispatches answered with.
type Acked = Vec<(String, String)>;

/// Closed loop on `plan.connections` connections: the most the server takes.
async fn dispatch_flat_out(
    api: &Api,
    plan: Plan,
    store: &'static str,
) -> Result<(RunReport, Acked), BenchError> {
    let api_ = api.clone();
    let driven = drive(plan.connections, plan.duration, move |worker, n| {
        let api = api_.clone();
        async move {
            let key = format!("max-{worker}-{n}");
            let execution_id = dispatch_fresh(&api, LOAD_DEFINITION, &key).await?;
            Ok(Done { requests: 1, item: (key, execution_id) })
        }
    })
    .await?;
    Ok(report("dispatch-max", store, plan.connections, driven))
}

/// Dispatches at `per_second` for `plan.duration` while one connection decides `parked`
/// executions; returns the dispatch row, the decision row, what was dispatched and what
/// was decided.
async fn dispatch_at_rate(
    api: &Api,
    plan: Plan,
    store: &'static str,
    per_second: f64,
    parked: Vec<String>,
) -> Result<(RunReport, RunReport, Acked, Vec<String>), BenchError> {
    let started = Instant::now();
    let decider_api = api.clone();
    let until = started + plan.duration;
    let decider = tokio::spawn(async move { decide_in_turn(&decider_api, &parked, until).await });
    let api_ = api.clone();
    let load = drive_at_rate(per_second, plan.duration, IN_FLIGHT_MAX, move |n| {
        let api = api_.clone();
        async move {
            let key = format!("half-{n}");
            let execution_id = dispatch_fresh(&api, LOAD_DEFINITION, &key).await?;
            Ok(Done { requests: 1, item: (key, execution_id) })
        }
    })
    .await?;
    let decided = decider.await.map_err(|e| BenchError::Server(format!("the decider: {e}")))?;
    let (latencies, decided) = decided?;

    let (mut half, acked) = report("dispatch-half", store, IN_FLIGHT_MAX, load);
    half.note = Some(HALF_LOAD_NOTE);
    half.figure("targetPerSecond", per_second);
    let decisions = latencies.len() as u64;
    let deciding = RunReport::new("decide-half", store, 1, decisions, started.elapsed(), latencies);
    Ok((half, deciding, acked, decided))
}

/// The load definition lists exactly the acknowledged keys, each once, with the execution
/// its dispatch answered.
async fn each_load_key_listed_once(api: &Api, acked: &Acked) -> Result<(), BenchError> {
    let mut listed: HashMap<String, Vec<String>> = HashMap::with_capacity(acked.len());
    for_each_listed(api, LOAD_DEFINITION, None, |item| {
        let key = item["idempotencyKey"].as_str().unwrap_or_default().to_owned();
        let execution_id = item["executionId"].as_str().unwrap_or_default().to_owned();
        listed.entry(key).or_default().push(execution_id);
    })
    .await?;
    let listed_total: usize = listed.values().map(Vec::len).sum();
    check(listed_total == acked.len(), || {
        format!("{LOAD_DEFINITION}: {listed_total} listed, {} dispatches acknowledged", acked.len())
    })?;
    for (key, execution_id) in acked {
        let found = listed.get(key).map(Vec::as_slice).unwrap_or_default();
        check(found == [execution_id.clone()], || format!("key {key} is listed as {found:?}"))?;
    }
    Ok(())
}
