//! Table tests of the engine: definitions from JSON through the real validator, commands
//! in, statuses, step ids, events, timers and the roll-up out.

mod examples;
mod flows;
mod groups;
mod loops;
mod notifications;
mod steps;
mod webhook;
mod work;

use super::*;
use crate::address::AddressPolicy;
use crate::schema::definition::Mode;
use crate::validate::{validate_definition, Validated};
use serde_json::{json, Value};

const T0: u64 = 1_000;
const RAND: &str = "abcdef";

/// One execution under test, with every effect it has produced.
struct Harness {
    validated: Validated,
    state: ExecutionState,
    last: Effects,
    events: Vec<Event>,
    now_ms: u64,
}

fn validated(body: &Value) -> Validated {
    match validate_definition(body, Mode::Create, &AddressPolicy::default()) {
        Ok(v) => v,
        Err(e) => panic!("invalid test definition: {e:?}"),
    }
}

fn params(trigger_context: Value) -> DispatchParams {
    DispatchParams {
        execution_id: "exec_1000_abcdefgh".into(),
        correlation_id: "corr_1000_abcdefgh".into(),
        idempotency_key: "auto:exec_1000_abcdefgh".into(),
        definition_version: 1,
        trigger_context,
        organization_id: Some("org-1".into()),
        document_id: Some("doc-1".into()),
        folder_id: None,
        webhook: None,
    }
}

fn start_with(body: Value, trigger_context: Value) -> Harness {
    let validated = validated(&body);
    let (state, last) =
        dispatch(&validated.spec, &validated.compiled, params(trigger_context), T0, RAND)
            .expect("dispatch");
    let events = last.events.clone();
    Harness { validated, state, last, events, now_ms: T0 }
}

fn start(body: Value) -> Harness {
    start_with(body, json!({}))
}

impl Harness {
    fn try_apply(&mut self, command: Command) -> Result<Effects, CommandError> {
        self.now_ms += 10;
        let before = self.state.clone();
        let v = &self.validated;
        let outcome = apply(&v.spec, &v.compiled, &mut self.state, command, self.now_ms);
        match &outcome {
            Ok(effects) => {
                self.events.extend(effects.events.iter().cloned());
                self.last = effects.clone();
            }
            Err(_) => assert_eq!(self.state, before, "a refused command changed the state"),
        }
        outcome
    }

    fn apply(&mut self, command: Command) -> Value {
        match self.try_apply(command) {
            Ok(effects) => effects.result,
            Err(e) => panic!("command refused: {e}"),
        }
    }

    fn decide(&mut self, node_id: &str, reviewer_id: &str, decision: &str) -> Value {
        let step_id = self.step_id(node_id);
        self.apply(Command::RecordReviewerDecision {
            step_id,
            reviewer_id: reviewer_id.into(),
            decision: Decision::from_name(decision).expect("approve or reject"),
            reason: Some(format!("{reviewer_id} says {decision}")),
        })
    }

    /// The latest step of a node.
    fn step_id(&self, node_id: &str) -> String {
        let step = self.state.steps.iter().rev().find(|s| s.node_id == node_id);
        step.unwrap_or_else(|| panic!("no step of {node_id}")).step_id.clone()
    }

    fn step(&self, node_id: &str) -> &StepState {
        let id = self.step_id(node_id);
        self.state.step(&id).expect("step")
    }

    fn status_of(&self, node_id: &str) -> StepStatus {
        self.step(node_id).status
    }

    /// `(nodeId, status)` of every step in creation order.
    fn steps(&self) -> Vec<(String, &'static str)> {
        self.state.steps.iter().map(|s| (s.node_id.clone(), s.status.as_str())).collect()
    }

    fn external_types(&self) -> Vec<String> {
        self.events.iter().filter(|e| e.external).map(|e| e.event_type.clone()).collect()
    }

    fn events_of(&self, event_type: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.event_type == event_type).collect()
    }

    fn failure_code(&self) -> Option<&str> {
        self.state.failure_reason.as_ref().map(|f| f.code.as_str())
    }
}

fn human(id: &str, reviewers: &[(&str, bool)]) -> Value {
    let reviewers: Vec<Value> =
        reviewers.iter().map(|(u, m)| json!({ "userId": u, "mandatory": m })).collect();
    json!({ "nodeId": id, "type": "human", "config": { "reviewers": reviewers } })
}

fn mock(id: &str) -> Value {
    json!({ "nodeId": id, "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/doc" } })
}

fn edge(from: &str, to: &str, on: &str) -> Value {
    json!({ "from": from, "to": to, "on": on })
}

/// A custom edge whose predicate is `step.status == status`.
fn on_status(from: &str, to: &str, status: &str) -> Value {
    let when = json!({ "op": "eq", "args": [{ "var": "step.status" }, status] }).to_string();
    json!({ "from": from, "to": to, "on": "custom", "when": when })
}

fn definition(nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    json!({ "definitionId": "test-def", "name": "Test", "nodes": nodes, "edges": edges })
}

fn example(name: &str) -> Value {
    let text = match name {
        "agent-check-then-review" => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../examples/agent-check-then-review.json"
            ))
        }
        "marketing-copy-approval" => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../examples/marketing-copy-approval.json"
            ))
        }
        "parallel-quorum" => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../examples/parallel-quorum.json"
            ))
        }
        "revision-loop" => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/revision-loop.json"))
        }
        "sequential-signoff" => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../examples/sequential-signoff.json"
            ))
        }
        "sla-escalation" => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/sla-escalation.json"))
        }
        "webhook-and-notification" => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/webhook-and-notification.json"
        )),
        other => panic!("no example {other}"),
    };
    serde_json::from_str(text).expect("example JSON")
}
