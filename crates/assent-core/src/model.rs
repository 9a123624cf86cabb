//! The typed definition: what a validated create or update request means.
//!
//! The authored JSON is kept beside it (edges and nodes are echoed exactly as written);
//! this model is what the compiler, the linter and the engine read.

use serde_json::{Map, Value};

/// A validated definition body (create or update), before compilation.
#[derive(Clone, Debug, PartialEq)]
pub struct DefinitionSpec {
    pub definition_id: String,
    pub name: String,
    pub description: Option<String>,
    pub scope: Scope,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub groups: Vec<Group>,
    pub triggers: Vec<Trigger>,
    pub webhook_config: Option<WebhookConfig>,
    pub tags: Option<Vec<String>>,
    pub custom: Option<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeLevel {
    ApiKey,
    Organization,
    Document,
}

impl ScopeLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeLevel::ApiKey => "apiKey",
            ScopeLevel::Organization => "organization",
            ScopeLevel::Document => "document",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub level: ScopeLevel,
    pub organization_id: Option<String>,
    pub document_id: Option<String>,
}

impl Default for Scope {
    fn default() -> Scope {
        Scope { level: ScopeLevel::ApiKey, organization_id: None, document_id: None }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub node_id: String,
    pub config: NodeConfig,
    pub sla_ms: Option<u64>,
    pub require_non_empty_output: Option<bool>,
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeType {
    Agent,
    Human,
    Notification,
    Webhook,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Agent => "agent",
            NodeType::Human => "human",
            NodeType::Notification => "notification",
            NodeType::Webhook => "webhook",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeConfig {
    Agent(Box<AgentConfig>),
    Human(HumanConfig),
    Notification(NotificationConfig),
    Webhook(WebhookNodeConfig),
}

impl NodeConfig {
    pub fn node_type(&self) -> NodeType {
        match self {
            NodeConfig::Agent(_) => NodeType::Agent,
            NodeConfig::Human(_) => NodeType::Human,
            NodeConfig::Notification(_) => NodeType::Notification,
            NodeConfig::Webhook(_) => NodeType::Webhook,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    pub agent_id: String,
    pub url: Option<String>,
    pub url_path: Option<String>,
    pub cross_page_execute: bool,
    pub max_urls_to_process: Option<u32>,
    pub user_context_mapping: Option<Map<String, Value>>,
    pub prompt_override: Option<String>,
    pub input_mapping: Option<Map<String, Value>>,
    pub poll_interval_ms: u64,
    pub agent_max_runtime_ms: u64,
    pub ai_config: Option<Map<String, Value>>,
    pub blocking: Option<bool>,
    pub resolution_policy: Option<ResolutionPolicy>,
    /// Accepted inside an agent's config too, as the reference's own example writes it.
    pub require_non_empty_output: Option<bool>,
}

pub const AGENT_POLL_INTERVAL_DEFAULT_MS: u64 = 15_000;
pub const AGENT_MAX_RUNTIME_DEFAULT_MS: u64 = 600_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolutionPolicy {
    AllResolved,
    MinResolved { min_count: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reviewer {
    pub user_id: String,
    pub mandatory: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HumanConfig {
    /// Normalised: `reviewerIds` become reviewers who are all mandatory.
    pub reviewers: Vec<Reviewer>,
    /// True when the node was written with the legacy `reviewerIds` list.
    pub legacy_reviewer_ids: bool,
    pub reviewer_emails: Vec<String>,
    pub comment_body: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Email,
    Slack,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationFormat {
    Text,
    Html,
    SlackBlocks,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationConfig {
    pub channel: Channel,
    pub body_template: String,
    pub recipients: Vec<String>,
    pub subject_template: Option<String>,
    pub slack_target: Option<String>,
    pub format: NotificationFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookMode {
    Sync,
    Async,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookAuthMode {
    Hmac,
    Token,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookBody {
    Envelope,
    PassThrough,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookNodeConfig {
    pub url: String,
    pub mode: WebhookMode,
    pub method: HttpMethod,
    pub auth_mode: WebhookAuthMode,
    pub auth_token_header: Option<String>,
    pub timeout_ms: u64,
    pub expected_status_codes: Option<Vec<u16>>,
    pub body_template: WebhookBody,
    pub request_headers: Vec<(String, String)>,
}

pub const WEBHOOK_NODE_TIMEOUT_DEFAULT_MS: u64 = 10_000;

/// One end of an edge, in any of the three authored forms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Node(String),
    Group(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EdgeRole {
    Approve,
    Reject,
    Always,
    Exhausted,
    Custom,
}

impl EdgeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeRole::Approve => "approve",
            EdgeRole::Reject => "reject",
            EdgeRole::Always => "always",
            EdgeRole::Exhausted => "exhausted",
            EdgeRole::Custom => "custom",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: Endpoint,
    pub to: Endpoint,
    pub on: EdgeRole,
    /// The parsed `when` expression of a custom edge.
    pub when: Option<crate::expr::Expr>,
    /// `loop.maxIterations`, present only on a reject back-edge.
    pub loop_max_iterations: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumPolicy {
    WaitAll,
    CancelOnQuorum,
    JoinOnQuorum,
}

impl QuorumPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            QuorumPolicy::WaitAll => "waitAll",
            QuorumPolicy::CancelOnQuorum => "cancelOnQuorum",
            QuorumPolicy::JoinOnQuorum => "joinOnQuorum",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub group_id: String,
    pub member_node_ids: Vec<String>,
    pub expected_steps: u32,
    pub quorum: u32,
    pub on_quorum_met: QuorumPolicy,
    pub required_node_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub trigger_id: String,
    pub event_name: Option<String>,
    pub filters: Option<Map<String, Value>>,
    pub inbound_webhook: Option<InboundWebhook>,
    pub schedule: Option<Schedule>,
    pub app_trigger: Option<AppTrigger>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundAuthMode {
    Hmac,
    Bearer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundProvider {
    Velt,
    Github,
    Vercel,
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    Sha1,
    Sha256,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMapping {
    PassThrough,
    Wrap,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundWebhook {
    pub auth_mode: InboundAuthMode,
    pub secret: String,
    pub provider: InboundProvider,
    pub signature_header: Option<String>,
    pub signature_algorithm: Option<SignatureAlgorithm>,
    pub signature_prefix: Option<String>,
    pub event_name_header: Option<String>,
    pub allowed_events: Option<Vec<String>>,
    pub idempotency_header: Option<String>,
    pub idempotency_body_path: Option<String>,
    pub payload_mapping: PayloadMapping,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
    pub payload_template: Option<Map<String, Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppProvider {
    Github,
    Vercel,
}

impl AppProvider {
    pub const ALL: [AppProvider; 2] = [AppProvider::Github, AppProvider::Vercel];

    /// The provider's name on the wire, in paths and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            AppProvider::Github => "github",
            AppProvider::Vercel => "vercel",
        }
    }

    pub fn from_name(name: &str) -> Option<AppProvider> {
        AppProvider::ALL.into_iter().find(|provider| provider.as_str() == name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PayloadFilter {
    pub path: String,
    pub any_of: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppTrigger {
    pub provider: AppProvider,
    pub installation_ref: String,
    pub repo_filter: Option<Vec<String>>,
    pub project_filter: Option<Vec<String>>,
    pub allowed_events: Option<Vec<String>>,
    pub payload_filters: Vec<PayloadFilter>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
    pub event_types: Option<Vec<String>>,
}

/// The twelve event types that leave the engine (getEvents, webhooks).
pub const EXTERNAL_EVENT_TYPES: [&str; 12] = [
    "execution.dispatched",
    "execution.completed",
    "execution.failed",
    "execution.cancelled",
    "step.awaiting-approval",
    "step.completed",
    "step.failed",
    "step.breached",
    "step.cancelled",
    "group.quorum-met",
    "loop.iteration-started",
    "loop.exhausted",
];

impl DefinitionSpec {
    pub fn node(&self, node_id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.node_id == node_id)
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.group_id == group_id)
    }

    /// The group a node belongs to, if any (the first one, should the linter have
    /// complained of a node in two).
    pub fn group_of(&self, node_id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.member_node_ids.iter().any(|m| m == node_id))
    }
}
