//! The definition create and update schema (reference 2.1.1 and 2.1.2).

use crate::address::AddressPolicy;
use crate::issue::Issue;
use crate::model::DefinitionSpec;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    /// Update: the same fields plus a required `ifVersion`.
    Update,
}

/// Parses a create or update body. Returns the spec and, for an update, `ifVersion`.
pub fn parse_definition(
    _body: &Value,
    _mode: Mode,
    _policy: &AddressPolicy,
) -> Result<(DefinitionSpec, Option<i64>), Vec<Issue>> {
    todo!("definition schema")
}
