//! What the store keeps of an execution: its indexed columns, the engine's state as an
//! opaque JSON document, its events and its timers; and the list cursor over executions.

use crate::{DefinitionStatus, StoreError, StoreResult};
use serde_json::Value;

pub use assent_core::vocab::ExecutionStatus;

/// The status as stored; anything else in the column is a database error.
pub(crate) fn parse_status(stored: &str) -> StoreResult<ExecutionStatus> {
    ExecutionStatus::from_name(stored)
        .ok_or_else(|| StoreError::Database(format!("unknown execution status {stored:?}")))
}

/// An execution as stored. The store reads only the columns; `state` is the engine's.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionRecord {
    pub workspace_id: String,
    pub execution_id: String,
    pub definition_id: String,
    pub definition_version: i64,
    pub status: ExecutionStatus,
    pub correlation_id: String,
    pub idempotency_key: String,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    /// The `seq` the next event takes. The store keeps it one past the last event written;
    /// what a caller sets here is not written.
    pub next_seq: i64,
    /// The engine's state document as JSON text, kept as text end to end so that neither
    /// store parses or re-serialises it.
    pub state: String,
}

/// An event to append. `seq` is the engine's, increasing and at least the execution's
/// `next_seq`; every event takes one, internal ones too.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub seq: i64,
    pub event_type: String,
    pub step_id: Option<String>,
    pub timestamp_ms: i64,
    pub data: Value,
    /// Whether `getEvents` returns it (and webhooks deliver it).
    pub external: bool,
}

/// An event as stored, with the execution's correlation id.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub event_type: String,
    pub step_id: Option<String>,
    pub timestamp_ms: i64,
    pub correlation_id: String,
    pub data: Value,
}

/// A timer to set, or to move if the execution already has one with this key.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerSet {
    pub timer_key: String,
    pub due_at_ms: i64,
    pub payload: Value,
}

/// What a command appends besides the new state: its events and its timers. Timers are
/// cleared before others are set, so one key can be both (a timer moved).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutionChanges {
    pub events: Vec<NewEvent>,
    pub timers_set: Vec<TimerSet>,
    pub timers_cleared: Vec<String>,
    /// Outbound deliveries of some of `events`, written in the same transaction.
    pub deliveries: Vec<crate::NewDelivery>,
}

/// A new execution with what its dispatch causes.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionWrite {
    pub record: ExecutionRecord,
    pub changes: ExecutionChanges,
}

/// What a dispatch reads before it writes, in one read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchLookup {
    /// `(execution_id, correlation_id)` of the execution a live idempotency key names.
    pub replay: Option<(String, String)>,
    /// The definition's current version, active or tombstoned; `None` without one.
    pub definition: Option<DefinitionHead>,
}

/// The definition version an execution runs, without the definition's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedVersion {
    pub definition_id: String,
    pub version: i64,
    /// That version as stored; `None` once it is no longer stored or its definition was
    /// deleted, as [`Store::get_definition_version`](crate::Store::get_definition_version)
    /// would find it.
    pub stored: Option<DefinitionHead>,
}

impl PinnedVersion {
    /// From a row of [`PINNED_VERSION`]: `created_at_ms` and `updated_at_ms` are those of
    /// the stored version, both `None` when there is none.
    pub(crate) fn from_columns(
        definition_id: String,
        version: i64,
        stored_at_ms: Option<(i64, i64)>,
    ) -> PinnedVersion {
        let stored = stored_at_ms.map(|(created_at_ms, updated_at_ms)| DefinitionHead {
            version,
            status: DefinitionStatus::Active,
            created_at_ms,
            updated_at_ms,
        });
        PinnedVersion { definition_id, version, stored }
    }
}

/// An execution's definition id and version, and that version's timestamps while it is
/// stored and its definition active. The same text for both stores (SQLite numbers `$n`
/// parameters in the order they first appear, which is theirs here).
pub(crate) const PINNED_VERSION: &str = "SELECT e.definition_id, e.definition_version,
        v.created_at_ms, v.updated_at_ms
   FROM executions e
   LEFT JOIN definitions d
     ON d.workspace_id = e.workspace_id AND d.definition_id = e.definition_id
    AND d.status = 'active'
   LEFT JOIN definition_versions v
     ON v.workspace_id = d.workspace_id AND v.definition_id = d.definition_id
    AND v.version = e.definition_version
  WHERE e.workspace_id = $1 AND e.execution_id = $2";

/// Which stored version a definition is at, without its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefinitionHead {
    pub version: i64,
    pub status: DefinitionStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DispatchOutcome {
    Created,
    /// The idempotency key was live: nothing was written; these are the original's ids.
    Replayed {
        execution_id: String,
        correlation_id: String,
    },
}

/// How [`crate::Store::dispatch_at_head`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadDispatch {
    Created,
    /// The key was live before this dispatch: these are the original's ids.
    Replayed {
        execution_id: String,
        correlation_id: String,
    },
    /// Nothing was written and nothing is known: the definition moved on, is gone or
    /// deleted, or the key had expired or was being written by a racing dispatch.
    Unsettled,
}

/// One page of executions, newest first.
#[derive(Clone, Debug)]
pub struct ExecutionPage {
    pub items: Vec<ExecutionRecord>,
    /// The cursor to pass back for the next page; `None` when this page was not full.
    pub next_cursor: Option<String>,
}

/// External events with `seq` above the one asked for, oldest first.
#[derive(Clone, Debug)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    pub has_more: bool,
}

/// A timer claimed for firing; no other claim gets it until its lease ends.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedTimer {
    pub workspace_id: String,
    pub execution_id: String,
    pub timer_key: String,
    pub due_at_ms: i64,
    pub payload: Value,
}

/// A place in the executions list: every execution strictly before it in the list order
/// (`started_at_ms` then `execution_id`, both descending) comes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExecutionCursor {
    pub started_at_ms: i64,
    pub execution_id: String,
}

impl ExecutionCursor {
    /// Above every execution: the start of the list.
    pub(crate) fn start() -> ExecutionCursor {
        ExecutionCursor { started_at_ms: i64::MAX, execution_id: String::new() }
    }

    /// The cursor that follows `last`, as given to clients: `<started_at_ms>:<execution_id>`.
    pub(crate) fn after(last: &ExecutionRecord) -> String {
        format!("{}:{}", last.started_at_ms, last.execution_id)
    }

    /// Reads a cursor given back by a client. A bare `<ms>`, as the hosted engine's
    /// cursors are, lists what started strictly before that millisecond.
    pub(crate) fn parse(cursor: &str) -> StoreResult<ExecutionCursor> {
        let (ms, execution_id) = cursor.split_once(':').unwrap_or((cursor, ""));
        let ms_is_decimal =
            !ms.is_empty() && ms.len() <= 19 && ms.bytes().all(|b| b.is_ascii_digit());
        let started_at_ms = ms.parse::<i64>().ok().filter(|_| ms_is_decimal);
        let id_missing_after_colon = cursor.contains(':') && execution_id.is_empty();
        match started_at_ms {
            Some(started_at_ms) if !id_missing_after_colon => {
                Ok(ExecutionCursor { started_at_ms, execution_id: execution_id.to_owned() })
            }
            _ => Err(StoreError::InvalidCursor),
        }
    }

    /// The cursor to start from: the one given, or the start of the list.
    pub(crate) fn from_request(cursor: Option<&str>) -> StoreResult<ExecutionCursor> {
        cursor.map_or_else(|| Ok(ExecutionCursor::start()), ExecutionCursor::parse)
    }
}

/// The `next_seq` after `events` are appended to an execution whose `next_seq` was
/// `current`.
pub(crate) fn next_seq_after(current: i64, events: &[NewEvent]) -> i64 {
    debug_assert!(events.windows(2).all(|pair| pair[0].seq < pair[1].seq), "event seqs increase");
    debug_assert!(events.first().is_none_or(|first| first.seq >= current), "seqs reused");
    events.last().map_or(current, |last| last.seq + 1).max(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_wrote() {
        let cursor = ExecutionCursor::parse("1767225600000:exec_1_ab:c").unwrap();
        assert_eq!(cursor.started_at_ms, 1_767_225_600_000);
        assert_eq!(cursor.execution_id, "exec_1_ab:c");
        let bare = ExecutionCursor::parse("17").unwrap();
        assert_eq!((bare.started_at_ms, bare.execution_id.as_str()), (17, ""));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for cursor in ["", ":", "12:", "-5:x", "+5:x", "abc", "1.5:x", "99999999999999999999:x"] {
            let parsed = ExecutionCursor::parse(cursor);
            assert!(matches!(parsed, Err(StoreError::InvalidCursor)), "{cursor:?}: {parsed:?}");
        }
    }

    #[test]
    fn next_seq_moves_past_the_last_event() {
        let event = |seq| NewEvent {
            seq,
            event_type: "step.started".into(),
            step_id: None,
            timestamp_ms: 0,
            data: Value::Null,
            external: false,
        };
        assert_eq!(next_seq_after(4, &[]), 4);
        assert_eq!(next_seq_after(4, &[event(4), event(6)]), 7);
    }
}
