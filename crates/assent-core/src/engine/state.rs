//! The state of one execution, kept by the store as a single JSON document.

use crate::schema::executions::DispatchWebhook;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::vocab::ExecutionStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    Pending,
    Running,
    Waiting,
    Completed,
    Failed,
    Skipped,
    Cancelled,
    Breached,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::Breached => "breached",
        }
    }

    pub fn is_terminal(self) -> bool {
        !self.is_open()
    }

    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Waiting)
    }

    /// The statuses on which `always` and `custom` edges are evaluated.
    pub fn fans_out(self) -> bool {
        matches!(self, Self::Completed | Self::Skipped | Self::Breached | Self::Failed)
    }
}

/// `{code, message}`, as the execution view shows a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn new(code: &str, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo { code: code.to_owned(), message: message.into() }
    }
}

/// One reviewer's recorded decision on a human step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewerDecision {
    pub reviewer_id: String,
    pub decision: String,
    pub reason: Option<String>,
    pub decided_at: u64,
}

/// What the engine knows of the agent run behind an agent step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRun {
    pub agent_execution_id: Option<String>,
    pub resolved_url: Option<String>,
    pub started_at: Option<u64>,
}

/// The callback an async webhook step accepted, kept so that the same report sent again is
/// known as a repeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedCallback {
    pub attempt: u32,
    /// `CallbackReport::digest` of the accepted report.
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    pub step_id: String,
    pub node_id: String,
    pub node_type: String,
    pub status: StepStatus,
    pub group_id: Option<String>,
    pub started_at: Option<u64>,
    pub completed_at: Option<u64>,
    pub output: Map<String, Value>,
    pub error: Option<ErrorInfo>,
    pub retry_count: u32,
    /// The pass through the enclosing loop this step belongs to (1 outside loops).
    pub iteration: u32,
    pub input: Value,
    pub decisions: Vec<ReviewerDecision>,
    pub agent_run: Option<AgentRun>,
    /// Keys of the timers this step has set and not yet cleared.
    pub timers: Vec<String>,
    /// The callback that finished an async webhook step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<AcceptedCallback>,
}

impl StepState {
    pub fn decision(&self) -> Option<&str> {
        self.output.get("decision").and_then(Value::as_str)
    }
}

/// Quorum bookkeeping of one group in one loop iteration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupState {
    pub group_id: String,
    pub iteration: u32,
    pub approved_total: u32,
    pub completed_total: u32,
    pub quorum_met: bool,
    /// The group's collective successors (or its reject route) have fired.
    pub routed: bool,
}

/// One rejected pass through a loop, as the next pass's `previousAttempts` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopAttempt {
    pub iteration: u32,
    pub author_output: Value,
    pub rejected_by: Value,
    pub rejector_mandatory: bool,
    pub rejection_reason: Value,
    pub rejected_at: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoopState {
    pub loop_id: String,
    pub iteration: u32,
    pub attempts: Vec<LoopAttempt>,
    pub exhausted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionState {
    pub execution_id: String,
    pub definition_id: String,
    pub definition_version: u32,
    pub correlation_id: String,
    pub idempotency_key: String,
    pub status: ExecutionStatus,
    pub started_at: u64,
    pub completed_at: Option<u64>,
    pub cancelled_at: Option<u64>,
    pub failure_reason: Option<ErrorInfo>,
    pub trigger_context: Value,
    /// Given at dispatch for agent calls; never shown in a view.
    pub organization_id: Option<String>,
    pub document_id: Option<String>,
    #[serde(default)]
    pub folder_id: Option<String>,
    /// The run's own event target, replacing the definition's `webhookConfig`; never shown.
    #[serde(default)]
    pub webhook: Option<DispatchWebhook>,
    pub steps: Vec<StepState>,
    pub groups: Vec<GroupState>,
    pub loops: Vec<LoopState>,
    pub next_seq: u64,
}

impl ExecutionState {
    pub fn step(&self, step_id: &str) -> Option<&StepState> {
        self.steps.iter().find(|s| s.step_id == step_id)
    }

    pub(crate) fn step_index(&self, step_id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.step_id == step_id)
    }

    pub fn open_steps(&self) -> impl Iterator<Item = &StepState> {
        self.steps.iter().filter(|s| s.status.is_open())
    }

    /// The current iteration of a loop (1 before it has restarted).
    pub fn loop_iteration(&self, loop_id: &str) -> u32 {
        self.loops.iter().find(|l| l.loop_id == loop_id).map_or(1, |l| l.iteration)
    }
}
