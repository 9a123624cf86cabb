//! Small builders of request bodies for the schema's tests, and the parse that checks them
//! under the default address policy.

use crate::address::AddressPolicy;
use crate::issue::Issue;
use crate::model::{DefinitionSpec, NodeConfig};
use crate::schema::definition::{parse_definition, Mode};
use serde_json::{json, Value};

pub fn parse_mode(body: &Value, mode: Mode) -> Result<(DefinitionSpec, Option<i64>), Vec<Issue>> {
    parse_definition(body, mode, &AddressPolicy::default())
}

pub fn parse(body: &Value) -> Result<DefinitionSpec, Vec<Issue>> {
    parse_mode(body, Mode::Create).map(|(spec, _)| spec)
}

/// The issues of a create body; none when it is valid.
pub fn issues(body: &Value) -> Vec<Issue> {
    parse(body).err().unwrap_or_default()
}

/// Each issue as `path: message`.
pub fn problems(body: &Value) -> Vec<String> {
    issues(body).iter().map(|i| format!("{}: {}", i.path, i.message)).collect()
}

/// A valid create body with one agent node and no edges.
pub fn minimal() -> Value {
    json!({
        "definitionId": "demo",
        "name": "Demo",
        "nodes": [
            {"nodeId": "a", "type": "agent", "config": {"agentId": "x", "urlPath": "doc.url"}}
        ],
        "edges": []
    })
}

pub fn with_node(node: Value) -> Value {
    let mut body = minimal();
    body["nodes"] = json!([node]);
    body
}

pub fn with_config(node_type: &str, config: Value) -> Value {
    with_node(json!({"nodeId": "n", "type": node_type, "config": config}))
}

/// The parsed config of a node that must be valid.
pub fn parse_config(node_type: &str, config: Value) -> NodeConfig {
    match parse(&with_config(node_type, config)) {
        Ok(mut spec) => spec.nodes.remove(0).config,
        Err(issues) => panic!("expected a valid config: {issues:?}"),
    }
}
