//! The timer loop: claims due timers from the store (deadlines, retries, polls, and work
//! kept as timers) and turns each into a command. Only the next due time is held in
//! memory; a million parked executions cost nothing here.

use super::definitions::Runnable;
use super::work::{self, WORK_TIMER_PREFIX};
use super::{apply_to_record, flatten, wait_until_due, Engine, RunError, Wakes};
use assent_core::engine::{Command, TimerKind, WorkItem};
use assent_store::{ClaimedTimer, ExecutionChanges, Store};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a claimed timer is ours before another process may take it over: longer than
/// the longest work a timer carries (a webhook node's call may take 60 s), so a slow call is
/// not made twice.
const LEASE_MS: i64 = 75_000;
/// Timers claimed in one go.
const CLAIM_BATCH: u32 = 128;
/// How far ahead of their due time timers are claimed, so that the claim's write is behind
/// them when they fall due and only the firing's write is between due time and effect.
const CLAIM_AHEAD_MS: i64 = 50;
/// Timers handled at once.
const HANDLING_MAX: usize = 64;
/// Back-off after the store failed.
const STORE_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Runs until the task is dropped.
pub async fn run_timers(engine: Arc<Engine>) {
    let (store, wake) = (engine.store.clone(), engine.wake.clone());
    let _watcher = AbortOnDrop(tokio::spawn(async move { store.watch_timers(wake).await }));
    let handling = Arc::new(Semaphore::new(HANDLING_MAX));
    let ahead_ms = if engine.clock.moves_by_itself() { CLAIM_AHEAD_MS } else { 0 };
    loop {
        // A claim is a write; look with a read first whether anything is due.
        let next_due_ms = engine.store.next_timer_due_ms().await.unwrap_or(None);
        let claim_until_ms = engine.clock.now_ms() + ahead_ms;
        if next_due_ms.is_none_or(|due_ms| due_ms > claim_until_ms) {
            let wait_for_ms = next_due_ms.map(|due_ms| due_ms - ahead_ms);
            wait_until_due(&engine, wait_for_ms, &engine.wake).await;
            continue;
        }
        let claimed = engine.store.claim_due_timers(claim_until_ms, LEASE_MS, CLAIM_BATCH).await;
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!("claiming due timers failed: {e}");
                tokio::time::sleep(STORE_RETRY_WAIT).await;
                continue;
            }
        };
        for timer in claimed {
            let Ok(permit) = handling.clone().acquire_owned().await else { return };
            let engine = engine.clone();
            tokio::spawn(async move {
                until_due(&engine, timer.due_at_ms).await;
                handle(&engine, timer).await;
                drop(permit);
            });
        }
    }
}

/// Returns once the engine's clock has reached `due_at_ms`; a timer claimed ahead never
/// fires early.
async fn until_due(engine: &Engine, due_at_ms: i64) {
    loop {
        let ahead_ms = due_at_ms - engine.clock.now_ms();
        if ahead_ms <= 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(ahead_ms as u64)).await;
    }
}

/// Stops the store's watcher when the loop stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn handle(engine: &Engine, timer: ClaimedTimer) {
    let span = tracing::info_span!(
        "timer",
        workspace_id = %timer.workspace_id,
        execution_id = %timer.execution_id,
        timer = %timer.timer_key
    );
    let _entered = span.enter();
    if let Err(e) = fire(engine, &timer).await {
        tracing::warn!("timer not applied, it will fire again after its lease: {e}");
    }
}

async fn fire(engine: &Engine, timer: &ClaimedTimer) -> Result<(), RunError> {
    let (ws, execution_id) = (timer.workspace_id.as_str(), timer.execution_id.as_str());
    let runnable = engine.pinned_definition(ws, execution_id).await?;
    let command = if let Some(step_id) = timer.timer_key.strip_prefix(WORK_TIMER_PREFIX) {
        let Ok(item) = serde_json::from_value::<WorkItem>(timer.payload.clone()) else {
            // Work queued by a build that wrote it differently: the core asks for it afresh,
            // as after a retry's wait.
            tracing::warn!("work in an unknown form; asking the engine to prepare it again");
            let command = Command::TimerFired { kind: TimerKind::Retry, step_id: step_id.into() };
            return apply_timer(engine, timer, runnable, command).await;
        };
        let Some(outcome) = work::perform(engine, timer, &item, &runnable).await? else {
            return drop_timer(engine, timer).await;
        };
        let step_id = work::step_of(&item).to_owned();
        Command::WorkDone { step_id, attempt: work::attempt_of(&item), outcome }
    } else {
        deadline_command(&timer.payload)?
    };
    apply_timer(engine, timer, runnable, command).await
}

/// Applies what a timer amounts to, removing the timer in the same transaction.
async fn apply_timer(
    engine: &Engine,
    timer: &ClaimedTimer,
    runnable: Arc<Runnable>,
    command: Command,
) -> Result<(), RunError> {
    let (ws, execution_id) = (timer.workspace_id.as_str(), timer.execution_id.as_str());
    let now_ms = engine.clock.now_ms();
    let key = timer.timer_key.clone();
    let outcome = engine
        .store
        .update_execution(ws, execution_id, move |record| {
            let (changes, result) =
                apply_to_record(&runnable, record, command, now_ms, Some(&key))?;
            let wakes = Wakes::for_changes(&changes);
            Ok::<_, RunError>((changes, (result, wakes)))
        })
        .await;
    let (_, wakes) = flatten(outcome, execution_id)?;
    engine.wake_for(wakes);
    Ok(())
}

/// Removes a work timer that turned out to have nothing to do.
async fn drop_timer(engine: &Engine, timer: &ClaimedTimer) -> Result<(), RunError> {
    let key = timer.timer_key.clone();
    let outcome = engine
        .store
        .update_execution(&timer.workspace_id, &timer.execution_id, move |_record| {
            let changes = ExecutionChanges { timers_cleared: vec![key], ..Default::default() };
            Ok::<_, RunError>((changes, Value::Null))
        })
        .await;
    flatten(outcome, &timer.execution_id).map(drop)
}

fn deadline_command(payload: &Value) -> Result<Command, RunError> {
    let kind: TimerKind = serde_json::from_value(payload["kind"].clone())
        .map_err(|e| RunError::Internal(format!("unreadable timer: {e}")))?;
    let step_id = payload["stepId"].as_str().unwrap_or_default().to_owned();
    Ok(Command::TimerFired { kind, step_id })
}
