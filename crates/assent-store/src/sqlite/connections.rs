//! Connections and the app trigger index in SQLite. Mirrors `postgres/connections.rs`.

use crate::connections::{provider_named, APP_TRIGGER_DEFINITIONS_MAX};
use crate::{
    AppTriggerEntry, Connection, ConnectionRecord, NewConnection, StoreError, StoreResult,
};
use assent_core::model::AppProvider;
use rusqlite::{params, Connection as Db, OptionalExtension, Row};

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "workspace_id, provider, installation_ref, created_at_ms";

pub(super) fn add(db: &Db, new: &NewConnection, now_ms: i64) -> StoreResult<ConnectionRecord> {
    let workspace_exists = db
        .prepare_cached("SELECT 1 FROM workspaces WHERE workspace_id = ?1")?
        .exists([&new.workspace_id])?;
    if !workspace_exists {
        return Err(StoreError::NotFound);
    }
    let inserted = db
        .prepare_cached(
            "INSERT INTO connections (workspace_id, provider, installation_ref, webhook_secret,
                                      created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (provider, installation_ref) DO NOTHING",
        )?
        .execute(params![
            new.workspace_id,
            new.provider.as_str(),
            new.installation_ref,
            new.webhook_secret,
            now_ms
        ])?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists);
    }
    Ok(ConnectionRecord {
        workspace_id: new.workspace_id.clone(),
        provider: new.provider,
        installation_ref: new.installation_ref.clone(),
        created_at_ms: now_ms,
    })
}

pub(super) fn list(db: &Db, workspace_id: Option<&str>) -> StoreResult<Vec<ConnectionRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM connections
          WHERE ?1 IS NULL OR workspace_id = ?1
          ORDER BY workspace_id, provider, installation_ref"
    );
    let mut select = db.prepare_cached(&sql)?;
    let mut rows = select.query([workspace_id])?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        records.push(record_from_row(row)?);
    }
    Ok(records)
}

pub(super) fn remove(
    db: &Db,
    provider: AppProvider,
    installation_ref: &str,
) -> StoreResult<ConnectionRecord> {
    let sql = format!(
        "DELETE FROM connections WHERE provider = ?1 AND installation_ref = ?2
         RETURNING {RECORD_COLUMNS}"
    );
    let mut delete = db.prepare_cached(&sql)?;
    let mut rows = delete.query(params![provider.as_str(), installation_ref])?;
    match rows.next()? {
        Some(row) => record_from_row(row),
        None => Err(StoreError::NotFound),
    }
}

pub(super) fn get(
    db: &Db,
    provider: AppProvider,
    installation_ref: &str,
) -> StoreResult<Option<Connection>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, webhook_secret FROM connections
          WHERE provider = ?1 AND installation_ref = ?2"
    );
    let found = db
        .prepare_cached(&sql)?
        .query_row(params![provider.as_str(), installation_ref], |row| {
            Ok((row_columns(row)?, row.get::<_, String>(4)?))
        })
        .optional()?;
    let Some((columns, webhook_secret)) = found else { return Ok(None) };
    Ok(Some(Connection { record: record_from_columns(columns)?, webhook_secret }))
}

/// Replaces a definition's entries in the app trigger index with `entries`.
pub(super) fn replace_index(
    db: &Db,
    workspace_id: &str,
    definition_id: &str,
    entries: &[AppTriggerEntry],
) -> StoreResult<()> {
    remove_index(db, workspace_id, definition_id)?;
    let mut insert = db.prepare_cached(
        "INSERT INTO app_triggers (workspace_id, definition_id, provider, installation_ref)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
    )?;
    for entry in entries {
        let provider = entry.provider.as_str();
        insert.execute(params![workspace_id, definition_id, provider, entry.installation_ref])?;
    }
    Ok(())
}

pub(super) fn remove_index(db: &Db, workspace_id: &str, definition_id: &str) -> StoreResult<()> {
    db.prepare_cached("DELETE FROM app_triggers WHERE workspace_id = ?1 AND definition_id = ?2")?
        .execute(params![workspace_id, definition_id])?;
    Ok(())
}

pub(super) fn definitions_naming(
    db: &Db,
    workspace_id: &str,
    provider: AppProvider,
    installation_ref: &str,
    limit: u32,
) -> StoreResult<Vec<String>> {
    let limit = limit.clamp(1, APP_TRIGGER_DEFINITIONS_MAX);
    let mut select = db.prepare_cached(
        "SELECT definition_id FROM app_triggers
          WHERE workspace_id = ?1 AND provider = ?2 AND installation_ref = ?3
          ORDER BY definition_id
          LIMIT ?4",
    )?;
    let rows = select
        .query_map(params![workspace_id, provider.as_str(), installation_ref, limit], |row| {
            row.get(0)
        })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

type Columns = (String, String, String, i64);

fn row_columns(row: &Row<'_>) -> rusqlite::Result<Columns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn record_from_row(row: &Row<'_>) -> StoreResult<ConnectionRecord> {
    record_from_columns(row_columns(row)?)
}

fn record_from_columns(
    (workspace_id, provider, installation_ref, created_at_ms): Columns,
) -> StoreResult<ConnectionRecord> {
    Ok(ConnectionRecord {
        workspace_id,
        provider: provider_named(&provider)?,
        installation_ref,
        created_at_ms,
    })
}
