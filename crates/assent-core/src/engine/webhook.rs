//! Webhook steps: the request a step sends, what the endpoint's answer makes of the step,
//! and the callback that finishes an async step. The shell signs, sends and mints callback
//! tokens; everything about the call itself is decided here.

use super::commands::{CommandError, WorkOutcome};
use super::dispatch::root_node_ids;
use super::state::{AcceptedCallback, ErrorInfo, ExecutionState, StepState, StepStatus};
use super::{rollup, Run};
use crate::compile::Compiled;
use crate::model::{
    DefinitionSpec, HttpMethod, Node, NodeConfig, WebhookAuthMode, WebhookBody, WebhookMode,
    WebhookNodeConfig,
};
use crate::schema::callback::{CallbackReport, CallbackStatus};
use serde_json::{json, Map, Value};

/// The header that carries a callback token, both ways.
pub const CALLBACK_TOKEN_HEADER: &str = "x-velt-callback-token";
/// Bytes of an answer's body kept as `responseText`; the rest is not read.
pub const RESPONSE_TEXT_MAX_BYTES: usize = 64 * 1024;
/// Answer headers copied to `output.responseHeaders`. Others (cookies above all) may carry
/// credentials that every reader of the execution would see.
pub const RESPONSE_HEADERS_KEPT: [&str; 9] = [
    "content-type",
    "content-length",
    "content-language",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "x-request-id",
    "x-correlation-id",
];
/// The trigger-context key whose entries are the tokens of `authMode: "token"` nodes, by
/// node id. It is never sent to an endpoint.
pub const WEBHOOK_AUTH_KEY: &str = "webhookAuth";
/// Longest token read from `webhookAuth`.
const NODE_TOKEN_MAX_CHARS: usize = 4096;

/// Where an async step's endpoint reports back; minted by the shell for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    pub url: String,
    pub token: String,
}

/// A request ready to send but for its signature, which the shell computes over `body`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRequest {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The exact bytes to send and sign; `None` sends no body.
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
    /// Sign `body` into `x-velt-signature` with this secret (`authMode: "hmac"`).
    pub signing_secret: Option<String>,
}

/// What a `CallWebhook` work item comes to against the execution's current state.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookCall {
    /// The step no longer awaits this attempt's call: nothing is sent or reported.
    Stale,
    /// The step cannot make the call; this is its outcome.
    Fails(WorkOutcome),
    Send(WebhookRequest),
}

/// An endpoint's answer, as much of it as was read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookAnswer {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// At most `RESPONSE_TEXT_MAX_BYTES`.
    pub body: Vec<u8>,
    /// The body went on past what was read.
    pub truncated: bool,
    pub latency_ms: u64,
}

/// The request for attempt `attempt` of a webhook step. `callback` is required for an
/// async node.
pub fn prepare_call(
    spec: &DefinitionSpec,
    compiled: &Compiled,
    state: &ExecutionState,
    step_id: &str,
    attempt: u32,
    callback: Option<&Callback>,
) -> WebhookCall {
    let Some(step) = state.step(step_id) else { return WebhookCall::Stale };
    let Some(node) = spec.node(&step.node_id) else { return WebhookCall::Stale };
    let NodeConfig::Webhook(config) = &node.config else { return WebhookCall::Stale };
    let awaits_call = step.status == StepStatus::Running && step.retry_count == attempt;
    if !awaits_call {
        return WebhookCall::Stale;
    }
    let call = Call { spec, compiled, state, step, node, config, attempt };
    match call.request(callback) {
        Ok(request) => WebhookCall::Send(request),
        Err(outcome) => WebhookCall::Fails(outcome),
    }
}

struct Call<'a> {
    spec: &'a DefinitionSpec,
    compiled: &'a Compiled,
    state: &'a ExecutionState,
    step: &'a StepState,
    node: &'a Node,
    config: &'a WebhookNodeConfig,
    attempt: u32,
}

impl Call<'_> {
    fn request(&self, callback: Option<&Callback>) -> Result<WebhookRequest, WorkOutcome> {
        let is_async = self.config.mode == WebhookMode::Async;
        if is_async && callback.is_none() {
            let message = "no callback URL is available for an async webhook node";
            return Err(unusable("webhook-node-callback-unavailable", message.into()));
        }
        let token = match self.config.auth_mode {
            WebhookAuthMode::Token => Some(self.node_token()?),
            _ => None,
        };
        let signing_secret = match self.config.auth_mode {
            WebhookAuthMode::Hmac => Some(self.signing_secret()?),
            _ => None,
        };
        let body = self.body(callback).map(|value| value.to_string().into_bytes());
        Ok(WebhookRequest {
            method: self.config.method,
            url: self.config.url.clone(),
            headers: self.headers(token, callback, body.is_some()),
            body,
            timeout_ms: self.config.timeout_ms,
            signing_secret,
        })
    }

    /// `triggerContext.webhookAuth[<nodeId>]`: a non-empty string a header can carry.
    fn node_token(&self) -> Result<String, WorkOutcome> {
        let node_id = &self.node.node_id;
        let entry = self.state.trigger_context.get(WEBHOOK_AUTH_KEY).and_then(|a| a.get(node_id));
        let Some(token) = entry.and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            let message = format!("triggerContext.{WEBHOOK_AUTH_KEY} has no token for {node_id}");
            return Err(unusable("webhook-node-token-missing", message));
        };
        let usable = token.chars().count() <= NODE_TOKEN_MAX_CHARS
            && !token.chars().any(|ch| ch.is_control() && ch != '\t');
        if !usable {
            let message = format!(
                "the token for {node_id} is longer than {NODE_TOKEN_MAX_CHARS} characters or \
                 holds control characters"
            );
            return Err(unusable("webhook-node-token-invalid", message));
        }
        Ok(token.to_owned())
    }

    /// The dispatch's `webhookSecret`, else the definition's `webhookConfig.secret`.
    fn signing_secret(&self) -> Result<String, WorkOutcome> {
        let from_dispatch = self.state.webhook.as_ref().map(|w| &w.secret);
        let from_definition = self.spec.webhook_config.as_ref().map(|c| &c.secret);
        match from_dispatch.or(from_definition) {
            Some(secret) => Ok(secret.clone()),
            None => {
                let message = "an hmac webhook node needs webhookSecret or webhookConfig";
                Err(unusable("webhook-node-secret-missing", message.into()))
            }
        }
    }

    fn body(&self, callback: Option<&Callback>) -> Option<Value> {
        if self.config.method == HttpMethod::Get {
            return None;
        }
        match self.config.body_template {
            WebhookBody::None => None,
            WebhookBody::Envelope => Some(self.envelope(callback)),
            WebhookBody::PassThrough => Some(self.pass_through(callback)),
        }
    }

    fn envelope(&self, callback: Option<&Callback>) -> Value {
        let (state, step) = (self.state, self.step);
        let mut body = json!({
            "executionId": state.execution_id,
            "definitionId": state.definition_id,
            "definitionVersion": state.definition_version,
            "stepId": step.step_id,
            "nodeId": step.node_id,
            "correlationId": state.correlation_id,
            "attempt": self.attempt,
            "triggerContext": shared_context(&state.trigger_context),
            "input": step.input,
        });
        if let Some(callback) = callback {
            body["callback"] = json!({
                "url": callback.url,
                "token": callback.token,
                "tokenHeader": CALLBACK_TOKEN_HEADER,
            });
        }
        body
    }

    /// The step's input as it is; for a step the dispatch started, the trigger context.
    fn pass_through(&self, callback: Option<&Callback>) -> Value {
        let is_root = root_node_ids(self.spec, self.compiled).contains(&self.node.node_id.as_str());
        let started_by_dispatch = is_root && self.step.input == json!({});
        let mut body = match started_by_dispatch {
            true => shared_context(&self.state.trigger_context),
            false => self.step.input.clone(),
        };
        if let (Some(callback), Value::Object(map)) = (callback, &mut body) {
            let velt = json!({
                "callbackUrl": callback.url,
                "callbackToken": callback.token,
                "callbackTokenHeader": CALLBACK_TOKEN_HEADER,
            });
            map.insert("_velt".into(), velt);
        }
        body
    }

    fn headers(
        &self,
        token: Option<String>,
        callback: Option<&Callback>,
        has_body: bool,
    ) -> Vec<(String, String)> {
        let token_header = self.config.auth_token_header.as_deref().filter(|_| token.is_some());
        let replaced = |name: &str| token_header.is_some_and(|t| t.eq_ignore_ascii_case(name));
        let mut headers: Vec<(String, String)> =
            self.config.request_headers.iter().filter(|(n, _)| !replaced(n)).cloned().collect();
        let mut add = |name: &str, value: String| headers.push((name.to_owned(), value));
        if has_body {
            add("content-type", "application/json".into());
        }
        add("x-velt-execution-id", self.state.execution_id.clone());
        add("x-velt-step-id", self.step.step_id.clone());
        add("x-velt-attempt", self.attempt.to_string());
        if let Some(callback) = callback {
            add("x-velt-callback-url", callback.url.clone());
            add(CALLBACK_TOKEN_HEADER, callback.token.clone());
        }
        if let (Some(name), Some(token)) = (token_header, token) {
            add(name, token);
        }
        headers
    }
}

/// The trigger context without the node tokens, which no endpoint should see.
fn shared_context(trigger_context: &Value) -> Value {
    let mut context = trigger_context.clone();
    if let Value::Object(map) = &mut context {
        map.remove(WEBHOOK_AUTH_KEY);
    }
    context
}

/// A failure found before any request: the node cannot be called as configured.
fn unusable(code: &str, message: String) -> WorkOutcome {
    WorkOutcome::PermanentFailure { code: code.into(), message, data: json!({ "reason": code }) }
}

/// A failed call: `step.failed` carries `{httpStatus, latencyMs, retryClass}`.
pub fn call_failed(
    code: &str,
    message: String,
    http_status: Option<u16>,
    latency_ms: u64,
    transient: bool,
) -> WorkOutcome {
    let retry_class = if transient { "transient" } else { "permanent" };
    let data =
        json!({ "httpStatus": http_status, "latencyMs": latency_ms, "retryClass": retry_class });
    let code = code.to_owned();
    match transient {
        true => WorkOutcome::TransientFailure { code, message, data },
        false => WorkOutcome::PermanentFailure { code, message, data },
    }
}

/// What an answer makes of the step: a listed status (or any 2xx when none is listed)
/// succeeds; a redirect and other 4xx fail for good; 429 and 5xx are worth retrying.
pub fn answer_outcome(config: &WebhookNodeConfig, answer: &WebhookAnswer) -> WorkOutcome {
    let status = answer.status;
    let succeeded = match &config.expected_status_codes {
        Some(codes) => codes.contains(&status),
        None => (200..300).contains(&status),
    };
    if succeeded {
        return match config.mode {
            WebhookMode::Async => WorkOutcome::AwaitingCallback,
            WebhookMode::Sync => WorkOutcome::Delivered { output: answer_output(answer) },
        };
    }
    let latency_ms = answer.latency_ms;
    let (code, transient) = match status {
        300..=399 => ("webhook-node-redirect", false),
        429 | 500..=599 => ("webhook-node-unavailable", true),
        _ => ("webhook-node-rejected", false),
    };
    let message = match code {
        "webhook-node-redirect" => {
            format!("the endpoint answered HTTP {status}; redirects are not followed")
        }
        _ => format!("the endpoint answered HTTP {status}"),
    };
    call_failed(code, message, Some(status), latency_ms, transient)
}

/// `{httpStatus, responseHeaders, responseJson?, responseText, responseTruncated?}`.
fn answer_output(answer: &WebhookAnswer) -> Map<String, Value> {
    let text = response_text(&answer.body, answer.truncated);
    let mut output = Map::new();
    output.insert("httpStatus".into(), json!(answer.status));
    output.insert("responseHeaders".into(), Value::Object(kept_headers(&answer.headers)));
    let declared_json = header(&answer.headers, "content-type").is_some_and(is_json_media_type);
    if declared_json && !answer.truncated {
        if let Ok(parsed) = serde_json::from_str::<Value>(&text) {
            output.insert("responseJson".into(), parsed);
        }
    }
    output.insert("responseText".into(), Value::String(text));
    if answer.truncated {
        output.insert("responseTruncated".into(), Value::Bool(true));
    }
    output
}

/// The body as text; a character cut in two by the read limit is dropped, other invalid
/// UTF-8 becomes U+FFFD.
fn response_text(body: &[u8], truncated: bool) -> String {
    let body = &body[..body.len().min(RESPONSE_TEXT_MAX_BYTES)];
    let whole = match std::str::from_utf8(body) {
        Err(e) if truncated && e.error_len().is_none() => &body[..e.valid_up_to()],
        _ => body,
    };
    String::from_utf8_lossy(whole).into_owned()
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn kept_headers(headers: &[(String, String)]) -> Map<String, Value> {
    let mut kept = Map::new();
    for name in RESPONSE_HEADERS_KEPT {
        let values: Vec<&str> =
            headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect();
        if !values.is_empty() {
            kept.insert(name.to_owned(), Value::String(values.join(", ")));
        }
    }
    kept
}

/// `application/json` or any `+json` type, parameters aside.
fn is_json_media_type(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let media_type = media_type.to_ascii_lowercase();
    media_type == "application/json" || media_type.ends_with("+json")
}

/// An async step's waiting starts once its endpoint accepted the call.
pub(crate) fn awaiting_callback(run: &mut Run, index: usize) {
    if run.step(index).status != StepStatus::Running {
        return;
    }
    run.step_mut(index).status = StepStatus::Waiting;
    let step_id = run.step(index).step_id.clone();
    let data = json!({ "nodeType": "webhook", "mode": "async" });
    run.emit("step.awaiting-approval", Some(&step_id), data);
}

fn is_async_webhook(node: &Node) -> bool {
    matches!(&node.config, NodeConfig::Webhook(c) if c.mode == WebhookMode::Async)
}

/// An async endpoint's report for attempt `attempt` of a step. It is taken while the step
/// awaits that attempt (the call may still be in flight: an endpoint can call back before
/// it answers); the report the step already took, sent again, is a duplicate.
pub(crate) fn callback(
    run: &mut Run,
    step_id: &str,
    attempt: u32,
    report: CallbackReport,
) -> Result<Value, CommandError> {
    let not_waiting =
        || CommandError::precondition(format!("step {step_id} is not waiting for a callback"));
    let index = run.state.step_index(step_id).ok_or_else(not_waiting)?;
    let digest = report.digest();
    let step = run.step(index);
    let accepted = AcceptedCallback { attempt, digest };
    if step.callback.as_ref() == Some(&accepted) {
        return Ok(json!({ "ok": true, "duplicate": true }));
    }
    let awaits = matches!(step.status, StepStatus::Running | StepStatus::Waiting)
        && step.retry_count == attempt
        && is_async_webhook(run.node_of(index));
    if !awaits {
        return Err(not_waiting());
    }

    run.step_mut(index).callback = Some(accepted);
    let resumed = json!({ "source": "callback", "status": report.status.as_str() });
    run.emit("step.resumed", Some(step_id), resumed);
    match report.status {
        CallbackStatus::Completed => callback_completed(run, index, report.output),
        CallbackStatus::Failed => callback_failed(run, index, report),
    }
    Ok(json!({ "ok": true }))
}

fn callback_completed(run: &mut Run, index: usize, output: Map<String, Value>) {
    let must_answer = run.node_of(index).require_non_empty_output == Some(true);
    if must_answer && output.is_empty() {
        let error = ErrorInfo::new("webhook-node-empty-response", "the callback had no output");
        let data = json!({ "reason": "webhook-node-empty-response" });
        return rollup::fail_step(run, index, error, data);
    }
    let data = json!({ "nodeType": "webhook", "mode": "async", "source": "callback" });
    rollup::complete_step(run, index, output, data);
}

fn callback_failed(run: &mut Run, index: usize, report: CallbackReport) {
    let reported = report.error.unwrap_or_default();
    let code = reported.code.unwrap_or_else(|| "webhook-callback-failed".into());
    let message = reported.message.unwrap_or_else(|| "the endpoint reported a failure".into());
    run.step_mut(index).output.extend(report.output);
    let data = json!({
        "httpStatus": null,
        "latencyMs": null,
        "retryClass": "permanent",
        "source": "callback",
    });
    rollup::fail_step(run, index, ErrorInfo::new(&code, message), data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_text_drops_a_character_cut_by_the_limit() {
        let cut = "é".as_bytes()[..1].to_vec();
        assert_eq!(response_text(&[b"ab".as_slice(), &cut].concat(), true), "ab");
        assert_eq!(response_text(&[b"ab".as_slice(), &cut].concat(), false), "ab\u{fffd}");
        assert_eq!(response_text(b"\xffok", false), "\u{fffd}ok");
    }

    #[test]
    fn json_media_types() {
        let cases = [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/plain", false),
            ("application/jsonp", false),
        ];
        for (content_type, expected) in cases {
            assert_eq!(is_json_media_type(content_type), expected, "{content_type}");
        }
    }
}
