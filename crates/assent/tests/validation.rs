//! Write-time validation over HTTP: the schema's messages and issue lists, the edge-contract
//! rules, every linter code a client can reach, the order of the three stages, and that a
//! refused definition leaves nothing behind.

mod common;

use common::{spawn_app, TestApp};
use serde_json::{json, Value};

/// The id of every body in this file, so that "nothing was written" can be checked by id.
const ID: &str = "validation-demo";

/// A secret long enough for the schema (16 characters at least).
const SECRET: &str = "0123456789abcdef-secret";

const LINT_PREFIX: &str = "Definition linter failed: ";

/// A `when` that reads `step.status`, which routes a breach.
const WHEN_BREACHED: &str = r#"{"op": "eq", "args": [{"var": "step.status"}, "breached"]}"#;

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

fn agent(node_id: &str) -> Value {
    json!({"nodeId": node_id, "type": "agent",
           "config": {"agentId": "__mock__", "urlPath": "doc.url"}})
}

fn human(node_id: &str) -> Value {
    json!({"nodeId": node_id, "type": "human",
           "config": {"reviewers": [{"userId": "u-1", "mandatory": true}]}})
}

/// An edge endpoint: `"@g"` is group `g`, anything else a node id.
fn end(name: &str) -> Value {
    match name.strip_prefix('@') {
        Some(group_id) => json!({"kind": "group", "groupId": group_id}),
        None => json!(name),
    }
}

fn edge(from: &str, to: &str, on: &str) -> Value {
    json!({"from": end(from), "to": end(to), "on": on})
}

/// A reject back-edge, which defines a loop.
fn back(from: &str, to: &str) -> Value {
    json!({"from": end(from), "to": end(to), "on": "reject", "loop": {"maxIterations": 2}})
}

fn group(
    group_id: &str,
    members: &[&str],
    expected_steps: u32,
    quorum: u32,
    policy: &str,
) -> Value {
    json!({"groupId": group_id, "memberNodeIds": members, "expectedSteps": expected_steps,
           "quorum": quorum, "onQuorumMet": policy})
}

/// `v` with the keys of `extra` added or replaced.
fn merged(mut v: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().expect("extra is an object") {
        v[key.as_str()] = value.clone();
    }
    v
}

/// A small valid definition: draft -> review, review approves to publish or rejects to rework.
fn base() -> Value {
    json!({
        "definitionId": ID,
        "name": "Validation demo",
        "nodes": [agent("draft"), human("review"), agent("publish"), agent("rework")],
        "edges": [
            {"from": "draft", "to": "review"},
            {"from": "review", "to": "publish", "on": "approve"},
            {"from": "review", "to": "rework", "on": "reject"}
        ]
    })
}

/// `body` with the value at a JSON pointer set (an object key added, an array item replaced).
fn set(mut body: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    match body.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key.to_owned(), value);
        }
        Some(Value::Array(items)) if key == "-" => items.push(value),
        Some(Value::Array(items)) => items[key.parse::<usize>().expect("an index")] = value,
        _ => panic!("nothing to set at {pointer}"),
    }
    body
}

/// The base definition with edits, each a JSON pointer and the value written there.
fn based(edits: &[(&str, Value)]) -> Value {
    edits.iter().fold(base(), |body, (pointer, value)| set(body, pointer, value.clone()))
}

fn without(mut body: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    match body.pointer_mut(parent) {
        Some(Value::Object(map)) => assert!(map.remove(key).is_some(), "no {pointer}"),
        Some(Value::Array(items)) => {
            items.remove(key.parse::<usize>().expect("an index"));
        }
        _ => panic!("nothing to remove at {pointer}"),
    }
    body
}

/// The base definition's name and id with these nodes, edges and groups.
fn graph(nodes: Vec<Value>, edges: Vec<Value>, groups: Vec<Value>) -> Value {
    let mut body = merged(base(), json!({"nodes": nodes, "edges": edges}));
    if !groups.is_empty() {
        body["groups"] = json!(groups);
    }
    body
}

fn agents(ids: &[&str]) -> Vec<Value> {
    ids.iter().map(|id| agent(id)).collect()
}

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

/// Creates `body`, which must be refused with INVALID_ARGUMENT (HTTP 400), and checks that
/// nothing was written under its id. Returns the message and `error.details`.
async fn refuse(app: &TestApp, body: Value) -> (String, Value) {
    let id = body["definitionId"].as_str().expect("a definitionId").to_owned();
    let answer = app.call("definitions/create", body).await;
    let message = answer.error(400, "INVALID_ARGUMENT");
    let details = answer.body["error"]["details"].clone();

    let got = app.call("definitions/get", json!({ "definitionId": id })).await;
    assert_eq!(got.error(404, "NOT_FOUND"), format!("Definition {id} not found"), "{message}");
    (message, details)
}

/// One schema issue as `details.issues` lists it.
fn issue(code: &str, path: Value, message: &str) -> Value {
    json!({ "code": code, "path": path, "message": message })
}

/// A path as the schema's headline writes it: `nodes.0.config.agentId`.
fn dotted(path: &Value) -> String {
    let segments = path.as_array().expect("a path is an array");
    let text: Vec<String> =
        segments.iter().map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned)).collect();
    text.join(".")
}

/// The envelope message for a schema issue that has no exact sentence of its own.
fn headline(issue: &Value) -> String {
    let message = issue["message"].as_str().expect("a message").to_owned();
    if issue["path"] == json!([]) {
        message
    } else {
        format!("{message} for {}", dotted(&issue["path"]))
    }
}

/// Refuses `body` at the schema stage with exactly `issues`; the message is the first
/// issue's headline, or its bare sentence when `exact`.
async fn refuse_schema(app: &TestApp, name: &str, body: Value, issues: Value, exact: bool) {
    let (message, details) = refuse(app, body).await;
    assert_eq!(details, json!({ "issues": issues }), "{name}");
    let first = &issues[0];
    let expected = if exact {
        first["message"].as_str().expect("a message").to_owned()
    } else {
        headline(first)
    };
    assert_eq!(message, expected, "{name}");
}

/// Refuses `body` at the linter stage; returns the findings, each without its message.
async fn lint_findings(app: &TestApp, name: &str, body: Value) -> Value {
    let (message, details) = refuse(app, body).await;
    let list = message
        .strip_prefix(LINT_PREFIX)
        .unwrap_or_else(|| panic!("{name}: not a linter failure: {message}"));
    assert!(list.starts_with('['), "{name}: {message}");
    let parsed: Value = serde_json::from_str(list).expect("the message ends in a JSON array");
    assert_eq!(details, json!({ "lint": parsed }), "{name}: the message's array is details.lint");

    let mut findings = parsed.as_array().expect("an array").clone();
    for finding in &mut findings {
        let text = finding.as_object_mut().expect("an object").remove("message");
        assert!(text.as_ref().and_then(Value::as_str).is_some_and(|t| !t.is_empty()), "{name}");
    }
    Value::Array(findings)
}

// ---------------------------------------------------------------------------------------
// Controls: the bodies below are refused because of their edits, not because of the base.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_base_definition_and_the_near_misses_are_accepted() {
    let app = spawn_app().await;
    let near_misses: Vec<(&str, Value)> = vec![
        ("base", base()),
        (
            "a breach routed by an always edge",
            graph(
                vec![merged(agent("a"), json!({"slaMs": 60_000})), agent("b")],
                vec![edge("a", "b", "always")],
                vec![],
            ),
        ),
        (
            "a breach routed by a custom edge reading step.status",
            graph(
                vec![merged(agent("a"), json!({"slaMs": 60_000})), agent("b"), agent("c")],
                vec![
                    edge("a", "b", "approve"),
                    merged(edge("a", "c", "custom"), json!({ "when": WHEN_BREACHED })),
                ],
                vec![],
            ),
        ),
        (
            "a group-bounded loop whose quorum equals expectedSteps",
            graph(
                vec![agent("a"), human("b"), human("c"), agent("d")],
                vec![edge("a", "@g", "always"), edge("@g", "d", "approve"), back("@g", "a")],
                vec![group("g", &["b", "c"], 2, 2, "joinOnQuorum")],
            ),
        ),
        (
            "a human node whose reject route leaves its group",
            graph(
                vec![agent("a"), human("b"), human("c"), agent("d"), agent("e")],
                vec![
                    edge("a", "@g", "always"),
                    edge("@g", "d", "approve"),
                    edge("@g", "e", "reject"),
                ],
                vec![group("g", &["b", "c"], 2, 2, "waitAll")],
            ),
        ),
    ];
    for (name, body) in near_misses {
        let answer = app.call("definitions/validate", body).await;
        assert_eq!(answer.result()["valid"], true, "{name}");
    }
    let created = app.call("definitions/create", base()).await;
    assert_eq!(created.result()["definitionId"], ID);
}

// ---------------------------------------------------------------------------------------
// 1. The linter
// ---------------------------------------------------------------------------------------

/// The 16 codes a body can reach. `node-missing-config`, `group-members-empty` and
/// `group-expected-steps-invalid` are stopped by the schema (see the next test), as is a
/// quorum below 1; `group-quorum-invalid` stays reachable with a quorum above expectedSteps.
const REACHABLE_LINT_CODES: [&str; 16] = [
    "duplicate-node-id",
    "dangling-edge",
    "cycle-detected",
    "unreachable-node",
    "missing-breach-edge",
    "group-duplicate-id",
    "group-member-missing",
    "group-quorum-invalid",
    "group-cancelonquorum-requires-quorum-lt-expected",
    "group-joinonquorum-members-must-share-successors",
    "group-required-not-in-members",
    "group-required-exceeds-quorum",
    "group-node-in-multiple-groups",
    "loop-node-in-multiple-loops",
    "loop-body-must-have-single-terminal",
    "loop-group-bounded-quorum-must-equal-expected",
];

#[tokio::test]
async fn every_reachable_linter_code_is_reported_with_its_ids() {
    let app = spawn_app().await;
    let with_required =
        |g: Value, required: &[&str]| merged(g, json!({"requiredNodeIds": required}));
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "duplicate-node-id",
            graph(agents(&["a", "b", "a"]), vec![edge("a", "b", "always")], vec![]),
            json!([{"code": "duplicate-node-id", "nodeId": "a"}]),
        ),
        (
            "dangling-edge",
            graph(
                agents(&["a", "b"]),
                vec![
                    edge("a", "b", "always"),
                    edge("b", "ghost", "always"),
                    edge("@nog", "b", "always"),
                ],
                vec![],
            ),
            json!([
                {"code": "dangling-edge", "nodeId": "ghost", "edgeIndex": 1},
                {"code": "dangling-edge", "groupId": "nog", "edgeIndex": 2},
            ]),
        ),
        (
            "cycle-detected",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("a", "b", "always"), edge("b", "c", "always"), edge("c", "b", "always")],
                vec![],
            ),
            json!([{"code": "cycle-detected", "nodeId": "b"}]),
        ),
        (
            // Without a cycle every node is a root or below one, so the cycle comes along.
            "unreachable-node",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("b", "c", "always"), edge("c", "b", "always")],
                vec![],
            ),
            json!([
                {"code": "cycle-detected", "nodeId": "b"},
                {"code": "unreachable-node", "nodeId": "b"},
                {"code": "unreachable-node", "nodeId": "c"},
            ]),
        ),
        (
            "missing-breach-edge",
            graph(
                vec![merged(agent("a"), json!({"slaMs": 60_000})), agent("b")],
                vec![edge("a", "b", "approve")],
                vec![],
            ),
            json!([{"code": "missing-breach-edge", "nodeId": "a"}]),
        ),
        (
            "group-duplicate-id",
            graph(
                agents(&["a", "b"]),
                vec![],
                vec![group("g", &["a"], 1, 1, "waitAll"), group("g", &["b"], 1, 1, "waitAll")],
            ),
            json!([{"code": "group-duplicate-id", "groupId": "g"}]),
        ),
        (
            "group-member-missing",
            graph(agents(&["a"]), vec![], vec![group("g", &["a", "ghost"], 2, 1, "waitAll")]),
            json!([{"code": "group-member-missing", "groupId": "g", "nodeId": "ghost"}]),
        ),
        (
            "group-quorum-invalid",
            graph(agents(&["a", "b"]), vec![], vec![group("g", &["a", "b"], 2, 3, "waitAll")]),
            json!([{"code": "group-quorum-invalid", "groupId": "g"}]),
        ),
        (
            "group-cancelonquorum-requires-quorum-lt-expected",
            graph(
                agents(&["a", "b"]),
                vec![],
                vec![group("g", &["a", "b"], 2, 2, "cancelOnQuorum")],
            ),
            json!([{"code": "group-cancelonquorum-requires-quorum-lt-expected", "groupId": "g"}]),
        ),
        (
            "group-joinonquorum-members-must-share-successors",
            graph(
                agents(&["a", "b", "c", "d"]),
                vec![edge("a", "c", "always"), edge("b", "d", "always")],
                vec![group("g", &["a", "b"], 2, 2, "joinOnQuorum")],
            ),
            json!([{"code": "group-joinonquorum-members-must-share-successors",
                    "groupId": "g", "nodeId": "b"}]),
        ),
        (
            "group-required-not-in-members",
            graph(
                agents(&["a", "b", "c"]),
                vec![],
                vec![with_required(group("g", &["a", "b"], 2, 1, "waitAll"), &["c"])],
            ),
            json!([{"code": "group-required-not-in-members", "groupId": "g", "nodeId": "c"}]),
        ),
        (
            "group-required-exceeds-quorum",
            graph(
                agents(&["a", "b"]),
                vec![],
                vec![with_required(group("g", &["a", "b"], 2, 1, "waitAll"), &["a", "b"])],
            ),
            json!([{"code": "group-required-exceeds-quorum", "groupId": "g"}]),
        ),
        (
            "group-node-in-multiple-groups",
            graph(
                agents(&["a", "b", "c"]),
                vec![],
                vec![
                    group("g1", &["a", "b"], 2, 1, "waitAll"),
                    group("g2", &["b", "c"], 2, 1, "waitAll"),
                ],
            ),
            json!([{"code": "group-node-in-multiple-groups", "nodeId": "b"}]),
        ),
        (
            // Loop b -> a has body {a, b}; loop c -> a has body {a, b, c}.
            "loop-node-in-multiple-loops",
            graph(
                vec![agent("a"), human("b"), human("c")],
                vec![
                    edge("a", "b", "always"),
                    edge("b", "c", "approve"),
                    back("b", "a"),
                    back("c", "a"),
                ],
                vec![],
            ),
            json!([
                {"code": "loop-node-in-multiple-loops", "nodeId": "a"},
                {"code": "loop-node-in-multiple-loops", "nodeId": "b"},
            ]),
        ),
        (
            // Body {a, b, c}: b leaves it for x and c for y.
            "loop-body-must-have-single-terminal",
            graph(
                vec![agent("a"), human("b"), human("c"), agent("x"), agent("y")],
                vec![
                    edge("a", "b", "always"),
                    edge("b", "c", "approve"),
                    edge("b", "x", "reject"),
                    edge("c", "y", "approve"),
                    back("c", "a"),
                ],
                vec![],
            ),
            json!([{"code": "loop-body-must-have-single-terminal", "edgeIndex": 4}]),
        ),
        (
            "loop-group-bounded-quorum-must-equal-expected",
            graph(
                vec![agent("a"), human("b"), human("c"), agent("d")],
                vec![edge("a", "@g", "always"), edge("@g", "d", "approve"), back("@g", "a")],
                vec![group("g", &["b", "c"], 2, 1, "joinOnQuorum")],
            ),
            json!([{"code": "loop-group-bounded-quorum-must-equal-expected",
                    "groupId": "g", "edgeIndex": 2}]),
        ),
    ];

    let names: Vec<&str> = cases.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, REACHABLE_LINT_CODES, "one case per reachable code, in the table's order");
    for (name, body, expected) in cases {
        assert_eq!(lint_findings(&app, name, body).await, expected, "{name}");
    }
}

#[tokio::test]
async fn several_linter_findings_are_reported_together_in_the_codes_order() {
    let app = spawn_app().await;
    let body = graph(
        vec![agent("a"), agent("b"), agent("a"), merged(agent("c"), json!({"slaMs": 1_000}))],
        vec![edge("a", "b", "always"), edge("b", "ghost", "always"), edge("c", "b", "approve")],
        vec![group("g", &["b", "nobody"], 1, 2, "waitAll")],
    );
    let expected = json!([
        {"code": "duplicate-node-id", "nodeId": "a"},
        {"code": "dangling-edge", "nodeId": "ghost", "edgeIndex": 1},
        {"code": "missing-breach-edge", "nodeId": "c"},
        {"code": "group-member-missing", "groupId": "g", "nodeId": "nobody"},
        {"code": "group-quorum-invalid", "groupId": "g"},
    ]);
    assert_eq!(lint_findings(&app, "several", body).await, expected);
}

#[tokio::test]
async fn the_codes_the_schema_makes_unreachable_are_schema_errors() {
    let app = spawn_app().await;
    let in_group = |extra: Value| {
        let g = merged(group("g", &["publish"], 1, 1, "waitAll"), extra);
        based(&[("/groups", json!([g]))])
    };
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "node-missing-config",
            without(base(), "/nodes/2/config"),
            json!([issue("invalid_type", json!(["nodes", 2, "config"]), "Required")]),
        ),
        (
            "group-members-empty",
            in_group(json!({"memberNodeIds": []})),
            json!([issue(
                "too_small",
                json!(["groups", 0, "memberNodeIds"]),
                "Array must contain at least 1 element(s)",
            )]),
        ),
        (
            "group-expected-steps-invalid",
            in_group(json!({"expectedSteps": 0})),
            json!([issue(
                "too_small",
                json!(["groups", 0, "expectedSteps"]),
                "Number must be greater than or equal to 1",
            )]),
        ),
        (
            "group-quorum-invalid below 1",
            in_group(json!({"quorum": 0})),
            json!([issue(
                "too_small",
                json!(["groups", 0, "quorum"]),
                "Number must be greater than or equal to 1",
            )]),
        ),
    ];
    for (name, body, issues) in cases {
        refuse_schema(&app, name, body, issues, false).await;
    }
}

// ---------------------------------------------------------------------------------------
// 2. Edge-contract rules
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_edge_contract_rule_answers_with_its_sentence() {
    let app = spawn_app().await;
    let custom = |from: &str, to: &str, when: &str| {
        merged(edge(from, to, "custom"), json!({ "when": when }))
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "group to group",
            graph(
                agents(&["a", "b"]),
                vec![edge("@g", "@k", "always")],
                vec![group("g", &["a"], 1, 1, "waitAll"), group("k", &["b"], 1, 1, "waitAll")],
            ),
            "edge 0 (group g -> group k): an edge may not join two groups",
        ),
        (
            "custom without when",
            graph(agents(&["a", "b"]), vec![edge("a", "b", "custom")], vec![]),
            r#"edge 0 (a -> b): on="custom" requires a non-empty "when""#,
        ),
        (
            "custom with an empty when",
            graph(agents(&["a", "b"]), vec![custom("a", "b", "")], vec![]),
            r#"edge 0 (a -> b): on="custom" requires a non-empty "when""#,
        ),
        (
            "when on an approve edge",
            graph(
                agents(&["a", "b"]),
                vec![merged(edge("a", "b", "approve"), json!({"when": "true"}))],
                vec![],
            ),
            r#"edge 0 (a -> b): "when" is only allowed with on="custom", not on="approve""#,
        ),
        (
            "when on an edge without on",
            graph(
                agents(&["a", "b"]),
                vec![json!({"from": "a", "to": "b", "when": "true"})],
                vec![],
            ),
            r#"edge 0 (a -> b): "when" is only allowed with on="custom", not on="always""#,
        ),
        (
            "loop on an approve edge",
            graph(
                agents(&["a", "b"]),
                vec![edge("a", "b", "always"), merged(back("b", "a"), json!({"on": "approve"}))],
                vec![],
            ),
            r#"edge 1 (b -> a): "loop" is only allowed with on="reject", not on="approve""#,
        ),
        (
            "loop back-edge to a group",
            graph(
                agents(&["a", "b"]),
                vec![edge("a", "b", "always"), back("b", "@g")],
                vec![group("g", &["a"], 1, 1, "waitAll")],
            ),
            "edge 1 (b -> group g): a loop back-edge must point at a node, not a group",
        ),
        (
            "loop that does not go back",
            graph(agents(&["a", "b"]), vec![back("a", "b")], vec![]),
            r#"edge 0 (a -> b): "loop" requires a back-edge, but b is not an ancestor of a"#,
        ),
        (
            "loop from a group that does not go back",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("@g", "c", "always"), back("@g", "c")],
                vec![group("g", &["a", "b"], 2, 2, "joinOnQuorum")],
            ),
            "edge 1 (group g -> c): \"loop\" requires a back-edge, but c is not an ancestor of \
             any member of group g",
        ),
        (
            "loop back-edge from a waitAll group",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("a", "@g", "always"), back("@g", "a")],
                vec![group("g", &["b", "c"], 2, 2, "waitAll")],
            ),
            "edge 1 (group g -> a): a loop back-edge from a group requires \
             onQuorumMet=\"joinOnQuorum\", but group g is waitAll",
        ),
        (
            "loop back-edge from a cancelOnQuorum group",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("a", "@g", "always"), back("@g", "a")],
                vec![group("g", &["b", "c"], 2, 1, "cancelOnQuorum")],
            ),
            "edge 1 (group g -> a): a loop back-edge from a group requires \
             onQuorumMet=\"joinOnQuorum\", but group g is cancelOnQuorum",
        ),
        (
            "reject to an ancestor without loop",
            graph(
                agents(&["a", "b"]),
                vec![edge("a", "b", "always"), edge("b", "a", "reject")],
                vec![],
            ),
            r#"edge 1 (b -> a): on="reject" to an ancestor (a) requires "loop""#,
        ),
        (
            "forward reject from a cancelOnQuorum group",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("@g", "c", "reject")],
                vec![group("g", &["a", "b"], 2, 1, "cancelOnQuorum")],
            ),
            "edge 0 (group g -> c): a forward on=\"reject\" from a cancelOnQuorum group never \
             fires",
        ),
        (
            "forward reject from a joinOnQuorum group",
            graph(
                agents(&["a", "b", "c"]),
                vec![edge("@g", "c", "reject")],
                vec![group("g", &["a", "b"], 2, 2, "joinOnQuorum")],
            ),
            "edge 0 (group g -> c): a forward on=\"reject\" from a joinOnQuorum group never \
             fires",
        ),
        (
            "exhausted without a loop sibling",
            graph(agents(&["a", "b"]), vec![edge("a", "b", "exhausted")], vec![]),
            "edge 0 (a -> b): on=\"exhausted\" requires a sibling on=\"reject\" edge with \
             \"loop\" from a",
        ),
        (
            "exhausted to a group",
            graph(
                vec![agent("a"), human("b"), agent("c")],
                vec![edge("a", "b", "always"), back("b", "a"), edge("b", "@g", "exhausted")],
                vec![group("g", &["c"], 1, 1, "waitAll")],
            ),
            r#"edge 2 (b -> group g): on="exhausted" must point at a node, not a group"#,
        ),
        (
            "human node without a reject route",
            without(base(), "/edges/2"),
            "every human node must have at least one outgoing edge with on=\"reject\" (a forward \
             reject route or a reject back-edge): review",
        ),
        (
            "the first human node without a reject route, in definition order",
            graph(
                vec![agent("a"), human("h2"), human("h1")],
                vec![edge("a", "h2", "always"), edge("h2", "h1", "approve")],
                vec![],
            ),
            "every human node must have at least one outgoing edge with on=\"reject\" (a forward \
             reject route or a reject back-edge): h2",
        ),
    ];
    for (name, body, expected) in cases {
        let (message, details) = refuse(&app, body).await;
        assert_eq!(message, expected, "{name}");
        assert_eq!(details, Value::Null, "{name}: a rule error has no details");
    }
}

// ---------------------------------------------------------------------------------------
// 3. The schema
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_references_exact_sentences_are_the_message_and_the_issue() {
    let app = spawn_app().await;
    let reviewers = |list: Value| based(&[("/nodes/1/config", json!({ "reviewers": list }))]);
    let at_publish = |node_type: &str, config: Value| {
        based(&[("/nodes/2", json!({"nodeId": "publish", "type": node_type, "config": config}))])
    };
    let at_draft = |config: Value| based(&[("/nodes/0/config", config)]);
    let trigger = |entry: Value| based(&[("/triggers", json!([entry]))]);
    let inbound = |config: Value| {
        trigger(json!({"triggerId": "t-in",
                       "inboundWebhook": merged(json!({"secret": SECRET}), config)}))
    };
    let schedule = |cron: &str, timezone: &str| {
        trigger(json!({"triggerId": "t-cron",
                       "schedule": {"cron": cron, "timezone": timezone, "enabled": true}}))
    };
    let u = |id: &str, mandatory: bool| json!({"userId": id, "mandatory": mandatory});

    const NO_REVIEWERS: &str = "at least one of reviewerIds or reviewers must be provided";
    const BOTH: &str = "cannot set both reviewerIds and reviewers, use one";
    const UNIQUE: &str = "reviewer userIds must be unique";
    const MANDATORY: &str = "reviewers must include at least one mandatory reviewer";
    const EMAIL: &str =
        "notification node with channel=\"email\" requires a non-empty recipients array";
    const SLACK: &str = "notification node with channel=\"slack\" requires a slackTarget \
                         (channel id or incoming-webhook URL)";
    const TOKEN: &str = "webhook node with authMode=\"token\" requires authTokenHeader to be set";
    const AGENT_URL: &str = "agent node requires either a static \"url\" or a \"urlPath\"";
    const BLOCKING: &str = "resolutionPolicy required when blocking === true";
    const MIN_COUNT: &str = "minCount required when kind === \"minResolved\"";
    const HMAC: &str =
        "inboundWebhook provider=\"github\"/\"vercel\"/\"custom\" requires authMode=\"hmac\"";
    const SIGNATURE: &str = "inboundWebhook with provider=\"custom\" and authMode=\"hmac\" \
                             requires signatureHeader and signatureAlgorithm";
    const CRON: &str = "schedule.cron must be a valid 5-field cron expression";
    const TIMEZONE: &str =
        "schedule.timezone must be a valid IANA timezone name (e.g. America/Los_Angeles)";
    const HTTPS: &str = "webhookUrl must use https scheme";

    let email = json!({"channel": "email", "bodyTemplate": "Published"});
    let slack = json!({"channel": "slack", "bodyTemplate": "Published"});
    let hook = json!({"url": "https://hooks.example.com/publish", "authMode": "token"});
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "no reviewers",
            based(&[("/nodes/1/config", json!({}))]),
            json!(["nodes", 1, "config"]),
            NO_REVIEWERS,
        ),
        (
            "both reviewer lists",
            based(&[(
                "/nodes/1/config",
                json!({"reviewers": [u("u-1", true)], "reviewerIds": ["u-2"]}),
            )]),
            json!(["nodes", 1, "config"]),
            BOTH,
        ),
        (
            "a repeated reviewer",
            reviewers(json!([u("u-1", true), u("u-1", false)])),
            json!(["nodes", 1, "config", "reviewers"]),
            UNIQUE,
        ),
        (
            "a repeated reviewerId",
            based(&[("/nodes/1/config", json!({"reviewerIds": ["u-1", "u-1"]}))]),
            json!(["nodes", 1, "config", "reviewerIds"]),
            UNIQUE,
        ),
        (
            "no mandatory reviewer",
            reviewers(json!([u("u-1", false), u("u-2", false)])),
            json!(["nodes", 1, "config", "reviewers"]),
            MANDATORY,
        ),
        (
            "email without recipients",
            at_publish("notification", email.clone()),
            json!(["nodes", 2, "config", "recipients"]),
            EMAIL,
        ),
        (
            "email with an empty recipients array",
            at_publish("notification", merged(email, json!({"recipients": []}))),
            json!(["nodes", 2, "config", "recipients"]),
            EMAIL,
        ),
        (
            "slack without a target",
            at_publish("notification", slack.clone()),
            json!(["nodes", 2, "config", "slackTarget"]),
            SLACK,
        ),
        (
            "slack with an empty target",
            at_publish("notification", merged(slack, json!({"slackTarget": ""}))),
            json!(["nodes", 2, "config", "slackTarget"]),
            SLACK,
        ),
        (
            "token auth without a header",
            at_publish("webhook", hook.clone()),
            json!(["nodes", 2, "config", "authTokenHeader"]),
            TOKEN,
        ),
        (
            "token auth with an empty header",
            at_publish("webhook", merged(hook, json!({"authTokenHeader": ""}))),
            json!(["nodes", 2, "config", "authTokenHeader"]),
            TOKEN,
        ),
        (
            "agent without url or urlPath",
            at_draft(json!({"agentId": "__mock__"})),
            json!(["nodes", 0, "config"]),
            AGENT_URL,
        ),
        (
            "agent with an empty urlPath",
            at_draft(json!({"agentId": "__mock__", "urlPath": ""})),
            json!(["nodes", 0, "config"]),
            AGENT_URL,
        ),
        (
            "blocking agent without a resolution policy",
            at_draft(json!({"agentId": "__mock__", "urlPath": "doc.url", "blocking": true})),
            json!(["nodes", 0, "config", "resolutionPolicy"]),
            BLOCKING,
        ),
        (
            "minResolved without minCount",
            at_draft(json!({"agentId": "__mock__", "urlPath": "doc.url", "blocking": true,
                            "resolutionPolicy": {"kind": "minResolved"}})),
            json!(["nodes", 0, "config", "resolutionPolicy", "minCount"]),
            MIN_COUNT,
        ),
        (
            "github inbound webhook with bearer auth",
            inbound(json!({"authMode": "bearer", "provider": "github"})),
            json!(["triggers", 0, "inboundWebhook", "authMode"]),
            HMAC,
        ),
        (
            "vercel inbound webhook with bearer auth",
            inbound(json!({"authMode": "bearer", "provider": "vercel"})),
            json!(["triggers", 0, "inboundWebhook", "authMode"]),
            HMAC,
        ),
        (
            "custom inbound webhook with bearer auth",
            inbound(json!({"authMode": "bearer", "provider": "custom"})),
            json!(["triggers", 0, "inboundWebhook", "authMode"]),
            HMAC,
        ),
        (
            "custom hmac inbound webhook without signatureAlgorithm",
            inbound(json!({"authMode": "hmac", "provider": "custom", "signatureHeader": "x-sig"})),
            json!(["triggers", 0, "inboundWebhook"]),
            SIGNATURE,
        ),
        (
            "custom hmac inbound webhook without either signature field",
            inbound(json!({"authMode": "hmac", "provider": "custom"})),
            json!(["triggers", 0, "inboundWebhook"]),
            SIGNATURE,
        ),
        (
            "a minute of 61",
            schedule("61 * * * *", "Europe/Paris"),
            json!(["triggers", 0, "schedule", "cron"]),
            CRON,
        ),
        (
            "six fields",
            schedule("0 0 9 * * 1", "Europe/Paris"),
            json!(["triggers", 0, "schedule", "cron"]),
            CRON,
        ),
        (
            "a macro",
            schedule("@daily", "Europe/Paris"),
            json!(["triggers", 0, "schedule", "cron"]),
            CRON,
        ),
        (
            "30 February",
            schedule("0 0 30 2 *", "Europe/Paris"),
            json!(["triggers", 0, "schedule", "cron"]),
            CRON,
        ),
        (
            "an unknown time zone",
            schedule("0 9 * * 1", "Mars/Olympus_Mons"),
            json!(["triggers", 0, "schedule", "timezone"]),
            TIMEZONE,
        ),
        (
            "a plain http webhookConfig.url",
            based(&[(
                "/webhookConfig",
                json!({"url": "http://hooks.example.com/x", "secret": SECRET}),
            )]),
            json!(["webhookConfig", "url"]),
            HTTPS,
        ),
    ];
    for (name, body, path, message) in cases {
        let issues = json!([{ "code": "custom", "path": path, "message": message }]);
        refuse_schema(&app, name, body, issues, true).await;
    }
}

/// Rules the reference lists as rule errors that Assent words itself and checks in the
/// schema: their message carries the path.
#[tokio::test]
async fn assents_own_schema_rules_carry_their_path() {
    let app = spawn_app().await;
    let email = json!({"nodeId": "publish", "type": "notification", "config": {
        "channel": "email", "bodyTemplate": "Published", "recipients": ["ops@example.com"],
        "format": "slack-blocks"}});
    let two_mechanisms = json!({"triggerId": "t",
        "inboundWebhook": {"authMode": "hmac", "secret": SECRET},
        "schedule": {"cron": "0 9 * * 1", "timezone": "Europe/Paris", "enabled": true}});
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "slack-blocks on email",
            based(&[("/nodes/2", email)]),
            json!(["nodes", 2, "config", "format"]),
            "format \"slack-blocks\" is only for channel \"slack\"",
        ),
        (
            "two mechanisms in one trigger",
            based(&[("/triggers", json!([two_mechanisms]))]),
            json!(["triggers", 0]),
            "A trigger holds at most one of inboundWebhook, schedule and appTrigger: use one \
             entry per mechanism",
        ),
    ];
    for (name, body, path, message) in cases {
        let issues = json!([{ "code": "custom", "path": path, "message": message }]);
        refuse_schema(&app, name, body, issues, false).await;
    }
}

#[tokio::test]
async fn several_schema_problems_are_all_listed_with_array_paths() {
    let app = spawn_app().await;
    let body = based(&[
        ("/nodes/0/config", json!({"urlPath": "doc.url"})),
        ("/nodes/1/slaMs", json!(0)),
        ("/edges/1/on", json!("sometimes")),
        ("/tags", json!([1, "ok"])),
    ]);
    let (message, details) = refuse(&app, body).await;
    assert_eq!(message, "Required for nodes.0.config.agentId");
    assert_eq!(
        details,
        json!({"issues": [
            {"code": "invalid_type", "path": ["nodes", 0, "config", "agentId"],
             "message": "Required"},
            {"code": "too_small", "path": ["nodes", 1, "slaMs"],
             "message": "Number must be greater than or equal to 1"},
            {"code": "invalid_enum_value", "path": ["edges", 1, "on"],
             "message": "Invalid enum value. Expected 'approve' | 'reject' | 'always' | \
                         'exhausted' | 'custom', received 'sometimes'"},
            {"code": "invalid_type", "path": ["tags", 0],
             "message": "Expected string, received number"},
        ]})
    );
}

// ---------------------------------------------------------------------------------------
// 4. Stage order
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_first_failing_stage_answers() {
    let app = spawn_app().await;
    let duplicate_draft = ("/nodes/-", agent("draft"));
    let custom_without_when = ("/edges/-", edge("review", "publish", "custom"));
    let sla_zero = ("/nodes/1/slaMs", json!(0));

    // Each problem alone is reported by its own stage.
    let lint =
        lint_findings(&app, "lint alone", based(std::slice::from_ref(&duplicate_draft))).await;
    assert_eq!(lint, json!([{"code": "duplicate-node-id", "nodeId": "draft"}]));
    let rule_message = r#"edge 3 (review -> publish): on="custom" requires a non-empty "when""#;
    let (message, _) = refuse(&app, based(std::slice::from_ref(&custom_without_when))).await;
    assert_eq!(message, rule_message);

    let schema_message = "Number must be greater than or equal to 1 for nodes.1.slaMs";
    let too_small = "Number must be greater than or equal to 1";
    let schema_issues =
        json!({ "issues": [issue("too_small", json!(["nodes", 1, "slaMs"]), too_small)] });
    let cases: Vec<(&str, Value, &str, Value)> = vec![
        (
            "schema and lint",
            based(&[sla_zero.clone(), duplicate_draft.clone()]),
            schema_message,
            schema_issues.clone(),
        ),
        (
            "schema and rule",
            based(&[sla_zero.clone(), custom_without_when.clone()]),
            schema_message,
            schema_issues.clone(),
        ),
        (
            "schema, rule and lint",
            based(&[sla_zero, custom_without_when.clone(), duplicate_draft.clone()]),
            schema_message,
            schema_issues,
        ),
        (
            "rule and lint",
            based(&[custom_without_when.clone(), duplicate_draft]),
            rule_message,
            Value::Null,
        ),
        (
            "an edge rule before the human-node rule",
            set(without(base(), "/edges/2"), "/edges/-", edge("review", "publish", "custom")),
            r#"edge 2 (review -> publish): on="custom" requires a non-empty "when""#,
            Value::Null,
        ),
        (
            "the first broken edge in authored order",
            based(&[("/edges/-", edge("draft", "publish", "exhausted")), custom_without_when]),
            "edge 3 (draft -> publish): on=\"exhausted\" requires a sibling on=\"reject\" edge \
             with \"loop\" from draft",
            Value::Null,
        ),
    ];
    for (name, body, expected_message, expected_details) in cases {
        let (message, details) = refuse(&app, body).await;
        assert_eq!(message, expected_message, "{name}");
        assert_eq!(details, expected_details, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Strictness and webhookConfig
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_keys_are_refused_at_every_depth() {
    let app = spawn_app().await;
    let schedule = json!({"cron": "0 9 * * 1", "timezone": "Europe/Paris", "enabled": true});
    let cases: Vec<(&str, Value, Value)> = vec![
        ("extra", based(&[("/extra", json!(true))]), json!([])),
        // On create, ifVersion is an unknown key like any other; at the root the message is
        // the bare sentence.
        ("ifVersion", based(&[("/ifVersion", json!(1))]), json!([])),
        ("loops", based(&[("/loops", json!([]))]), json!([])),
        (
            "folderId",
            based(&[("/scope", json!({"level": "apiKey", "folderId": "f"}))]),
            json!(["scope"]),
        ),
        ("label", based(&[("/nodes/0/label", json!("x"))]), json!(["nodes", 0])),
        ("timeout", based(&[("/nodes/0/config/timeout", json!(5))]), json!(["nodes", 0, "config"])),
        (
            "weight",
            based(&[("/nodes/1/config/reviewers/0/weight", json!(2))]),
            json!(["nodes", 1, "config", "reviewers", 0]),
        ),
        ("label", based(&[("/edges/0/label", json!("x"))]), json!(["edges", 0])),
        (
            "port",
            based(&[("/edges/0/from", json!({"kind": "node", "nodeId": "draft", "port": "out"}))]),
            json!(["edges", 0, "from"]),
        ),
        (
            "until",
            based(&[(
                "/edges/-",
                json!({"from": "review", "to": "draft", "on": "reject",
                                        "loop": {"maxIterations": 2, "until": "done"}}),
            )]),
            json!(["edges", 3, "loop"]),
        ),
        (
            "mode",
            based(&[(
                "/groups",
                json!([merged(group("g", &["publish"], 1, 1, "waitAll"), json!({"mode": "x"}))]),
            )]),
            json!(["groups", 0]),
        ),
        (
            "jitter",
            based(&[(
                "/triggers",
                json!([{"triggerId": "t",
                                          "schedule": merged(schedule, json!({"jitter": 5}))}]),
            )]),
            json!(["triggers", 0, "schedule"]),
        ),
        (
            "retries",
            based(&[(
                "/webhookConfig",
                json!({"url": "https://hooks.example.com/a",
                                              "secret": SECRET, "retries": 3}),
            )]),
            json!(["webhookConfig"]),
        ),
    ];
    for (key, body, path) in cases {
        let message = format!("Unrecognized key(s) in object: '{key}'");
        let issues = json!([{ "code": "unrecognized_keys", "path": path, "message": message }]);
        refuse_schema(&app, key, body, issues, false).await;
    }
}

#[tokio::test]
async fn explicit_nulls_are_refused_at_every_depth() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/description", json!(["description"]), "string"),
        ("/scope", json!(["scope"]), "object"),
        ("/groups", json!(["groups"]), "array"),
        ("/triggers", json!(["triggers"]), "array"),
        ("/tags", json!(["tags"]), "array"),
        ("/custom", json!(["custom"]), "object"),
        ("/webhookConfig", json!(["webhookConfig"]), "object"),
        ("/organizationId", json!(["organizationId"]), "string"),
        ("/nodes/0/slaMs", json!(["nodes", 0, "slaMs"]), "number"),
        ("/nodes/0/name", json!(["nodes", 0, "name"]), "string"),
        ("/nodes/0/config/url", json!(["nodes", 0, "config", "url"]), "string"),
        (
            "/nodes/1/config/reviewerEmails",
            json!(["nodes", 1, "config", "reviewerEmails"]),
            "array",
        ),
        ("/edges/1/on", json!(["edges", 1, "on"]), "string"),
        ("/edges/1/when", json!(["edges", 1, "when"]), "string"),
    ];
    for (pointer, path, expected_type) in cases {
        let message = format!("Expected {expected_type}, received null");
        let issues = json!([{ "code": "invalid_type", "path": path, "message": message }]);
        refuse_schema(&app, pointer, based(&[(pointer, Value::Null)]), issues, false).await;
    }
    let (message, _) = refuse(
        &app,
        based(&[(
            "/triggers",
            json!([{"triggerId": "t",
                                                                  "eventName": null}]),
        )]),
    )
    .await;
    assert_eq!(message, "Expected string, received null for triggers.0.eventName");
}

#[tokio::test]
async fn webhook_config_urls_are_guarded_with_a_message_naming_the_rule() {
    let app = spawn_app().await;
    let private = "webhookUrl host resolves to a private, loopback, or link-local address";
    let cases: Vec<(&str, String)> = vec![
        ("http://hooks.example.com/x", "webhookUrl must use https scheme".into()),
        ("https://127.0.0.1/x", format!("{private} (127.0.0.0/8, loopback)")),
        ("https://localhost/x", "webhookUrl host \"localhost\" is not allowed".into()),
        (
            "https://169.254.169.254/latest/meta-data/",
            format!("{private} (169.254.0.0/16, link-local)"),
        ),
        ("https://[::1]/x", format!("{private} (::1/128, loopback)")),
    ];
    for (url, expected) in cases {
        let body = based(&[("/webhookConfig", json!({"url": url, "secret": SECRET}))]);
        let issues =
            json!([{ "code": "custom", "path": ["webhookConfig", "url"], "message": expected }]);
        refuse_schema(&app, url, body, issues, true).await;
    }
}

#[tokio::test]
async fn webhook_config_is_never_returned() {
    let app = spawn_app().await;
    let url = "https://hooks.example.com/assent-events";
    let config = json!({"url": url, "secret": SECRET, "eventTypes": ["execution.completed"]});
    let body = based(&[("/webhookConfig", config)]);

    let created = app.call("definitions/create", body).await;
    let got = app.call("definitions/get", json!({ "definitionId": ID })).await;
    let listed = app.call("definitions/list", json!({})).await;
    let version =
        app.call("definitions/getVersion", json!({ "definitionId": ID, "version": 1 })).await;
    let views = [
        ("create", created.result().clone()),
        ("get", got.result().clone()),
        ("list", listed.result()["items"][0].clone()),
        ("getVersion", version.result().clone()),
    ];
    for (endpoint, view) in views {
        assert_eq!(view["definitionId"], ID, "{endpoint}");
        assert!(view.get("webhookConfig").is_none(), "{endpoint}: {view}");
        let text = view.to_string();
        assert!(!text.contains(SECRET) && !text.contains(url), "{endpoint}: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// 6. Nothing written on refusal (also checked by id after every refusal above)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refusals_leave_the_workspace_empty() {
    let app = spawn_app().await;
    let refused = [
        based(&[("/nodes/1/slaMs", json!(0))]),
        without(base(), "/edges/2"),
        based(&[("/nodes/-", agent("draft"))]),
        based(&[("/webhookConfig", json!({"url": "https://127.0.0.1/x", "secret": SECRET}))]),
    ];
    for body in refused {
        refuse(&app, body).await;
    }
    let listed = app.call("definitions/list", json!({})).await;
    assert_eq!(listed.result()["items"], json!([]));

    // The same workspace does take a valid definition, so the empty list means something.
    app.call("definitions/create", base()).await.result();
    let listed = app.call("definitions/list", json!({})).await;
    assert_eq!(listed.result()["items"].as_array().map(Vec::len), Some(1));
}
