//! Inbound webhook triggers over HTTP: each provider's signature and event name, bearer mode,
//! replays, allowed events, the body limit, and every refusal's status and code. Signatures
//! are computed here with the `hmac` crate, independently of the server's code.

mod common;

use common::{send, Answer, TestApp};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};

const SECRET: &str = "inbound-secret-0123456789";
const DEFINITION_ID: &str = "inbound-demo";

/// Lowercase hex HMAC of `body` keyed by `secret`, with SHA-256 or (for `sha1`) SHA-1.
fn hmac_hex(sha1: bool, secret: &str, body: &[u8]) -> String {
    let digest = if sha1 {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    } else {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    };
    hex::encode(digest)
}

#[test]
fn the_test_signer_matches_github_s_documented_example() {
    let signature = hmac_hex(false, "It's a Secret to Everybody", b"Hello, World!");
    assert_eq!(signature, "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

/// A one-node definition of document scope with these triggers.
fn definition(triggers: Value) -> Value {
    json!({
        "definitionId": DEFINITION_ID,
        "name": "Inbound demo",
        "scope": { "level": "document", "organizationId": "org-1", "documentId": "doc-1" },
        "nodes": [{
            "nodeId": "check",
            "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/doc" }
        }],
        "edges": [],
        "triggers": triggers,
    })
}

async fn app_with(triggers: Value) -> TestApp {
    let app = common::spawn_app().await;
    app.call("definitions/create", definition(triggers)).await.result();
    app
}

/// One POST to the inbound trigger endpoint.
struct Post<'a> {
    app: &'a TestApp,
    version: &'a str,
    query: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn post<'a>(app: &'a TestApp, body: impl Into<Vec<u8>>) -> Post<'a> {
    Post { app, version: "v2", query: String::new(), body: body.into(), headers: Vec::new() }
}

impl<'a> Post<'a> {
    fn header(mut self, name: &str, value: &str) -> Post<'a> {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn api_key(self) -> Post<'a> {
        let key = self.app.creds.api_key.clone();
        self.header("x-velt-api-key", &key)
    }

    fn query(mut self, query: &str) -> Post<'a> {
        self.query = format!("?{query}");
        self
    }

    fn on_v1(mut self) -> Post<'a> {
        self.version = "v1";
        self
    }

    async fn send(self) -> Answer {
        let url = format!(
            "{}/{}/workflow/webhook-inbound/trigger{}",
            self.app.base_url, self.version, self.query
        );
        let mut req = self.app.http.post(url).header("content-type", "application/json");
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        send(req.body(self.body)).await
    }
}

/// Asserts a success answer (raw, no envelope); returns `(executionId, deduplicated)`.
fn accepted(answer: &Answer) -> (String, bool) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let keys: Vec<&str> = answer.body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["ok", "code", "executionId", "deduplicated"], "{}", answer.body);
    assert_eq!((&answer.body["ok"], &answer.body["code"]), (&json!(true), &json!("accepted")));
    let id = answer.body["executionId"].as_str().expect("executionId").to_owned();
    (id, answer.body["deduplicated"].as_bool().expect("deduplicated"))
}

/// Asserts a refusal with this HTTP status and code.
fn refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body, json!({ "ok": false, "code": code }), "{code}");
}

/// The execution's state as the engine keeps it (the view does not show triggerContext).
async fn state(app: &TestApp, execution_id: &str) -> assent_core::engine::ExecutionState {
    app.engine.execution(&app.creds.workspace_id, execution_id).await.expect("execution")
}

fn velt_body(trigger_id: &str, payload: Value) -> Vec<u8> {
    let body =
        json!({ "definitionId": DEFINITION_ID, "triggerId": trigger_id, "payload": payload });
    body.to_string().into_bytes()
}

fn velt_signature(body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(false, SECRET, body))
}

#[tokio::test]
async fn velt_hmac_starts_a_run_with_the_payload_and_the_definition_scope() {
    let app = app_with(json!([{
        "triggerId": "velt-hook",
        "inboundWebhook": { "authMode": "hmac", "secret": SECRET }
    }]))
    .await;
    let payload = json!({ "title": "Launch", "organizationId": "org-from-payload" });
    let body = velt_body("velt-hook", payload.clone());
    let signature = velt_signature(&body);

    let answer = post(&app, body.clone()).api_key().header("x-velt-signature", &signature).send();
    let (id, deduplicated) = accepted(&answer.await);
    assert!(!deduplicated);
    let run = state(&app, &id).await;
    assert_eq!(run.trigger_context, payload);
    assert_eq!(
        run.organization_id.as_deref(),
        Some("org-1"),
        "the definition's scope, not the payload's"
    );
    assert_eq!(run.document_id.as_deref(), Some("doc-1"));
    assert!(run.idempotency_key.starts_with("auto:"), "no source id: {}", run.idempotency_key);
    assert_eq!(common::get(&app, &id).await["definitionId"], DEFINITION_ID);

    // Without a source event id nothing is deduplicated; /v1 answers as /v2 does.
    let again = post(&app, body.clone()).on_v1().api_key().header("x-velt-signature", &signature);
    let (again_id, deduplicated) = accepted(&again.send().await);
    assert!(!deduplicated);
    assert_ne!(again_id, id);

    let tampered = velt_body("velt-hook", json!({ "title": "Launch!", "organizationId": "o" }));
    let answer = post(&app, tampered).api_key().header("x-velt-signature", &signature).send();
    refused(&answer.await, 401, "signature-invalid");
    let forged = format!("sha256={}", hmac_hex(false, "another-secret-entirely", &body));
    let answer = post(&app, body.clone()).api_key().header("x-velt-signature", &forged).send();
    refused(&answer.await, 401, "signature-invalid");
    let bare = signature.trim_start_matches("sha256=");
    let answer = post(&app, body.clone()).api_key().header("x-velt-signature", bare).send();
    refused(&answer.await, 401, "signature-invalid");
    refused(&post(&app, body).api_key().send().await, 401, "signature-missing");
}

#[tokio::test]
async fn velt_bearer_mode_compares_the_secret() {
    let app = app_with(json!([{
        "triggerId": "velt-bearer",
        "inboundWebhook": {
            "authMode": "bearer",
            "secret": SECRET,
            "payloadMapping": "wrap",
            "idempotencyBodyPath": "payload.eventId"
        }
    }]))
    .await;
    let body = velt_body("velt-bearer", json!({ "eventId": "evt-9", "n": 1 }));
    let bearer = format!("Bearer {SECRET}");

    let (id, _) =
        accepted(&post(&app, body.clone()).api_key().header("authorization", &bearer).send().await);
    let run = state(&app, &id).await;
    assert_eq!(run.trigger_context, json!({ "source": { "eventId": "evt-9", "n": 1 } }));
    assert_eq!(run.idempotency_key, "trig:velt-bearer:evt-9");

    let wrong = format!("Bearer {SECRET}x");
    let answer = post(&app, body.clone()).api_key().header("authorization", &wrong).send();
    refused(&answer.await, 401, "bearer-token-invalid");
    // A signature is no substitute for the bearer token.
    let signed =
        post(&app, body.clone()).api_key().header("x-velt-signature", &velt_signature(&body));
    refused(&signed.send().await, 401, "bearer-token-missing");
}

fn github_triggers() -> Value {
    json!([{
        "triggerId": "gh-push",
        "inboundWebhook": {
            "authMode": "hmac",
            "secret": SECRET,
            "provider": "github",
            "allowedEvents": ["push"],
            "idempotencyHeader": "x-github-delivery"
        }
    }])
}

#[tokio::test]
async fn github_pushes_start_runs_and_replays_are_deduplicated() {
    let app = app_with(github_triggers()).await;
    let body = json!({ "ref": "refs/heads/main", "repository": { "full_name": "acme/site" } });
    let body = body.to_string().into_bytes();
    let signature = format!("sha256={}", hmac_hex(false, SECRET, &body));
    let query = format!("definitionId={DEFINITION_ID}&triggerId=gh-push");
    let delivery = |body: &[u8], event: &str, delivery_id: &str| {
        post(&app, body.to_vec())
            .query(&query)
            .api_key()
            .header("x-hub-signature-256", &signature)
            .header("x-github-event", event)
            .header("x-github-delivery", delivery_id)
    };

    let (id, deduplicated) = accepted(&delivery(&body, "push", "d-1").send().await);
    assert!(!deduplicated);
    let run = state(&app, &id).await;
    assert_eq!(run.trigger_context, serde_json::from_slice::<Value>(&body).unwrap());
    assert_eq!(run.idempotency_key, "trig:gh-push:d-1");
    assert_eq!(common::get(&app, &id).await["idempotencyKey"], "trig:gh-push:d-1");

    let (replayed, deduplicated) = accepted(&delivery(&body, "push", "d-1").send().await);
    assert_eq!((replayed.as_str(), deduplicated), (id.as_str(), true));
    let (other, deduplicated) = accepted(&delivery(&body, "push", "d-2").send().await);
    assert!(other != id && !deduplicated);

    let ignored = delivery(&body, "issues", "d-3").send().await;
    refused(&ignored, 200, "event-ignored");
    let tampered = body.iter().map(|&b| if b == b'm' { b'M' } else { b }).collect::<Vec<_>>();
    refused(&delivery(&tampered, "push", "d-4").send().await, 401, "signature-invalid");

    // An event name that cannot be found is not allowed (fail closed).
    let no_event = post(&app, body.clone())
        .query(&query)
        .api_key()
        .header("x-hub-signature-256", &signature)
        .header("x-github-delivery", "d-5");
    refused(&no_event.send().await, 200, "event-ignored");
    let listed = app.call("executions/list", json!({ "definitionId": DEFINITION_ID })).await;
    assert_eq!(listed.result()["items"].as_array().unwrap().len(), 2, "d-1 and d-2 only");
}

#[tokio::test]
async fn trigger_keys_deduplicate_for_24_hours() {
    let app = app_with(github_triggers()).await;
    let body = b"{\"ref\":\"main\"}".to_vec();
    let signature = format!("sha256={}", hmac_hex(false, SECRET, &body));
    let query = format!("definitionId={DEFINITION_ID}&triggerId=gh-push");
    let send = || {
        post(&app, body.clone())
            .query(&query)
            .api_key()
            .header("x-hub-signature-256", &signature)
            .header("x-github-event", "push")
            .header("x-github-delivery", "same-delivery")
            .send()
    };
    let (first, _) = accepted(&send().await);
    app.advance_ms(24 * 60 * 60 * 1000 - 1);
    assert_eq!(accepted(&send().await), (first.clone(), true));
    app.advance_ms(1);
    let (later, deduplicated) = accepted(&send().await);
    assert!(later != first && !deduplicated, "after 24 hours the same delivery starts a new run");
}

#[tokio::test]
async fn vercel_signs_with_sha1_and_names_events_in_a_header_or_the_body() {
    let app = app_with(json!([{
        "triggerId": "vercel-deploys",
        "inboundWebhook": {
            "authMode": "hmac",
            "secret": SECRET,
            "provider": "vercel",
            "allowedEvents": ["deployment.succeeded"],
            "idempotencyBodyPath": "id",
            "payloadMapping": "wrap"
        }
    }]))
    .await;
    let query = format!("definitionId={DEFINITION_ID}&triggerId=vercel-deploys");
    let deploy = |id: &str, body_type: &str, header_type: Option<&str>| {
        let body = json!({ "id": id, "type": body_type, "payload": { "url": "site.vercel.app" } });
        let body = body.to_string().into_bytes();
        let signature = hmac_hex(true, SECRET, &body);
        let mut req =
            post(&app, body).query(&query).api_key().header("x-vercel-signature", &signature);
        if let Some(event) = header_type {
            req = req.header("x-vercel-deployment-event", event);
        }
        req
    };

    let by_header = deploy("dpl-1", "deployment.created", Some("deployment.succeeded"));
    let (id, _) = accepted(&by_header.send().await);
    let run = state(&app, &id).await;
    assert_eq!(run.trigger_context["source"]["id"], "dpl-1", "wrapped: {}", run.trigger_context);
    assert_eq!(run.idempotency_key, "trig:vercel-deploys:dpl-1");

    let (id, _) = accepted(&deploy("dpl-2", "deployment.succeeded", None).send().await);
    assert_eq!(state(&app, &id).await.idempotency_key, "trig:vercel-deploys:dpl-2");
    let error = deploy("dpl-3", "deployment.error", None).send().await;
    refused(&error, 200, "event-ignored");
    let header_wins = deploy("dpl-4", "deployment.succeeded", Some("deployment.canceled"));
    refused(&header_wins.send().await, 200, "event-ignored");

    // SHA-256 in Vercel's header is refused, and so is a prefixed SHA-1.
    let body = b"{\"id\":\"dpl-5\",\"type\":\"deployment.succeeded\"}".to_vec();
    for signature in
        [hmac_hex(false, SECRET, &body), format!("sha1={}", hmac_hex(true, SECRET, &body))]
    {
        let answer = post(&app, body.clone())
            .query(&query)
            .api_key()
            .header("x-vercel-signature", &signature)
            .send()
            .await;
        refused(&answer, 401, "signature-invalid");
    }
}

#[tokio::test]
async fn custom_providers_use_their_own_header_algorithm_prefix_and_event_header() {
    let app = app_with(json!([{
        "triggerId": "acme-orders",
        "inboundWebhook": {
            "authMode": "hmac",
            "secret": SECRET,
            "provider": "custom",
            "signatureHeader": "X-Acme-Signature",
            "signatureAlgorithm": "sha256",
            "signaturePrefix": "v1=",
            "eventNameHeader": "X-Acme-Event",
            "allowedEvents": ["order.paid"]
        }
    }]))
    .await;
    let body = b"{\"order\":{\"id\":7,\"total\":12.5}}".to_vec();
    let good = format!("v1={}", hmac_hex(false, SECRET, &body));
    let query = format!("definitionId={DEFINITION_ID}&triggerId=acme-orders");
    let order = |signature: &str, event: &str| {
        post(&app, body.clone())
            .query(&query)
            .api_key()
            .header("x-acme-signature", signature)
            .header("x-acme-event", event)
            .send()
    };

    let (id, _) = accepted(&order(&good, "order.paid").await);
    assert_eq!(
        state(&app, &id).await.trigger_context,
        json!({ "order": { "id": 7, "total": 12.5 } })
    );
    refused(&order(&good, "order.refunded").await, 200, "event-ignored");
    let sha1 = format!("v1={}", hmac_hex(true, SECRET, &body));
    refused(&order(&sha1, "order.paid").await, 401, "signature-invalid");
    let unprefixed = hmac_hex(false, SECRET, &body);
    refused(&order(&unprefixed, "order.paid").await, 401, "signature-invalid");
}

#[tokio::test]
async fn api_keys_come_from_the_header_or_else_the_query() {
    let app = app_with(json!([{
        "triggerId": "velt-hook",
        "inboundWebhook": { "authMode": "hmac", "secret": SECRET }
    }]))
    .await;
    let body = velt_body("velt-hook", json!({}));
    let signature = velt_signature(&body);
    let signed = || post(&app, body.clone()).header("x-velt-signature", &signature);
    let key = app.creds.api_key.clone();

    accepted(&signed().query(&format!("apiKey={key}")).send().await);
    accepted(&signed().api_key().query("apiKey=ak_wrong").send().await);
    let header_wins = signed().header("x-velt-api-key", "ak_wrong").query(&format!("apiKey={key}"));
    refused(&header_wins.send().await, 401, "api-key-invalid");
    refused(&signed().send().await, 401, "api-key-missing");
    refused(&signed().query("apiKey=").send().await, 401, "api-key-missing");

    // Another workspace's key does not reach this workspace's definition.
    let other = app.other_workspace().await;
    let foreign = signed().header("x-velt-api-key", &other.api_key);
    refused(&foreign.send().await, 404, "definition-not-found");
}

#[tokio::test]
async fn refusals_have_a_status_and_a_code() {
    let app = app_with(json!([
        { "triggerId": "velt-hook", "inboundWebhook": { "authMode": "hmac", "secret": SECRET } },
        {
            "triggerId": "nightly",
            "schedule": { "cron": "0 3 * * *", "timezone": "UTC", "enabled": true }
        }
    ]))
    .await;
    let signed = |body: Vec<u8>| {
        let signature = velt_signature(&body);
        post(&app, body).api_key().header("x-velt-signature", &signature)
    };

    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024));
    let answer = post(&app, oversized).api_key().send().await;
    refused(&answer, 413, "body-too-large");
    for malformed in ["[1,2]", "\"text\"", "not json", ""] {
        refused(&post(&app, malformed).api_key().send().await, 400, "invalid-body");
    }
    let unnamed = json!({ "definitionId": DEFINITION_ID, "payload": {} }).to_string();
    refused(&signed(unnamed.into_bytes()).send().await, 400, "trigger-unnamed");

    let unknown_definition = json!({ "definitionId": "nope", "triggerId": "velt-hook" });
    let answer = signed(unknown_definition.to_string().into_bytes()).send().await;
    refused(&answer, 404, "definition-not-found");
    for trigger_id in ["nope", "nightly"] {
        let answer = signed(velt_body(trigger_id, json!({}))).send().await;
        refused(&answer, 404, "trigger-not-found");
    }
    let not_an_object = signed(velt_body("velt-hook", json!([1]))).send().await;
    refused(&not_an_object, 400, "payload-not-object");

    // The query names the trigger when the body does too.
    let named_twice = signed(velt_body("nope", json!({}))).query("triggerId=velt-hook");
    accepted(&named_twice.send().await);

    app.call("definitions/delete", json!({ "definitionId": DEFINITION_ID })).await.result();
    let answer = signed(velt_body("velt-hook", json!({}))).send().await;
    refused(&answer, 410, "definition-deleted");
}
