use super::testkit::examples;
use super::testkit::*;
use super::*;
use crate::model::Edge;

fn forward(from: &str, to: &str, role: EdgeRole, edge_index: usize) -> CompiledEdge {
    let when = match role {
        EdgeRole::Approve => Some(eq("output.decision", "approve")),
        EdgeRole::Reject => Some(eq("output.decision", "reject")),
        _ => None,
    };
    CompiledEdge {
        from: from.into(),
        to: to.into(),
        role,
        when,
        from_group_id: None,
        to_group_id: None,
        edge_index,
    }
}

fn from_group(mut edge: CompiledEdge, group_id: &str) -> CompiledEdge {
    edge.from_group_id = Some(group_id.into());
    edge
}

fn to_group(mut edge: CompiledEdge, group_id: &str) -> CompiledEdge {
    edge.to_group_id = Some(group_id.into());
    edge
}

fn rule_message(spec: &DefinitionSpec) -> String {
    match compile(spec) {
        Err(e) => e.message,
        Ok(compiled) => panic!("expected a rule error, compiled {compiled:?}"),
    }
}

fn with_when(mut edge: Edge, when: Expr) -> Edge {
    edge.when = Some(when);
    edge
}

fn with_loop(mut edge: Edge, max_iterations: u32) -> Edge {
    edge.loop_max_iterations = Some(max_iterations);
    edge
}

#[test]
fn each_broken_rule_is_named() {
    let ab = || vec![agent("a"), agent("b")];
    let drafted_group = |policy| {
        spec(
            vec![agent("draft"), human("x"), human("y"), agent("out")],
            vec![
                edge("draft", "@g", Always),
                edge("x", "out", Reject),
                edge("y", "out", Reject),
                back_edge("@g", "draft", 2),
            ],
            vec![group("g", &["x", "y"], 1, policy)],
        )
    };
    let cases: Vec<(&str, DefinitionSpec, &str)> = vec![
        (
            "group to group",
            spec(
                ab(),
                vec![edge("@g1", "@g2", Always)],
                vec![group("g1", &["a"], 1, WaitAll), group("g2", &["b"], 1, WaitAll)],
            ),
            "edge 0 (group g1 -> group g2): an edge may not join two groups",
        ),
        (
            "custom without when",
            spec(ab(), vec![edge("a", "b", Custom)], vec![]),
            "edge 0 (a -> b): on=\"custom\" requires a non-empty \"when\"",
        ),
        (
            "when on approve",
            spec(ab(), vec![with_when(edge("a", "b", Approve), eq("output.x", 1))], vec![]),
            "edge 0 (a -> b): \"when\" is only allowed with on=\"custom\", not on=\"approve\"",
        ),
        (
            "loop on always",
            spec(ab(), vec![edge("a", "b", Always), with_loop(edge("b", "a", Always), 2)], vec![]),
            "edge 1 (b -> a): \"loop\" is only allowed with on=\"reject\", not on=\"always\"",
        ),
        (
            "loop into a group",
            spec(
                ab(),
                vec![edge("a", "b", Always), back_edge("b", "@g", 2)],
                vec![group("g", &["a"], 1, WaitAll)],
            ),
            "edge 1 (b -> group g): a loop back-edge must point at a node, not a group",
        ),
        (
            "loop that is not a back-edge",
            spec(ab(), vec![back_edge("a", "b", 2)], vec![]),
            "edge 0 (a -> b): \"loop\" requires a back-edge, but b is not an ancestor of a",
        ),
        (
            "group loop that is not a back-edge",
            spec(
                vec![agent("x"), agent("later")],
                vec![edge("@g", "later", Always), back_edge("@g", "later", 2)],
                vec![group("g", &["x"], 1, JoinOnQuorum)],
            ),
            "edge 1 (group g -> later): \"loop\" requires a back-edge, but later is not an \
             ancestor of any member of group g",
        ),
        (
            "self loop",
            spec(ab(), vec![edge("a", "b", Always), back_edge("b", "b", 2)], vec![]),
            "edge 1 (b -> b): \"loop\" requires a back-edge, but b is not an ancestor of b",
        ),
        (
            "group loop from waitAll",
            drafted_group(WaitAll),
            "edge 3 (group g -> draft): a loop back-edge from a group requires \
             onQuorumMet=\"joinOnQuorum\", but group g is waitAll",
        ),
        (
            "group loop from cancelOnQuorum",
            drafted_group(CancelOnQuorum),
            "edge 3 (group g -> draft): a loop back-edge from a group requires \
             onQuorumMet=\"joinOnQuorum\", but group g is cancelOnQuorum",
        ),
        (
            "reject to an ancestor without loop",
            spec(ab(), vec![edge("a", "b", Always), edge("b", "a", Reject)], vec![]),
            "edge 1 (b -> a): on=\"reject\" to an ancestor (a) requires \"loop\"",
        ),
        (
            "reject into a group holding an ancestor",
            spec(
                ab(),
                vec![edge("a", "b", Always), edge("b", "@g", Reject)],
                vec![group("g", &["a"], 1, WaitAll)],
            ),
            "edge 1 (b -> group g): on=\"reject\" to an ancestor (a) requires \"loop\"",
        ),
        (
            "forward reject from cancelOnQuorum group",
            spec(
                vec![agent("x"), agent("y"), agent("out")],
                vec![edge("@g", "out", Reject)],
                vec![group("g", &["x", "y"], 1, CancelOnQuorum)],
            ),
            "edge 0 (group g -> out): a forward on=\"reject\" from a cancelOnQuorum group never \
             fires",
        ),
        (
            "forward reject from joinOnQuorum group",
            spec(
                vec![agent("x"), agent("y"), agent("out")],
                vec![edge("@g", "out", Reject)],
                vec![group("g", &["x", "y"], 2, JoinOnQuorum)],
            ),
            "edge 0 (group g -> out): a forward on=\"reject\" from a joinOnQuorum group never \
             fires",
        ),
        (
            "exhausted without a loop sibling",
            spec(ab(), vec![edge("a", "b", Reject), edge("a", "b", Exhausted)], vec![]),
            "edge 1 (a -> b): on=\"exhausted\" requires a sibling on=\"reject\" edge with \"loop\" \
             from a",
        ),
        (
            "exhausted into a group",
            spec(
                vec![agent("a"), agent("b"), agent("c")],
                vec![edge("a", "b", Always), back_edge("b", "a", 2), edge("b", "@g", Exhausted)],
                vec![group("g", &["c"], 1, WaitAll)],
            ),
            "edge 2 (b -> group g): on=\"exhausted\" must point at a node, not a group",
        ),
        (
            "human without a reject edge",
            spec(
                vec![agent("draft"), human("manager-approval"), agent("publish")],
                vec![
                    edge("draft", "manager-approval", Always),
                    edge("manager-approval", "publish", Approve),
                ],
                vec![],
            ),
            "every human node must have at least one outgoing edge with on=\"reject\" (a forward \
             reject route or a reject back-edge): manager-approval",
        ),
        (
            "human group member without a reject edge",
            spec(
                vec![human("x"), human("y"), agent("out")],
                vec![edge("x", "out", Reject), edge("@g", "out", Approve)],
                vec![group("g", &["x", "y"], 1, WaitAll)],
            ),
            "every human node must have at least one outgoing edge with on=\"reject\" (a forward \
             reject route or a reject back-edge): y",
        ),
    ];
    for (name, spec, expected) in cases {
        assert_eq!(rule_message(&spec), expected, "case: {name}");
    }
}

#[test]
fn first_broken_edge_wins_and_edge_rules_come_before_node_rules() {
    let spec = spec(
        vec![human("lonely"), agent("a"), agent("b")],
        vec![edge("a", "b", Always), edge("a", "b", Custom), back_edge("a", "b", 2)],
        vec![],
    );
    assert_eq!(rule_message(&spec), "edge 1 (a -> b): on=\"custom\" requires a non-empty \"when\"");
}

#[test]
fn group_reject_edge_counts_for_its_human_members() {
    let spec = spec(
        vec![human("x"), human("y"), agent("yes"), agent("no")],
        vec![edge("@g", "yes", Approve), edge("@g", "no", Reject)],
        vec![group("g", &["x", "y"], 2, WaitAll)],
    );
    assert!(compile(&spec).is_ok());
}

#[test]
fn dangling_references_are_left_to_the_linter() {
    let spec = spec(
        vec![agent("a")],
        vec![edge("a", "ghost", Always), back_edge("ghost", "a", 2), edge("@nobody", "a", Reject)],
        vec![],
    );
    let compiled = compile(&spec).expect("compiles");
    assert_eq!(compiled, Compiled::default());
}

#[test]
fn sequential_chain() {
    let compiled = compile(&examples::sequential_signoff()).expect("compiles");
    assert_eq!(
        compiled.forward_edges,
        vec![
            forward("manager", "legal", Approve, 0),
            forward("manager", "notify-rejected", Reject, 1),
            forward("legal", "publish", Approve, 2),
            forward("legal", "notify-rejected", Reject, 3),
        ]
    );
    assert!(compiled.loops.is_empty());
}

#[test]
fn group_target_expands_to_each_member() {
    let compiled = compile(&examples::parallel_quorum()).expect("compiles");
    let into_group: Vec<CompiledEdge> =
        compiled.forward_edges.iter().filter(|e| e.edge_index == 0).cloned().collect();
    assert_eq!(
        into_group,
        vec![
            to_group(forward("draft", "legal", Always, 0), "reviewers"),
            to_group(forward("draft", "brand", Always, 0), "reviewers"),
            to_group(forward("draft", "ops", Always, 0), "reviewers"),
        ]
    );
    assert_eq!(compiled.forward_edges.len(), 3 + 6);
}

#[test]
fn join_on_quorum_group_source_expands_to_each_member() {
    let spec = spec(
        vec![agent("draft"), human("x"), human("y"), agent("publish")],
        vec![
            edge("draft", "@g", Always),
            edge("@g", "publish", Approve),
            back_edge("@g", "draft", 3),
        ],
        vec![group("g", &["x", "y"], 2, JoinOnQuorum)],
    );
    let compiled = compile(&spec).expect("compiles");
    assert_eq!(
        compiled.forward_edges,
        vec![
            to_group(forward("draft", "x", Always, 0), "g"),
            to_group(forward("draft", "y", Always, 0), "g"),
            from_group(forward("x", "publish", Approve, 1), "g"),
            from_group(forward("y", "publish", Approve, 1), "g"),
        ]
    );
}

#[test]
fn revision_loop_with_exhausted_route() {
    let compiled = compile(&examples::revision_loop()).expect("compiles");
    assert_eq!(
        compiled.forward_edges,
        vec![
            forward("draft", "review", Always, 0),
            forward("review", "publish", Approve, 1),
            forward("review", "escalate", Exhausted, 3),
        ]
    );
    assert_eq!(
        compiled.loops,
        vec![CompiledLoop {
            loop_id: "loop_review__to__draft".into(),
            entry_node_id: "draft".into(),
            body_node_ids: vec!["draft".into(), "review".into()],
            max_iterations: 3,
            on_exhausted: Some("escalate".into()),
            from_id: "review".into(),
            from_is_group: false,
            edge_index: 2,
        }]
    );
}

#[test]
fn loop_body_is_the_closure_between_entry_and_source_in_definition_order() {
    // side branches off the body (to "aside") and nodes before the entry stay out.
    let spec = spec(
        vec![agent("check"), human("review"), agent("fix"), agent("start"), agent("aside")],
        vec![
            edge("start", "fix", Always),
            edge("fix", "check", Always),
            edge("fix", "aside", Always),
            edge("check", "review", Always),
            back_edge("review", "fix", 4),
        ],
        vec![],
    );
    let compiled = compile(&spec).expect("compiles");
    assert_eq!(compiled.loops[0].body_node_ids, vec!["check", "review", "fix"]);
    assert_eq!(compiled.loops[0].on_exhausted, None);
}

#[test]
fn group_bounded_loop() {
    let compiled = compile(&examples::group_bounded_loop()).expect("compiles");
    assert_eq!(
        compiled.loops,
        vec![CompiledLoop {
            loop_id: "loop_reviewers__to__draft".into(),
            entry_node_id: "draft".into(),
            body_node_ids: vec!["draft".into(), "legal".into(), "brand".into()],
            max_iterations: 2,
            on_exhausted: Some("escalate".into()),
            from_id: "reviewers".into(),
            from_is_group: true,
            edge_index: 2,
        }]
    );
    let exhausted: Vec<&CompiledEdge> =
        compiled.forward_edges.iter().filter(|e| e.role == Exhausted).collect();
    assert_eq!(exhausted.len(), 2);
    assert!(exhausted.iter().all(|e| e.when.is_none() && e.to == "escalate"));
}

#[test]
fn custom_edges_keep_their_predicate() {
    let compiled = compile(&examples::sla_escalation()).expect("compiles");
    let breach = &compiled.forward_edges[2];
    assert_eq!((breach.role, breach.to.as_str()), (Custom, "director"));
    assert_eq!(breach.when, Some(eq("step.status", "breached")));
}

#[test]
fn every_example_compiles() {
    for (name, spec) in examples::all() {
        assert!(compile(&spec).is_ok(), "example {name}: {:?}", compile(&spec));
    }
}

#[test]
fn compiled_view_json() {
    let spec = spec(
        vec![agent("a"), agent("b"), agent("c")],
        vec![edge("a", "@g", Always), edge("b", "c", Always)],
        vec![group("g", &["b"], 1, WaitAll)],
    );
    let json = compile(&spec).expect("compiles").to_json();
    let expected = serde_json::json!({
        "forwardEdges": [
            {"from": "a", "to": "b", "role": "always", "when": null,
             "fromGroupId": null, "toGroupId": "g"},
            {"from": "b", "to": "c", "role": "always", "when": null,
             "fromGroupId": null, "toGroupId": null},
        ],
        "loops": [],
    });
    assert_eq!(json, expected);
    assert_eq!(
        serde_json::to_string(&json["forwardEdges"][0]).unwrap(),
        r#"{"from":"a","to":"b","role":"always","when":null,"fromGroupId":null,"toGroupId":"g"}"#
    );
}

#[test]
fn loop_region_json() {
    let compiled = compile(&examples::revision_loop()).expect("compiles");
    assert_eq!(
        serde_json::to_string(&loop_json(&compiled.loops[0])).unwrap(),
        concat!(
            r#"{"loopId":"loop_review__to__draft","entryNodeId":"draft","#,
            r#""bodyNodeIds":["draft","review"],"maxIterations":3,"#,
            r#""onExhausted":{"routeToNodeId":"escalate"}}"#
        )
    );
    let mut without_route = compiled.loops[0].clone();
    without_route.on_exhausted = None;
    assert_eq!(loop_json(&without_route)["onExhausted"], serde_json::Value::Null);
}
