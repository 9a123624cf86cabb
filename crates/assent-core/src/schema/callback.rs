//! The body an async webhook endpoint POSTs to its callback URL:
//! `{status: "completed" | "failed", output?: {...}, error?: {code?, message?}}`, raw JSON
//! without the `{data}` envelope.

use crate::issue::{Issue, Path};
use crate::schema::check::{Checker, Str};
use crate::schema::requests::finish;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const KEYS: [&str; 3] = ["status", "output", "error"];
const ERROR_KEYS: [&str; 2] = ["code", "message"];
const ERROR_CODE: Str<'static> = Str::len(1, 128);
const ERROR_MESSAGE: Str<'static> = Str::len(0, 2000);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackStatus {
    Completed,
    Failed,
}

impl CallbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Completed => "completed",
            CallbackStatus::Failed => "failed",
        }
    }
}

/// The endpoint's own `{code?, message?}` for a failed step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackError {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What an endpoint reported for the step it was called for.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackReport {
    pub status: CallbackStatus,
    /// Merged into the step's output; empty when not given.
    pub output: Map<String, Value>,
    /// Only with `failed`.
    pub error: Option<CallbackError>,
}

impl CallbackReport {
    /// Lowercase hex SHA-256 of the report in one fixed form: the same report sent again,
    /// whatever its whitespace, has the same digest.
    pub fn digest(&self) -> String {
        let error = self.error.as_ref().map(|e| json!({ "code": e.code, "message": e.message }));
        let canonical = json!({
            "status": self.status.as_str(),
            "output": self.output,
            "error": error,
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

pub fn parse_callback(body: &Value) -> Result<CallbackReport, Vec<Issue>> {
    let mut c = Checker::new();
    let report = callback(&mut c, body);
    debug_assert!(report.is_some() || !c.is_clean(), "a refused callback must say why");
    finish(c, report)
}

fn callback(c: &mut Checker, body: &Value) -> Option<CallbackReport> {
    let root = Path::root();
    let obj = c.object(Some(body), &root, &KEYS)?;
    let status = c.enumeration(obj.get("status"), &root.key("status"), &["completed", "failed"]);
    let output = c.any_object(obj.get("output"), &root.key("output"), false).cloned();
    let error = error(c, obj.get("error"), &root.key("error"));
    let status = match status? {
        "completed" => CallbackStatus::Completed,
        _ => CallbackStatus::Failed,
    };
    if status == CallbackStatus::Completed && obj.contains_key("error") {
        c.custom(&root.key("error"), "error is only allowed with status \"failed\"");
        return None;
    }
    Some(CallbackReport { status, output: output.unwrap_or_default(), error })
}

fn error(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<CallbackError> {
    let obj = c.opt_object(v, path, &ERROR_KEYS)?;
    Some(CallbackError {
        code: c.opt_string(obj.get("code"), &path.key("code"), ERROR_CODE),
        message: c.opt_string(obj.get("message"), &path.key("message"), ERROR_MESSAGE),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(body: Value) -> Vec<String> {
        match parse_callback(&body) {
            Ok(report) => panic!("accepted {report:?}"),
            Err(issues) => issues.iter().map(Issue::headline).collect(),
        }
    }

    #[test]
    fn accepted_bodies() {
        let done = parse_callback(&json!({ "status": "completed", "output": { "id": 7 } }));
        let done = done.expect("completed");
        assert_eq!((done.status, done.output["id"].clone()), (CallbackStatus::Completed, json!(7)));

        let failed = json!({ "status": "failed", "error": { "code": "cms-down", "message": "x" } });
        let failed = parse_callback(&failed).expect("failed");
        assert_eq!(failed.error.and_then(|e| e.code).as_deref(), Some("cms-down"));
        assert!(parse_callback(&json!({ "status": "failed" })).is_ok());
    }

    #[test]
    fn refused_bodies() {
        let cases = [
            (json!([]), "Expected object, received array"),
            (json!({}), "Required for status"),
            (json!({ "status": "done" }), "Invalid enum value"),
            (json!({ "status": "completed", "output": [] }), "Expected object"),
            (json!({ "status": "completed", "extra": 1 }), "Unrecognized key(s) in object"),
            (json!({ "status": "completed", "error": {} }), "error is only allowed"),
            (json!({ "status": "failed", "error": { "code": "" } }), "at least 1"),
            (json!({ "status": "failed", "error": { "why": "?" } }), "Unrecognized key(s)"),
            (json!({ "status": "failed", "output": null }), "Expected object, received null"),
        ];
        for (body, expected) in cases {
            let found = messages(body.clone());
            assert!(found.iter().any(|m| m.contains(expected)), "{body}: {found:?}");
        }
    }

    #[test]
    fn the_digest_ignores_whitespace_and_sees_content() {
        let parse = |text: &str| parse_callback(&serde_json::from_str(text).unwrap()).unwrap();
        let a = parse(r#"{"status":"completed","output":{"a":1}}"#);
        let b = parse("{ \"status\" : \"completed\",\n \"output\": { \"a\": 1 } }");
        let c = parse(r#"{"status":"completed","output":{"a":2}}"#);
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 64);
    }
}
