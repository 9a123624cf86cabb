//! Workspaces, API keys and auth tokens in SQLite. Mirrors `postgres/credentials.rs`.

use crate::credentials::{new_workspace_id, secret_hash, SecretKind};
use crate::{AuthOutcome, NewCredentials, StoreError, StoreResult, WorkspaceInfo};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn create_workspace(
    conn: &Connection,
    name: &str,
    now_ms: i64,
) -> StoreResult<NewCredentials> {
    let workspace_id = new_workspace_id();
    conn.prepare_cached(
        "INSERT INTO workspaces (workspace_id, name, created_at_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![workspace_id, name, now_ms])?;
    conn.prepare_cached("INSERT INTO write_seqs (workspace_id, last_write_seq) VALUES (?1, 0)")?
        .execute([&workspace_id])?;

    let api_key = insert_secret(conn, SecretKind::ApiKey, &workspace_id, now_ms)?;
    let auth_token = insert_secret(conn, SecretKind::AuthToken, &workspace_id, now_ms)?;
    Ok(NewCredentials { workspace_id, api_key, auth_token })
}

/// The single writer runs one job at a time, so checking and creating cannot interleave.
pub(super) fn bootstrap_workspace(
    conn: &Connection,
    name: &str,
    now_ms: i64,
) -> StoreResult<Option<NewCredentials>> {
    let any_workspace = conn.prepare_cached("SELECT 1 FROM workspaces LIMIT 1")?.exists([])?;
    if any_workspace {
        return Ok(None);
    }
    create_workspace(conn, name, now_ms).map(Some)
}

pub(super) fn list_workspaces(conn: &Connection) -> StoreResult<Vec<WorkspaceInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT w.workspace_id, w.name, w.created_at_ms,
                (SELECT COUNT(*) FROM api_keys k
                  WHERE k.workspace_id = w.workspace_id AND k.revoked_at_ms IS NULL),
                (SELECT COUNT(*) FROM auth_tokens t
                  WHERE t.workspace_id = w.workspace_id AND t.revoked_at_ms IS NULL)
           FROM workspaces w
          ORDER BY w.created_at_ms, w.workspace_id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(WorkspaceInfo {
            workspace_id: row.get(0)?,
            name: row.get(1)?,
            created_at_ms: row.get(2)?,
            live_api_keys: row.get(3)?,
            live_auth_tokens: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A new secret of `kind` for a workspace; `NotFound` if there is no such workspace.
pub(super) fn create_secret(
    conn: &Connection,
    kind: SecretKind,
    workspace_id: &str,
    now_ms: i64,
) -> StoreResult<String> {
    let workspace_exists = conn
        .prepare_cached("SELECT 1 FROM workspaces WHERE workspace_id = ?1")?
        .exists([workspace_id])?;
    if !workspace_exists {
        return Err(StoreError::NotFound);
    }
    insert_secret(conn, kind, workspace_id, now_ms)
}

fn insert_secret(
    conn: &Connection,
    kind: SecretKind,
    workspace_id: &str,
    now_ms: i64,
) -> StoreResult<String> {
    let secret = kind.new_secret();
    let sql = format!(
        "INSERT INTO {} (secret_hash, workspace_id, created_at_ms) VALUES (?1, ?2, ?3)",
        kind.table()
    );
    conn.prepare_cached(&sql)?.execute(params![secret_hash(&secret), workspace_id, now_ms])?;
    Ok(secret)
}

/// Revokes a live secret given in clear; `NotFound` if none matches.
pub(super) fn revoke_secret(
    conn: &Connection,
    kind: SecretKind,
    secret: &str,
    now_ms: i64,
) -> StoreResult<()> {
    let sql = format!(
        "UPDATE {} SET revoked_at_ms = ?2 WHERE secret_hash = ?1 AND revoked_at_ms IS NULL",
        kind.table()
    );
    let revoked = conn.prepare_cached(&sql)?.execute(params![secret_hash(secret), now_ms])?;
    if revoked == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn workspace_of_api_key(
    conn: &Connection,
    api_key: &str,
) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT workspace_id FROM api_keys
              WHERE secret_hash = ?1 AND revoked_at_ms IS NULL",
        )?
        .query_row([secret_hash(api_key)], |row| row.get(0))
        .optional()?)
}

pub(super) fn authenticate(
    conn: &Connection,
    api_key: Option<&str>,
    auth_token: Option<&str>,
) -> StoreResult<AuthOutcome> {
    let Some(api_key) = api_key else {
        return Ok(AuthOutcome::UnknownApiKey);
    };
    let workspace_id: Option<String> = conn
        .prepare_cached(
            "SELECT workspace_id FROM api_keys
              WHERE secret_hash = ?1 AND revoked_at_ms IS NULL",
        )?
        .query_row([secret_hash(api_key)], |row| row.get(0))
        .optional()?;
    let Some(workspace_id) = workspace_id else {
        return Ok(AuthOutcome::UnknownApiKey);
    };

    // An empty header is no token at all.
    let Some(auth_token) = auth_token.filter(|token| !token.is_empty()) else {
        return Ok(AuthOutcome::MissingAuthToken);
    };
    let token_is_live = conn
        .prepare_cached(
            "SELECT 1 FROM auth_tokens
              WHERE secret_hash = ?1 AND workspace_id = ?2 AND revoked_at_ms IS NULL",
        )?
        .exists(params![secret_hash(auth_token), workspace_id])?;
    if !token_is_live {
        return Ok(AuthOutcome::BadAuthToken);
    }
    Ok(AuthOutcome::Authenticated { workspace_id })
}
