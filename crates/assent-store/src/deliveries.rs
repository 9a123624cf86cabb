//! Outbound event deliveries: an outbox written in the same transaction as the events it
//! carries, claimed by delivery workers in order per execution, with every attempt kept
//! for the delivery log.

use crate::{StoreError, StoreResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or for an earlier delivery of its execution).
    Pending,
    Delivered,
    /// Every attempt of its round failed.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] =
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn from_name(name: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The status as stored; anything else in the column is a database error.
pub(crate) fn parse_delivery_status(stored: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::from_name(stored)
        .ok_or_else(|| StoreError::Database(format!("unknown delivery status {stored:?}")))
}

/// One event to deliver, written with the event itself. Its first attempt is due at the
/// execution record's `updated_at_ms` as the same write leaves it (the write's `now`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewDelivery {
    pub event_id: String,
    pub seq: i64,
    pub event_type: String,
    pub url: String,
    pub secret: String,
    /// The exact bytes that are signed and sent.
    pub body: String,
}

/// A delivery claimed for one attempt; no other claim gets it until its lease ends.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedDelivery {
    pub delivery_id: i64,
    pub workspace_id: String,
    pub execution_id: String,
    pub event_id: String,
    pub seq: i64,
    pub url: String,
    pub secret: String,
    pub body: String,
    /// Attempts made so far, over every round: the 0-based number of this attempt.
    pub attempts: u32,
    /// Attempts made so far in the current round (a redelivery starts a new round).
    pub round_attempts: u32,
}

/// One attempt as the delivery log shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryAttempt {
    /// 0-based, as sent in `x-velt-attempt`.
    pub attempt: u32,
    pub at_ms: i64,
    /// The receiver's status, when it answered.
    pub http_status: Option<u16>,
    /// What went wrong, when the attempt failed.
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// Where a delivery goes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Failed; the next attempt is due then.
    RetryAt(i64),
    /// Failed, and it was the round's last attempt.
    Dead,
}

/// A delivery with its attempts, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRecord {
    pub delivery_id: i64,
    pub execution_id: String,
    pub event_id: String,
    pub seq: i64,
    pub event_type: String,
    pub url: String,
    pub status: DeliveryStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When the next attempt is due; `None` unless pending.
    pub next_attempt_at_ms: Option<i64>,
    pub attempts: Vec<DeliveryAttempt>,
}

/// Which deliveries to list.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryFilter<'a> {
    pub execution_id: Option<&'a str>,
    pub status: Option<DeliveryStatus>,
    pub page_size: u32,
    /// A `next_cursor` of an earlier page.
    pub cursor: Option<&'a str>,
}

/// One page of deliveries, newest first.
#[derive(Clone, Debug)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryRecord>,
    /// The cursor to pass back for the next page; `None` when this page was the last.
    pub next_cursor: Option<String>,
}

/// A [`DeliveryFilter`] as the stores run it: owned, its cursor read.
#[derive(Clone, Debug)]
pub(crate) struct DeliveryQuery {
    pub execution_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub page_size: u32,
    /// Only deliveries with a lower id are listed.
    pub before_delivery_id: i64,
}

impl DeliveryQuery {
    /// `InvalidCursor` for a cursor no list gave out.
    pub(crate) fn from_filter(filter: &DeliveryFilter<'_>) -> StoreResult<DeliveryQuery> {
        Ok(DeliveryQuery {
            execution_id: filter.execution_id.map(str::to_owned),
            status: filter.status,
            page_size: filter.page_size,
            before_delivery_id: parse_delivery_cursor(filter.cursor)?,
        })
    }
}

impl AfterAttempt {
    /// The status a delivery takes, and its next attempt's due time when it has one.
    pub(crate) fn status_and_retry(self) -> (DeliveryStatus, Option<i64>) {
        match self {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
            AfterAttempt::RetryAt(due_at_ms) => (DeliveryStatus::Pending, Some(due_at_ms)),
            AfterAttempt::Dead => (DeliveryStatus::Dead, None),
        }
    }
}

/// Reads a deliveries list cursor: the last `delivery_id` of a page, in decimal. The start
/// of the list, without one, is above every id.
pub(crate) fn parse_delivery_cursor(cursor: Option<&str>) -> StoreResult<i64> {
    let Some(cursor) = cursor else { return Ok(i64::MAX) };
    let is_decimal =
        !cursor.is_empty() && cursor.len() <= 19 && cursor.bytes().all(|b| b.is_ascii_digit());
    cursor.parse::<i64>().ok().filter(|_| is_decimal).ok_or(StoreError::InvalidCursor)
}

/// The cursor that follows a page whose last delivery is `last`.
pub(crate) fn delivery_cursor_after(last: &DeliveryRecord) -> String {
    last.delivery_id.to_string()
}

/// An attempts counter as stored; a negative or huge one is a database error.
pub(crate) fn stored_count(stored: i64) -> StoreResult<u32> {
    u32::try_from(stored)
        .map_err(|_| StoreError::Database(format!("attempts count out of range: {stored}")))
}

/// An HTTP status as stored.
pub(crate) fn stored_http_status(stored: Option<i64>) -> StoreResult<Option<u16>> {
    stored
        .map(|status| {
            u16::try_from(status)
                .map_err(|_| StoreError::Database(format!("HTTP status out of range: {status}")))
        })
        .transpose()
}

/// `ids` without repeats, in their first order.
pub(crate) fn distinct(ids: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().map(String::as_str).filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_decimal_delivery_ids() {
        assert_eq!(parse_delivery_cursor(None).unwrap(), i64::MAX);
        assert_eq!(parse_delivery_cursor(Some("0")).unwrap(), 0);
        assert_eq!(parse_delivery_cursor(Some("9223372036854775807")).unwrap(), i64::MAX);
        for cursor in ["", "-1", "+1", "1.5", "abc", " 1", "9223372036854775808", "1:x"] {
            let parsed = parse_delivery_cursor(Some(cursor));
            assert!(matches!(parsed, Err(StoreError::InvalidCursor)), "{cursor:?}: {parsed:?}");
        }
    }

    #[test]
    fn statuses_read_back_what_they_wrote() {
        for status in DeliveryStatus::ALL {
            assert_eq!(parse_delivery_status(status.as_str()).unwrap(), status);
        }
        assert!(matches!(parse_delivery_status("sent"), Err(StoreError::Database(_))));
    }

    #[test]
    fn repeated_ids_are_dropped() {
        let ids = ["b", "a", "b", "c", "a"].map(String::from);
        assert_eq!(distinct(&ids), ["b", "a", "c"]);
    }
}
