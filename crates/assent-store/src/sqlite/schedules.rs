//! The schedule index in SQLite. Mirrors `postgres/schedules.rs`. The one writer thread
//! makes every claim exclusive.

use crate::schedules::{DueSchedule, ScheduleEntry, SCHEDULE_CLAIM_MAX};
use crate::{StoreError, StoreResult};
use rusqlite::{params, Connection, Row};
use serde_json::Value;

/// Replaces a definition's entries in the index with `entries`.
pub(super) fn replace(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
    entries: &[ScheduleEntry],
) -> StoreResult<()> {
    remove(conn, workspace_id, definition_id)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO schedules (workspace_id, definition_id, trigger_id, cron, timezone,
                                payload, next_fire_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for entry in entries {
        insert.execute(params![
            workspace_id,
            definition_id,
            entry.trigger_id,
            entry.cron,
            entry.timezone,
            entry.payload.to_string(),
            entry.next_fire_at_ms,
        ])?;
    }
    Ok(())
}

pub(super) fn remove(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM schedules WHERE workspace_id = ?1 AND definition_id = ?2")?
        .execute(params![workspace_id, definition_id])?;
    Ok(())
}

pub(super) fn claim_due(
    conn: &Connection,
    now_ms: i64,
    limit: u32,
    next_fire_at: impl Fn(&DueSchedule) -> Option<i64>,
) -> StoreResult<Vec<DueSchedule>> {
    let limit = limit.clamp(1, SCHEDULE_CLAIM_MAX);
    let mut select = conn.prepare_cached(
        "SELECT workspace_id, definition_id, trigger_id, cron, timezone, payload,
                next_fire_at_ms
           FROM schedules
          WHERE next_fire_at_ms <= ?1
          ORDER BY next_fire_at_ms
          LIMIT ?2",
    )?;
    let mut rows = select.query(params![now_ms, limit])?;
    let mut due = Vec::new();
    while let Some(row) = rows.next()? {
        due.push(due_from_row(row)?);
    }
    drop(rows);
    for schedule in &due {
        advance(conn, schedule, next_fire_at(schedule))?;
    }
    Ok(due)
}

/// Moves a claimed schedule to its next instant, or out of the index.
fn advance(conn: &Connection, schedule: &DueSchedule, next_ms: Option<i64>) -> StoreResult<()> {
    let key = params![schedule.workspace_id, schedule.definition_id, schedule.trigger_id];
    let Some(next_ms) = next_ms else {
        conn.prepare_cached(
            "DELETE FROM schedules
              WHERE workspace_id = ?1 AND definition_id = ?2 AND trigger_id = ?3",
        )?
        .execute(key)?;
        return Ok(());
    };
    conn.prepare_cached(
        "UPDATE schedules SET next_fire_at_ms = ?4
          WHERE workspace_id = ?1 AND definition_id = ?2 AND trigger_id = ?3",
    )?
    .execute(params![
        schedule.workspace_id,
        schedule.definition_id,
        schedule.trigger_id,
        next_ms
    ])?;
    Ok(())
}

pub(super) fn next_due_ms(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(next_fire_at_ms) FROM schedules")?
        .query_row([], |row| row.get(0))?)
}

fn due_from_row(row: &Row<'_>) -> StoreResult<DueSchedule> {
    let payload: String = row.get(5)?;
    let payload: Value = serde_json::from_str(&payload)
        .map_err(|e| StoreError::Database(format!("stored JSON: {e}")))?;
    Ok(DueSchedule {
        workspace_id: row.get(0)?,
        definition_id: row.get(1)?,
        trigger_id: row.get(2)?,
        cron: row.get(3)?,
        timezone: row.get(4)?,
        payload,
        scheduled_at_ms: row.get(6)?,
    })
}
