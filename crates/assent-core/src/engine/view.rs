//! What clients read of an execution: the `ExecutionView` with its steps.

use super::state::{ExecutionState, StepState};
use serde_json::{json, Value};

/// The execution as `executions/get` shows it; `with_steps: false` gives the list form,
/// whose `steps` is empty.
pub fn execution_view(state: &ExecutionState, with_steps: bool) -> Value {
    let steps: Vec<Value> =
        if with_steps { state.steps.iter().map(step_view).collect() } else { Vec::new() };
    json!({
        "executionId": state.execution_id,
        "status": state.status.as_str(),
        "startedAt": state.started_at,
        "completedAt": state.completed_at,
        "cancelledAt": state.cancelled_at,
        "definitionId": state.definition_id,
        "definitionVersion": state.definition_version,
        "correlationId": state.correlation_id,
        "idempotencyKey": state.idempotency_key,
        "failureReason": state.failure_reason,
        "steps": steps,
    })
}

fn step_view(step: &StepState) -> Value {
    json!({
        "stepId": step.step_id,
        "nodeId": step.node_id,
        "nodeType": step.node_type,
        "status": step.status.as_str(),
        "groupId": step.group_id,
        "startedAt": step.started_at,
        "completedAt": step.completed_at,
        "output": step.output,
        "error": step.error,
    })
}
