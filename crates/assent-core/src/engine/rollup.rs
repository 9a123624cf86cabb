//! Ending steps, what their end sets off, and the execution's roll-up.

use super::state::{ErrorInfo, ExecutionStatus, StepStatus};
use super::{fanout, groups, loops, Run};
use serde_json::{json, Map, Value};

pub(crate) const ACTOR_EXECUTION_FAILED: &str = "system:execution-failed";
pub(crate) const ACTOR_EXECUTION_CANCEL: &str = "system:execution-cancel";

fn end_step(run: &mut Run, index: usize, status: StepStatus) {
    let from = run.step(index).status;
    debug_assert!(from.is_open(), "step {} ended twice ({from:?} -> {status:?})", index);
    debug_assert!(status.is_terminal());
    let now_ms = run.now_ms;
    let step = run.step_mut(index);
    step.status = status;
    step.completed_at = Some(now_ms);
    run.clear_timers(index);
}

/// `completed` with `output` merged into the step's output; then its consequences.
pub(crate) fn complete_step(run: &mut Run, index: usize, output: Map<String, Value>, data: Value) {
    end_step(run, index, StepStatus::Completed);
    run.step_mut(index).output.extend(output);
    let step_id = run.step(index).step_id.clone();
    run.emit("step.completed", Some(&step_id), data);
    settle(run, index);
}

/// `failed` with `error`; then its consequences.
pub(crate) fn fail_step(run: &mut Run, index: usize, error: ErrorInfo, data: Value) {
    end_step(run, index, StepStatus::Failed);
    run.step_mut(index).error = Some(error);
    let step_id = run.step(index).step_id.clone();
    run.emit("step.failed", Some(&step_id), data);
    settle(run, index);
}

/// `breached`: the node's SLA ran out first.
pub(crate) fn breach_step(run: &mut Run, index: usize) {
    end_step(run, index, StepStatus::Breached);
    let sla_ms = run.node_of(index).sla_ms.unwrap_or(0);
    let message = format!("step did not finish within its SLA of {sla_ms} ms");
    run.step_mut(index).error = Some(ErrorInfo::new("sla-breached", message));
    let step_id = run.step(index).step_id.clone();
    run.emit("step.breached", Some(&step_id), json!({ "reason": "sla-exceeded" }));
    settle(run, index);
}

/// `cancelled`, with nothing set off: callers settle group accounting themselves.
pub(crate) fn cancel_step(run: &mut Run, index: usize, actor_id: &str, reason: Option<&str>) {
    end_step(run, index, StepStatus::Cancelled);
    let step_id = run.step(index).step_id.clone();
    run.emit("step.cancelled", Some(&step_id), json!({ "actorId": actor_id, "reason": reason }));
}

/// Cancels every open step, in creation order.
pub(crate) fn cancel_open_steps(run: &mut Run, actor_id: &str, reason: Option<&str>) {
    for index in 0..run.state.steps.len() {
        if run.step(index).status.is_open() {
            cancel_step(run, index, actor_id, reason);
        }
    }
}

/// What a terminal step sets off: its loop, its own edges, its group; an unrouted failure,
/// breach or rejection fails the execution.
pub(crate) fn settle(run: &mut Run, index: usize) {
    if !run.running() {
        return;
    }
    let status = run.step(index).status;
    let looped = loops::on_terminal(run, index);
    let fired = status != StepStatus::Cancelled && !looped && fanout::route(run, index);
    groups::on_member_terminal(run, index);

    let node_id = run.step(index).node_id.clone();
    if looped || fired || fanout::routed_by_group(run, &node_id) {
        return;
    }
    let step_id = run.step(index).step_id.clone();
    let rejected = status == StepStatus::Completed && run.step(index).decision() == Some("reject");
    match status {
        StepStatus::Failed => fail_execution(run, "step-failed", format!("step {step_id} failed")),
        StepStatus::Breached => {
            fail_execution(run, "step-breached", format!("step {step_id} breached its SLA"))
        }
        _ if rejected => fail_execution(
            run,
            "unrouted-rejection",
            format!("step {step_id} was rejected and no edge routes the rejection"),
        ),
        _ => {}
    }
}

/// Ends the execution as failed: open steps are cancelled first.
pub(crate) fn fail_execution(run: &mut Run, code: &str, message: String) {
    if !run.running() {
        return;
    }
    cancel_open_steps(run, ACTOR_EXECUTION_FAILED, Some(code));
    run.state.status = ExecutionStatus::Failed;
    run.state.completed_at = Some(run.now_ms);
    run.state.failure_reason = Some(ErrorInfo::new(code, message));
    run.emit("execution.failed", None, Value::Null);
}

/// A running execution with no open step is completed.
pub(crate) fn roll_up(run: &mut Run) {
    let all_terminal = run.state.open_steps().next().is_none();
    if run.running() && all_terminal {
        run.state.status = ExecutionStatus::Completed;
        run.state.completed_at = Some(run.now_ms);
        run.emit("execution.completed", None, Value::Null);
    }
}

/// Cancels the execution and its open steps; a terminal execution is left as it is.
pub(crate) fn cancel_execution(run: &mut Run, reason: Option<&str>) {
    if run.state.status.is_terminal() {
        return;
    }
    cancel_open_steps(run, ACTOR_EXECUTION_CANCEL, reason);
    run.state.status = ExecutionStatus::Cancelled;
    run.state.cancelled_at = Some(run.now_ms);
    run.state.completed_at = Some(run.now_ms);
    run.emit("execution.cancelled", None, json!({ "reason": reason }));
}
