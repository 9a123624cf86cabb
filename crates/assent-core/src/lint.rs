//! The graph linter: every structural problem of a compiled definition, all at once.
//!
//! Findings come in the order of the codes' table (duplicate nodes, dangling edges, the
//! forward graph, breach routes, groups, loops), and within a code in definition order.
//! The graph checks read the compiled forward edges, so loop back-edges never count as a
//! cycle and group endpoints are already expanded.
//!
//! Some codes guard values that the schema never lets through (an empty member list, an
//! `expectedSteps` or `quorum` of 0): they run on the typed values all the same, for callers
//! that build a [`DefinitionSpec`] themselves. `node-missing-config` is the exception: a
//! [`crate::model::Node`] cannot be built without a config, so the type is its check.

use crate::compile::{Compiled, CompiledLoop, NodeGraph};
use crate::expr::Expr;
use crate::model::{DefinitionSpec, EdgeRole, Endpoint, Group, QuorumPolicy};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};

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

impl LintIssue {
    fn new(code: &'static str, message: String) -> LintIssue {
        LintIssue { code, message, node_id: None, group_id: None, edge_index: None }
    }

    fn node(mut self, node_id: &str) -> LintIssue {
        self.node_id = Some(node_id.to_owned());
        self
    }

    fn group(mut self, group_id: &str) -> LintIssue {
        self.group_id = Some(group_id.to_owned());
        self
    }

    fn edge(mut self, edge_index: usize) -> LintIssue {
        self.edge_index = Some(edge_index);
        self
    }
}

/// Lints a compiled definition. An empty list means it is sound.
pub fn lint(spec: &DefinitionSpec, compiled: &Compiled) -> Vec<LintIssue> {
    let mut graph = NodeGraph::new(&spec.nodes);
    for edge in &compiled.forward_edges {
        graph.add_edge(&edge.from, &edge.to);
    }
    let mut issues = Vec::new();

    duplicate_node_ids(spec, &mut issues);
    dangling_edges(spec, &mut issues);
    cycles(&graph, &mut issues);
    unreachable_nodes(&graph, compiled, &mut issues);
    // node-missing-config: a Node always has a config; the type is the check.
    missing_breach_edges(spec, compiled, &mut issues);
    group_ids_and_members(spec, &mut issues);
    group_counts(spec, &mut issues);
    join_on_quorum_successors(spec, compiled, &mut issues);
    group_required_members(spec, &mut issues);
    nodes_in_several_groups(spec, &graph, &mut issues);
    nodes_in_several_loops(&graph, compiled, &mut issues);
    loop_shapes(spec, compiled, &mut issues);
    issues
}

fn duplicate_node_ids(spec: &DefinitionSpec, issues: &mut Vec<LintIssue>) {
    let mut seen = HashSet::new();
    let mut reported = HashSet::new();
    for node in &spec.nodes {
        let id = node.node_id.as_str();
        if !seen.insert(id) && reported.insert(id) {
            let message = format!("node {id} is declared more than once");
            issues.push(LintIssue::new("duplicate-node-id", message).node(id));
        }
    }
}

fn dangling_edges(spec: &DefinitionSpec, issues: &mut Vec<LintIssue>) {
    for (index, edge) in spec.edges.iter().enumerate() {
        for (end, endpoint) in [("from", &edge.from), ("to", &edge.to)] {
            let issue = match endpoint {
                Endpoint::Node(id) if spec.node(id).is_none() => {
                    let message = format!("edge {index}: {end} names undeclared node {id}");
                    LintIssue::new("dangling-edge", message).node(id)
                }
                Endpoint::Group(id) if spec.group(id).is_none() => {
                    let message = format!("edge {index}: {end} names undeclared group {id}");
                    LintIssue::new("dangling-edge", message).group(id)
                }
                _ => continue,
            };
            issues.push(issue.edge(index));
        }
    }
}

/// One finding per strongly connected part of the forward graph, named by its first node.
fn cycles(graph: &NodeGraph, issues: &mut Vec<LintIssue>) {
    let mut reported = vec![false; graph.len()];
    for start in 0..graph.len() {
        if reported[start] || !graph.on_cycle(start) {
            continue;
        }
        let after = graph.descendants([start]);
        let before = graph.ancestors([start]);
        let members: Vec<&str> = (0..graph.len())
            .filter(|&i| after[i] && before[i])
            .inspect(|&i| reported[i] = true)
            .map(|i| graph.id(i))
            .collect();
        let message = format!(
            "cycle through {} (only a reject edge with \"loop\" may go back)",
            members.join(", ")
        );
        issues.push(LintIssue::new("cycle-detected", message).node(graph.id(start)));
    }
}

/// Roots are nodes without an incoming forward edge, except exhausted-route targets.
fn unreachable_nodes(graph: &NodeGraph, compiled: &Compiled, issues: &mut Vec<LintIssue>) {
    let exhausted_targets: HashSet<&str> =
        compiled.loops.iter().filter_map(|l| l.on_exhausted.as_deref()).collect();
    let roots = (0..graph.len())
        .filter(|&i| !graph.has_predecessor(i) && !exhausted_targets.contains(graph.id(i)));
    let reached = graph.descendants(roots);
    for (index, _) in reached.iter().enumerate().filter(|(_, reached)| !**reached) {
        let id = graph.id(index);
        let message = format!("node {id} cannot be reached from any root");
        issues.push(LintIssue::new("unreachable-node", message).node(id));
    }
}

/// A node with an SLA and outgoing edges needs one that fires on a breach. A node with no
/// outgoing edge at all is a terminal and fails the execution on a breach, by design.
fn missing_breach_edges(spec: &DefinitionSpec, compiled: &Compiled, issues: &mut Vec<LintIssue>) {
    let mut seen = HashSet::new();
    for node in spec.nodes.iter().filter(|n| seen.insert(n.node_id.as_str())) {
        if node.sla_ms.is_none() {
            continue;
        }
        let id = node.node_id.as_str();
        let mut outgoing = compiled.forward_edges.iter().filter(|e| e.from == id).peekable();
        let leaves_by_loop = compiled.loops.iter().any(|l| loop_sources(spec, l).contains(&id));
        if outgoing.peek().is_none() && !leaves_by_loop {
            continue;
        }

        let routes_breach = |role: EdgeRole, when: Option<&Expr>| match role {
            EdgeRole::Always => true,
            EdgeRole::Custom => when.is_some_and(|w| w.reads_var("step.status")),
            _ => false,
        };
        if !outgoing.any(|e| routes_breach(e.role, e.when.as_ref())) {
            let message = format!(
                "node {id} has slaMs but no edge routes its breach (an \"always\" edge or a \
                 \"custom\" edge reading step.status)"
            );
            issues.push(LintIssue::new("missing-breach-edge", message).node(id));
        }
    }
}

/// The nodes a loop's back-edge leaves: its source node, or its source group's members.
fn loop_sources<'a>(spec: &'a DefinitionSpec, region: &'a CompiledLoop) -> Vec<&'a str> {
    match (region.from_is_group, spec.group(&region.from_id)) {
        (false, _) => vec![region.from_id.as_str()],
        (true, Some(group)) => group.member_node_ids.iter().map(String::as_str).collect(),
        (true, None) => Vec::new(),
    }
}

fn group_ids_and_members(spec: &DefinitionSpec, issues: &mut Vec<LintIssue>) {
    let mut seen = HashSet::new();
    let mut reported = HashSet::new();
    for group in &spec.groups {
        let id = group.group_id.as_str();
        if !seen.insert(id) && reported.insert(id) {
            let message = format!("group {id} is declared more than once");
            issues.push(LintIssue::new("group-duplicate-id", message).group(id));
        }
    }
    for group in spec.groups.iter().filter(|g| g.member_node_ids.is_empty()) {
        let id = group.group_id.as_str();
        let message = format!("group {id} has no members");
        issues.push(LintIssue::new("group-members-empty", message).group(id));
    }
    for group in &spec.groups {
        for member in group.member_node_ids.iter().filter(|m| spec.node(m).is_none()) {
            let message =
                format!("group {}: member {member} is not a declared node", group.group_id);
            let issue = LintIssue::new("group-member-missing", message);
            issues.push(issue.group(&group.group_id).node(member));
        }
    }
}

fn group_counts(spec: &DefinitionSpec, issues: &mut Vec<LintIssue>) {
    let expected_valid = |g: &Group| g.expected_steps >= 1;
    let quorum_valid =
        |g: &Group| g.quorum >= 1 && (!expected_valid(g) || g.quorum <= g.expected_steps);

    for group in spec.groups.iter().filter(|g| !expected_valid(g)) {
        let message = format!("group {}: expectedSteps must be at least 1", group.group_id);
        issues.push(LintIssue::new("group-expected-steps-invalid", message).group(&group.group_id));
    }
    for group in spec.groups.iter().filter(|g| !quorum_valid(g)) {
        let message = format!(
            "group {}: quorum {} must be between 1 and expectedSteps ({})",
            group.group_id, group.quorum, group.expected_steps
        );
        issues.push(LintIssue::new("group-quorum-invalid", message).group(&group.group_id));
    }
    // Only a quorum that is otherwise valid: an invalid one is reported once, above.
    let cancels_nobody = |g: &Group| {
        g.on_quorum_met == QuorumPolicy::CancelOnQuorum
            && quorum_valid(g)
            && g.quorum >= g.expected_steps
    };
    for group in spec.groups.iter().filter(|g| cancels_nobody(g)) {
        let message = format!(
            "group {}: cancelOnQuorum needs a quorum ({}) below expectedSteps ({})",
            group.group_id, group.quorum, group.expected_steps
        );
        let code = "group-cancelonquorum-requires-quorum-lt-expected";
        issues.push(LintIssue::new(code, message).group(&group.group_id));
    }
}

/// Members of a joinOnQuorum group must lead to the same set of nodes over forward edges,
/// whatever the roles: the group's successors are computed from the shared targets.
fn join_on_quorum_successors(
    spec: &DefinitionSpec,
    compiled: &Compiled,
    issues: &mut Vec<LintIssue>,
) {
    let targets = |member: &str| -> BTreeSet<&str> {
        compiled.forward_edges.iter().filter(|e| e.from == member).map(|e| e.to.as_str()).collect()
    };
    let joins = spec.groups.iter().filter(|g| g.on_quorum_met == QuorumPolicy::JoinOnQuorum);
    for group in joins {
        let mut members = group.member_node_ids.iter().filter(|m| spec.node(m).is_some());
        let Some(first) = members.next() else { continue };
        let first_targets = targets(first);
        let Some(other) = members.find(|m| targets(m) != first_targets) else { continue };

        let message = format!(
            "joinOnQuorum group {}: members {first} and {other} lead to different nodes",
            group.group_id
        );
        let code = "group-joinonquorum-members-must-share-successors";
        issues.push(LintIssue::new(code, message).group(&group.group_id).node(other));
    }
}

fn group_required_members(spec: &DefinitionSpec, issues: &mut Vec<LintIssue>) {
    for group in &spec.groups {
        let outsiders =
            group.required_node_ids.iter().filter(|r| !group.member_node_ids.contains(r));
        for required in outsiders {
            let message =
                format!("group {}: required node {required} is not a member", group.group_id);
            let issue = LintIssue::new("group-required-not-in-members", message);
            issues.push(issue.group(&group.group_id).node(required));
        }
    }
    for group in spec.groups.iter().filter(|g| g.required_node_ids.len() > g.quorum as usize) {
        let message = format!(
            "group {}: {} required nodes exceed the quorum of {}",
            group.group_id,
            group.required_node_ids.len(),
            group.quorum
        );
        issues
            .push(LintIssue::new("group-required-exceeds-quorum", message).group(&group.group_id));
    }
}

fn nodes_in_several_groups(spec: &DefinitionSpec, graph: &NodeGraph, issues: &mut Vec<LintIssue>) {
    for id in (0..graph.len()).map(|i| graph.id(i)) {
        let mut group_ids: Vec<&str> = Vec::new();
        for group in spec.groups.iter().filter(|g| g.member_node_ids.iter().any(|m| m == id)) {
            if !group_ids.contains(&group.group_id.as_str()) {
                group_ids.push(&group.group_id);
            }
        }
        if group_ids.len() >= 2 {
            let message =
                format!("node {id} is a member of several groups: {}", group_ids.join(", "));
            issues.push(LintIssue::new("group-node-in-multiple-groups", message).node(id));
        }
    }
}

fn nodes_in_several_loops(graph: &NodeGraph, compiled: &Compiled, issues: &mut Vec<LintIssue>) {
    for id in (0..graph.len()).map(|i| graph.id(i)) {
        let loop_ids: Vec<&str> = compiled
            .loops
            .iter()
            .filter(|l| l.body_node_ids.iter().any(|n| n == id))
            .map(|l| l.loop_id.as_str())
            .collect();
        if loop_ids.len() >= 2 {
            let message = format!(
                "node {id} is in the bodies of several loops: {} (use one back-edge from a group)",
                loop_ids.join(", ")
            );
            issues.push(LintIssue::new("loop-node-in-multiple-loops", message).node(id));
        }
    }
}

/// How an iteration of a loop ends.
enum LoopShape<'a> {
    /// At most one body node has edges leaving the body. None at all is accepted too: the
    /// back-edge's source is then the only way out of the body.
    SingleTerminal,
    /// The exit-bearing body nodes are exactly the members of this joinOnQuorum group.
    GroupBounded(&'a Group),
    /// Several exit-bearing nodes that are not one joinOnQuorum group's members.
    Invalid(Vec<&'a str>),
}

fn loop_shape<'a>(
    spec: &'a DefinitionSpec,
    compiled: &'a Compiled,
    region: &'a CompiledLoop,
) -> LoopShape<'a> {
    let in_body = |id: &str| region.body_node_ids.iter().any(|n| n == id);
    let exits: Vec<&str> = region
        .body_node_ids
        .iter()
        .map(String::as_str)
        .filter(|&id| compiled.forward_edges.iter().any(|e| e.from == id && !in_body(&e.to)))
        .collect();
    if exits.len() <= 1 {
        return LoopShape::SingleTerminal;
    }

    let exit_set: BTreeSet<&str> = exits.iter().copied().collect();
    let bounding = spec.groups.iter().find(|g| {
        let members: BTreeSet<&str> = g.member_node_ids.iter().map(String::as_str).collect();
        g.on_quorum_met == QuorumPolicy::JoinOnQuorum && members == exit_set
    });
    match bounding {
        Some(group) => LoopShape::GroupBounded(group),
        None => LoopShape::Invalid(exits),
    }
}

fn loop_shapes(spec: &DefinitionSpec, compiled: &Compiled, issues: &mut Vec<LintIssue>) {
    for region in &compiled.loops {
        if let LoopShape::Invalid(exits) = loop_shape(spec, compiled, region) {
            let message = format!(
                "loop {}: body nodes {} all have edges leaving the body; exactly one may, or \
                 exactly the members of one joinOnQuorum group",
                region.loop_id,
                exits.join(", ")
            );
            let code = "loop-body-must-have-single-terminal";
            issues.push(LintIssue::new(code, message).edge(region.edge_index));
        }
    }
    for region in &compiled.loops {
        let LoopShape::GroupBounded(group) = loop_shape(spec, compiled, region) else { continue };
        if group.quorum != group.expected_steps {
            let message = format!(
                "loop {}: its bounding group {} needs quorum ({}) equal to expectedSteps ({})",
                region.loop_id, group.group_id, group.quorum, group.expected_steps
            );
            let code = "loop-group-bounded-quorum-must-equal-expected";
            issues
                .push(LintIssue::new(code, message).group(&group.group_id).edge(region.edge_index));
        }
    }
}

#[cfg(test)]
mod tests;
