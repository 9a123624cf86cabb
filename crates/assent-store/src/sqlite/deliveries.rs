//! Outbound deliveries and their attempts in SQLite. Mirrors `postgres/deliveries.rs`.
//!
//! Every write runs on the writer thread, and SQLite lets one connection write to the file
//! at a time, so a claim picks and leases its deliveries with no other write in between:
//! the head of each execution it leases is the head when the claim commits. For the same
//! reason a delivery queued behind another is always released when that one finishes.

use crate::deliveries::{
    delivery_cursor_after, distinct, parse_delivery_status, stored_count, stored_http_status,
    DeliveryQuery,
};
use crate::shared::{page_size_bounded, DELIVERY_CLAIM_MAX};
use crate::{
    AfterAttempt, ClaimedDelivery, DeliveryAttempt, DeliveryPage, DeliveryRecord, DeliveryStatus,
    NewDelivery, StoreError, StoreResult,
};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, ToSql};
use std::collections::HashMap;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "delivery_id, execution_id, event_id, seq, event_type, url, \
     status, created_at_ms, updated_at_ms, next_attempt_at_ms";

/// Writes a command's deliveries, pending, their first attempt due at `now_ms`. All but
/// the first are queued, and the first too if an earlier one is still pending.
pub(super) fn insert_deliveries(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
    deliveries: &[NewDelivery],
    now_ms: i64,
) -> StoreResult<()> {
    debug_assert!(deliveries.windows(2).all(|pair| pair[0].seq < pair[1].seq), "seq order");
    if deliveries.is_empty() {
        return Ok(());
    }
    let earlier_pending = conn
        .prepare_cached(
            "SELECT 1 FROM deliveries
              WHERE workspace_id = ?1 AND execution_id = ?2 AND status = 'pending'",
        )?
        .exists(params![workspace_id, execution_id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (workspace_id, execution_id, event_id, seq, event_type, url,
                                 secret, body, status, next_attempt_at_ms, queued,
                                 created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, ?9, ?9)",
    )?;
    for (at, delivery) in deliveries.iter().enumerate() {
        let queued = earlier_pending || at > 0;
        insert.execute(params![
            workspace_id,
            execution_id,
            delivery.event_id,
            delivery.seq,
            delivery.event_type,
            delivery.url,
            delivery.secret,
            delivery.body,
            now_ms,
            queued,
        ])?;
    }
    Ok(())
}

/// Takes the execution's lowest pending delivery out of the queue, if it is in it: call
/// whenever the one before it may have stopped being pending.
fn release_head(conn: &Connection, workspace_id: &str, execution_id: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE deliveries SET queued = 0
          WHERE delivery_id = (
                SELECT delivery_id FROM deliveries
                 WHERE workspace_id = ?1 AND execution_id = ?2 AND status = 'pending'
                 ORDER BY seq
                 LIMIT 1)
            AND queued = 1",
    )?
    .execute(params![workspace_id, execution_id])?;
    Ok(())
}

/// Leases the due heads of their executions, oldest claimable first. A head in flight is
/// still pending, so the delivery after it is not a head until it is finished.
pub(super) fn claim_due_deliveries(
    conn: &Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let limit = limit.clamp(1, DELIVERY_CLAIM_MAX);
    let lease_until_ms = now_ms.saturating_add(lease_ms.max(0));
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries SET lease_until_ms = ?2
          WHERE delivery_id IN (
                SELECT d.delivery_id FROM deliveries d
                 WHERE d.status = 'pending' AND d.queued = 0
                   AND max(d.next_attempt_at_ms, d.lease_until_ms) <= ?1
                   AND NOT EXISTS (
                       SELECT 1 FROM deliveries e
                        WHERE e.workspace_id = d.workspace_id
                          AND e.execution_id = d.execution_id
                          AND e.status = 'pending' AND e.seq < d.seq)
                 ORDER BY max(d.next_attempt_at_ms, d.lease_until_ms)
                 LIMIT ?3)
         RETURNING delivery_id, workspace_id, execution_id, event_id, seq, url, secret, body,
                   attempts, round_attempts, next_attempt_at_ms",
    )?;
    let mut rows = stmt.query(params![now_ms, lease_until_ms, limit])?;
    let mut claimed = Vec::new();
    while let Some(row) = rows.next()? {
        let due_at_ms: i64 = row.get(10)?;
        claimed.push((due_at_ms, claimed_from_row(row)?));
    }
    claimed.sort_by_key(|(due_at_ms, delivery)| (*due_at_ms, delivery.delivery_id));
    Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
}

fn claimed_from_row(row: &Row<'_>) -> StoreResult<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        delivery_id: row.get(0)?,
        workspace_id: row.get(1)?,
        execution_id: row.get(2)?,
        event_id: row.get(3)?,
        seq: row.get(4)?,
        url: row.get(5)?,
        secret: row.get(6)?,
        body: row.get(7)?,
        attempts: stored_count(row.get(8)?)?,
        round_attempts: stored_count(row.get(9)?)?,
    })
}

/// Records the attempt and moves the delivery on, unless another claim already has.
pub(super) fn finish_delivery_attempt(
    conn: &Connection,
    claimed: &ClaimedDelivery,
    attempt: &DeliveryAttempt,
    after: AfterAttempt,
    now_ms: i64,
) -> StoreResult<bool> {
    debug_assert_eq!(attempt.attempt, claimed.attempts, "an attempt takes its claim's number");
    let (status, retry_at_ms) = after.status_and_retry();
    let moved = conn
        .prepare_cached(
            "UPDATE deliveries
                SET status = ?3, attempts = attempts + 1, round_attempts = round_attempts + 1,
                    next_attempt_at_ms = coalesce(?4, next_attempt_at_ms), lease_until_ms = 0,
                    updated_at_ms = ?5
              WHERE delivery_id = ?1 AND status = 'pending' AND attempts = ?2",
        )?
        .execute(params![
            claimed.delivery_id,
            claimed.attempts,
            status.as_str(),
            retry_at_ms,
            now_ms
        ])?;
    if moved == 0 {
        return Ok(false);
    }

    conn.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempt, at_ms, http_status, error,
                                        latency_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        claimed.delivery_id,
        claimed.attempts,
        attempt.at_ms,
        attempt.http_status,
        attempt.error,
        attempt.latency_ms,
    ])?;
    if status != DeliveryStatus::Pending {
        release_head(conn, &claimed.workspace_id, &claimed.execution_id)?;
    }
    Ok(true)
}

/// The earliest time a head becomes claimable. Deliveries waiting behind a head are left
/// out: their own due time has usually passed, and a wake-up for them would find nothing.
pub(super) fn next_delivery_due_ms(conn: &Connection) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT max(d.next_attempt_at_ms, d.lease_until_ms) FROM deliveries d
              WHERE d.status = 'pending' AND d.queued = 0
                AND NOT EXISTS (
                    SELECT 1 FROM deliveries e
                     WHERE e.workspace_id = d.workspace_id AND e.execution_id = d.execution_id
                       AND e.status = 'pending' AND e.seq < d.seq)
              ORDER BY max(d.next_attempt_at_ms, d.lease_until_ms)
              LIMIT 1",
        )?
        .query_row([], |row| row.get(0))
        .optional()?)
}

pub(super) fn list_deliveries(
    conn: &Connection,
    workspace_id: &str,
    list: &DeliveryQuery,
) -> StoreResult<DeliveryPage> {
    let page_size = page_size_bounded(list.page_size);
    let status = list.status.map(DeliveryStatus::as_str);
    let mut filters = String::new();
    let mut values: Vec<&dyn ToSql> = vec![&workspace_id, &list.before_delivery_id];
    if let Some(execution_id) = &list.execution_id {
        values.push(execution_id);
        filters.push_str(&format!(" AND execution_id = ?{}", values.len()));
    }
    if let Some(status) = &status {
        values.push(status);
        filters.push_str(&format!(" AND status = ?{}", values.len()));
    }
    // One row past the page says whether another page follows.
    let limit = page_size + 1;
    values.push(&limit);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries
          WHERE workspace_id = ?1 AND delivery_id < ?2{filters}
          ORDER BY delivery_id DESC
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
    attach_attempts(conn, &mut items)?;
    let next_cursor = items.last().filter(|_| more_follow).map(delivery_cursor_after);
    Ok(DeliveryPage { items, next_cursor })
}

/// Reads the attempts of every listed delivery in one query, oldest first.
fn attach_attempts(conn: &Connection, items: &mut [DeliveryRecord]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = items.iter().map(|item| item.delivery_id).collect();
    let ids = serde_json::Value::from(ids).to_string();
    let positions: HashMap<i64, usize> =
        items.iter().enumerate().map(|(at, item)| (item.delivery_id, at)).collect();
    let mut stmt = conn.prepare_cached(
        "SELECT delivery_id, attempt, at_ms, http_status, error, latency_ms
           FROM delivery_attempts
          WHERE delivery_id IN (SELECT value FROM json_each(?1))
          ORDER BY delivery_id, attempt",
    )?;
    let mut rows = stmt.query([ids])?;
    while let Some(row) = rows.next()? {
        let delivery_id: i64 = row.get(0)?;
        let at = positions.get(&delivery_id).copied();
        let at =
            at.ok_or_else(|| StoreError::Database("an attempt of no listed delivery".into()))?;
        items[at].attempts.push(DeliveryAttempt {
            attempt: stored_count(row.get(1)?)?,
            at_ms: row.get(2)?,
            http_status: stored_http_status(row.get(3)?)?,
            error: row.get(4)?,
            latency_ms: row.get(5)?,
        });
    }
    Ok(())
}

/// Restarts the listed deliveries of an execution that are not pending (without a list,
/// the dead ones), each due at `now_ms`.
pub(super) fn redeliver(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
    event_ids: Option<&[String]>,
    now_ms: i64,
) -> StoreResult<Vec<String>> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM executions WHERE workspace_id = ?1 AND execution_id = ?2")?
        .exists(params![workspace_id, execution_id])?;
    if !exists {
        return Err(StoreError::NotFound);
    }
    let listed = event_ids.map(|ids| listed_ids(conn, workspace_id, execution_id, ids));
    let listed = listed.transpose()?;

    let held_until_ms = lease_in_flight(conn, workspace_id, execution_id)?;
    let mut values: Vec<&dyn ToSql> = vec![&workspace_id, &execution_id, &now_ms, &held_until_ms];
    let which = match &listed {
        Some(listed) => {
            values.push(listed);
            "event_id IN (SELECT value FROM json_each(?5))"
        }
        None => "status = 'dead'",
    };
    let sql = format!(
        "UPDATE deliveries
            SET status = 'pending', round_attempts = 0, next_attempt_at_ms = ?3,
                lease_until_ms = ?4, queued = 1, updated_at_ms = ?3
          WHERE workspace_id = ?1 AND execution_id = ?2 AND status <> 'pending' AND {which}
         RETURNING seq, event_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(values))?;
    let mut restarted: Vec<(i64, String)> = Vec::new();
    while let Some(row) = rows.next()? {
        restarted.push((row.get(0)?, row.get(1)?));
    }
    drop(rows);
    release_head(conn, workspace_id, execution_id)?;
    restarted.sort();
    Ok(restarted.into_iter().map(|(_, event_id)| event_id).collect())
}

/// The end of the lease of the execution's delivery in flight, if it has one. A restarted
/// delivery that comes before it becomes the head, so it takes that lease too: one
/// execution never has two deliveries in flight.
fn lease_in_flight(conn: &Connection, workspace_id: &str, execution_id: &str) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(max(lease_until_ms), 0) FROM deliveries
              WHERE workspace_id = ?1 AND execution_id = ?2 AND status = 'pending'",
        )?
        .query_row(params![workspace_id, execution_id], |row| row.get(0))?)
}

/// `event_ids` as a JSON array for `json_each`; `NotFound` unless each one has a delivery
/// in the execution.
fn listed_ids(
    conn: &Connection,
    workspace_id: &str,
    execution_id: &str,
    event_ids: &[String],
) -> StoreResult<String> {
    let wanted = distinct(event_ids);
    let listed = serde_json::Value::from(wanted.clone()).to_string();
    let found: i64 = conn
        .prepare_cached(
            "SELECT count(DISTINCT event_id) FROM deliveries
              WHERE workspace_id = ?1 AND execution_id = ?2
                AND event_id IN (SELECT value FROM json_each(?3))",
        )?
        .query_row(params![workspace_id, execution_id, listed], |row| row.get(0))?;
    if found != wanted.len() as i64 {
        return Err(StoreError::NotFound);
    }
    Ok(listed)
}

/// A record, without its attempts, from a row of [`RECORD_COLUMNS`].
fn record_from_row(row: &Row<'_>) -> StoreResult<DeliveryRecord> {
    let status: String = row.get(6)?;
    let status = parse_delivery_status(&status)?;
    let next_attempt_at_ms: i64 = row.get(9)?;
    Ok(DeliveryRecord {
        delivery_id: row.get(0)?,
        execution_id: row.get(1)?,
        event_id: row.get(2)?,
        seq: row.get(3)?,
        event_type: row.get(4)?,
        url: row.get(5)?,
        status,
        created_at_ms: row.get(7)?,
        updated_at_ms: row.get(8)?,
        next_attempt_at_ms: (status == DeliveryStatus::Pending).then_some(next_attempt_at_ms),
        attempts: Vec::new(),
    })
}
