//! The step endpoints: reviewer decisions, cancel, resolve, agent resolutions.

use super::*;

fn single() -> Value {
    definition(
        vec![human("a", &[("u-1", true), ("u-2", false)]), mock("ok"), mock("no")],
        vec![edge("a", "ok", "approve"), edge("a", "no", "reject")],
    )
}

fn decision(h: &mut Harness, reviewer: &str, decision: &str) -> Result<Value, CommandError> {
    let step_id = h.step_id("a");
    h.try_apply(Command::RecordReviewerDecision {
        step_id,
        reviewer_id: reviewer.into(),
        decision: Decision::from_name(decision).expect("approve or reject"),
        reason: None,
    })
    .map(|e| e.result)
}

#[test]
fn reviewer_decision_results() {
    let mut h = start(single());
    let unknown = decision(&mut h, "stranger", "approve").unwrap();
    assert_eq!(unknown["recorded"], false);
    assert_eq!(unknown["reason"], "unknown-responder");
    assert_eq!(unknown["aggregatorStatus"], "pending");
    assert!(h.step("a").decisions.is_empty());

    let optional = decision(&mut h, "u-2", "approve").unwrap();
    assert_eq!(optional["recorded"], true);
    assert_eq!(optional["aggregatorStatus"], "pending");
    let again = decision(&mut h, "u-2", "reject").unwrap();
    assert_eq!(
        (again["recorded"].clone(), again["reason"].clone()),
        (json!(false), json!("idempotent"))
    );
    assert_eq!(h.status_of("a"), StepStatus::Waiting);

    let last = decision(&mut h, "u-1", "reject").unwrap();
    assert_eq!(
        last,
        json!({ "recorded": true, "aggregatorStatus": "rejected", "resumeScheduled": true, "rejectionReason": null })
    );
    let output = &h.step("a").output;
    assert_eq!(output["rejectedBy"], "u-1");
    assert_eq!(output["rejectorMandatory"], true);
}

#[test]
fn reviewer_decision_on_terminal_step_and_errors() {
    let mut h = start(single());
    decision(&mut h, "u-1", "approve").unwrap();
    let late = decision(&mut h, "u-2", "reject").unwrap();
    assert_eq!(late["reason"], "already-terminal");
    assert_eq!(late["aggregatorStatus"], "resolved");

    let ok = h.step_id("ok");
    let cases = [
        (ok, "approve", ErrorStatus::FailedPrecondition),
        ("nope".to_string(), "approve", ErrorStatus::NotFound),
    ];
    for (step_id, decision, status) in cases {
        let command = Command::RecordReviewerDecision {
            step_id: step_id.clone(),
            reviewer_id: "u-1".into(),
            decision: Decision::from_name(decision).expect("approve or reject"),
            reason: None,
        };
        assert_eq!(h.try_apply(command).unwrap_err().status, status, "{step_id}");
    }
}

fn resolve(
    h: &mut Harness,
    step_id: &str,
    action: ResolveAction,
    actor: &str,
) -> Result<Value, CommandError> {
    h.try_apply(Command::ResolveStep {
        step_id: step_id.into(),
        action,
        actor_id: actor.into(),
        output: Some(agent::as_map(json!({ "note": "kept", "decision": "caller" }))),
        reason: Some("why".into()),
    })
    .map(|e| e.result)
}

#[test]
fn resolve_actions_on_a_waiting_human() {
    use ResolveAction::*;
    let cases = [
        (ForceApprove, "admin", "completed", Some("approve"), "ok"),
        (ForceReject, "admin", "completed", Some("reject"), "no"),
        (ForceComplete, "admin", "completed", Some("caller"), ""),
        (ForceFail, "admin", "failed", Some("caller"), ""),
        (ReviewerApprove, "u-2", "completed", Some("approve"), "ok"),
        (ReviewerReject, "u-1", "completed", Some("reject"), "no"),
    ];
    for (action, actor, status, decision, next) in cases {
        let mut h = start(single());
        let a = h.step_id("a");
        let result = resolve(&mut h, &a, action, actor).unwrap();
        assert_eq!(
            result,
            json!({ "resolved": true, "executionId": "exec_1000_abcdefgh", "stepId": a, "action": action.as_str() })
        );
        let step = h.step("a");
        assert_eq!(step.status.as_str(), status, "{action:?}");
        assert_eq!(step.decision(), decision, "{action:?}");
        assert_eq!(step.output["note"], "kept");
        assert!(step.output.contains_key("overriddenAt"));
        assert!(!step.output.contains_key("rejectedBy"), "{action:?}");
        let overridden = h.events_of("step.overridden");
        assert_eq!(overridden[0].data["actorId"], actor);
        assert!(!overridden[0].external);
        if !next.is_empty() {
            assert_eq!(h.status_of(next), StepStatus::Completed, "{action:?}");
        }
    }
}

#[test]
fn resolve_errors() {
    use ResolveAction::*;
    let mut h = start(single());
    let a = h.step_id("a");
    let cases = [
        (
            "nope",
            ForceApprove,
            "admin",
            ErrorStatus::FailedPrecondition,
            "resolveStep not applied: step-not-found",
        ),
        ("nope", ReviewerApprove, "u-1", ErrorStatus::NotFound, "step nope not found"),
        (
            a.as_str(),
            ReviewerApprove,
            "stranger",
            ErrorStatus::PermissionDenied,
            "stranger is not a declared reviewer of step",
        ),
    ];
    for (step_id, action, actor, status, message) in cases {
        let error = resolve(&mut h, step_id, action, actor).unwrap_err();
        assert_eq!(error.status, status, "{action:?}");
        assert!(error.message.starts_with(message), "{}", error.message);
    }

    resolve(&mut h, &a, ForceApprove, "admin").unwrap();
    let ok = h.step_id("ok");
    let terminal = [(a.clone(), ForceComplete, "admin"), (ok, ReviewerApprove, "u-1")];
    for (step_id, action, actor) in terminal {
        let error = resolve(&mut h, &step_id, action, actor).unwrap_err();
        assert_eq!(error.status, ErrorStatus::FailedPrecondition, "{action:?}");
    }
}

#[test]
fn force_approve_needs_waiting_and_force_complete_takes_running() {
    let body = definition(
        vec![
            json!({ "nodeId": "hook", "type": "webhook", "config": { "url": "https://cms.example.com/x" } }),
        ],
        vec![],
    );
    let mut h = start(body);
    let hook = h.step_id("hook");
    assert_eq!(h.status_of("hook"), StepStatus::Running);
    let refused = resolve(&mut h, &hook, ResolveAction::ForceApprove, "admin").unwrap_err();
    assert_eq!(refused.status, ErrorStatus::FailedPrecondition);
    let reviewer = resolve(&mut h, &hook, ResolveAction::ReviewerApprove, "admin").unwrap_err();
    assert_eq!(reviewer.status, ErrorStatus::FailedPrecondition);
    resolve(&mut h, &hook, ResolveAction::ForceComplete, "admin").unwrap();
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn cancel_step_and_its_errors() {
    let mut h = start(single());
    let a = h.step_id("a");
    let cancel = |step_id: &str| Command::CancelStep {
        step_id: step_id.into(),
        actor_id: "admin".into(),
        reason: Some("not needed".into()),
    };
    let result = h.apply(cancel(&a));
    assert_eq!(
        result,
        json!({ "cancelled": true, "executionId": "exec_1000_abcdefgh", "stepId": a })
    );
    assert_eq!(
        h.events_of("step.cancelled")[0].data,
        json!({ "actorId": "admin", "reason": "not needed" })
    );
    assert_eq!(h.steps().len(), 1, "no successor of a cancelled step");
    assert_eq!(h.state.status, ExecutionStatus::Completed);

    assert_eq!(h.try_apply(cancel(&a)).unwrap_err().status, ErrorStatus::FailedPrecondition);
    assert_eq!(h.try_apply(cancel("nope")).unwrap_err().status, ErrorStatus::NotFound);
}

#[test]
fn agent_resolution_is_refused() {
    let mut h = start(single());
    let cases = [
        (h.step_id("a"), ErrorStatus::FailedPrecondition),
        (h.step_id("a"), ErrorStatus::FailedPrecondition),
        ("nope".into(), ErrorStatus::NotFound),
    ];
    for (step_id, status) in cases {
        let command = Command::RecordAgentResolution {
            step_id,
            response_id: "r1".into(),
            resolution: "resolved".into(),
            actor_id: "admin".into(),
            reason: None,
        };
        assert_eq!(h.try_apply(command).unwrap_err().status, status);
    }
}
