//! The edge compiler: resolves edge endpoints, expands groups, derives loop regions from
//! reject back-edges, and enforces the edge-contract rules.
//!
//! Rules are checked in a fixed order and the first broken one is returned:
//!
//! 1. Per edge, in authored order. For one edge: group-to-group; `custom` without `when`;
//!    `when` on another role; `loop` on another role than `reject`; then by role —
//!    a loop back-edge must point at a node, its `to` must be an ancestor of its `from`
//!    (of some member, for a group source), and a group source must be `joinOnQuorum`;
//!    a forward reject must not point at an ancestor and must not leave a
//!    `cancelOnQuorum` or `joinOnQuorum` group; an `exhausted` edge needs a sibling reject
//!    back-edge from the same `from` and must point at a node.
//! 2. Per node, in definition order: every human node has an outgoing reject edge (its
//!    own, or one leaving a group it belongs to).
//!
//! Ancestry is read on the forward graph: every edge except reject back-edges, with group
//! endpoints expanded to their members. A node is never its own ancestor. References to
//! undeclared nodes or groups are skipped here and reported by the linter, as are repeated
//! node ids (the first node of an id is the one that counts).

mod graph;
#[cfg(test)]
pub(crate) mod testkit;

pub(crate) use graph::NodeGraph;

use crate::expr::{Expr, Op};
use crate::model::{DefinitionSpec, Edge, EdgeRole, Endpoint, Group, NodeType, QuorumPolicy};
use serde_json::{json, Value};
use std::collections::HashMap;

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
    /// Nodes on forward paths from the entry to the back-edge's source (to every member,
    /// for a group source), in definition order.
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
pub fn compile(spec: &DefinitionSpec) -> Result<Compiled, RuleError> {
    let endpoints = Endpoints::new(spec);
    let forward = forward_graph(spec, &endpoints);
    let ctx = Ctx { spec, endpoints: &endpoints, forward: &forward };

    for (index, edge) in spec.edges.iter().enumerate() {
        check_edge(&ctx, index, edge).map_err(|message| RuleError { message })?;
    }
    check_human_reject_paths(spec).map_err(|message| RuleError { message })?;

    Ok(Compiled {
        forward_edges: compile_forward_edges(spec, &endpoints),
        loops: compile_loops(&ctx),
    })
}

/// A reject edge marked with `loop`: it leaves the forward graph and defines a loop.
fn is_back_edge(edge: &Edge) -> bool {
    edge.on == EdgeRole::Reject && edge.loop_max_iterations.is_some()
}

/// Resolves edge endpoints to declared node ids.
struct Endpoints<'a> {
    nodes: NodeGraph<'a>,
    groups: HashMap<&'a str, &'a Group>,
}

impl<'a> Endpoints<'a> {
    fn new(spec: &'a DefinitionSpec) -> Endpoints<'a> {
        let mut groups = HashMap::new();
        for group in &spec.groups {
            groups.entry(group.group_id.as_str()).or_insert(group);
        }
        Endpoints { nodes: NodeGraph::new(&spec.nodes), groups }
    }

    fn group(&self, group_id: &str) -> Option<&'a Group> {
        self.groups.get(group_id).copied()
    }

    /// The declared nodes an endpoint stands for: the node itself, or the group's declared
    /// members in their listed order. Empty when the endpoint is undeclared.
    fn nodes(&self, endpoint: &'a Endpoint) -> Vec<&'a str> {
        match endpoint {
            Endpoint::Node(id) if self.nodes.contains(id) => vec![id.as_str()],
            Endpoint::Node(_) => Vec::new(),
            Endpoint::Group(id) => {
                let Some(group) = self.group(id) else { return Vec::new() };
                let mut members: Vec<&'a str> = Vec::new();
                for member in &group.member_node_ids {
                    if self.nodes.contains(member) && !members.contains(&member.as_str()) {
                        members.push(member);
                    }
                }
                members
            }
        }
    }
}

/// The forward graph on node ids: every authored edge but reject back-edges, expanded.
fn forward_graph<'a>(spec: &'a DefinitionSpec, endpoints: &Endpoints<'a>) -> NodeGraph<'a> {
    let mut graph = NodeGraph::new(&spec.nodes);
    for edge in spec.edges.iter().filter(|e| !is_back_edge(e)) {
        for from in endpoints.nodes(&edge.from) {
            for to in endpoints.nodes(&edge.to) {
                graph.add_edge(from, to);
            }
        }
    }
    graph
}

struct Ctx<'s, 'a> {
    spec: &'a DefinitionSpec,
    endpoints: &'s Endpoints<'a>,
    forward: &'s NodeGraph<'a>,
}

/// `id`, or `group id`, as rule messages name an endpoint.
fn describe(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Node(id) => id.clone(),
        Endpoint::Group(id) => format!("group {id}"),
    }
}

fn endpoint_id(endpoint: &Endpoint) -> (&str, bool) {
    match endpoint {
        Endpoint::Node(id) => (id, false),
        Endpoint::Group(id) => (id, true),
    }
}

fn check_edge(ctx: &Ctx, index: usize, edge: &Edge) -> Result<(), String> {
    let at = format!("edge {index} ({} -> {})", describe(&edge.from), describe(&edge.to));
    let on = edge.on.as_str();

    let group_to_group = matches!((&edge.from, &edge.to), (Endpoint::Group(_), Endpoint::Group(_)));
    if group_to_group {
        return Err(format!("{at}: an edge may not join two groups"));
    }
    if edge.on == EdgeRole::Custom && edge.when.is_none() {
        return Err(format!("{at}: on=\"custom\" requires a non-empty \"when\""));
    }
    if edge.on != EdgeRole::Custom && edge.when.is_some() {
        return Err(format!("{at}: \"when\" is only allowed with on=\"custom\", not on=\"{on}\""));
    }
    if edge.on != EdgeRole::Reject && edge.loop_max_iterations.is_some() {
        return Err(format!("{at}: \"loop\" is only allowed with on=\"reject\", not on=\"{on}\""));
    }

    match edge.on {
        EdgeRole::Reject if is_back_edge(edge) => check_back_edge(ctx, &at, edge),
        EdgeRole::Reject => check_forward_reject(ctx, &at, edge),
        EdgeRole::Exhausted => check_exhausted(ctx, &at, edge),
        _ => Ok(()),
    }
}

fn check_back_edge(ctx: &Ctx, at: &str, edge: &Edge) -> Result<(), String> {
    let Endpoint::Node(entry) = &edge.to else {
        return Err(format!("{at}: a loop back-edge must point at a node, not a group"));
    };

    let sources = ctx.endpoints.nodes(&edge.from);
    let resolved = ctx.forward.contains(entry) && !sources.is_empty();
    let goes_back = sources.iter().any(|source| ctx.forward.is_ancestor(entry, source));
    if resolved && !goes_back {
        let of = match &edge.from {
            Endpoint::Node(id) => id.clone(),
            Endpoint::Group(id) => format!("any member of group {id}"),
        };
        return Err(format!(
            "{at}: \"loop\" requires a back-edge, but {entry} is not an ancestor of {of}"
        ));
    }

    if let Endpoint::Group(group_id) = &edge.from {
        let policy = ctx.endpoints.group(group_id).map(|g| g.on_quorum_met);
        if let Some(policy) = policy.filter(|p| *p != QuorumPolicy::JoinOnQuorum) {
            return Err(format!(
                "{at}: a loop back-edge from a group requires onQuorumMet=\"joinOnQuorum\", \
                 but group {group_id} is {}",
                policy.as_str()
            ));
        }
    }
    Ok(())
}

fn check_forward_reject(ctx: &Ctx, at: &str, edge: &Edge) -> Result<(), String> {
    let sources = ctx.endpoints.nodes(&edge.from);
    for target in ctx.endpoints.nodes(&edge.to) {
        if sources.iter().any(|source| ctx.forward.is_ancestor(target, source)) {
            return Err(format!("{at}: on=\"reject\" to an ancestor ({target}) requires \"loop\""));
        }
    }

    if let Endpoint::Group(group_id) = &edge.from {
        let policy = ctx.endpoints.group(group_id).map(|g| g.on_quorum_met);
        if let Some(policy) = policy.filter(|p| *p != QuorumPolicy::WaitAll) {
            return Err(format!(
                "{at}: a forward on=\"reject\" from a {} group never fires",
                policy.as_str()
            ));
        }
    }
    Ok(())
}

fn check_exhausted(ctx: &Ctx, at: &str, edge: &Edge) -> Result<(), String> {
    let has_loop_sibling = ctx.spec.edges.iter().any(|e| e.from == edge.from && is_back_edge(e));
    if !has_loop_sibling {
        return Err(format!(
            "{at}: on=\"exhausted\" requires a sibling on=\"reject\" edge with \"loop\" from {}",
            describe(&edge.from)
        ));
    }
    if matches!(edge.to, Endpoint::Group(_)) {
        return Err(format!("{at}: on=\"exhausted\" must point at a node, not a group"));
    }
    Ok(())
}

fn check_human_reject_paths(spec: &DefinitionSpec) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for node in &spec.nodes {
        if seen.contains(&node.node_id.as_str()) {
            continue;
        }
        seen.push(&node.node_id);

        let is_human = node.config.node_type() == NodeType::Human;
        if is_human && !has_reject_edge(spec, &node.node_id) {
            return Err(format!(
                "every human node must have at least one outgoing edge with on=\"reject\" \
                 (a forward reject route or a reject back-edge): {}",
                node.node_id
            ));
        }
    }
    Ok(())
}

/// True when a reject edge leaves the node or a group it is a member of.
fn has_reject_edge(spec: &DefinitionSpec, node_id: &str) -> bool {
    let leaves_node = |from: &Endpoint| match from {
        Endpoint::Node(id) => id == node_id,
        Endpoint::Group(id) => spec
            .groups
            .iter()
            .any(|g| &g.group_id == id && g.member_node_ids.iter().any(|m| m == node_id)),
    };
    spec.edges.iter().any(|e| e.on == EdgeRole::Reject && leaves_node(&e.from))
}

/// `eq(output.decision, <decision>)`, the built-in predicate of approve and reject edges.
fn decision_is(decision: &str) -> Expr {
    Expr::Op {
        op: Op::Eq,
        args: vec![Expr::Var("output.decision".into()), Expr::Literal(decision.into())],
    }
}

fn predicate(edge: &Edge) -> Option<Expr> {
    match edge.on {
        EdgeRole::Approve => Some(decision_is("approve")),
        EdgeRole::Reject => Some(decision_is("reject")),
        EdgeRole::Custom => edge.when.clone(),
        EdgeRole::Always | EdgeRole::Exhausted => None,
    }
}

fn group_id(endpoint: &Endpoint) -> Option<String> {
    match endpoint {
        Endpoint::Node(_) => None,
        Endpoint::Group(id) => Some(id.clone()),
    }
}

fn compile_forward_edges(spec: &DefinitionSpec, endpoints: &Endpoints) -> Vec<CompiledEdge> {
    let mut compiled = Vec::new();
    for (edge_index, edge) in spec.edges.iter().enumerate() {
        if is_back_edge(edge) {
            continue;
        }
        let when = predicate(edge);
        for from in endpoints.nodes(&edge.from) {
            for to in endpoints.nodes(&edge.to) {
                compiled.push(CompiledEdge {
                    from: from.to_owned(),
                    to: to.to_owned(),
                    role: edge.on,
                    when: when.clone(),
                    from_group_id: group_id(&edge.from),
                    to_group_id: group_id(&edge.to),
                    edge_index,
                });
            }
        }
    }
    compiled
}

fn compile_loops(ctx: &Ctx) -> Vec<CompiledLoop> {
    let mut loops = Vec::new();
    for (edge_index, edge) in ctx.spec.edges.iter().enumerate() {
        let (Some(max_iterations), Endpoint::Node(entry)) = (edge.loop_max_iterations, &edge.to)
        else {
            continue;
        };
        let sources: Vec<usize> = ctx
            .endpoints
            .nodes(&edge.from)
            .into_iter()
            .filter_map(|id| ctx.forward.index_of(id))
            .collect();
        let Some(entry_index) = ctx.forward.index_of(entry) else { continue };
        if sources.is_empty() {
            continue;
        }

        let (from_id, from_is_group) = endpoint_id(&edge.from);
        loops.push(CompiledLoop {
            loop_id: format!("loop_{from_id}__to__{entry}"),
            entry_node_id: entry.clone(),
            body_node_ids: loop_body(ctx.forward, entry_index, &sources),
            max_iterations,
            on_exhausted: exhausted_route(ctx.spec, &edge.from),
            from_id: from_id.to_owned(),
            from_is_group,
            edge_index,
        });
    }
    loops
}

/// Nodes that are reachable from the entry and reach one of the sources, both included.
fn loop_body(forward: &NodeGraph, entry: usize, sources: &[usize]) -> Vec<String> {
    let after_entry = forward.descendants([entry]);
    let before_source = forward.ancestors(sources.iter().copied());
    (0..forward.len())
        .filter(|&i| after_entry[i] && before_source[i])
        .map(|i| forward.id(i).to_owned())
        .collect()
}

/// The target of the first `exhausted` edge leaving `from`.
fn exhausted_route(spec: &DefinitionSpec, from: &Endpoint) -> Option<String> {
    spec.edges.iter().find_map(|e| match &e.to {
        Endpoint::Node(to) if e.on == EdgeRole::Exhausted && &e.from == from => Some(to.clone()),
        _ => None,
    })
}

impl Compiled {
    /// The `compiled` block of a definition view.
    pub fn to_json(&self) -> Value {
        let forward_edges: Vec<Value> = self.forward_edges.iter().map(edge_json).collect();
        let loops: Vec<Value> = self.loops.iter().map(loop_json).collect();
        json!({ "forwardEdges": forward_edges, "loops": loops })
    }
}

fn edge_json(edge: &CompiledEdge) -> Value {
    json!({
        "from": edge.from,
        "to": edge.to,
        "role": edge.role.as_str(),
        "when": edge.when.as_ref().map_or(Value::Null, Expr::to_json),
        "fromGroupId": edge.from_group_id,
        "toGroupId": edge.to_group_id,
    })
}

fn loop_json(region: &CompiledLoop) -> Value {
    json!({
        "loopId": region.loop_id,
        "entryNodeId": region.entry_node_id,
        "bodyNodeIds": region.body_node_ids,
        "maxIterations": region.max_iterations,
        "onExhausted": region.on_exhausted.as_ref().map(|id| json!({ "routeToNodeId": id })),
    })
}

#[cfg(test)]
mod tests;
