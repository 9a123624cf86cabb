//! Definitions and their versions in PostgreSQL. Mirrors `sqlite/definitions.rs`.
//!
//! Every create and update first takes the workspace's next write sequence number, which
//! locks that workspace's counter row until commit. So the definition writes of one
//! workspace commit in the order of their numbers, and a list never pages past a number
//! whose write is yet to commit. Delete locks only the definition row; no write takes the
//! two locks in the other order.

use super::{connections, execute, query, query_opt, schedules};
use crate::shared::{page_size_bounded, CURSOR_START};
use crate::{
    DefinitionPage, DefinitionRecord, DefinitionStatus, NewDefinition, StoreError, StoreResult,
};
use deadpool_postgres::Transaction;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str =
    "definition_id, version, status, created_at_ms, updated_at_ms, write_seq, body, view";

pub(super) async fn create_definition(
    txn: &Transaction<'_>,
    workspace_id: &str,
    def: NewDefinition,
    now_ms: i64,
) -> StoreResult<DefinitionRecord> {
    let write_seq = next_write_seq(txn, workspace_id).await?;
    match status_of(txn, workspace_id, &def.definition_id).await? {
        Some(DefinitionStatus::Active) => return Err(StoreError::AlreadyExists),
        // Its versions go with it: the new lineage starts afresh.
        Some(DefinitionStatus::Tombstoned) => remove(txn, workspace_id, &def.definition_id).await?,
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
    // The counter lock already serializes creates; the primary key is the backstop.
    let statement = txn
        .prepare_cached(
            "INSERT INTO definitions (workspace_id, definition_id, status, version,
                                      created_at_ms, updated_at_ms, write_seq, body, view)
             VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    let inserted = txn
        .execute(
            &statement,
            &[
                &workspace_id,
                &record.definition_id,
                &record.version,
                &record.created_at_ms,
                &record.updated_at_ms,
                &record.write_seq,
                &record.body,
                &record.view,
            ],
        )
        .await;
    match inserted {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StoreError::AlreadyExists)
        }
        other => other?,
    };
    insert_version(txn, workspace_id, &record).await?;
    schedules::replace(txn, workspace_id, &record.definition_id, &def.schedules).await?;
    connections::replace_index(txn, workspace_id, &record.definition_id, &def.app_triggers).await?;
    Ok(record)
}

pub(super) async fn update_definition(
    txn: &Transaction<'_>,
    workspace_id: &str,
    def: NewDefinition,
    if_version: i64,
    now_ms: i64,
) -> StoreResult<DefinitionRecord> {
    let write_seq = next_write_seq(txn, workspace_id).await?;
    let updated = query_opt(
        txn,
        "UPDATE definitions
            SET version = version + 1, updated_at_ms = $4, write_seq = $5,
                body = $6, view = $7
          WHERE workspace_id = $1 AND definition_id = $2
            AND status = 'active' AND version = $3
         RETURNING created_at_ms, version",
        &[
            &workspace_id,
            &def.definition_id,
            &if_version,
            &now_ms,
            &write_seq,
            &def.body,
            &def.view,
        ],
    )
    .await?;

    let Some(updated) = updated else {
        return Err(match status_and_version(txn, workspace_id, &def.definition_id).await? {
            Some((DefinitionStatus::Active, current)) => {
                StoreError::VersionConflict { expected: if_version, current }
            }
            _ => StoreError::NotFound,
        });
    };
    let record = DefinitionRecord {
        definition_id: def.definition_id,
        version: updated.try_get(1)?,
        status: DefinitionStatus::Active,
        created_at_ms: updated.try_get(0)?,
        updated_at_ms: now_ms,
        write_seq,
        body: def.body,
        view: def.view,
    };
    insert_version(txn, workspace_id, &record).await?;
    schedules::replace(txn, workspace_id, &record.definition_id, &def.schedules).await?;
    connections::replace_index(txn, workspace_id, &record.definition_id, &def.app_triggers).await?;
    Ok(record)
}

pub(super) async fn get_definition(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<DefinitionRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM definitions
          WHERE workspace_id = $1 AND definition_id = $2 AND status = 'active'"
    );
    let row = query_opt(txn, &sql, &[&workspace_id, &definition_id]).await?;
    row.as_ref().map(record_from_row).transpose()
}

pub(super) async fn get_definition_version(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
    version: i64,
) -> StoreResult<Option<DefinitionRecord>> {
    let row = query_opt(
        txn,
        "SELECT v.definition_id, v.version, d.status, v.created_at_ms, v.updated_at_ms,
                v.write_seq, v.body, v.view
           FROM definition_versions v
           JOIN definitions d
             ON d.workspace_id = v.workspace_id AND d.definition_id = v.definition_id
          WHERE v.workspace_id = $1 AND v.definition_id = $2 AND v.version = $3
            AND d.status = 'active'",
        &[&workspace_id, &definition_id, &version],
    )
    .await?;
    row.as_ref().map(record_from_row).transpose()
}

pub(super) async fn list_definitions(
    txn: &Transaction<'_>,
    workspace_id: &str,
    page_size: u32,
    cursor: Option<i64>,
) -> StoreResult<DefinitionPage> {
    let page_size = page_size_bounded(page_size);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM definitions
          WHERE workspace_id = $1 AND status = 'active' AND write_seq < $2
          ORDER BY write_seq DESC
          LIMIT $3"
    );
    // One row past the page says whether another page follows.
    let cursor = cursor.unwrap_or(CURSOR_START);
    let rows = query(txn, &sql, &[&workspace_id, &cursor, &(page_size + 1)]).await?;
    let mut items = rows.iter().map(record_from_row).collect::<StoreResult<Vec<_>>>()?;

    let more_follow = items.len() as i64 > page_size;
    items.truncate(page_size as usize);
    let next_cursor = if more_follow { items.last().map(|last| last.write_seq) } else { None };
    Ok(DefinitionPage { items, next_cursor })
}

pub(super) async fn delete_definition(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
    purge: bool,
    now_ms: i64,
) -> StoreResult<()> {
    // The row lock makes a dispatch that locks the definition wait for this delete.
    if status_of(txn, workspace_id, definition_id).await? != Some(DefinitionStatus::Active) {
        return Err(StoreError::NotFound);
    }
    let in_flight = query_opt(
        txn,
        "SELECT 1 FROM executions
          WHERE workspace_id = $1 AND definition_id = $2
            AND status IN ('pending', 'running')
          LIMIT 1",
        &[&workspace_id, &definition_id],
    )
    .await?
    .is_some();
    if in_flight {
        return Err(StoreError::InFlight);
    }

    schedules::remove(txn, workspace_id, definition_id).await?;
    connections::remove_index(txn, workspace_id, definition_id).await?;
    if purge {
        return remove(txn, workspace_id, definition_id).await;
    }
    execute(
        txn,
        "UPDATE definitions SET status = 'tombstoned', updated_at_ms = $3
          WHERE workspace_id = $1 AND definition_id = $2",
        &[&workspace_id, &definition_id, &now_ms],
    )
    .await?;
    Ok(())
}

/// The workspace's next write sequence number; `NotFound` if there is no such workspace.
async fn next_write_seq(txn: &Transaction<'_>, workspace_id: &str) -> StoreResult<i64> {
    let row = query_opt(
        txn,
        "UPDATE write_seqs SET last_write_seq = last_write_seq + 1
          WHERE workspace_id = $1
         RETURNING last_write_seq",
        &[&workspace_id],
    )
    .await?;
    Ok(row.ok_or(StoreError::NotFound)?.try_get(0)?)
}

async fn status_of(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<DefinitionStatus>> {
    let found = status_and_version(txn, workspace_id, definition_id).await?;
    Ok(found.map(|(status, _)| status))
}

/// The definition's status without locking its row.
pub(super) async fn peek_status(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<DefinitionStatus>> {
    let sql = "SELECT status FROM definitions WHERE workspace_id = $1 AND definition_id = $2";
    let row = query_opt(txn, sql, &[&workspace_id, &definition_id]).await?;
    row.map(|row| DefinitionStatus::parse(row.try_get(0)?)).transpose()
}

/// Locks the definition's row, if there is one, until the transaction ends.
async fn status_and_version(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<Option<(DefinitionStatus, i64)>> {
    let row = query_opt(
        txn,
        "SELECT status, version FROM definitions
          WHERE workspace_id = $1 AND definition_id = $2
            FOR UPDATE",
        &[&workspace_id, &definition_id],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: &str = row.try_get(0)?;
    Ok(Some((DefinitionStatus::parse(status)?, row.try_get(1)?)))
}

/// Removes a definition; its versions go with it (`ON DELETE CASCADE`).
async fn remove(txn: &Transaction<'_>, workspace_id: &str, definition_id: &str) -> StoreResult<()> {
    execute(
        txn,
        "DELETE FROM definitions WHERE workspace_id = $1 AND definition_id = $2",
        &[&workspace_id, &definition_id],
    )
    .await?;
    Ok(())
}

async fn insert_version(
    txn: &Transaction<'_>,
    workspace_id: &str,
    record: &DefinitionRecord,
) -> StoreResult<()> {
    execute(
        txn,
        "INSERT INTO definition_versions (workspace_id, definition_id, version, created_at_ms,
                                          updated_at_ms, write_seq, body, view)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &workspace_id,
            &record.definition_id,
            &record.version,
            &record.created_at_ms,
            &record.updated_at_ms,
            &record.write_seq,
            &record.body,
            &record.view,
        ],
    )
    .await?;
    Ok(())
}

/// A record from a row of [`RECORD_COLUMNS`].
fn record_from_row(row: &Row) -> StoreResult<DefinitionRecord> {
    let status: &str = row.try_get(2)?;
    Ok(DefinitionRecord {
        definition_id: row.try_get(0)?,
        version: row.try_get(1)?,
        status: DefinitionStatus::parse(status)?,
        created_at_ms: row.try_get(3)?,
        updated_at_ms: row.try_get(4)?,
        write_seq: row.try_get(5)?,
        body: row.try_get(6)?,
        view: row.try_get(7)?,
    })
}
