//! Cron expressions and IANA time zones for schedule triggers.
//!
//! Placeholder with the agreed signatures: the real module is written on another branch and
//! replaces this file when the branches merge.

/// A parsed five-field cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSpec;

/// Parses a five-field cron expression. The error is a sentence for the API.
pub fn parse_cron(_source: &str) -> Result<CronSpec, String> {
    todo!("cron parser")
}

/// True when `name` is an IANA time zone name such as `America/Los_Angeles`.
pub fn is_valid_timezone(_name: &str) -> bool {
    todo!("time zone names")
}
