//! The PostgreSQL schema, one migration per step. Kept in step with `sqlite/migrations.rs`:
//! same tables, same columns, same order; only the types differ. Bodies are JSON, not JSONB,
//! so that they keep their key order as SQLite's TEXT does. Version 6 is PostgreSQL's own: it
//! drops the foreign keys that dispatches and commands paid for (see there); SQLite keeps
//! them, as its checks take no locks.

use crate::shared::Migration;

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        name: "executions in full, idempotency keys, events, timers",
        sql: r#"
ALTER TABLE executions ADD COLUMN correlation_id  TEXT    NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN idempotency_key TEXT    NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN next_seq        BIGINT  NOT NULL DEFAULT 1;
-- The engine's state, opaque to the store.
ALTER TABLE executions ADD COLUMN state           JSON    NOT NULL DEFAULT '{}';
CREATE INDEX executions_newest_first
    ON executions (workspace_id, started_at_ms DESC, execution_id DESC);
CREATE INDEX executions_by_definition
    ON executions (workspace_id, definition_id, started_at_ms DESC, execution_id DESC);

-- A key is kept as long as its execution unless it expires (keys made by triggers).
CREATE TABLE idempotency_keys (
    workspace_id    TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    idempotency_key TEXT    NOT NULL,
    execution_id    TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    expires_at_ms   BIGINT,
    PRIMARY KEY (workspace_id, idempotency_key)
);

CREATE TABLE events (
    workspace_id    TEXT    NOT NULL,
    execution_id    TEXT    NOT NULL,
    seq             BIGINT  NOT NULL,
    event_type      TEXT    NOT NULL,
    step_id         TEXT,
    timestamp_ms    BIGINT  NOT NULL,
    correlation_id  TEXT    NOT NULL,
    data            JSON    NOT NULL,
    external        BOOLEAN NOT NULL,
    PRIMARY KEY (workspace_id, execution_id, seq),
    FOREIGN KEY (workspace_id, execution_id)
        REFERENCES executions (workspace_id, execution_id) ON DELETE CASCADE
);

-- claimable_at_ms is due_at_ms, then the end of each claim's lease: one index serves
-- both the claim and the next wake-up.
CREATE TABLE timers (
    workspace_id    TEXT    NOT NULL,
    execution_id    TEXT    NOT NULL,
    timer_key       TEXT    NOT NULL,
    due_at_ms       BIGINT  NOT NULL,
    claimable_at_ms BIGINT  NOT NULL,
    payload         JSON    NOT NULL,
    PRIMARY KEY (workspace_id, execution_id, timer_key),
    FOREIGN KEY (workspace_id, execution_id)
        REFERENCES executions (workspace_id, execution_id) ON DELETE CASCADE
);
CREATE INDEX timers_by_claimable_at ON timers (claimable_at_ms);
"#,
    },
    Migration {
        version: 3,
        name: "outbound deliveries and their attempts, the server secret",
        sql: r#"
-- One row per event sent to a webhook. A delivery is claimable when it is pending, due,
-- not leased, and the lowest pending seq of its execution. A pending delivery written
-- behind another of its execution is queued until that one is delivered or dead, so that
-- claims never look at it; the lowest pending one of an execution is never queued.
CREATE TABLE deliveries (
    delivery_id        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id       TEXT    NOT NULL,
    execution_id       TEXT    NOT NULL,
    event_id           TEXT    NOT NULL,
    seq                BIGINT  NOT NULL,
    event_type         TEXT    NOT NULL,
    url                TEXT    NOT NULL,
    secret             TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts           BIGINT  NOT NULL DEFAULT 0,
    round_attempts     BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT  NOT NULL,
    lease_until_ms     BIGINT  NOT NULL DEFAULT 0,
    queued             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms      BIGINT  NOT NULL,
    updated_at_ms      BIGINT  NOT NULL,
    UNIQUE (workspace_id, execution_id, seq),
    FOREIGN KEY (workspace_id, execution_id)
        REFERENCES executions (workspace_id, execution_id) ON DELETE CASCADE
);
-- When a pending delivery becomes claimable: its next attempt, or the end of its lease.
-- Serves both the claim and the next wake-up.
CREATE INDEX deliveries_claimable
    ON deliveries ((GREATEST(next_attempt_at_ms, lease_until_ms)))
    WHERE status = 'pending' AND NOT queued;
-- An execution's pending deliveries in order: the head, and whether one is before another.
CREATE INDEX deliveries_pending_by_execution
    ON deliveries (workspace_id, execution_id, seq) WHERE status = 'pending';
CREATE INDEX deliveries_newest_first ON deliveries (workspace_id, delivery_id DESC);
CREATE INDEX deliveries_of_execution_newest_first
    ON deliveries (workspace_id, execution_id, delivery_id DESC);

CREATE TABLE delivery_attempts (
    delivery_id  BIGINT  NOT NULL REFERENCES deliveries (delivery_id) ON DELETE CASCADE,
    attempt      BIGINT  NOT NULL,
    at_ms        BIGINT  NOT NULL,
    http_status  BIGINT,
    error        TEXT,
    latency_ms   BIGINT  NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Secrets the server makes once per store and every process shares.
CREATE TABLE server_secrets (
    name   TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);
"#,
    },
    Migration {
        version: 4,
        name: "schedule index",
        sql: r#"
-- The enabled schedule triggers of active definitions, rewritten with each definition write.
CREATE TABLE schedules (
    workspace_id    TEXT    NOT NULL,
    definition_id   TEXT    NOT NULL,
    trigger_id      TEXT    NOT NULL,
    cron            TEXT    NOT NULL,
    timezone        TEXT    NOT NULL,
    payload         JSON    NOT NULL,
    next_fire_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, definition_id, trigger_id),
    FOREIGN KEY (workspace_id, definition_id)
        REFERENCES definitions (workspace_id, definition_id) ON DELETE CASCADE
);
CREATE INDEX schedules_by_next_fire ON schedules (next_fire_at_ms);
"#,
    },
    Migration {
        version: 5,
        name: "connections and the app trigger index",
        sql: r#"
-- A provider's installation connected to one workspace. The webhook secret is kept as given:
-- signatures are checked with it. An installation is connected to one workspace at most.
CREATE TABLE connections (
    workspace_id     TEXT    NOT NULL REFERENCES workspaces (workspace_id),
    provider         TEXT    NOT NULL CHECK (provider IN ('github', 'vercel')),
    installation_ref TEXT    NOT NULL,
    webhook_secret   TEXT    NOT NULL,
    created_at_ms    BIGINT  NOT NULL,
    PRIMARY KEY (provider, installation_ref)
);
CREATE INDEX connections_by_workspace ON connections (workspace_id);

-- The installations the app triggers of active definitions name, rewritten with each
-- definition write.
CREATE TABLE app_triggers (
    workspace_id     TEXT    NOT NULL,
    definition_id    TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    installation_ref TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, definition_id, provider, installation_ref),
    FOREIGN KEY (workspace_id, definition_id)
        REFERENCES definitions (workspace_id, definition_id) ON DELETE CASCADE
);
CREATE INDEX app_triggers_by_installation
    ON app_triggers (workspace_id, provider, installation_ref, definition_id);

-- Definitions written before this version may already name installations.
INSERT INTO app_triggers (workspace_id, definition_id, provider, installation_ref)
SELECT DISTINCT d.workspace_id, d.definition_id,
       t.value -> 'appTrigger' ->> 'provider',
       t.value -> 'appTrigger' ->> 'installationRef'
  FROM definitions d
 CROSS JOIN LATERAL json_array_elements(
           CASE WHEN json_typeof(d.body -> 'triggers') = 'array'
                THEN d.body -> 'triggers' ELSE '[]'::json END) AS t(value)
 WHERE d.status = 'active'
   AND t.value -> 'appTrigger' ->> 'provider' IN ('github', 'vercel')
   AND json_typeof(t.value -> 'appTrigger' -> 'installationRef') = 'string'
ON CONFLICT DO NOTHING;
"#,
    },
    Migration {
        version: 6,
        name: "no foreign keys on the rows every dispatch and command writes",
        sql: r#"
-- Each of these checks ran a query per inserted row, and the two naming a workspace locked
-- that workspace's row FOR KEY SHARE: with many dispatches at once, every one of them made
-- a new multixact on one hot row. Nothing deletes workspaces, executions or deliveries, and
-- the store writes events, timers and deliveries only in the transaction that inserted or
-- locked their execution, so the checks guarded nothing the code does not already.
ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_workspace_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_workspace_id_fkey;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_workspace_id_execution_id_fkey;
ALTER TABLE timers DROP CONSTRAINT IF EXISTS timers_workspace_id_execution_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_workspace_id_execution_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_delivery_id_fkey;
"#,
    },
];
