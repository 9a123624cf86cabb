//! Test-only builders for definitions, so compiler and linter tests read like the graphs
//! they describe. An endpoint written `@name` is the group `name`; any other is a node.

use crate::expr::{Expr, Op};
use crate::model::{
    AgentConfig, DefinitionSpec, Edge, EdgeRole, Endpoint, Group, HumanConfig, Node, NodeConfig,
    QuorumPolicy, Reviewer, Scope, AGENT_MAX_RUNTIME_DEFAULT_MS, AGENT_POLL_INTERVAL_DEFAULT_MS,
};

pub(crate) use EdgeRole::{Always, Approve, Custom, Exhausted, Reject};
pub(crate) use QuorumPolicy::{CancelOnQuorum, JoinOnQuorum, WaitAll};

pub(crate) fn spec(nodes: Vec<Node>, edges: Vec<Edge>, groups: Vec<Group>) -> DefinitionSpec {
    DefinitionSpec {
        definition_id: "test-definition".into(),
        name: "Test".into(),
        description: None,
        scope: Scope::default(),
        nodes,
        edges,
        groups,
        triggers: Vec::new(),
        webhook_config: None,
        tags: None,
        custom: None,
    }
}

fn node(id: &str, config: NodeConfig) -> Node {
    Node {
        node_id: id.into(),
        config,
        sla_ms: None,
        require_non_empty_output: None,
        name: None,
        description: None,
    }
}

pub(crate) fn human(id: &str) -> Node {
    let reviewer = Reviewer { user_id: format!("u-{id}"), mandatory: true };
    node(
        id,
        NodeConfig::Human(HumanConfig {
            reviewers: vec![reviewer],
            legacy_reviewer_ids: false,
            reviewer_emails: Vec::new(),
            comment_body: None,
        }),
    )
}

pub(crate) fn agent(id: &str) -> Node {
    node(
        id,
        NodeConfig::Agent(Box::new(AgentConfig {
            agent_id: "__mock__".into(),
            url: Some("https://example.com/doc".into()),
            url_path: None,
            cross_page_execute: false,
            max_urls_to_process: None,
            user_context_mapping: None,
            prompt_override: None,
            input_mapping: None,
            poll_interval_ms: AGENT_POLL_INTERVAL_DEFAULT_MS,
            agent_max_runtime_ms: AGENT_MAX_RUNTIME_DEFAULT_MS,
            ai_config: None,
            blocking: None,
            resolution_policy: None,
            require_non_empty_output: None,
        })),
    )
}

pub(crate) fn with_sla(mut node: Node, sla_ms: u64) -> Node {
    node.sla_ms = Some(sla_ms);
    node
}

pub(crate) fn endpoint(name: &str) -> Endpoint {
    match name.strip_prefix('@') {
        Some(group_id) => Endpoint::Group(group_id.into()),
        None => Endpoint::Node(name.into()),
    }
}

pub(crate) fn edge(from: &str, to: &str, on: EdgeRole) -> Edge {
    Edge { from: endpoint(from), to: endpoint(to), on, when: None, loop_max_iterations: None }
}

/// A reject back-edge with `loop: { maxIterations }`.
pub(crate) fn back_edge(from: &str, to: &str, max_iterations: u32) -> Edge {
    Edge { loop_max_iterations: Some(max_iterations), ..edge(from, to, Reject) }
}

/// A custom edge with the given predicate.
pub(crate) fn custom(from: &str, to: &str, when: Expr) -> Edge {
    Edge { when: Some(when), ..edge(from, to, Custom) }
}

pub(crate) fn eq(path: &str, value: impl Into<serde_json::Value>) -> Expr {
    Expr::Op { op: Op::Eq, args: vec![Expr::Var(path.into()), Expr::Literal(value.into())] }
}

pub(crate) fn group(id: &str, members: &[&str], quorum: u32, policy: QuorumPolicy) -> Group {
    Group {
        group_id: id.into(),
        member_node_ids: members.iter().map(|m| m.to_string()).collect(),
        expected_steps: members.len() as u32,
        quorum,
        on_quorum_met: policy,
        required_node_ids: Vec::new(),
    }
}

/// The patterns of `examples/*.json`, as specs.
pub(crate) mod examples {
    use super::*;

    pub(crate) fn marketing_copy_approval() -> DefinitionSpec {
        spec(
            vec![
                agent("agent-draft"),
                human("legal-review"),
                agent("agent-publish"),
                agent("agent-revise"),
            ],
            vec![
                edge("agent-draft", "legal-review", Always),
                edge("legal-review", "agent-publish", Approve),
                edge("legal-review", "agent-revise", Reject),
            ],
            vec![],
        )
    }

    pub(crate) fn sequential_signoff() -> DefinitionSpec {
        spec(
            vec![human("manager"), human("legal"), agent("publish"), agent("notify-rejected")],
            vec![
                edge("manager", "legal", Approve),
                edge("manager", "notify-rejected", Reject),
                edge("legal", "publish", Approve),
                edge("legal", "notify-rejected", Reject),
            ],
            vec![],
        )
    }

    pub(crate) fn parallel_quorum() -> DefinitionSpec {
        let mut reviewers = group("reviewers", &["legal", "brand", "ops"], 2, JoinOnQuorum);
        reviewers.required_node_ids = vec!["legal".into()];
        let mut edges = vec![edge("draft", "@reviewers", Always)];
        for member in ["legal", "brand", "ops"] {
            edges.push(edge(member, "publish", Approve));
            edges.push(edge(member, "revise", Reject));
        }
        spec(
            vec![
                agent("draft"),
                human("legal"),
                human("brand"),
                human("ops"),
                agent("publish"),
                agent("revise"),
            ],
            edges,
            vec![reviewers],
        )
    }

    pub(crate) fn revision_loop() -> DefinitionSpec {
        spec(
            vec![agent("draft"), human("review"), agent("publish"), agent("escalate")],
            vec![
                edge("draft", "review", Always),
                edge("review", "publish", Approve),
                back_edge("review", "draft", 3),
                edge("review", "escalate", Exhausted),
            ],
            vec![],
        )
    }

    pub(crate) fn sla_escalation() -> DefinitionSpec {
        spec(
            vec![
                with_sla(human("review"), 86_400_000),
                human("director"),
                agent("publish"),
                agent("revise"),
            ],
            vec![
                edge("review", "publish", Approve),
                edge("review", "revise", Reject),
                custom("review", "director", eq("step.status", "breached")),
                edge("director", "publish", Approve),
                edge("director", "revise", Reject),
            ],
            vec![],
        )
    }

    pub(crate) fn agent_check_then_review() -> DefinitionSpec {
        let findings = "output.agentResultsSummary.totalFindings";
        let some_findings = Expr::Op {
            op: Op::Gt,
            args: vec![Expr::Var(findings.into()), Expr::Literal(0.into())],
        };
        spec(
            vec![agent("brand-check"), human("review"), agent("publish"), agent("revise")],
            vec![
                custom("brand-check", "publish", eq(findings, 0)),
                custom("brand-check", "review", some_findings),
                edge("review", "publish", Approve),
                edge("review", "revise", Reject),
            ],
            vec![],
        )
    }

    pub(crate) fn webhook_and_notification() -> DefinitionSpec {
        // Node types do not matter to the graph rules beyond "human or not".
        spec(
            vec![human("review"), agent("cms-publish"), agent("tell-team"), agent("revise")],
            vec![
                edge("review", "cms-publish", Approve),
                edge("review", "revise", Reject),
                custom("cms-publish", "tell-team", eq("step.status", "completed")),
            ],
            vec![],
        )
    }

    /// A review group whose collective rejection sends the draft back: a group-bounded loop.
    pub(crate) fn group_bounded_loop() -> DefinitionSpec {
        spec(
            vec![
                agent("draft"),
                human("legal"),
                human("brand"),
                agent("publish"),
                agent("escalate"),
            ],
            vec![
                edge("draft", "@reviewers", Always),
                edge("@reviewers", "publish", Approve),
                back_edge("@reviewers", "draft", 2),
                edge("@reviewers", "escalate", Exhausted),
            ],
            vec![group("reviewers", &["legal", "brand"], 2, JoinOnQuorum)],
        )
    }

    pub(crate) fn all() -> Vec<(&'static str, DefinitionSpec)> {
        vec![
            ("marketing-copy-approval", marketing_copy_approval()),
            ("sequential-signoff", sequential_signoff()),
            ("parallel-quorum", parallel_quorum()),
            ("revision-loop", revision_loop()),
            ("sla-escalation", sla_escalation()),
            ("agent-check-then-review", agent_check_then_review()),
            ("webhook-and-notification", webhook_and_notification()),
            ("group-bounded-loop", group_bounded_loop()),
        ]
    }
}
