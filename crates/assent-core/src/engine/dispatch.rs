//! Starting an execution: the root nodes, the initial state, `execution.dispatched`.

use super::commands::{CommandError, ErrorStatus};
use super::state::{ExecutionState, ExecutionStatus};
use super::{fanout, rollup, step_ids, Effects, Run};
use crate::compile::Compiled;
use crate::model::DefinitionSpec;
use crate::schema::executions::DispatchWebhook;
use serde_json::{json, Value};

/// What the shell decided before dispatching: ids (generated or given) and the request's
/// run-wide inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchParams {
    pub execution_id: String,
    pub correlation_id: String,
    pub idempotency_key: String,
    pub definition_version: u32,
    pub trigger_context: Value,
    pub organization_id: Option<String>,
    pub document_id: Option<String>,
    pub folder_id: Option<String>,
    pub webhook: Option<DispatchWebhook>,
}

/// Nodes with no incoming forward edge, except targets of a loop's exhausted route.
pub fn root_node_ids<'a>(spec: &'a DefinitionSpec, compiled: &Compiled) -> Vec<&'a str> {
    let has_incoming = |id: &str| compiled.forward_edges.iter().any(|e| e.to == id);
    let is_exhausted_route =
        |id: &str| compiled.loops.iter().any(|l| l.on_exhausted.as_deref() == Some(id));
    let mut roots: Vec<&str> = Vec::new();
    for node in &spec.nodes {
        let id = node.node_id.as_str();
        if !has_incoming(id) && !is_exhausted_route(id) && !roots.contains(&id) {
            roots.push(id);
        }
    }
    roots
}

/// Creates the execution and starts its root steps. `rand6` is the random suffix of the
/// root step ids.
pub fn dispatch(
    spec: &DefinitionSpec,
    compiled: &Compiled,
    params: DispatchParams,
    now_ms: u64,
    rand6: &str,
) -> Result<(ExecutionState, Effects), CommandError> {
    let roots = root_node_ids(spec, compiled);
    if roots.is_empty() {
        return Err(CommandError::new(
            ErrorStatus::FailedPrecondition,
            "definition has no root nodes to dispatch",
        ));
    }

    let mut state = initial_state(spec, params, now_ms);
    let root_step_ids: Vec<String> =
        roots.iter().map(|id| step_ids::root_step_id(id, now_ms, rand6)).collect();

    let mut run = Run::new(spec, compiled, &mut state, now_ms);
    let data = json!({
        "definitionId": spec.definition_id,
        "definitionVersion": run.state.definition_version,
        "rootStepIds": root_step_ids,
    });
    run.emit("execution.dispatched", None, data);
    for (node_id, step_id) in roots.iter().zip(&root_step_ids) {
        fanout::spawn(&mut run, node_id, step_id.clone(), json!({}));
    }
    rollup::roll_up(&mut run);

    let mut effects = std::mem::take(&mut run.fx);
    effects.result = json!({
        "executionId": state.execution_id,
        "correlationId": state.correlation_id,
        "deduplicated": false,
    });
    Ok((state, effects))
}

fn initial_state(spec: &DefinitionSpec, params: DispatchParams, now_ms: u64) -> ExecutionState {
    ExecutionState {
        execution_id: params.execution_id,
        definition_id: spec.definition_id.clone(),
        definition_version: params.definition_version,
        correlation_id: params.correlation_id,
        idempotency_key: params.idempotency_key,
        status: ExecutionStatus::Running,
        started_at: now_ms,
        completed_at: None,
        cancelled_at: None,
        failure_reason: None,
        trigger_context: params.trigger_context,
        organization_id: params.organization_id,
        document_id: params.document_id,
        folder_id: params.folder_id,
        webhook: params.webhook,
        steps: Vec::new(),
        groups: Vec::new(),
        loops: Vec::new(),
        next_seq: 1,
    }
}
