//! The definition create and update schema (reference 2.1.1 and 2.1.2): the top-level
//! fields, scope and `webhookConfig`. Nodes, edges, groups and triggers have modules of
//! their own.

use crate::address::AddressPolicy;
use crate::issue::{Issue, Path};
use crate::model::{DefinitionSpec, Scope, ScopeLevel, WebhookConfig, EXTERNAL_EVENT_TYPES};
use crate::schema::check::{Checker, Object, Str};
use crate::schema::fields::{self, clean_since};
use crate::schema::{graph, nodes, triggers};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    /// Update: the same fields plus a required `ifVersion`.
    Update,
}

const CREATE_KEYS: [&str; 13] = [
    "definitionId",
    "name",
    "description",
    "scope",
    "nodes",
    "edges",
    "groups",
    "triggers",
    "webhookConfig",
    "tags",
    "custom",
    "organizationId",
    "documentId",
];

/// Largest integer a JavaScript client can send exactly.
const JS_SAFE_INT_MAX: i64 = 9_007_199_254_740_991;

/// Organization and document ids: opaque strings of the caller's own systems.
const SCOPE_ID: Str<'static> = Str::len(1, 256);

/// Parses a create or update body; URLs Assent will call are checked under the operator's
/// address `policy`. Returns the spec and, for an update, `ifVersion`.
pub fn parse_definition(
    body: &Value,
    mode: Mode,
    policy: &AddressPolicy,
) -> Result<(DefinitionSpec, Option<i64>), Vec<Issue>> {
    let mut c = Checker::new();
    match definition(&mut c, body, mode, policy) {
        Some(parsed) if c.is_clean() => Ok(parsed),
        _ => {
            debug_assert!(!c.is_clean(), "a refused definition must say why");
            Err(c.issues)
        }
    }
}

fn definition(
    c: &mut Checker,
    body: &Value,
    mode: Mode,
    policy: &AddressPolicy,
) -> Option<(DefinitionSpec, Option<i64>)> {
    let root = Path::root();
    let mut keys = CREATE_KEYS.to_vec();
    if mode == Mode::Update {
        keys.push("ifVersion");
    }
    let mark = c.issues.len();
    let obj = c.object(Some(body), &root, &keys)?;
    let at = |key: &str| root.key(key);

    let id_rule = Str::matching(0, usize::MAX, &fields::DEFINITION_ID);
    let definition_id = c.string(obj.get("definitionId"), &at("definitionId"), id_rule);
    let name = c.string(obj.get("name"), &at("name"), Str::len(1, 200));
    let description = c.opt_string(obj.get("description"), &at("description"), Str::len(0, 2000));
    let scope = scope(c, obj);
    let nodes = fields::list(c, obj.get("nodes"), &at("nodes"), (1, 100), true, |c, v, p| {
        nodes::node(c, policy, v, p)
    });
    let edges = fields::list(c, obj.get("edges"), &at("edges"), (0, 500), true, graph::edge);
    let groups = fields::list(c, obj.get("groups"), &at("groups"), (0, 100), false, graph::group);
    let triggers =
        fields::list(c, obj.get("triggers"), &at("triggers"), (0, 50), false, triggers::trigger);
    let webhook_config = webhook_config(c, policy, obj.get("webhookConfig"), &at("webhookConfig"));
    let tags = c.string_list(obj.get("tags"), &at("tags"), (0, 20), Str::len(0, 64), false);
    let custom = c.any_object(obj.get("custom"), &at("custom"), false).cloned();
    let if_version = match mode {
        Mode::Update => c.int(obj.get("ifVersion"), &at("ifVersion"), 1, JS_SAFE_INT_MAX),
        Mode::Create => None,
    };

    if !clean_since(c, mark) {
        return None;
    }
    let spec = DefinitionSpec {
        definition_id: definition_id?,
        name: name?,
        description,
        scope: scope?,
        nodes: nodes?,
        edges: edges?,
        groups: groups?,
        triggers: triggers?,
        webhook_config,
        tags,
        custom,
    };
    Some((spec, if_version))
}

const SCOPE_LEVELS: [&str; 3] = ["apiKey", "organization", "document"];

/// The scope, from `scope` and the top-level ids, which may each be given in either place.
fn scope(c: &mut Checker, obj: &Object) -> Option<Scope> {
    let root = Path::root();
    let path = root.key("scope");
    let mark = c.issues.len();
    let inner = c.opt_object(obj.get("scope"), &path, &["level", "organizationId", "documentId"]);
    let level =
        inner.and_then(|s| c.enumeration(s.get("level"), &path.key("level"), &SCOPE_LEVELS));
    let inner_id = |c: &mut Checker, key: &str| {
        inner.and_then(|s| c.opt_string(s.get(key), &path.key(key), SCOPE_ID))
    };
    let scope_org = inner_id(c, "organizationId");
    let scope_doc = inner_id(c, "documentId");
    let top_org = c.opt_string(obj.get("organizationId"), &root.key("organizationId"), SCOPE_ID);
    let top_doc = c.opt_string(obj.get("documentId"), &root.key("documentId"), SCOPE_ID);
    let organization_id = one_id(c, "organizationId", scope_org, top_org);
    let document_id = one_id(c, "documentId", scope_doc, top_doc);
    if !clean_since(c, mark) {
        return None;
    }

    let level = match level {
        None | Some("apiKey") => ScopeLevel::ApiKey,
        Some("organization") => ScopeLevel::Organization,
        Some(_) => ScopeLevel::Document,
    };
    let needs_org = level != ScopeLevel::ApiKey;
    if needs_org && organization_id.is_none() {
        let msg = "Required for scope level \"organization\" or \"document\" \
                   (inside scope or at the top level)";
        c.custom(&path.key("organizationId"), msg);
    }
    if level == ScopeLevel::Document && document_id.is_none() {
        let msg = "Required for scope level \"document\" (inside scope or at the top level)";
        c.custom(&path.key("documentId"), msg);
    }
    clean_since(c, mark).then_some(Scope { level, organization_id, document_id })
}

/// Merges an id given inside `scope` and at the top level; both must agree when both are set.
fn one_id(
    c: &mut Checker,
    key: &str,
    in_scope: Option<String>,
    top_level: Option<String>,
) -> Option<String> {
    match (in_scope, top_level) {
        (Some(a), Some(b)) if a != b => {
            let msg = format!("Differs from scope.{key}: give the id once, or the same in both");
            c.custom(&Path::root().key(key), msg);
            None
        }
        (a, b) => a.or(b),
    }
}

fn webhook_config(
    c: &mut Checker,
    policy: &AddressPolicy,
    v: Option<&Value>,
    path: &Path,
) -> Option<WebhookConfig> {
    let mark = c.issues.len();
    let obj = c.opt_object(v, path, &["url", "secret", "eventTypes"])?;
    let url = fields::webhook_url(c, policy, obj.get("url"), &path.key("url"));
    let secret = c.string(obj.get("secret"), &path.key("secret"), Str::len(16, 512));
    let event_types = fields::list(
        c,
        obj.get("eventTypes"),
        &path.key("eventTypes"),
        (0, 50),
        false,
        |c, v, p| {
            c.string(Some(v), p, Str::len(1, 128))?;
            c.enumeration(Some(v), p, &EXTERNAL_EVENT_TYPES).map(str::to_owned)
        },
    );
    let event_types = obj.contains_key("eventTypes").then_some(event_types).flatten();

    if !clean_since(c, mark) {
        return None;
    }
    Some(WebhookConfig { url: url?, secret: secret?, event_types })
}

#[cfg(test)]
mod tests {
    use super::{parse_definition, Mode};
    use crate::address::AddressPolicy;
    use crate::model::ScopeLevel;
    use crate::schema::testkit::{issues, minimal, parse, parse_mode, problems};
    use crate::validate::validate_definition;
    use serde_json::{json, Value};

    /// The example definitions kept at the repository root.
    const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

    /// Number of example definitions in [`EXAMPLES_DIR`].
    const EXAMPLES_COUNT: usize = 7;

    fn examples() -> Vec<(String, Value)> {
        let entries =
            std::fs::read_dir(EXAMPLES_DIR).unwrap_or_else(|e| panic!("{EXAMPLES_DIR}: {e}"));
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("readable example");
                let body = serde_json::from_str(&text).expect("example is JSON");
                found.push((path.display().to_string(), body));
            }
        }
        found
    }

    #[test]
    fn every_example_passes_all_three_stages() {
        let examples = examples();
        assert_eq!(examples.len(), EXAMPLES_COUNT, "examples in {EXAMPLES_DIR}");
        for (name, body) in examples {
            let validated = validate_definition(&body, Mode::Create, &AddressPolicy::default());
            if let Err(invalid) = validated {
                panic!("{name}: {invalid:?}");
            }
        }
    }

    #[test]
    fn a_minimal_body_takes_the_defaults() {
        let (spec, if_version) = parse_mode(&minimal(), Mode::Create).expect("valid");
        assert_eq!(spec.definition_id, "demo");
        assert_eq!(spec.scope.level, ScopeLevel::ApiKey);
        assert_eq!(if_version, None);
    }

    fn with(key: &str, value: Value) -> Value {
        let mut body = minimal();
        body[key] = value;
        body
    }

    #[test]
    fn top_level_fields_and_limits() {
        let nodes = |n: usize| {
            let node = |i| {
                json!({"nodeId": format!("n{i}"), "type": "agent",
                                  "config": {"agentId": "x", "urlPath": "p"}})
            };
            Value::Array((0..n).map(node).collect())
        };
        let tags = |n: usize| json!((0..n).map(|i| format!("t{i}")).collect::<Vec<_>>());
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (with("definitionId", json!("abc")), vec![]),
            (with("definitionId", json!(format!("a{}", "b".repeat(63)))), vec![]),
            (with("definitionId", json!("ab")), vec!["definitionId: Invalid"]),
            (
                with("definitionId", json!(format!("a{}", "b".repeat(64)))),
                vec!["definitionId: Invalid"],
            ),
            (with("definitionId", json!("-abc")), vec!["definitionId: Invalid"]),
            (with("definitionId", json!("Abc")), vec!["definitionId: Invalid"]),
            (with("name", json!("")), vec!["name: String must contain at least 1 character(s)"]),
            (with("name", json!("n".repeat(200))), vec![]),
            (
                with("name", json!("n".repeat(201))),
                vec!["name: String must contain at most 200 character(s)"],
            ),
            (with("description", json!("")), vec![]),
            (
                with("description", json!("d".repeat(2001))),
                vec!["description: String must contain at most 2000 character(s)"],
            ),
            (with("nodes", json!([])), vec!["nodes: Array must contain at least 1 element(s)"]),
            (with("nodes", nodes(100)), vec![]),
            (with("nodes", nodes(101)), vec!["nodes: Array must contain at most 100 element(s)"]),
            (with("groups", json!([])), vec![]),
            (with("triggers", json!([])), vec![]),
            (with("tags", tags(20)), vec![]),
            (with("tags", tags(21)), vec!["tags: Array must contain at most 20 element(s)"]),
            (with("tags", json!(["t".repeat(64)])), vec![]),
            (
                with("tags", json!(["t".repeat(65)])),
                vec!["tags.0: String must contain at most 64 character(s)"],
            ),
            (with("custom", json!({"anything": {"goes": [1]}})), vec![]),
            (with("custom", json!("x")), vec!["custom: Expected object, received string"]),
            (with("loops", json!([])), vec![": Unrecognized key(s) in object: 'loops'"]),
            (with("ifVersion", json!(1)), vec![": Unrecognized key(s) in object: 'ifVersion'"]),
        ];
        for (body, expected) in cases {
            assert_eq!(problems(&body), expected, "{body}");
        }
    }

    #[test]
    fn explicit_null_is_refused_for_every_optional_field() {
        let optional = [
            "description",
            "scope",
            "groups",
            "triggers",
            "webhookConfig",
            "tags",
            "custom",
            "organizationId",
            "documentId",
        ];
        for key in optional {
            let found = problems(&with(key, Value::Null));
            assert_eq!(found.len(), 1, "{key}: {found:?}");
            assert!(found[0].starts_with(&format!("{key}: Expected ")), "{found:?}");
            assert!(found[0].ends_with(", received null"), "{found:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_an_object() {
        assert_eq!(problems(&json!([1])), [": Expected object, received array"]);
        assert_eq!(issues(&json!(null))[0].headline(), "Expected object, received null");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let body = json!({
            "definitionId": "x",
            "nodes": [
                {"nodeId": "a", "type": "agent", "config": {"agentId": "x"}},
                {"nodeId": "b", "type": "human", "config": {"reviewerIds": ["u"]}, "slaMs": -1},
            ],
            "edges": [{"from": "a", "to": "b", "on": "sometimes"}],
            "tags": [1],
            "extra": true
        });
        assert_eq!(
            problems(&body),
            [
                ": Unrecognized key(s) in object: 'extra'",
                "definitionId: Invalid",
                "name: Required",
                "nodes.0.config: agent node requires either a static \"url\" or a \"urlPath\"",
                "nodes.1.slaMs: Number must be greater than or equal to 1",
                "edges.0.on: Invalid enum value. Expected 'approve' | 'reject' | 'always' | \
                 'exhausted' | 'custom', received 'sometimes'",
                "tags.0: Expected string, received number",
            ]
        );
    }

    #[test]
    fn scope_is_resolved_from_either_place() {
        let cases = [
            (
                json!({"scope": {"level": "organization", "organizationId": "o"}}),
                ScopeLevel::Organization,
                Some("o"),
                None,
            ),
            (
                json!({"scope": {"level": "organization"}, "organizationId": "o"}),
                ScopeLevel::Organization,
                Some("o"),
                None,
            ),
            (
                json!({"scope": {"level": "document", "organizationId": "o"}, "documentId": "d"}),
                ScopeLevel::Document,
                Some("o"),
                Some("d"),
            ),
            (
                json!({
                    "scope": {"level": "document", "organizationId": "o", "documentId": "d"},
                    "organizationId": "o",
                    "documentId": "d"
                }),
                ScopeLevel::Document,
                Some("o"),
                Some("d"),
            ),
            (json!({"organizationId": "o"}), ScopeLevel::ApiKey, Some("o"), None),
            (json!({}), ScopeLevel::ApiKey, None, None),
        ];
        for (extra, level, org, doc) in cases {
            let mut body = minimal();
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let scope = parse(&body).unwrap_or_else(|e| panic!("{extra}: {e:?}")).scope;
            assert_eq!(
                (scope.level, scope.organization_id.as_deref(), scope.document_id.as_deref()),
                (level, org, doc),
                "{extra}"
            );
        }
    }

    #[test]
    fn scope_problems() {
        let cases: Vec<(Value, Vec<&str>)> =
            vec![
            (
                json!({"scope": {"level": "organization"}}),
                vec!["scope.organizationId: Required for scope level \"organization\" or \
                 \"document\" (inside scope or at the top level)"],
            ),
            (
                json!({"scope": {"level": "document", "organizationId": "o"}}),
                vec!["scope.documentId: Required for scope level \"document\" (inside scope or at \
                 the top level)"],
            ),
            (json!({"scope": {"level": "document"}}), vec![
                "scope.organizationId: Required for scope level \"organization\" or \"document\" \
                 (inside scope or at the top level)",
                "scope.documentId: Required for scope level \"document\" (inside scope or at the \
                 top level)",
            ]),
            (
                json!({
                    "scope": {"level": "organization", "organizationId": "o"},
                    "organizationId": "p"
                }),
                vec!["organizationId: Differs from scope.organizationId: give the id once, or the \
                 same in both"],
            ),
            (
                json!({
                    "scope": {"level": "document", "organizationId": "o", "documentId": "d"},
                    "documentId": "e"
                }),
                vec!["documentId: Differs from scope.documentId: give the id once, or the same in \
                 both"],
            ),
            (json!({"scope": {}}), vec!["scope.level: Required"]),
            (
                json!({"scope": {"level": "team"}}),
                vec!["scope.level: Invalid enum value. Expected 'apiKey' | 'organization' | \
                 'document', received 'team'"],
            ),
            (
                json!({"scope": {"level": "apiKey", "organizationId": null}}),
                vec!["scope.organizationId: Expected string, received null"],
            ),
            (
                json!({"scope": {"level": "apiKey", "folderId": "f"}}),
                vec!["scope: Unrecognized key(s) in object: 'folderId'"],
            ),
            (
                json!({"organizationId": ""}),
                vec!["organizationId: String must contain at least 1 character(s)"],
            ),
        ];
        for (extra, expected) in cases {
            let mut body = minimal();
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            assert_eq!(problems(&body), expected, "{extra}");
        }
    }

    #[test]
    fn update_requires_if_version() {
        let parse_update = |v: Option<Value>| {
            let mut body = minimal();
            if let Some(v) = v {
                body["ifVersion"] = v;
            }
            parse_mode(&body, Mode::Update)
        };
        assert_eq!(parse_update(Some(json!(4))).expect("valid").1, Some(4));
        let message = |v| parse_update(v).expect_err("invalid")[0].headline();
        assert_eq!(message(None), "Required for ifVersion");
        assert_eq!(
            message(Some(json!(0))),
            "Number must be greater than or equal to 1 for ifVersion"
        );
        assert_eq!(message(Some(json!(1.5))), "Expected integer, received float for ifVersion");
        assert_eq!(message(Some(json!("4"))), "Expected number, received string for ifVersion");
        assert_eq!(message(Some(Value::Null)), "Expected number, received null for ifVersion");
    }

    const UNKNOWN_EVENT_TYPE: &str = "webhookConfig.eventTypes.0: Invalid enum value. Expected \
        'execution.dispatched' | 'execution.completed' | 'execution.failed' | \
        'execution.cancelled' | 'step.awaiting-approval' | 'step.completed' | 'step.failed' | \
        'step.breached' | 'step.cancelled' | 'group.quorum-met' | 'loop.iteration-started' | \
        'loop.exhausted', received 'step.started'";

    #[test]
    fn webhook_config() {
        let config = |extra: Value| {
            let mut c = json!({"url": "https://hooks.example.com/a", "secret": "s".repeat(16)});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            with("webhookConfig", c)
        };
        let all: Vec<&str> = crate::model::EXTERNAL_EVENT_TYPES.to_vec();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (config(json!({"eventTypes": all})), vec![]),
            (
                config(json!({"secret": "s".repeat(15)})),
                vec!["webhookConfig.secret: String must contain at least 16 character(s)"],
            ),
            (config(json!({"secret": "s".repeat(512)})), vec![]),
            (
                config(json!({"secret": "s".repeat(513)})),
                vec!["webhookConfig.secret: String must contain at most 512 character(s)"],
            ),
            (
                config(json!({"url": "http://example.com"})),
                vec!["webhookConfig.url: webhookUrl must use https scheme"],
            ),
            (
                config(json!({"url": "https://127.0.0.1/x"})),
                vec![
                    "webhookConfig.url: webhookUrl host resolves to a private, loopback, or \
                 link-local address (127.0.0.0/8, loopback)",
                ],
            ),
            (
                config(json!({"url": "https://localhost/x"})),
                vec!["webhookConfig.url: webhookUrl host \"localhost\" is not allowed"],
            ),
            (
                config(json!({"url": "https://user:pw@hooks.example.com/a"})),
                vec!["webhookConfig.url: webhookUrl must not contain a user name or password"],
            ),
            (
                config(json!({"url": "not a url"})),
                vec!["webhookConfig.url: webhookUrl is not a valid absolute URL"],
            ),
            (
                config(json!({"url": format!("https://e.com/{}", "a".repeat(1987))})),
                vec!["webhookConfig.url: String must contain at most 2000 character(s)"],
            ),
            (config(json!({"eventTypes": ["step.started"]})), vec![UNKNOWN_EVENT_TYPE]),
            (
                config(json!({"eventTypes": [""]})),
                vec!["webhookConfig.eventTypes.0: String must contain at least 1 character(s)"],
            ),
            (
                config(json!({"eventTypes": vec!["step.failed"; 51]})),
                vec!["webhookConfig.eventTypes: Array must contain at most 50 element(s)"],
            ),
            (
                with("webhookConfig", json!({"url": "https://hooks.example.com/a"})),
                vec!["webhookConfig.secret: Required"],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(problems(&body), expected, "{}", body["webhookConfig"]);
        }
        let found = issues(&config(json!({"url": "http://example.com"})));
        assert_eq!(found.len(), 1);
        assert!(found[0].exact);
        assert_eq!(found[0].headline(), "webhookUrl must use https scheme");
    }

    #[test]
    fn the_operator_policy_reaches_every_guarded_url() {
        let mut body = minimal();
        body["webhookConfig"] = json!({"url": "http://example.com", "secret": "s".repeat(16)});
        body["nodes"] = json!([
            {"nodeId": "w", "type": "webhook", "config": {"url": "http://cms.example.com/hook"}},
            {"nodeId": "s", "type": "notification", "config": {
                "channel": "slack", "bodyTemplate": "b",
                "slackTarget": "http://hooks.slack.com/x"}},
        ]);
        assert_eq!(problems(&body).len(), 3, "refused under the default policy");

        let dev = AddressPolicy { allow_http: true, ..AddressPolicy::default() };
        let parsed = parse_definition(&body, Mode::Create, &dev);
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
