//! Assent's engine rules. This crate does no I/O and reads no clock: everything here is a
//! function of its arguments, so it can be tested with tables and trusted by every shell.

pub mod address;
pub mod app;
pub mod compile;
pub mod cron;
pub mod engine;
pub mod expr;
pub mod ids;
pub mod inbound;
pub mod issue;
pub mod lint;
pub mod model;
pub mod schema;
pub mod template;
pub mod validate;
pub mod view;
pub mod vocab;
