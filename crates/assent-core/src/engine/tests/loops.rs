//! Revision loops.

use super::*;

fn review_loop(max_iterations: u32, exhausted_route: bool, reviewers: &[(&str, bool)]) -> Value {
    let mut edges = vec![
        edge("draft", "review", "always"),
        edge("review", "publish", "approve"),
        json!({ "from": "review", "to": "draft", "on": "reject", "loop": { "maxIterations": max_iterations } }),
    ];
    if exhausted_route {
        edges.push(edge("review", "escalate", "exhausted"));
    }
    definition(
        vec![mock("draft"), human("review", reviewers), mock("publish"), mock("escalate")],
        edges,
    )
}

#[test]
fn exhaustion_without_route_fails_the_execution() {
    let mut h = start(review_loop(2, false, &[("u-ed", true)]));
    h.decide("review", "u-ed", "reject");
    assert_eq!(h.state.status, ExecutionStatus::Running);
    h.decide("review", "u-ed", "reject");
    assert_eq!(h.events_of("loop.exhausted").len(), 1);
    assert_eq!(h.state.status, ExecutionStatus::Failed);
    assert_eq!(h.failure_code(), Some("loop-exhausted"));
    assert!(h.state.loops[0].exhausted);
}

#[test]
fn exhaustion_with_route_counts_the_first_pass() {
    let mut h = start(review_loop(1, true, &[("u-ed", true)]));
    h.decide("review", "u-ed", "reject");
    assert!(h.events_of("loop.iteration-started").is_empty());
    assert_eq!(h.status_of("escalate"), StepStatus::Completed);
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn optional_reviewer_rejection_is_unrouted_inside_a_loop() {
    let mut h = start(review_loop(3, true, &[("u-ed", true), ("u-opt", false)]));
    h.decide("review", "u-opt", "reject");
    assert!(h.events_of("loop.iteration-started").is_empty());
    assert_eq!(h.state.status, ExecutionStatus::Failed);
    assert_eq!(h.failure_code(), Some("unrouted-rejection"));
}

#[test]
fn force_reject_does_not_iterate() {
    let mut h = start(review_loop(3, true, &[("u-ed", true)]));
    let review = h.step_id("review");
    h.apply(Command::ResolveStep {
        step_id: review,
        action: ResolveAction::ForceReject,
        actor_id: "admin".into(),
        output: None,
        reason: None,
    });
    assert!(h.events_of("loop.iteration-started").is_empty());
    assert_eq!(h.failure_code(), Some("unrouted-rejection"));
}

#[test]
fn restart_cancels_open_body_steps() {
    let hook = json!({ "nodeId": "side", "type": "webhook", "config": { "url": "https://cms.example.com/x" } });
    let body = definition(
        vec![mock("draft"), hook, human("review", &[("u-ed", true)]), mock("publish")],
        vec![
            edge("draft", "side", "always"),
            edge("draft", "review", "always"),
            edge("side", "review", "always"),
            edge("review", "publish", "approve"),
            json!({ "from": "review", "to": "draft", "on": "reject", "loop": { "maxIterations": 3 } }),
        ],
    );
    let mut h = start(body);
    let side = h.step_id("side");
    assert_eq!(h.status_of("side"), StepStatus::Running);
    h.decide("review", "u-ed", "reject");
    let old_side = h.state.step(&side).expect("old side");
    assert_eq!(old_side.status, StepStatus::Cancelled);
    let cancelled = h.events_of("step.cancelled");
    assert_eq!(
        cancelled[0].data,
        json!({ "actorId": "system:loop-restart", "reason": "loop-restart" })
    );
    assert_eq!(h.step("side").iteration, 2);
    assert_eq!(h.status_of("side"), StepStatus::Running);
}
