//! The commands `apply` accepts, their errors, and the step endpoints' rules.

use super::state::{ErrorInfo, ExecutionState, StepStatus};
use super::{agent, groups, human, rollup, webhook, Effects, Run, TimerKind};
use crate::compile::Compiled;
use crate::model::{DefinitionSpec, NodeConfig};
use crate::schema::callback::CallbackReport;
pub use crate::vocab::{Decision, ResolveAction};
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorStatus {
    InvalidArgument,
    NotFound,
    FailedPrecondition,
    PermissionDenied,
}

impl ErrorStatus {
    /// The envelope's `error.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStatus::InvalidArgument => "INVALID_ARGUMENT",
            ErrorStatus::NotFound => "NOT_FOUND",
            ErrorStatus::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorStatus::PermissionDenied => "PERMISSION_DENIED",
        }
    }
}

/// A command the engine refused; the state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", status.as_str())]
pub struct CommandError {
    pub status: ErrorStatus,
    pub message: String,
}

impl CommandError {
    pub fn new(status: ErrorStatus, message: impl Into<String>) -> CommandError {
        CommandError { status, message: message.into() }
    }

    pub(crate) fn precondition(message: impl Into<String>) -> CommandError {
        CommandError::new(ErrorStatus::FailedPrecondition, message)
    }

    pub(crate) fn step_not_found(step_id: &str) -> CommandError {
        CommandError::new(ErrorStatus::NotFound, format!("step {step_id} not found"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStatus {
    Passed,
    Failed,
    Partial,
    Error,
    Skipped,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Passed => "passed",
            AgentStatus::Failed => "failed",
            AgentStatus::Partial => "partial",
            AgentStatus::Error => "error",
            AgentStatus::Skipped => "skipped",
        }
    }
}

/// What became of a work item the shell performed.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkOutcome {
    AgentStarted {
        agent_execution_id: String,
    },
    /// A poll found the run still running.
    AgentRunning,
    AgentFinished {
        status: AgentStatus,
        results_summary: Value,
        duration_ms: Option<u64>,
    },
    /// An async webhook accepted the call; its callback will finish the step.
    AwaitingCallback,
    /// A notification was sent or a sync webhook answered.
    Delivered {
        output: Map<String, Value>,
    },
    /// Worth retrying (timeouts, 5xx, rate limits); `data` goes on `step.failed` at the end.
    TransientFailure {
        code: String,
        message: String,
        data: Value,
    },
    PermanentFailure {
        code: String,
        message: String,
        data: Value,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    RecordReviewerDecision {
        step_id: String,
        reviewer_id: String,
        decision: Decision,
        reason: Option<String>,
    },
    RecordAgentResolution {
        step_id: String,
        response_id: String,
        resolution: String,
        actor_id: String,
        reason: Option<String>,
    },
    CancelStep {
        step_id: String,
        actor_id: String,
        reason: Option<String>,
    },
    ResolveStep {
        step_id: String,
        action: ResolveAction,
        actor_id: String,
        output: Option<Map<String, Value>>,
        reason: Option<String>,
    },
    CancelExecution {
        reason: Option<String>,
    },
    TimerFired {
        kind: TimerKind,
        step_id: String,
    },
    WorkDone {
        step_id: String,
        attempt: u32,
        outcome: WorkOutcome,
    },
    /// An async webhook endpoint's report, for the attempt its callback token names.
    WebhookCallback {
        step_id: String,
        attempt: u32,
        report: CallbackReport,
    },
}

/// Applies one command. On error the state is unchanged and nothing is emitted.
pub fn apply(
    spec: &DefinitionSpec,
    compiled: &Compiled,
    state: &mut ExecutionState,
    command: Command,
    now_ms: u64,
) -> Result<Effects, CommandError> {
    let mut run = Run::new(spec, compiled, state, now_ms);
    let result = match command {
        Command::RecordReviewerDecision { step_id, reviewer_id, decision, reason } => {
            let decision = decision.as_str();
            human::record_decision(&mut run, &step_id, &reviewer_id, decision, reason.as_deref())?
        }
        Command::RecordAgentResolution { step_id, .. } => agent_resolution(&run, &step_id)?,
        Command::CancelStep { step_id, actor_id, reason } => {
            cancel_step(&mut run, &step_id, &actor_id, reason.as_deref())?
        }
        Command::ResolveStep { step_id, action, actor_id, output, reason } => {
            let request =
                Resolve { action, actor_id: &actor_id, output, reason: reason.as_deref() };
            resolve_step(&mut run, &step_id, request)?
        }
        Command::CancelExecution { reason } => {
            rollup::cancel_execution(&mut run, reason.as_deref());
            json!({ "cancelled": true, "executionId": run.state.execution_id })
        }
        Command::TimerFired { kind, step_id } => {
            if let Some(index) = run.state.step_index(&step_id) {
                agent::timer_fired(&mut run, index, kind);
            }
            Value::Null
        }
        Command::WorkDone { step_id, attempt, outcome } => {
            let index = run
                .state
                .step_index(&step_id)
                .ok_or_else(|| CommandError::step_not_found(&step_id))?;
            agent::work_done(&mut run, index, attempt, outcome);
            Value::Null
        }
        Command::WebhookCallback { step_id, attempt, report } => {
            webhook::callback(&mut run, &step_id, attempt, report)?
        }
    };
    rollup::roll_up(&mut run);
    let mut effects = std::mem::take(&mut run.fx);
    effects.result = result;
    Ok(effects)
}

/// No step ever waits for an agent resolution: blocking agents fail when they start.
fn agent_resolution(run: &Run, step_id: &str) -> Result<Value, CommandError> {
    let index =
        run.state.step_index(step_id).ok_or_else(|| CommandError::step_not_found(step_id))?;
    if !matches!(run.node_of(index).config, NodeConfig::Agent(_)) {
        return Err(CommandError::precondition(format!("step {step_id} is not an agent step")));
    }
    Err(CommandError::precondition(format!("step {step_id} is not waiting for a resolution")))
}

fn cancel_step(
    run: &mut Run,
    step_id: &str,
    actor_id: &str,
    reason: Option<&str>,
) -> Result<Value, CommandError> {
    let index =
        run.state.step_index(step_id).ok_or_else(|| CommandError::step_not_found(step_id))?;
    if run.step(index).status.is_terminal() {
        return Err(CommandError::precondition(format!("step {step_id} is already terminal")));
    }
    rollup::cancel_step(run, index, actor_id, reason);
    groups::on_member_terminal(run, index);
    Ok(json!({ "cancelled": true, "executionId": run.state.execution_id, "stepId": step_id }))
}

struct Resolve<'r> {
    action: ResolveAction,
    actor_id: &'r str,
    output: Option<Map<String, Value>>,
    reason: Option<&'r str>,
}

/// The state and permission rules of `steps/resolve`, in the order they are checked.
fn check_resolve(run: &Run, step_id: &str, request: &Resolve) -> Result<usize, CommandError> {
    let action = request.action;
    let Some(index) = run.state.step_index(step_id) else {
        return Err(match action.is_reviewer() {
            true => CommandError::step_not_found(step_id),
            false => CommandError::precondition("resolveStep not applied: step-not-found"),
        });
    };
    let step = run.step(index);
    let human = match &run.node_of(index).config {
        NodeConfig::Human(config) => Some(config),
        _ => None,
    };
    if action.is_reviewer() {
        let Some(config) = human else {
            return Err(CommandError::precondition(format!("step {step_id} is not a human step")));
        };
        if !config.reviewers.iter().any(|r| r.user_id == request.actor_id) {
            let message =
                format!("{} is not a declared reviewer of step {step_id}", request.actor_id);
            return Err(CommandError::new(ErrorStatus::PermissionDenied, message));
        }
    }
    if step.status.is_terminal() {
        return Err(CommandError::precondition(format!("step {step_id} is already terminal")));
    }
    let allowed = match action {
        ResolveAction::ForceComplete | ResolveAction::ForceFail => {
            step.status.is_open() && step.status != StepStatus::Pending
        }
        _ => step.status == StepStatus::Waiting,
    };
    if !allowed {
        let message =
            format!("{} is not allowed on a {} step", action.as_str(), step.status.as_str());
        return Err(CommandError::precondition(message));
    }
    Ok(index)
}

fn resolve_step(run: &mut Run, step_id: &str, request: Resolve) -> Result<Value, CommandError> {
    let index = check_resolve(run, step_id, &request)?;
    let action = request.action;
    let decision = action.decision();
    let mut output = request.output.unwrap_or_default();
    match decision {
        Some(decision) => {
            output.insert("decision".into(), json!(decision));
            output.insert("approved".into(), json!(decision == "approve"));
            output.insert("approvalReply".into(), json!(request.reason));
            output.insert("overriddenAt".into(), json!(run.now_ms));
        }
        None => {
            output.entry("overriddenAt").or_insert(json!(run.now_ms));
        }
    }

    let audit = json!({
        "actorId": request.actor_id,
        "action": action.as_str(),
        "reason": request.reason,
        "decision": decision,
    });
    run.emit("step.overridden", Some(step_id), audit);
    let node_type = run.step(index).node_type.clone();
    if action == ResolveAction::ForceFail {
        run.step_mut(index).output.extend(output);
        let message = request.reason.unwrap_or("failed by steps/resolve").to_owned();
        let error = ErrorInfo::new("force-failed", message);
        rollup::fail_step(run, index, error, json!({ "reason": "force-fail" }));
    } else {
        let data =
            json!({ "nodeType": node_type, "decision": decision, "source": action.as_str() });
        rollup::complete_step(run, index, output, data);
    }
    Ok(json!({
        "resolved": true,
        "executionId": run.state.execution_id,
        "stepId": step_id,
        "action": action.as_str(),
    }))
}
