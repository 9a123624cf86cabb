//! Webhook nodes against a real HTTPS receiver: what each configuration sends, what each
//! answer makes of the step, retries on the injected clock, the address guard, and the
//! callback that finishes an async step.

mod common;

use common::receiver::{signature_holds, Received, Receiver, Reply, TestCa};
use common::{events, get, send, spawn_app_opts, step, step_id, until, AppOptions, TestApp, T0_MS};
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "whsec_0123456789abcdef";
const CALLBACK_PATH: &str = "/v2/workflow/webhook-inbound/callback";

/// A server that trusts the receiver's CA and may reach 127.0.0.1.
struct Setup {
    app: TestApp,
    receiver: Receiver,
    _ca: TestCa,
}

async fn setup() -> Setup {
    setup_allowing(&["127.0.0.1"]).await
}

async fn setup_allowing(allow: &[&str]) -> Setup {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = spawn_app_opts(AppOptions { ca: Some(&ca), allow, ..AppOptions::default() }).await;
    Setup { app, receiver, _ca: ca }
}

fn hook(url: &str, config: Value) -> Value {
    let mut config = config;
    config["url"] = json!(url);
    json!({ "nodeId": "hook", "type": "webhook", "config": config })
}

fn mock(id: &str) -> Value {
    json!({ "nodeId": id, "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/doc" } })
}

/// A definition whose hmac nodes sign with `SECRET`. Its events go to a name that never
/// resolves, so no delivery reaches the receiver.
fn definition(id: &str, nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    json!({
        "definitionId": id, "name": id, "nodes": nodes, "edges": edges,
        "webhookConfig": { "url": "https://events.invalid/assent", "secret": SECRET },
    })
}

/// A definition of the one webhook node.
fn single(s: &Setup, id: &str, config: Value) -> Value {
    definition(id, vec![hook(&format!("{}/hook", s.receiver.url), config)], vec![])
}

async fn start(app: &TestApp, body: Value, trigger_context: Value) -> String {
    let created = app.call("definitions/create", body).await;
    let definition_id = created.result()["definitionId"].clone();
    let data = json!({ "definitionId": definition_id, "triggerContext": trigger_context });
    let answer = app.call("executions/dispatch", data).await;
    answer.result()["executionId"].as_str().expect("executionId").to_owned()
}

async fn until_hook(app: &TestApp, id: &str, status: &str) -> Value {
    let view = until(app, id, &format!("hook {status}"), |v| {
        v["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["nodeId"] == "hook" && s["status"] == status)
    })
    .await;
    step(&view, "hook").clone()
}

/// Waits until the server's earliest timer is due at `due_at_ms`.
async fn until_next_timer(app: &TestApp, due_at_ms: i64) {
    for _ in 0..1000 {
        if app.store_next_timer().await == Some(due_at_ms) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("next timer is due at {:?}, not {due_at_ms}", app.store_next_timer().await);
}

trait NextTimer {
    async fn store_next_timer(&self) -> Option<i64>;
}

impl NextTimer for TestApp {
    async fn store_next_timer(&self) -> Option<i64> {
        use assent_store::Store;
        self.store.next_timer_due_ms().await.expect("next timer")
    }
}

async fn step_failed_data(app: &TestApp, id: &str) -> Value {
    let events = events(app, id).await;
    let failed = events.iter().find(|e| e["type"] == "step.failed").expect("step.failed");
    failed["data"].clone()
}

fn only_request(received: &[Received]) -> &Received {
    assert_eq!(received.len(), 1, "requests: {received:?}");
    &received[0]
}

// ---------------------------------------------------------------------------------------
// Sync calls
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_sync_post_sends_the_signed_envelope_and_completes_with_the_answer() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Body(200, "application/json", r#"{"id":"cms-1"}"#.into()));
    let config = json!({ "requestHeaders": { "X-Tenant": "acme" } });
    let body = definition(
        "sync-envelope",
        vec![mock("draft"), hook(&format!("{}/publish", s.receiver.url), config)],
        vec![json!({ "from": "draft", "to": "hook", "on": "always" })],
    );
    let context = json!({ "title": "Q3", "webhookAuth": { "other": "not-for-you" } });
    let id = start(&s.app, body, context).await;
    let hook_step = until_hook(&s.app, &id, "completed").await;

    let received = s.receiver.received();
    let request = only_request(&received);
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/publish"));
    assert!(signature_holds(SECRET, &request.body, request.header("x-velt-signature")));
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-tenant"), "acme");
    let hook_id = hook_step["stepId"].as_str().unwrap();
    assert_eq!(request.header("x-velt-step-id"), hook_id);
    assert_eq!(request.header("x-velt-execution-id"), id);
    assert_eq!(request.header("x-velt-attempt"), "0");

    let view = get(&s.app, &id).await;
    let envelope = request.json();
    assert_eq!(
        envelope,
        json!({
            "executionId": id,
            "definitionId": "sync-envelope",
            "definitionVersion": 1,
            "stepId": hook_id,
            "nodeId": "hook",
            "correlationId": view["correlationId"],
            "attempt": 0,
            "triggerContext": { "title": "Q3" },
            "input": step(&view, "draft")["output"],
        })
    );

    let output = &hook_step["output"];
    assert_eq!(output["httpStatus"], 200);
    assert_eq!(output["responseJson"], json!({ "id": "cms-1" }));
    assert_eq!(output["responseText"], r#"{"id":"cms-1"}"#);
    assert_eq!(output["responseHeaders"]["content-type"], "application/json");
    assert_eq!(view["status"], "completed");
}

#[tokio::test]
async fn a_get_without_auth_sends_no_body_and_keeps_a_text_answer() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Body(200, "text/plain", "pong".into()));
    let config = json!({ "method": "GET", "authMode": "none", "bodyTemplate": "none" });
    let id = start(&s.app, single(&s, "sync-get", config), json!({})).await;
    let hook_step = until_hook(&s.app, &id, "completed").await;

    let received = s.receiver.received();
    let request = only_request(&received);
    assert_eq!((request.method.as_str(), request.body.len()), ("GET", 0));
    assert_eq!(request.header("x-velt-signature"), "", "authMode none signs nothing");
    assert_eq!(request.header("content-type"), "");
    let output = &hook_step["output"];
    assert_eq!((&output["responseText"], output.get("responseJson")), (&json!("pong"), None));
}

#[tokio::test]
async fn token_auth_sends_the_dispatchs_token_and_fails_without_one() {
    let s = setup().await;
    let config = json!({ "authMode": "token", "authTokenHeader": "x-api-key",
                         "bodyTemplate": "pass-through" });
    let body = single(&s, "sync-token", config);
    let context = json!({ "doc": 42, "webhookAuth": { "hook": "tok-123" } });
    let id = start(&s.app, body.clone(), context).await;
    until_hook(&s.app, &id, "completed").await;
    let received = s.receiver.received();
    let request = only_request(&received);
    assert_eq!(request.header("x-api-key"), "tok-123");
    assert_eq!(request.header("x-velt-signature"), "");
    assert_eq!(request.json(), json!({ "doc": 42 }), "a root passes the trigger context through");

    let data = json!({ "definitionId": "sync-token", "triggerContext": { "doc": 43 } });
    let answer = s.app.call("executions/dispatch", data).await;
    let id = answer.result()["executionId"].as_str().unwrap().to_owned();
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-token-missing");
    assert_eq!(
        step_failed_data(&s.app, &id).await,
        json!({ "reason": "webhook-node-token-missing" })
    );
    s.receiver.assert_quiet(1, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn expected_status_codes_replace_the_2xx_rule() {
    let s = setup().await;
    s.receiver.reply_with(|r| match r.path.as_str() {
        "/accepts-202" => Reply::Status(202),
        _ => Reply::Status(200),
    });
    let listed = json!({ "expectedStatusCodes": [202] });
    let body = definition(
        "expected-codes",
        vec![hook(&format!("{}/accepts-202", s.receiver.url), listed.clone())],
        vec![],
    );
    let id = start(&s.app, body, json!({})).await;
    assert_eq!(until_hook(&s.app, &id, "completed").await["output"]["httpStatus"], 202);

    let body =
        definition("unlisted-200", vec![hook(&format!("{}/ok", s.receiver.url), listed)], vec![]);
    let id = start(&s.app, body, json!({})).await;
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-rejected");
}

#[tokio::test]
async fn an_empty_answer_fails_a_node_that_requires_output() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Status(204));
    let mut body = single(&s, "must-answer", json!({}));
    body["nodes"][0]["requireNonEmptyOutput"] = json!(true);
    let id = start(&s.app, body, json!({})).await;
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-empty-response");
    assert_eq!(step_failed_data(&s.app, &id).await["reason"], "webhook-node-empty-response");
}

#[tokio::test]
async fn a_4xx_answer_fails_the_step_at_once() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Status(404));
    let id = start(&s.app, single(&s, "not-found", json!({})), json!({})).await;
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-rejected");
    let data = step_failed_data(&s.app, &id).await;
    assert_eq!((&data["httpStatus"], &data["retryClass"]), (&json!(404), &json!("permanent")));
    assert!(data["latencyMs"].is_u64());
    s.receiver.assert_quiet(1, Duration::from_millis(200)).await;
    assert_eq!(s.app.store_next_timer().await, None, "no retry is set");
}

#[tokio::test]
async fn a_5xx_answer_is_retried_after_2_8_and_32_seconds_then_fails() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Status(503));
    let id = start(&s.app, single(&s, "busy", json!({})), json!({})).await;

    let mut due_at_ms = T0_MS;
    for (retry, delay_ms) in [2_000, 8_000, 32_000].into_iter().enumerate() {
        due_at_ms += delay_ms;
        until_next_timer(&s.app, due_at_ms).await;
        s.app.advance_ms(delay_ms - 1);
        s.receiver.assert_quiet(retry + 1, Duration::from_millis(150)).await;
        s.app.advance_ms(1);
        s.receiver.wait_for(retry + 2).await;
    }
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-unavailable");
    assert_eq!(hook_step["completedAt"], due_at_ms);
    let data = step_failed_data(&s.app, &id).await;
    assert_eq!((&data["httpStatus"], &data["retryClass"]), (&json!(503), &json!("transient")));

    let received = s.receiver.received();
    let attempts: Vec<&str> = received.iter().map(|r| r.header("x-velt-attempt")).collect();
    assert_eq!(attempts, ["0", "1", "2", "3"]);
    for request in &received {
        assert!(signature_holds(SECRET, &request.body, request.header("x-velt-signature")));
        assert_eq!(request.json()["attempt"].to_string(), request.header("x-velt-attempt"));
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_is_retried() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Hang);
    let id = start(&s.app, single(&s, "hangs", json!({ "timeoutMs": 1000 })), json!({})).await;
    let mut due_at_ms = T0_MS;
    for delay_ms in [2_000, 8_000, 32_000] {
        due_at_ms += delay_ms;
        until_next_timer(&s.app, due_at_ms).await;
        s.app.advance_ms(delay_ms);
    }
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-timeout");
    let data = step_failed_data(&s.app, &id).await;
    assert_eq!((&data["httpStatus"], &data["retryClass"]), (&json!(null), &json!("transient")));
    assert_eq!(s.receiver.received().len(), 4);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let s = setup().await;
    let elsewhere = format!("{}/elsewhere", s.receiver.url);
    s.receiver.reply_with(move |_| Reply::Redirect(302, elsewhere.clone()));
    let id = start(&s.app, single(&s, "redirects", json!({})), json!({})).await;
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-redirect");
    s.receiver.assert_quiet(1, Duration::from_millis(200)).await;
    assert_eq!(s.receiver.received()[0].path, "/hook");
}

#[tokio::test]
async fn an_over_large_answer_is_cut_at_64_kib() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Endless);
    let id = start(&s.app, single(&s, "endless", json!({})), json!({})).await;
    let output = until_hook(&s.app, &id, "completed").await["output"].clone();
    assert_eq!(output["responseText"].as_str().map(str::len), Some(64 * 1024));
    assert_eq!(output["responseTruncated"], true);
}

#[tokio::test]
async fn a_refused_address_fails_the_step_without_a_request() {
    let s = setup_allowing(&[]).await;
    // Public when the definition is written, loopback by the time the step calls it.
    s.app.resolver.set("receiver.test", vec!["93.184.216.34".parse().unwrap()]);
    let url = format!("https://receiver.test:{}/hook", s.receiver.addr.port());
    let body = definition("refused", vec![hook(&url, json!({}))], vec![]);
    s.app.call("definitions/create", body).await.result();
    s.app.resolver.set("receiver.test", vec!["127.0.0.1".parse().unwrap()]);
    let dispatched = s.app.call("executions/dispatch", json!({ "definitionId": "refused" })).await;
    let id = dispatched.result()["executionId"].as_str().unwrap().to_owned();
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"]["code"], "webhook-node-ssrf-blocked:loopback");
    let data = step_failed_data(&s.app, &id).await;
    assert_eq!((&data["httpStatus"], &data["retryClass"]), (&json!(null), &json!("permanent")));
    s.receiver.assert_quiet(0, Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------------------------------
// Async calls and their callbacks
// ---------------------------------------------------------------------------------------

/// POSTs a raw callback body with this token (or none).
async fn post_callback(
    app: &TestApp,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> common::Answer {
    let mut request = app.http.post(url).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("x-velt-callback-token", token);
    }
    send(request.body(body.to_owned())).await
}

/// Starts an async flow (`hook` then a mock) and waits until the step awaits its callback;
/// returns the execution id and the callback the endpoint was given.
async fn waiting(s: &Setup, definition_id: &str) -> (String, String, String) {
    s.receiver.reply_with(|_| Reply::Status(202));
    let body = definition(
        definition_id,
        vec![hook(&format!("{}/hook", s.receiver.url), json!({ "mode": "async" })), mock("next")],
        vec![json!({ "from": "hook", "to": "next", "on": "always" })],
    );
    let id = start(&s.app, body, json!({})).await;
    until_hook(&s.app, &id, "waiting").await;
    let received = s.receiver.received();
    let request = only_request(&received);
    assert!(signature_holds(SECRET, &request.body, request.header("x-velt-signature")));
    let callback = request.json()["callback"].clone();
    assert_eq!(callback["tokenHeader"], "x-velt-callback-token");
    assert_eq!(request.header("x-velt-callback-token"), callback["token"].as_str().unwrap());
    let url = callback["url"].as_str().expect("callback url").to_owned();
    let token = callback["token"].as_str().expect("callback token").to_owned();
    (id, url, token)
}

#[tokio::test]
async fn an_async_step_waits_for_its_callback_which_completes_it_once() {
    let s = setup().await;
    let (id, url, token) = waiting(&s, "async-done").await;
    assert_eq!(url, format!("{}{CALLBACK_PATH}", s.app.base_url));
    let types: Vec<Value> = events(&s.app, &id).await.iter().map(|e| e["type"].clone()).collect();
    assert!(types.contains(&json!("step.awaiting-approval")), "{types:?}");

    let report = r#"{"status": "completed", "output": {"publishedId": "p-9"}}"#;
    let answer = post_callback(&s.app, &url, Some(&token), report).await;
    assert_eq!((answer.status, &answer.body), (200, &json!({ "ok": true })));
    let hook_step = until_hook(&s.app, &id, "completed").await;
    assert_eq!(hook_step["output"], json!({ "publishedId": "p-9" }));
    let view = until(&s.app, &id, "completed", |v| v["status"] == "completed").await;
    assert_eq!(step(&view, "next")["status"], "completed");

    let again = r#"{"status":"completed","output":{"publishedId":"p-9"}}"#;
    let v1 = url.replace("/v2/", "/v1/");
    let answer = post_callback(&s.app, &v1, Some(&token), again).await;
    assert_eq!((answer.status, &answer.body), (200, &json!({ "ok": true, "duplicate": true })));

    let other = r#"{"status": "completed", "output": {"publishedId": "p-10"}}"#;
    let answer = post_callback(&s.app, &url, Some(&token), other).await;
    assert_eq!((answer.status, &answer.body["code"]), (409, &json!("step-not-waiting")));
    assert_eq!(answer.body["ok"], false);
    let hook_step = step(&get(&s.app, &id).await, "hook").clone();
    assert_eq!(hook_step["output"]["publishedId"], "p-9", "the first report stands");
}

#[tokio::test]
async fn a_failed_callback_fails_the_step() {
    let s = setup().await;
    let (id, url, token) = waiting(&s, "async-failed").await;
    let report = r#"{"status": "failed", "error": {"code": "cms-down", "message": "try later"}}"#;
    let answer = post_callback(&s.app, &url, Some(&token), report).await;
    assert_eq!((answer.status, &answer.body), (200, &json!({ "ok": true })));
    let hook_step = until_hook(&s.app, &id, "failed").await;
    assert_eq!(hook_step["error"], json!({ "code": "cms-down", "message": "try later" }));
}

#[tokio::test]
async fn callbacks_without_a_valid_token_are_refused() {
    let s = setup().await;
    let (id, url, token) = waiting(&s, "async-tokens").await;
    let report = r#"{"status": "completed"}"#;
    let forged = format!("{}0", &token[..token.len() - 1]);
    let forged = if forged == token { format!("{}1", &token[..token.len() - 1]) } else { forged };
    for bad in [None, Some(""), Some("v1.00.00"), Some(forged.as_str())] {
        let answer = post_callback(&s.app, &url, bad, report).await;
        assert_eq!(answer.status, 401, "{bad:?}");
        assert_eq!(answer.body["code"], "callback-token-invalid", "{bad:?}");
    }
    let hook_id = step_id(&get(&s.app, &id).await, "hook");
    assert_eq!(until_hook(&s.app, &id, "waiting").await["stepId"], hook_id);
}

#[tokio::test]
async fn malformed_callback_bodies_are_refused() {
    let s = setup().await;
    let (id, url, token) = waiting(&s, "async-malformed").await;
    let cases = [
        ("not json", "Malformed JSON"),
        (r#"{"status": "maybe"}"#, "Invalid enum value"),
        (r#"{"status": "completed", "output": 5}"#, "Expected object"),
        (r#"{"status": "completed", "error": {}}"#, "only allowed with status"),
    ];
    for (body, message) in cases {
        let answer = post_callback(&s.app, &url, Some(&token), body).await;
        assert_eq!((answer.status, &answer.body["code"]), (400, &json!("callback-body-invalid")));
        let said = answer.body["message"].as_str().unwrap();
        assert!(said.contains(message), "{body}: {said}");
    }
    assert_eq!(until_hook(&s.app, &id, "waiting").await["status"], "waiting");
}

#[tokio::test]
async fn a_callback_for_a_cancelled_step_is_refused() {
    let s = setup().await;
    let (id, url, token) = waiting(&s, "async-cancelled").await;
    let hook_id = step_id(&get(&s.app, &id).await, "hook");
    let cancel = json!({ "executionId": id, "stepId": hook_id, "actorId": "admin" });
    s.app.call("steps/cancel", cancel).await.result();
    let answer = post_callback(&s.app, &url, Some(&token), r#"{"status": "completed"}"#).await;
    assert_eq!((answer.status, &answer.body["code"]), (409, &json!("step-not-waiting")));
    assert_eq!(step(&get(&s.app, &id).await, "hook")["status"], "cancelled");
}

#[tokio::test]
async fn an_async_pass_through_call_carries_the_callback_under_velt() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Status(202));
    let config = json!({ "mode": "async", "bodyTemplate": "pass-through", "authMode": "none" });
    let id = start(&s.app, single(&s, "async-pass", config), json!({ "doc": 1 })).await;
    until_hook(&s.app, &id, "waiting").await;
    let received = s.receiver.received();
    let body = only_request(&received).json();
    assert_eq!(body["doc"], 1);
    let velt = &body["_velt"];
    assert_eq!(velt["callbackUrl"], format!("{}{CALLBACK_PATH}", s.app.base_url));
    assert_eq!(velt["callbackTokenHeader"], "x-velt-callback-token");
    let token = velt["callbackToken"].as_str().unwrap();
    let url = velt["callbackUrl"].as_str().unwrap();
    let answer = post_callback(&s.app, url, Some(token), r#"{"status": "completed"}"#).await;
    assert_eq!(answer.status, 200);
    until_hook(&s.app, &id, "completed").await;
}
