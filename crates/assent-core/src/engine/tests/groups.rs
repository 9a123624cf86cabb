//! Group policies, required members, collective branches.

use super::*;

fn grouped(policy: &str, quorum: u32, required: &[&str], edges: Vec<Value>) -> Value {
    let mut body = definition(
        vec![
            mock("start"),
            human("m1", &[("u1", true)]),
            human("m2", &[("u2", true)]),
            human("m3", &[("u3", true)]),
            mock("next"),
            mock("back"),
        ],
        edges,
    );
    if let Some(edges) = body["edges"].as_array_mut() {
        edges.insert(0, json!({ "from": "start", "to": { "kind": "group", "groupId": "g" } }));
    }
    body["groups"] = json!([{
        "groupId": "g", "memberNodeIds": ["m1", "m2", "m3"], "expectedSteps": 3,
        "quorum": quorum, "onQuorumMet": policy, "requiredNodeIds": required,
    }]);
    body
}

fn member_edges() -> Vec<Value> {
    ["m1", "m2", "m3"]
        .iter()
        .flat_map(|m| [edge(m, "next", "approve"), edge(m, "back", "reject")])
        .collect()
}

#[test]
fn wait_all_fans_out_per_member_and_emits_quorum_once() {
    let mut h = start(grouped("waitAll", 2, &[], member_edges()));
    assert_eq!(h.step("m1").group_id.as_deref(), Some("g"));
    h.decide("m1", "u1", "approve");
    h.decide("m2", "u2", "approve");
    h.decide("m3", "u3", "approve");
    let met = h.events_of("group.quorum-met");
    assert_eq!(met.len(), 1);
    assert_eq!(
        met[0].data,
        json!({ "groupId": "g", "total": 2, "quorum": 2, "completedTotal": 2, "expectedSteps": 3 })
    );
    let nexts = h.state.steps.iter().filter(|s| s.node_id == "next").count();
    assert_eq!(nexts, 3);
    assert_eq!(h.events_of("parallel-group.completed").len(), 1);
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn cancel_on_quorum_cancels_open_siblings() {
    let mut h = start(grouped("cancelOnQuorum", 1, &[], member_edges()));
    h.decide("m2", "u2", "approve");
    assert_eq!(h.status_of("m1"), StepStatus::Cancelled);
    assert_eq!(h.status_of("m3"), StepStatus::Cancelled);
    let cancelled = h.events_of("step.cancelled");
    assert_eq!(
        cancelled[0].data,
        json!({ "actorId": "system:group-quorum", "reason": "group-quorum-met" })
    );
    let m2 = h.step_id("m2");
    assert_eq!(h.step_id("next"), format!("{m2}__to__next"));
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

#[test]
fn required_member_gates_quorum() {
    let mut h = start(grouped("joinOnQuorum", 1, &["m3"], member_edges()));
    h.decide("m1", "u1", "approve");
    assert!(h.events_of("group.quorum-met").is_empty());
    h.decide("m3", "u3", "approve");
    assert_eq!(h.events_of("group.quorum-met").len(), 1);
    assert_eq!(h.step_id("next"), "group_g__to__next");
    assert_eq!(h.step("next").group_id, None);
    assert_eq!(h.status_of("m2"), StepStatus::Cancelled);
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}

fn collective() -> Value {
    let group = |on: &str, to: &str| json!({ "from": { "kind": "group", "groupId": "g" }, "to": to, "on": on });
    grouped("waitAll", 3, &[], vec![group("approve", "next"), group("reject", "back")])
}

#[test]
fn collective_branch_by_unanimity() {
    let cases =
        [(["approve", "approve", "approve"], "next"), (["approve", "reject", "approve"], "back")];
    for (decisions, taken) in cases {
        let mut h = start(collective());
        for (i, decision) in decisions.iter().enumerate() {
            h.decide(&format!("m{}", i + 1), &format!("u{}", i + 1), decision);
        }
        assert_eq!(h.step_id(taken), format!("group_g__to__{taken}"), "{decisions:?}");
        let spawned: Vec<String> =
            h.steps().into_iter().map(|(n, _)| n).filter(|n| n == "next" || n == "back").collect();
        assert_eq!(spawned, [taken], "{decisions:?}");
        assert_eq!(h.state.status, ExecutionStatus::Completed, "{decisions:?}");
    }
}

#[test]
fn join_on_quorum_unreachable_by_count() {
    let mut h = start(grouped("joinOnQuorum", 3, &[], member_edges()));
    h.decide("m1", "u1", "approve");
    h.decide("m2", "u2", "reject");
    assert_eq!(h.status_of("m3"), StepStatus::Cancelled);
    assert_eq!(h.step_id("back"), "group_g__to__back");
    assert!(h.state.steps.iter().all(|s| s.node_id != "next"));
    assert!(!h.state.groups[0].quorum_met);
    assert_eq!(h.state.status, ExecutionStatus::Completed);
}
