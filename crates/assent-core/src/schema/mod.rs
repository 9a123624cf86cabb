//! Strict request schemas: every field, limit and pattern, every problem listed.

mod agent;
pub mod callback;
pub mod check;
pub mod definition;
pub mod executions;
mod fields;
mod graph;
mod human;
mod nodes;
mod notification;
pub mod requests;
#[cfg(test)]
mod testkit;
mod triggers;
mod webhook_node;
