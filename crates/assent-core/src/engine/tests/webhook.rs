//! Webhook steps: the request each configuration sends, what answers make of the step, and
//! the async callback command.

use super::*;
use crate::engine::webhook::{
    answer_outcome, prepare_call, Callback, WebhookAnswer, WebhookCall, WebhookRequest,
    CALLBACK_TOKEN_HEADER,
};
use crate::model::{HttpMethod, NodeConfig};
use crate::schema::callback::parse_callback;

const SECRET: &str = "whsec_0123456789abcdef";

fn hook(id: &str, config: Value) -> Value {
    let mut config = config;
    config["url"] = json!("https://cms.example.com/hooks/x");
    json!({ "nodeId": id, "type": "webhook", "config": config })
}

/// A definition with an event target, so hmac and async nodes have a secret.
fn with_secret(nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    let mut body = definition(nodes, edges);
    body["webhookConfig"] = json!({ "url": "https://hooks.example.com/a", "secret": SECRET });
    body
}

fn single(config: Value) -> Value {
    with_secret(vec![hook("hook", config)], vec![])
}

fn callback() -> Callback {
    Callback { url: "https://assent.example.com/cb".into(), token: "tok-1".into() }
}

impl Harness {
    fn prepare(&self, node_id: &str, attempt: u32, callback: Option<&Callback>) -> WebhookCall {
        let v = &self.validated;
        prepare_call(&v.spec, &v.compiled, &self.state, &self.step_id(node_id), attempt, callback)
    }

    fn request(&self, node_id: &str, callback: Option<&Callback>) -> WebhookRequest {
        match self.prepare(node_id, 0, callback) {
            WebhookCall::Send(request) => request,
            other => panic!("no request: {other:?}"),
        }
    }

    fn work_done(&mut self, node_id: &str, attempt: u32, outcome: WorkOutcome) {
        let step_id = self.step_id(node_id);
        self.apply(Command::WorkDone { step_id, attempt, outcome });
    }

    fn callback(
        &mut self,
        node_id: &str,
        attempt: u32,
        body: Value,
    ) -> Result<Value, CommandError> {
        let report = parse_callback(&body).expect("a valid callback body");
        let step_id = self.step_id(node_id);
        self.try_apply(Command::WebhookCallback { step_id, attempt, report }).map(|e| e.result)
    }
}

fn header<'r>(request: &'r WebhookRequest, name: &str) -> Option<&'r str> {
    request.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn body_of(request: &WebhookRequest) -> Value {
    serde_json::from_slice(request.body.as_deref().expect("a body")).expect("JSON body")
}

#[test]
fn a_sync_envelope_carries_the_execution_and_the_input_and_hides_node_tokens() {
    let body = with_secret(
        vec![mock("draft"), hook("hook", json!({}))],
        vec![edge("draft", "hook", "always")],
    );
    let context = json!({ "title": "Q3", "webhookAuth": { "other": "secret-token" } });
    let h = start_with(body, context);
    let request = h.request("hook", None);
    assert_eq!((request.method, request.timeout_ms), (HttpMethod::Post, 10_000));
    assert_eq!(request.signing_secret.as_deref(), Some(SECRET));
    let sent = body_of(&request);
    let expected = json!({
        "executionId": "exec_1000_abcdefgh",
        "definitionId": "test-def",
        "definitionVersion": 1,
        "stepId": h.step_id("hook"),
        "nodeId": "hook",
        "correlationId": "corr_1000_abcdefgh",
        "attempt": 0,
        "triggerContext": { "title": "Q3" },
        "input": h.step("draft").output,
    });
    assert_eq!(sent, expected);
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "x-velt-step-id"), Some(h.step_id("hook").as_str()));
    assert_eq!(header(&request, "x-velt-attempt"), Some("0"));
    assert_eq!(header(&request, "x-velt-execution-id"), Some("exec_1000_abcdefgh"));
}

#[test]
fn a_dispatch_secret_signs_instead_of_the_definitions() {
    let mut h = start(single(json!({})));
    h.state.webhook = Some(crate::schema::executions::DispatchWebhook {
        url: "https://hooks.example.com/run".into(),
        secret: "whsec_run_secret_0001".into(),
    });
    assert_eq!(h.request("hook", None).signing_secret.as_deref(), Some("whsec_run_secret_0001"));
}

#[test]
fn token_auth_reads_the_trigger_context_and_replaces_a_same_named_header() {
    let config = json!({
        "authMode": "token", "authTokenHeader": "X-Api-Token",
        "requestHeaders": { "x-api-token": "static", "X-Tenant": "acme" },
    });
    let context = json!({ "webhookAuth": { "hook": "tok-123" } });
    let h = start_with(definition(vec![hook("hook", config.clone())], vec![]), context);
    let request = h.request("hook", None);
    assert_eq!(request.signing_secret, None);
    let tokens: Vec<&(String, String)> =
        request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("x-api-token")).collect();
    assert_eq!(tokens, [&("X-Api-Token".to_owned(), "tok-123".to_owned())]);
    assert_eq!(header(&request, "x-tenant"), Some("acme"));

    let missing =
        [json!({}), json!({ "webhookAuth": { "hook": "" } }), json!({ "webhookAuth": 1 })];
    for context in missing {
        let h = start_with(definition(vec![hook("hook", config.clone())], vec![]), context);
        let WebhookCall::Fails(WorkOutcome::PermanentFailure { code, data, .. }) =
            h.prepare("hook", 0, None)
        else {
            panic!("a missing token must fail the step");
        };
        assert_eq!(
            (code.as_str(), data),
            ("webhook-node-token-missing", json!({ "reason": code }))
        );
    }
    let context = json!({ "webhookAuth": { "hook": "line\r\nbreak" } });
    let h = start_with(definition(vec![hook("hook", config)], vec![]), context);
    let refused = h.prepare("hook", 0, None);
    assert!(matches!(refused, WebhookCall::Fails(WorkOutcome::PermanentFailure { code, .. })
        if code == "webhook-node-token-invalid"));
}

#[test]
fn get_sends_no_body_whatever_the_template() {
    for template in ["none", "envelope", "pass-through"] {
        let config = json!({ "method": "GET", "authMode": "none", "bodyTemplate": template });
        let h = start(definition(vec![hook("hook", config)], vec![]));
        let request = h.request("hook", None);
        assert_eq!((request.method, request.body.clone()), (HttpMethod::Get, None), "{template}");
        assert_eq!(header(&request, "content-type"), None);
        assert_eq!(request.signing_secret, None);
    }
}

#[test]
fn pass_through_sends_the_trigger_context_for_a_root_and_the_input_otherwise() {
    let config = json!({ "bodyTemplate": "pass-through", "mode": "async" });
    let body = with_secret(
        vec![hook("first", config.clone()), hook("second", config)],
        vec![edge("first", "second", "always")],
    );
    let mut h = start_with(body, json!({ "doc": 7, "webhookAuth": { "x": "y" } }));
    let cb = callback();
    let velt = json!({ "callbackUrl": cb.url, "callbackToken": cb.token,
                       "callbackTokenHeader": CALLBACK_TOKEN_HEADER });
    assert_eq!(body_of(&h.request("first", Some(&cb))), json!({ "doc": 7, "_velt": velt }));

    h.work_done("first", 0, WorkOutcome::AwaitingCallback);
    h.callback("first", 0, json!({ "status": "completed", "output": { "id": "p-1" } })).unwrap();
    assert_eq!(body_of(&h.request("second", Some(&cb))), json!({ "id": "p-1", "_velt": velt }));
}

#[test]
fn an_async_envelope_carries_the_callback() {
    let h = start(single(json!({ "mode": "async", "authMode": "none" })));
    let cb = callback();
    let request = h.request("hook", Some(&cb));
    assert_eq!(
        body_of(&request)["callback"],
        json!({ "url": cb.url, "token": cb.token, "tokenHeader": "x-velt-callback-token" })
    );
    assert_eq!(header(&request, "x-velt-callback-url"), Some(cb.url.as_str()));
    assert_eq!(header(&request, CALLBACK_TOKEN_HEADER), Some("tok-1"));
    let without = h.prepare("hook", 0, None);
    assert!(matches!(without, WebhookCall::Fails(WorkOutcome::PermanentFailure { code, .. })
        if code == "webhook-node-callback-unavailable"));
}

#[test]
fn only_the_running_attempt_is_called() {
    let mut h = start(single(json!({ "mode": "async" })));
    assert_eq!(h.prepare("hook", 1, Some(&callback())), WebhookCall::Stale, "a later attempt");
    h.work_done("hook", 0, WorkOutcome::AwaitingCallback);
    assert_eq!(h.prepare("hook", 0, Some(&callback())), WebhookCall::Stale, "already waiting");
}

fn answer(status: u16, content_type: &str, body: &str) -> WebhookAnswer {
    WebhookAnswer {
        status,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("set-cookie".into(), "session=1".into()),
            ("x-request-id".into(), "req-9".into()),
        ],
        body: body.as_bytes().to_vec(),
        truncated: false,
        latency_ms: 12,
    }
}

fn sync_config(extra: Value) -> crate::model::WebhookNodeConfig {
    let h = start(single(extra));
    match &h.validated.spec.nodes[0].config {
        NodeConfig::Webhook(config) => config.clone(),
        _ => unreachable!("a webhook node"),
    }
}

#[test]
fn answers_and_what_they_make_of_the_step() {
    let failure = |code: &str, status: u16, transient: bool| {
        let data = json!({ "httpStatus": status, "latencyMs": 12,
                           "retryClass": if transient { "transient" } else { "permanent" } });
        (code.to_owned(), data, transient)
    };
    let cases = [
        (json!({}), 404, failure("webhook-node-rejected", 404, false)),
        (json!({}), 400, failure("webhook-node-rejected", 400, false)),
        (json!({}), 301, failure("webhook-node-redirect", 301, false)),
        (json!({}), 429, failure("webhook-node-unavailable", 429, true)),
        (json!({}), 503, failure("webhook-node-unavailable", 503, true)),
        (
            json!({ "expectedStatusCodes": [202] }),
            200,
            failure("webhook-node-rejected", 200, false),
        ),
    ];
    for (config, status, (code, data, transient)) in cases {
        let outcome = answer_outcome(&sync_config(config), &answer(status, "text/plain", ""));
        let expected = match transient {
            true => WorkOutcome::TransientFailure { code, message: String::new(), data },
            false => WorkOutcome::PermanentFailure { code, message: String::new(), data },
        };
        assert_eq!(without_message(outcome), expected, "HTTP {status}");
    }
    let accepted = answer_outcome(
        &sync_config(json!({ "expectedStatusCodes": [409] })),
        &answer(409, "text/plain", "exists"),
    );
    assert!(matches!(accepted, WorkOutcome::Delivered { .. }));
    let async_accepted =
        answer_outcome(&sync_config(json!({ "mode": "async" })), &answer(202, "text/plain", ""));
    assert_eq!(async_accepted, WorkOutcome::AwaitingCallback);
}

fn without_message(outcome: WorkOutcome) -> WorkOutcome {
    match outcome {
        WorkOutcome::TransientFailure { code, data, .. } => {
            WorkOutcome::TransientFailure { code, message: String::new(), data }
        }
        WorkOutcome::PermanentFailure { code, data, .. } => {
            WorkOutcome::PermanentFailure { code, message: String::new(), data }
        }
        other => other,
    }
}

#[test]
fn a_sync_answer_becomes_the_output() {
    let config = sync_config(json!({}));
    let WorkOutcome::Delivered { output } =
        answer_outcome(&config, &answer(200, "application/json", r#"{"id":5}"#))
    else {
        panic!("delivered")
    };
    let expected = json!({
        "httpStatus": 200,
        "responseHeaders": { "content-type": "application/json", "x-request-id": "req-9" },
        "responseJson": { "id": 5 },
        "responseText": "{\"id\":5}",
    });
    assert_eq!(Value::Object(output), expected);

    let cases = [
        (answer(200, "text/plain", "plain"), None, "plain"),
        (answer(200, "application/json", "not json"), None, "not json"),
        (WebhookAnswer { truncated: true, ..answer(200, "application/json", "[1,") }, None, "[1,"),
    ];
    for (answer, json, text) in cases {
        let WorkOutcome::Delivered { output } = answer_outcome(&config, &answer) else {
            panic!("delivered")
        };
        assert_eq!(output.get("responseJson"), json.as_ref(), "{text}");
        assert_eq!(output["responseText"], text);
        assert_eq!(output.get("responseTruncated").is_some(), answer.truncated);
    }
}

#[test]
fn a_sync_step_completes_with_the_answer_or_fails_when_it_must_not_be_empty() {
    let cases = [(None, "", StepStatus::Completed), (Some(true), "", StepStatus::Failed)];
    for (require, text, status) in cases {
        let mut node = hook("hook", json!({}));
        if let Some(require) = require {
            node["requireNonEmptyOutput"] = json!(require);
        }
        let mut h = start(with_secret(vec![node], vec![]));
        let config = sync_config(json!({}));
        let outcome = answer_outcome(&config, &answer(200, "text/plain", text));
        h.work_done("hook", 0, outcome);
        assert_eq!(h.status_of("hook"), status, "{require:?}");
    }
    let mut h = start(single(json!({})));
    let outcome = answer_outcome(&sync_config(json!({})), &answer(201, "text/plain", "ok"));
    h.work_done("hook", 0, outcome);
    let completed = &h.events_of("step.completed")[0].data;
    assert_eq!(completed, &json!({ "nodeType": "webhook", "mode": "sync", "httpStatus": 201 }));
}

/// An async step whose endpoint accepted the call.
fn waiting(config: Value) -> Harness {
    let body =
        with_secret(vec![hook("hook", config), mock("next")], vec![edge("hook", "next", "always")]);
    let mut h = start(body);
    h.work_done("hook", 0, WorkOutcome::AwaitingCallback);
    assert_eq!(h.status_of("hook"), StepStatus::Waiting);
    let awaiting = &h.events_of("step.awaiting-approval")[0].data;
    assert_eq!(awaiting, &json!({ "nodeType": "webhook", "mode": "async" }));
    h
}

#[test]
fn a_completed_callback_completes_the_step_and_again_is_a_duplicate() {
    let mut h = waiting(json!({ "mode": "async" }));
    let report = json!({ "status": "completed", "output": { "publishedId": "p-9" } });
    assert_eq!(h.callback("hook", 0, report.clone()), Ok(json!({ "ok": true })));
    assert_eq!(h.status_of("hook"), StepStatus::Completed);
    assert_eq!(h.step("hook").output["publishedId"], "p-9");
    assert_eq!(
        h.events_of("step.completed")[0].data,
        json!({ "nodeType": "webhook", "mode": "async", "source": "callback" })
    );
    assert_eq!(h.status_of("next"), StepStatus::Completed, "the always edge fired");
    assert_eq!(h.state.status, ExecutionStatus::Completed);

    let events_before = h.events.len();
    assert_eq!(h.callback("hook", 0, report), Ok(json!({ "ok": true, "duplicate": true })));
    assert_eq!(h.events.len(), events_before, "a duplicate changes nothing");

    let other = json!({ "status": "completed", "output": { "publishedId": "p-10" } });
    let refused = h.callback("hook", 0, other).unwrap_err();
    assert_eq!(refused.status, ErrorStatus::FailedPrecondition);
}

#[test]
fn a_failed_callback_fails_the_step_with_the_endpoints_error() {
    let cases = [
        (
            json!({ "status": "failed", "error": { "code": "cms-down", "message": "503" } }),
            "cms-down",
            "503",
        ),
        (
            json!({ "status": "failed" }),
            "webhook-callback-failed",
            "the endpoint reported a failure",
        ),
    ];
    for (report, code, message) in cases {
        let mut h = waiting(json!({ "mode": "async" }));
        assert_eq!(h.callback("hook", 0, report), Ok(json!({ "ok": true })));
        assert_eq!(h.step("hook").error, Some(ErrorInfo::new(code, message)));
        let failed = &h.events_of("step.failed")[0].data;
        assert_eq!(failed["retryClass"], "permanent");
        assert_eq!(h.status_of("next"), StepStatus::Completed, "always edges fire on failure");
    }
}

#[test]
fn a_callback_may_arrive_before_the_call_is_answered() {
    let mut h = start(single(json!({ "mode": "async" })));
    assert_eq!(h.status_of("hook"), StepStatus::Running);
    h.callback("hook", 0, json!({ "status": "completed" })).unwrap();
    assert_eq!(h.status_of("hook"), StepStatus::Completed);
    h.work_done("hook", 0, WorkOutcome::AwaitingCallback);
    assert_eq!(h.status_of("hook"), StepStatus::Completed, "the late answer changes nothing");
    assert!(h.events_of("step.awaiting-approval").is_empty());
}

#[test]
fn callbacks_the_step_does_not_await_are_refused() {
    let completed = json!({ "status": "completed" });
    let mut h = waiting(json!({ "mode": "async" }));
    assert!(h.callback("hook", 1, completed.clone()).is_err(), "another attempt");

    let mut h = waiting(json!({ "mode": "async" }));
    let step_id = h.step_id("hook");
    h.apply(Command::CancelStep { step_id, actor_id: "admin".into(), reason: None });
    assert!(h.callback("hook", 0, completed.clone()).is_err(), "a cancelled step");

    let mut h = start(single(json!({})));
    assert!(h.callback("hook", 0, completed.clone()).is_err(), "a sync step");

    let mut h = start(single(json!({ "mode": "async" })));
    let report = parse_callback(&completed).unwrap();
    let unknown = Command::WebhookCallback { step_id: "nope".into(), attempt: 0, report };
    assert!(h.try_apply(unknown).is_err(), "an unknown step");
}

#[test]
fn an_empty_callback_fails_a_step_that_must_answer() {
    let body = single(json!({ "mode": "async" }));
    let mut body = body;
    body["nodes"][0]["requireNonEmptyOutput"] = json!(true);
    let mut h = start(body);
    h.work_done("hook", 0, WorkOutcome::AwaitingCallback);
    h.callback("hook", 0, json!({ "status": "completed", "output": {} })).unwrap();
    let error = h.step("hook").error.clone().map(|e| e.code);
    assert_eq!(error.as_deref(), Some("webhook-node-empty-response"));
}
