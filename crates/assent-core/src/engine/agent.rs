//! Steps whose work the shell performs: agent runs, notifications and webhook calls, with
//! their timers, retries and reported outcomes.

use super::commands::{AgentStatus, WorkOutcome};
use super::state::{AgentRun, ErrorInfo, StepStatus};
use super::{notification, rollup, webhook, AgentRequest, Run, TimerKind, WorkItem};
use crate::model::{AgentConfig, NodeConfig, WebhookMode};
use serde_json::{json, Map, Value};

/// The agent id that completes at once with an approval, without calling a runner.
pub const MOCK_AGENT_ID: &str = "__mock__";
/// Delays before the retries of a transient failure; their count is the retry budget.
pub const RETRY_DELAYS_MS: [u64; 3] = [2_000, 8_000, 32_000];

pub(crate) fn start_agent(run: &mut Run, index: usize, config: &AgentConfig) {
    if config.blocking == Some(true) {
        let error = ErrorInfo::new(
            "agent-blocking-not-supported",
            "blocking agent nodes are not supported",
        );
        return rollup::fail_step(
            run,
            index,
            error,
            json!({ "reason": "agent-blocking-not-supported" }),
        );
    }
    if config.agent_id == MOCK_AGENT_ID {
        let data = json!({ "agentId": MOCK_AGENT_ID, "synthetic": true, "decision": "approve" });
        let output = as_map(data.clone());
        return rollup::complete_step(run, index, output, data);
    }
    let Some(url) = resolve_url(config, &run.state.trigger_context) else {
        let error = ErrorInfo::new(
            "agent-url-unresolved",
            "neither url nor urlPath gives a URL for the agent",
        );
        return rollup::fail_step(run, index, error, json!({ "reason": "agent-url-unresolved" }));
    };

    let run_info =
        AgentRun { resolved_url: Some(url), started_at: Some(run.now_ms), ..AgentRun::default() };
    run.step_mut(index).agent_run = Some(run_info);
    run.set_timer(index, TimerKind::AgentTimeout, run.now_ms + config.agent_max_runtime_ms);
    request_work(run, index);
}

/// `url`, or the string at `urlPath` in the trigger context; a value without a scheme is
/// taken as `https://`.
pub fn resolve_url(config: &AgentConfig, trigger_context: &Value) -> Option<String> {
    if let Some(url) = &config.url {
        return Some(url.clone());
    }
    let raw = lookup(trigger_context, config.url_path.as_deref()?)?.as_str()?.trim();
    if raw.is_empty() {
        return None;
    }
    let has_scheme = raw.starts_with("https://") || raw.starts_with("http://");
    Some(if has_scheme { raw.to_owned() } else { format!("https://{raw}") })
}

fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// `userContext`: each field of the mapping read from the trigger context by its dot path.
fn user_context(config: &AgentConfig, trigger_context: &Value) -> Value {
    let mut context = Map::new();
    for (field, path) in config.user_context_mapping.iter().flatten() {
        let value = path.as_str().and_then(|p| lookup(trigger_context, p));
        context.insert(field.clone(), value.cloned().unwrap_or(Value::Null));
    }
    Value::Object(context)
}

fn agent_request(run: &Run, config: &AgentConfig, url: String) -> AgentRequest {
    AgentRequest {
        agent_id: config.agent_id.clone(),
        trigger: "workflow".into(),
        workflow_execution_id: run.state.execution_id.clone(),
        url,
        organization_id: run.state.organization_id.clone(),
        document_id: run.state.document_id.clone(),
        cross_page_execute: config.cross_page_execute,
        max_urls_to_process: config.max_urls_to_process,
        user_context: user_context(config, &run.state.trigger_context),
        ai_config: config.ai_config.clone().map(Value::Object),
        prompt_override: config.prompt_override.clone(),
        input_mapping: config.input_mapping.clone().map(Value::Object),
    }
}

/// Asks the shell to do the step's work (again, after a retry).
pub(crate) fn request_work(run: &mut Run, index: usize) {
    let node = run.node_of(index);
    let step = run.step(index);
    let (step_id, attempt) = (step.step_id.clone(), step.retry_count);
    let agent_run = step.agent_run.clone().unwrap_or_default();
    let item = match &node.config {
        NodeConfig::Agent(config) => match agent_run.agent_execution_id {
            Some(agent_execution_id) => {
                WorkItem::PollAgent { step_id, attempt, agent_execution_id }
            }
            None => {
                let url = agent_run.resolved_url.unwrap_or_default();
                WorkItem::StartAgent {
                    step_id,
                    attempt,
                    request: Box::new(agent_request(run, config, url)),
                }
            }
        },
        NodeConfig::Notification(config) => match notification::message(run, index, config) {
            Ok(message) => WorkItem::SendNotification {
                step_id,
                attempt,
                node_id: node.node_id.clone(),
                message: Box::new(message),
            },
            Err(error) => return notification::fail(run, index, error),
        },
        NodeConfig::Webhook(_) => {
            WorkItem::CallWebhook { step_id, attempt, node_id: node.node_id.clone() }
        }
        NodeConfig::Human(_) => return,
    };
    run.fx.work.push(item);
}

/// A timer came due. Stale timers (the step has ended) change nothing.
pub(crate) fn timer_fired(run: &mut Run, index: usize, kind: TimerKind) {
    let status = run.step(index).status;
    if !status.is_open() {
        return;
    }
    run.clear_timer(index, kind);
    let waiting = status == StepStatus::Waiting;
    match kind {
        TimerKind::SlaBreach => rollup::breach_step(run, index),
        TimerKind::Retry => request_work(run, index),
        TimerKind::AgentPoll if waiting => request_work(run, index),
        TimerKind::AgentPoll => {}
        TimerKind::AgentTimeout => {
            let error = ErrorInfo::new("agent-timeout", "the agent run exceeded agentMaxRuntimeMs");
            fail_work(run, index, error, "timeout", Value::Null);
        }
    }
}

fn agent_event_data(run: &Run, index: usize, status: &str, decision: &str, source: &str) -> Value {
    let agent_execution_id =
        run.step(index).agent_run.as_ref().and_then(|a| a.agent_execution_id.clone());
    json!({
        "agentExecutionId": agent_execution_id,
        "agentExecutionStatus": status,
        "decision": decision,
        "source": source,
    })
}

/// The shell reports the outcome of a work item. Outcomes of an earlier attempt, or for a
/// step that has ended, change nothing.
pub(crate) fn work_done(run: &mut Run, index: usize, attempt: u32, outcome: WorkOutcome) {
    let step = run.step(index);
    if !step.status.is_open() || step.retry_count != attempt {
        return;
    }
    match outcome {
        WorkOutcome::AgentStarted { agent_execution_id } => {
            agent_started(run, index, agent_execution_id)
        }
        WorkOutcome::AgentRunning => poll_later(run, index),
        WorkOutcome::AgentFinished { status, results_summary, duration_ms } => {
            agent_finished(run, index, status, results_summary, duration_ms)
        }
        WorkOutcome::AwaitingCallback => webhook::awaiting_callback(run, index),
        WorkOutcome::Delivered { output } => delivered(run, index, output),
        WorkOutcome::TransientFailure { code, message, data } => {
            transient_failure(run, index, ErrorInfo::new(&code, message), data)
        }
        WorkOutcome::PermanentFailure { code, message, data } => {
            fail_work(run, index, ErrorInfo::new(&code, message), "runner", data)
        }
    }
}

fn poll_interval_ms(run: &Run, index: usize) -> u64 {
    match &run.node_of(index).config {
        NodeConfig::Agent(config) => config.poll_interval_ms,
        _ => crate::model::AGENT_POLL_INTERVAL_DEFAULT_MS,
    }
}

fn agent_started(run: &mut Run, index: usize, agent_execution_id: String) {
    let poll_ms = poll_interval_ms(run, index);
    let step = run.step_mut(index);
    step.status = StepStatus::Waiting;
    step.agent_run.get_or_insert_with(AgentRun::default).agent_execution_id =
        Some(agent_execution_id.clone());
    let agent_id = match &run.node_of(index).config {
        NodeConfig::Agent(config) => config.agent_id.clone(),
        _ => String::new(),
    };
    let step_id = run.step(index).step_id.clone();
    let data = json!({ "agentId": agent_id, "agentExecutionId": agent_execution_id, "pollIntervalMs": poll_ms });
    run.emit("step.awaiting-approval", Some(&step_id), data);
    poll_later(run, index);
}

fn poll_later(run: &mut Run, index: usize) {
    let due_at_ms = run.now_ms + poll_interval_ms(run, index);
    run.set_timer(index, TimerKind::AgentPoll, due_at_ms);
}

fn agent_finished(
    run: &mut Run,
    index: usize,
    status: AgentStatus,
    results_summary: Value,
    duration_ms: Option<u64>,
) {
    let passed = matches!(status, AgentStatus::Passed | AgentStatus::Skipped);
    let decision = if passed { "approve" } else { "reject" };
    let step = run.step(index);
    let agent_run = step.agent_run.clone().unwrap_or_default();
    let agent_id = match &run.node_of(index).config {
        NodeConfig::Agent(config) => config.agent_id.clone(),
        _ => String::new(),
    };
    let output = as_map(json!({
        "agentId": agent_id,
        "agentExecutionId": agent_run.agent_execution_id,
        "agentExecutionStatus": status.as_str(),
        "agentResultsSummary": results_summary,
        "resolvedUrl": agent_run.resolved_url,
        "agentDurationMs": duration_ms,
        "decision": decision,
    }));
    let data = agent_event_data(run, index, status.as_str(), decision, "poll");
    if passed {
        return rollup::complete_step(run, index, output, data);
    }
    run.step_mut(index).output.extend(output);
    let error = ErrorInfo::new(&format!("agent-{}", status.as_str()), "the agent run did not pass");
    rollup::fail_step(run, index, error, data);
}

fn delivered(run: &mut Run, index: usize, output: Map<String, Value>) {
    let node = run.node_of(index);
    let must_answer = node.require_non_empty_output == Some(true)
        && matches!(&node.config, NodeConfig::Webhook(c) if c.mode == WebhookMode::Sync);
    let empty = ["responseJson", "responseText"]
        .iter()
        .all(|key| output.get(*key).is_none_or(|v| v.is_null() || v == "" || v == &json!({})));
    if must_answer && empty {
        let error = ErrorInfo::new("webhook-node-empty-response", "the webhook answered nothing");
        return rollup::fail_step(
            run,
            index,
            error,
            json!({ "reason": "webhook-node-empty-response" }),
        );
    }
    let mut data = json!({ "nodeType": node.config.node_type().as_str() });
    if let NodeConfig::Webhook(_) = &node.config {
        data["mode"] = json!("sync");
        data["httpStatus"] = output.get("httpStatus").cloned().unwrap_or(Value::Null);
    }
    rollup::complete_step(run, index, output, data);
}

fn transient_failure(run: &mut Run, index: usize, error: ErrorInfo, data: Value) {
    let retries_done = run.step(index).retry_count as usize;
    let Some(delay_ms) = RETRY_DELAYS_MS.get(retries_done) else {
        return fail_work(run, index, error, "runner", data);
    };
    run.clear_timer(index, TimerKind::AgentPoll);
    run.step_mut(index).retry_count += 1;
    let step_id = run.step(index).step_id.clone();
    let retry = json!({ "retryCount": retries_done + 1, "code": error.code });
    run.emit("step.retried", Some(&step_id), retry);
    run.set_timer(index, TimerKind::Retry, run.now_ms + delay_ms);
}

/// Fails a step whose work did not succeed. An agent step that fails this way still reads
/// as a rejection, as one whose run did not pass does: `output.decision` is `reject` and the
/// event carries the agent fields. Other steps keep the shell's `data`.
fn fail_work(run: &mut Run, index: usize, error: ErrorInfo, source: &str, data: Value) {
    let NodeConfig::Agent(config) = &run.node_of(index).config else {
        return rollup::fail_step(run, index, error, data);
    };
    let agent_id = config.agent_id.clone();
    let status = if source == "timeout" { "timeout" } else { "error" };
    let agent_run = run.step(index).agent_run.clone().unwrap_or_default();
    let output = as_map(json!({
        "agentId": agent_id,
        "agentExecutionId": agent_run.agent_execution_id,
        "agentExecutionStatus": status,
        "resolvedUrl": agent_run.resolved_url,
        "decision": "reject",
    }));
    run.step_mut(index).output.extend(output);
    let data = agent_event_data(run, index, status, "reject", source);
    rollup::fail_step(run, index, error, data);
}

pub(crate) fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
