//! Webhook steps: the core prepares the request from the execution's state, this module
//! mints the callback of an async step, signs the body, sends it through the address-guarded
//! client, and hands the answer back to the core to judge.

use super::callbacks::CallbackClaims;
use super::definitions::Runnable;
use super::{signature, Engine, RunError};
use crate::outbound::{Failure, Request};
use assent_core::engine::webhook::{
    answer_outcome, call_failed, prepare_call, Callback, WebhookAnswer, WebhookCall,
    WebhookRequest, RESPONSE_TEXT_MAX_BYTES,
};
use assent_core::engine::{ExecutionState, WorkOutcome};
use assent_core::model::{HttpMethod, NodeConfig, WebhookMode, WebhookNodeConfig};
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::time::{Duration, Instant};

/// One webhook step's attempt to perform.
pub(super) struct Attempt<'a> {
    pub workspace_id: &'a str,
    pub execution_id: &'a str,
    pub step_id: &'a str,
    pub attempt: u32,
}

/// Performs the attempt; `None` when the step no longer awaits it, so nothing is sent.
pub(super) async fn call(
    engine: &Engine,
    at: &Attempt<'_>,
    runnable: &Runnable,
) -> Result<Option<WorkOutcome>, RunError> {
    let state = engine.execution(at.workspace_id, at.execution_id).await?;
    let Some(config) = node_config(runnable, &state, at.step_id) else { return Ok(None) };
    let callback = match config.mode {
        WebhookMode::Async => callback(engine, at).await?,
        WebhookMode::Sync => None,
    };
    let (spec, compiled) = (&runnable.spec, &runnable.compiled);
    match prepare_call(spec, compiled, &state, at.step_id, at.attempt, callback.as_ref()) {
        WebhookCall::Stale => Ok(None),
        WebhookCall::Fails(outcome) => Ok(Some(outcome)),
        WebhookCall::Send(request) => Ok(Some(send(engine, config, request).await)),
    }
}

fn node_config<'r>(
    runnable: &'r Runnable,
    state: &ExecutionState,
    step_id: &str,
) -> Option<&'r WebhookNodeConfig> {
    let node = runnable.spec.node(&state.step(step_id)?.node_id)?;
    match &node.config {
        NodeConfig::Webhook(config) => Some(config),
        _ => None,
    }
}

/// The callback URL and a token for this attempt; none while the public URL is unknown.
async fn callback(engine: &Engine, at: &Attempt<'_>) -> Result<Option<Callback>, RunError> {
    let Some(url) = engine.callback_url() else { return Ok(None) };
    let claims = CallbackClaims {
        workspace_id: at.workspace_id.to_owned(),
        execution_id: at.execution_id.to_owned(),
        step_id: at.step_id.to_owned(),
        attempt: at.attempt,
    };
    let token = engine.callback_token(&claims).await?;
    Ok(Some(Callback { url, token }))
}

async fn send(engine: &Engine, config: &WebhookNodeConfig, request: WebhookRequest) -> WorkOutcome {
    let started = Instant::now();
    let mut headers = request.headers;
    let body = request.body.map(bytes::Bytes::from);
    if let Some(secret) = &request.signing_secret {
        let signed = signature(secret, body.as_deref().unwrap_or_default());
        headers.push(("x-velt-signature".to_owned(), signed));
    }
    let method = match request.method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
    };
    let outbound = Request {
        method,
        url: &request.url,
        headers,
        body,
        timeout: Duration::from_millis(request.timeout_ms),
        max_answer_bytes: RESPONSE_TEXT_MAX_BYTES,
    };
    let outcome = match engine.outbound.send(outbound).await {
        Ok(answer) => answer_outcome(
            config,
            &WebhookAnswer {
                status: answer.status,
                headers: header_pairs(&answer.headers),
                body: answer.body.to_vec(),
                truncated: answer.truncated,
                latency_ms: answer.latency.as_millis() as u64,
            },
        ),
        Err(failure) => failure_outcome(&failure, started.elapsed()),
    };
    log_outcome(&outcome);
    outcome
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// No answer: a refused address fails for good, naming its rule; the rest may pass later.
fn failure_outcome(failure: &Failure, elapsed: Duration) -> WorkOutcome {
    let latency_ms = elapsed.as_millis() as u64;
    let (code, message, transient) = match failure {
        Failure::Refused(refusal) => {
            let code = format!("webhook-node-ssrf-blocked:{}", refusal.rule());
            (code, format!("the webhook URL {refusal}"), false)
        }
        Failure::Timeout => {
            let message = "the endpoint did not answer within timeoutMs";
            ("webhook-node-timeout".to_owned(), message.to_owned(), true)
        }
        Failure::Unresolved => {
            let message = "the endpoint's host name did not resolve";
            ("webhook-node-unreachable".to_owned(), message.to_owned(), true)
        }
        Failure::Connection(detail) => {
            tracing::debug!("webhook node connection failed: {detail}");
            let message = "the endpoint could not be reached";
            ("webhook-node-unreachable".to_owned(), message.to_owned(), true)
        }
    };
    call_failed(&code, message, None, latency_ms, transient)
}

/// One line per failed call, without the body or any token.
fn log_outcome(outcome: &WorkOutcome) {
    let (code, data, retryable) = match outcome {
        WorkOutcome::TransientFailure { code, data, .. } => (code, data, true),
        WorkOutcome::PermanentFailure { code, data, .. } => (code, data, false),
        _ => return,
    };
    tracing::info!(code, http_status = %data["httpStatus"], retryable, "webhook call failed");
}
