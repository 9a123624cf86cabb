//! The schedule index: the enabled schedule triggers of active definitions, each with the
//! next instant it fires. It is rebuilt in the transaction of every definition write, so a
//! schedule changes or stops the moment its definition does.

use serde_json::Value;

/// The most schedules one `claim_due_schedules` claims.
pub(crate) const SCHEDULE_CLAIM_MAX: u32 = 500;

/// One enabled schedule trigger of a definition being written.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleEntry {
    pub trigger_id: String,
    pub cron: String,
    pub timezone: String,
    /// The trigger's `payloadTemplate`, or `null`.
    pub payload: Value,
    /// The first instant it fires, in epoch milliseconds.
    pub next_fire_at_ms: i64,
}

/// A schedule claimed for one of its instants: no other claim gets that instant.
#[derive(Clone, Debug, PartialEq)]
pub struct DueSchedule {
    pub workspace_id: String,
    pub definition_id: String,
    pub trigger_id: String,
    pub cron: String,
    pub timezone: String,
    pub payload: Value,
    /// The instant claimed, in epoch milliseconds.
    pub scheduled_at_ms: i64,
}
