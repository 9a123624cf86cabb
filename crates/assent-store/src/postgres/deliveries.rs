//! Outbound deliveries and their attempts in PostgreSQL. Mirrors `sqlite/deliveries.rs`.
//!
//! Races between processes: a claim locks the heads it picks `FOR UPDATE SKIP LOCKED`, so
//! two claims never lease one delivery; a head one claim holds locked, or has leased, still
//! reads as pending, so no claim takes the delivery after it. A head that another claim
//! leased and committed meanwhile fails the due check when its row is locked and re-read.
//! An attempt is recorded by one statement that moves the delivery only if its attempts
//! count is the claim's.
//!
//! A command queues its deliveries behind the execution's lowest pending one, which it
//! holds `FOR SHARE` until commit: that one cannot be finished meanwhile, and a finish that
//! holds it first commits before the command reads it again. So a finish that releases the
//! next head from the queue always sees every delivery queued behind the finished one. A
//! redelivery locks the execution's pending deliveries first, so it reads the lease of one
//! in flight after the claim that took it has committed.

use super::{execute, query, query_opt, read_opt};
use crate::deliveries::{
    delivery_cursor_after, distinct, parse_delivery_status, stored_count, stored_http_status,
    DeliveryQuery,
};
use crate::shared::{page_size_bounded, DELIVERY_CLAIM_MAX};
use crate::{
    AfterAttempt, ClaimedDelivery, DeliveryAttempt, DeliveryPage, DeliveryRecord, DeliveryStatus,
    NewDelivery, StoreError, StoreResult,
};
use deadpool_postgres::{Client, Transaction};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The columns [`record_from_row`] reads, in its order.
const RECORD_COLUMNS: &str = "delivery_id, execution_id, event_id, seq, event_type, url, \
     status, created_at_ms, updated_at_ms, next_attempt_at_ms";

/// Writes a command's deliveries, pending, their first attempt due at `now_ms`. All but
/// the first are queued, and the first too if an earlier one is still pending.
pub(super) async fn insert_deliveries(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
    deliveries: &[NewDelivery],
    now_ms: i64,
) -> StoreResult<()> {
    debug_assert!(deliveries.windows(2).all(|pair| pair[0].seq < pair[1].seq), "seq order");
    if deliveries.is_empty() {
        return Ok(());
    }
    let earlier_pending = query_opt(
        txn,
        "SELECT 1 FROM deliveries
          WHERE workspace_id = $1 AND execution_id = $2 AND status = 'pending'
          ORDER BY seq
          LIMIT 1
            FOR SHARE",
        &[&workspace_id, &execution_id],
    )
    .await?
    .is_some();
    for (at, delivery) in deliveries.iter().enumerate() {
        let queued = earlier_pending || at > 0;
        execute(
            txn,
            "INSERT INTO deliveries (workspace_id, execution_id, event_id, seq, event_type, url,
                                     secret, body, status, next_attempt_at_ms, queued,
                                     created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $9, $9)",
            &[
                &workspace_id,
                &execution_id,
                &delivery.event_id,
                &delivery.seq,
                &delivery.event_type,
                &delivery.url,
                &delivery.secret,
                &delivery.body,
                &now_ms,
                &queued,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Takes the execution's lowest pending delivery out of the queue, if it is in it: call
/// whenever the one before it may have stopped being pending.
async fn release_head(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
) -> StoreResult<()> {
    execute(
        txn,
        "UPDATE deliveries SET queued = FALSE
          WHERE delivery_id = (
                SELECT delivery_id FROM deliveries
                 WHERE workspace_id = $1 AND execution_id = $2 AND status = 'pending'
                 ORDER BY seq
                 LIMIT 1)
            AND queued",
        &[&workspace_id, &execution_id],
    )
    .await?;
    Ok(())
}

/// Leases the due heads of their executions, oldest claimable first.
pub(super) async fn claim_due_deliveries(
    txn: &Transaction<'_>,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let limit = i64::from(limit.clamp(1, DELIVERY_CLAIM_MAX));
    let lease_until_ms = now_ms.saturating_add(lease_ms.max(0));
    // The limit is part of the text (see `LIMIT_IN_TEXT`).
    let sql = format!(
        "WITH due AS (
             SELECT d.delivery_id FROM deliveries d
              WHERE d.status = 'pending' AND NOT d.queued
                AND GREATEST(d.next_attempt_at_ms, d.lease_until_ms) <= $1
                AND NOT EXISTS (
                    SELECT 1 FROM deliveries e
                     WHERE e.workspace_id = d.workspace_id
                       AND e.execution_id = d.execution_id
                       AND e.status = 'pending' AND e.seq < d.seq)
              ORDER BY GREATEST(d.next_attempt_at_ms, d.lease_until_ms)
              LIMIT {limit}
                FOR UPDATE OF d SKIP LOCKED)
         UPDATE deliveries t SET lease_until_ms = $2
           FROM due
          WHERE t.delivery_id = due.delivery_id
         RETURNING t.delivery_id, t.workspace_id, t.execution_id, t.event_id, t.seq, t.url,
                   t.secret, t.body, t.attempts, t.round_attempts, t.next_attempt_at_ms"
    );
    let rows = query(txn, &sql, &[&now_ms, &lease_until_ms]).await?;
    let mut claimed = rows
        .iter()
        .map(|row| Ok((row.try_get::<_, i64>(10)?, claimed_from_row(row)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    claimed.sort_by_key(|(due_at_ms, delivery)| (*due_at_ms, delivery.delivery_id));
    Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
}

fn claimed_from_row(row: &Row) -> StoreResult<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        delivery_id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        execution_id: row.try_get(2)?,
        event_id: row.try_get(3)?,
        seq: row.try_get(4)?,
        url: row.try_get(5)?,
        secret: row.try_get(6)?,
        body: row.try_get(7)?,
        attempts: stored_count(row.try_get(8)?)?,
        round_attempts: stored_count(row.try_get(9)?)?,
    })
}

/// Records the attempt and moves the delivery on, unless another claim already has.
pub(super) async fn finish_delivery_attempt(
    txn: &Transaction<'_>,
    claimed: &ClaimedDelivery,
    attempt: &DeliveryAttempt,
    after: AfterAttempt,
    now_ms: i64,
) -> StoreResult<bool> {
    debug_assert_eq!(attempt.attempt, claimed.attempts, "an attempt takes its claim's number");
    let (status, retry_at_ms) = after.status_and_retry();
    let http_status = attempt.http_status.map(i64::from);
    let recorded = execute(
        txn,
        "WITH moved AS (
             UPDATE deliveries
                SET status = $3, attempts = attempts + 1, round_attempts = round_attempts + 1,
                    next_attempt_at_ms = COALESCE($4, next_attempt_at_ms), lease_until_ms = 0,
                    updated_at_ms = $5
              WHERE delivery_id = $1 AND status = 'pending' AND attempts = $2
             RETURNING delivery_id)
         INSERT INTO delivery_attempts (delivery_id, attempt, at_ms, http_status, error,
                                        latency_ms)
         SELECT delivery_id, $2, $6::BIGINT, $7::BIGINT, $8::TEXT, $9::BIGINT FROM moved",
        &[
            &claimed.delivery_id,
            &i64::from(claimed.attempts),
            &status.as_str(),
            &retry_at_ms,
            &now_ms,
            &attempt.at_ms,
            &http_status,
            &attempt.error,
            &attempt.latency_ms,
        ],
    )
    .await?;
    if recorded == 0 {
        return Ok(false);
    }
    if status != DeliveryStatus::Pending {
        release_head(txn, &claimed.workspace_id, &claimed.execution_id).await?;
    }
    Ok(true)
}

/// The earliest time a head becomes claimable. Deliveries waiting behind a head are left
/// out: their own due time has usually passed, and a wake-up for them would find nothing.
pub(super) async fn next_delivery_due_ms(client: &Client) -> StoreResult<Option<i64>> {
    let row = read_opt(
        client,
        "SELECT GREATEST(d.next_attempt_at_ms, d.lease_until_ms) FROM deliveries d
          WHERE d.status = 'pending' AND NOT d.queued
            AND NOT EXISTS (
                SELECT 1 FROM deliveries e
                 WHERE e.workspace_id = d.workspace_id AND e.execution_id = d.execution_id
                   AND e.status = 'pending' AND e.seq < d.seq)
          ORDER BY GREATEST(d.next_attempt_at_ms, d.lease_until_ms)
          LIMIT 1",
        &[],
    )
    .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

pub(super) async fn list_deliveries(
    txn: &Transaction<'_>,
    workspace_id: &str,
    list: &DeliveryQuery,
) -> StoreResult<DeliveryPage> {
    let page_size = page_size_bounded(list.page_size);
    let status = list.status.map(DeliveryStatus::as_str);
    let mut filters = String::new();
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&workspace_id, &list.before_delivery_id];
    if let Some(execution_id) = &list.execution_id {
        values.push(execution_id);
        filters.push_str(&format!(" AND execution_id = ${}", values.len()));
    }
    if let Some(status) = &status {
        values.push(status);
        filters.push_str(&format!(" AND status = ${}", values.len()));
    }
    // One row past the page says whether another page follows.
    let limit = page_size + 1;
    values.push(&limit);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries
          WHERE workspace_id = $1 AND delivery_id < $2{filters}
          ORDER BY delivery_id DESC
          LIMIT ${}",
        values.len()
    );
    let rows = query(txn, &sql, &values).await?;
    let mut items = rows.iter().map(record_from_row).collect::<StoreResult<Vec<_>>>()?;

    let more_follow = items.len() as i64 > page_size;
    items.truncate(page_size as usize);
    attach_attempts(txn, &mut items).await?;
    let next_cursor = items.last().filter(|_| more_follow).map(delivery_cursor_after);
    Ok(DeliveryPage { items, next_cursor })
}

/// Reads the attempts of every listed delivery in one query, oldest first.
async fn attach_attempts(txn: &Transaction<'_>, items: &mut [DeliveryRecord]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = items.iter().map(|item| item.delivery_id).collect();
    let positions: HashMap<i64, usize> =
        items.iter().enumerate().map(|(at, item)| (item.delivery_id, at)).collect();
    let rows = query(
        txn,
        "SELECT delivery_id, attempt, at_ms, http_status, error, latency_ms
           FROM delivery_attempts
          WHERE delivery_id = ANY($1)
          ORDER BY delivery_id, attempt",
        &[&ids],
    )
    .await?;
    for row in &rows {
        let delivery_id: i64 = row.try_get(0)?;
        let at = positions.get(&delivery_id).copied();
        let at =
            at.ok_or_else(|| StoreError::Database("an attempt of no listed delivery".into()))?;
        items[at].attempts.push(DeliveryAttempt {
            attempt: stored_count(row.try_get(1)?)?,
            at_ms: row.try_get(2)?,
            http_status: stored_http_status(row.try_get(3)?)?,
            error: row.try_get(4)?,
            latency_ms: row.try_get(5)?,
        });
    }
    Ok(())
}

/// Restarts the listed deliveries of an execution that are not pending (without a list,
/// the dead ones), each due at `now_ms`.
pub(super) async fn redeliver(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
    event_ids: Option<&[String]>,
    now_ms: i64,
) -> StoreResult<Vec<String>> {
    let exists = query_opt(
        txn,
        "SELECT 1 FROM executions WHERE workspace_id = $1 AND execution_id = $2",
        &[&workspace_id, &execution_id],
    )
    .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let listed = event_ids.map(distinct);
    if let Some(listed) = &listed {
        check_listed(txn, workspace_id, execution_id, listed).await?;
    }

    let held_until_ms = lease_in_flight(txn, workspace_id, execution_id).await?;
    let mut values: Vec<&(dyn ToSql + Sync)> =
        vec![&workspace_id, &execution_id, &now_ms, &held_until_ms];
    let which = match &listed {
        Some(listed) => {
            values.push(listed);
            "event_id = ANY($5)"
        }
        None => "status = 'dead'",
    };
    let sql = format!(
        "UPDATE deliveries
            SET status = 'pending', round_attempts = 0, next_attempt_at_ms = $3,
                lease_until_ms = $4, queued = TRUE, updated_at_ms = $3
          WHERE workspace_id = $1 AND execution_id = $2 AND status <> 'pending' AND {which}
         RETURNING seq, event_id"
    );
    let rows = query(txn, &sql, &values).await?;
    release_head(txn, workspace_id, execution_id).await?;
    let mut restarted = rows
        .iter()
        .map(|row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, String>(1)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    restarted.sort();
    Ok(restarted.into_iter().map(|(_, event_id)| event_id).collect())
}

/// `NotFound` unless each of `event_ids` has a delivery in the execution.
async fn check_listed(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
    event_ids: &[&str],
) -> StoreResult<()> {
    let row = query_opt(
        txn,
        "SELECT count(DISTINCT event_id) FROM deliveries
          WHERE workspace_id = $1 AND execution_id = $2 AND event_id = ANY($3)",
        &[&workspace_id, &execution_id, &event_ids],
    )
    .await?;
    let found: i64 = row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0);
    if found != event_ids.len() as i64 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The end of the lease of the execution's delivery in flight, if it has one. A restarted
/// delivery that comes before it becomes the head, so it takes that lease too: one
/// execution never has two deliveries in flight. The pending deliveries stay locked until
/// commit, so no claim leases one meanwhile.
async fn lease_in_flight(
    txn: &Transaction<'_>,
    workspace_id: &str,
    execution_id: &str,
) -> StoreResult<i64> {
    let rows = query(
        txn,
        "SELECT lease_until_ms FROM deliveries
          WHERE workspace_id = $1 AND execution_id = $2 AND status = 'pending'
          ORDER BY seq
            FOR UPDATE",
        &[&workspace_id, &execution_id],
    )
    .await?;
    let leases = rows.iter().map(|row| row.try_get::<_, i64>(0));
    Ok(leases.collect::<Result<Vec<_>, _>>()?.into_iter().max().unwrap_or(0))
}

/// A record, without its attempts, from a row of [`RECORD_COLUMNS`].
fn record_from_row(row: &Row) -> StoreResult<DeliveryRecord> {
    let status = parse_delivery_status(row.try_get(6)?)?;
    let next_attempt_at_ms: i64 = row.try_get(9)?;
    Ok(DeliveryRecord {
        delivery_id: row.try_get(0)?,
        execution_id: row.try_get(1)?,
        event_id: row.try_get(2)?,
        seq: row.try_get(3)?,
        event_type: row.try_get(4)?,
        url: row.try_get(5)?,
        status,
        created_at_ms: row.try_get(7)?,
        updated_at_ms: row.try_get(8)?,
        next_attempt_at_ms: (status == DeliveryStatus::Pending).then_some(next_attempt_at_ms),
        attempts: Vec::new(),
    })
}
