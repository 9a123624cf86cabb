//! Schedule triggers: the entries a definition write puts in the store's schedule index, and
//! the loop that fires them. The loop claims due schedules (each claim moves its schedule to
//! the next instant after now, so instants missed while no server ran are skipped, never
//! replayed) and starts one run per claimed instant under its `sched:` key, so an instant
//! reaches at most one run however many processes share the store.

use super::triggers::{triggered_dispatch, TRIGGER_KEY_TTL_MS};
use super::{wait_until_due, Dispatched, Engine, RunError};
use assent_core::cron;
use assent_core::ids;
use assent_core::model::DefinitionSpec;
use assent_store::{DueSchedule, ScheduleEntry, Store};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Schedules claimed in one go.
const CLAIM_BATCH: u32 = 64;
/// Scheduled runs being started at once.
const STARTING_MAX: usize = 16;
/// An instant claimed more than this after it was due counts as missed (no server ran, or
/// all were stalled) and is skipped rather than run late.
const LATE_MAX_MS: i64 = 60_000;
/// Back-off after the store failed.
const STORE_RETRY_WAIT: Duration = Duration::from_millis(500);

/// The schedule index entries of a definition: one per enabled schedule trigger (the first,
/// should two entries share a trigger id), each first due at its next instant after `now_ms`.
pub fn schedule_entries(spec: &DefinitionSpec, now_ms: i64) -> Vec<ScheduleEntry> {
    let mut seen = HashSet::new();
    let enabled = spec.triggers.iter().filter_map(|trigger| {
        let schedule = trigger.schedule.as_ref().filter(|s| s.enabled)?;
        Some((trigger.trigger_id.as_str(), schedule))
    });
    enabled
        .filter(|(trigger_id, _)| seen.insert(*trigger_id))
        .filter_map(|(trigger_id, schedule)| {
            let next_fire_at_ms = next_fire(&schedule.cron, &schedule.timezone, now_ms)?;
            let payload = schedule.payload_template.clone().unwrap_or_default();
            Some(ScheduleEntry {
                trigger_id: trigger_id.to_owned(),
                cron: schedule.cron.clone(),
                timezone: schedule.timezone.clone(),
                payload: Value::Object(payload),
                next_fire_at_ms,
            })
        })
        .collect()
}

/// The schedule's first instant strictly after `after_ms`; `None` for one that never fires
/// again (or that no longer parses, which the write-time check rules out).
fn next_fire(cron_source: &str, timezone: &str, after_ms: i64) -> Option<i64> {
    let spec = cron::parse_cron(cron_source).ok()?;
    let zone = cron::time_zone(timezone)?;
    cron::next_fire_after(&spec, &zone, after_ms)
}

impl Engine {
    /// Tells the schedule loop to look again (time moved, or a definition write changed
    /// the schedules).
    pub fn wake_schedules(&self) {
        self.schedules_wake.notify_one();
    }

    /// Starts the run of one claimed instant, or finds the one already started.
    async fn dispatch_scheduled(&self, due: &DueSchedule) -> Result<Dispatched, RunError> {
        let runnable = self.current_definition(&due.workspace_id, &due.definition_id).await?;
        let key = ids::schedule_key(&due.definition_id, &due.trigger_id, due.scheduled_at_ms);
        let schedule = json!({
            "triggerId": due.trigger_id,
            "scheduledAt": due.scheduled_at_ms,
            "payload": due.payload,
        });
        let context = Map::from_iter([("schedule".to_owned(), schedule)]);
        let dispatch = triggered_dispatch(&runnable.spec, Some(key), context);
        let expires_at_ms = self.clock.now_ms().saturating_add(TRIGGER_KEY_TTL_MS);
        self.dispatch_keyed(&due.workspace_id, dispatch, Some(expires_at_ms)).await
    }
}

/// Runs until the task is dropped.
pub async fn run_schedules(engine: Arc<Engine>) {
    let starting = Arc::new(Semaphore::new(STARTING_MAX));
    loop {
        let now_ms = engine.clock.now_ms();
        let next = move |due: &DueSchedule| next_fire(&due.cron, &due.timezone, now_ms);
        let claimed = match engine.store.claim_due_schedules(now_ms, CLAIM_BATCH, next).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!("claiming due schedules failed: {e}");
                tokio::time::sleep(STORE_RETRY_WAIT).await;
                continue;
            }
        };
        let batch_was_full = claimed.len() == CLAIM_BATCH as usize;
        for due in claimed {
            let Ok(permit) = starting.clone().acquire_owned().await else { return };
            let engine = engine.clone();
            tokio::spawn(async move {
                start(&engine, &due, now_ms).await;
                drop(permit);
            });
        }
        if !batch_was_full {
            wait_for_next(&engine).await;
        }
    }
}

async fn wait_for_next(engine: &Engine) {
    let next_due_ms = engine.store.next_schedule_due_ms().await.unwrap_or(None);
    wait_until_due(engine, next_due_ms, &engine.schedules_wake).await;
}

async fn start(engine: &Engine, due: &DueSchedule, claimed_at_ms: i64) {
    let span = tracing::info_span!(
        "schedule",
        workspace_id = %due.workspace_id,
        definition_id = %due.definition_id,
        trigger_id = %due.trigger_id,
        scheduled_at_ms = due.scheduled_at_ms
    );
    let late_ms = claimed_at_ms - due.scheduled_at_ms;
    if late_ms > LATE_MAX_MS {
        let _entered = span.enter();
        tracing::info!(late_ms, "missed scheduled instant skipped");
        return;
    }
    let started = engine.dispatch_scheduled(due).instrument(span.clone()).await;
    let _entered = span.enter();
    match started {
        Ok(run) if run.deduplicated => tracing::debug!("scheduled instant had already started"),
        Ok(run) => tracing::info!(execution_id = %run.execution_id, "scheduled run started"),
        // The instant is not retried: a definition that cannot run now is skipped, as a
        // missed instant is.
        Err(e) => tracing::warn!("scheduled run not started: {e}"),
    }
}
