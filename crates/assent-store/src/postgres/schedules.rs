//! The schedule index in PostgreSQL. Mirrors `sqlite/schedules.rs`. Several processes claim
//! from one table: a claim locks the due rows it takes (`FOR UPDATE SKIP LOCKED`, so two
//! claims never wait on each other) and moves them to their next instant before it commits,
//! so a row another claim reads afterwards is no longer due.

use super::{execute, query};
use crate::schedules::{DueSchedule, ScheduleEntry, SCHEDULE_CLAIM_MAX};
use crate::StoreResult;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

/// Replaces a definition's entries in the index with `entries`.
pub(super) async fn replace(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
    entries: &[ScheduleEntry],
) -> StoreResult<()> {
    remove(txn, workspace_id, definition_id).await?;
    for entry in entries {
        execute(
            txn,
            "INSERT INTO schedules (workspace_id, definition_id, trigger_id, cron, timezone,
                                    payload, next_fire_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &workspace_id,
                &definition_id,
                &entry.trigger_id,
                &entry.cron,
                &entry.timezone,
                &entry.payload,
                &entry.next_fire_at_ms,
            ],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn remove(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<()> {
    execute(
        txn,
        "DELETE FROM schedules WHERE workspace_id = $1 AND definition_id = $2",
        &[&workspace_id, &definition_id],
    )
    .await?;
    Ok(())
}

pub(super) async fn claim_due(
    txn: &Transaction<'_>,
    now_ms: i64,
    limit: u32,
    next_fire_at: impl Fn(&DueSchedule) -> Option<i64>,
) -> StoreResult<Vec<DueSchedule>> {
    let limit = i64::from(limit.clamp(1, SCHEDULE_CLAIM_MAX));
    let rows = query(
        txn,
        "SELECT workspace_id, definition_id, trigger_id, cron, timezone, payload,
                next_fire_at_ms
           FROM schedules
          WHERE next_fire_at_ms <= $1
          ORDER BY next_fire_at_ms
          LIMIT $2
            FOR UPDATE SKIP LOCKED",
        &[&now_ms, &limit],
    )
    .await?;
    let due = rows.iter().map(due_from_row).collect::<StoreResult<Vec<_>>>()?;
    for schedule in &due {
        advance(txn, schedule, next_fire_at(schedule)).await?;
    }
    Ok(due)
}

/// Moves a claimed schedule to its next instant, or out of the index.
async fn advance(
    txn: &Transaction<'_>,
    schedule: &DueSchedule,
    next_ms: Option<i64>,
) -> StoreResult<()> {
    let (ws, definition, trigger) =
        (&schedule.workspace_id, &schedule.definition_id, &schedule.trigger_id);
    let Some(next_ms) = next_ms else {
        let sql = "DELETE FROM schedules
                    WHERE workspace_id = $1 AND definition_id = $2 AND trigger_id = $3";
        execute(txn, sql, &[ws, definition, trigger]).await?;
        return Ok(());
    };
    let sql = "UPDATE schedules SET next_fire_at_ms = $4
                WHERE workspace_id = $1 AND definition_id = $2 AND trigger_id = $3";
    execute(txn, sql, &[ws, definition, trigger, &next_ms]).await?;
    Ok(())
}

pub(super) async fn next_due_ms(txn: &Transaction<'_>) -> StoreResult<Option<i64>> {
    let rows = query(txn, "SELECT MIN(next_fire_at_ms) FROM schedules", &[]).await?;
    Ok(rows.first().map(|row| row.try_get(0)).transpose()?.flatten())
}

fn due_from_row(row: &Row) -> StoreResult<DueSchedule> {
    Ok(DueSchedule {
        workspace_id: row.try_get(0)?,
        definition_id: row.try_get(1)?,
        trigger_id: row.try_get(2)?,
        cron: row.try_get(3)?,
        timezone: row.try_get(4)?,
        payload: row.try_get(5)?,
        scheduled_at_ms: row.try_get(6)?,
    })
}
