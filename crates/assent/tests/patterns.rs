//! Every documented pattern driven over HTTP as a client drives it: sequential sign-off,
//! group policies, collective branches, revision loops, SLA breaches, cancels and resolves;
//! agent runs against a real local agent runner; and reviewers or dispatches that race.
//! Deadlines are reached by moving the server's clock, never by sleeping.

mod common;

use assent_store::Store;
use common::{
    events, example, get, spawn_app, spawn_app_with, step, step_id, steps_of, trail, until,
    until_status, TestApp, T0_MS,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Definitions and calls
// ---------------------------------------------------------------------------------------

fn human(id: &str, reviewers: &[(&str, bool)]) -> Value {
    let reviewers: Vec<Value> =
        reviewers.iter().map(|(u, m)| json!({ "userId": u, "mandatory": m })).collect();
    json!({ "nodeId": id, "type": "human", "config": { "reviewers": reviewers } })
}

fn mock(id: &str) -> Value {
    json!({ "nodeId": id, "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/doc" } })
}

fn edge(from: &str, to: &str, on: &str) -> Value {
    json!({ "from": from, "to": to, "on": on })
}

fn to_group(from: &str, group_id: &str) -> Value {
    json!({ "from": from, "to": { "kind": "group", "groupId": group_id } })
}

fn from_group(group_id: &str, to: &str, on: &str) -> Value {
    json!({ "from": { "kind": "group", "groupId": group_id }, "to": to, "on": on })
}

/// A custom edge whose predicate is `step.status == status`.
fn on_status(from: &str, to: &str, status: &str) -> Value {
    let when = json!({ "op": "eq", "args": [{ "var": "step.status" }, status] }).to_string();
    json!({ "from": from, "to": to, "on": "custom", "when": when })
}

fn definition(id: &str, nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    json!({ "definitionId": id, "name": id, "nodes": nodes, "edges": edges })
}

async fn create(app: &TestApp, body: Value) -> String {
    let created = app.call("definitions/create", body).await;
    created.result()["definitionId"].as_str().expect("definitionId").to_owned()
}

async fn dispatch_with(app: &TestApp, data: Value) -> String {
    let answer = app.call("executions/dispatch", data).await;
    let execution_id = answer.result()["executionId"].as_str().expect("executionId").to_owned();
    assert_execution_id(&execution_id);
    execution_id
}

async fn dispatch(app: &TestApp, definition_id: &str) -> String {
    dispatch_with(app, json!({ "definitionId": definition_id })).await
}

/// Creates the definition and dispatches it once.
async fn start(app: &TestApp, body: Value) -> String {
    let definition_id = create(app, body).await;
    dispatch(app, &definition_id).await
}

async fn decide_with_reason(
    app: &TestApp,
    execution_id: &str,
    step_id: &str,
    reviewer_id: &str,
    decision: &str,
    reason: &str,
) -> Value {
    let data = json!({ "executionId": execution_id, "stepId": step_id,
                       "reviewerId": reviewer_id, "decision": decision, "reason": reason });
    app.call("steps/recordReviewerDecision", data).await.result().clone()
}

async fn decide(
    app: &TestApp,
    execution_id: &str,
    step_id: &str,
    reviewer_id: &str,
    decision: &str,
) -> Value {
    let reason = format!("{reviewer_id} says {decision}");
    decide_with_reason(app, execution_id, step_id, reviewer_id, decision, &reason).await
}

/// Decides on the one step of `node_id`; returns the view once the engine has moved on.
async fn decide_node(
    app: &TestApp,
    execution_id: &str,
    node_id: &str,
    reviewer_id: &str,
    decision: &str,
) -> Value {
    let view = get(app, execution_id).await;
    let step = step_id(&view, node_id);
    let result = decide(app, execution_id, &step, reviewer_id, decision).await;
    assert_eq!(result["recorded"], true, "{result}");
    get(app, execution_id).await
}

async fn resolve(
    app: &TestApp,
    execution_id: &str,
    step_id: &str,
    action: &str,
    actor_id: &str,
    extra: Value,
) -> common::Answer {
    let mut data = json!({ "executionId": execution_id, "stepId": step_id,
                           "action": action, "actorId": actor_id });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    app.call("steps/resolve", data).await
}

/// `exec_<epoch ms>_<8 chars [a-z0-9]>` (DECISIONS §3); the clock stands at T0 at dispatch.
fn assert_execution_id(id: &str) {
    let suffix = id.strip_prefix(&format!("exec_{T0_MS}_")).unwrap_or_else(|| panic!("{id}"));
    assert!(is_lower_alnum(suffix, 8), "{id}");
}

/// `step_<nodeId>_<epoch ms>_<6 chars>` (DECISIONS §3).
fn assert_root_step_id(id: &str, node_id: &str) {
    let prefix = format!("step_{node_id}_{T0_MS}_");
    let suffix = id.strip_prefix(&prefix).unwrap_or_else(|| panic!("{id} is not {prefix}*"));
    assert!(is_lower_alnum(suffix, 6), "{id}");
}

fn is_lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn statuses(view: &Value) -> Vec<(String, String)> {
    let steps = view["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|s| {
            (s["nodeId"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect()
}

fn events_of<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == event_type).collect()
}

/// Ids, sequence numbers and correlation of a run's events hang together.
fn assert_event_envelope(events: &[Value], execution_id: &str, correlation_id: &Value) {
    let mut last_seq = 0;
    for event in events {
        let seq = event["seq"].as_u64().expect("seq");
        assert!(seq > last_seq, "seq not increasing: {event}");
        last_seq = seq;
        assert_eq!(event["eventId"], format!("evt_{execution_id}_{seq}"));
        assert_eq!(&event["correlationId"], correlation_id);
    }
}

/// Gives the timer loop a moment, for checks that something did NOT happen.
async fn moment() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

// ---------------------------------------------------------------------------------------
// Sequential sign-off
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sequential_signoff_approved_at_every_stage_completes() {
    let app = spawn_app().await;
    create(&app, example("sequential-signoff")).await;
    let answer =
        app.call("executions/dispatch", json!({ "definitionId": "sequential-signoff" })).await;
    let correlation_id = answer.result()["correlationId"].clone();
    let id = answer.result()["executionId"].as_str().unwrap().to_owned();

    let view = get(&app, &id).await;
    assert_eq!(view["status"], "running");
    assert_eq!(statuses(&view), pairs(&[("manager", "waiting")]));
    let manager = step_id(&view, "manager");
    assert_root_step_id(&manager, "manager");

    let view = decide_node(&app, &id, "manager", "u-manager", "approve").await;
    let legal = format!("{manager}__to__legal");
    assert_eq!(step_id(&view, "legal"), legal);
    assert_eq!(step(&view, "legal")["status"], "waiting");

    decide_node(&app, &id, "legal", "u-legal", "approve").await;
    let view = until_status(&app, &id, "completed").await;
    let publish = format!("{legal}__to__publish");
    assert_eq!(step_id(&view, "publish"), publish);
    assert_eq!(
        statuses(&view),
        pairs(&[("manager", "completed"), ("legal", "completed"), ("publish", "completed")])
    );
    assert_eq!(step(&view, "legal")["output"]["decision"], "approve");
    assert_eq!(view["failureReason"], Value::Null);

    let events = events(&app, &id).await;
    assert_event_envelope(&events, &id, &correlation_id);
    assert_eq!(
        trail(&events),
        [
            "execution.dispatched -".to_owned(),
            format!("step.awaiting-approval {manager}"),
            format!("step.completed {manager}"),
            format!("step.awaiting-approval {legal}"),
            format!("step.completed {legal}"),
            format!("step.completed {publish}"),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(
        events[0]["data"],
        json!({ "definitionId": "sequential-signoff", "definitionVersion": 1,
                "rootStepIds": [manager] })
    );
    assert_eq!(
        events[1]["data"],
        json!({ "waitingForReviewers": 1, "mandatoryCount": 1,
                "resumeKey": format!("human:{manager}") })
    );
    assert_eq!(
        events[2]["data"],
        json!({ "aggregatorStatus": "resolved", "nodeType": "human", "decision": "approve" })
    );
    assert_eq!(
        events[5]["data"],
        json!({ "agentId": "__mock__", "synthetic": true, "decision": "approve" })
    );
}

#[tokio::test]
async fn sequential_signoff_rejected_at_the_second_stage_takes_its_reject_route() {
    let app = spawn_app().await;
    create(&app, example("sequential-signoff")).await;
    let id = dispatch(&app, "sequential-signoff").await;
    let manager = step_id(&get(&app, &id).await, "manager");
    decide_node(&app, &id, "manager", "u-manager", "approve").await;
    let legal = format!("{manager}__to__legal");
    let result = decide_with_reason(&app, &id, &legal, "u-legal", "reject", "claims").await;
    assert_eq!(
        result,
        json!({ "recorded": true, "aggregatorStatus": "rejected", "resumeScheduled": true,
                "rejectionReason": "claims" })
    );

    let view = until_status(&app, &id, "completed").await;
    let rejected = format!("{legal}__to__notify-rejected");
    assert_eq!(step_id(&view, "notify-rejected"), rejected);
    assert_eq!(
        statuses(&view),
        pairs(&[
            ("manager", "completed"),
            ("legal", "completed"),
            ("notify-rejected", "completed")
        ])
    );
    let output = &step(&view, "legal")["output"];
    assert_eq!(
        (&output["decision"], &output["rejectedBy"], &output["rejectorMandatory"]),
        (&json!("reject"), &json!("u-legal"), &json!(true))
    );
    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events)[4..],
        [
            format!("step.completed {legal}"),
            format!("step.completed {rejected}"),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(events[4]["data"]["decision"], "reject");
}

// ---------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------

/// `start` feeds group `g` of human members `m1..m<n>` (reviewer `u<i>` each).
fn grouped(id: &str, members: usize, group: Value, edges: Vec<Value>) -> Value {
    let mut nodes = vec![mock("start")];
    let mut member_ids = Vec::new();
    for i in 1..=members {
        nodes.push(human(&format!("m{i}"), &[(&format!("u{i}"), true)]));
        member_ids.push(format!("m{i}"));
    }
    nodes.extend([mock("next"), mock("back")]);
    let mut all_edges = vec![to_group("start", "g")];
    all_edges.extend(edges);
    let mut body = definition(id, nodes, all_edges);
    let mut group = group;
    group["groupId"] = json!("g");
    group["memberNodeIds"] = json!(member_ids);
    group["expectedSteps"] = json!(members);
    body["groups"] = json!([group]);
    body
}

/// Each member routes approve to `next` and reject to `back`.
fn member_edges(members: usize) -> Vec<Value> {
    (1..=members)
        .flat_map(|i| {
            let m = format!("m{i}");
            [edge(&m, "next", "approve"), edge(&m, "back", "reject")]
        })
        .collect()
}

#[tokio::test]
async fn wait_all_members_to_one_target_make_one_downstream_step_each() {
    let app = spawn_app().await;
    let group = json!({ "quorum": 2, "onQuorumMet": "waitAll" });
    let id = start(&app, grouped("wait-all", 2, group, member_edges(2))).await;
    let view = get(&app, &id).await;
    let start_step = step_id(&view, "start");
    assert_root_step_id(&start_step, "start");
    let (m1, m2) = (format!("{start_step}__to__m1"), format!("{start_step}__to__m2"));
    assert_eq!((step_id(&view, "m1"), step_id(&view, "m2")), (m1.clone(), m2.clone()));
    assert_eq!(step(&view, "m1")["groupId"], "g");

    decide_node(&app, &id, "m1", "u1", "approve").await;
    let view = decide_node(&app, &id, "m2", "u2", "approve").await;
    assert_eq!(view["status"], "completed");
    let nexts: Vec<&Value> = steps_of(&view, "next").iter().map(|s| &s["stepId"]).collect();
    assert_eq!(nexts, [&json!(format!("{m1}__to__next")), &json!(format!("{m2}__to__next"))]);
    assert!(steps_of(&view, "back").is_empty());

    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events),
        [
            "execution.dispatched -".to_owned(),
            format!("step.completed {start_step}"),
            format!("step.awaiting-approval {m1}"),
            format!("step.awaiting-approval {m2}"),
            format!("step.completed {m1}"),
            format!("step.completed {m1}__to__next"),
            format!("step.completed {m2}"),
            format!("step.completed {m2}__to__next"),
            "group.quorum-met -".to_owned(),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(
        events[8]["data"],
        json!({ "groupId": "g", "total": 2, "quorum": 2, "completedTotal": 2, "expectedSteps": 2 })
    );
}

#[tokio::test]
async fn cancel_on_quorum_cancels_the_open_siblings() {
    let app = spawn_app().await;
    let group = json!({ "quorum": 1, "onQuorumMet": "cancelOnQuorum" });
    let id = start(&app, grouped("cancel-on-quorum", 3, group, member_edges(3))).await;
    let view = decide_node(&app, &id, "m2", "u2", "approve").await;

    assert_eq!(view["status"], "completed");
    let m2 = step_id(&view, "m2");
    assert_eq!(step_id(&view, "next"), format!("{m2}__to__next"));
    let expected = [
        ("start", "completed"),
        ("m1", "cancelled"),
        ("m2", "completed"),
        ("m3", "cancelled"),
        ("next", "completed"),
    ];
    assert_eq!(statuses(&view), pairs(&expected));

    let events = events(&app, &id).await;
    let (m1, m3) = (step_id(&view, "m1"), step_id(&view, "m3"));
    assert_eq!(
        trail(&events)[5..],
        [
            format!("step.completed {m2}"),
            format!("step.completed {m2}__to__next"),
            "group.quorum-met -".to_owned(),
            format!("step.cancelled {m1}"),
            format!("step.cancelled {m3}"),
            "execution.completed -".to_owned(),
        ]
    );
    let quorum = json!({ "actorId": "system:group-quorum", "reason": "group-quorum-met" });
    assert_eq!((&events[8]["data"], &events[9]["data"]), (&quorum, &quorum));
    assert_eq!(
        events[7]["data"],
        json!({ "groupId": "g", "total": 1, "quorum": 1, "completedTotal": 1, "expectedSteps": 3 })
    );

    // A reviewer of a cancelled sibling is too late.
    let late = decide(&app, &id, &m1, "u1", "approve").await;
    assert_eq!((&late["recorded"], &late["reason"]), (&json!(false), &json!("already-terminal")));
}

#[tokio::test]
async fn join_on_quorum_makes_one_group_successor_and_cancels_the_rest() {
    let app = spawn_app().await;
    create(&app, example("parallel-quorum")).await;
    let id = dispatch(&app, "parallel-quorum").await;
    let draft = step_id(&get(&app, &id).await, "draft");
    assert_eq!(step_id(&get(&app, &id).await, "legal"), format!("{draft}__to__legal"));

    decide_node(&app, &id, "brand", "u-brand", "approve").await;
    let view = decide_node(&app, &id, "legal", "u-legal", "approve").await;
    assert_eq!(view["status"], "completed");
    let publish = step(&view, "publish");
    assert_eq!(publish["stepId"], "group_reviewers__to__publish");
    assert_eq!(publish["groupId"], Value::Null);
    let expected = [
        ("draft", "completed"),
        ("legal", "completed"),
        ("brand", "completed"),
        ("ops", "cancelled"),
        ("publish", "completed"),
    ];
    assert_eq!(statuses(&view), pairs(&expected));

    let events = events(&app, &id).await;
    let (legal, ops) = (step_id(&view, "legal"), step_id(&view, "ops"));
    assert_eq!(
        trail(&events)[6..],
        [
            format!("step.completed {legal}"),
            "group.quorum-met -".to_owned(),
            format!("step.cancelled {ops}"),
            "step.completed group_reviewers__to__publish".to_owned(),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(
        events[7]["data"],
        json!({ "groupId": "reviewers", "total": 2, "quorum": 2, "completedTotal": 2,
                "expectedSteps": 3 })
    );
    assert_eq!(
        events[8]["data"],
        json!({ "actorId": "system:group-quorum", "reason": "group-quorum-met" })
    );
}

#[tokio::test]
async fn a_required_member_gates_the_quorum() {
    let app = spawn_app().await;
    create(&app, example("parallel-quorum")).await;
    let id = dispatch(&app, "parallel-quorum").await;
    decide_node(&app, &id, "brand", "u-brand", "approve").await;
    let view = decide_node(&app, &id, "ops", "u-ops", "approve").await;

    // Two approvals reach the number, but legal is required.
    assert_eq!(view["status"], "running");
    assert_eq!(step(&view, "legal")["status"], "waiting");
    assert!(steps_of(&view, "publish").is_empty());
    assert!(events_of(&events(&app, &id).await, "group.quorum-met").is_empty());

    let view = decide_node(&app, &id, "legal", "u-legal", "approve").await;
    assert_eq!(view["status"], "completed");
    assert_eq!(step(&view, "publish")["stepId"], "group_reviewers__to__publish");
    let events = events(&app, &id).await;
    let met = events_of(&events, "group.quorum-met");
    assert_eq!(met.len(), 1);
    assert_eq!(met[0]["data"]["total"], 3);
    assert!(events_of(&events, "step.cancelled").is_empty());
}

#[tokio::test]
async fn a_quorum_lost_to_a_required_rejection_takes_the_reject_route() {
    let app = spawn_app().await;
    create(&app, example("parallel-quorum")).await;
    let id = dispatch(&app, "parallel-quorum").await;
    let view = decide_node(&app, &id, "legal", "u-legal", "reject").await;

    assert_eq!(view["status"], "completed");
    assert_eq!(step(&view, "revise")["stepId"], "group_reviewers__to__revise");
    assert!(steps_of(&view, "publish").is_empty());
    let expected = [
        ("draft", "completed"),
        ("legal", "completed"),
        ("brand", "cancelled"),
        ("ops", "cancelled"),
        ("revise", "completed"),
    ];
    assert_eq!(statuses(&view), pairs(&expected));

    let events = events(&app, &id).await;
    let (legal, brand, ops) =
        (step_id(&view, "legal"), step_id(&view, "brand"), step_id(&view, "ops"));
    assert_eq!(
        trail(&events)[5..],
        [
            format!("step.completed {legal}"),
            format!("step.cancelled {brand}"),
            format!("step.cancelled {ops}"),
            "step.completed group_reviewers__to__revise".to_owned(),
            "execution.completed -".to_owned(),
        ]
    );
    let lost = json!({ "actorId": "system:group-quorum", "reason": "group-quorum-unreachable" });
    assert_eq!((&events[6]["data"], &events[7]["data"]), (&lost, &lost));
    assert!(events_of(&events, "group.quorum-met").is_empty());
}

#[tokio::test]
async fn a_quorum_lost_by_count_takes_the_reject_route() {
    let app = spawn_app().await;
    create(&app, example("parallel-quorum")).await;
    let id = dispatch(&app, "parallel-quorum").await;
    let view = decide_node(&app, &id, "brand", "u-brand", "reject").await;
    assert_eq!(view["status"], "running");
    assert_eq!(step(&view, "legal")["status"], "waiting");
    assert!(steps_of(&view, "revise").is_empty());

    let view = decide_node(&app, &id, "ops", "u-ops", "reject").await;
    assert_eq!(view["status"], "completed");
    assert_eq!(step(&view, "legal")["status"], "cancelled");
    assert_eq!(step(&view, "revise")["stepId"], "group_reviewers__to__revise");
    let events = events(&app, &id).await;
    let cancelled = events_of(&events, "step.cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["stepId"], step_id(&view, "legal"));
    assert_eq!(cancelled[0]["data"]["reason"], "group-quorum-unreachable");
}

fn collective(id: &str) -> Value {
    let group = json!({ "quorum": 2, "onQuorumMet": "waitAll" });
    let edges = vec![from_group("g", "next", "approve"), from_group("g", "back", "reject")];
    grouped(id, 2, group, edges)
}

#[tokio::test]
async fn a_wait_all_group_source_takes_the_approve_branch_when_unanimous() {
    let app = spawn_app().await;
    let id = start(&app, collective("collective-yes")).await;
    decide_node(&app, &id, "m1", "u1", "approve").await;
    let view = decide_node(&app, &id, "m2", "u2", "approve").await;

    assert_eq!(view["status"], "completed");
    assert_eq!(step(&view, "next")["stepId"], "group_g__to__next");
    assert!(steps_of(&view, "back").is_empty());
    let events = events(&app, &id).await;
    let (m1, m2) = (step_id(&view, "m1"), step_id(&view, "m2"));
    assert_eq!(
        trail(&events)[4..],
        [
            format!("step.completed {m1}"),
            format!("step.completed {m2}"),
            "group.quorum-met -".to_owned(),
            "step.completed group_g__to__next".to_owned(),
            "execution.completed -".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_wait_all_group_source_takes_the_reject_branch_on_one_rejection() {
    let app = spawn_app().await;
    let id = start(&app, collective("collective-no")).await;
    let view = decide_node(&app, &id, "m1", "u1", "reject").await;
    // The group waits for every member before it branches.
    assert_eq!(view["status"], "running");
    assert_eq!(step(&view, "m2")["status"], "waiting");
    assert!(steps_of(&view, "back").is_empty());

    let view = decide_node(&app, &id, "m2", "u2", "approve").await;
    assert_eq!(view["status"], "completed");
    assert_eq!(step(&view, "back")["stepId"], "group_g__to__back");
    assert!(steps_of(&view, "next").is_empty());
    let m1 = step(&view, "m1");
    assert_eq!((&m1["status"], &m1["output"]["decision"]), (&json!("completed"), &json!("reject")));
    let events = events(&app, &id).await;
    assert!(events_of(&events, "group.quorum-met").is_empty());
    assert_eq!(
        trail(&events)[6..],
        ["step.completed group_g__to__back".to_owned(), "execution.completed -".to_owned()]
    );
}

// ---------------------------------------------------------------------------------------
// Revision loops
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_revision_loop_approved_on_the_second_pass() {
    let app = spawn_app().await;
    create(&app, example("revision-loop")).await;
    let id = dispatch(&app, "revision-loop").await;
    let draft1 = step_id(&get(&app, &id).await, "draft");
    assert_root_step_id(&draft1, "draft");
    let review1 = format!("{draft1}__to__review");
    decide_with_reason(&app, &id, &review1, "u-editor", "reject", "too long").await;

    let view = get(&app, &id).await;
    let draft2 = format!("{review1}__loop_2__to__draft");
    let review2 = format!("{draft2}__to__review");
    let drafts: Vec<&Value> = steps_of(&view, "draft").iter().map(|s| &s["stepId"]).collect();
    assert_eq!(drafts, [&json!(draft1), &json!(draft2)]);
    let reviews = steps_of(&view, "review");
    assert_eq!(reviews[1]["stepId"], review2);
    assert_eq!(
        (&reviews[0]["status"], &reviews[1]["status"]),
        (&json!("completed"), &json!("waiting"))
    );

    decide(&app, &id, &review2, "u-editor", "approve").await;
    let view = until_status(&app, &id, "completed").await;
    let publish = format!("{review2}__to__publish");
    assert_eq!(step_id(&view, "publish"), publish);
    assert!(steps_of(&view, "escalate").is_empty());

    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events),
        [
            "execution.dispatched -".to_owned(),
            format!("step.completed {draft1}"),
            format!("step.awaiting-approval {review1}"),
            format!("step.completed {review1}"),
            "loop.iteration-started -".to_owned(),
            format!("step.completed {draft2}"),
            format!("step.awaiting-approval {review2}"),
            format!("step.completed {review2}"),
            format!("step.completed {publish}"),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(
        events[4]["data"],
        json!({ "loopId": "loop_review__to__draft", "iteration": 2, "triggeredBy": "rejection" })
    );
}

#[tokio::test]
async fn an_exhausted_revision_loop_takes_its_exhausted_edge() {
    let app = spawn_app().await;
    create(&app, example("revision-loop")).await;
    let id = dispatch(&app, "revision-loop").await;
    let mut draft = step_id(&get(&app, &id).await, "draft");
    let mut review = String::new();
    for pass in 1..=3 {
        review = format!("{draft}__to__review");
        let reason = format!("pass {pass} rejected");
        decide_with_reason(&app, &id, &review, "u-editor", "reject", &reason).await;
        draft = format!("{review}__loop_{}__to__draft", pass + 1);
    }

    let view = until_status(&app, &id, "completed").await;
    let escalate = format!("{review}__exhausted__to__escalate");
    assert_eq!(step_id(&view, "escalate"), escalate);
    assert_eq!(steps_of(&view, "draft").len(), 3);
    assert_eq!(steps_of(&view, "review").len(), 3);
    assert!(steps_of(&view, "publish").is_empty());

    let events = events(&app, &id).await;
    let started = events_of(&events, "loop.iteration-started");
    let iterations: Vec<&Value> = started.iter().map(|e| &e["data"]["iteration"]).collect();
    assert_eq!(iterations, [&json!(2), &json!(3)]);
    assert_eq!(
        trail(&events)[events.len() - 4..],
        [
            format!("step.completed {review}"),
            "loop.exhausted -".to_owned(),
            format!("step.completed {escalate}"),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(
        events[events.len() - 3]["data"],
        json!({ "loopId": "loop_review__to__draft", "iteration": 3,
                "lastRejectedBy": "u-editor", "lastRejectionReason": "pass 3 rejected" })
    );
}

#[tokio::test]
async fn an_exhausted_revision_loop_without_an_exhausted_edge_fails_the_execution() {
    let app = spawn_app().await;
    let body = definition(
        "loop-no-exit",
        vec![mock("draft"), human("review", &[("u-editor", true)]), mock("publish")],
        vec![
            edge("draft", "review", "always"),
            edge("review", "publish", "approve"),
            json!({ "from": "review", "to": "draft", "on": "reject",
                    "loop": { "maxIterations": 2 } }),
        ],
    );
    let id = start(&app, body).await;
    let review1 = step_id(&get(&app, &id).await, "review");
    decide(&app, &id, &review1, "u-editor", "reject").await;
    let view = get(&app, &id).await;
    assert_eq!(view["status"], "running", "the first rejection starts pass 2");
    let review2 = steps_of(&view, "review")[1]["stepId"].as_str().unwrap().to_owned();
    decide(&app, &id, &review2, "u-editor", "reject").await;

    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "loop-exhausted");
    assert!(steps_of(&view, "publish").is_empty());
    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events)[events.len() - 3..],
        [
            format!("step.completed {review2}"),
            "loop.exhausted -".to_owned(),
            "execution.failed -".to_owned(),
        ]
    );
    assert_eq!(events[events.len() - 2]["data"]["iteration"], 2);
}

#[tokio::test]
async fn a_non_mandatory_rejection_inside_a_loop_is_an_unrouted_rejection() {
    let app = spawn_app().await;
    let mut body = example("revision-loop");
    body["nodes"][1] = human("review", &[("u-editor", true), ("u-intern", false)]);
    let id = start(&app, body).await;
    let view = decide_node(&app, &id, "review", "u-intern", "reject").await;

    assert_eq!(view["status"], "failed");
    assert_eq!(view["failureReason"]["code"], "unrouted-rejection");
    assert_eq!(step(&view, "review")["output"]["rejectorMandatory"], false);
    assert_eq!(steps_of(&view, "draft").len(), 1, "the loop does not iterate");
    let events = events(&app, &id).await;
    assert!(events_of(&events, "loop.iteration-started").is_empty());
    assert_eq!(trail(&events).last().map(String::as_str), Some("execution.failed -"));
}

/// A loop around a `joinOnQuorum` group: its rejection restarts the loop, and the group's
/// successor in the second pass carries `__iter_2`.
#[tokio::test]
async fn a_group_bounded_loop_restarts_on_rejection_and_joins_on_the_second_pass() {
    let app = spawn_app().await;
    let mut body = definition(
        "group-loop",
        vec![
            mock("draft"),
            human("m1", &[("u1", true)]),
            human("m2", &[("u2", true)]),
            mock("publish"),
        ],
        vec![
            to_group("draft", "g"),
            from_group("g", "publish", "approve"),
            json!({ "from": { "kind": "group", "groupId": "g" }, "to": "draft", "on": "reject",
                    "loop": { "maxIterations": 2 } }),
        ],
    );
    body["groups"] = json!([{ "groupId": "g", "memberNodeIds": ["m1", "m2"], "expectedSteps": 2,
                              "quorum": 2, "onQuorumMet": "joinOnQuorum" }]);
    let id = start(&app, body).await;
    let view = get(&app, &id).await;
    let m1 = step_id(&view, "m1");
    let view = decide_node(&app, &id, "m1", "u1", "reject").await;

    assert_eq!(view["status"], "running");
    let draft2 = format!("{m1}__loop_2__to__draft");
    let drafts: Vec<&Value> = steps_of(&view, "draft").iter().map(|s| &s["stepId"]).collect();
    assert_eq!(drafts[1], &json!(draft2));
    let m1s = steps_of(&view, "m1");
    let m2s = steps_of(&view, "m2");
    assert_eq!((m1s.len(), m2s.len()), (2, 2));
    assert_eq!(m2s[0]["status"], "cancelled");
    assert_eq!(
        (&m1s[1]["stepId"], &m1s[1]["status"]),
        (&json!(format!("{draft2}__to__m1")), &json!("waiting"))
    );

    decide(&app, &id, m1s[1]["stepId"].as_str().unwrap(), "u1", "approve").await;
    decide(&app, &id, m2s[1]["stepId"].as_str().unwrap(), "u2", "approve").await;
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(step(&view, "publish")["stepId"], "group_g__to__publish__iter_2");
    let events = events(&app, &id).await;
    let started = events_of(&events, "loop.iteration-started");
    assert_eq!(
        started.iter().map(|e| e["data"].clone()).collect::<Vec<_>>(),
        [json!({ "loopId": "loop_g__to__draft", "iteration": 2, "triggeredBy": "rejection" })]
    );
    assert_eq!(events_of(&events, "group.quorum-met").len(), 1);
}

// ---------------------------------------------------------------------------------------
// SLA breaches
// ---------------------------------------------------------------------------------------

const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn a_routed_breach_escalates_when_the_clock_passes_the_sla() {
    let app = spawn_app().await;
    create(&app, example("sla-escalation")).await;
    let id = dispatch(&app, "sla-escalation").await;
    let review = step_id(&get(&app, &id).await, "review");

    app.advance_ms(DAY_MS - 1);
    moment().await;
    assert_eq!(step(&get(&app, &id).await, "review")["status"], "waiting");

    app.advance_ms(1);
    let view = until(&app, &id, "review breached", |v| {
        steps_of(v, "review").first().is_some_and(|s| s["status"] == "breached")
    })
    .await;
    assert_eq!(step(&view, "review")["completedAt"], T0_MS + DAY_MS);
    let director = format!("{review}__to__director");
    assert_eq!(step_id(&view, "director"), director);
    assert_eq!(step(&view, "director")["status"], "waiting");
    assert!(steps_of(&view, "publish").is_empty() && steps_of(&view, "revise").is_empty());

    decide(&app, &id, &director, "u-director", "approve").await;
    let view = until_status(&app, &id, "completed").await;
    let publish = format!("{director}__to__publish");
    assert_eq!(step_id(&view, "publish"), publish);

    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events),
        [
            "execution.dispatched -".to_owned(),
            format!("step.awaiting-approval {review}"),
            format!("step.breached {review}"),
            format!("step.awaiting-approval {director}"),
            format!("step.completed {director}"),
            format!("step.completed {publish}"),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(events[2]["timestamp"], T0_MS + DAY_MS);
    assert!(events[2]["data"]["reason"].is_string(), "{}", events[2]);
}

#[tokio::test]
async fn a_step_that_ends_within_its_sla_is_never_breached() {
    let app = spawn_app().await;
    create(&app, example("sla-escalation")).await;
    let id = dispatch(&app, "sla-escalation").await;
    app.advance_ms(DAY_MS / 2);
    decide_node(&app, &id, "review", "u-reviewer", "approve").await;
    until_status(&app, &id, "completed").await;

    app.advance_ms(DAY_MS);
    moment().await;
    let view = get(&app, &id).await;
    assert_eq!(statuses(&view), pairs(&[("review", "completed"), ("publish", "completed")]));
    assert_eq!(step(&view, "review")["completedAt"], T0_MS + DAY_MS / 2);
    assert!(events_of(&events(&app, &id).await, "step.breached").is_empty());
    assert_eq!(app.store.next_timer_due_ms().await.unwrap(), None, "the SLA timer is gone");
}

#[tokio::test]
async fn a_breach_fires_always_edges_but_not_approve_or_reject() {
    let app = spawn_app().await;
    let mut review = human("review", &[("u1", true)]);
    review["slaMs"] = json!(1_000);
    let body = definition(
        "breach-always",
        vec![review, mock("publish"), mock("revise"), mock("escalate")],
        vec![
            edge("review", "publish", "approve"),
            edge("review", "revise", "reject"),
            edge("review", "escalate", "always"),
        ],
    );
    let id = start(&app, body).await;
    let review = step_id(&get(&app, &id).await, "review");
    app.advance_ms(1_000);
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(statuses(&view), pairs(&[("review", "breached"), ("escalate", "completed")]));
    assert_eq!(step_id(&view, "escalate"), format!("{review}__to__escalate"));
}

#[tokio::test]
async fn an_unrouted_breach_fails_the_execution_and_cancels_open_steps() {
    let app = spawn_app().await;
    let mut review = human("review", &[("u1", true)]);
    review["slaMs"] = json!(60_000);
    let body = definition(
        "breach-unrouted",
        vec![
            review,
            human("other", &[("u2", true)]),
            mock("publish"),
            mock("revise"),
            mock("escalate"),
        ],
        vec![
            edge("review", "publish", "approve"),
            edge("review", "revise", "reject"),
            // Reads step.status, so the linter is satisfied, but does not match a breach.
            on_status("review", "escalate", "failed"),
            edge("other", "publish", "approve"),
            edge("other", "revise", "reject"),
        ],
    );
    let id = start(&app, body).await;
    let view = get(&app, &id).await;
    let (review, other) = (step_id(&view, "review"), step_id(&view, "other"));

    app.advance_ms(60_000);
    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "step-breached");
    assert_eq!(statuses(&view), pairs(&[("review", "breached"), ("other", "cancelled")]));
    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events)[3..],
        [
            format!("step.breached {review}"),
            format!("step.cancelled {other}"),
            "execution.failed -".to_owned(),
        ]
    );
    assert_eq!(events[4]["data"]["actorId"], "system:execution-failed");
}

// ---------------------------------------------------------------------------------------
// Cancels
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_an_execution_cancels_its_open_steps_and_again_is_a_no_op() {
    let app = spawn_app().await;
    create(&app, example("parallel-quorum")).await;
    let id = dispatch(&app, "parallel-quorum").await;
    let body = json!({ "executionId": id, "reason": "campaign withdrawn" });
    let answer = app.call("executions/cancel", body.clone()).await;
    assert_eq!(answer.result(), &json!({ "cancelled": true, "executionId": id }));

    let view = get(&app, &id).await;
    assert_eq!(view["status"], "cancelled");
    assert_eq!((&view["cancelledAt"], &view["failureReason"]), (&json!(T0_MS), &Value::Null));
    let expected = [
        ("draft", "completed"),
        ("legal", "cancelled"),
        ("brand", "cancelled"),
        ("ops", "cancelled"),
    ];
    assert_eq!(statuses(&view), pairs(&expected));

    let events = events(&app, &id).await;
    let cancelled: Vec<String> = ["legal", "brand", "ops"]
        .iter()
        .map(|n| format!("step.cancelled {}", step_id(&view, n)))
        .chain(["execution.cancelled -".to_owned()])
        .collect();
    assert_eq!(trail(&events)[5..], cancelled);
    let by_cancel = json!({ "actorId": "system:execution-cancel", "reason": "campaign withdrawn" });
    assert!(events[5..8].iter().all(|e| e["data"] == by_cancel), "{events:?}");
    assert_eq!(events[8]["data"], json!({ "reason": "campaign withdrawn" }));

    let again = app.call("executions/cancel", body).await;
    assert_eq!(again.result(), &json!({ "cancelled": true, "executionId": id }));
    assert_eq!(common::events(&app, &id).await.len(), events.len());
    assert_eq!(get(&app, &id).await["status"], "cancelled");

    let unknown = json!({ "executionId": format!("exec_{T0_MS}_zzzzzzzz") });
    app.call("executions/cancel", unknown).await.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn cancelling_a_step_ends_its_branch() {
    let app = spawn_app().await;
    create(&app, example("sequential-signoff")).await;
    let id = dispatch(&app, "sequential-signoff").await;
    let manager = step_id(&get(&app, &id).await, "manager");
    let body = json!({ "executionId": id, "stepId": manager, "actorId": "ops-admin",
                       "reason": "duplicate request" });
    let answer = app.call("steps/cancel", body.clone()).await;
    assert_eq!(
        answer.result(),
        &json!({ "cancelled": true, "executionId": id, "stepId": manager })
    );

    let view = until_status(&app, &id, "completed").await;
    assert_eq!(statuses(&view), pairs(&[("manager", "cancelled")]));
    let events = events(&app, &id).await;
    assert_eq!(trail(&events)[2], format!("step.cancelled {manager}"));
    assert_eq!(events[2]["data"], json!({ "actorId": "ops-admin", "reason": "duplicate request" }));

    let msg = app.call("steps/cancel", body).await.error(400, "FAILED_PRECONDITION");
    assert!(msg.contains("terminal"), "{msg}");
    let unknown = json!({ "executionId": id, "stepId": "step_nope", "actorId": "ops-admin" });
    app.call("steps/cancel", unknown).await.error(404, "NOT_FOUND");
    let no_actor = json!({ "executionId": id, "stepId": manager });
    app.call("steps/cancel", no_actor).await.error(400, "INVALID_ARGUMENT");
}

// ---------------------------------------------------------------------------------------
// steps/resolve
// ---------------------------------------------------------------------------------------

/// Dispatches sequential-signoff; returns the execution and its waiting manager step.
async fn signoff(app: &TestApp) -> (String, String) {
    create(app, example("sequential-signoff")).await;
    let id = dispatch(app, "sequential-signoff").await;
    let manager = step_id(&get(app, &id).await, "manager");
    (id, manager)
}

#[tokio::test]
async fn force_approve_and_reviewer_approve_take_the_approve_route() {
    for (action, actor) in [("force-approve", "admin-1"), ("reviewer-approve", "u-manager")] {
        let app = spawn_app().await;
        let (id, manager) = signoff(&app).await;
        let extra = json!({ "reason": "ok by phone", "output": { "ticket": "OPS-7",
                                                                  "decision": "reject" } });
        let answer = resolve(&app, &id, &manager, action, actor, extra).await;
        assert_eq!(
            answer.result(),
            &json!({ "resolved": true, "executionId": id, "stepId": manager, "action": action })
        );
        let view = get(&app, &id).await;
        let output = &step(&view, "manager")["output"];
        assert_eq!(step(&view, "manager")["status"], "completed", "{action}");
        assert_eq!(
            (&output["decision"], &output["approved"], &output["approvalReply"]),
            (&json!("approve"), &json!(true), &json!("ok by phone")),
            "{action}: the engine's decision overrides the caller's"
        );
        assert_eq!((&output["ticket"], &output["overriddenAt"]), (&json!("OPS-7"), &json!(T0_MS)));
        assert_eq!(output["rejectedBy"], Value::Null);
        assert_eq!(step_id(&view, "legal"), format!("{manager}__to__legal"), "{action}");

        let events = events(&app, &id).await;
        assert_eq!(trail(&events)[2], format!("step.completed {manager}"));
        assert_eq!(
            events[2]["data"],
            json!({ "nodeType": "human", "decision": "approve", "source": action })
        );
    }
}

#[tokio::test]
async fn force_reject_and_reviewer_reject_take_the_reject_route() {
    for (action, actor) in [("force-reject", "admin-1"), ("reviewer-reject", "u-manager")] {
        let app = spawn_app().await;
        let (id, manager) = signoff(&app).await;
        resolve(&app, &id, &manager, action, actor, json!({})).await.result();
        let view = until_status(&app, &id, "completed").await;
        let output = &step(&view, "manager")["output"];
        assert_eq!((&output["decision"], &output["approved"]), (&json!("reject"), &json!(false)));
        // Only the aggregator names a rejector: resolve does not (so loops never iterate).
        assert_eq!(
            (&output["rejectedBy"], &output["rejectorMandatory"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(
            statuses(&view),
            pairs(&[("manager", "completed"), ("notify-rejected", "completed")]),
            "{action}"
        );
    }
}

#[tokio::test]
async fn force_complete_writes_the_callers_output_through() {
    let app = spawn_app().await;
    let (id, manager) = signoff(&app).await;
    let extra = json!({ "output": { "ticket": "OPS-9", "overriddenAt": 42 } });
    resolve(&app, &id, &manager, "force-complete", "admin-1", extra).await.result();
    let view = until_status(&app, &id, "completed").await;
    let output = &step(&view, "manager")["output"];
    assert_eq!(output, &json!({ "ticket": "OPS-9", "overriddenAt": 42 }));
    // No decision, so neither the approve nor the reject edge fires.
    assert_eq!(statuses(&view), pairs(&[("manager", "completed")]));
}

#[tokio::test]
async fn force_fail_fires_the_failure_route_or_fails_the_execution() {
    let app = spawn_app().await;
    let body = definition(
        "fail-routed",
        vec![human("review", &[("u1", true)]), mock("publish"), mock("revise"), mock("escalate")],
        vec![
            edge("review", "publish", "approve"),
            edge("review", "revise", "reject"),
            on_status("review", "escalate", "failed"),
        ],
    );
    let id = start(&app, body).await;
    let review = step_id(&get(&app, &id).await, "review");
    let extra = json!({ "reason": "reviewer left", "output": { "note": "n" } });
    resolve(&app, &id, &review, "force-fail", "admin-1", extra).await.result();
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(statuses(&view), pairs(&[("review", "failed"), ("escalate", "completed")]));
    assert_eq!(step_id(&view, "escalate"), format!("{review}__to__escalate"));
    let failed = step(&view, "review");
    assert_eq!(
        (&failed["output"]["note"], &failed["output"]["overriddenAt"]),
        (&json!("n"), &json!(T0_MS))
    );
    assert!(failed["error"]["code"].is_string(), "{failed}");

    let (id, manager) = signoff(&app).await;
    resolve(&app, &id, &manager, "force-fail", "admin-1", json!({})).await.result();
    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "step-failed");
    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events)[2..],
        [format!("step.failed {manager}"), "execution.failed -".to_owned()]
    );
}

#[tokio::test]
async fn resolve_refuses_by_state_and_permission() {
    let app = spawn_app().await;
    let (id, manager) = signoff(&app).await;

    let intruder = resolve(&app, &id, &manager, "reviewer-approve", "u-intruder", json!({})).await;
    intruder.error(403, "PERMISSION_DENIED");
    let intruder = resolve(&app, &id, &manager, "reviewer-reject", "u-legal", json!({})).await;
    intruder.error(403, "PERMISSION_DENIED");
    assert_eq!(step(&get(&app, &id).await, "manager")["status"], "waiting");

    for action in ["force-approve", "force-reject", "force-complete", "force-fail"] {
        let unknown_step = resolve(&app, &id, "step_nope", action, "admin-1", json!({})).await;
        let msg = unknown_step.error(400, "FAILED_PRECONDITION");
        assert_eq!(msg, "resolveStep not applied: step-not-found", "{action}");
        let unknown_execution =
            resolve(&app, &format!("exec_{T0_MS}_zzzzzzzz"), "step_nope", action, "a", json!({}))
                .await;
        let msg = unknown_execution.error(400, "FAILED_PRECONDITION");
        assert_eq!(msg, "resolveStep not applied: step-not-found", "{action}");
    }
    for action in ["reviewer-approve", "reviewer-reject"] {
        let unknown = resolve(&app, &id, "step_nope", action, "u-manager", json!({})).await;
        unknown.error(404, "NOT_FOUND");
        let no_execution =
            resolve(&app, &format!("exec_{T0_MS}_zzzzzzzz"), "step_nope", action, "u", json!({}))
                .await;
        no_execution.error(404, "NOT_FOUND");
    }
    let bad = resolve(&app, &id, &manager, "force-maybe", "admin-1", json!({})).await;
    bad.error(400, "INVALID_ARGUMENT");

    // Terminal steps take no action at all; reviewer actions need a human step.
    resolve(&app, &id, &manager, "force-approve", "admin-1", json!({})).await.result();
    for action in
        ["force-approve", "force-reject", "force-complete", "force-fail", "reviewer-approve"]
    {
        let again = resolve(&app, &id, &manager, action, "u-manager", json!({})).await;
        again.error(400, "FAILED_PRECONDITION");
    }
    let view = decide_node(&app, &id, "legal", "u-legal", "approve").await;
    let publish = step_id(&view, "publish");
    let on_agent = resolve(&app, &id, &publish, "reviewer-approve", "u-legal", json!({})).await;
    on_agent.error(400, "FAILED_PRECONDITION");
}

// ---------------------------------------------------------------------------------------
// recordReviewerDecision and recordAgentResolution
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reviewer_decisions_are_recorded_once_and_unknown_reviewers_are_not() {
    let app = spawn_app().await;
    create(&app, example("marketing-copy-approval")).await;
    let id = dispatch(&app, "marketing-copy-approval").await;
    let review = step_id(&get(&app, &id).await, "legal-review");

    let first = decide(&app, &id, &review, "u-brand", "approve").await;
    assert_eq!(
        first,
        json!({ "recorded": true, "aggregatorStatus": "pending", "resumeScheduled": false })
    );
    let replay = decide(&app, &id, &review, "u-brand", "reject").await;
    assert_eq!(
        (&replay["recorded"], &replay["reason"], &replay["aggregatorStatus"]),
        (&json!(false), &json!("idempotent"), &json!("pending")),
        "first decision wins"
    );
    let stranger = decide(&app, &id, &review, "u-stranger", "reject").await;
    assert_eq!(
        (&stranger["recorded"], &stranger["reason"], &stranger["aggregatorStatus"]),
        (&json!(false), &json!("unknown-responder"), &json!("pending"))
    );
    assert_eq!(step(&get(&app, &id).await, "legal-review")["status"], "waiting");

    let last = decide(&app, &id, &review, "u-legal", "approve").await;
    assert_eq!(
        last,
        json!({ "recorded": true, "aggregatorStatus": "resolved", "resumeScheduled": true })
    );
    let view = until_status(&app, &id, "completed").await;
    let output = &step(&view, "legal-review")["output"];
    assert_eq!(
        (&output["approveCount"], &output["rejectCount"], &output["totalResponses"]),
        (&json!(2), &json!(0), &json!(2)),
        "the stranger and the replay count for nothing"
    );
    assert_eq!(
        (&output["mandatoryCount"], &output["mandatoryApproveCount"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(output["resumeKey"], format!("human:{review}"));
}

#[tokio::test]
async fn reviewer_decisions_on_steps_that_are_not_waiting() {
    let app = spawn_app().await;
    create(&app, example("marketing-copy-approval")).await;
    let id = dispatch(&app, "marketing-copy-approval").await;
    let view = get(&app, &id).await;
    let (draft, review) = (step_id(&view, "agent-draft"), step_id(&view, "legal-review"));

    let on_agent = json!({ "executionId": id, "stepId": draft, "reviewerId": "u-legal",
                           "decision": "approve" });
    app.call("steps/recordReviewerDecision", on_agent).await.error(400, "FAILED_PRECONDITION");
    let unknown_step = json!({ "executionId": id, "stepId": "step_nope", "reviewerId": "u-legal",
                               "decision": "approve" });
    app.call("steps/recordReviewerDecision", unknown_step).await.error(404, "NOT_FOUND");
    let unknown_execution = json!({ "executionId": format!("exec_{T0_MS}_zzzzzzzz"),
                                    "stepId": review, "reviewerId": "u-legal",
                                    "decision": "approve" });
    app.call("steps/recordReviewerDecision", unknown_execution).await.error(404, "NOT_FOUND");
    let bad = json!({ "executionId": id, "stepId": review, "reviewerId": "u-legal",
                      "decision": "maybe" });
    app.call("steps/recordReviewerDecision", bad).await.error(400, "INVALID_ARGUMENT");

    // The mandatory reviewer alone resolves the step; the optional one comes too late.
    decide(&app, &id, &review, "u-legal", "approve").await;
    let late = decide(&app, &id, &review, "u-brand", "reject").await;
    assert_eq!(
        late,
        json!({ "recorded": false, "aggregatorStatus": "resolved", "resumeScheduled": false,
                "reason": "already-terminal" })
    );
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(step(&view, "legal-review")["output"]["totalResponses"], 1);
}

#[tokio::test]
async fn agent_resolutions_are_refused_where_no_step_waits_for_one() {
    let app = spawn_app().await;
    create(&app, example("marketing-copy-approval")).await;
    let id = dispatch(&app, "marketing-copy-approval").await;
    let view = get(&app, &id).await;
    let (draft, review) = (step_id(&view, "agent-draft"), step_id(&view, "legal-review"));
    let body = |execution_id: &str, step_id: &str| {
        json!({ "executionId": execution_id, "stepId": step_id, "responseId": "resp-1",
                "resolution": "resolved", "actorId": "agent-bot" })
    };

    let path = "steps/recordAgentResolution";
    app.call(path, body(&id, &draft)).await.error(400, "FAILED_PRECONDITION");
    let msg = app.call(path, body(&id, &review)).await.error(400, "FAILED_PRECONDITION");
    assert!(msg.contains("not an agent step"), "{msg}");
    app.call(path, body(&id, "step_nope")).await.error(404, "NOT_FOUND");
    let unknown_execution = format!("exec_{T0_MS}_zzzzzzzz");
    app.call(path, body(&unknown_execution, &draft)).await.error(404, "NOT_FOUND");

    let mut old_shape = body(&id, &draft);
    old_shape["status"] = json!("success");
    app.call(path, old_shape).await.error(400, "INVALID_ARGUMENT");
    let mut bad_resolution = body(&id, &draft);
    bad_resolution["resolution"] = json!("maybe");
    app.call(path, bad_resolution).await.error(400, "INVALID_ARGUMENT");
    let mut no_actor = body(&id, &draft);
    no_actor.as_object_mut().unwrap().remove("actorId");
    app.call(path, no_actor).await.error(400, "INVALID_ARGUMENT");
    assert_eq!(step(&get(&app, &id).await, "legal-review")["status"], "waiting");
}

// ---------------------------------------------------------------------------------------
// Agent runs against a real local agent runner
// ---------------------------------------------------------------------------------------

/// What the scripted runner answers and what it was asked.
#[derive(Default)]
struct Script {
    /// The status each successive `get` answers; the last one repeats.
    statuses: Vec<&'static str>,
    runs: Vec<Value>,
    gets: Vec<Value>,
}

type Shared = Arc<Mutex<Script>>;

/// An agent runner on 127.0.0.1:0 speaking the Agents run/get contract.
struct AgentRunnerStub {
    url: String,
    script: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const RESULTS_SUMMARY: &str = r#"{"totalFindings": 0, "summary": "clean"}"#;

impl AgentRunnerStub {
    async fn start(statuses: &[&'static str]) -> AgentRunnerStub {
        use axum::routing::post;
        let script =
            Arc::new(Mutex::new(Script { statuses: statuses.to_vec(), ..Script::default() }));
        let router = axum::Router::new()
            .route("/v2/agents/execution/run", post(runner_run))
            .route("/v2/agents/execution/get", post(runner_get))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, router);
            let _ = serve
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        AgentRunnerStub { url, script, _stop: stop }
    }

    fn runs(&self) -> Vec<Value> {
        self.script.lock().unwrap().runs.clone()
    }

    fn gets(&self) -> Vec<Value> {
        self.script.lock().unwrap().gets.clone()
    }

    /// Waits (briefly, in real time) until the runner has answered `count` polls.
    async fn until_gets(&self, count: usize) {
        for _ in 0..500 {
            if self.gets().len() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the runner saw {} polls, not {count}", self.gets().len());
    }
}

async fn runner_run(
    axum::extract::State(script): axum::extract::State<Shared>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let mut script = script.lock().unwrap();
    script.runs.push(body["data"].clone());
    let execution_id = format!("run-{}", script.runs.len());
    axum::Json(json!({ "result": { "executionId": execution_id } }))
}

async fn runner_get(
    axum::extract::State(script): axum::extract::State<Shared>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let mut script = script.lock().unwrap();
    script.gets.push(body["data"].clone());
    let n = script.gets.len();
    let status =
        script.statuses.get(n - 1).or(script.statuses.last()).copied().unwrap_or("running");
    let summary: Value = serde_json::from_str(RESULTS_SUMMARY).unwrap();
    axum::Json(json!({ "result": { "status": status, "resultsSummary": summary } }))
}

const POLL_MS: i64 = 5_000;

/// `check` (an agent with `config`) approves into `publish`.
fn agent_flow(id: &str, config: Value) -> Value {
    let mut config = config;
    config["agentId"] = json!("brand-agent-v1");
    config["pollIntervalMs"] = json!(POLL_MS);
    definition(
        id,
        vec![json!({ "nodeId": "check", "type": "agent", "config": config }), mock("publish")],
        vec![edge("check", "publish", "approve")],
    )
}

fn static_url() -> Value {
    json!({ "url": "https://site.example.com/page" })
}

/// Waits until the server's earliest timer is due at `due_at_ms`: the retry or poll the
/// engine just scheduled. Only then is it safe to move the clock to exactly that time.
async fn until_next_timer(app: &TestApp, due_at_ms: i64) {
    for _ in 0..500 {
        if app.store.next_timer_due_ms().await.unwrap() == Some(due_at_ms) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let next = app.store.next_timer_due_ms().await.unwrap();
    panic!("next timer is due at {next:?}, not {due_at_ms}");
}

async fn until_step_status(app: &TestApp, id: &str, node_id: &str, status: &str) -> Value {
    until(app, id, &format!("{node_id} {status}"), |v| {
        steps_of(v, node_id).first().is_some_and(|s| s["status"] == status)
    })
    .await
}

#[tokio::test]
async fn a_passing_agent_run_completes_with_an_approval() {
    let runner = AgentRunnerStub::start(&["passed"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    let mut config = static_url();
    config["crossPageExecute"] = json!(true);
    config["maxUrlsToProcess"] = json!(3);
    config["userContextMapping"] = json!({ "name": "user.name" });
    create(&app, agent_flow("agent-pass", config)).await;
    let id = dispatch_with(
        &app,
        json!({ "definitionId": "agent-pass", "organizationId": "org-1", "documentId": "doc-1",
                "triggerContext": { "user": { "name": "Ada" } } }),
    )
    .await;

    let view = until_step_status(&app, &id, "check", "waiting").await;
    let check = step_id(&view, "check");
    assert_root_step_id(&check, "check");
    let runs = runner.runs();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (&run["agentId"], &run["trigger"], &run["workflowExecutionId"], &run["url"]),
        (
            &json!("brand-agent-v1"),
            &json!("workflow"),
            &json!(id),
            &json!("https://site.example.com/page")
        )
    );
    assert_eq!(
        (&run["organizationId"], &run["documentId"], &run["crossPageExecute"]),
        (&json!("org-1"), &json!("doc-1"), &json!(true))
    );
    assert_eq!(
        (&run["maxUrlsToProcess"], &run["userContext"]),
        (&json!(3), &json!({ "name": "Ada" }))
    );

    app.advance_ms(POLL_MS - 1);
    moment().await;
    assert!(runner.gets().is_empty(), "polled before pollIntervalMs");
    app.advance_ms(1);
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(runner.gets(), [json!({ "executionId": "run-1" })]);
    let output = &step(&view, "check")["output"];
    assert_eq!(
        (&output["decision"], &output["agentExecutionStatus"], &output["agentExecutionId"]),
        (&json!("approve"), &json!("passed"), &json!("run-1"))
    );
    assert_eq!(
        output["agentResultsSummary"],
        serde_json::from_str::<Value>(RESULTS_SUMMARY).unwrap()
    );
    assert_eq!(output["resolvedUrl"], "https://site.example.com/page");
    let publish = format!("{check}__to__publish");
    assert_eq!(step_id(&view, "publish"), publish);

    let events = events(&app, &id).await;
    assert_eq!(
        trail(&events),
        [
            "execution.dispatched -".to_owned(),
            format!("step.awaiting-approval {check}"),
            format!("step.completed {check}"),
            format!("step.completed {publish}"),
            "execution.completed -".to_owned(),
        ]
    );
    assert_eq!(
        events[1]["data"],
        json!({ "agentId": "brand-agent-v1", "agentExecutionId": "run-1",
                "pollIntervalMs": POLL_MS })
    );
    assert_eq!(
        events[2]["data"],
        json!({ "agentExecutionId": "run-1", "agentExecutionStatus": "passed",
                "decision": "approve", "source": "poll" })
    );
}

#[tokio::test]
async fn a_failed_agent_run_fails_the_unrouted_step_and_the_execution() {
    let runner = AgentRunnerStub::start(&["failed"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    let id = start(&app, agent_flow("agent-fail", static_url())).await;
    until_step_status(&app, &id, "check", "waiting").await;
    app.advance_ms(POLL_MS);

    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "step-failed");
    assert_eq!(statuses(&view), pairs(&[("check", "failed")]));
    let check = step(&view, "check");
    assert_eq!(
        (&check["output"]["decision"], &check["output"]["agentExecutionStatus"]),
        (&json!("reject"), &json!("failed"))
    );
    assert!(check["error"]["code"].is_string(), "{check}");
    let events = events(&app, &id).await;
    let check = step_id(&view, "check");
    assert_eq!(
        trail(&events)[2..],
        [format!("step.failed {check}"), "execution.failed -".to_owned()]
    );
    assert_eq!(
        events[2]["data"],
        json!({ "agentExecutionId": "run-1", "agentExecutionStatus": "failed",
                "decision": "reject", "source": "poll" })
    );
}

#[tokio::test]
async fn a_skipped_agent_run_counts_as_an_approval() {
    let runner = AgentRunnerStub::start(&["skipped"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    let id = start(&app, agent_flow("agent-skip", static_url())).await;
    until_step_status(&app, &id, "check", "waiting").await;
    app.advance_ms(POLL_MS);

    let view = until_status(&app, &id, "completed").await;
    assert_eq!(statuses(&view), pairs(&[("check", "completed"), ("publish", "completed")]));
    let output = &step(&view, "check")["output"];
    assert_eq!(
        (&output["decision"], &output["agentExecutionStatus"]),
        (&json!("approve"), &json!("skipped"))
    );
}

#[tokio::test]
async fn a_running_agent_is_polled_every_poll_interval() {
    let runner = AgentRunnerStub::start(&["running", "running", "passed"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    let id = start(&app, agent_flow("agent-poll", static_url())).await;
    until_step_status(&app, &id, "check", "waiting").await;
    until_next_timer(&app, T0_MS + POLL_MS).await;

    for poll in 1..=2 {
        app.advance_ms(POLL_MS);
        runner.until_gets(poll).await;
        until_next_timer(&app, T0_MS + (poll as i64 + 1) * POLL_MS).await;
        assert_eq!(runner.gets().len(), poll, "one poll per interval");
        assert_eq!(step(&get(&app, &id).await, "check")["status"], "waiting");
    }
    app.advance_ms(POLL_MS - 1);
    moment().await;
    assert_eq!(runner.gets().len(), 2, "polled before the interval was over");
    app.advance_ms(1);
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(runner.gets(), vec![json!({ "executionId": "run-1" }); 3]);
    assert_eq!(runner.runs().len(), 1, "a poll does not start a second run");
    assert_eq!(step(&view, "check")["completedAt"], T0_MS + 3 * POLL_MS);
    let awaiting = events_of(&events(&app, &id).await, "step.awaiting-approval").len();
    assert_eq!(awaiting, 1);
}

#[tokio::test]
async fn an_agent_that_never_finishes_fails_at_agent_max_runtime() {
    let runner = AgentRunnerStub::start(&["running"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    let mut config = static_url();
    config["agentMaxRuntimeMs"] = json!(12_000);
    let id = start(&app, agent_flow("agent-timeout", config)).await;
    until_step_status(&app, &id, "check", "waiting").await;

    app.advance_ms(11_999);
    runner.until_gets(1).await;
    until_next_timer(&app, T0_MS + 12_000).await;
    assert_eq!(step(&get(&app, &id).await, "check")["status"], "waiting");

    app.advance_ms(1);
    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "step-failed");
    let check = step(&view, "check");
    assert_eq!(
        (&check["status"], &check["error"]["code"], &check["completedAt"]),
        (&json!("failed"), &json!("agent-timeout"), &json!(T0_MS + 12_000))
    );
    assert_eq!(check["output"]["decision"], "reject", "output and event agree");
    let events = events(&app, &id).await;
    let failed = events_of(&events, "step.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (&failed[0]["data"]["agentExecutionId"], &failed[0]["data"]["decision"]),
        (&json!("run-1"), &json!("reject"))
    );
}

#[tokio::test]
async fn an_unreachable_runner_is_retried_after_2_8_and_32_seconds_then_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = spawn_app_with(Some(&down)).await;
    let id = start(&app, agent_flow("agent-down", static_url())).await;

    let mut due_at_ms = T0_MS;
    for delay_ms in [2_000, 8_000, 32_000] {
        due_at_ms += delay_ms;
        until_next_timer(&app, due_at_ms).await;
        let view = get(&app, &id).await;
        assert_eq!(
            (&view["status"], &step(&view, "check")["status"]),
            (&json!("running"), &json!("running"))
        );
        app.advance_ms(delay_ms - 1);
        moment().await;
        assert_eq!(app.store.next_timer_due_ms().await.unwrap(), Some(due_at_ms), "retried early");
        app.advance_ms(1);
    }

    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "step-failed");
    let check = step(&view, "check");
    assert_eq!((&check["status"], &check["completedAt"]), (&json!("failed"), &json!(due_at_ms)));
    assert_eq!(check["error"]["code"], "agent-runner-unavailable");
    assert_eq!(check["output"]["decision"], "reject", "a run that never started rejects");
    let message = check["error"]["message"].as_str().unwrap();
    assert!(!message.contains("127.0.0.1"), "the runner's address stays in the log: {message}");
    let events = events(&app, &id).await;
    let check = step_id(&view, "check");
    assert_eq!(
        trail(&events),
        [
            "execution.dispatched -".to_owned(),
            format!("step.failed {check}"),
            "execution.failed -".to_owned(),
        ]
    );
}

#[tokio::test]
async fn url_path_is_read_from_the_trigger_context() {
    let runner = AgentRunnerStub::start(&["passed"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    create(&app, agent_flow("agent-url-path", json!({ "urlPath": "document.url" }))).await;
    let context = json!({ "document": { "url": "my-app.vercel.app/landing" } });
    let id =
        dispatch_with(&app, json!({ "definitionId": "agent-url-path", "triggerContext": context }))
            .await;
    until_step_status(&app, &id, "check", "waiting").await;
    assert_eq!(runner.runs()[0]["url"], "https://my-app.vercel.app/landing");
    app.advance_ms(POLL_MS);
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(step(&view, "check")["output"]["resolvedUrl"], "https://my-app.vercel.app/landing");
}

#[tokio::test]
async fn a_missing_url_path_fails_the_step_with_agent_url_unresolved() {
    let runner = AgentRunnerStub::start(&["passed"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    create(&app, agent_flow("agent-no-url", json!({ "urlPath": "document.url" }))).await;
    let context = json!({ "document": { "title": "no url here" } });
    let id =
        dispatch_with(&app, json!({ "definitionId": "agent-no-url", "triggerContext": context }))
            .await;

    let view = until_status(&app, &id, "failed").await;
    assert_eq!(view["failureReason"]["code"], "step-failed");
    assert_eq!(step(&view, "check")["error"]["code"], "agent-url-unresolved");
    let events = events(&app, &id).await;
    let check = step_id(&view, "check");
    assert_eq!(
        trail(&events)[1..],
        [format!("step.failed {check}"), "execution.failed -".to_owned()]
    );
    moment().await;
    assert!(runner.runs().is_empty(), "no run is started without a URL");
}

#[tokio::test]
async fn a_waiting_agent_step_takes_force_actions_but_not_reviewer_or_resolution_calls() {
    let runner = AgentRunnerStub::start(&["running"]).await;
    let app = spawn_app_with(Some(&runner.url)).await;
    let id = start(&app, agent_flow("agent-override", static_url())).await;
    let view = until_step_status(&app, &id, "check", "waiting").await;
    let check = step_id(&view, "check");

    let resolution = json!({ "executionId": id, "stepId": check, "responseId": "resp-1",
                             "resolution": "resolved", "actorId": "agent-bot" });
    let msg =
        app.call("steps/recordAgentResolution", resolution).await.error(400, "FAILED_PRECONDITION");
    assert!(msg.contains("not waiting for a resolution"), "{msg}");
    let reviewer = resolve(&app, &id, &check, "reviewer-approve", "u-any", json!({})).await;
    reviewer.error(400, "FAILED_PRECONDITION");
    let decision = json!({ "executionId": id, "stepId": check, "reviewerId": "u-any",
                           "decision": "approve" });
    app.call("steps/recordReviewerDecision", decision).await.error(400, "FAILED_PRECONDITION");

    resolve(&app, &id, &check, "force-approve", "admin-1", json!({})).await.result();
    let view = until_status(&app, &id, "completed").await;
    assert_eq!(statuses(&view), pairs(&[("check", "completed"), ("publish", "completed")]));
    // The poll that was due changes nothing once the step has ended.
    app.advance_ms(POLL_MS);
    moment().await;
    let later = get(&app, &id).await;
    assert_eq!(later["status"], "completed");
    assert_eq!(step(&later, "check")["output"]["decision"], "approve");
}

// ---------------------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------------------

const RACE_ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reviewers_deciding_at_once_resume_the_step_exactly_once() {
    let app = spawn_app().await;
    let body = definition(
        "two-reviewers",
        vec![human("review", &[("u1", true), ("u2", true)]), mock("publish"), mock("revise")],
        vec![edge("review", "publish", "approve"), edge("review", "revise", "reject")],
    );
    let definition_id = create(&app, body).await;
    for _ in 0..RACE_ROUNDS {
        let id = dispatch(&app, &definition_id).await;
        let review = step_id(&get(&app, &id).await, "review");
        let (a, b) = tokio::join!(
            decide(&app, &id, &review, "u1", "approve"),
            decide(&app, &id, &review, "u2", "approve"),
        );
        assert_race_settled(&a, &b);

        let view = until_status(&app, &id, "completed").await;
        let output = &step(&view, "review")["output"];
        assert_eq!(
            (&output["approveCount"], &output["totalResponses"], &output["mandatoryApproveCount"]),
            (&json!(2), &json!(2), &json!(2))
        );
        assert_eq!(statuses(&view), pairs(&[("review", "completed"), ("publish", "completed")]));
        let events = events(&app, &id).await;
        let completed: Vec<&Value> = events_of(&events, "step.completed")
            .into_iter()
            .filter(|e| e["stepId"] == review)
            .collect();
        assert_eq!(completed.len(), 1, "{events:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reviewers_of_a_group_of_one_meet_its_quorum_exactly_once() {
    let app = spawn_app().await;
    let mut body = definition(
        "group-of-one",
        vec![
            mock("start"),
            human("review", &[("u1", true), ("u2", true)]),
            mock("next"),
            mock("back"),
        ],
        vec![
            to_group("start", "g"),
            edge("review", "next", "approve"),
            edge("review", "back", "reject"),
        ],
    );
    body["groups"] = json!([{ "groupId": "g", "memberNodeIds": ["review"], "expectedSteps": 1,
                              "quorum": 1, "onQuorumMet": "joinOnQuorum" }]);
    let definition_id = create(&app, body).await;
    for _ in 0..RACE_ROUNDS {
        let id = dispatch(&app, &definition_id).await;
        let review = step_id(&get(&app, &id).await, "review");
        let (a, b) = tokio::join!(
            decide(&app, &id, &review, "u1", "approve"),
            decide(&app, &id, &review, "u2", "approve"),
        );
        assert_race_settled(&a, &b);

        let view = until_status(&app, &id, "completed").await;
        assert_eq!(step(&view, "next")["stepId"], "group_g__to__next");
        assert!(steps_of(&view, "back").is_empty());
        let events = events(&app, &id).await;
        assert_eq!(events_of(&events, "group.quorum-met").len(), 1);
    }
}

/// Both decisions recorded; exactly one of them resumed the step, and the other saw the
/// aggregator still pending.
fn assert_race_settled(a: &Value, b: &Value) {
    assert_eq!((&a["recorded"], &b["recorded"]), (&json!(true), &json!(true)), "{a} {b}");
    let mut seen = [
        (a["aggregatorStatus"].as_str().unwrap_or("?"), a["resumeScheduled"] == true),
        (b["aggregatorStatus"].as_str().unwrap_or("?"), b["resumeScheduled"] == true),
    ];
    seen.sort();
    assert_eq!(seen, [("pending", false), ("resolved", true)], "{a} {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_dispatches_of_one_key_make_one_execution() {
    let app = Arc::new(spawn_app().await);
    create(&app, example("sequential-signoff")).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.spawn(async move {
            let body =
                json!({ "definitionId": "sequential-signoff", "idempotencyKey": "launch-1" });
            app.call("executions/dispatch", body).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.expect("task").result().clone());
    }

    assert_eq!(answers.len(), 100);
    let id = answers[0]["executionId"].clone();
    assert!(answers.iter().all(|a| a["executionId"] == id), "{answers:?}");
    let correlation_id = answers[0]["correlationId"].clone();
    assert!(answers.iter().all(|a| a["correlationId"] == correlation_id));
    let originals = answers.iter().filter(|a| a["deduplicated"] == false).count();
    let replays = answers.iter().filter(|a| a["deduplicated"] == true).count();
    assert_eq!((originals, replays), (1, 99));

    let listed = app.call("executions/list", json!({})).await;
    assert_eq!(listed.result()["items"].as_array().unwrap().len(), 1);
    let events = events(&app, id.as_str().unwrap()).await;
    assert_eq!(events_of(&events, "execution.dispatched").len(), 1);
    assert_eq!(steps_of(&get(&app, id.as_str().unwrap()).await, "manager").len(), 1);
}
