//! Definitions and their versions in SQLite. Mirrors `postgres/definitions.rs`.

use super::{connections, schedules};
use crate::shared::{page_size_bounded, CURSOR_START};
use crate::{
    DefinitionPage, DefinitionRecord, DefinitionStatus, NewDefinition, StoreError, StoreResult,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str =
    "definition_id, version, status, created_at_ms, updated_at_ms, write_seq, body, view";

pub(super) fn create_definition(
    conn: &Connection,
    workspace_id: &str,
    def: NewDefinition,
    now_ms: i64,
) -> StoreResult<DefinitionRecord> {
    let write_seq = next_write_seq(conn, workspace_id)?;
    match status_of(conn, workspace_id, &def.definition_id)? {
        Some(DefinitionStatus::Active) => return Err(StoreError::AlreadyExists),
        // Its versions go with it: the new lineage starts afresh.
        Some(DefinitionStatus::Tombstoned) => remove(conn, workspace_id, &def.definition_id)?,
        None => {}
    }

    let record = DefinitionRecord {
        definition_id: def.definition_id,
        version: 1,
        status: DefinitionStatus::Active,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        write_seq,
        body: def.body,
        view: def.view,
    };
    conn.prepare_cached(
        "INSERT INTO definitions (workspace_id, definition_id, status, version,
                                  created_at_ms, updated_at_ms, write_seq, body, view)
         VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        workspace_id,
        record.definition_id,
        record.version,
        record.created_at_ms,
        record.updated_at_ms,
        record.write_seq,
        record.body.to_string(),
        record.view.to_string(),
    ])?;
    insert_version(conn, workspace_id, &record)?;
    schedules::replace(conn, workspace_id, &record.definition_id, &def.schedules)?;
    connections::replace_index(conn, workspace_id, &record.definition_id, &def.app_triggers)?;
    Ok(record)
}

pub(super) fn update_definition(
    conn: &Connection,
    workspace_id: &str,
    def: NewDefinition,
    if_version: i64,
    now_ms: i64,
) -> StoreResult<DefinitionRecord> {
    let write_seq = next_write_seq(conn, workspace_id)?;
    let updated: Option<(i64, i64)> = conn
        .prepare_cached(
            "UPDATE definitions
                SET version = version + 1, updated_at_ms = ?4, write_seq = ?5,
                    body = ?6, view = ?7
              WHERE workspace_id = ?1 AND definition_id = ?2
                AND status = 'active' AND version = ?3
             RETURNING created_at_ms, version",
        )?
        .query_row(
            params![
                workspace_id,
                def.definition_id,
                if_version,
                now_ms,
                write_seq,
                def.body.to_string(),
                def.view.to_string(),
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;

    let Some((created_at_ms, version)) = updated else {
        return Err(match status_and_version(conn, workspace_id, &def.definition_id)? {
            Some((DefinitionStatus::Active, current)) => {
                StoreError::VersionConflict { expected: if_version, current }
            }
            _ => StoreError::NotFound,
        });
    };
    let record = DefinitionRecord {
        definition_id: def.definition_id,
        version,
        status: DefinitionStatus::Active,
        created_at_ms,
        updated_at_ms: now_ms,
        write_seq,
        body: def.body,
        view: def.view,
    };
    insert_version(conn, workspace_id, &record)?;
    schedules::replace(conn, workspace_id, &record.definition_id, &def.schedules)?;
    connections::replace_index(conn, workspace_id, &record.definition_id, &def.app_triggers)?;
    Ok(record)
}

pub(super) fn get_definition(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<DefinitionRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM definitions
          WHERE workspace_id = ?1 AND definition_id = ?2 AND status = 'active'"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![workspace_id, definition_id])?;
    rows.next()?.map(record_from_row).transpose()
}

pub(super) fn get_definition_version(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
    version: i64,
) -> StoreResult<Option<DefinitionRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.definition_id, v.version, d.status, v.created_at_ms, v.updated_at_ms,
                    v.write_seq, v.body, v.view
               FROM definition_versions v
               JOIN definitions d
                 ON d.workspace_id = v.workspace_id AND d.definition_id = v.definition_id
              WHERE v.workspace_id = ?1 AND v.definition_id = ?2 AND v.version = ?3
                AND d.status = 'active'",
    )?;
    let mut rows = stmt.query(params![workspace_id, definition_id, version])?;
    rows.next()?.map(record_from_row).transpose()
}

pub(super) fn list_definitions(
    conn: &Connection,
    workspace_id: &str,
    page_size: u32,
    cursor: Option<i64>,
) -> StoreResult<DefinitionPage> {
    let page_size = page_size_bounded(page_size);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM definitions
          WHERE workspace_id = ?1 AND status = 'active' AND write_seq < ?2
          ORDER BY write_seq DESC
          LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    // One row past the page says whether another page follows.
    let params = params![workspace_id, cursor.unwrap_or(CURSOR_START), page_size + 1];
    let mut rows = stmt.query(params)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(record_from_row(row)?);
    }

    let more_follow = items.len() as i64 > page_size;
    items.truncate(page_size as usize);
    let next_cursor = if more_follow { items.last().map(|last| last.write_seq) } else { None };
    Ok(DefinitionPage { items, next_cursor })
}

pub(super) fn delete_definition(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
    purge: bool,
    now_ms: i64,
) -> StoreResult<()> {
    if status_of(conn, workspace_id, definition_id)? != Some(DefinitionStatus::Active) {
        return Err(StoreError::NotFound);
    }
    let in_flight = conn
        .prepare_cached(
            "SELECT 1 FROM executions
              WHERE workspace_id = ?1 AND definition_id = ?2
                AND status IN ('pending', 'running')
              LIMIT 1",
        )?
        .exists(params![workspace_id, definition_id])?;
    if in_flight {
        return Err(StoreError::InFlight);
    }

    schedules::remove(conn, workspace_id, definition_id)?;
    connections::remove_index(conn, workspace_id, definition_id)?;
    if purge {
        return remove(conn, workspace_id, definition_id);
    }
    conn.prepare_cached(
        "UPDATE definitions SET status = 'tombstoned', updated_at_ms = ?3
          WHERE workspace_id = ?1 AND definition_id = ?2",
    )?
    .execute(params![workspace_id, definition_id, now_ms])?;
    Ok(())
}

/// The workspace's next write sequence number; `NotFound` if there is no such workspace.
fn next_write_seq(conn: &Connection, workspace_id: &str) -> StoreResult<i64> {
    conn.prepare_cached(
        "UPDATE write_seqs SET last_write_seq = last_write_seq + 1
          WHERE workspace_id = ?1
         RETURNING last_write_seq",
    )?
    .query_row([workspace_id], |row| row.get(0))
    .optional()?
    .ok_or(StoreError::NotFound)
}

pub(super) fn status_of(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<DefinitionStatus>> {
    Ok(status_and_version(conn, workspace_id, definition_id)?.map(|(status, _)| status))
}

fn status_and_version(
    conn: &Connection,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<(DefinitionStatus, i64)>> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT status, version FROM definitions
              WHERE workspace_id = ?1 AND definition_id = ?2",
        )?
        .query_row(params![workspace_id, definition_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    row.map(|(status, version)| Ok((DefinitionStatus::parse(&status)?, version))).transpose()
}

/// Removes a definition; its versions go with it (`ON DELETE CASCADE`).
fn remove(conn: &Connection, workspace_id: &str, definition_id: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM definitions WHERE workspace_id = ?1 AND definition_id = ?2")?
        .execute(params![workspace_id, definition_id])?;
    Ok(())
}

fn insert_version(
    conn: &Connection,
    workspace_id: &str,
    record: &DefinitionRecord,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO definition_versions (workspace_id, definition_id, version, created_at_ms,
                                          updated_at_ms, write_seq, body, view)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        workspace_id,
        record.definition_id,
        record.version,
        record.created_at_ms,
        record.updated_at_ms,
        record.write_seq,
        record.body.to_string(),
        record.view.to_string(),
    ])?;
    Ok(())
}

/// A record from a row of [`RECORD_COLUMNS`].
fn record_from_row(row: &Row<'_>) -> StoreResult<DefinitionRecord> {
    let status: String = row.get(2)?;
    let body: String = row.get(6)?;
    let view: String = row.get(7)?;
    Ok(DefinitionRecord {
        definition_id: row.get(0)?,
        version: row.get(1)?,
        status: DefinitionStatus::parse(&status)?,
        created_at_ms: row.get(3)?,
        updated_at_ms: row.get(4)?,
        write_seq: row.get(5)?,
        body: json_from_text(&body)?,
        view: json_from_text(&view)?,
    })
}

fn json_from_text(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("stored JSON: {e}")))
}
