//! Creating steps and following edges out of a terminal step.

use super::state::{StepState, StepStatus};
use super::{agent, human, step_ids, Run, TimerKind};
use crate::compile::CompiledEdge;
use crate::expr::truthy;
use crate::model::{EdgeRole, NodeConfig, QuorumPolicy};
use serde_json::{json, Map, Value};

/// Creates a step for `node_id` and starts it. Does nothing once the execution has ended,
/// or when a step of that id exists already.
pub(crate) fn spawn(run: &mut Run, node_id: &str, step_id: String, input: Value) {
    let exists = run.state.step_index(&step_id).is_some();
    debug_assert!(!exists, "step {step_id} spawned twice");
    let Some(node) = run.spec.node(node_id) else { return };
    if !run.running() || exists {
        return;
    }

    let group_id = run.spec.group_of(node_id).map(|g| g.group_id.clone());
    run.state.steps.push(StepState {
        step_id: step_id.clone(),
        node_id: node_id.to_owned(),
        node_type: node.config.node_type().as_str().to_owned(),
        status: StepStatus::Pending,
        group_id,
        started_at: None,
        completed_at: None,
        output: Map::new(),
        error: None,
        retry_count: 0,
        iteration: iteration_of(run, node_id),
        input,
        decisions: Vec::new(),
        agent_run: None,
        timers: Vec::new(),
        callback: None,
    });
    let index = run.state.steps.len() - 1;
    run.emit("step.scheduled", Some(&step_id), json!({ "nodeId": node_id }));
    start(run, index);
}

/// The current pass of the loop whose body holds the node, 1 outside loops.
fn iteration_of(run: &Run, node_id: &str) -> u32 {
    let region = run.compiled.loops.iter().find(|l| l.body_node_ids.iter().any(|n| n == node_id));
    region.map_or(1, |l| run.state.loop_iteration(&l.loop_id))
}

fn start(run: &mut Run, index: usize) {
    let node = run.node_of(index);
    let step_id = run.step(index).step_id.clone();
    let now_ms = run.now_ms;
    let step = run.step_mut(index);
    step.status = StepStatus::Running;
    step.started_at = Some(now_ms);
    run.emit("step.started", Some(&step_id), Value::Null);
    if let Some(sla_ms) = node.sla_ms {
        run.set_timer(index, TimerKind::SlaBreach, run.now_ms + sla_ms);
    }

    match &node.config {
        NodeConfig::Human(config) => human::start(run, index, config),
        NodeConfig::Agent(config) => agent::start_agent(run, index, config),
        NodeConfig::Notification(_) | NodeConfig::Webhook(_) => agent::request_work(run, index),
    }
}

/// The context `when` predicates read.
pub(crate) fn predicate_ctx(run: &Run, step: &StepState, output: &Map<String, Value>) -> Value {
    json!({
        "output": output,
        "step": {
            "stepId": step.step_id,
            "nodeId": step.node_id,
            "status": step.status.as_str(),
            "retryCount": step.retry_count,
        },
        "execution": { "input": run.state.trigger_context },
    })
}

/// Whether an edge fires for a source in `status` whose predicate context is `ctx`.
pub(crate) fn edge_fires(edge: &CompiledEdge, status: StepStatus, ctx: &Value) -> bool {
    let holds = || edge.when.as_ref().is_none_or(|when| truthy(&when.eval(ctx)));
    match edge.role {
        EdgeRole::Approve | EdgeRole::Reject => status == StepStatus::Completed && holds(),
        EdgeRole::Always => status.fans_out(),
        EdgeRole::Custom => status.fans_out() && holds(),
        EdgeRole::Exhausted => false,
    }
}

/// True when the step's own edges are replaced by its group's collective routing.
pub(crate) fn routed_by_group(run: &Run, node_id: &str) -> bool {
    let Some(group) = run.spec.group_of(node_id) else { return false };
    let is_source = run
        .compiled
        .forward_edges
        .iter()
        .any(|e| e.from_group_id.as_deref() == Some(group.group_id.as_str()));
    group.on_quorum_met == QuorumPolicy::JoinOnQuorum || is_source
}

/// Follows the step's own edges; returns whether any fired. Members of a `joinOnQuorum`
/// group fan out only through the group.
pub(crate) fn route(run: &mut Run, index: usize) -> bool {
    let step = run.step(index).clone();
    let joins = run
        .spec
        .group_of(&step.node_id)
        .is_some_and(|g| g.on_quorum_met == QuorumPolicy::JoinOnQuorum);
    if joins {
        return false;
    }

    let ctx = predicate_ctx(run, &step, &step.output);
    let targets: Vec<String> = run
        .compiled
        .forward_edges
        .iter()
        .filter(|e| e.from == step.node_id && e.from_group_id.is_none())
        .filter(|e| edge_fires(e, step.status, &ctx))
        .map(|e| e.to.clone())
        .collect();
    for target in &targets {
        let input = Value::Object(step.output.clone());
        spawn(run, target, step_ids::fanout_step_id(&step.step_id, target), input);
    }
    !targets.is_empty()
}
