//! What a command causes besides the new state: events, timers, work for the shell, and
//! the endpoint's result.

use crate::model::EXTERNAL_EVENT_TYPES;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One appended event. Internal events consume a `seq` but never leave the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub step_id: Option<String>,
    pub timestamp: u64,
    pub data: Value,
    pub external: bool,
}

pub fn is_external(event_type: &str) -> bool {
    EXTERNAL_EVENT_TYPES.contains(&event_type)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TimerKind {
    SlaBreach,
    Retry,
    AgentPoll,
    AgentTimeout,
}

impl TimerKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TimerKind::SlaBreach => "sla",
            TimerKind::Retry => "retry",
            TimerKind::AgentPoll => "poll",
            TimerKind::AgentTimeout => "agent-timeout",
        }
    }

    /// `sla:<stepId>`, `retry:<stepId>`, `poll:<stepId>`, `agent-timeout:<stepId>`.
    pub fn key(self, step_id: &str) -> String {
        format!("{}:{step_id}", self.prefix())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timer {
    pub key: String,
    pub kind: TimerKind,
    pub step_id: String,
    pub due_at_ms: u64,
}

/// The request an agent node sends to the agent runner (`POST .../agents/execution/run`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRequest {
    pub agent_id: String,
    pub trigger: String,
    pub workflow_execution_id: String,
    pub url: String,
    pub organization_id: Option<String>,
    pub document_id: Option<String>,
    pub cross_page_execute: bool,
    pub max_urls_to_process: Option<u32>,
    pub user_context: Value,
    pub ai_config: Option<Value>,
    pub prompt_override: Option<String>,
    pub input_mapping: Option<Value>,
}

/// A notification ready to send: templates rendered, recipients and target copied from the
/// node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "channel")]
pub enum NotificationMessage {
    #[serde(rename = "email", rename_all = "camelCase")]
    Email {
        recipients: Vec<String>,
        /// `None` when the node has no `subjectTemplate`.
        subject: Option<String>,
        body: String,
        /// `format: "html"`: the body is HTML, else plain text.
        html: bool,
    },
    #[serde(rename = "slack", rename_all = "camelCase")]
    Slack {
        /// A channel id (the chat API) or an incoming-webhook URL.
        target: String,
        /// The message text; with blocks, the notification's fallback text.
        text: Option<String>,
        /// `format: "slack-blocks"`: the rendered body, checked to be an array of objects.
        blocks: Option<Value>,
    },
}

/// I/O the shell performs after committing; it reports back with `Command::WorkDone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum WorkItem {
    StartAgent {
        step_id: String,
        attempt: u32,
        request: Box<AgentRequest>,
    },
    PollAgent {
        step_id: String,
        attempt: u32,
        agent_execution_id: String,
    },
    /// The message is rendered by the engine; the shell only delivers it.
    SendNotification {
        step_id: String,
        attempt: u32,
        node_id: String,
        message: Box<NotificationMessage>,
    },
    CallWebhook {
        step_id: String,
        attempt: u32,
        node_id: String,
    },
}

/// Everything one command caused, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    pub events: Vec<Event>,
    pub timers_set: Vec<Timer>,
    pub timers_cleared: Vec<String>,
    pub work: Vec<WorkItem>,
    /// The endpoint's `result` value.
    pub result: Value,
}

impl Effects {
    /// Events that leave the engine (getEvents, webhooks).
    pub fn external_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| e.external)
    }
}
