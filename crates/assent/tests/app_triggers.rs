//! App triggers over HTTP: GitHub App and Vercel integration deliveries signed as each
//! provider signs them, the installation's connection, every filter, several definitions per
//! delivery, redeliveries, the write-time connection rule, and the `assent connection`
//! commands. Signatures are computed here with the `hmac` crate, independently of the
//! server's code.

mod common;

use assent_core::model::AppProvider;
use assent_store::{NewConnection, Store};
use common::{send, Answer, TempDir, TestApp};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use std::process::Command;

const GITHUB_SECRET: &str = "github-app-secret-0123";
const VERCEL_SECRET: &str = "vercel-client-secret-4567";
const INSTALLATION: &str = "4242";
const CONFIGURATION: &str = "icfg_9Jb1";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

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
fn the_test_signer_matches_github_s_published_example() {
    let signature = hmac_hex(false, "It's a Secret to Everybody", b"Hello, World!");
    assert_eq!(
        format!("sha256={signature}"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

/// A one-node definition of document scope with these triggers.
fn definition(id: &str, triggers: Value) -> Value {
    json!({
        "definitionId": id,
        "name": format!("App demo {id}"),
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

/// One app trigger entry of the GitHub installation, with `filters` merged in.
fn github_trigger(trigger_id: &str, filters: Value) -> Value {
    let mut app = json!({ "provider": "github", "installationRef": INSTALLATION });
    app.as_object_mut().unwrap().extend(filters.as_object().unwrap().clone());
    json!({ "triggerId": trigger_id, "appTrigger": app })
}

async fn connect(app: &TestApp, workspace_id: &str, provider: AppProvider, reference: &str) {
    let webhook_secret = match provider {
        AppProvider::Github => GITHUB_SECRET,
        AppProvider::Vercel => VERCEL_SECRET,
    };
    let connection = NewConnection {
        workspace_id: workspace_id.to_owned(),
        provider,
        installation_ref: reference.to_owned(),
        webhook_secret: webhook_secret.to_owned(),
    };
    app.store.add_connection(connection, common::T0_MS).await.expect("connected");
}

/// A server whose workspace has the GitHub installation connected and these definitions.
async fn github_app_with(definitions: &[Value]) -> TestApp {
    let app = common::spawn_app().await;
    connect(&app, &app.creds.workspace_id, AppProvider::Github, INSTALLATION).await;
    for definition in definitions {
        app.call("definitions/create", definition.clone()).await.result();
    }
    app
}

/// One POST to an app-inbound endpoint.
struct Post<'a> {
    app: &'a TestApp,
    path: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn post<'a>(app: &'a TestApp, provider: &str, body: impl Into<Vec<u8>>) -> Post<'a> {
    let path = format!("/v2/workflow/app-inbound/{provider}");
    Post { app, path, body: body.into(), headers: Vec::new() }
}

/// A GitHub delivery of `event` signed with the App's secret, as GitHub sends it.
fn github<'a>(app: &'a TestApp, event: &str, delivery: &str, body: &Value) -> Post<'a> {
    let body = body.to_string().into_bytes();
    let signature = format!("sha256={}", hmac_hex(false, GITHUB_SECRET, &body));
    post(app, "github", body)
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", &signature)
        .header("user-agent", "GitHub-Hookshot/044aadd")
}

/// A Vercel delivery signed with the integration's secret, as Vercel sends it.
fn vercel<'a>(app: &'a TestApp, body: &Value) -> Post<'a> {
    let body = body.to_string().into_bytes();
    let signature = hmac_hex(true, VERCEL_SECRET, &body);
    post(app, "vercel", body).header("x-vercel-signature", &signature)
}

impl<'a> Post<'a> {
    fn header(mut self, name: &str, value: &str) -> Post<'a> {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Post<'a> {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    fn query(mut self, query: &str) -> Post<'a> {
        self.path = format!("{}?{query}", self.path);
        self
    }

    fn on_v1(mut self) -> Post<'a> {
        self.path = self.path.replacen("/v2/", "/v1/", 1);
        self
    }

    fn body(mut self, body: &[u8]) -> Post<'a> {
        self.body = body.to_vec();
        self
    }

    async fn send(self) -> Answer {
        let url = format!("{}{}", self.app.base_url, self.path);
        let mut req = self.app.http.post(url).header("content-type", "application/json");
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        send(req.body(self.body)).await
    }
}

/// Asserts an `accepted` answer; returns `(definitionId, executionId, deduplicated)` of each
/// run, in the answer's order.
fn accepted(answer: &Answer) -> Vec<(String, String, bool)> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let keys: Vec<&str> = answer.body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["ok", "code", "executions"], "{}", answer.body);
    assert_eq!((&answer.body["ok"], &answer.body["code"]), (&json!(true), &json!("accepted")));
    let executions = answer.body["executions"].as_array().expect("executions");
    let run = |e: &Value| {
        let text = |key: &str| e[key].as_str().expect(key).to_owned();
        (text("definitionId"), text("executionId"), e["deduplicated"].as_bool().unwrap())
    };
    executions.iter().map(run).collect()
}

/// The definitions that started a run, in the answer's order; empty for `no-match`.
fn started(answer: &Answer) -> Vec<String> {
    if answer.body == json!({ "ok": true, "code": "no-match" }) {
        assert_eq!(answer.status, 200);
        return Vec::new();
    }
    accepted(answer).into_iter().map(|(definition_id, _, _)| definition_id).collect()
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

async fn runs_of(app: &TestApp, definition_id: &str) -> usize {
    let listed = app.call("executions/list", json!({ "definitionId": definition_id })).await;
    listed.result()["items"].as_array().unwrap().len()
}

/// A server with the GitHub installation connected and one definition that it triggers.
async fn release_check_app() -> TestApp {
    let triggers = json!([github_trigger("pushes", json!({}))]);
    github_app_with(&[definition("release-check", triggers)]).await
}

fn push_body(repo: &str) -> Value {
    json!({
        "ref": "refs/heads/main",
        "repository": { "full_name": repo, "private": false },
        "installation": { "id": 4242 },
        "sender": { "login": "octocat" },
        "organizationId": "org-from-payload"
    })
}

#[tokio::test]
async fn a_github_delivery_starts_a_run_with_its_body_as_trigger_context() {
    let app = release_check_app().await;
    let body = push_body("acme/site");

    let answer = github(&app, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &body).send().await;
    let runs = accepted(&answer);
    let [(definition_id, execution_id, deduplicated)] = runs.as_slice() else {
        panic!("one run: {runs:?}")
    };
    assert_eq!((definition_id.as_str(), *deduplicated), ("release-check", false));

    let run = state(&app, execution_id).await;
    let mut expected = body.clone();
    expected["appTrigger"] = json!({
        "triggerId": "pushes",
        "provider": "github",
        "installationRef": INSTALLATION,
        "deliveryId": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "event": "push"
    });
    assert_eq!(run.trigger_context, expected);
    assert_eq!(
        run.idempotency_key,
        "app:github:72d3162e-cc78-11e3-81ab-4c9367dc0958:release-check"
    );
    assert_eq!(run.organization_id.as_deref(), Some("org-1"), "the definition's scope");
    assert_eq!(run.document_id.as_deref(), Some("doc-1"));

    // /v1 answers as /v2 does.
    let again = github(&app, "push", "second-delivery", &body).on_v1().send().await;
    assert_eq!(started(&again), ["release-check"]);
    assert_eq!(runs_of(&app, "release-check").await, 2);
}

#[tokio::test]
async fn tampered_forged_and_unsigned_deliveries_start_nothing() {
    let app = release_check_app().await;
    let body = push_body("acme/site");
    let signed = github(&app, "push", "d-1", &body);

    let tampered = body.to_string().replace("refs/heads/main", "refs/heads/evil");
    refused(&signed.body(tampered.as_bytes()).send().await, 401, "signature-invalid");
    let forged =
        format!("sha256={}", hmac_hex(false, "not-the-app-secret", body.to_string().as_bytes()));
    let answer = github(&app, "push", "d-1", &body).header("x-hub-signature-256", &forged).send();
    refused(&answer.await, 401, "signature-invalid");
    let sha1 = hmac_hex(true, GITHUB_SECRET, body.to_string().as_bytes());
    let answer = github(&app, "push", "d-1", &body).header("x-hub-signature-256", &sha1).send();
    refused(&answer.await, 401, "signature-invalid");
    let answer = github(&app, "push", "d-1", &body).without("x-hub-signature-256").send();
    refused(&answer.await, 401, "signature-missing");
    // GitHub's older SHA-1 header alone is not enough.
    let legacy = format!("sha1={sha1}");
    let answer = github(&app, "push", "d-1", &body)
        .without("x-hub-signature-256")
        .header("x-hub-signature", &legacy)
        .send();
    refused(&answer.await, 401, "signature-missing");
    // Signed, but not a delivery: GitHub always sends its id.
    let answer = github(&app, "push", "d-1", &body).without("x-github-delivery").send();
    refused(&answer.await, 400, "delivery-id-missing");

    assert_eq!(runs_of(&app, "release-check").await, 0);
}

#[tokio::test]
async fn unknown_installations_providers_and_bodies_are_refused() {
    let app = release_check_app().await;
    let mut unknown = push_body("acme/site");
    unknown["installation"]["id"] = json!(4243);
    refused(&github(&app, "push", "d-1", &unknown).send().await, 404, "installation-not-found");
    // A Vercel configuration of the same reference is another installation.
    let vercel_body =
        json!({ "id": "evt_1", "type": "deployment.created", "configurationId": INSTALLATION });
    refused(&vercel(&app, &vercel_body).send().await, 404, "installation-not-found");

    let mut anonymous = push_body("acme/site");
    anonymous.as_object_mut().unwrap().remove("installation");
    refused(&github(&app, "push", "d-1", &anonymous).send().await, 400, "installation-missing");
    refused(&post(&app, "gitlab", "{}").send().await, 404, "provider-not-found");
    refused(&post(&app, "github", "not json").send().await, 400, "invalid-body");
    refused(&post(&app, "github", "[1, 2]").send().await, 400, "invalid-body");
    let large = vec![b' '; 1024 * 1024 + 1];
    refused(&post(&app, "github", large).send().await, 413, "body-too-large");

    // A delivery for another workspace's installation starts only that workspace's runs.
    let other = app.other_workspace().await;
    connect(&app, &other.workspace_id, AppProvider::Github, "5151").await;
    let theirs = definition(
        "release-check",
        json!([{
            "triggerId": "theirs",
            "appTrigger": { "provider": "github", "installationRef": "5151" }
        }]),
    );
    app.call_as(&other, "definitions/create", theirs).await.result();
    let mut to_other = push_body("acme/site");
    to_other["installation"]["id"] = json!(5151);
    let runs = accepted(&github(&app, "push", "d-2", &to_other).send().await);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs_of(&app, "release-check").await, 0, "nothing in this workspace");
    let found = app.engine.execution(&other.workspace_id, &runs[0].1).await;
    assert_eq!(found.expect("in the other workspace").definition_id, "release-check");
}

#[tokio::test]
async fn vercel_deliveries_are_signed_with_hmac_sha1_and_name_their_configuration() {
    let app = common::spawn_app().await;
    connect(&app, &app.creds.workspace_id, AppProvider::Vercel, CONFIGURATION).await;
    let deploys = definition(
        "deploy-review",
        json!([{
            "triggerId": "deploys",
            "appTrigger": {
                "provider": "vercel",
                "installationRef": CONFIGURATION,
                "allowedEvents": ["deployment.succeeded"],
                "projectFilter": ["marketing-site"]
            }
        }]),
    );
    app.call("definitions/create", deploys).await.result();
    let body = json!({
        "id": "uHy3Xk2g",
        "type": "deployment.succeeded",
        "createdAt": 1_796_083_200_000_i64,
        "region": "sfo1",
        "payload": {
            "team": { "id": "team_1" },
            "project": { "id": "prj_12HK" },
            "deployment": { "id": "dpl_9", "name": "marketing-site", "url": "m.vercel.app" },
            "target": "production"
        }
    });

    // Deployment events name no configuration, so the webhook's address does.
    let address = format!("installationRef={CONFIGURATION}");
    let runs = accepted(&vercel(&app, &body).query(&address).send().await);
    assert_eq!(runs.len(), 1);
    let run = state(&app, &runs[0].1).await;
    assert_eq!(run.idempotency_key, "app:vercel:uHy3Xk2g:deploy-review");
    assert_eq!(run.trigger_context["appTrigger"]["event"], "deployment.succeeded");
    assert_eq!(run.trigger_context["payload"], body["payload"]);

    // A body that names its configuration needs no query, and wins over one.
    let mut named = body.clone();
    named["id"] = json!("second");
    named["payload"]["configuration"] = json!({ "id": CONFIGURATION });
    let runs = accepted(&vercel(&app, &named).query("installationRef=icfg_other").send().await);
    assert_eq!(runs.len(), 1);
    refused(&vercel(&app, &body).send().await, 400, "installation-missing");

    let sha256 = hmac_hex(false, VERCEL_SECRET, body.to_string().as_bytes());
    let answer = vercel(&app, &body).query(&address).header("x-vercel-signature", &sha256).send();
    refused(&answer.await, 401, "signature-invalid");
    let answer = vercel(&app, &body).query(&address).without("x-vercel-signature").send();
    refused(&answer.await, 401, "signature-missing");

    // The filters: another event, another project.
    let mut errored = body.clone();
    errored["type"] = json!("deployment.error");
    assert!(started(&vercel(&app, &errored).query(&address).send().await).is_empty());
    let mut docs = body.clone();
    docs["id"] = json!("third");
    docs["payload"]["deployment"]["name"] = json!("docs");
    assert!(started(&vercel(&app, &docs).query(&address).send().await).is_empty());
    docs["payload"]["project"]["id"] = json!("marketing-site");
    assert_eq!(started(&vercel(&app, &docs).query(&address).send().await), ["deploy-review"]);

    let mut unidentified = body.clone();
    unidentified.as_object_mut().unwrap().remove("id");
    let answer = vercel(&app, &unidentified).query(&address).send().await;
    refused(&answer, 400, "delivery-id-missing");
    assert_eq!(runs_of(&app, "deploy-review").await, 3);
}

#[tokio::test]
async fn every_filter_decides_which_definitions_run() {
    let app = github_app_with(&[
        definition("any-event", json!([github_trigger("t", json!({}))])),
        definition("pushes", json!([github_trigger("t", json!({ "allowedEvents": ["push"] }))])),
        definition(
            "opened-prs",
            json!([github_trigger("t", json!({ "allowedEvents": ["pull_request.opened"] }))]),
        ),
        definition(
            "site-repo",
            json!([github_trigger("t", json!({ "repoFilter": ["Acme/Site"] }))]),
        ),
        definition(
            "main-public",
            json!([github_trigger(
                "t",
                json!({ "payloadFilters": [
                { "path": "ref", "in": ["refs/heads/main", "refs/heads/release"] },
                { "path": "repository.private", "in": [false] }
            ] })
            )]),
        ),
        definition("projects", json!([github_trigger("t", json!({ "projectFilter": ["prj_1"] }))])),
    ])
    .await;
    let push = push_body("acme/site");
    let mut private = push_body("acme/site");
    private["repository"]["private"] = json!(true);
    let mut other_repo = push_body("acme/api");
    other_repo["ref"] = json!("refs/heads/release");
    let opened = json!({
        "action": "opened",
        "repository": { "full_name": "acme/api" },
        "installation": { "id": 4242 }
    });
    let mut closed = opened.clone();
    closed["action"] = json!("closed");

    let cases = [
        ("push", &push, vec!["any-event", "main-public", "pushes", "site-repo"]),
        ("push", &private, vec!["any-event", "pushes", "site-repo"]),
        ("push", &other_repo, vec!["any-event", "main-public", "pushes"]),
        ("pull_request", &opened, vec!["any-event", "opened-prs"]),
        ("pull_request", &closed, vec!["any-event"]),
    ];
    for (i, (event, body, expected)) in cases.into_iter().enumerate() {
        let answer = github(&app, event, &format!("delivery-{i}"), body).send().await;
        assert_eq!(started(&answer), expected, "{event} {body}");
    }

    // Nothing fires: `no-match`, and no run anywhere.
    let mut narrowed =
        definition("any-event", json!([github_trigger("t", json!({ "allowedEvents": ["push"] }))]));
    narrowed["ifVersion"] = json!(1);
    app.call("definitions/update", narrowed).await.result();
    let answer = github(&app, "pull_request", "delivery-x", &closed).send().await;
    assert_eq!(answer.body, json!({ "ok": true, "code": "no-match" }));
    assert_eq!(runs_of(&app, "projects").await, 0);
}

#[tokio::test]
async fn redeliveries_are_deduplicated_per_definition_for_24_hours() {
    let two_triggers = json!([
        github_trigger("releases", json!({ "allowedEvents": ["release"] })),
        github_trigger("pushes", json!({ "allowedEvents": ["push"] })),
        github_trigger("everything", json!({}))
    ]);
    let app = github_app_with(&[
        definition("audit", json!([github_trigger("all", json!({}))])),
        definition("deploy", two_triggers),
    ])
    .await;
    let body = push_body("acme/site");
    let send = || github(&app, "push", "delivery-1", &body).send();

    let first = accepted(&send().await);
    let names: Vec<(&str, bool)> = first.iter().map(|(d, _, dedup)| (d.as_str(), *dedup)).collect();
    assert_eq!(names, [("audit", false), ("deploy", false)], "one run per definition");
    assert_ne!(first[0].1, first[1].1);
    let deploy = state(&app, &first[1].1).await;
    assert_eq!(deploy.trigger_context["appTrigger"]["triggerId"], "pushes", "the first that fires");
    assert_eq!(deploy.idempotency_key, "app:github:delivery-1:deploy");

    app.advance_ms(DAY_MS - 1);
    let replayed = accepted(&send().await);
    let expected: Vec<_> = first.iter().map(|(d, e, _)| (d.clone(), e.clone(), true)).collect();
    assert_eq!(replayed, expected, "the same runs, deduplicated");
    let other = accepted(&github(&app, "push", "delivery-2", &body).send().await);
    assert!(other.iter().all(|(_, id, dedup)| !dedup && first.iter().all(|f| &f.1 != id)));

    app.advance_ms(1);
    let later = accepted(&send().await);
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|(_, id, dedup)| !dedup && first.iter().all(|f| &f.1 != id)));
    assert_eq!((runs_of(&app, "audit").await, runs_of(&app, "deploy").await), (3, 3));
}

#[tokio::test]
async fn a_definition_that_cannot_start_is_reported_beside_the_others() {
    let webhook_node = json!({
        "definitionId": "publish",
        "name": "Publish",
        "nodes": [{
            "nodeId": "cms-publish",
            "type": "webhook",
            "config": {
                "url": "https://cms.example.com/hooks/publish",
                "mode": "sync",
                "method": "POST",
                "authMode": "hmac",
                "timeoutMs": 10000
            }
        }],
        "edges": [],
        "triggers": [github_trigger("pushes", json!({}))]
    });
    let app = github_app_with(&[webhook_node]).await;
    let body = push_body("acme/site");
    let answer = github(&app, "push", "d-1", &body).send().await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    let refused_only = json!({
        "ok": false,
        "code": "dispatch-refused",
        "refused": [{ "definitionId": "publish", "code": "dispatch-refused" }]
    });
    assert_eq!(answer.body, refused_only);

    let audit = definition("audit", json!([github_trigger("all", json!({}))]));
    app.call("definitions/create", audit).await.result();
    let answer = github(&app, "push", "d-2", &body).send().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["executions"][0]["definitionId"], "audit");
    assert_eq!(answer.body["refused"], refused_only["refused"]);
}

#[tokio::test]
async fn definitions_may_name_only_installations_connected_to_their_workspace() {
    let app = common::spawn_app().await;
    let other = app.other_workspace().await;
    connect(&app, &other.workspace_id, AppProvider::Github, INSTALLATION).await;
    let body = definition(
        "release-check",
        json!([
            { "triggerId": "nightly", "schedule": {
                "cron": "0 3 * * *", "timezone": "UTC", "enabled": true } },
            github_trigger("pushes", json!({}))
        ]),
    );
    let message = format!(
        "appTrigger installationRef \"{INSTALLATION}\" of trigger pushes is not connected: \
         connect the github installation to this workspace first"
    );

    // Connected, but to another workspace: as good as not connected.
    let answer = app.call("definitions/create", body.clone()).await;
    assert_eq!(answer.error(400, "FAILED_PRECONDITION"), message);
    let answer = app.call("definitions/validate", body.clone()).await;
    assert_eq!(answer.error(400, "FAILED_PRECONDITION"), message);
    let get = app.call("definitions/get", json!({ "definitionId": "release-check" })).await;
    get.error(404, "NOT_FOUND");

    connect(&app, &app.creds.workspace_id, AppProvider::Vercel, CONFIGURATION).await;
    let mut connected = body.clone();
    connected["triggers"][1] = json!({
        "triggerId": "deploys",
        "appTrigger": { "provider": "vercel", "installationRef": CONFIGURATION }
    });
    assert_eq!(app.call("definitions/validate", connected.clone()).await.result()["valid"], true);
    app.call("definitions/create", connected.clone()).await.result();

    let mut update = body.clone();
    update["ifVersion"] = json!(1);
    let answer = app.call("definitions/update", update.clone()).await;
    assert_eq!(answer.error(400, "FAILED_PRECONDITION"), message);
    let answer = app.call("definitions/validate", update).await;
    assert_eq!(answer.error(400, "FAILED_PRECONDITION"), message);
    let current = app.call("definitions/get", json!({ "definitionId": "release-check" })).await;
    assert_eq!(current.result()["version"], 1, "nothing was written");

    // The other workspace may name its own installation.
    app.call_as(&other, "definitions/create", body).await.result();
}

#[tokio::test]
async fn definition_writes_change_what_a_delivery_starts_at_once() {
    let app = release_check_app().await;
    let body = push_body("acme/site");
    let mut execution_ids = Vec::new();
    let mut starts = |answer: Answer| {
        let runs = accepted(&answer);
        execution_ids.extend(runs.iter().map(|(_, id, _)| id.clone()));
        runs.into_iter().map(|(definition_id, _, _)| definition_id).collect::<Vec<_>>()
    };
    assert_eq!(starts(github(&app, "push", "d-1", &body).send().await), ["release-check"]);

    let mut update = definition("release-check", json!([]));
    update["ifVersion"] = json!(1);
    app.call("definitions/update", update).await.result();
    assert!(started(&github(&app, "push", "d-2", &body).send().await).is_empty());

    let mut back = definition("release-check", json!([github_trigger("pushes", json!({}))]));
    back["ifVersion"] = json!(2);
    app.call("definitions/update", back).await.result();
    assert_eq!(starts(github(&app, "push", "d-3", &body).send().await), ["release-check"]);

    // A definition with runs in flight cannot be deleted; the mock agent ends them.
    for id in &execution_ids {
        common::until_status(&app, id, "completed").await;
    }
    app.call("definitions/delete", json!({ "definitionId": "release-check" })).await.result();
    assert!(started(&github(&app, "push", "d-4", &body).send().await).is_empty());

    // Removing the connection leaves the definitions, but deliveries no longer find it.
    let recreated = definition("release-check", json!([github_trigger("pushes", json!({}))]));
    app.call("definitions/create", recreated).await.result();
    app.store.remove_connection(AppProvider::Github, INSTALLATION).await.unwrap();
    refused(&github(&app, "push", "d-5", &body).send().await, 404, "installation-not-found");
}

fn assent(dir: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assent"));
    cmd.env_remove("ASSENT_DATABASE_URL")
        .env_remove("ASSENT_CONNECTION_WEBHOOK_SECRET")
        .env("ASSENT_DATA_DIR", &dir.0);
    cmd
}

/// Runs the command; returns its stdout as JSON when it succeeds, its stderr when not.
fn run(cmd: &mut Command) -> Result<Value, String> {
    let out = cmd.output().expect("assent runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("stdout is one JSON value"))
    } else {
        assert!(out.stdout.is_empty(), "a failure prints nothing on stdout");
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn connection_commands_print_json_and_never_the_secret() {
    let dir = TempDir::new("connections");
    let created = run(assent(&dir).args(["workspace", "create", "--name", "acme"])).unwrap();
    let ws = created["workspaceId"].as_str().unwrap().to_owned();
    let add = |provider: &str, reference: &str| {
        let mut cmd = assent(&dir);
        cmd.args(["connection", "add", provider, "--workspace", &ws]);
        cmd.args(["--installation-ref", reference]);
        cmd
    };

    let github = run(add("github", "4242").args(["--webhook-secret", GITHUB_SECRET])).unwrap();
    let keys: Vec<&str> = github.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["workspaceId", "provider", "installationRef", "createdAt"]);
    assert_eq!((&github["workspaceId"], &github["provider"]), (&json!(ws), &json!("github")));
    assert_eq!(github["installationRef"], "4242");
    assert!(github["createdAt"].as_i64().unwrap() > 0);
    // The secret may come from the environment instead of the command line.
    let mut vercel = add("vercel", CONFIGURATION);
    vercel.env("ASSENT_CONNECTION_WEBHOOK_SECRET", VERCEL_SECRET);
    assert_eq!(run(&mut vercel).unwrap()["provider"], "vercel");

    let duplicate = run(add("github", "4242").args(["--webhook-secret", "another"])).unwrap_err();
    assert!(duplicate.contains(&format!("already connected to {ws}")), "{duplicate}");
    let mut unknown = assent(&dir);
    unknown.args(["connection", "add", "github", "--workspace", "ws_nope"]);
    unknown.args(["--installation-ref", "1", "--webhook-secret", "s"]);
    assert!(run(&mut unknown).unwrap_err().contains("not found: no workspace ws_nope"));
    let blank = run(add("github", " 7").args(["--webhook-secret", "s"])).unwrap_err();
    assert!(blank.contains("--installation-ref must be 1 to 256 characters"), "{blank}");
    let empty = run(add("github", "8").args(["--webhook-secret", ""])).unwrap_err();
    assert!(empty.contains("--webhook-secret must be 1 to 512 characters"), "{empty}");
    let gitlab = run(add("gitlab", "9").args(["--webhook-secret", "s"])).unwrap_err();
    assert!(gitlab.contains("invalid value 'gitlab'"), "{gitlab}");

    let out = assent(&dir).args(["connection", "list"]).output().unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(!listed.contains(GITHUB_SECRET) && !listed.contains(VERCEL_SECRET), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0], github);
    assert_eq!(
        (&listed[1]["provider"], &listed[1]["installationRef"]),
        (&json!("vercel"), &json!(CONFIGURATION))
    );
    let of_ws = run(assent(&dir).args(["connection", "list", "--workspace", &ws])).unwrap();
    assert_eq!(of_ws, listed);
    let nowhere = run(assent(&dir).args(["connection", "list", "--workspace", "ws_nope"]));
    assert!(nowhere.unwrap_err().contains("not found: no workspace ws_nope"));

    let remove = ["connection", "remove", "github", "--installation-ref", "4242"];
    let removed = run(assent(&dir).args(remove)).unwrap();
    assert_eq!(removed, json!({ "removed": true, "connection": github }));
    let again = run(assent(&dir).args(remove)).unwrap_err();
    assert!(again.contains("not found: no github installation \"4242\" is connected"), "{again}");
    let left = run(assent(&dir).args(["connection", "list"])).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["provider"], "vercel");
}
