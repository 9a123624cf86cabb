//! Edges and groups, field by field. How they fit together (roles and `when`, loops,
//! endpoints that exist) is the edge compiler's and the linter's business, not the schema's.

use crate::issue::{Issue, Path};
use crate::model::{Edge, EdgeRole, Endpoint, Group, QuorumPolicy};
use crate::schema::check::{type_name, Checker, Str};
use crate::schema::fields::{self, clean_since};
use serde_json::Value;

const EDGE_KEYS: [&str; 5] = ["from", "to", "on", "when", "loop"];
const ROLES: [&str; 5] = ["approve", "reject", "always", "exhausted", "custom"];

/// Node and group ids are at most 64 characters, so a longer reference can name nothing.
const REF: Str<'static> = Str::len(1, 64);

/// Longest `when` expression source.
const WHEN_MAX: usize = 1000;

pub fn edge(c: &mut Checker, v: &Value, path: &Path) -> Option<Edge> {
    let mark = c.issues.len();
    let obj = c.object(Some(v), path, &EDGE_KEYS)?;
    let from = endpoint(c, obj.get("from"), &path.key("from"));
    let to = endpoint(c, obj.get("to"), &path.key("to"));
    let on = c.opt_enumeration(obj.get("on"), &path.key("on"), &ROLES);
    let when = when(c, obj.get("when"), &path.key("when"));
    let loop_path = path.key("loop");
    let loop_max_iterations =
        c.opt_object(obj.get("loop"), &loop_path, &["maxIterations"]).and_then(|l| {
            fields::uint(c, l.get("maxIterations"), &loop_path.key("maxIterations"), 1, 20)
        });

    if !clean_since(c, mark) {
        return None;
    }
    let on = match on {
        Some("approve") => EdgeRole::Approve,
        Some("reject") => EdgeRole::Reject,
        Some("exhausted") => EdgeRole::Exhausted,
        Some("custom") => EdgeRole::Custom,
        _ => EdgeRole::Always,
    };
    Some(Edge { from: from?, to: to?, on, when, loop_max_iterations })
}

/// A node id, `{kind: "node", nodeId}` or `{kind: "group", groupId}`.
fn endpoint(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<Endpoint> {
    match v {
        None => c.string(None, path, REF).map(Endpoint::Node),
        Some(Value::String(_)) => c.string(v, path, REF).map(Endpoint::Node),
        Some(Value::Object(obj)) => {
            let kind = c.enumeration(obj.get("kind"), &path.key("kind"), &["node", "group"])?;
            let id_key = if kind == "node" { "nodeId" } else { "groupId" };
            c.strict_keys(obj, path, &["kind", id_key]);
            let id = c.string(obj.get(id_key), &path.key(id_key), REF)?;
            Some(if kind == "node" { Endpoint::Node(id) } else { Endpoint::Group(id) })
        }
        Some(other) => {
            let msg = format!("Expected string or object, received {}", type_name(other));
            c.push(Issue::new("invalid_type", path, msg));
            None
        }
    }
}

/// A `when` source, parsed when its length is right. An empty one is taken as absent, so the
/// edge compiler reports a custom edge without a predicate in its own words.
fn when(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<crate::expr::Expr> {
    let source = c.opt_string(v, path, Str::len(0, WHEN_MAX))?;
    if source.is_empty() {
        return None;
    }
    match crate::expr::parse_when(&source) {
        Ok(expr) => Some(expr),
        Err(why) => {
            c.custom(path, why);
            None
        }
    }
}

const GROUP_KEYS: [&str; 6] =
    ["groupId", "memberNodeIds", "expectedSteps", "quorum", "onQuorumMet", "requiredNodeIds"];
const POLICIES: [&str; 3] = ["waitAll", "cancelOnQuorum", "joinOnQuorum"];

pub fn group(c: &mut Checker, v: &Value, path: &Path) -> Option<Group> {
    let mark = c.issues.len();
    let obj = c.object(Some(v), path, &GROUP_KEYS)?;
    let at = |key: &str| path.key(key);
    let group_id = fields::id(c, obj.get("groupId"), &at("groupId"), 64);
    let members =
        c.string_list(obj.get("memberNodeIds"), &at("memberNodeIds"), (1, 500), REF, true);
    let expected_steps = fields::uint(c, obj.get("expectedSteps"), &at("expectedSteps"), 1, 500);
    // Quorum above expectedSteps is the linter's `group-quorum-invalid`.
    let quorum = fields::uint(c, obj.get("quorum"), &at("quorum"), 1, i64::from(u32::MAX));
    let policy = c.opt_enumeration(obj.get("onQuorumMet"), &at("onQuorumMet"), &POLICIES);
    let required_path = at("requiredNodeIds");
    let required = c.string_list(obj.get("requiredNodeIds"), &required_path, (0, 500), REF, false);

    if !clean_since(c, mark) {
        return None;
    }
    let on_quorum_met = match policy {
        Some("cancelOnQuorum") => QuorumPolicy::CancelOnQuorum,
        Some("joinOnQuorum") => QuorumPolicy::JoinOnQuorum,
        _ => QuorumPolicy::WaitAll,
    };
    Some(Group {
        group_id: group_id?,
        member_node_ids: members?,
        expected_steps: expected_steps?,
        quorum: quorum?,
        on_quorum_met,
        required_node_ids: required.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use crate::expr::{Expr, Op};
    use crate::model::{EdgeRole, Endpoint, QuorumPolicy};
    use crate::schema::testkit::{minimal, parse, problems};
    use serde_json::{json, Value};

    fn with_edges(edges: Value) -> Value {
        let mut body = minimal();
        body["edges"] = edges;
        body
    }

    fn with_groups(groups: Value) -> Value {
        let mut body = minimal();
        body["groups"] = groups;
        body
    }

    /// `output.decision == "approve"`, as a `when` source.
    const DECISION_IS_APPROVE: &str =
        r#"{"op": "eq", "args": [{"var": "output.decision"}, "approve"]}"#;

    #[test]
    fn endpoints_in_all_three_forms() {
        let body = with_edges(json!([
            {"from": "a", "to": {"kind": "node", "nodeId": "b"}, "on": "reject",
             "loop": {"maxIterations": 3}},
            {"from": {"kind": "group", "groupId": "g"}, "to": "c", "on": "custom", "when": "true"},
        ]));
        let spec = parse(&body).expect("valid");
        assert_eq!(spec.edges[0].from, Endpoint::Node("a".into()));
        assert_eq!(spec.edges[0].to, Endpoint::Node("b".into()));
        assert_eq!(spec.edges[0].on, EdgeRole::Reject);
        assert_eq!(spec.edges[0].loop_max_iterations, Some(3));
        assert_eq!(spec.edges[1].from, Endpoint::Group("g".into()));
        assert_eq!(spec.edges[1].when, Some(Expr::Literal(Value::Bool(true))));
    }

    #[test]
    fn a_custom_when_is_parsed_into_an_expression() {
        let edge = json!({"from": "a", "to": "b", "on": "custom", "when": DECISION_IS_APPROVE});
        let spec = parse(&with_edges(json!([edge]))).expect("valid");
        let expected = Expr::Op {
            op: Op::Eq,
            args: vec![Expr::Var("output.decision".into()), Expr::Literal(json!("approve"))],
        };
        assert_eq!(spec.edges[0].when, Some(expected));
    }

    #[test]
    fn a_bad_when_is_reported_at_its_edge() {
        let good = json!({"from": "a", "to": "b", "on": "custom", "when": DECISION_IS_APPROVE});
        let bad = |when: &str| json!({"from": "a", "to": "c", "on": "custom", "when": when});
        let cases = [
            (
                "output.decision == 'approve'",
                "expression is not valid JSON (expected value at line 1 column 1)",
            ),
            (
                r#"{"op": "like", "args": [{"var": "output.title"}, "x"]}"#,
                "unknown operator \"like\"",
            ),
            (
                r#"{"var": "decision"}"#,
                "unknown variable \"decision\": a variable starts with \
              output, step or execution.input",
            ),
        ];
        for (when, message) in cases {
            let body = with_edges(json!([good.clone(), bad(when)]));
            assert_eq!(problems(&body), [format!("edges.1.when: {message}")], "{when}");
        }
    }

    #[test]
    fn on_defaults_to_always_and_an_empty_when_is_absent() {
        let spec =
            parse(&with_edges(json!([{"from": "a", "to": "b", "when": ""}]))).expect("valid");
        assert_eq!(spec.edges[0].on, EdgeRole::Always);
        assert_eq!(spec.edges[0].when, None);
    }

    /// A `when` source of `len` characters: a JSON string literal, which is a valid expression.
    fn string_of(len: usize) -> String {
        format!("\"{}\"", "w".repeat(len - 2))
    }

    #[test]
    fn edge_problems() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"from": "", "to": "b"}),
                vec!["from: String must contain at least 1 character(s)"],
            ),
            (json!({"to": "b"}), vec!["from: Required"]),
            (
                json!({"from": 3, "to": null}),
                vec![
                    "from: Expected string or object, received number",
                    "to: Expected string or object, received null",
                ],
            ),
            (
                json!({"from": {"kind": "node", "groupId": "g"}, "to": "b"}),
                vec!["from: Unrecognized key(s) in object: 'groupId'", "from.nodeId: Required"],
            ),
            (
                json!({"from": {"kind": "step", "nodeId": "a"}, "to": "b"}),
                vec!["from.kind: Invalid enum value. Expected 'node' | 'group', received 'step'"],
            ),
            (
                json!({"from": "a", "to": "b", "on": "maybe"}),
                vec![
                    "on: Invalid enum value. Expected 'approve' | 'reject' | 'always' | \
                 'exhausted' | 'custom', received 'maybe'",
                ],
            ),
            (
                json!({"from": "a", "to": "b", "on": null}),
                vec!["on: Expected string, received null"],
            ),
            (json!({"from": "a", "to": "b", "on": "custom", "when": string_of(1000)}), vec![]),
            (
                json!({"from": "a", "to": "b", "on": "custom", "when": string_of(1001)}),
                vec!["when: String must contain at most 1000 character(s)"],
            ),
            (
                json!({"from": "a", "to": "b", "on": "custom", "when": "{\"op\": \"xor\"}"}),
                vec!["when: unknown operator \"xor\""],
            ),
            (
                json!({"from": "a", "to": "b", "when": {"op": "eq"}}),
                vec!["when: Expected string, received object"],
            ),
            (
                json!({"from": "b", "to": "a", "on": "reject", "loop": {"maxIterations": 0}}),
                vec!["loop.maxIterations: Number must be greater than or equal to 1"],
            ),
            (
                json!({"from": "b", "to": "a", "on": "reject", "loop": {"maxIterations": 20}}),
                vec![],
            ),
            (
                json!({"from": "b", "to": "a", "on": "reject", "loop": {"maxIterations": 21}}),
                vec!["loop.maxIterations: Number must be less than or equal to 20"],
            ),
            (
                json!({"from": "b", "to": "a", "on": "reject", "loop": {}}),
                vec!["loop.maxIterations: Required"],
            ),
            (
                json!({"from": "b", "to": "a", "on": "reject",
                       "loop": {"maxIterations": 2, "until": 1}}),
                vec!["loop: Unrecognized key(s) in object: 'until'"],
            ),
            (
                json!({"from": "a", "to": "b", "label": "x"}),
                vec![": Unrecognized key(s) in object: 'label'"],
            ),
        ];
        for (edge, expected) in cases {
            let expected: Vec<String> = expected
                .iter()
                .map(|e| format!("edges.0{}{e}", if e.starts_with(':') { "" } else { "." }))
                .collect();
            assert_eq!(problems(&with_edges(json!([edge.clone()]))), expected, "{edge}");
        }
    }

    #[test]
    fn edges_are_required_and_bounded() {
        let mut body = minimal();
        body.as_object_mut().unwrap().remove("edges");
        assert_eq!(problems(&body), ["edges: Required"]);
        let many: Vec<Value> = (0..501).map(|_| json!({"from": "a", "to": "b"})).collect();
        assert_eq!(
            problems(&with_edges(json!(many))),
            ["edges: Array must contain at most 500 element(s)"]
        );
        let enough: Vec<Value> = (0..500).map(|_| json!({"from": "a", "to": "b"})).collect();
        assert_eq!(problems(&with_edges(json!(enough))), Vec::<String>::new());
    }

    fn group(extra: Value) -> Value {
        let mut g =
            json!({"groupId": "g", "memberNodeIds": ["a", "b"], "expectedSteps": 2, "quorum": 1});
        for (k, v) in extra.as_object().unwrap() {
            g[k] = v.clone();
        }
        g
    }

    #[test]
    fn group_defaults() {
        let spec = parse(&with_groups(json!([group(json!({}))]))).expect("valid");
        assert_eq!(spec.groups[0].on_quorum_met, QuorumPolicy::WaitAll);
        assert!(spec.groups[0].required_node_ids.is_empty());
    }

    #[test]
    fn group_problems() {
        let members: Vec<String> = (0..501).map(|i| format!("n{i}")).collect();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (group(json!({"onQuorumMet": "joinOnQuorum", "requiredNodeIds": ["a"]})), vec![]),
            (
                group(json!({"groupId": "g__1"})),
                vec!["groupId: Two underscores (\"__\") are not allowed in an id"],
            ),
            (
                group(json!({"groupId": "g".repeat(65)})),
                vec!["groupId: String must contain at most 64 character(s)"],
            ),
            (
                group(json!({"memberNodeIds": []})),
                vec!["memberNodeIds: Array must contain at least 1 element(s)"],
            ),
            (
                group(json!({"memberNodeIds": members})),
                vec!["memberNodeIds: Array must contain at most 500 element(s)"],
            ),
            (
                group(json!({"expectedSteps": 0})),
                vec!["expectedSteps: Number must be greater than or equal to 1"],
            ),
            (
                group(json!({"expectedSteps": 501})),
                vec!["expectedSteps: Number must be less than or equal to 500"],
            ),
            (
                group(json!({"quorum": 0})),
                vec!["quorum: Number must be greater than or equal to 1"],
            ),
            (group(json!({"quorum": 5})), vec![]),
            (group(json!({"quorum": 1.5})), vec!["quorum: Expected integer, received float"]),
            (
                group(json!({"onQuorumMet": "first"})),
                vec![
                    "onQuorumMet: Invalid enum value. Expected 'waitAll' | 'cancelOnQuorum' | \
                 'joinOnQuorum', received 'first'",
                ],
            ),
            (
                group(json!({"requiredNodeIds": null})),
                vec!["requiredNodeIds: Expected array, received null"],
            ),
        ];
        for (g, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|e| format!("groups.0.{e}")).collect();
            assert_eq!(problems(&with_groups(json!([g.clone()]))), expected, "{g}");
        }
    }
}
