//! The deadlines run: SLA deadlines spread evenly over a window, plus a burst due within
//! one second in its middle, and how late each breach is recorded.
//!
//! An SLA belongs to a node of a definition, not to a dispatch, so the run keeps a ladder of
//! definitions, rung `k` a human node with an SLA of `k` seconds. Each execution goes to the
//! rung that puts its deadline in the second after its target. All of them are dispatched
//! before the window opens (the lead is sized from a short dispatch calibration).
//!
//! Lateness is read from the server's own records: the breach event's timestamp (the time
//! the server applied the breach, just before committing it) minus the step's start plus
//! its SLA. The burst is also watched from outside: how long until no execution of the
//! burst is still listed as running, which only committed writes can show.

use super::flow::get;
use super::scale::{any_listed, dispatch_fresh, epoch_ms, in_parallel, parking_definition};
use super::{check, create_definition, drive, human_node, mock_node, Done, Plan};
use crate::client::Api;
use crate::error::BenchError;
use crate::report::{Latencies, RunReport};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The SLA difference between two rungs of the ladder, and so the width of the second a
/// deadline lands in after its target.
const SLA_STEP_MS: i64 = 1_000;
/// The longest dispatch calibration; it takes half a run's duration up to this.
const CALIBRATION_MAX: Duration = Duration::from_secs(2);
/// The calibrated time all dispatches need is stretched by this for the lead...
const LEAD_FACTOR: f64 = 1.5;
/// ...and this is added.
const LEAD_SPARE: Duration = Duration::from_secs(2);
/// How long deadlines may take to fire after the last one is due.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The pause between two looks at whether every deadline fired.
const DRAIN_POLL: Duration = Duration::from_millis(500);
/// The pause between two looks at whether the burst is done.
const BURST_POLL: Duration = Duration::from_millis(10);
/// Events one `executions/getEvents` page may hold; an execution here has six.
const EVENTS_PAGE_SIZE: u32 = 100;

pub const DEADLINES_NOTE: &str =
    "lateness = breach event timestamp - (step start + SLA), from the server's clock";
pub const BURST_NOTE: &str = "burstSeenDoneAfterMs: from the burst's second until the client \
     saw no burst execution running";

/// Where one execution's deadline should fall.
struct Target {
    due_ms: i64,
    burst: bool,
}

/// A dispatched execution and the SLA its rung has.
struct Armed {
    execution_id: String,
    sla_ms: i64,
    burst: bool,
    /// Its target had passed by the time it was dispatched.
    late: bool,
}

/// A breach as the execution's events tell it.
struct Fired {
    burst: bool,
    deadline_ms: i64,
    breached_ms: i64,
}

pub async fn deadlines(
    api: &Api,
    plan: Plan,
    store: &'static str,
) -> Result<Vec<RunReport>, BenchError> {
    let total = plan.deadlines_spread + plan.deadlines_burst;
    let lead = lead_time(api, plan, total).await?;
    let window_ms = plan.deadline_window.as_millis() as i64;
    let window_start_ms = epoch_ms() + lead.as_millis() as i64;
    let burst_at_ms = window_start_ms + window_ms / 2;
    let rungs = (lead.as_millis() as i64 + window_ms) / SLA_STEP_MS + 3;
    let ladder = Arc::new(Ladder::new(api, rungs as usize));

    let arming = Instant::now();
    let targets = targets(plan, window_start_ms, burst_at_ms);
    let armed = arm(api, plan.connections, ladder.clone(), targets).await?;
    let armed_in = arming.elapsed();
    let burst_seen_done_ms = burst_seen_done(api, &ladder, burst_at_ms).await?;
    all_fired(api, &ladder, window_start_ms + window_ms + SLA_STEP_MS).await?;

    let late = armed.iter().filter(|a| a.late).count();
    let fired = read_breaches(api, plan.connections, armed).await?;
    let mut rows = rows(store, plan.connections, &fired);
    rows[0].figure("armingSeconds", armed_in.as_secs_f64());
    rows[0].figure("leadSeconds", lead.as_secs_f64());
    rows[0].figure("armedLate", late as f64);
    rows[1].figure("burstSeenDoneAfterMs", (burst_seen_done_ms - burst_at_ms) as f64);
    Ok(rows)
}

/// Dispatches for a while to a definition without SLA, and leads the window by
/// [`LEAD_FACTOR`] times the time `total` dispatches would take at that rate, plus
/// [`LEAD_SPARE`].
async fn lead_time(api: &Api, plan: Plan, total: usize) -> Result<Duration, BenchError> {
    const DEFINITION: &str = "bench-sla-calibration";
    parking_definition(api, DEFINITION).await?;
    let api_ = api.clone();
    let calibration = (plan.duration / 2).min(CALIBRATION_MAX);
    let driven = drive(plan.connections, calibration, move |w, n| {
        let api = api_.clone();
        async move {
            dispatch_fresh(&api, DEFINITION, &format!("cal-{w}-{n}")).await?;
            Ok(Done { requests: 1, item: () })
        }
    })
    .await?;
    let per_second = driven.latencies.len() as f64 / driven.elapsed.as_secs_f64().max(0.001);
    let arming = Duration::from_secs_f64(LEAD_FACTOR * total as f64 / per_second.max(1.0));
    Ok(arming + LEAD_SPARE)
}

/// The spread deadlines evenly over the window and the burst at `burst_at_ms`, in the
/// order they fall due.
fn targets(plan: Plan, window_start_ms: i64, burst_at_ms: i64) -> Vec<Target> {
    let window_ms = plan.deadline_window.as_millis() as i64;
    let spread = plan.deadlines_spread as i64;
    let mut targets: Vec<Target> = (0..spread)
        .map(|i| Target { due_ms: window_start_ms + i * window_ms / spread.max(1), burst: false })
        .collect();
    let burst = (0..plan.deadlines_burst).map(|_| Target { due_ms: burst_at_ms, burst: true });
    targets.extend(burst);
    targets.sort_by_key(|t| t.due_ms);
    targets
}

/// Dispatches one execution per target, each to the rung whose SLA puts its deadline
/// within [`SLA_STEP_MS`] after the target.
async fn arm(
    api: &Api,
    connections: usize,
    ladder: Arc<Ladder>,
    targets: Vec<Target>,
) -> Result<Vec<Armed>, BenchError> {
    let api = api.clone();
    let numbered: Vec<(usize, Target)> = targets.into_iter().enumerate().collect();
    in_parallel(numbered, connections, move |(n, target)| {
        let (api, ladder) = (api.clone(), ladder.clone());
        async move {
            let now_ms = epoch_ms();
            let rung = ((target.due_ms - now_ms).max(1) + SLA_STEP_MS - 1) / SLA_STEP_MS;
            let definition_id = ladder.rung(rung as usize, target.burst).await?;
            let execution_id = dispatch_fresh(&api, &definition_id, &format!("sla-{n}")).await?;
            let late = target.due_ms < now_ms;
            Ok(Armed { execution_id, sla_ms: rung * SLA_STEP_MS, burst: target.burst, late })
        }
    })
    .await
}

/// Definitions whose human node has an SLA of `k` seconds, created when first needed; the
/// burst has rungs of its own so that it can be watched apart.
struct Ladder {
    api: Api,
    spread: Vec<OnceCell<()>>,
    burst: Vec<OnceCell<()>>,
}

impl Ladder {
    fn new(api: &Api, rungs: usize) -> Ladder {
        let cells = || (0..=rungs).map(|_| OnceCell::new()).collect();
        Ladder { api: api.clone(), spread: cells(), burst: cells() }
    }

    fn definition_id(rung: usize, burst: bool) -> String {
        let kind = if burst { "burst" } else { "spread" };
        format!("bench-sla-{kind}-{rung}")
    }

    /// The rung's definition id, once it exists.
    async fn rung(&self, rung: usize, burst: bool) -> Result<String, BenchError> {
        let cells = if burst { &self.burst } else { &self.spread };
        let Some(cell) = cells.get(rung) else {
            return Err(BenchError::Server(format!("no rung {rung}: the ladder is too short")));
        };
        let definition_id = Ladder::definition_id(rung, burst);
        let sla_ms = rung as i64 * SLA_STEP_MS;
        cell.get_or_try_init(|| sla_definition(&self.api, &definition_id, sla_ms)).await?;
        Ok(definition_id)
    }

    /// The definitions created so far.
    fn created(&self, burst: bool) -> Vec<String> {
        let cells = if burst { &self.burst } else { &self.spread };
        let created = cells.iter().enumerate().filter(|(_, cell)| cell.initialized());
        created.map(|(rung, _)| Ladder::definition_id(rung, burst)).collect()
    }
}

/// `review` (human, with the SLA) routes its breach to `escalated`; a breached execution
/// then completes, as an escalation would.
async fn sla_definition(api: &Api, definition_id: &str, sla_ms: i64) -> Result<(), BenchError> {
    let mut review = human_node("review");
    review["slaMs"] = json!(sla_ms);
    let breached = r#"{"op": "eq", "args": [{"var": "step.status"}, "breached"]}"#;
    let nodes = json!([review, mock_node("rejected"), mock_node("escalated")]);
    let edges = json!([
        { "from": "review", "to": "rejected", "on": "reject" },
        { "from": "review", "to": "escalated", "on": "custom", "when": breached },
    ]);
    create_definition(api, definition_id, nodes, edges).await
}

/// Waits for the burst's second, then looks every [`BURST_POLL`] until no burst rung lists
/// a running execution; returns when it saw that, in epoch ms.
async fn burst_seen_done(api: &Api, ladder: &Ladder, burst_at_ms: i64) -> Result<i64, BenchError> {
    let wait_ms = (burst_at_ms - epoch_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    let rungs = ladder.created(true);
    let started = Instant::now();
    loop {
        let mut running = false;
        for definition_id in &rungs {
            running = running || any_listed(api, definition_id, "running").await?;
        }
        if !running {
            return Ok(epoch_ms());
        }
        check(started.elapsed() < DRAIN_TIMEOUT, || {
            format!("burst deadlines still running {DRAIN_TIMEOUT:?} after they fell due")
        })?;
        tokio::time::sleep(BURST_POLL).await;
    }
}

/// Waits until `last_due_ms`, then until no rung lists a running execution.
async fn all_fired(api: &Api, ladder: &Ladder, last_due_ms: i64) -> Result<(), BenchError> {
    let wait_ms = (last_due_ms - epoch_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    let mut rungs = ladder.created(false);
    rungs.extend(ladder.created(true));
    let started = Instant::now();
    while !rungs.is_empty() {
        let mut still_running = Vec::new();
        for definition_id in rungs {
            if any_listed(api, &definition_id, "running").await? {
                still_running.push(definition_id);
            }
        }
        rungs = still_running;
        check(started.elapsed() < DRAIN_TIMEOUT, || {
            format!("{rungs:?} still list running executions {DRAIN_TIMEOUT:?} after the window")
        })?;
        if !rungs.is_empty() {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
    Ok(())
}

/// Reads every armed execution's events and checks its deadline fired exactly once, not
/// early, and that the execution then completed.
async fn read_breaches(
    api: &Api,
    connections: usize,
    armed: Vec<Armed>,
) -> Result<Vec<Fired>, BenchError> {
    let api = api.clone();
    in_parallel(armed, connections, move |armed| {
        let api = api.clone();
        async move {
            let body = json!({ "executionId": armed.execution_id, "pageSize": EVENTS_PAGE_SIZE });
            let page = api.call("executions/getEvents", body).await?;
            match fired_once(&armed, &page) {
                Err(BenchError::Violation(what)) => {
                    let view = get(&api, &armed.execution_id).await?;
                    Err(BenchError::Violation(format!("{what}; the execution: {view}")))
                }
                fired => fired,
            }
        }
    })
    .await
}

fn fired_once(armed: &Armed, page: &Value) -> Result<Fired, BenchError> {
    let id = &armed.execution_id;
    let events = page["events"].as_array().map(Vec::as_slice).unwrap_or_default();
    let of_type = |kind: &'static str| events.iter().filter(move |e| e["type"] == kind);
    let breaches: Vec<&Value> = of_type("step.breached").collect();
    let [breach] = breaches.as_slice() else {
        return Err(BenchError::Violation(format!("{id}: {} breaches", breaches.len())));
    };
    let step_id = &breach["stepId"];
    let mut waiting = of_type("step.awaiting-approval").filter(|e| e["stepId"] == *step_id);
    let (Some(waiting), None) = (waiting.next(), waiting.next()) else {
        return Err(BenchError::Violation(format!("{id}: the breached step did not wait once")));
    };
    let completed = of_type("execution.completed").count();
    check(completed == 1 && page["hasMore"] == false, || {
        format!("{id}: {completed} execution.completed events, hasMore {}", page["hasMore"])
    })?;

    let timestamp = |event: &Value| event["timestamp"].as_i64().unwrap_or(i64::MIN);
    let deadline_ms = timestamp(waiting) + armed.sla_ms;
    let breached_ms = timestamp(breach);
    check(breached_ms >= deadline_ms, || {
        format!("{id}: breached at {breached_ms}, before its deadline {deadline_ms}")
    })?;
    Ok(Fired { burst: armed.burst, deadline_ms, breached_ms })
}

/// The spread row and the burst row: lateness percentiles, and the time from the first
/// deadline to the last breach.
fn rows(store: &'static str, connections: usize, fired: &[Fired]) -> Vec<RunReport> {
    let row = |run: &'static str, burst: bool| {
        let fired: Vec<&Fired> = fired.iter().filter(|f| f.burst == burst).collect();
        let mut lateness = Latencies::default();
        for f in &fired {
            lateness.push(Duration::from_millis((f.breached_ms - f.deadline_ms) as u64));
        }
        let first_due_ms = fired.iter().map(|f| f.deadline_ms).min().unwrap_or(0);
        let last_breach_ms = fired.iter().map(|f| f.breached_ms).max().unwrap_or(0);
        let span = Duration::from_millis((last_breach_ms - first_due_ms).max(0) as u64);
        let count = fired.len() as u64;
        let mut row = RunReport::new(run, store, connections, count, span, lateness);
        row.figure("firstDueToLastBreachMs", span.as_secs_f64() * 1000.0);
        row
    };
    let mut spread = row("deadlines", false);
    spread.note = Some(DEADLINES_NOTE);
    let mut burst = row("deadline-burst", true);
    burst.note = Some(BURST_NOTE);
    vec![spread, burst]
}
