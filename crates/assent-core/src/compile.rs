//! The edge compiler: resolves the three endpoint forms, expands groups, derives loop
//! regions from reject back-edges, and enforces the edge-contract rules.

use crate::expr::Expr;
use crate::model::{DefinitionSpec, EdgeRole};

/// A forward edge between two nodes, after group expansion.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledEdge {
    pub from: String,
    pub to: String,
    pub role: EdgeRole,
    /// The predicate: the role's built-in one, or the custom edge's; `None` for `always`
    /// and `exhausted`.
    pub when: Option<Expr>,
    pub from_group_id: Option<String>,
    pub to_group_id: Option<String>,
    /// Index of the authored edge this came from.
    pub edge_index: usize,
}

/// A revision loop derived from a reject back-edge.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledLoop {
    pub loop_id: String,
    pub entry_node_id: String,
    pub body_node_ids: Vec<String>,
    pub max_iterations: u32,
    pub on_exhausted: Option<String>,
    /// The node or group the back-edge leaves.
    pub from_id: String,
    pub from_is_group: bool,
    pub edge_index: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    pub forward_edges: Vec<CompiledEdge>,
    pub loops: Vec<CompiledLoop>,
}

/// The first broken edge-contract rule, worded for the API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub message: String,
}

/// Compiles a schema-valid definition, or names the first broken edge-contract rule.
pub fn compile(_spec: &DefinitionSpec) -> Result<Compiled, RuleError> {
    todo!("edge compiler")
}

impl Compiled {
    /// The `compiled` block of a definition view.
    pub fn to_json(&self) -> serde_json::Value {
        todo!("compiled view")
    }
}
