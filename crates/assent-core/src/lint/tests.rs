use super::*;
use crate::compile::compile;
use crate::compile::testkit::examples;
use crate::compile::testkit::*;

fn lint_spec(spec: &DefinitionSpec) -> Vec<LintIssue> {
    let compiled = compile(spec).expect("the linter's inputs pass the edge-contract rules");
    lint(spec, &compiled)
}

/// `(code, nodeId, groupId, edgeIndex)` of a finding.
type Key<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<usize>);

fn keys(issues: &[LintIssue]) -> Vec<Key<'_>> {
    issues
        .iter()
        .map(|i| (i.code, i.node_id.as_deref(), i.group_id.as_deref(), i.edge_index))
        .collect()
}

struct Case {
    name: &'static str,
    spec: DefinitionSpec,
    code: &'static str,
    node_id: Option<&'static str>,
    group_id: Option<&'static str>,
    edge_index: Option<usize>,
}

fn case(name: &'static str, code: &'static str, spec: DefinitionSpec) -> Case {
    Case { name, spec, code, node_id: None, group_id: None, edge_index: None }
}

impl Case {
    fn node(mut self, id: &'static str) -> Case {
        self.node_id = Some(id);
        self
    }
    fn group(mut self, id: &'static str) -> Case {
        self.group_id = Some(id);
        self
    }
    fn edge(mut self, index: usize) -> Case {
        self.edge_index = Some(index);
        self
    }
}

fn with_groups(nodes: &[&str], groups: Vec<Group>) -> DefinitionSpec {
    spec(nodes.iter().map(|n| agent(n)).collect(), vec![], groups)
}

fn sized(mut group: Group, expected_steps: u32) -> Group {
    group.expected_steps = expected_steps;
    group
}

fn requiring(mut group: Group, required: &[&str]) -> Group {
    group.required_node_ids = required.iter().map(|r| r.to_string()).collect();
    group
}

fn cases() -> Vec<Case> {
    let mut quorum_bounded = examples::group_bounded_loop();
    quorum_bounded.groups[0].quorum = 1;
    let mut duplicated = spec(vec![agent("a"), agent("b"), agent("a")], vec![], vec![]);
    duplicated.edges.push(edge("a", "b", Always));

    vec![
        case("duplicate node", "duplicate-node-id", duplicated).node("a"),
        case(
            "dangling node",
            "dangling-edge",
            spec(vec![agent("a")], vec![edge("a", "ghost", Always)], vec![]),
        )
        .node("ghost")
        .edge(0),
        case(
            "dangling group",
            "dangling-edge",
            spec(vec![agent("a")], vec![edge("a", "@nobody", Always)], vec![]),
        )
        .group("nobody")
        .edge(0),
        case(
            "cycle",
            "cycle-detected",
            spec(
                vec![agent("a"), agent("b"), agent("c")],
                vec![edge("a", "b", Always), edge("b", "c", Always), edge("c", "b", Always)],
                vec![],
            ),
        )
        .node("b"),
        case(
            "unreachable",
            "unreachable-node",
            spec(
                vec![agent("a"), agent("x"), agent("y")],
                vec![edge("x", "y", Always), edge("y", "x", Always)],
                vec![],
            ),
        )
        .node("x"),
        case(
            "sla without breach route",
            "missing-breach-edge",
            spec(
                vec![with_sla(agent("a"), 1_000), agent("b"), agent("c")],
                vec![edge("a", "b", Approve), custom("a", "c", eq("output.score", 1))],
                vec![],
            ),
        )
        .node("a"),
        case(
            "duplicate group",
            "group-duplicate-id",
            with_groups(
                &["a", "b"],
                vec![group("g", &["a"], 1, WaitAll), group("g", &["b"], 1, WaitAll)],
            ),
        )
        .group("g"),
        case(
            "empty group",
            "group-members-empty",
            with_groups(&["a"], vec![sized(group("g", &[], 1, WaitAll), 1)]),
        )
        .group("g"),
        case(
            "missing member",
            "group-member-missing",
            with_groups(&["a"], vec![group("g", &["a", "ghost"], 1, WaitAll)]),
        )
        .group("g")
        .node("ghost"),
        case(
            "expected steps zero",
            "group-expected-steps-invalid",
            with_groups(&["a"], vec![sized(group("g", &["a"], 0, WaitAll), 0)]),
        )
        .group("g"),
        case(
            "quorum above expected",
            "group-quorum-invalid",
            with_groups(&["a", "b"], vec![group("g", &["a", "b"], 3, WaitAll)]),
        )
        .group("g"),
        case(
            "quorum zero",
            "group-quorum-invalid",
            with_groups(&["a", "b"], vec![group("g", &["a", "b"], 0, WaitAll)]),
        )
        .group("g"),
        case(
            "cancelOnQuorum with quorum of all",
            "group-cancelonquorum-requires-quorum-lt-expected",
            with_groups(&["a", "b"], vec![group("g", &["a", "b"], 2, CancelOnQuorum)]),
        )
        .group("g"),
        case(
            "joinOnQuorum members with different successors",
            "group-joinonquorum-members-must-share-successors",
            spec(
                vec![agent("draft"), agent("x"), agent("y"), agent("p1"), agent("p2")],
                vec![
                    edge("draft", "@g", Always),
                    edge("x", "p1", Approve),
                    edge("x", "p2", Approve),
                    edge("y", "p1", Approve),
                ],
                vec![group("g", &["x", "y"], 1, JoinOnQuorum)],
            ),
        )
        .group("g")
        .node("y"),
        case(
            "required outsider",
            "group-required-not-in-members",
            with_groups(
                &["a", "b", "c"],
                vec![requiring(group("g", &["a", "b"], 1, WaitAll), &["c"])],
            ),
        )
        .group("g")
        .node("c"),
        case(
            "required above quorum",
            "group-required-exceeds-quorum",
            with_groups(
                &["a", "b"],
                vec![requiring(group("g", &["a", "b"], 1, WaitAll), &["a", "b"])],
            ),
        )
        .group("g"),
        case(
            "node in two groups",
            "group-node-in-multiple-groups",
            with_groups(
                &["a", "b"],
                vec![group("g1", &["a"], 1, WaitAll), group("g2", &["a", "b"], 1, WaitAll)],
            ),
        )
        .node("a"),
        case(
            "overlapping loops",
            "loop-node-in-multiple-loops",
            spec(
                vec![agent("draft"), human("r1"), human("r2")],
                vec![
                    edge("draft", "r1", Always),
                    edge("r1", "r2", Approve),
                    back_edge("r1", "draft", 2),
                    back_edge("r2", "draft", 2),
                ],
                vec![],
            ),
        )
        .node("draft"),
        case(
            "two exits from the body",
            "loop-body-must-have-single-terminal",
            spec(
                vec![agent("draft"), human("review"), agent("publish"), agent("side")],
                vec![
                    edge("draft", "review", Always),
                    edge("draft", "side", Always),
                    edge("review", "publish", Approve),
                    back_edge("review", "draft", 2),
                ],
                vec![],
            ),
        )
        .edge(3),
        case(
            "group-bounded loop with a partial quorum",
            "loop-group-bounded-quorum-must-equal-expected",
            quorum_bounded,
        )
        .group("reviewers")
        .edge(2),
    ]
}

#[test]
fn each_code_names_what_is_wrong() {
    for case in cases() {
        let issues = lint_spec(&case.spec);
        let expected = (case.code, case.node_id, case.group_id, case.edge_index);
        assert!(keys(&issues).contains(&expected), "case {}: {issues:#?}", case.name);
        let found = issues.iter().find(|i| i.code == case.code).expect("found");
        assert!(!found.message.is_empty(), "case {}", case.name);
    }
}

#[test]
fn cases_cover_every_code_the_types_can_carry() {
    // node-missing-config is the one code a DefinitionSpec cannot express.
    let covered: HashSet<&str> = cases().iter().map(|c| c.code).collect();
    assert_eq!(covered.len(), 18);
}

#[test]
fn every_problem_is_reported_at_once() {
    let spec = spec(
        vec![agent("a"), agent("b"), agent("a"), with_sla(agent("c"), 500)],
        vec![
            edge("a", "b", Always),
            edge("b", "ghost", Always),
            edge("a", "c", Always),
            edge("c", "b", Approve),
        ],
        vec![group("g", &["b", "nobody"], 3, CancelOnQuorum)],
    );
    assert_eq!(
        keys(&lint_spec(&spec)),
        vec![
            ("duplicate-node-id", Some("a"), None, None),
            ("dangling-edge", Some("ghost"), None, Some(1)),
            ("missing-breach-edge", Some("c"), None, None),
            ("group-member-missing", Some("nobody"), Some("g"), None),
            ("group-quorum-invalid", None, Some("g"), None),
        ]
    );
}

#[test]
fn cycle_is_reported_once_with_all_its_nodes() {
    let spec = spec(
        vec![agent("a"), agent("b"), agent("c")],
        vec![edge("a", "b", Always), edge("b", "c", Always), edge("c", "b", Always)],
        vec![],
    );
    let issues = lint_spec(&spec);
    assert_eq!(keys(&issues), vec![("cycle-detected", Some("b"), None, None)]);
    assert!(issues[0].message.starts_with("cycle through b, c"));
}

#[test]
fn breach_routes_that_satisfy_an_sla() {
    let sla_node = || with_sla(agent("a"), 1_000);
    let satisfied = [
        ("always edge", vec![edge("a", "b", Approve), edge("a", "c", Always)]),
        ("custom edge reading step.status", vec![custom("a", "b", eq("step.status", "breached"))]),
        ("terminal node", vec![edge("c", "b", Always)]),
    ];
    for (name, edges) in satisfied {
        let spec = spec(vec![sla_node(), agent("b"), agent("c")], edges, vec![]);
        let codes: Vec<&str> = lint_spec(&spec).iter().map(|i| i.code).collect();
        assert!(!codes.contains(&"missing-breach-edge"), "{name}: {codes:?}");
    }
}

#[test]
fn exhausted_route_target_is_reachable_and_not_a_root() {
    let issues = lint_spec(&examples::revision_loop());
    assert!(issues.is_empty(), "{issues:#?}");
}

#[test]
fn every_example_is_sound() {
    for (name, spec) in examples::all() {
        let issues = lint_spec(&spec);
        assert!(issues.is_empty(), "example {name}: {issues:#?}");
    }
}

#[test]
fn issue_json_leaves_out_unset_ids() {
    let issue = LintIssue::new("dangling-edge", "m".into()).node("x").edge(2);
    assert_eq!(
        serde_json::to_string(&issue).unwrap(),
        r#"{"code":"dangling-edge","message":"m","nodeId":"x","edgeIndex":2}"#
    );
}
