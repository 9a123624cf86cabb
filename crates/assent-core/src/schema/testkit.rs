//! Test stand-ins for the schema's collaborators, and small builders of request bodies.

use crate::address::AddressPolicy;
use crate::expr::Expr;
use crate::issue::Issue;
use crate::model::{DefinitionSpec, NodeConfig};
use crate::schema::definition::{parse_with, Mode};
use crate::schema::fields::Collaborators;
use serde_json::{json, Value};

static POLICY: AddressPolicy =
    AddressPolicy { allow_http: false, allowed_hosts: Vec::new(), allowed_ranges: Vec::new() };

/// A rough address guard: https only, and no loopback or private literal hosts.
fn check_url(raw: &str, _policy: &AddressPolicy) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|_| "must be a valid URL".to_owned())?;
    if url.scheme() != "https" {
        return Err("must use https scheme".into());
    }
    let host = url.host_str().unwrap_or_default();
    if host == "localhost" || host.starts_with("10.") || host.starts_with("127.") {
        return Err("host resolves to a private, loopback, or link-local address".into());
    }
    Ok(())
}

/// Every source parses, except `bad`.
fn parse_when(source: &str) -> Result<Expr, String> {
    match source {
        "bad" => Err("Unknown operator \"bad\"".into()),
        _ => Ok(Expr::Literal(Value::Bool(true))),
    }
}

/// Five whitespace-separated fields.
fn check_cron(source: &str) -> Result<(), String> {
    match source.split_whitespace().count() {
        5 => Ok(()),
        n => Err(format!("expected 5 fields, found {n}")),
    }
}

fn is_valid_timezone(name: &str) -> bool {
    ["UTC", "America/Los_Angeles", "Europe/Paris"].contains(&name)
}

pub fn fake() -> Collaborators<'static> {
    Collaborators { policy: &POLICY, check_url, parse_when, check_cron, is_valid_timezone }
}

pub fn parse_mode(body: &Value, mode: Mode) -> Result<(DefinitionSpec, Option<i64>), Vec<Issue>> {
    parse_with(body, mode, &fake())
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
