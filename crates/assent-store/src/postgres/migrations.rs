//! The PostgreSQL schema, one migration per step. Kept in step with `sqlite/migrations.rs`:
//! same tables, same columns, same order; only the types differ. Bodies are JSON, not JSONB,
//! so that they keep their key order as SQLite's TEXT does.

use crate::shared::Migration;

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "workspaces, credentials, definitions, executions",
    sql: r#"
CREATE TABLE workspaces (
    workspace_id   TEXT    NOT NULL PRIMARY KEY,
    name           TEXT    NOT NULL,
    created_at_ms  BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    secret_hash    TEXT    NOT NULL PRIMARY KEY,
    workspace_id   TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    created_at_ms  BIGINT  NOT NULL,
    revoked_at_ms  BIGINT 
);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id);

CREATE TABLE auth_tokens (
    secret_hash    TEXT    NOT NULL PRIMARY KEY,
    workspace_id   TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    created_at_ms  BIGINT  NOT NULL,
    revoked_at_ms  BIGINT 
);
CREATE INDEX auth_tokens_by_workspace ON auth_tokens (workspace_id);

-- Every definition create and update takes the next number of its workspace.
CREATE TABLE write_seqs (
    workspace_id   TEXT    NOT NULL PRIMARY KEY REFERENCES workspaces (workspace_id),
    last_write_seq BIGINT  NOT NULL
);

CREATE TABLE definitions (
    workspace_id   TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    definition_id  TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('active', 'tombstoned')),
    version        BIGINT  NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    write_seq      BIGINT  NOT NULL,
    body           JSON    NOT NULL,
    view           JSON    NOT NULL,
    PRIMARY KEY (workspace_id, definition_id)
);
CREATE INDEX definitions_active_by_write_seq
    ON definitions (workspace_id, write_seq) WHERE status = 'active';

-- Every version of the current lineage, the current one included.
CREATE TABLE definition_versions (
    workspace_id   TEXT    NOT NULL,
    definition_id  TEXT    NOT NULL,
    version        BIGINT  NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    write_seq      BIGINT  NOT NULL,
    body           JSON    NOT NULL,
    view           JSON    NOT NULL,
    PRIMARY KEY (workspace_id, definition_id, version),
    FOREIGN KEY (workspace_id, definition_id)
        REFERENCES definitions (workspace_id, definition_id) ON DELETE CASCADE
);

-- Only what delete's in-flight check reads so far; the executions work extends it.
CREATE TABLE executions (
    workspace_id        TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    execution_id        TEXT    NOT NULL,
    definition_id       TEXT    NOT NULL,
    definition_version  BIGINT  NOT NULL,
    status              TEXT    NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    started_at_ms       BIGINT  NOT NULL,
    updated_at_ms       BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, execution_id)
);
CREATE INDEX executions_in_flight
    ON executions (workspace_id, definition_id) WHERE status IN ('pending', 'running');
"#,
}];
