//! The fields every node has, and the choice of config schema by node `type`.

use crate::address::AddressPolicy;
use crate::issue::Path;
use crate::model::{Node, NodeConfig};
use crate::schema::check::{Checker, Str};
use crate::schema::fields::{self, clean_since};
use crate::schema::{agent, human, notification, webhook_node};
use serde_json::Value;

const NODE_KEYS: [&str; 7] =
    ["nodeId", "type", "config", "slaMs", "requireNonEmptyOutput", "name", "description"];

const NODE_TYPES: [&str; 4] = ["agent", "human", "notification", "webhook"];

/// Longest `slaMs`: seven days.
const SLA_MAX_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A node; URLs in its config are checked under the operator's address `policy`.
pub fn node(c: &mut Checker, policy: &AddressPolicy, v: &Value, path: &Path) -> Option<Node> {
    let mark = c.issues.len();
    let obj = c.object(Some(v), path, &NODE_KEYS)?;
    let node_id = fields::id(c, obj.get("nodeId"), &path.key("nodeId"), 64);
    let node_type = c.enumeration(obj.get("type"), &path.key("type"), &NODE_TYPES);
    // Without a known type there is no schema to hold the config to.
    let config =
        node_type.and_then(|t| config(c, policy, t, obj.get("config"), &path.key("config")));
    let sla_ms = fields::opt_uint(c, obj.get("slaMs"), &path.key("slaMs"), 1, SLA_MAX_MS);
    let non_empty_path = path.key("requireNonEmptyOutput");
    let require_non_empty_output = c.opt_bool(obj.get("requireNonEmptyOutput"), &non_empty_path);
    let name = c.opt_string(obj.get("name"), &path.key("name"), Str::len(1, 200));
    let description =
        c.opt_string(obj.get("description"), &path.key("description"), Str::len(0, 2000));

    if !clean_since(c, mark) {
        return None;
    }
    Some(Node {
        node_id: node_id?,
        config: config?,
        sla_ms,
        require_non_empty_output,
        name,
        description,
    })
}

fn config(
    c: &mut Checker,
    policy: &AddressPolicy,
    node_type: &str,
    v: Option<&Value>,
    path: &Path,
) -> Option<NodeConfig> {
    match node_type {
        "agent" => agent::config(c, v, path).map(|config| NodeConfig::Agent(Box::new(config))),
        "human" => human::config(c, v, path).map(NodeConfig::Human),
        "notification" => notification::config(c, policy, v, path).map(NodeConfig::Notification),
        _ => webhook_node::config(c, policy, v, path).map(NodeConfig::Webhook),
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::testkit::{minimal, problems, with_node};
    use serde_json::json;

    fn human() -> serde_json::Value {
        json!({"reviewers": [{"userId": "u1", "mandatory": true}]})
    }

    #[test]
    fn node_fields_and_their_limits() {
        let long = |n: usize| "a".repeat(n);
        let cases = [
            (json!({"nodeId": long(64), "type": "human", "config": human()}), vec![]),
            (
                json!({"nodeId": long(65), "type": "human", "config": human()}),
                vec!["nodes.0.nodeId: String must contain at most 64 character(s)"],
            ),
            (
                json!({"nodeId": "", "type": "human", "config": human()}),
                vec!["nodes.0.nodeId: String must contain at least 1 character(s)"],
            ),
            (
                json!({"nodeId": "a__b", "type": "human", "config": human()}),
                vec!["nodes.0.nodeId: Two underscores (\"__\") are not allowed in an id"],
            ),
            (json!({"nodeId": "n", "type": "human", "config": human(), "slaMs": 1}), vec![]),
            (
                json!({"nodeId": "n", "type": "human", "config": human(), "slaMs": 0}),
                vec!["nodes.0.slaMs: Number must be greater than or equal to 1"],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(), "slaMs": 604_800_000}),
                vec![],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(), "slaMs": 604_800_001}),
                vec!["nodes.0.slaMs: Number must be less than or equal to 604800000"],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(), "name": ""}),
                vec!["nodes.0.name: String must contain at least 1 character(s)"],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(), "name": long(201)}),
                vec!["nodes.0.name: String must contain at most 200 character(s)"],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(),
                       "description": long(2001)}),
                vec!["nodes.0.description: String must contain at most 2000 character(s)"],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(),
                       "requireNonEmptyOutput": null}),
                vec!["nodes.0.requireNonEmptyOutput: Expected boolean, received null"],
            ),
            (
                json!({"nodeId": "n", "type": "human", "config": human(), "loops": []}),
                vec!["nodes.0: Unrecognized key(s) in object: 'loops'"],
            ),
            (json!({"nodeId": "n", "type": "human"}), vec!["nodes.0.config: Required"]),
        ];
        for (node, expected) in cases {
            assert_eq!(problems(&with_node(node.clone())), expected, "{node}");
        }
    }

    #[test]
    fn an_unknown_type_is_reported_and_its_config_skipped() {
        let node = json!({"nodeId": "n", "type": "robot", "config": {"anything": 1}});
        assert_eq!(
            problems(&with_node(node)),
            ["nodes.0.type: Invalid enum value. Expected 'agent' | 'human' | 'notification' | \
              'webhook', received 'robot'"]
        );
    }

    #[test]
    fn config_is_held_to_the_schema_of_its_type() {
        let node = json!({"nodeId": "n", "type": "agent", "config": human()});
        assert_eq!(
            problems(&with_node(node)),
            [
                "nodes.0.config: Unrecognized key(s) in object: 'reviewers'",
                "nodes.0.config.agentId: Required",
                "nodes.0.config: agent node requires either a static \"url\" or a \"urlPath\"",
            ]
        );
    }

    #[test]
    fn every_bad_node_is_reported() {
        let mut body = minimal();
        body["nodes"] = json!([
            {"nodeId": "", "type": "human", "config": human()},
            {"nodeId": "b", "type": "nope", "config": {}},
            {"nodeId": "c", "type": "human", "config": {"reviewers": []}},
        ]);
        assert_eq!(
            problems(&body),
            [
                "nodes.0.nodeId: String must contain at least 1 character(s)",
                "nodes.1.type: Invalid enum value. Expected 'agent' | 'human' | 'notification' \
                 | 'webhook', received 'nope'",
                "nodes.2.config.reviewers: Array must contain at least 1 element(s)",
            ]
        );
    }
}
