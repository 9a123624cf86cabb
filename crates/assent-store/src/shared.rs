//! What both stores share: the shape of a migration and the bounds of a page.

/// One step of a store's schema. Steps are applied in `version` order, each once; the
/// versions applied are recorded in the `schema_migrations` table.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The most timers one `claim_due_timers` claims.
pub(crate) const TIMER_CLAIM_MAX: u32 = 500;

/// The most deliveries one `claim_due_deliveries` claims.
pub(crate) const DELIVERY_CLAIM_MAX: u32 = 500;

/// The largest page a list returns.
pub(crate) const PAGE_SIZE_MAX: u32 = 500;

/// `page_size` brought into `1..=PAGE_SIZE_MAX`.
pub(crate) fn page_size_bounded(page_size: u32) -> i64 {
    i64::from(page_size.clamp(1, PAGE_SIZE_MAX))
}

/// The cursor that lists from the newest write: above every `write_seq` (all below 2^53).
pub(crate) const CURSOR_START: i64 = i64::MAX;

impl crate::DefinitionStatus {
    /// The status as stored; anything else in the column is a database error.
    pub(crate) fn parse(stored: &str) -> crate::StoreResult<crate::DefinitionStatus> {
        match stored {
            "active" => Ok(crate::DefinitionStatus::Active),
            "tombstoned" => Ok(crate::DefinitionStatus::Tombstoned),
            other => {
                Err(crate::StoreError::Database(format!("unknown definition status {other:?}")))
            }
        }
    }
}
