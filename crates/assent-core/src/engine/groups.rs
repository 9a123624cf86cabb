//! Groups: approval quorum per (group, loop iteration), the quorum policies, collective
//! branches of group sources, and the reject route of a quorum that can no longer be met.

use super::state::{GroupState, StepStatus};
use super::{fanout, loops, rollup, step_ids, Run};
use crate::model::{EdgeRole, Group, QuorumPolicy};
use serde_json::{json, Map, Value};

pub(crate) const ACTOR_GROUP_QUORUM: &str = "system:group-quorum";

/// Counts a member's end, then applies the group's policy.
pub(crate) fn on_member_terminal(run: &mut Run, index: usize) {
    let step = run.step(index);
    let Some(group) = run.spec.group_of(&step.node_id) else { return };
    if !run.running() {
        return;
    }
    let iteration = step.iteration;
    let at = group_state_index(run, group, iteration);
    let completed_before = run.state.groups[at].completed_total;
    count(run, group, at);

    let met = quorum_met(run, group, iteration);
    if met && !run.state.groups[at].quorum_met {
        run.state.groups[at].quorum_met = true;
        on_quorum(run, group, at);
    } else if !met && !run.state.groups[at].routed && unreachable(run, group, at) {
        on_unreachable(run, group, at, index);
    }

    count(run, group, at);
    let expected = group.expected_steps;
    let completed_now = run.state.groups[at].completed_total;
    if completed_before < expected && completed_now >= expected {
        let data = json!({ "groupId": group.group_id, "iteration": iteration });
        run.emit("parallel-group.completed", None, data);
        collective_branch(run, group, at);
    }
}

fn group_state_index(run: &mut Run, group: &Group, iteration: u32) -> usize {
    let found = run
        .state
        .groups
        .iter()
        .position(|g| g.group_id == group.group_id && g.iteration == iteration);
    if let Some(at) = found {
        return at;
    }
    run.state.groups.push(GroupState {
        group_id: group.group_id.clone(),
        iteration,
        approved_total: 0,
        completed_total: 0,
        quorum_met: false,
        routed: false,
    });
    run.state.groups.len() - 1
}

/// Indexes of the member steps of one pass.
fn members(run: &Run, group: &Group, iteration: u32) -> Vec<usize> {
    (0..run.state.steps.len())
        .filter(|&i| {
            let step = run.step(i);
            step.iteration == iteration && group.member_node_ids.contains(&step.node_id)
        })
        .collect()
}

fn approved(run: &Run, index: usize) -> bool {
    let step = run.step(index);
    step.status == StepStatus::Completed && step.decision() == Some("approve")
}

fn count(run: &mut Run, group: &Group, at: usize) {
    let steps = members(run, group, run.state.groups[at].iteration);
    let approved_total = steps.iter().filter(|&&i| approved(run, i)).count() as u32;
    let completed_total =
        steps.iter().filter(|&&i| run.step(i).status.is_terminal()).count() as u32;
    let state = &mut run.state.groups[at];
    state.approved_total = approved_total;
    state.completed_total = completed_total;
}

fn quorum_met(run: &Run, group: &Group, iteration: u32) -> bool {
    let steps = members(run, group, iteration);
    let approved_nodes: Vec<&str> = steps
        .iter()
        .filter(|&&i| approved(run, i))
        .map(|&i| run.step(i).node_id.as_str())
        .collect();
    let required_approved =
        group.required_node_ids.iter().all(|r| approved_nodes.contains(&r.as_str()));
    required_approved && approved_nodes.len() as u32 >= group.quorum
}

/// A `joinOnQuorum` group whose quorum no open or unstarted member could still reach.
fn unreachable(run: &Run, group: &Group, at: usize) -> bool {
    if group.on_quorum_met != QuorumPolicy::JoinOnQuorum {
        return false;
    }
    let state = &run.state.groups[at];
    let steps = members(run, group, state.iteration);
    let still_possible = group.expected_steps.saturating_sub(state.completed_total);
    let required_lost = steps.iter().any(|&i| {
        let step = run.step(i);
        step.status.is_terminal()
            && !approved(run, i)
            && group.required_node_ids.contains(&step.node_id)
    });
    required_lost || state.approved_total + still_possible < group.quorum
}

fn cancel_open_members(run: &mut Run, group: &Group, at: usize, reason: &str) {
    for index in members(run, group, run.state.groups[at].iteration) {
        if run.step(index).status.is_open() {
            rollup::cancel_step(run, index, ACTOR_GROUP_QUORUM, Some(reason));
        }
    }
}

fn on_quorum(run: &mut Run, group: &Group, at: usize) {
    let state = &run.state.groups[at];
    let data = json!({
        "groupId": group.group_id,
        "total": state.approved_total,
        "quorum": group.quorum,
        "completedTotal": state.completed_total,
        "expectedSteps": group.expected_steps,
    });
    run.emit("group.quorum-met", None, data);
    if group.on_quorum_met == QuorumPolicy::WaitAll {
        return;
    }
    cancel_open_members(run, group, at, "group-quorum-met");
    run.state.groups[at].routed = true;
    let join = group.on_quorum_met == QuorumPolicy::JoinOnQuorum;
    let targets = group_targets(run, group, join, |role| {
        matches!(role, EdgeRole::Approve | EdgeRole::Always)
    });
    spawn_successors(run, group, at, &targets);
}

fn on_unreachable(run: &mut Run, group: &Group, at: usize, index: usize) {
    cancel_open_members(run, group, at, "group-quorum-unreachable");
    run.state.groups[at].routed = true;
    let region = run.compiled.loops.iter().find(|l| l.from_is_group && l.from_id == group.group_id);
    if let Some(region) = region.filter(|_| loops::iterates(run, index)) {
        return loops::advance(run, region, index);
    }

    let targets = group_targets(run, group, true, |role| role == EdgeRole::Reject);
    if targets.is_empty() {
        let message = format!("group {} can no longer reach its quorum", group.group_id);
        return rollup::fail_execution(run, "unrouted-rejection", message);
    }
    spawn_successors(run, group, at, &targets);
}

/// Targets of the group's own edges with a matching role and, with `of_members`, of its
/// members' edges too; each once, in edge order.
fn group_targets(
    run: &Run,
    group: &Group,
    of_members: bool,
    role: impl Fn(EdgeRole) -> bool,
) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for edge in &run.compiled.forward_edges {
        let from_group = edge.from_group_id.as_deref() == Some(group.group_id.as_str());
        let from_member = of_members
            && edge.from_group_id.is_none()
            && group.member_node_ids.contains(&edge.from);
        if (from_group || from_member) && role(edge.role) && !targets.contains(&edge.to) {
            targets.push(edge.to.clone());
        }
    }
    targets
}

fn group_outputs(run: &Run, group: &Group, iteration: u32) -> Map<String, Value> {
    let mut outputs = Map::new();
    for index in members(run, group, iteration) {
        let step = run.step(index);
        if step.status.is_terminal() {
            outputs.insert(step.node_id.clone(), Value::Object(step.output.clone()));
        }
    }
    outputs
}

fn spawn_successors(run: &mut Run, group: &Group, at: usize, targets: &[String]) {
    let state = &run.state.groups[at];
    let iteration = state.iteration;
    let input = json!({
        "groupOutputs": group_outputs(run, group, iteration),
        "groupId": group.group_id,
        "quorum": group.quorum,
        "totalApproved": state.approved_total,
    });
    for target in targets {
        let step_id = step_ids::group_step_id(&group.group_id, target, iteration);
        fanout::spawn(run, target, step_id, input.clone());
    }
}

/// A `waitAll` group used as an edge source: once every member has ended, one branch by
/// unanimity.
fn collective_branch(run: &mut Run, group: &Group, at: usize) {
    let is_source = !group_targets(run, group, false, |_| true).is_empty();
    if group.on_quorum_met != QuorumPolicy::WaitAll || !is_source || run.state.groups[at].routed {
        return;
    }
    run.state.groups[at].routed = true;
    let state = &run.state.groups[at];
    let unanimous = state.approved_total >= group.expected_steps;
    let decision = if unanimous { "approve" } else { "reject" };
    let output = json!({
        "decision": decision,
        "groupOutputs": group_outputs(run, group, state.iteration),
        "groupId": group.group_id,
    });
    let ctx = json!({
        "output": output,
        "step": { "stepId": Value::Null, "nodeId": Value::Null, "status": "completed", "retryCount": 0 },
        "execution": { "input": run.state.trigger_context },
    });
    let targets: Vec<String> = {
        let mut targets: Vec<String> = Vec::new();
        for edge in &run.compiled.forward_edges {
            let from_group = edge.from_group_id.as_deref() == Some(group.group_id.as_str());
            if from_group
                && fanout::edge_fires(edge, StepStatus::Completed, &ctx)
                && !targets.contains(&edge.to)
            {
                targets.push(edge.to.clone());
            }
        }
        targets
    };
    if targets.is_empty() && !unanimous {
        let message = format!("group {} rejected and no edge routes the rejection", group.group_id);
        return rollup::fail_execution(run, "unrouted-rejection", message);
    }
    spawn_successors(run, group, at, &targets);
}
