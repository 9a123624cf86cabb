//! Strict request schemas: every field, limit and pattern, every problem listed.

pub mod check;
pub mod definition;
pub mod requests;
