//! Executions, their idempotency keys, events and timers in PostgreSQL. Mirrors
//! `sqlite/executions.rs`.
//!
//! Races between processes: a dispatch locks its key's row if there is one, then holds its
//! definition's row `FOR SHARE`, so a delete (which locks that row `FOR UPDATE` before its
//! in-flight check) and a dispatch take turns. Two dispatches of a new key meet on the
//! key's primary key: the loser's `ON CONFLICT DO NOTHING` waits for the winner to commit
//! and then reads the winner's ids. A command locks its execution's row `FOR UPDATE`, so
//! its deliveries are written in `seq` order with its events. Timers are claimed with
//! `FOR UPDATE SKIP LOCKED`.

use super::{deliveries, execute, query, query_opt, read_opt};
use crate::executions::{self, next_seq_after, ExecutionCursor};
use crate::shared::{page_size_bounded, TIMER_CLAIM_MAX};
use crate::{
    ClaimedTimer, DefinitionHead, DefinitionStatus, DispatchLookup, DispatchOutcome, EventPage,
    EventRecord, ExecutionChanges, ExecutionPage, ExecutionRecord, ExecutionStatus, ExecutionWrite,
    HeadDispatch, NewDelivery, NewEvent, PinnedVersion, StoreError, StoreResult, TimerSet,
};
use deadpool_postgres::{Client, Transaction};
use serde_json::Value;
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "workspace_id, execution_id, definition_id, definition_version, \
     status, correlation_id, idempotency_key, started_at_ms, updated_at_ms, next_seq, state::text";

pub(super) async fn dispatch_execution(
    txn: &Transaction<'_>,
    workspace_id: &str,
    write: ExecutionWrite,
    idempotency_expires_at_ms: Option<i64>,
) -> StoreResult<DispatchOutcome> {
    let record = &write.record;
    // Nearly every key is new: take the definition's row and claim the key in one round
    // trip, and look at an existing key only when the claim finds one.
    let definition = txn.prepare_cached(DEFINITION_FOR_SHARE).await?;
    let claim = txn.prepare_cached(CLAIM_KEY).await?;
    let key_row: [&(dyn ToSql + Sync); 5] = [
        &workspace_id,
        &record.idempotency_key,
        &record.execution_id,
        &record.correlation_id,
        &idempotency_expires_at_ms,
    ];
    let definition_of: [&(dyn ToSql + Sync); 2] = [&workspace_id, &record.definition_id];
    let (definition_row, claimed) = tokio::try_join!(
        txn.query_opt(&definition, &definition_of),
        txn.execute(&claim, &key_row),
    )?;
    if claimed == 0 {
        if let Some(replayed) = lock_live_key(txn, workspace_id, record).await? {
            return Ok(replayed);
        }
        definition_active(definition_row)?;
        // The expired key is gone; a dispatch racing for the same key may still win.
        if execute(txn, CLAIM_KEY, &key_row).await? == 0 {
            return replay_winner(txn, workspace_id, &record.idempotency_key).await;
        }
    } else {
        definition_active(definition_row)?;
    }

    let owner = Owner {
        workspace_id,
        execution_id: &record.execution_id,
        correlation_id: &record.correlation_id,
        updated_at_ms: record.updated_at_ms,
    };
    // Prepared first so that the execution reaches the server before what refers to it.
    txn.prepare_cached(INSERT_EXECUTION).await?;
    tokio::try_join!(
        insert_execution(txn, workspace_id, record, &write.changes),
        apply_changes(txn, &owner, &write.changes),
    )?;
    Ok(DispatchOutcome::Created)
}

/// [`crate::Store::dispatch_at_head`]: one statement on its own (its own transaction). The
/// definition's row is held `FOR SHARE` if it is still active at `head`, the key claimed,
/// then the execution with its events, timers and deliveries, each written only if the one
/// before was. The key as it stood before the statement comes back beside whether anything
/// was written, so a replay needs no second read. Changes this form does not carry (timers
/// to clear) are left to the transactional path.
pub(super) async fn dispatch_at_head(
    client: &Client,
    workspace_id: &str,
    head: DefinitionHead,
    write: &ExecutionWrite,
    idempotency_expires_at_ms: Option<i64>,
) -> StoreResult<HeadDispatch> {
    let (record, changes) = (&write.record, &write.changes);
    if !changes.timers_cleared.is_empty() || record.definition_version != head.version {
        return Ok(HeadDispatch::Unsettled);
    }
    let events = EventColumns::of(&changes.events);
    let timers = TimerColumns::of(&changes.timers_set);
    let deliveries = DeliveryColumns::of(&changes.deliveries);
    let next_seq = next_seq_after(1, &changes.events);
    let status = record.status.as_str();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &workspace_id,
        &record.definition_id,
        &record.idempotency_key,
        &record.execution_id,
        &record.correlation_id,
        &idempotency_expires_at_ms,
        &record.definition_version,
        &status,
        &record.started_at_ms,
        &record.updated_at_ms,
        &next_seq,
        &record.state,
        &events.seqs,
        &events.types,
        &events.steps,
        &events.timestamps,
        &events.data,
        &events.external,
        &head.created_at_ms,
        &head.updated_at_ms,
    ];
    let (with_timers, with_deliveries) = (!timers.keys.is_empty(), !deliveries.seqs.is_empty());
    if with_timers {
        params.extend::<[&(dyn ToSql + Sync); 3]>([&timers.keys, &timers.due, &timers.payloads]);
    }
    if with_deliveries {
        params.extend::<[&(dyn ToSql + Sync); 6]>([
            &deliveries.event_ids,
            &deliveries.seqs,
            &deliveries.event_types,
            &deliveries.urls,
            &deliveries.secrets,
            &deliveries.bodies,
        ]);
    }
    let statement = client.prepare_cached(dispatch_statement(with_timers, with_deliveries)).await?;
    let row = client.query_one(&statement, &params).await?;
    if row.try_get(0)? {
        return Ok(HeadDispatch::Created);
    }
    let expires_at_ms: Option<i64> = row.try_get(3)?;
    let live = expires_at_ms.is_none_or(|expires| expires > record.started_at_ms);
    match (row.try_get::<_, Option<String>>(1)?, row.try_get::<_, Option<String>>(2)?) {
        (Some(execution_id), Some(correlation_id)) if live => {
            Ok(HeadDispatch::Replayed { execution_id, correlation_id })
        }
        _ => Ok(HeadDispatch::Unsettled),
    }
}

/// A new execution's deliveries as columns for `UNNEST`.
struct DeliveryColumns<'a> {
    event_ids: Vec<&'a str>,
    seqs: Vec<i64>,
    event_types: Vec<&'a str>,
    urls: Vec<&'a str>,
    secrets: Vec<&'a str>,
    bodies: Vec<&'a str>,
}

impl<'a> DeliveryColumns<'a> {
    fn of(deliveries: &'a [NewDelivery]) -> Self {
        let text = |get: fn(&NewDelivery) -> &String| -> Vec<&str> {
            deliveries.iter().map(|d| get(d).as_str()).collect()
        };
        DeliveryColumns {
            event_ids: text(|d| &d.event_id),
            seqs: deliveries.iter().map(|d| d.seq).collect(),
            event_types: text(|d| &d.event_type),
            urls: text(|d| &d.url),
            secrets: text(|d| &d.secret),
            bodies: text(|d| &d.body),
        }
    }
}

/// The statement of [`dispatch_at_head`] with the parts a dispatch needs: one that would
/// insert no row is left out, as each part opens its table and every index of it on every
/// run. Built once for each of the four forms.
fn dispatch_statement(with_timers: bool, with_deliveries: bool) -> &'static str {
    static FORMS: LazyLock<[String; 4]> = LazyLock::new(|| {
        let form = |timers: bool, deliveries: bool| {
            let mut text = DISPATCH_WITH.to_owned();
            let mut next_param = DISPATCH_WITH_PARAMS + 1;
            for (wanted, part, params) in
                [(timers, TIMERS_PART, 3), (deliveries, DELIVERIES_PART, 6)]
            {
                if wanted {
                    text.push_str(&numbered(part, next_param, params));
                    next_param += params;
                }
            }
            text + DISPATCH_ANSWER
        };
        [form(false, false), form(true, false), form(false, true), form(true, true)]
    });
    &FORMS[usize::from(with_timers) + 2 * usize::from(with_deliveries)]
}

/// `part` with its parameters `$+1` … `$+count` numbered from `first`.
fn numbered(part: &str, first: usize, count: usize) -> String {
    (1..=count).rev().fold(part.to_owned(), |text, i| {
        text.replace(&format!("$+{i}"), &format!("${}", first + i - 1))
    })
}

/// The parts of [`dispatch_at_head`] every dispatch has. Each part reads the one before
/// it, so nothing is written past the first that did not happen.
const DISPATCH_WITH: &str = "WITH definition AS (
     SELECT status FROM definitions
      WHERE workspace_id = $1 AND definition_id = $2 AND version = $7
        AND created_at_ms = $19 AND updated_at_ms = $20
        FOR SHARE),
 key AS (
     INSERT INTO idempotency_keys (workspace_id, idempotency_key, execution_id,
                                   correlation_id, expires_at_ms)
     SELECT $1, $3, $4, $5, $6::bigint FROM definition WHERE status = 'active'
     ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
     RETURNING 1),
 execution AS (
     INSERT INTO executions (workspace_id, execution_id, definition_id, definition_version,
                             status, correlation_id, idempotency_key, started_at_ms,
                             updated_at_ms, next_seq, state)
     SELECT $1, $4, $2, $7::bigint, $8, $5, $3, $9::bigint, $10::bigint, $11::bigint,
            $12::text::json
       FROM key
     RETURNING 1),
 events AS (
     INSERT INTO events (workspace_id, execution_id, seq, event_type, step_id, timestamp_ms,
                         correlation_id, data, external)
     SELECT $1, $4, e.seq, e.event_type, e.step_id, e.timestamp_ms, $5, e.data, e.external
       FROM UNNEST($13::bigint[], $14::text[], $15::text[], $16::bigint[], $17::json[],
                   $18::boolean[])
         AS e (seq, event_type, step_id, timestamp_ms, data, external)
      WHERE EXISTS (SELECT 1 FROM execution))";

/// How many parameters [`DISPATCH_WITH`] takes.
const DISPATCH_WITH_PARAMS: usize = 20;

const TIMERS_PART: &str = ",
 timers AS (
     INSERT INTO timers (workspace_id, execution_id, timer_key, due_at_ms, claimable_at_ms,
                         payload)
     SELECT $1, $4, t.timer_key, t.due_at_ms, t.due_at_ms, t.payload
       FROM UNNEST($+1::text[], $+2::bigint[], $+3::json[]) AS t (timer_key, due_at_ms, payload)
      WHERE EXISTS (SELECT 1 FROM execution))";

/// None of a new execution's deliveries has a pending one before it, so only its first is
/// left out of the queue (as `deliveries::insert_deliveries` does).
const DELIVERIES_PART: &str = ",
 deliveries AS (
     INSERT INTO deliveries (workspace_id, execution_id, event_id, seq, event_type, url, secret,
                             body, status, next_attempt_at_ms, queued, created_at_ms,
                             updated_at_ms)
     SELECT $1, $4, d.event_id, d.seq, d.event_type, d.url, d.secret, d.body, 'pending',
            $10::bigint, d.n > 1, $10::bigint, $10::bigint
       FROM UNNEST($+1::text[], $+2::bigint[], $+3::text[], $+4::text[], $+5::text[],
                   $+6::text[]) WITH ORDINALITY
         AS d (event_id, seq, event_type, url, secret, body, n)
      WHERE EXISTS (SELECT 1 FROM execution))";

/// The answer: whether the execution was written, and the key as it stood before the
/// statement (its snapshot does not hold what the parts above wrote).
const DISPATCH_ANSWER: &str = "
 SELECT EXISTS (SELECT 1 FROM execution), k.execution_id, k.correlation_id, k.expires_at_ms
   FROM (SELECT 1) AS one
   LEFT JOIN idempotency_keys k ON k.workspace_id = $1 AND k.idempotency_key = $3";

/// Holds the definition's row `FOR SHARE` until commit, so that a delete waits.
const DEFINITION_FOR_SHARE: &str = "SELECT status FROM definitions
  WHERE workspace_id = $1 AND definition_id = $2
    FOR SHARE";

/// Inserts an idempotency key unless the workspace has that key already (or a racing
/// transaction is inserting it, in which case it waits for that one to end).
const CLAIM_KEY: &str = "INSERT INTO idempotency_keys (workspace_id, idempotency_key, execution_id,
                               correlation_id, expires_at_ms)
 VALUES ($1, $2, $3, $4, $5)
 ON CONFLICT (workspace_id, idempotency_key) DO NOTHING";

/// `NotFound` without a definition row, `DefinitionNotActive` for a tombstone.
fn definition_active(row: Option<Row>) -> StoreResult<()> {
    let Some(row) = row else { return Err(StoreError::NotFound) };
    match DefinitionStatus::parse(row.try_get(0)?)? {
        DefinitionStatus::Active => Ok(()),
        DefinitionStatus::Tombstoned => Err(StoreError::DefinitionNotActive),
    }
}

/// `Replayed` when the key is live. An expired key is removed (its row stays locked until
/// commit, so racing dispatches of the same key then meet on the insert).
async fn lock_live_key(
    txn: &Transaction<'_>,
    workspace_id: &str,
    record: &ExecutionRecord,
) -> StoreResult<Option<DispatchOutcome>> {
    let row = query_opt(
        txn,
        "SELECT execution_id, correlation_id, expires_at_ms FROM idempotency_keys
          WHERE workspace_id = $1 AND idempotency_key = $2
            FOR UPDATE",
        &[&workspace_id, &record.idempotency_key],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at_ms: Option<i64> = row.try_get(2)?;
    let expired = expires_at_ms.is_some_and(|expires| expires <= record.started_at_ms);
    if !expired {
        let (execution_id, correlation_id) = (row.try_get(0)?, row.try_get(1)?);
        return Ok(Some(DispatchOutcome::Replayed { execution_id, correlation_id }));
    }
    execute(
        txn,
        "DELETE FROM idempotency_keys WHERE workspace_id = $1 AND idempotency_key = $2",
        &[&workspace_id, &record.idempotency_key],
    )
    .await?;
    Ok(None)
}

/// The ids of the dispatch that inserted this key first and has committed.
async fn replay_winner(
    txn: &Transaction<'_>,
    workspace_id: &str,
    idempotency_key: &str,
) -> StoreResult<DispatchOutcome> {
    let row = query_opt(
        txn,
        "SELECT execution_id, correlation_id FROM idempotency_keys
          WHERE workspace_id = $1 AND idempotency_key = $2",
        &[&workspace_id, &idempotency_key],
    )
    .await?;
    let row = row.ok_or_else(|| {
        StoreError::Database("an idempotency key conflicted, then vanished".into())
    })?;
    Ok(DispatchOutcome::Replayed { execution_id: row.try_get(0)?, correlation_id: row.try_get(1)? })
}

/// The key's execution and the definition's head, in one statement on `client`.
pub(super) async fn dispatch_lookup(
    client: &Client,
    workspace_id: &str,
    idempotency_key: Option<&str>,
    definition_id: &str,
    now_ms: i64,
) -> StoreResult<DispatchLookup> {
    let statement = client
        .prepare_cached(
            "SELECT k.execution_id, k.correlation_id,
                    d.version, d.status, d.created_at_ms, d.updated_at_ms
           FROM (SELECT 1) AS one
           LEFT JOIN idempotency_keys k
             ON k.workspace_id = $1 AND k.idempotency_key = $2
            AND (k.expires_at_ms IS NULL OR k.expires_at_ms > $4)
           LEFT JOIN definitions d
             ON d.workspace_id = $1 AND d.definition_id = $3",
        )
        .await?;
    let row = client
        .query_one(&statement, &[&workspace_id, &idempotency_key, &definition_id, &now_ms])
        .await?;
    let replay = row.try_get::<_, Option<String>>(0)?.zip(row.try_get::<_, Option<String>>(1)?);
    let definition = match row.try_get::<_, Option<i64>>(2)? {
        None => None,
        Some(version) => Some(DefinitionHead {
            version,
            status: DefinitionStatus::parse(row.try_get(3)?)?,
            created_at_ms: row.try_get(4)?,
            updated_at_ms: row.try_get(5)?,
        }),
    };
    Ok(DispatchLookup { replay, definition })
}

const INSERT_EXECUTION: &str = "INSERT INTO executions (
     workspace_id, execution_id, definition_id, definition_version, status, correlation_id,
     idempotency_key, started_at_ms, updated_at_ms, next_seq, state)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::json)";

async fn insert_execution(
    txn: &Transaction<'_>,
    workspace_id: &str,
    record: &ExecutionRecord,
    changes: &ExecutionChanges,
) -> StoreResult<()> {
    execute(
        txn,
        INSERT_EXECUTION,
        &[
            &workspace_id,
            &record.execution_id,
            &record.definition_id,
            &record.definition_version,
            &record.status.as_str(),
            &record.correlation_id,
            &record.idempotency_key,
            &record.started_at_ms,
            &record.updated_at_ms,
            &next_seq_after(1, &changes.events),
            &record.state,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn get_execution(
    client: &Client,
    workspace_id: &str,
    execution_id: &str,
) -> StoreResult<Option<ExecutionRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM executions WHERE workspace_id = $1 AND execution_id = $2"
    );
    let row = read_opt(client, &sql, &[&workspace_id, &execution_id]).await?;
    row.as_ref().map(record_from_row).transpose()
}

pub(super) async fn pinned_version(
    client: &Client,
    workspace_id: &str,
    execution_id: &str,
) -> StoreResult<Option<PinnedVersion>> {
    let row = read_opt(client, executions::PINNED_VERSION, &[&workspace_id, &execution_id]).await?;
    let Some(row) = row else { return Ok(None) };
    let stored_at_ms = row.try_get::<_, Option<i64>>(2)?.zip(row.try_get::<_, Option<i64>>(3)?);
    Ok(Some(PinnedVersion::from_columns(row.try_get(0)?, row.try_get(1)?, stored_at_ms)))
}

pub(super) async fn list_executions(
    txn: &Transaction<'_>,
    workspace_id: &str,
    definition_id: Option<&str>,
    status: Option<ExecutionStatus>,
    page_size: u32,
    cursor: &ExecutionCursor,
) -> StoreResult<ExecutionPage> {
    let page_size = page_size_bounded(page_size);
    let status = status.map(ExecutionStatus::as_str);
    let mut filters = String::new();
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&workspace_id, &cursor.started_at_ms];
    values.push(&cursor.execution_id);
    if let Some(definition_id) = &definition_id {
        values.push(definition_id);
        filters.push_str(&format!(" AND definition_id = ${}", values.len()));
    }
    if let Some(status) = &status {
        values.push(status);
        filters.push_str(&format!(" AND status = ${}", values.len()));
    }
    // One row past the page says whether another page follows.
    let limit = page_size + 1;
    values.push(&limit);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM executions
          WHERE workspace_id = $1 AND (started_at_ms, execution_id) < ($2, $3){filters}
          ORDER BY started_at_ms DESC, execution_id DESC
          LIMIT ${}",
        values.len()
    );
    let rows = query(txn, &sql, &values).await?;
    let mut items = rows.iter().map(record_from_row).collect::<StoreResult<Vec<_>>>()?;

    let more_follow = items.len() as i64 > page_size;
    items.truncate(page_size as usize);
    let next_cursor = items.last().filter(|_| more_follow).map(ExecutionCursor::after);
    Ok(ExecutionPage { items, next_cursor })
}

pub(super) async fn get_events(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
    since_seq: i64,
    page_size: u32,
) -> StoreResult<EventPage> {
    let exists = query_opt(
        txn,
        "SELECT 1 FROM executions WHERE workspace_id = $1 AND execution_id = $2",
        &[&workspace_id, &execution_id],
    )
    .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }

    let page_size = page_size_bounded(page_size);
    let rows = query(
        txn,
        "SELECT seq, event_type, step_id, timestamp_ms, correlation_id, data FROM events
          WHERE workspace_id = $1 AND execution_id = $2 AND seq > $3 AND external
          ORDER BY seq
          LIMIT $4",
        &[&workspace_id, &execution_id, &since_seq, &(page_size + 1)],
    )
    .await?;
    let mut events = rows.iter().map(event_from_row).collect::<StoreResult<Vec<_>>>()?;
    let has_more = events.len() as i64 > page_size;
    events.truncate(page_size as usize);
    Ok(EventPage { events, has_more })
}

/// Runs `command` on the execution, locked, and writes what it leaves. `Ok(Err(_))` when
/// the command refused; the caller then rolls the transaction back.
pub(super) async fn update_execution<T, E, F>(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
    command: F,
) -> StoreResult<(Result<T, E>, bool)>
where
    F: FnOnce(&mut ExecutionRecord) -> Result<(ExecutionChanges, T), E>,
{
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM executions
          WHERE workspace_id = $1 AND execution_id = $2
            FOR UPDATE"
    );
    let row = query_opt(txn, &sql, &[&workspace_id, &execution_id]).await?;
    let mut record = record_from_row(&row.ok_or(StoreError::NotFound)?)?;
    let stored_next_seq = record.next_seq;
    let correlation_id = record.correlation_id.clone();
    let (changes, answer) = match command(&mut record) {
        Ok(done) => done,
        Err(refused) => return Ok((Err(refused), false)),
    };

    let owner = Owner {
        workspace_id,
        execution_id,
        correlation_id: &correlation_id,
        updated_at_ms: record.updated_at_ms,
    };
    let (status, next_seq) =
        (record.status.as_str(), next_seq_after(stored_next_seq, &changes.events));
    let update: [&(dyn ToSql + Sync); 6] =
        [&workspace_id, &execution_id, &status, &record.updated_at_ms, &next_seq, &record.state];
    // Prepared first so that the update reaches the server before the changes.
    txn.prepare_cached(UPDATE_EXECUTION).await?;
    tokio::try_join!(
        execute(txn, UPDATE_EXECUTION, &update),
        apply_changes(txn, &owner, &changes)
    )?;
    Ok((Ok(answer), !changes.timers_set.is_empty()))
}

const UPDATE_EXECUTION: &str = "UPDATE executions
    SET status = $3, updated_at_ms = $4, next_seq = $5, state = $6::text::json
  WHERE workspace_id = $1 AND execution_id = $2";

/// The execution that events, timers and deliveries belong to.
struct Owner<'a> {
    workspace_id: &'a str,
    execution_id: &'a str,
    correlation_id: &'a str,
    /// As the write leaves the record: when the new deliveries are first due.
    updated_at_ms: i64,
}

/// Appends the events and their deliveries, and clears, then sets, the timers: each part
/// one statement (two for deliveries), all sent before any answer is awaited.
async fn apply_changes(
    txn: &Transaction<'_>,
    owner: &Owner<'_>,
    changes: &ExecutionChanges,
) -> StoreResult<()> {
    // Pipelined statements reach the server in the order they are first polled only if
    // none waits to be prepared first; clearing must come before setting.
    for sql in [CLEAR_TIMERS, SET_TIMERS] {
        txn.prepare_cached(sql).await?;
    }
    let (workspace_id, execution_id) = (owner.workspace_id, owner.execution_id);
    let deliveries = &changes.deliveries;
    tokio::try_join!(
        insert_events(txn, owner, &changes.events),
        deliveries::insert_deliveries(
            txn,
            workspace_id,
            execution_id,
            deliveries,
            owner.updated_at_ms
        ),
        clear_timers(txn, owner, &changes.timers_cleared),
        set_timers(txn, owner, &changes.timers_set),
    )?;
    Ok(())
}

const CLEAR_TIMERS: &str = "DELETE FROM timers
  WHERE workspace_id = $1 AND execution_id = $2 AND timer_key = ANY($3::text[])";

/// Upserts the timers. Other processes are told after the commit (see `TimerNotifier`).
const SET_TIMERS: &str = "INSERT INTO timers (workspace_id, execution_id, timer_key, due_at_ms,
                             claimable_at_ms, payload)
 SELECT $1, $2, t.timer_key, t.due_at_ms, t.due_at_ms, t.payload
   FROM UNNEST($3::text[], $4::bigint[], $5::json[]) AS t (timer_key, due_at_ms, payload)
 ON CONFLICT (workspace_id, execution_id, timer_key) DO UPDATE
    SET due_at_ms = excluded.due_at_ms,
        claimable_at_ms = excluded.claimable_at_ms,
        payload = excluded.payload";

async fn clear_timers(
    txn: &Transaction<'_>,
    owner: &Owner<'_>,
    keys: &[String],
) -> StoreResult<()> {
    if !keys.is_empty() {
        execute(txn, CLEAR_TIMERS, &[&owner.workspace_id, &owner.execution_id, &keys]).await?;
    }
    Ok(())
}

async fn set_timers(
    txn: &Transaction<'_>,
    owner: &Owner<'_>,
    timers: &[TimerSet],
) -> StoreResult<()> {
    let columns = TimerColumns::of(timers);
    if columns.keys.is_empty() {
        return Ok(());
    }
    let (keys, due, payloads) = (&columns.keys, &columns.due, &columns.payloads);
    execute(txn, SET_TIMERS, &[&owner.workspace_id, &owner.execution_id, keys, due, payloads])
        .await?;
    Ok(())
}

/// Timers as columns for `UNNEST`. One statement may not upsert a row twice: the last
/// setting of a key wins, as it would one statement at a time.
struct TimerColumns<'a> {
    keys: Vec<&'a str>,
    due: Vec<i64>,
    payloads: Vec<&'a Value>,
}

impl<'a> TimerColumns<'a> {
    fn of(timers: &'a [TimerSet]) -> Self {
        let mut last_of_key: Vec<&TimerSet> = Vec::with_capacity(timers.len());
        for timer in timers.iter().rev() {
            if !last_of_key.iter().any(|kept| kept.timer_key == timer.timer_key) {
                last_of_key.push(timer);
            }
        }
        TimerColumns {
            keys: last_of_key.iter().map(|t| t.timer_key.as_str()).collect(),
            due: last_of_key.iter().map(|t| t.due_at_ms).collect(),
            payloads: last_of_key.iter().map(|t| &t.payload).collect(),
        }
    }
}

/// Appends `events` in one statement, whatever their number.
async fn insert_events(
    txn: &Transaction<'_>,
    owner: &Owner<'_>,
    events: &[NewEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let columns = EventColumns::of(events);
    execute(
        txn,
        "INSERT INTO events (workspace_id, execution_id, seq, event_type, step_id,
                             timestamp_ms, correlation_id, data, external)
         SELECT $1, $2, e.seq, e.event_type, e.step_id, e.timestamp_ms, $3, e.data, e.external
           FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::json[],
                       $9::boolean[])
             AS e (seq, event_type, step_id, timestamp_ms, data, external)",
        &[
            &owner.workspace_id,
            &owner.execution_id,
            &owner.correlation_id,
            &columns.seqs,
            &columns.types,
            &columns.steps,
            &columns.timestamps,
            &columns.data,
            &columns.external,
        ],
    )
    .await?;
    Ok(())
}

/// Events as columns for `UNNEST`.
struct EventColumns<'a> {
    seqs: Vec<i64>,
    types: Vec<&'a str>,
    steps: Vec<Option<&'a str>>,
    timestamps: Vec<i64>,
    data: Vec<&'a Value>,
    external: Vec<bool>,
}

impl<'a> EventColumns<'a> {
    fn of(events: &'a [NewEvent]) -> Self {
        EventColumns {
            seqs: events.iter().map(|e| e.seq).collect(),
            types: events.iter().map(|e| e.event_type.as_str()).collect(),
            steps: events.iter().map(|e| e.step_id.as_deref()).collect(),
            timestamps: events.iter().map(|e| e.timestamp_ms).collect(),
            data: events.iter().map(|e| &e.data).collect(),
            external: events.iter().map(|e| e.external).collect(),
        }
    }
}

pub(super) async fn claim_due_timers(
    txn: &Transaction<'_>,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> StoreResult<Vec<ClaimedTimer>> {
    let limit = i64::from(limit.clamp(1, TIMER_CLAIM_MAX));
    let lease_until_ms = now_ms.saturating_add(lease_ms.max(0));
    // A timer another claim holds locked is skipped; one it has claimed and committed
    // is no longer claimable once its row is re-read. The limit is part of the text (see
    // `LIMIT_IN_TEXT`).
    let sql = format!(
        "WITH due AS (
             SELECT workspace_id, execution_id, timer_key FROM timers
              WHERE claimable_at_ms <= $1
              ORDER BY claimable_at_ms
              LIMIT {limit}
                FOR UPDATE SKIP LOCKED)
         UPDATE timers t SET claimable_at_ms = $2
           FROM due
          WHERE t.workspace_id = due.workspace_id AND t.execution_id = due.execution_id
            AND t.timer_key = due.timer_key
         RETURNING t.workspace_id, t.execution_id, t.timer_key, t.due_at_ms, t.payload"
    );
    let rows = query(txn, &sql, &[&now_ms, &lease_until_ms]).await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            Ok(ClaimedTimer {
                workspace_id: row.try_get(0)?,
                execution_id: row.try_get(1)?,
                timer_key: row.try_get(2)?,
                due_at_ms: row.try_get(3)?,
                payload: row.try_get(4)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    claimed.sort_by_key(|timer| timer.due_at_ms);
    Ok(claimed)
}

pub(super) async fn next_timer_due_ms(client: &Client) -> StoreResult<Option<i64>> {
    let row = read_opt(client, "SELECT MIN(claimable_at_ms) FROM timers", &[]).await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?.flatten())
}

/// A record from a row of [`RECORD_COLUMNS`].
fn record_from_row(row: &Row) -> StoreResult<ExecutionRecord> {
    Ok(ExecutionRecord {
        workspace_id: row.try_get(0)?,
        execution_id: row.try_get(1)?,
        definition_id: row.try_get(2)?,
        definition_version: row.try_get(3)?,
        status: executions::parse_status(row.try_get(4)?)?,
        correlation_id: row.try_get(5)?,
        idempotency_key: row.try_get(6)?,
        started_at_ms: row.try_get(7)?,
        updated_at_ms: row.try_get(8)?,
        next_seq: row.try_get(9)?,
        state: row.try_get(10)?,
    })
}

fn event_from_row(row: &Row) -> StoreResult<EventRecord> {
    Ok(EventRecord {
        seq: row.try_get(0)?,
        event_type: row.try_get(1)?,
        step_id: row.try_get(2)?,
        timestamp_ms: row.try_get(3)?,
        correlation_id: row.try_get(4)?,
        data: row.try_get(5)?,
    })
}
