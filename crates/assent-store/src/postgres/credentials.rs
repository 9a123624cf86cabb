//! Workspaces, API keys and auth tokens in PostgreSQL. Mirrors `sqlite/credentials.rs`.

use super::seen_credentials::CREDENTIALS_CHANNEL;
use super::{execute, query, query_opt, read_opt, BOOTSTRAP_LOCK};
use crate::credentials::{new_workspace_id, secret_hash, SecretKind};
use crate::{AuthOutcome, NewCredentials, StoreError, StoreResult, WorkspaceInfo};
use deadpool_postgres::{Client, Transaction};

pub(super) async fn create_workspace(
    txn: &Transaction<'_>,
    name: &str,
    now_ms: i64,
) -> StoreResult<NewCredentials> {
    let workspace_id = new_workspace_id();
    execute(
        txn,
        "INSERT INTO workspaces (workspace_id, name, created_at_ms) VALUES ($1, $2, $3)",
        &[&workspace_id, &name, &now_ms],
    )
    .await?;
    execute(
        txn,
        "INSERT INTO write_seqs (workspace_id, last_write_seq) VALUES ($1, 0)",
        &[&workspace_id],
    )
    .await?;

    let api_key = insert_secret(txn, SecretKind::ApiKey, &workspace_id, now_ms).await?;
    let auth_token = insert_secret(txn, SecretKind::AuthToken, &workspace_id, now_ms).await?;
    Ok(NewCredentials { workspace_id, api_key, auth_token })
}

/// There is no row to lock in an empty store, so racing processes queue on an advisory
/// lock; the first creates the workspace, the others then find it.
pub(super) async fn bootstrap_workspace(
    txn: &Transaction<'_>,
    name: &str,
    now_ms: i64,
) -> StoreResult<Option<NewCredentials>> {
    execute(txn, "SELECT pg_advisory_xact_lock($1)", &[&BOOTSTRAP_LOCK]).await?;
    let any_workspace = query_opt(txn, "SELECT 1 FROM workspaces LIMIT 1", &[]).await?.is_some();
    if any_workspace {
        return Ok(None);
    }
    create_workspace(txn, name, now_ms).await.map(Some)
}

pub(super) async fn list_workspaces(txn: &Transaction<'_>) -> StoreResult<Vec<WorkspaceInfo>> {
    let rows = query(
        txn,
        "SELECT w.workspace_id, w.name, w.created_at_ms,
                (SELECT COUNT(*) FROM api_keys k
                  WHERE k.workspace_id = w.workspace_id AND k.revoked_at_ms IS NULL),
                (SELECT COUNT(*) FROM auth_tokens t
                  WHERE t.workspace_id = w.workspace_id AND t.revoked_at_ms IS NULL)
           FROM workspaces w
          ORDER BY w.created_at_ms, w.workspace_id",
        &[],
    )
    .await?;
    let workspace = |row: &tokio_postgres::Row| -> StoreResult<WorkspaceInfo> {
        Ok(WorkspaceInfo {
            workspace_id: row.try_get(0)?,
            name: row.try_get(1)?,
            created_at_ms: row.try_get(2)?,
            live_api_keys: row.try_get(3)?,
            live_auth_tokens: row.try_get(4)?,
        })
    };
    rows.iter().map(workspace).collect()
}

/// A new secret of `kind` for a workspace; `NotFound` if there is no such workspace.
pub(super) async fn create_secret(
    txn: &Transaction<'_>,
    kind: SecretKind,
    workspace_id: &str,
    now_ms: i64,
) -> StoreResult<String> {
    let workspace_exists =
        query_opt(txn, "SELECT 1 FROM workspaces WHERE workspace_id = $1", &[&workspace_id])
            .await?
            .is_some();
    if !workspace_exists {
        return Err(StoreError::NotFound);
    }
    insert_secret(txn, kind, workspace_id, now_ms).await
}

async fn insert_secret(
    txn: &Transaction<'_>,
    kind: SecretKind,
    workspace_id: &str,
    now_ms: i64,
) -> StoreResult<String> {
    let secret = kind.new_secret();
    let sql = format!(
        "INSERT INTO {} (secret_hash, workspace_id, created_at_ms) VALUES ($1, $2, $3)",
        kind.table()
    );
    execute(txn, &sql, &[&secret_hash(&secret), &workspace_id, &now_ms]).await?;
    Ok(secret)
}

/// Revokes a live secret given in clear; `NotFound` if none matches.
pub(super) async fn revoke_secret(
    txn: &Transaction<'_>,
    kind: SecretKind,
    secret: &str,
    now_ms: i64,
) -> StoreResult<()> {
    let sql = format!(
        "UPDATE {} SET revoked_at_ms = $2 WHERE secret_hash = $1 AND revoked_at_ms IS NULL",
        kind.table()
    );
    let revoked = execute(txn, &sql, &[&secret_hash(secret), &now_ms]).await?;
    if revoked == 0 {
        return Err(StoreError::NotFound);
    }
    // Delivered at commit to every process listening, which then forgets what it kept.
    execute(txn, "SELECT pg_notify($1, '')", &[&CREDENTIALS_CHANNEL]).await?;
    Ok(())
}

pub(super) async fn workspace_of_api_key(
    txn: &Transaction<'_>,
    api_key: &str,
) -> StoreResult<Option<String>> {
    let row = query_opt(
        txn,
        "SELECT workspace_id FROM api_keys
          WHERE secret_hash = $1 AND revoked_at_ms IS NULL",
        &[&secret_hash(api_key)],
    )
    .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// Checks credentials given as their hashes: `api_key` and `auth_token` are
/// [`secret_hash`]es, an empty token header counting as none.
pub(super) async fn authenticate(
    client: &Client,
    api_key: &str,
    auth_token: Option<&str>,
) -> StoreResult<AuthOutcome> {
    let row = read_opt(
        client,
        "SELECT k.workspace_id,
                EXISTS (SELECT 1 FROM auth_tokens t
                         WHERE t.secret_hash = $2 AND t.workspace_id = k.workspace_id
                           AND t.revoked_at_ms IS NULL)
           FROM api_keys k
          WHERE k.secret_hash = $1 AND k.revoked_at_ms IS NULL",
        &[&api_key, &auth_token],
    )
    .await?;
    let Some(row) = row else {
        return Ok(AuthOutcome::UnknownApiKey);
    };
    let (workspace_id, token_is_live): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
    Ok(match auth_token {
        None => AuthOutcome::MissingAuthToken,
        Some(_) if !token_is_live => AuthOutcome::BadAuthToken,
        Some(_) => AuthOutcome::Authenticated { workspace_id },
    })
}
