//! The graph linter: every structural problem of a compiled definition, all at once.

use crate::compile::Compiled;
use crate::model::DefinitionSpec;
use serde::Serialize;

/// One linter finding, as it appears in `error.details.lint`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LintIssue {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_index: Option<usize>,
}

/// Lints a compiled definition. An empty list means it is sound.
pub fn lint(_spec: &DefinitionSpec, _compiled: &Compiled) -> Vec<LintIssue> {
    todo!("linter")
}
