//! Every example definition, driven to its end.

use super::*;

#[test]
fn sequential_signoff_approved_by_both() {
    let mut h = start(example("sequential-signoff"));
    assert_eq!(h.state.status, ExecutionStatus::Running);
    let root = h.step_id("manager");
    assert_eq!(root, format!("step_manager_{T0}_{RAND}"));
    let dispatched = &h.events[0];
    assert_eq!(dispatched.event_type, "execution.dispatched");
    assert_eq!(
        dispatched.data,
        json!({ "definitionId": "sequential-signoff", "definitionVersion": 1, "rootStepIds": [root] })
    );

    h.decide("manager", "u-manager", "approve");
    assert_eq!(h.step_id("legal"), format!("{root}__to__legal"));
    h.decide("legal", "u-legal", "approve");
    assert_eq!(h.step_id("publish"), format!("{root}__to__legal__to__publish"));
    assert_eq!(h.state.status, ExecutionStatus::Completed);
    assert_eq!(h.external_types().last().map(String::as_str), Some("execution.completed"));
}

#[test]
fn marketing_copy_rejection_goes_to_revision() {
    let mut h = start(example("marketing-copy-approval"));
    assert_eq!(h.status_of("agent-draft"), StepStatus::Completed);
    assert_eq!(h.status_of("legal-review"), StepStatus::Waiting);
    let result = h.decide("legal-review", "u-brand", "reject");
    assert_eq!(result["aggregatorStatus"], "rejected");
    assert_eq!(h.step("legal-review").output["rejectorMandatory"], false);
    assert_eq!(h.status_of("agent-revise"), StepStatus::Completed);
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn parallel_quorum_joins_once_required_and_two_approve() {
    let mut h = start(example("parallel-quorum"));
    h.decide("brand", "u-brand", "approve");
    assert!(h.events_of("group.quorum-met").is_empty(), "legal is required");
    h.decide("legal", "u-legal", "approve");
    assert_eq!(h.status_of("ops"), StepStatus::Cancelled);
    assert_eq!(h.step_id("publish"), "group_reviewers__to__publish");
    let input = &h.step("publish").input;
    assert_eq!(input["groupId"], "reviewers");
    assert_eq!(input["totalApproved"], 2);
    assert_eq!(input["quorum"], 2);
    assert!(input["groupOutputs"]["legal"].is_object());
    assert_eq!(h.state.status, ExecutionStatus::Completed);
    assert_eq!(
        h.external_types(),
        [
            "execution.dispatched",
            "step.completed",
            "step.awaiting-approval",
            "step.awaiting-approval",
            "step.awaiting-approval",
            "step.completed",
            "step.completed",
            "group.quorum-met",
            "step.cancelled",
            "step.completed",
            "execution.completed",
        ]
    );
}

#[test]
fn parallel_quorum_unreachable_takes_the_reject_route() {
    let mut h = start(example("parallel-quorum"));
    h.decide("legal", "u-legal", "reject");
    assert_eq!(h.status_of("brand"), StepStatus::Cancelled);
    let cancelled = h.events_of("step.cancelled");
    assert_eq!(cancelled[0].data["reason"], "group-quorum-unreachable");
    assert_eq!(cancelled[0].data["actorId"], "system:group-quorum");
    assert_eq!(h.step_id("revise"), "group_reviewers__to__revise");
    assert!(h.step("revise").input["groupOutputs"]["legal"].is_object());
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn revision_loop_approves_in_the_second_pass() {
    let mut h = start(example("revision-loop"));
    let first_review = h.step_id("review");
    h.decide("review", "u-editor", "reject");
    let entry = format!("{first_review}__loop_2__to__draft");
    assert_eq!(h.step_id("draft"), entry);
    assert_eq!(h.step("draft").iteration, 2);
    let attempts = &h.step("draft").input["previousAttempts"];
    assert_eq!(attempts[0]["iteration"], 1);
    assert_eq!(attempts[0]["rejectedBy"], "u-editor");
    let started = h.events_of("loop.iteration-started");
    assert_eq!(
        started[0].data,
        json!({ "loopId": "loop_review__to__draft", "iteration": 2, "triggeredBy": "rejection" })
    );
    h.decide("review", "u-editor", "approve");
    assert_eq!(h.status_of("publish"), StepStatus::Completed);
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn revision_loop_exhausts_into_escalation() {
    let mut h = start(example("revision-loop"));
    for _ in 0..3 {
        h.decide("review", "u-editor", "reject");
    }
    assert_eq!(h.events_of("loop.iteration-started").len(), 2);
    let exhausted = h.events_of("loop.exhausted");
    assert_eq!(exhausted[0].data["iteration"], 3);
    assert_eq!(exhausted[0].data["lastRejectedBy"], "u-editor");
    let last_review = h.step_id("review");
    assert_eq!(h.step_id("escalate"), format!("{last_review}__exhausted__to__escalate"));
    assert_eq!(h.step("escalate").input["previousAttempts"].as_array().map(Vec::len), Some(3));
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn sla_escalation_breach_routes_to_director() {
    let mut h = start(example("sla-escalation"));
    let review = h.step_id("review");
    let sla = h.last.timers_set.iter().find(|t| t.kind == TimerKind::SlaBreach).cloned();
    assert_eq!(sla.as_ref().map(|t| t.key.clone()), Some(format!("sla:{review}")));
    assert_eq!(sla.map(|t| t.due_at_ms), Some(T0 + 86_400_000));

    h.apply(Command::TimerFired { kind: TimerKind::SlaBreach, step_id: review.clone() });
    assert_eq!(h.status_of("review"), StepStatus::Breached);
    assert_eq!(h.events_of("step.breached")[0].data, json!({ "reason": "sla-exceeded" }));
    assert_eq!(h.step_id("director"), format!("{review}__to__director"));
    assert!(
        h.state.step(&format!("{review}__to__revise")).is_none(),
        "reject never fires on a breach"
    );
    h.decide("director", "u-director", "approve");
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn agent_check_with_findings_goes_to_review() {
    let context = json!({ "document": { "url": "my-app.example.com/page" } });
    let mut h = start_with(example("agent-check-then-review"), context);
    let check = h.step_id("brand-check");
    let Some(WorkItem::StartAgent { request, attempt: 0, .. }) = h.last.work.first().cloned()
    else {
        panic!("no StartAgent: {:?}", h.last.work)
    };
    assert_eq!(request.url, "https://my-app.example.com/page");
    assert_eq!(request.workflow_execution_id, "exec_1000_abcdefgh");
    assert_eq!(request.trigger, "workflow");
    assert_eq!(request.organization_id.as_deref(), Some("org-1"));

    let started = WorkOutcome::AgentStarted { agent_execution_id: "run-1".into() };
    h.apply(Command::WorkDone { step_id: check.clone(), attempt: 0, outcome: started });
    assert_eq!(h.status_of("brand-check"), StepStatus::Waiting);
    let poll = h.last.timers_set.iter().find(|t| t.kind == TimerKind::AgentPoll).cloned();
    assert_eq!(poll.map(|t| t.due_at_ms), Some(h.now_ms + 5_000));

    h.apply(Command::TimerFired { kind: TimerKind::AgentPoll, step_id: check.clone() });
    assert!(matches!(h.last.work.first(), Some(WorkItem::PollAgent { .. })));
    let summary = json!({ "totalFindings": 2 });
    let finished = WorkOutcome::AgentFinished {
        status: AgentStatus::Passed,
        results_summary: summary,
        duration_ms: Some(900),
    };
    h.apply(Command::WorkDone { step_id: check.clone(), attempt: 0, outcome: finished });
    assert_eq!(h.step("brand-check").output["decision"], "approve");
    assert!(h.last.timers_cleared.contains(&format!("agent-timeout:{check}")));
    assert_eq!(h.status_of("review"), StepStatus::Waiting);
    assert!(h.state.step(&format!("{check}__to__publish")).is_none());
    h.decide("review", "u-brand", "approve");
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn webhook_and_notification_after_approval() {
    let mut h = start(example("webhook-and-notification"));
    h.decide("review", "u-editor", "approve");
    let cms = h.step_id("cms-publish");
    assert_eq!(h.status_of("cms-publish"), StepStatus::Running);
    assert!(matches!(h.last.work.first(), Some(WorkItem::CallWebhook { attempt: 0, .. })));

    let output = agent::as_map(json!({ "httpStatus": 200, "responseJson": { "ok": true } }));
    h.apply(Command::WorkDone {
        step_id: cms,
        attempt: 0,
        outcome: WorkOutcome::Delivered { output },
    });
    let notify = h.step_id("tell-team");
    assert!(matches!(h.last.work.first(), Some(WorkItem::SendNotification { .. })));
    let output = agent::as_map(json!({ "channel": "email" }));
    h.apply(Command::WorkDone {
        step_id: notify,
        attempt: 0,
        outcome: WorkOutcome::Delivered { output },
    });
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}
