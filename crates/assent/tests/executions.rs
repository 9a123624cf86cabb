//! Executions over HTTP: dispatch and its idempotency, a run driven to its end, events.

mod common;

use common::{example, get, spawn_app, step, until_status, TestApp};
use serde_json::json;

async fn create(app: &TestApp, name: &str) {
    app.call("definitions/create", example(name)).await.result();
}

#[tokio::test]
async fn a_dispatched_review_runs_to_completion() {
    let app = spawn_app().await;
    create(&app, "marketing-copy-approval").await;
    let dispatched =
        app.call("executions/dispatch", json!({"definitionId": "marketing-copy-approval"})).await;
    let result = dispatched.result();
    assert_eq!(result["deduplicated"], false);
    let execution_id = result["executionId"].as_str().unwrap().to_owned();
    assert!(execution_id.starts_with("exec_"), "{execution_id}");
    assert!(result["correlationId"].as_str().unwrap().starts_with("corr_"));

    let view = get(&app, &execution_id).await;
    assert_eq!(view["status"], "running");
    assert_eq!(step(&view, "agent-draft")["status"], "completed");
    let review = step(&view, "legal-review");
    assert_eq!(review["status"], "waiting");
    let review_step = review["stepId"].as_str().unwrap().to_owned();

    let decided = app
        .call(
            "steps/recordReviewerDecision",
            json!({"executionId": execution_id, "stepId": review_step,
                   "reviewerId": "u-legal", "decision": "approve"}),
        )
        .await;
    assert_eq!(decided.result()["recorded"], true);
    assert_eq!(decided.result()["aggregatorStatus"], "resolved");

    let view = until_status(&app, &execution_id, "completed").await;
    assert_eq!(step(&view, "agent-publish")["status"], "completed");
    assert!(view["steps"].as_array().unwrap().iter().all(|s| s["nodeId"] != "agent-revise"));

    let events = app.call("executions/getEvents", json!({"executionId": execution_id})).await;
    let types: Vec<&str> = events.result()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"execution.dispatched"));
    assert_eq!(types.last(), Some(&"execution.completed"));
    assert_eq!(events.result()["hasMore"], false);
}

#[tokio::test]
async fn a_replayed_key_returns_the_original_execution() {
    let app = spawn_app().await;
    create(&app, "sequential-signoff").await;
    let body = json!({"definitionId": "sequential-signoff", "idempotencyKey": "campaign-42"});
    let first = app.call("executions/dispatch", body.clone()).await.result().clone();
    let again = app.call("executions/dispatch", body).await.result().clone();
    assert_eq!(again["executionId"], first["executionId"]);
    assert_eq!(again["correlationId"], first["correlationId"]);
    assert_eq!(
        (first["deduplicated"].clone(), again["deduplicated"].clone()),
        (json!(false), json!(true))
    );
    let listed = app.call("executions/list", json!({})).await;
    assert_eq!(listed.result()["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn dispatch_errors_follow_the_reference() {
    let app = spawn_app().await;
    let missing = app.call("executions/dispatch", json!({"definitionId": "nope-nope"})).await;
    missing.error(404, "NOT_FOUND");

    create(&app, "sequential-signoff").await;
    app.call("definitions/delete", json!({"definitionId": "sequential-signoff"})).await.result();
    let tombstoned =
        app.call("executions/dispatch", json!({"definitionId": "sequential-signoff"})).await;
    tombstoned.error(400, "FAILED_PRECONDITION");

    let unpaired =
        json!({"definitionId": "sequential-signoff", "webhookUrl": "https://example.com/h"});
    let msg = app.call("executions/dispatch", unpaired).await.error(400, "INVALID_ARGUMENT");
    assert_eq!(msg, "webhookUrl and webhookSecret must be provided together");
}

#[tokio::test]
async fn a_definition_with_executions_in_flight_cannot_be_deleted() {
    let app = spawn_app().await;
    create(&app, "sequential-signoff").await;
    let dispatched =
        app.call("executions/dispatch", json!({"definitionId": "sequential-signoff"})).await;
    let execution_id = dispatched.result()["executionId"].clone();
    let id = json!({"definitionId": "sequential-signoff"});
    app.call("definitions/delete", id.clone()).await.error(400, "FAILED_PRECONDITION");

    let cancelled = app.call("executions/cancel", json!({"executionId": execution_id})).await;
    assert_eq!(cancelled.result()["cancelled"], true);
    app.call("definitions/delete", id).await.result();
}

#[tokio::test]
async fn the_execution_view_keeps_run_settings_to_itself() {
    let app = spawn_app().await;
    create(&app, "sequential-signoff").await;
    let body = json!({
        "definitionId": "sequential-signoff",
        "organizationId": "org-1", "documentId": "doc-1", "folderId": "folder-1",
        "triggerContext": {"assetId": "asset-1"},
        "webhookUrl": "https://hooks.example.com/assent", "webhookSecret": "whsec_0123456789abcdef",
    });
    let dispatched = app.call("executions/dispatch", body).await;
    let execution_id = dispatched.result()["executionId"].as_str().unwrap().to_owned();
    let view = get(&app, &execution_id).await;
    let keys: Vec<&str> = view.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "executionId",
            "status",
            "startedAt",
            "completedAt",
            "cancelledAt",
            "definitionId",
            "definitionVersion",
            "correlationId",
            "idempotencyKey",
            "failureReason",
            "steps"
        ]
    );
    assert_eq!(view["idempotencyKey"], format!("auto:{execution_id}"));
    assert!(!view.to_string().contains("whsec_"), "the secret never comes back: {view}");
}

#[tokio::test]
async fn a_workspace_cannot_reach_another_workspaces_executions() {
    let app = spawn_app().await;
    let other = app.other_workspace().await;
    create(&app, "sequential-signoff").await;
    let body = json!({"definitionId": "sequential-signoff", "idempotencyKey": "shared-key"});
    let mine = app.call("executions/dispatch", body.clone()).await.result().clone();
    let execution_id = mine["executionId"].as_str().unwrap().to_owned();
    let view = get(&app, &execution_id).await;
    let step_id = view["steps"][0]["stepId"].clone();
    let exec = json!({"executionId": execution_id});

    app.call_as(&other, "executions/get", exec.clone()).await.error(404, "NOT_FOUND");
    app.call_as(&other, "executions/getEvents", exec.clone()).await.error(404, "NOT_FOUND");
    app.call_as(&other, "executions/cancel", exec.clone()).await.error(404, "NOT_FOUND");
    let decision = json!({"executionId": execution_id, "stepId": step_id,
                          "reviewerId": "u-manager", "decision": "approve"});
    app.call_as(&other, "steps/recordReviewerDecision", decision).await.error(404, "NOT_FOUND");
    let listed = app.call_as(&other, "executions/list", json!({})).await;
    assert_eq!(listed.result()["items"], json!([]));

    // The same key in another workspace is another workspace's business: no definition there.
    app.call_as(&other, "executions/dispatch", body).await.error(404, "NOT_FOUND");
    assert_eq!(get(&app, &execution_id).await["status"], "running", "nothing changed");
}

#[tokio::test]
async fn work_written_in_a_form_this_build_cannot_read_is_prepared_again_not_retried_forever() {
    use assent_store::{ExecutionChanges, Store, TimerSet};
    let app = spawn_app().await;
    create(&app, "sequential-signoff").await;
    let dispatched =
        app.call("executions/dispatch", json!({"definitionId": "sequential-signoff"})).await;
    let id = dispatched.result()["executionId"].as_str().unwrap().to_owned();
    let view = get(&app, &id).await;
    let step_id = step(&view, "manager")["stepId"].as_str().unwrap().to_owned();
    assert_eq!(app.store.next_timer_due_ms().await.unwrap(), None);

    // A work timer as an older or newer build might have queued it.
    let timer = TimerSet {
        timer_key: format!("work:{step_id}"),
        due_at_ms: common::T0_MS,
        payload: json!({ "kind": "somethingElse", "stepId": step_id }),
    };
    let written = app
        .store
        .update_execution(&app.creds.workspace_id, &id, move |_| {
            let changes = ExecutionChanges { timers_set: vec![timer], ..Default::default() };
            Ok::<_, ()>((changes, ()))
        })
        .await;
    written.unwrap().unwrap();
    app.engine.wake();

    for _ in 0..300 {
        if app.store.next_timer_due_ms().await.unwrap().is_none() {
            let view = get(&app, &id).await;
            assert_eq!(step(&view, "manager")["status"], "waiting", "{view}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the unreadable work timer is still there");
}
