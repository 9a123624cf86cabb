//! Executions, their idempotency keys, events and timers in SQLite. Mirrors
//! `postgres/executions.rs`. Every write runs on the writer thread, which serialises them:
//! a dispatch that finds no key cannot be overtaken by another before it inserts its own.

use super::deliveries;
use crate::executions::{self, next_seq_after, ExecutionCursor};
use crate::shared::{page_size_bounded, TIMER_CLAIM_MAX};
use crate::{
    ClaimedTimer, DefinitionHead, DefinitionStatus, DispatchLookup, DispatchOutcome, EventPage,
    EventRecord, ExecutionChanges, ExecutionPage, ExecutionRecord, ExecutionStatus, ExecutionWrite,
    PinnedVersion, StoreError, StoreResult,
};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, ToSql};
use serde_json::Value;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "workspace_id, execution_id, definition_id, definition_version, \
     status, correlation_id, idempotency_key, started_at_ms, updated_at_ms, next_seq, state";

pub(super) fn dispatch_execution(
    conn: &Connection,
    workspace_id: &str,
    write: ExecutionWrite,
    idempotency_expires_at_ms: Option<i64>,
) -> StoreResult<DispatchOutcome> {
    let record = &write.record;
    let now_ms = record.started_at_ms;
    if let Some((execution_id, correlation_id)) =
        lookup_idempotency_key(conn, workspace_id, &record.idempotency_key, now_ms)?
    {
        return Ok(DispatchOutcome::Replayed { execution_id, correlation_id });
    }
    check_definition_active(conn, workspace_id, &record.definition_id)?;

    // An expired key is all that can still hold this one's place.
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (workspace_id, idempotency_key, execution_id,
                                       correlation_id, expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (workspace_id, idempotency_key) DO UPDATE
            SET execution_id = excluded.execution_id,
                correlation_id = excluded.correlation_id,
                expires_at_ms = excluded.expires_at_ms",
    )?
    .execute(params![
        workspace_id,
        record.idempotency_key,
        record.execution_id,
        record.correlation_id,
        idempotency_expires_at_ms,
    ])?;
    insert_execution(conn, workspace_id, record, &write.changes)?;
    let owner = Owner {
        workspace_id,
        execution_id: &record.execution_id,
        correlation_id: &record.correlation_id,
        updated_at_ms: record.updated_at_ms,
    };
    apply_changes(conn, &owner, &write.changes)?;
    Ok(DispatchOutcome::Created)
}

/// The key's execution and the definition's head, in one statement.
pub(super) fn dispatch_lookup(
    conn: &Connection,
    workspace_id: &str,
    idempotency_key: Option<&str>,
    definition_id: &str,
    now_ms: i64,
) -> StoreResult<DispatchLookup> {
    let mut stmt = conn.prepare_cached(
        "SELECT k.execution_id, k.correlation_id,
                d.version, d.status, d.created_at_ms, d.updated_at_ms
           FROM (SELECT 1) AS one
           LEFT JOIN idempotency_keys k
             ON k.workspace_id = ?1 AND k.idempotency_key = ?2
            AND (k.expires_at_ms IS NULL OR k.expires_at_ms > ?4)
           LEFT JOIN definitions d
             ON d.workspace_id = ?1 AND d.definition_id = ?3",
    )?;
    let row =
        stmt.query_row(params![workspace_id, idempotency_key, definition_id, now_ms], |row| {
            let replay = row.get::<_, Option<String>>(0)?.zip(row.get::<_, Option<String>>(1)?);
            let head = row.get::<_, Option<i64>>(2)?.map(|version| -> rusqlite::Result<_> {
                Ok((version, row.get::<_, String>(3)?, row.get(4)?, row.get(5)?))
            });
            Ok((replay, head.transpose()?))
        })?;
    let (replay, head) = row;
    let definition = head
        .map(|(version, status, created_at_ms, updated_at_ms)| {
            let status = DefinitionStatus::parse(&status)?;
            Ok::<_, StoreError>(DefinitionHead { version, status, created_at_ms, updated_at_ms })
        })
        .transpose()?;
    Ok(DispatchLookup { replay, definition })
}

fn lookup_idempotency_key(
    conn: &Connection,
    workspace_id: &str,
    idempotency_key: &str,
    now_ms: i64,
) -> StoreResult<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT execution_id, correlation_id FROM idempotency_keys
              WHERE workspace_id = ?1 AND idempotency_key = ?2
                AND (expires_at_ms IS NULL OR expires_at_ms > ?3)",
        )?
        .query_row(params![workspace_id, idempotency_key, now_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?)
}

/// `NotFound` without a definition of this id, `DefinitionNotActive` for a tombstone.
fn check_definition_active(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<()> {
    let status: Option<String> = conn
        .prepare_cached(
            "SELECT status FROM definitions WHERE workspace_id = ?1 AND definition_id = ?2",
        )?
        .query_row(params![workspace_id, definition_id], |row| row.get(0))
        .optional()?;
    match status.as_deref().map(DefinitionStatus::parse).transpose()? {
        Some(DefinitionStatus::Active) => Ok(()),
        Some(DefinitionStatus::Tombstoned) => Err(StoreError::DefinitionNotActive),
        None => Err(StoreError::NotFound),
    }
}

fn insert_execution(
    conn: &Connection,
    workspace_id: &str,
    record: &ExecutionRecord,
    changes: &ExecutionChanges,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO executions (workspace_id, execution_id, definition_id, definition_version,
                                 status, correlation_id, idempotency_key, started_at_ms,
                                 updated_at_ms, next_seq, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        workspace_id,
        record.execution_id,
        record.definition_id,
        record.definition_version,
        record.status.as_str(),
        record.correlation_id,
        record.idempotency_key,
        record.started_at_ms,
        record.updated_at_ms,
        next_seq_after(1, &changes.events),
        record.state,
    ])?;
    Ok(())
}

pub(super) fn get_execution(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
) -> StoreResult<Option<ExecutionRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM executions WHERE workspace_id = ?1 AND execution_id = ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![workspace_id, execution_id])?;
    rows.next()?.map(record_from_row).transpose()
}

pub(super) fn pinned_version(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
) -> StoreResult<Option<PinnedVersion>> {
    let mut stmt = conn.prepare_cached(executions::PINNED_VERSION)?;
    let pinned = stmt
        .query_row(params![workspace_id, execution_id], |row| {
            let stored_at_ms = row.get::<_, Option<i64>>(2)?.zip(row.get::<_, Option<i64>>(3)?);
            Ok(PinnedVersion::from_columns(row.get(0)?, row.get(1)?, stored_at_ms))
        })
        .optional()?;
    Ok(pinned)
}

pub(super) fn list_executions(
    conn: &Connection,
    workspace_id: &str,
    definition_id: Option<&str>,
    status: Option<ExecutionStatus>,
    page_size: u32,
    cursor: &ExecutionCursor,
) -> StoreResult<ExecutionPage> {
    let page_size = page_size_bounded(page_size);
    let status = status.map(ExecutionStatus::as_str);
    let mut filters = String::new();
    let mut values: Vec<&dyn ToSql> = vec![&workspace_id, &cursor.started_at_ms];
    values.push(&cursor.execution_id);
    if let Some(definition_id) = &definition_id {
        values.push(definition_id);
        filters.push_str(&format!(" AND definition_id = ?{}", values.len()));
    }
    if let Some(status) = &status {
        values.push(status);
        filters.push_str(&format!(" AND status = ?{}", values.len()));
    }
    // One row past the page says whether another page follows.
    let limit = page_size + 1;
    values.push(&limit);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM executions
          WHERE workspace_id = ?1 AND (started_at_ms, execution_id) < (?2, ?3){filters}
          ORDER BY started_at_ms DESC, execution_id DESC
          LIMIT ?{}",
        values.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(values))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(record_from_row(row)?);
    }

    let more_follow = items.len() as i64 > page_size;
    items.truncate(page_size as usize);
    let next_cursor = items.last().filter(|_| more_follow).map(ExecutionCursor::after);
    Ok(ExecutionPage { items, next_cursor })
}

pub(super) fn get_events(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
    since_seq: i64,
    page_size: u32,
) -> StoreResult<EventPage> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM executions WHERE workspace_id = ?1 AND execution_id = ?2")?
        .exists(params![workspace_id, execution_id])?;
    if !exists {
        return Err(StoreError::NotFound);
    }

    let page_size = page_size_bounded(page_size);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, event_type, step_id, timestamp_ms, correlation_id, data FROM events
          WHERE workspace_id = ?1 AND execution_id = ?2 AND seq > ?3 AND external
          ORDER BY seq
          LIMIT ?4",
    )?;
    let mut rows = stmt.query(params![workspace_id, execution_id, since_seq, page_size + 1])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let data: String = row.get(5)?;
        events.push(EventRecord {
            seq: row.get(0)?,
            event_type: row.get(1)?,
            step_id: row.get(2)?,
            timestamp_ms: row.get(3)?,
            correlation_id: row.get(4)?,
            data: json_from_text(&data)?,
        });
    }
    let has_more = events.len() as i64 > page_size;
    events.truncate(page_size as usize);
    Ok(EventPage { events, has_more })
}

/// Runs `command` on the execution and writes what it leaves. `Ok(Err(_))` when the
/// command refused; the writer then rolls the job back.
pub(super) fn update_execution<T, E, F>(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
    command: F,
) -> StoreResult<Result<T, E>>
where
    F: FnOnce(&mut ExecutionRecord) -> Result<(ExecutionChanges, T), E>,
{
    let mut record =
        get_execution(conn, workspace_id, execution_id)?.ok_or(StoreError::NotFound)?;
    let stored_next_seq = record.next_seq;
    let correlation_id = record.correlation_id.clone();
    let (changes, answer) = match command(&mut record) {
        Ok(done) => done,
        Err(refused) => return Ok(Err(refused)),
    };

    conn.prepare_cached(
        "UPDATE executions SET status = ?3, updated_at_ms = ?4, next_seq = ?5, state = ?6
          WHERE workspace_id = ?1 AND execution_id = ?2",
    )?
    .execute(params![
        workspace_id,
        execution_id,
        record.status.as_str(),
        record.updated_at_ms,
        next_seq_after(stored_next_seq, &changes.events),
        record.state,
    ])?;
    let owner = Owner {
        workspace_id,
        execution_id,
        correlation_id: &correlation_id,
        updated_at_ms: record.updated_at_ms,
    };
    apply_changes(conn, &owner, &changes)?;
    Ok(Ok(answer))
}

/// The execution that events, timers and deliveries belong to.
struct Owner<'a> {
    workspace_id: &'a str,
    execution_id: &'a str,
    correlation_id: &'a str,
    /// As the write leaves the record: when the new deliveries are first due.
    updated_at_ms: i64,
}

/// Appends the events and their deliveries, and clears, then sets, the timers.
fn apply_changes(
    conn: &Connection,
    owner: &Owner<'_>,
    changes: &ExecutionChanges,
) -> StoreResult<()> {
    let ids = (owner.workspace_id, owner.execution_id);
    let mut insert_event = conn.prepare_cached(
        "INSERT INTO events (workspace_id, execution_id, seq, event_type, step_id,
                             timestamp_ms, correlation_id, data, external)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for event in &changes.events {
        insert_event.execute(params![
            ids.0,
            ids.1,
            event.seq,
            event.event_type,
            event.step_id,
            event.timestamp_ms,
            owner.correlation_id,
            event.data.to_string(),
            event.external,
        ])?;
    }
    let deliveries = &changes.deliveries;
    deliveries::insert_deliveries(conn, ids.0, ids.1, deliveries, owner.updated_at_ms)?;

    let mut clear_timer = conn.prepare_cached(
        "DELETE FROM timers WHERE workspace_id = ?1 AND execution_id = ?2 AND timer_key = ?3",
    )?;
    for timer_key in &changes.timers_cleared {
        clear_timer.execute(params![ids.0, ids.1, timer_key])?;
    }
    let mut set_timer = conn.prepare_cached(
        "INSERT INTO timers (workspace_id, execution_id, timer_key, due_at_ms,
                             claimable_at_ms, payload)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)
         ON CONFLICT (workspace_id, execution_id, timer_key) DO UPDATE
            SET due_at_ms = excluded.due_at_ms, claimable_at_ms = excluded.claimable_at_ms,
                payload = excluded.payload",
    )?;
    for timer in &changes.timers_set {
        set_timer.execute(params![
            ids.0,
            ids.1,
            timer.timer_key,
            timer.due_at_ms,
            timer.payload.to_string()
        ])?;
    }
    Ok(())
}

pub(super) fn claim_due_timers(
    conn: &Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> StoreResult<Vec<ClaimedTimer>> {
    let limit = limit.clamp(1, TIMER_CLAIM_MAX);
    let lease_until_ms = now_ms.saturating_add(lease_ms.max(0));
    let mut stmt = conn.prepare_cached(
        "UPDATE timers SET claimable_at_ms = ?2
          WHERE (workspace_id, execution_id, timer_key) IN (
                SELECT workspace_id, execution_id, timer_key FROM timers
                 WHERE claimable_at_ms <= ?1
                 ORDER BY claimable_at_ms
                 LIMIT ?3)
         RETURNING workspace_id, execution_id, timer_key, due_at_ms, payload",
    )?;
    let mut rows = stmt.query(params![now_ms, lease_until_ms, limit])?;
    let mut claimed = Vec::new();
    while let Some(row) = rows.next()? {
        let payload: String = row.get(4)?;
        claimed.push(ClaimedTimer {
            workspace_id: row.get(0)?,
            execution_id: row.get(1)?,
            timer_key: row.get(2)?,
            due_at_ms: row.get(3)?,
            payload: json_from_text(&payload)?,
        });
    }
    claimed.sort_by_key(|timer| timer.due_at_ms);
    Ok(claimed)
}

pub(super) fn next_timer_due_ms(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MIN(claimable_at_ms) FROM timers")?
        .query_row([], |row| row.get(0))?)
}

/// A record from a row of [`RECORD_COLUMNS`].
fn record_from_row(row: &Row<'_>) -> StoreResult<ExecutionRecord> {
    let status: String = row.get(4)?;
    Ok(ExecutionRecord {
        workspace_id: row.get(0)?,
        execution_id: row.get(1)?,
        definition_id: row.get(2)?,
        definition_version: row.get(3)?,
        status: executions::parse_status(&status)?,
        correlation_id: row.get(5)?,
        idempotency_key: row.get(6)?,
        started_at_ms: row.get(7)?,
        updated_at_ms: row.get(8)?,
        next_seq: row.get(9)?,
        state: row.get(10)?,
    })
}

fn json_from_text(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("stored JSON: {e}")))
}
