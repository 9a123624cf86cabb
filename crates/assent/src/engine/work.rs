//! The I/O the core asks for: agent runs, notifications and webhook calls. Each item is
//! kept as a timer due at once, performed outside any transaction, and its outcome is fed
//! back to the core as `WorkDone`.

use super::definitions::Runnable;
use super::{webhook, Engine, RunError};
use assent_core::engine::{AgentRequest, AgentStatus, WorkItem, WorkOutcome};
use assent_store::{ClaimedTimer, TimerSet};
use serde_json::{json, Value};
use std::time::Duration;

/// Prefix of the timers that carry work.
pub const WORK_TIMER_PREFIX: &str = "work:";

/// How long one call to the agent runner may take.
const AGENT_RUNNER_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of an agent runner's answer that are read at most.
const AGENT_RUNNER_ANSWER_MAX_BYTES: usize = 1024 * 1024;

pub fn as_timer(item: &WorkItem, now_ms: i64) -> TimerSet {
    TimerSet {
        timer_key: format!("{WORK_TIMER_PREFIX}{}", step_of(item)),
        due_at_ms: now_ms,
        payload: serde_json::to_value(item).unwrap_or(Value::Null),
    }
}

pub fn step_of(item: &WorkItem) -> &str {
    match item {
        WorkItem::StartAgent { step_id, .. }
        | WorkItem::PollAgent { step_id, .. }
        | WorkItem::SendNotification { step_id, .. }
        | WorkItem::CallWebhook { step_id, .. } => step_id,
    }
}

pub fn attempt_of(item: &WorkItem) -> u32 {
    match item {
        WorkItem::StartAgent { attempt, .. }
        | WorkItem::PollAgent { attempt, .. }
        | WorkItem::SendNotification { attempt, .. }
        | WorkItem::CallWebhook { attempt, .. } => *attempt,
    }
}

/// The agent runner of DECISIONS §8, at the base URL the operator configured.
#[derive(Clone)]
pub struct AgentRunner {
    base_url: String,
    http: reqwest::Client,
}

impl AgentRunner {
    /// A runner at `base_url` (`http` or `https`), trusting the built-in roots and the PEM
    /// certificates in `extra_ca_pem`.
    pub fn new(base_url: &str, extra_ca_pem: Option<&[u8]>) -> Result<AgentRunner, String> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "the agent runner URL must be http:// or https://, not {base_url}"
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(AGENT_RUNNER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        for certificate in extra_ca_pem
            .map(reqwest::Certificate::from_pem_bundle)
            .transpose()
            .map_err(|e| format!("the CA file holds no usable certificate: {e}"))?
            .unwrap_or_default()
        {
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(AgentRunner { base_url: base_url.trim_end_matches('/').to_owned(), http })
    }

    async fn start(&self, request: &AgentRequest) -> WorkOutcome {
        match self.call("run", json!({ "data": request })).await {
            Ok(result) => match result.get("executionId").and_then(Value::as_str) {
                Some(id) => WorkOutcome::AgentStarted { agent_execution_id: id.to_owned() },
                None => permanent("agent-runner-bad-answer", "the run answer has no executionId"),
            },
            Err(outcome) => outcome,
        }
    }

    async fn poll(&self, agent_execution_id: &str) -> WorkOutcome {
        let body = json!({ "data": { "executionId": agent_execution_id } });
        let result = match self.call("get", body).await {
            Ok(result) => result,
            Err(outcome) => return outcome,
        };
        let status = result.get("status").and_then(Value::as_str).unwrap_or_default();
        let finished = match status {
            "running" | "pending" | "queued" => return WorkOutcome::AgentRunning,
            "passed" => AgentStatus::Passed,
            "skipped" => AgentStatus::Skipped,
            "failed" => AgentStatus::Failed,
            "partial" => AgentStatus::Partial,
            "error" => AgentStatus::Error,
            other => {
                let message = format!("unknown agent run status {other:?}");
                return permanent("agent-runner-bad-answer", &message);
            }
        };
        WorkOutcome::AgentFinished {
            status: finished,
            results_summary: result.get("resultsSummary").cloned().unwrap_or(Value::Null),
            duration_ms: result.get("durationMs").and_then(Value::as_u64),
        }
    }

    /// POSTs an enveloped request to `/v2/agents/execution/<action>`; the `result` on
    /// success, or the outcome a failure amounts to.
    async fn call(&self, action: &str, body: Value) -> Result<Value, WorkOutcome> {
        let url = format!("{}/v2/agents/execution/{action}", self.base_url);
        let sent = self.http.post(url).json(&body).send().await;
        let mut response = sent.map_err(|e| unreachable_runner(&e))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(transient("agent-runner-unavailable", &format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(permanent("agent-runner-rejected", &format!("HTTP {status}")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable_runner(&e))? {
            if bytes.len() + chunk.len() > AGENT_RUNNER_ANSWER_MAX_BYTES {
                return Err(permanent("agent-runner-bad-answer", "the answer is too large"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| permanent("agent-runner-bad-answer", "the answer is not JSON"))?;
        Ok(answer.get("result").cloned().unwrap_or(answer))
    }
}

/// Step errors are read by every client of the workspace, so they do not carry the runner's
/// address or the transport's detail; the log does.
fn unreachable_runner(err: &reqwest::Error) -> WorkOutcome {
    tracing::warn!("agent runner call failed: {err}");
    let what = if err.is_timeout() { "did not answer in time" } else { "could not be reached" };
    transient("agent-runner-unavailable", &format!("the agent runner {what}"))
}

/// Performs one work item; `None` when there turned out to be nothing to do (a webhook
/// step that no longer awaits this attempt).
pub(super) async fn perform(
    engine: &Engine,
    timer: &ClaimedTimer,
    item: &WorkItem,
    runnable: &Runnable,
) -> Result<Option<WorkOutcome>, RunError> {
    let outcome = match (item, engine.agent_runner.as_ref()) {
        (WorkItem::StartAgent { request, .. }, Some(runner)) => runner.start(request).await,
        (WorkItem::PollAgent { agent_execution_id, .. }, Some(runner)) => {
            runner.poll(agent_execution_id).await
        }
        (WorkItem::StartAgent { .. } | WorkItem::PollAgent { .. }, None) => permanent(
            "agent-runner-not-configured",
            "no agent runner is configured (start the server with --agent-runner-url)",
        ),
        (WorkItem::SendNotification { message, .. }, _) => engine.notifier.send(message).await,
        (WorkItem::CallWebhook { step_id, attempt, .. }, _) => {
            let at = webhook::Attempt {
                workspace_id: &timer.workspace_id,
                execution_id: &timer.execution_id,
                step_id,
                attempt: *attempt,
            };
            return webhook::call(engine, &at, runnable).await;
        }
    };
    Ok(Some(outcome))
}

fn transient(code: &str, message: &str) -> WorkOutcome {
    WorkOutcome::TransientFailure { code: code.into(), message: message.into(), data: Value::Null }
}

fn permanent(code: &str, message: &str) -> WorkOutcome {
    WorkOutcome::PermanentFailure { code: code.into(), message: message.into(), data: Value::Null }
}
