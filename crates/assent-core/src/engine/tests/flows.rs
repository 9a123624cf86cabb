//! Sequential flows, unrouted ends and the execution's roll-up.

use super::*;

fn two_step() -> Value {
    definition(
        vec![human("a", &[("u-a", true)]), mock("ok"), mock("no")],
        vec![edge("a", "ok", "approve"), edge("a", "no", "reject")],
    )
}

#[test]
fn decisions_route_by_role() {
    let cases = [("approve", "ok"), ("reject", "no")];
    for (decision, taken) in cases {
        let mut h = start(two_step());
        h.decide("a", "u-a", decision);
        let nodes: Vec<String> = h.steps().into_iter().map(|(n, _)| n).collect();
        assert_eq!(nodes, ["a", taken], "{decision}");
        assert_eq!(h.state.status, ExecutionStatus::Completed, "{decision}");
    }
}

#[test]
fn human_start_and_output() {
    let mut h = start(definition(
        vec![human("a", &[("u-1", true), ("u-2", false)]), mock("ok"), mock("no")],
        vec![edge("a", "ok", "approve"), edge("a", "no", "reject")],
    ));
    let a = h.step_id("a");
    let waiting = h.events_of("step.awaiting-approval");
    assert_eq!(
        waiting[0].data,
        json!({ "waitingForReviewers": 2, "mandatoryCount": 1, "resumeKey": format!("human:{a}") })
    );
    let result = h.decide("a", "u-1", "approve");
    assert_eq!(
        result,
        json!({ "recorded": true, "aggregatorStatus": "resolved", "resumeScheduled": true })
    );
    let output = &h.step("a").output;
    assert_eq!(output["decision"], "approve");
    assert_eq!(output["approveCount"], 1);
    assert_eq!(output["mandatoryApproveCount"], 1);
    assert_eq!(output["totalResponses"], 1);
    assert!(output.get("rejectedBy").is_none());
    let completed = h.events_of("step.completed");
    assert_eq!(
        completed[0].data,
        json!({ "aggregatorStatus": "resolved", "nodeType": "human", "decision": "approve" })
    );
}

#[test]
fn mandatory_reviewers_all_approve_before_resolving() {
    let mut h = start(definition(
        vec![human("a", &[("u-1", true), ("u-2", true)]), mock("ok"), mock("no")],
        vec![edge("a", "ok", "approve"), edge("a", "no", "reject")],
    ));
    let first = h.decide("a", "u-1", "approve");
    assert_eq!(first["aggregatorStatus"], "pending");
    assert_eq!(first["resumeScheduled"], false);
    assert_eq!(h.status_of("a"), StepStatus::Waiting);
    h.decide("a", "u-2", "approve");
    assert_eq!(h.status_of("a"), StepStatus::Completed);
}

#[test]
fn unrouted_failure_fails_the_execution() {
    let mut h = start(two_step());
    let a = h.step_id("a");
    h.apply(Command::ResolveStep {
        step_id: a,
        action: ResolveAction::ForceFail,
        actor_id: "admin".into(),
        output: None,
        reason: Some("broken".into()),
    });
    assert_eq!(h.status_of("a"), StepStatus::Failed);
    assert_eq!(h.state.status, ExecutionStatus::Failed);
    assert_eq!(h.failure_code(), Some("step-failed"));
}

#[test]
fn breach_without_route_fails_and_cancels_open_steps() {
    let mut body = definition(
        vec![human("a", &[("u-a", true)]), human("b", &[("u-b", true)]), mock("no")],
        vec![edge("a", "no", "reject"), on_status("a", "no", "failed"), edge("b", "no", "reject")],
    );
    body["nodes"][0]["slaMs"] = json!(1000);
    let mut h = start(body);
    let a = h.step_id("a");
    h.apply(Command::TimerFired { kind: TimerKind::SlaBreach, step_id: a });
    assert_eq!(h.status_of("a"), StepStatus::Breached);
    assert_eq!(h.status_of("b"), StepStatus::Cancelled);
    assert_eq!(h.events_of("step.cancelled")[0].data["actorId"], "system:execution-failed");
    assert_eq!(h.state.status, ExecutionStatus::Failed);
    assert_eq!(h.failure_code(), Some("step-breached"));
    assert_eq!(h.external_types().last().map(String::as_str), Some("execution.failed"));
    assert_eq!(h.events_of("execution.failed")[0].data, Value::Null);
}

#[test]
fn stale_sla_timer_changes_nothing() {
    let mut body = two_step();
    if let Some(edges) = body["edges"].as_array_mut() {
        edges.push(on_status("a", "no", "breached"));
    }
    body["nodes"][0]["slaMs"] = json!(1000);
    let mut h = start(body);
    let a = h.step_id("a");
    h.decide("a", "u-a", "approve");
    assert!(h.last.timers_cleared.contains(&format!("sla:{a}")));
    let seq = h.state.next_seq;
    h.apply(Command::TimerFired { kind: TimerKind::SlaBreach, step_id: a });
    assert_eq!(h.state.next_seq, seq);
    assert!(h.last.events.is_empty());
}

#[test]
fn cancel_execution_cancels_open_steps_and_is_a_noop_when_terminal() {
    let mut h = start(two_step());
    let result = h.apply(Command::CancelExecution { reason: Some("stop".into()) });
    assert_eq!(result, json!({ "cancelled": true, "executionId": "exec_1000_abcdefgh" }));
    assert_eq!(h.status_of("a"), StepStatus::Cancelled);
    assert_eq!(h.events_of("step.cancelled")[0].data["actorId"], "system:execution-cancel");
    assert_eq!(h.events_of("execution.cancelled")[0].data, json!({ "reason": "stop" }));
    assert_eq!(h.state.status, ExecutionStatus::Cancelled);
    assert_eq!(h.state.cancelled_at, Some(h.now_ms));

    h.apply(Command::CancelExecution { reason: None });
    assert!(h.last.events.is_empty());
}

#[test]
fn events_are_numbered_and_marked() {
    let mut h = start(two_step());
    h.decide("a", "u-a", "approve");
    let seqs: Vec<u64> = h.events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=h.events.len() as u64).collect();
    assert_eq!(seqs, expected);
    for event in &h.events {
        assert_eq!(
            event.external,
            crate::model::EXTERNAL_EVENT_TYPES.contains(&event.event_type.as_str())
        );
    }
    assert!(h.events.iter().any(|e| e.event_type == "step.scheduled" && !e.external));
}

#[test]
fn roots_exclude_exhausted_routes_and_none_is_refused() {
    let v = validated(&example("revision-loop"));
    assert_eq!(root_node_ids(&v.spec, &v.compiled), ["draft"]);

    let mut compiled = v.compiled.clone();
    let mut back = compiled.forward_edges[0].clone();
    back.from = "review".into();
    back.to = "draft".into();
    compiled.forward_edges.push(back);
    let refused = dispatch(&v.spec, &compiled, params(json!({})), T0, RAND).unwrap_err();
    assert_eq!(refused.status, ErrorStatus::FailedPrecondition);
}

#[test]
fn state_round_trips_through_json() {
    let mut h = start(two_step());
    h.decide("a", "u-a", "reject");
    let text = serde_json::to_string(&h.state).expect("serialize");
    assert!(text.contains("\"definitionVersion\":1"));
    let back: ExecutionState = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back, h.state);
}
