//! The execution state machine: `dispatch` starts an execution and `apply` turns one command
//! into a new state plus its effects (events, timers, work for the shell, a result). Pure:
//! time and randomness come in as arguments.

mod agent;
mod commands;
mod dispatch;
mod events;
mod fanout;
mod groups;
mod human;
mod loops;
mod notification;
mod rollup;
mod state;
pub mod step_ids;
mod view;
pub mod webhook;

#[cfg(test)]
mod tests;

pub use commands::WorkOutcome;
pub use commands::{
    apply, AgentStatus, Command, CommandError, Decision, ErrorStatus, ResolveAction,
};
pub use dispatch::{dispatch, root_node_ids, DispatchParams};
pub use events::{
    is_external, AgentRequest, Effects, Event, NotificationMessage, Timer, TimerKind, WorkItem,
};
pub use notification::{BODY_MAX_BYTES, SUBJECT_MAX_BYTES};
pub use state::{
    AgentRun, ErrorInfo, ExecutionState, ExecutionStatus, GroupState, LoopAttempt, LoopState,
    ReviewerDecision, StepState, StepStatus,
};
pub use view::execution_view;

use crate::compile::Compiled;
use crate::model::{DefinitionSpec, Node};
use serde_json::Value;

/// One command being applied: the definition, the state it changes and the effects so far.
pub(crate) struct Run<'a> {
    pub spec: &'a DefinitionSpec,
    pub compiled: &'a Compiled,
    pub state: &'a mut ExecutionState,
    pub now_ms: u64,
    pub fx: Effects,
}

impl<'a> Run<'a> {
    pub fn new(
        spec: &'a DefinitionSpec,
        compiled: &'a Compiled,
        state: &'a mut ExecutionState,
        now_ms: u64,
    ) -> Run<'a> {
        Run { spec, compiled, state, now_ms, fx: Effects::default() }
    }

    /// Appends an event with the next `seq`.
    pub fn emit(&mut self, event_type: &str, step_id: Option<&str>, data: Value) {
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.fx.events.push(Event {
            seq,
            event_type: event_type.to_owned(),
            step_id: step_id.map(str::to_owned),
            timestamp: self.now_ms,
            data,
            external: is_external(event_type),
        });
    }

    pub fn step(&self, index: usize) -> &StepState {
        &self.state.steps[index]
    }

    pub fn step_mut(&mut self, index: usize) -> &mut StepState {
        &mut self.state.steps[index]
    }

    /// The node a step runs. Steps are only made for declared nodes.
    pub fn node_of(&self, index: usize) -> &'a Node {
        let node_id = &self.state.steps[index].node_id;
        let node = self.spec.node(node_id);
        debug_assert!(node.is_some(), "step of undeclared node {node_id}");
        node.unwrap_or(&self.spec.nodes[0])
    }

    pub fn set_timer(&mut self, index: usize, kind: TimerKind, due_at_ms: u64) {
        let step_id = self.state.steps[index].step_id.clone();
        let key = kind.key(&step_id);
        let timers = &mut self.state.steps[index].timers;
        if !timers.contains(&key) {
            timers.push(key.clone());
        }
        self.fx.timers_set.push(Timer { key, kind, step_id, due_at_ms });
    }

    pub fn clear_timer(&mut self, index: usize, kind: TimerKind) {
        let key = kind.key(&self.state.steps[index].step_id);
        let timers = &mut self.state.steps[index].timers;
        if let Some(at) = timers.iter().position(|k| *k == key) {
            timers.remove(at);
            self.fx.timers_cleared.push(key);
        }
    }

    pub fn clear_timers(&mut self, index: usize) {
        let keys = std::mem::take(&mut self.state.steps[index].timers);
        self.fx.timers_cleared.extend(keys);
    }

    pub fn running(&self) -> bool {
        self.state.status == ExecutionStatus::Running
    }
}
