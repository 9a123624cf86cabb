//! Agent, webhook and notification steps: work items, timers, retries.

use super::*;

fn agent_then(config: Value) -> Value {
    let mut config = config;
    config["agentId"] = json!("checker");
    definition(
        vec![json!({ "nodeId": "check", "type": "agent", "config": config }), mock("next")],
        vec![edge("check", "next", "approve")],
    )
}

fn started(h: &mut Harness) -> String {
    let check = h.step_id("check");
    let outcome = WorkOutcome::AgentStarted { agent_execution_id: "run-1".into() };
    h.apply(Command::WorkDone { step_id: check.clone(), attempt: 0, outcome });
    check
}

#[test]
fn agent_outcomes() {
    let cases = [
        (AgentStatus::Passed, "completed", "approve", ExecutionStatus::Completed),
        (AgentStatus::Skipped, "completed", "approve", ExecutionStatus::Completed),
        (AgentStatus::Failed, "failed", "reject", ExecutionStatus::Failed),
        (AgentStatus::Partial, "failed", "reject", ExecutionStatus::Failed),
        (AgentStatus::Error, "failed", "reject", ExecutionStatus::Failed),
    ];
    for (status, step_status, decision, execution) in cases {
        let mut h = start(agent_then(json!({ "url": "https://example.com/doc" })));
        let check = started(&mut h);
        let awaiting = h.events_of("step.awaiting-approval");
        assert_eq!(
            awaiting[0].data,
            json!({ "agentId": "checker", "agentExecutionId": "run-1", "pollIntervalMs": 15000 })
        );
        let outcome =
            WorkOutcome::AgentFinished { status, results_summary: json!({}), duration_ms: None };
        h.apply(Command::WorkDone { step_id: check, attempt: 0, outcome });
        let step = h.step("check");
        assert_eq!(step.status.as_str(), step_status, "{status:?}");
        assert_eq!(step.decision(), Some(decision), "{status:?}");
        assert_eq!(step.output["agentExecutionStatus"], status.as_str());
        assert_eq!(h.state.status, execution, "{status:?}");
    }
}

#[test]
fn agent_timeout_fails_the_step() {
    let mut h =
        start(agent_then(json!({ "url": "https://example.com/doc", "agentMaxRuntimeMs": 60000 })));
    let timeout = h.last.timers_set.iter().find(|t| t.kind == TimerKind::AgentTimeout).cloned();
    assert_eq!(timeout.map(|t| t.due_at_ms), Some(T0 + 60_000));
    let check = started(&mut h);
    h.apply(Command::TimerFired { kind: TimerKind::AgentTimeout, step_id: check.clone() });
    assert_eq!(h.step("check").error.as_ref().map(|e| e.code.as_str()), Some("agent-timeout"));
    assert_eq!(h.step("check").decision(), Some("reject"), "a run that did not pass rejects");
    let failed = &h.events_of("step.failed")[0].data;
    assert_eq!(
        (&failed["agentExecutionStatus"], &failed["source"]),
        (&json!("timeout"), &json!("timeout"))
    );
    assert!(h.last.timers_cleared.contains(&format!("poll:{check}")));
    assert_eq!(h.failure_code(), Some("step-failed"));
}

#[test]
fn an_unreachable_agent_runner_fails_the_step_as_a_rejection() {
    let mut h = start(agent_then(json!({ "url": "https://example.com/doc" })));
    let check = h.step_id("check");
    for attempt in 0..=3 {
        let outcome = WorkOutcome::TransientFailure {
            code: "agent-runner-unavailable".into(),
            message: "the agent runner could not be reached".into(),
            data: serde_json::Value::Null,
        };
        h.apply(Command::WorkDone { step_id: check.clone(), attempt, outcome });
        if attempt < 3 {
            h.apply(Command::TimerFired { kind: TimerKind::Retry, step_id: check.clone() });
        }
    }
    assert_eq!(h.status_of("check"), StepStatus::Failed);
    assert_eq!(h.step("check").decision(), Some("reject"));
    let failed = &h.events_of("step.failed")[0].data;
    let expected = json!({"agentExecutionId": null, "agentExecutionStatus": "error",
                          "decision": "reject", "source": "runner"});
    assert_eq!(failed, &expected);
}

#[test]
fn agent_start_failures() {
    let cases = [
        (json!({ "urlPath": "missing.path" }), "agent-url-unresolved"),
        (
            json!({ "url": "https://example.com/doc", "blocking": true, "resolutionPolicy": { "kind": "allResolved" } }),
            "agent-blocking-not-supported",
        ),
    ];
    for (config, code) in cases {
        let h = start(agent_then(config));
        assert_eq!(h.step("check").error.as_ref().map(|e| e.code.as_str()), Some(code));
        assert_eq!(h.state.status, ExecutionStatus::Failed, "{code}");
    }
}

#[test]
fn user_context_and_url_normalisation() {
    let config = json!({ "urlPath": "site", "userContextMapping": { "name": "user.name", "none": "user.x" } });
    let context = json!({ "site": "http://plain.example.com", "user": { "name": "Ada" } });
    let h = start_with(agent_then(config), context);
    let Some(WorkItem::StartAgent { request, .. }) = h.last.work.first() else { panic!("no work") };
    assert_eq!(request.url, "http://plain.example.com");
    assert_eq!(request.user_context, json!({ "name": "Ada", "none": null }));
}

#[test]
fn transient_failures_retry_then_fail() {
    let body = definition(
        vec![
            json!({ "nodeId": "hook", "type": "webhook", "config": { "url": "https://cms.example.com/x" } }),
        ],
        vec![],
    );
    let mut h = start(body);
    let hook = h.step_id("hook");
    for (attempt, delay_ms) in [(0, 2_000), (1, 8_000), (2, 32_000)] {
        let outcome = WorkOutcome::TransientFailure {
            code: "http-503".into(),
            message: "busy".into(),
            data: json!({}),
        };
        h.apply(Command::WorkDone { step_id: hook.clone(), attempt, outcome });
        let retry = &h.last.timers_set[0];
        assert_eq!(
            (retry.key.clone(), retry.due_at_ms),
            (format!("retry:{hook}"), h.now_ms + delay_ms)
        );
        assert_eq!(h.step("hook").retry_count, attempt + 1);
        h.apply(Command::TimerFired { kind: TimerKind::Retry, step_id: hook.clone() });
        assert!(
            matches!(h.last.work.first(), Some(WorkItem::CallWebhook { attempt: a, .. }) if *a == attempt + 1)
        );
    }
    let stale = WorkOutcome::PermanentFailure {
        code: "old".into(),
        message: "old".into(),
        data: json!({}),
    };
    h.apply(Command::WorkDone { step_id: hook.clone(), attempt: 0, outcome: stale });
    assert_eq!(h.status_of("hook"), StepStatus::Running);

    let data = json!({ "httpStatus": 503, "latencyMs": 10, "retryClass": "transient" });
    let outcome = WorkOutcome::TransientFailure {
        code: "http-503".into(),
        message: "busy".into(),
        data: data.clone(),
    };
    h.apply(Command::WorkDone { step_id: hook, attempt: 3, outcome });
    assert_eq!(h.status_of("hook"), StepStatus::Failed);
    assert_eq!(h.events_of("step.failed")[0].data, data);
    assert_eq!(h.events_of("step.retried").len(), 3);
    assert_eq!(h.state.status, ExecutionStatus::Failed);
}
