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
#[allow(dead_code)]
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
