//! Write-time validation in three stages, answering from the first that fails: the schema
//! (every problem), the edge-contract rules (the first broken one), then the linter (every
//! problem).

use crate::address::AddressPolicy;
use crate::compile::{compile, Compiled};
use crate::issue::Issue;
use crate::lint::{lint, LintIssue};
use crate::model::DefinitionSpec;
use crate::schema::definition::{parse_definition, Mode};
use serde_json::Value;

/// Why a definition was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Invalid {
    Schema(Vec<Issue>),
    Rule(String),
    Lint(Vec<LintIssue>),
}

/// A definition that passed every stage.
#[derive(Clone, Debug)]
pub struct Validated {
    pub spec: DefinitionSpec,
    pub compiled: Compiled,
    /// `ifVersion` of an update request.
    pub if_version: Option<i64>,
}

/// Runs the three stages over a create (or, with `Mode::Update`, an update) body. URLs are
/// checked under the operator's address `policy`.
pub fn validate_definition(
    body: &Value,
    mode: Mode,
    policy: &AddressPolicy,
) -> Result<Validated, Invalid> {
    let (spec, if_version) = parse_definition(body, mode, policy).map_err(Invalid::Schema)?;
    let compiled = compile(&spec).map_err(|e| Invalid::Rule(e.message))?;
    let lint = lint(&spec, &compiled);
    if !lint.is_empty() {
        return Err(Invalid::Lint(lint));
    }
    Ok(Validated { spec, compiled, if_version })
}
