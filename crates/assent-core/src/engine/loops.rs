//! Revision loops: a mandatory reviewer's rejection at the loop's terminal starts the next
//! pass at the entry, until `maxIterations` passes have been made.

use super::state::{LoopAttempt, LoopState, StepStatus};
use super::{fanout, rollup, step_ids, Run};
use crate::compile::CompiledLoop;
use serde_json::{json, Value};

pub(crate) const ACTOR_LOOP_RESTART: &str = "system:loop-restart";

/// The loop predicate: a rejection by a mandatory reviewer.
pub(crate) fn iterates(run: &Run, index: usize) -> bool {
    let step = run.step(index);
    let mandatory = step.output.get("rejectorMandatory") == Some(&Value::Bool(true));
    step.status == StepStatus::Completed && step.decision() == Some("reject") && mandatory
}

/// Takes a terminal step of a node-sourced loop; returns whether the loop took it.
pub(crate) fn on_terminal(run: &mut Run, index: usize) -> bool {
    let node_id = &run.step(index).node_id;
    let region = run.compiled.loops.iter().find(|l| !l.from_is_group && &l.from_id == node_id);
    match region {
        Some(region) if iterates(run, index) => {
            advance(run, region, index);
            true
        }
        _ => false,
    }
}

fn loop_state_index(run: &mut Run, loop_id: &str) -> usize {
    if let Some(at) = run.state.loops.iter().position(|l| l.loop_id == loop_id) {
        return at;
    }
    run.state.loops.push(LoopState {
        loop_id: loop_id.to_owned(),
        iteration: 1,
        attempts: Vec::new(),
        exhausted: false,
    });
    run.state.loops.len() - 1
}

/// Records the rejected pass, then starts the next one or exhausts the loop.
pub(crate) fn advance(run: &mut Run, region: &CompiledLoop, terminal: usize) {
    let at = loop_state_index(run, &region.loop_id);
    let iteration = run.state.loops[at].iteration;
    let output = &run.step(terminal).output;
    let attempt = LoopAttempt {
        iteration,
        author_output: Value::Object(output.clone()),
        rejected_by: output.get("rejectedBy").cloned().unwrap_or(Value::Null),
        rejector_mandatory: true,
        rejection_reason: output.get("rejectionReason").cloned().unwrap_or(Value::Null),
        rejected_at: run.now_ms,
    };
    run.state.loops[at].attempts.push(attempt);

    if iteration >= region.max_iterations {
        exhaust(run, region, at, terminal);
    } else {
        restart(run, region, at, terminal);
    }
}

fn previous_attempts(run: &Run, at: usize) -> Value {
    serde_json::to_value(&run.state.loops[at].attempts).unwrap_or(Value::Null)
}

fn restart(run: &mut Run, region: &CompiledLoop, at: usize, terminal: usize) {
    let next = run.state.loops[at].iteration + 1;
    for index in 0..run.state.steps.len() {
        let step = run.step(index);
        let in_body = region.body_node_ids.contains(&step.node_id);
        if in_body && step.status.is_open() {
            rollup::cancel_step(run, index, ACTOR_LOOP_RESTART, Some("loop-restart"));
        }
    }
    run.state.loops[at].iteration = next;
    let data = json!({ "loopId": region.loop_id, "iteration": next, "triggeredBy": "rejection" });
    run.emit("loop.iteration-started", None, data);

    let terminal_step_id = run.step(terminal).step_id.clone();
    let step_id = step_ids::loop_step_id(&terminal_step_id, next, &region.entry_node_id);
    let input = json!({
        "iteration": next,
        "loopId": region.loop_id,
        "previousAttempts": previous_attempts(run, at),
    });
    fanout::spawn(run, &region.entry_node_id, step_id, input);
}

fn exhaust(run: &mut Run, region: &CompiledLoop, at: usize, terminal: usize) {
    let state = &mut run.state.loops[at];
    state.exhausted = true;
    let iteration = state.iteration;
    let last = state.attempts.last().cloned();
    let data = json!({
        "loopId": region.loop_id,
        "iteration": iteration,
        "lastRejectedBy": last.as_ref().map(|a| a.rejected_by.clone()),
        "lastRejectionReason": last.as_ref().map(|a| a.rejection_reason.clone()),
    });
    run.emit("loop.exhausted", None, data);

    let terminal_step_id = run.step(terminal).step_id.clone();
    let Some(route) = &region.on_exhausted else {
        let message = format!("loop {} exhausted after {iteration} iterations", region.loop_id);
        return rollup::fail_execution(run, "loop-exhausted", message);
    };
    let input = json!({
        "iteration": iteration,
        "loopId": region.loop_id,
        "previousAttempts": previous_attempts(run, at),
    });
    fanout::spawn(run, route, step_ids::exhausted_step_id(&terminal_step_id, route), input);
}
