//! Connections and the app trigger index in PostgreSQL. Mirrors `sqlite/connections.rs`. The
//! primary key on (provider, installation) settles two processes connecting one installation
//! at once: one insert wins, the other finds the row. Lists sort by byte order (`COLLATE
//! "C"`), as SQLite's do.

use super::{execute, query, query_opt};
use crate::connections::{provider_named, APP_TRIGGER_DEFINITIONS_MAX};
use crate::{
    AppTriggerEntry, Connection, ConnectionRecord, NewConnection, StoreError, StoreResult,
};
use assent_core::model::AppProvider;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "workspace_id, provider, installation_ref, created_at_ms";

pub(super) async fn add(
    txn: &Transaction<'_>,
    new: &NewConnection,
    now_ms: i64,
) -> StoreResult<ConnectionRecord> {
    let workspace = &new.workspace_id;
    let sql = "SELECT 1 FROM workspaces WHERE workspace_id = $1";
    if query_opt(txn, sql, &[workspace]).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    let inserted = execute(
        txn,
        "INSERT INTO connections (workspace_id, provider, installation_ref, webhook_secret,
                                  created_at_ms)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (provider, installation_ref) DO NOTHING",
        &[workspace, &new.provider.as_str(), &new.installation_ref, &new.webhook_secret, &now_ms],
    )
    .await?;
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

pub(super) async fn list(
    txn: &Transaction<'_>,
    workspace_id: Option<&str>,
) -> StoreResult<Vec<ConnectionRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM connections
          WHERE $1::TEXT IS NULL OR workspace_id = $1
          ORDER BY workspace_id COLLATE \"C\", provider, installation_ref COLLATE \"C\""
    );
    let rows = query(txn, &sql, &[&workspace_id]).await?;
    rows.iter().map(record_from_row).collect()
}

pub(super) async fn remove(
    txn: &Transaction<'_>,
    provider: AppProvider,
    installation_ref: &str,
) -> StoreResult<ConnectionRecord> {
    let sql = format!(
        "DELETE FROM connections WHERE provider = $1 AND installation_ref = $2
         RETURNING {RECORD_COLUMNS}"
    );
    let row = query_opt(txn, &sql, &[&provider.as_str(), &installation_ref]).await?;
    row.as_ref().map(record_from_row).unwrap_or(Err(StoreError::NotFound))
}

pub(super) async fn get(
    txn: &Transaction<'_>,
    provider: AppProvider,
    installation_ref: &str,
) -> StoreResult<Option<Connection>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, webhook_secret FROM connections
          WHERE provider = $1 AND installation_ref = $2"
    );
    let Some(row) = query_opt(txn, &sql, &[&provider.as_str(), &installation_ref]).await? else {
        return Ok(None);
    };
    Ok(Some(Connection { record: record_from_row(&row)?, webhook_secret: row.try_get(4)? }))
}

/// Replaces a definition's entries in the app trigger index with `entries`.
pub(super) async fn replace_index(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
    entries: &[AppTriggerEntry],
) -> StoreResult<()> {
    remove_index(txn, workspace_id, definition_id).await?;
    for entry in entries {
        execute(
            txn,
            "INSERT INTO app_triggers (workspace_id, definition_id, provider, installation_ref)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&workspace_id, &definition_id, &entry.provider.as_str(), &entry.installation_ref],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn remove_index(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: &str,
) -> StoreResult<()> {
    execute(
        txn,
        "DELETE FROM app_triggers WHERE workspace_id = $1 AND definition_id = $2",
        &[&workspace_id, &definition_id],
    )
    .await?;
    Ok(())
}

pub(super) async fn definitions_naming(
    txn: &Transaction<'_>,
    workspace_id: &str,
    provider: AppProvider,
    installation_ref: &str,
    limit: u32,
) -> StoreResult<Vec<String>> {
    let limit = i64::from(limit.clamp(1, APP_TRIGGER_DEFINITIONS_MAX));
    let rows = query(
        txn,
        "SELECT definition_id FROM app_triggers
          WHERE workspace_id = $1 AND provider = $2 AND installation_ref = $3
          ORDER BY definition_id COLLATE \"C\"
          LIMIT $4",
        &[&workspace_id, &provider.as_str(), &installation_ref, &limit],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

fn record_from_row(row: &Row) -> StoreResult<ConnectionRecord> {
    let provider: String = row.try_get(1)?;
    Ok(ConnectionRecord {
        workspace_id: row.try_get(0)?,
        provider: provider_named(&provider)?,
        installation_ref: row.try_get(2)?,
        created_at_ms: row.try_get(3)?,
    })
}
