//! Schemas of the execution and step requests: executions dispatch, get, list, cancel and
//! getEvents; steps recordReviewerDecision, recordAgentResolution, cancel and resolve;
//! and the delivery log's deliveries list and redeliver.

use crate::address::AddressPolicy;
use crate::ids::{self, KEY_PATTERN};
use crate::issue::{Issue, Path};
use crate::schema::check::{Checker, Object, Str};
use crate::schema::fields::{self, DEFINITION_ID};
use crate::schema::requests::finish;
pub use crate::vocab::{Decision, DeliveryStatus, ExecutionStatus, Resolution, ResolveAction};
use serde_json::Value;
use std::fmt;

/// Minted ids are `exec_<ms>_<8 chars>`, under 30 characters; 200 is the reference's own
/// limit on `recordAgentResolution` and leaves room for ids imported from elsewhere.
const EXECUTION_ID: Str<'static> = Str::len(1, 200);

/// Generated step ids never exceed 200 characters (long ones are hashed down).
const STEP_ID: Str<'static> = Str::len(1, 200);

/// A reviewer id names a declared reviewer `userId`, which is 1–256 characters.
const REVIEWER_ID: Str<'static> = Str::len(1, 256);

const RESPONSE_ID: Str<'static> = Str::len(1, 200);
const ACTOR_ID: Str<'static> = Str::len(1, 256);

/// Organization, document and folder ids: opaque ids of the caller's systems, as in a scope.
const CALLER_ID: Str<'static> = Str::len(1, 256);

const WEBHOOK_SECRET: Str<'static> = Str::len(16, 512);
const CANCEL_REASON: Str<'static> = Str::len(0, 500);
const DECISION_REASON: Str<'static> = Str::len(0, 2000);

/// The list cursor is the store's business; a client only hands back what it was given.
const LIST_CURSOR: Str<'static> = Str::len(1, 512);

/// Definition ids filtering a list need not match the pattern: an unknown id lists nothing.
const DEFINITION_ID_FILTER: Str<'static> = Str::len(1, 64);

pub const EXECUTIONS_PAGE_SIZE_MAX: i64 = 500;
pub const EXECUTIONS_PAGE_SIZE_DEFAULT: u32 = 50;
pub const EVENTS_PAGE_SIZE_MAX: i64 = 500;
pub const EVENTS_PAGE_SIZE_DEFAULT: u32 = 100;
pub const DELIVERIES_PAGE_SIZE_MAX: i64 = 200;
pub const DELIVERIES_PAGE_SIZE_DEFAULT: u32 = 50;
/// Events one redeliver names at most.
pub const REDELIVER_EVENT_IDS_MAX: usize = 500;
/// Event ids are `evt_<executionId>_<seq>`.
const EVENT_ID: Str<'static> = Str::len(1, 256);

/// Largest `sinceSeq`: the largest integer a JavaScript client sends exactly.
const SEQ_MAX: i64 = (1 << 53) - 1;

pub const UNPAIRED_WEBHOOK: &str = "webhookUrl and webhookSecret must be provided together";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchRequest {
    pub definition_id: String,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
    /// The run's `execution.input`; empty when not given.
    pub trigger_context: Object,
    pub organization_id: Option<String>,
    pub document_id: Option<String>,
    pub folder_id: Option<String>,
    /// The run's own event webhook, replacing the definition's `webhookConfig`.
    pub webhook: Option<DispatchWebhook>,
}

/// A dispatch's `webhookUrl` and `webhookSecret`, which come together or not at all.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DispatchWebhook {
    pub url: String,
    pub secret: String,
}

impl fmt::Debug for DispatchWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchWebhook").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetExecutionRequest {
    pub execution_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListExecutionsRequest {
    pub definition_id: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub page_size: u32,
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelExecutionRequest {
    pub execution_id: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetEventsRequest {
    pub execution_id: String,
    /// Events with a greater `seq` are returned.
    pub since_seq: u64,
    pub page_size: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDeliveriesRequest {
    pub execution_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub page_size: u32,
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeliverRequest {
    pub execution_id: String,
    /// Without ids, every dead-lettered delivery of the execution.
    pub event_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordReviewerDecisionRequest {
    pub execution_id: String,
    pub step_id: String,
    pub reviewer_id: String,
    pub decision: Decision,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAgentResolutionRequest {
    pub execution_id: String,
    pub step_id: String,
    pub response_id: String,
    pub resolution: Resolution,
    pub actor_id: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelStepRequest {
    pub execution_id: String,
    pub step_id: String,
    pub actor_id: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveStepRequest {
    pub execution_id: String,
    pub step_id: String,
    pub action: ResolveAction,
    pub actor_id: String,
    pub output: Option<Object>,
    pub reason: Option<String>,
}

/// Runs `read` over `body`; the value counts only when no problem was found.
fn parse<T>(
    body: &Value,
    read: impl FnOnce(&mut Checker, &Value) -> Option<T>,
) -> Result<T, Vec<Issue>> {
    let mut c = Checker::new();
    let parsed = read(&mut c, body);
    debug_assert!(parsed.is_some() || !c.is_clean(), "a refused request must say why");
    finish(c, parsed)
}

/// The body as an object whose keys are all in `known`.
fn body_object<'v>(c: &mut Checker, body: &'v Value, known: &[&str]) -> Option<&'v Object> {
    c.object(Some(body), &Path::root(), known)
}

fn required(c: &mut Checker, obj: &Object, key: &str, rule: Str<'_>) -> Option<String> {
    c.string(obj.get(key), &Path::root().key(key), rule)
}

fn optional(c: &mut Checker, obj: &Object, key: &str, rule: Str<'_>) -> Option<String> {
    c.opt_string(obj.get(key), &Path::root().key(key), rule)
}

/// A string naming one of `table`'s variants.
fn choice<T: Copy>(
    c: &mut Checker,
    obj: &Object,
    key: &str,
    table: &[(T, &'static str)],
    is_required: bool,
) -> Option<T> {
    let names: Vec<&'static str> = table.iter().map(|&(_, name)| name).collect();
    let (v, path) = (obj.get(key), Path::root().key(key));
    let name = if is_required {
        c.enumeration(v, &path, &names)
    } else {
        c.opt_enumeration(v, &path, &names)
    }?;
    table.iter().find(|&&(_, n)| n == name).map(|&(variant, _)| variant)
}

const DISPATCH_KEYS: [&str; 9] = [
    "definitionId",
    "idempotencyKey",
    "correlationId",
    "triggerContext",
    "organizationId",
    "documentId",
    "folderId",
    "webhookUrl",
    "webhookSecret",
];

/// `executions/dispatch`. A `webhookUrl` is checked under the operator's address `policy`.
pub fn parse_dispatch(body: &Value, policy: &AddressPolicy) -> Result<DispatchRequest, Vec<Issue>> {
    parse(body, |c, body| dispatch(c, body, policy))
}

fn dispatch(c: &mut Checker, body: &Value, policy: &AddressPolicy) -> Option<DispatchRequest> {
    let obj = body_object(c, body, &DISPATCH_KEYS)?;
    let key_rule = Str::matching(0, usize::MAX, &KEY_PATTERN);

    let id_rule = Str::matching(0, usize::MAX, &DEFINITION_ID);
    let definition_id = required(c, obj, "definitionId", id_rule);
    let idempotency_key = idempotency_key(c, obj, key_rule);
    let correlation_id = optional(c, obj, "correlationId", key_rule);
    let context_path = Path::root().key("triggerContext");
    let trigger_context = c.any_object(obj.get("triggerContext"), &context_path, false).cloned();
    let organization_id = optional(c, obj, "organizationId", CALLER_ID);
    let document_id = optional(c, obj, "documentId", CALLER_ID);
    let folder_id = optional(c, obj, "folderId", CALLER_ID);
    let webhook = dispatch_webhook(c, obj, policy);

    Some(DispatchRequest {
        definition_id: definition_id?,
        idempotency_key,
        correlation_id,
        trigger_context: trigger_context.unwrap_or_default(),
        organization_id,
        document_id,
        folder_id,
        webhook,
    })
}

/// A caller's idempotency key: the key pattern, and none of the server's prefixes, so that a
/// caller can never claim a key that a trigger or a keyless dispatch will need.
fn idempotency_key(c: &mut Checker, obj: &Object, rule: Str<'_>) -> Option<String> {
    let key = optional(c, obj, "idempotencyKey", rule)?;
    if let Some(prefix) = ids::reserved_prefix(&key) {
        let all = ids::RESERVED_KEY_PREFIXES.join(", ");
        let msg = format!("Prefix \"{prefix}\" is reserved for the server's own keys ({all})");
        c.custom(&Path::root().key("idempotencyKey"), msg);
        return None;
    }
    Some(key)
}

/// `webhookUrl` and `webhookSecret`. When only one is given the problem is reported at the
/// missing one.
fn dispatch_webhook(
    c: &mut Checker,
    obj: &Object,
    policy: &AddressPolicy,
) -> Option<DispatchWebhook> {
    let url_path = Path::root().key("webhookUrl");
    let url =
        obj.get("webhookUrl").and_then(|v| fields::webhook_url(c, policy, Some(v), &url_path));
    let secret = optional(c, obj, "webhookSecret", WEBHOOK_SECRET);

    let url_given = obj.contains_key("webhookUrl");
    let secret_given = obj.contains_key("webhookSecret");
    if url_given != secret_given {
        let missing = if url_given { "webhookSecret" } else { "webhookUrl" };
        c.exact(&Path::root().key(missing), UNPAIRED_WEBHOOK);
        return None;
    }
    Some(DispatchWebhook { url: url?, secret: secret? })
}

/// `executions/get`: `{executionId}`.
pub fn parse_get_execution(body: &Value) -> Result<GetExecutionRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["executionId"])?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID)?;
        Some(GetExecutionRequest { execution_id })
    })
}

/// `executions/list`: `{definitionId?, status?, pageSize?, cursor?}`.
pub fn parse_list_executions(body: &Value) -> Result<ListExecutionsRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["definitionId", "status", "pageSize", "cursor"])?;
        let definition_id = optional(c, obj, "definitionId", DEFINITION_ID_FILTER);
        let status = choice(c, obj, "status", ExecutionStatus::ALL, false);
        let page_size = page_size(c, obj, EXECUTIONS_PAGE_SIZE_MAX, EXECUTIONS_PAGE_SIZE_DEFAULT);
        let cursor = optional(c, obj, "cursor", LIST_CURSOR);
        Some(ListExecutionsRequest { definition_id, status, page_size: page_size?, cursor })
    })
}

/// `deliveries/list`: `{executionId?, status?, pageSize?, cursor?}`.
pub fn parse_list_deliveries(body: &Value) -> Result<ListDeliveriesRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["executionId", "status", "pageSize", "cursor"])?;
        let execution_id = optional(c, obj, "executionId", EXECUTION_ID);
        let status = choice(c, obj, "status", DeliveryStatus::ALL, false);
        let page_size = page_size(c, obj, DELIVERIES_PAGE_SIZE_MAX, DELIVERIES_PAGE_SIZE_DEFAULT);
        let cursor = optional(c, obj, "cursor", LIST_CURSOR);
        Some(ListDeliveriesRequest { execution_id, status, page_size: page_size?, cursor })
    })
}

/// `deliveries/redeliver`: `{executionId, eventIds?}`; the ids, when given, are 1–500
/// distinct event ids.
pub fn parse_redeliver(body: &Value) -> Result<RedeliverRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["executionId", "eventIds"])?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let (given, path) = (obj.get("eventIds"), Path::root().key("eventIds"));
        let event_ids = match given {
            None => Some(None),
            given => c.string_list(given, &path, (1, REDELIVER_EVENT_IDS_MAX), EVENT_ID, true).map(
                |mut ids| {
                    ids.sort();
                    ids.dedup();
                    Some(ids)
                },
            ),
        };
        Some(RedeliverRequest { execution_id: execution_id?, event_ids: event_ids? })
    })
}

/// `pageSize`, `default` when absent.
fn page_size(c: &mut Checker, obj: &Object, max: i64, default: u32) -> Option<u32> {
    match obj.get("pageSize") {
        None => Some(default),
        given => fields::opt_uint(c, given, &Path::root().key("pageSize"), 1, max),
    }
}

/// `executions/cancel`: `{executionId, reason?}`.
pub fn parse_cancel_execution(body: &Value) -> Result<CancelExecutionRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["executionId", "reason"])?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let reason = optional(c, obj, "reason", CANCEL_REASON);
        Some(CancelExecutionRequest { execution_id: execution_id?, reason })
    })
}

/// `executions/getEvents`: `{executionId, sinceSeq?, pageSize?}`.
pub fn parse_get_events(body: &Value) -> Result<GetEventsRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["executionId", "sinceSeq", "pageSize"])?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let since_path = Path::root().key("sinceSeq");
        let since_seq = match obj.get("sinceSeq") {
            None => Some(0),
            given => fields::opt_uint(c, given, &since_path, 0, SEQ_MAX),
        };
        let page_size = page_size(c, obj, EVENTS_PAGE_SIZE_MAX, EVENTS_PAGE_SIZE_DEFAULT);
        Some(GetEventsRequest {
            execution_id: execution_id?,
            since_seq: since_seq?,
            page_size: page_size?,
        })
    })
}

/// `steps/recordReviewerDecision`.
pub fn parse_record_reviewer_decision(
    body: &Value,
) -> Result<RecordReviewerDecisionRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let keys = ["executionId", "stepId", "reviewerId", "decision", "reason"];
        let obj = body_object(c, body, &keys)?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let step_id = required(c, obj, "stepId", STEP_ID);
        let reviewer_id = required(c, obj, "reviewerId", REVIEWER_ID);
        let decision = choice(c, obj, "decision", Decision::ALL, true);
        let reason = optional(c, obj, "reason", DECISION_REASON);
        Some(RecordReviewerDecisionRequest {
            execution_id: execution_id?,
            step_id: step_id?,
            reviewer_id: reviewer_id?,
            decision: decision?,
            reason,
        })
    })
}

/// `steps/recordAgentResolution`.
pub fn parse_record_agent_resolution(
    body: &Value,
) -> Result<RecordAgentResolutionRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let keys = ["executionId", "stepId", "responseId", "resolution", "actorId", "reason"];
        let obj = body_object(c, body, &keys)?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let step_id = required(c, obj, "stepId", STEP_ID);
        let response_id = required(c, obj, "responseId", RESPONSE_ID);
        let resolution = choice(c, obj, "resolution", Resolution::ALL, true);
        let actor_id = required(c, obj, "actorId", ACTOR_ID);
        let reason = optional(c, obj, "reason", DECISION_REASON);
        Some(RecordAgentResolutionRequest {
            execution_id: execution_id?,
            step_id: step_id?,
            response_id: response_id?,
            resolution: resolution?,
            actor_id: actor_id?,
            reason,
        })
    })
}

/// `steps/cancel`.
pub fn parse_cancel_step(body: &Value) -> Result<CancelStepRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let obj = body_object(c, body, &["executionId", "stepId", "actorId", "reason"])?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let step_id = required(c, obj, "stepId", STEP_ID);
        let actor_id = required(c, obj, "actorId", ACTOR_ID);
        let reason = optional(c, obj, "reason", CANCEL_REASON);
        Some(CancelStepRequest {
            execution_id: execution_id?,
            step_id: step_id?,
            actor_id: actor_id?,
            reason,
        })
    })
}

/// `steps/resolve`.
pub fn parse_resolve_step(body: &Value) -> Result<ResolveStepRequest, Vec<Issue>> {
    parse(body, |c, body| {
        let keys = ["executionId", "stepId", "action", "actorId", "output", "reason"];
        let obj = body_object(c, body, &keys)?;
        let execution_id = required(c, obj, "executionId", EXECUTION_ID);
        let step_id = required(c, obj, "stepId", STEP_ID);
        let action = choice(c, obj, "action", ResolveAction::ALL, true);
        let actor_id = required(c, obj, "actorId", ACTOR_ID);
        let output_path = Path::root().key("output");
        let output = c.any_object(obj.get("output"), &output_path, false).cloned();
        let reason = optional(c, obj, "reason", DECISION_REASON);
        Some(ResolveStepRequest {
            execution_id: execution_id?,
            step_id: step_id?,
            action: action?,
            actor_id: actor_id?,
            output,
            reason,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each issue as `path: message`.
    fn problems<T: fmt::Debug>(parsed: Result<T, Vec<Issue>>) -> Vec<String> {
        match parsed {
            Ok(_) => Vec::new(),
            Err(issues) => issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect(),
        }
    }

    /// One row: the body's `key` set to a value (`None`: removed), and the problems expected.
    type Row = (&'static str, Option<Value>, Vec<String>);

    fn row(key: &'static str, value: Option<Value>, expected: &[&str]) -> Row {
        (key, value, expected.iter().map(|s| s.to_string()).collect())
    }

    fn run(base: Value, rows: Vec<Row>, problems_of: impl Fn(&Value) -> Vec<String>) {
        assert_eq!(problems_of(&base), Vec::<String>::new(), "the base body is valid");
        for (key, value, expected) in rows {
            let mut body = base.clone();
            let obj = body.as_object_mut().expect("object body");
            match value {
                Some(v) => obj.insert(key.to_owned(), v),
                None => obj.remove(key),
            };
            assert_eq!(problems_of(&body), expected, "{body}");
        }
    }

    fn too_short(key: &str, min: usize) -> String {
        format!("{key}: String must contain at least {min} character(s)")
    }

    fn too_long(key: &str, max: usize) -> String {
        format!("{key}: String must contain at most {max} character(s)")
    }

    /// A string field of `min..=max` characters: both bounds, one past each, its type, null,
    /// and its absence (refused when `is_required`).
    fn string_rows(key: &'static str, (min, max): (usize, usize), is_required: bool) -> Vec<Row> {
        let absent: &[&str] = if is_required { &[&format!("{key}: Required")] } else { &[] };
        let mut rows = vec![
            row(key, Some(json!("a".repeat(min.max(1)))), &[]),
            row(key, Some(json!("a".repeat(max))), &[]),
            row(key, Some(json!("a".repeat(max + 1))), &[&too_long(key, max)]),
            row(key, Some(json!(7)), &[&format!("{key}: Expected string, received number")]),
            row(key, Some(Value::Null), &[&format!("{key}: Expected string, received null")]),
            row(key, None, absent),
        ];
        if min > 0 {
            rows.push(row(key, Some(json!("a".repeat(min - 1))), &[&too_short(key, min)]));
        } else {
            rows.push(row(key, Some(json!("")), &[]));
        }
        rows
    }

    /// An enumeration: each value accepted, one refused with the choices listed.
    fn enum_rows<T>(key: &'static str, table: &[(T, &'static str)]) -> Vec<Row> {
        let mut rows: Vec<Row> =
            table.iter().map(|&(_, name)| row(key, Some(json!(name)), &[])).collect();
        let choices: Vec<String> = table.iter().map(|(_, n)| format!("'{n}'")).collect();
        let msg = format!(
            "{key}: Invalid enum value. Expected {}, received 'maybe'",
            choices.join(" | ")
        );
        rows.push(row(key, Some(json!("maybe")), &[&msg]));
        rows
    }

    fn unknown_key_row() -> Row {
        row("extra", Some(json!(1)), &[": Unrecognized key(s) in object: 'extra'"])
    }

    /// An integer field of `min..=max` with a default.
    fn int_rows(key: &'static str, min: i64, max: i64) -> Vec<Row> {
        vec![
            row(key, Some(json!(min)), &[]),
            row(key, Some(json!(max)), &[]),
            row(
                key,
                Some(json!(min - 1)),
                &[&format!("{key}: Number must be greater than or equal to {min}")],
            ),
            row(
                key,
                Some(json!(max + 1)),
                &[&format!("{key}: Number must be less than or equal to {max}")],
            ),
            row(key, Some(json!(1.5)), &[&format!("{key}: Expected integer, received float")]),
            row(key, Some(json!("10")), &[&format!("{key}: Expected number, received string")]),
            row(key, Some(Value::Null), &[&format!("{key}: Expected number, received null")]),
            row(key, None, &[]),
        ]
    }

    fn dispatch_problems(body: &Value) -> Vec<String> {
        problems(parse_dispatch(body, &AddressPolicy::default()))
    }

    const SECRET_16: &str = "0123456789abcdef";

    fn with_webhook(url: &str, secret: &str) -> Value {
        json!({"definitionId": "review", "webhookUrl": url, "webhookSecret": secret})
    }

    #[test]
    fn dispatch_fields_and_limits() {
        let key = |k: &'static str| {
            let ok = ["a", "A-z_0.9:x", "auto", "AUTO:x", "x-auto:"];
            let mut rows: Vec<Row> = ok.iter().map(|v| row(k, Some(json!(v)), &[])).collect();
            let invalid = format!("{k}: Invalid");
            for bad in ["", "a b", "a/b", "é"] {
                rows.push(row(k, Some(json!(bad)), &[&invalid]));
            }
            rows.push(row(k, Some(json!("k".repeat(200))), &[]));
            rows.push(row(k, Some(json!("k".repeat(201))), &[&invalid]));
            rows.push(row(
                k,
                Some(Value::Null),
                &[&format!("{k}: Expected string, received null")],
            ));
            rows
        };
        let mut rows = vec![
            row("definitionId", Some(json!("abc")), &[]),
            row("definitionId", Some(json!(format!("a{}", "b".repeat(63)))), &[]),
            row(
                "definitionId",
                Some(json!(format!("a{}", "b".repeat(64)))),
                &["definitionId: Invalid"],
            ),
            row("definitionId", Some(json!("ab")), &["definitionId: Invalid"]),
            row("definitionId", Some(json!("Abc")), &["definitionId: Invalid"]),
            row("definitionId", None, &["definitionId: Required"]),
            row("triggerContext", Some(json!({})), &[]),
            row("triggerContext", Some(json!({"a": {"b": [1, null]}})), &[]),
            row(
                "triggerContext",
                Some(json!([])),
                &["triggerContext: Expected object, received array"],
            ),
            row(
                "triggerContext",
                Some(Value::Null),
                &["triggerContext: Expected object, received null"],
            ),
            row("correlationId", Some(json!("auto:x")), &[]),
            unknown_key_row(),
        ];
        rows.extend(key("idempotencyKey"));
        rows.extend(key("correlationId"));
        for caller_id in ["organizationId", "documentId", "folderId"] {
            rows.extend(string_rows(caller_id, (1, 256), false));
        }
        run(json!({"definitionId": "review"}), rows, dispatch_problems);
    }

    #[test]
    fn dispatch_refuses_the_servers_key_prefixes() {
        for prefix in ids::RESERVED_KEY_PREFIXES {
            let body = json!({"definitionId": "review", "idempotencyKey": format!("{prefix}k")});
            let expected = format!(
                "idempotencyKey: Prefix \"{prefix}\" is reserved for the server's own keys \
                 (auto:, trig:, sched:, app:)"
            );
            assert_eq!(dispatch_problems(&body), [expected]);
        }
    }

    #[test]
    fn dispatch_webhook_fields_are_paired_and_guarded() {
        let https = "https://hooks.example.com/approvals";
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (with_webhook(https, SECRET_16), vec![]),
            (with_webhook(https, &"s".repeat(512)), vec![]),
            (
                with_webhook(https, &"s".repeat(15)),
                vec!["webhookSecret: String must contain at least 16 character(s)"],
            ),
            (
                with_webhook(https, &"s".repeat(513)),
                vec!["webhookSecret: String must contain at most 512 character(s)"],
            ),
            (
                json!({"definitionId": "review", "webhookUrl": https}),
                vec!["webhookSecret: webhookUrl and webhookSecret must be provided together"],
            ),
            (
                json!({"definitionId": "review", "webhookSecret": SECRET_16}),
                vec!["webhookUrl: webhookUrl and webhookSecret must be provided together"],
            ),
            (
                with_webhook("http://hooks.example.com/a", SECRET_16),
                vec!["webhookUrl: webhookUrl must use https scheme"],
            ),
            (
                with_webhook("https://10.1.2.3/a", SECRET_16),
                vec![
                    "webhookUrl: webhookUrl host resolves to a private, loopback, or link-local \
                 address (10.0.0.0/8, private)",
                ],
            ),
            (
                with_webhook("https://metadata.google.internal/", SECRET_16),
                vec!["webhookUrl: webhookUrl host \"metadata.google.internal\" is not allowed"],
            ),
            (
                with_webhook("hooks", SECRET_16),
                vec!["webhookUrl: webhookUrl is not a valid absolute URL"],
            ),
            (with_webhook(&format!("https://e.com/{}", "a".repeat(1986)), SECRET_16), vec![]),
            (
                with_webhook(&format!("https://e.com/{}", "a".repeat(1987)), SECRET_16),
                vec!["webhookUrl: String must contain at most 2000 character(s)"],
            ),
            (
                json!({"definitionId": "review", "webhookUrl": "http://e.com"}),
                vec![
                    "webhookUrl: webhookUrl must use https scheme",
                    "webhookSecret: webhookUrl and webhookSecret must be provided together",
                ],
            ),
            (
                json!({"definitionId": "review", "webhookUrl": null, "webhookSecret": SECRET_16}),
                vec!["webhookUrl: Expected string, received null"],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(dispatch_problems(&body), expected, "{body}");
        }
    }

    #[test]
    fn dispatch_webhook_sentences_are_exact() {
        let unpaired = json!({"definitionId": "review", "webhookUrl": "https://e.com"});
        let http = with_webhook("http://e.com", SECRET_16);
        let cases = [(unpaired, UNPAIRED_WEBHOOK), (http, "webhookUrl must use https scheme")];
        for (body, headline) in cases {
            let issues = parse_dispatch(&body, &AddressPolicy::default()).unwrap_err();
            assert!(issues[0].exact, "{body}");
            assert_eq!(issues[0].headline(), headline);
        }
    }

    #[test]
    fn dispatch_follows_the_operator_policy() {
        let body = with_webhook("http://receiver.test/hook", SECRET_16);
        assert!(parse_dispatch(&body, &AddressPolicy::default()).is_err());
        let dev = AddressPolicy { allow_http: true, ..AddressPolicy::default() };
        assert!(parse_dispatch(&body, &dev).is_ok());
    }

    #[test]
    fn dispatch_reads_every_field() {
        let body = json!({
            "definitionId": "review",
            "idempotencyKey": "campaign-7",
            "correlationId": "corr_campaign_7",
            "triggerContext": {"assetId": "a1"},
            "organizationId": "org",
            "documentId": "doc",
            "folderId": "folder",
            "webhookUrl": "https://hooks.example.com/a",
            "webhookSecret": SECRET_16
        });
        let parsed = parse_dispatch(&body, &AddressPolicy::default()).expect("valid");
        let expected = DispatchRequest {
            definition_id: "review".into(),
            idempotency_key: Some("campaign-7".into()),
            correlation_id: Some("corr_campaign_7".into()),
            trigger_context: body["triggerContext"].as_object().cloned().unwrap(),
            organization_id: Some("org".into()),
            document_id: Some("doc".into()),
            folder_id: Some("folder".into()),
            webhook: Some(DispatchWebhook {
                url: "https://hooks.example.com/a".into(),
                secret: SECRET_16.into(),
            }),
        };
        assert_eq!(parsed, expected);
        assert!(!format!("{parsed:?}").contains(SECRET_16), "the secret stays out of Debug");
    }

    #[test]
    fn dispatch_defaults() {
        let parsed = parse_dispatch(&json!({"definitionId": "review"}), &AddressPolicy::default());
        let parsed = parsed.expect("valid");
        assert_eq!(parsed.idempotency_key, None);
        assert_eq!(parsed.correlation_id, None);
        assert!(parsed.trigger_context.is_empty());
        assert_eq!(parsed.webhook, None);
    }

    #[test]
    fn every_problem_is_listed() {
        let body = json!({
            "definitionId": "x",
            "idempotencyKey": "trig:x",
            "correlationId": "a b",
            "triggerContext": 1,
            "folderId": "",
            "webhookSecret": "short",
            "other": true
        });
        assert_eq!(
            dispatch_problems(&body),
            [
                ": Unrecognized key(s) in object: 'other'",
                "definitionId: Invalid",
                "idempotencyKey: Prefix \"trig:\" is reserved for the server's own keys \
             (auto:, trig:, sched:, app:)",
                "correlationId: Invalid",
                "triggerContext: Expected object, received number",
                "folderId: String must contain at least 1 character(s)",
                "webhookSecret: String must contain at least 16 character(s)",
                "webhookUrl: webhookUrl and webhookSecret must be provided together",
            ]
        );
        let steps = parse_resolve_step(&json!({"action": "undo", "actorId": ""}));
        assert_eq!(
            problems(steps),
            [
                "executionId: Required",
                "stepId: Required",
                "action: Invalid enum value. Expected 'force-approve' | 'force-reject' | \
             'force-complete' | 'force-fail' | 'reviewer-approve' | 'reviewer-reject', \
             received 'undo'",
                "actorId: String must contain at least 1 character(s)",
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_an_object() {
        let refused = [
            dispatch_problems(&json!([])),
            problems(parse_get_execution(&json!("exec_1"))),
            problems(parse_list_executions(&Value::Null)),
            problems(parse_get_events(&json!(3))),
            problems(parse_cancel_step(&json!(true))),
        ];
        for found in refused {
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].starts_with(": Expected object, received "), "{found:?}");
        }
    }

    #[test]
    fn get_and_cancel_execution() {
        let mut rows = string_rows("executionId", (1, 200), true);
        rows.push(unknown_key_row());
        run(json!({"executionId": "exec_1_abcdefgh"}), rows, |b| problems(parse_get_execution(b)));

        let mut rows = string_rows("executionId", (1, 200), true);
        rows.extend(string_rows("reason", (0, 500), false));
        rows.push(unknown_key_row());
        run(json!({"executionId": "e"}), rows, |b| problems(parse_cancel_execution(b)));
        let parsed = parse_cancel_execution(&json!({"executionId": "e", "reason": "dup"}));
        let expected =
            CancelExecutionRequest { execution_id: "e".into(), reason: Some("dup".into()) };
        assert_eq!(parsed, Ok(expected));
    }

    #[test]
    fn list_executions() {
        let mut rows = string_rows("definitionId", (1, 64), false);
        rows.extend(string_rows("cursor", (1, 512), false));
        rows.extend(enum_rows("status", ExecutionStatus::ALL));
        rows.extend(int_rows("pageSize", 1, 500));
        rows.push(row("status", Some(Value::Null), &["status: Expected string, received null"]));
        rows.push(unknown_key_row());
        run(json!({}), rows, |b| problems(parse_list_executions(b)));

        let defaults = ListExecutionsRequest {
            definition_id: None,
            status: None,
            page_size: EXECUTIONS_PAGE_SIZE_DEFAULT,
            cursor: None,
        };
        assert_eq!(parse_list_executions(&json!({})), Ok(defaults));
        assert_eq!(EXECUTIONS_PAGE_SIZE_DEFAULT, 50);
        let body = json!({"definitionId": "d", "status": "failed", "pageSize": 7, "cursor": "c"});
        let given = ListExecutionsRequest {
            definition_id: Some("d".into()),
            status: Some(ExecutionStatus::Failed),
            page_size: 7,
            cursor: Some("c".into()),
        };
        assert_eq!(parse_list_executions(&body), Ok(given));
    }

    #[test]
    fn get_events() {
        let mut rows = string_rows("executionId", (1, 200), true);
        rows.extend(int_rows("sinceSeq", 0, SEQ_MAX));
        rows.extend(int_rows("pageSize", 1, 500));
        rows.push(unknown_key_row());
        run(json!({"executionId": "e"}), rows, |b| problems(parse_get_events(b)));

        let defaults = GetEventsRequest {
            execution_id: "e".into(),
            since_seq: 0,
            page_size: EVENTS_PAGE_SIZE_DEFAULT,
        };
        assert_eq!(parse_get_events(&json!({"executionId": "e"})), Ok(defaults));
        assert_eq!(EVENTS_PAGE_SIZE_DEFAULT, 100);
        let body = json!({"executionId": "e", "sinceSeq": 12, "pageSize": 3});
        let given = GetEventsRequest { execution_id: "e".into(), since_seq: 12, page_size: 3 };
        assert_eq!(parse_get_events(&body), Ok(given));
    }

    #[test]
    fn record_reviewer_decision() {
        let mut rows = string_rows("executionId", (1, 200), true);
        rows.extend(string_rows("stepId", (1, 200), true));
        rows.extend(string_rows("reviewerId", (1, 256), true));
        rows.extend(enum_rows("decision", Decision::ALL));
        rows.push(row("decision", None, &["decision: Required"]));
        rows.extend(string_rows("reason", (0, 2000), false));
        rows.push(unknown_key_row());
        let base =
            json!({"executionId": "e", "stepId": "s", "reviewerId": "u", "decision": "approve"});
        run(base, rows, |b| problems(parse_record_reviewer_decision(b)));

        let body = json!({"executionId": "e", "stepId": "s", "reviewerId": "u",
                          "decision": "reject", "reason": "typo"});
        let expected = RecordReviewerDecisionRequest {
            execution_id: "e".into(),
            step_id: "s".into(),
            reviewer_id: "u".into(),
            decision: Decision::Reject,
            reason: Some("typo".into()),
        };
        assert_eq!(parse_record_reviewer_decision(&body), Ok(expected));
    }

    #[test]
    fn record_agent_resolution() {
        let mut rows = string_rows("executionId", (1, 200), true);
        rows.extend(string_rows("stepId", (1, 200), true));
        rows.extend(string_rows("responseId", (1, 200), true));
        rows.extend(enum_rows("resolution", Resolution::ALL));
        rows.push(row("resolution", None, &["resolution: Required"]));
        rows.extend(string_rows("actorId", (1, 256), true));
        rows.extend(string_rows("reason", (0, 2000), false));
        rows.push(unknown_key_row());
        // The shape of older documentation is refused.
        rows.push(row(
            "status",
            Some(json!("success")),
            &[": Unrecognized key(s) in object: 'status'"],
        ));
        let base = json!({"executionId": "e", "stepId": "s", "responseId": "r",
                          "resolution": "resolved", "actorId": "a"});
        run(base.clone(), rows, |b| problems(parse_record_agent_resolution(b)));

        let parsed = parse_record_agent_resolution(&base).expect("valid");
        assert_eq!((parsed.resolution, parsed.reason), (Resolution::Resolved, None));
    }

    #[test]
    fn cancel_step() {
        let mut rows = string_rows("executionId", (1, 200), true);
        rows.extend(string_rows("stepId", (1, 200), true));
        rows.extend(string_rows("actorId", (1, 256), true));
        rows.extend(string_rows("reason", (0, 500), false));
        rows.push(unknown_key_row());
        let base = json!({"executionId": "e", "stepId": "s", "actorId": "ops"});
        run(base.clone(), rows, |b| problems(parse_cancel_step(b)));

        let expected = CancelStepRequest {
            execution_id: "e".into(),
            step_id: "s".into(),
            actor_id: "ops".into(),
            reason: None,
        };
        assert_eq!(parse_cancel_step(&base), Ok(expected));
    }

    #[test]
    fn resolve_step() {
        let mut rows = string_rows("executionId", (1, 200), true);
        rows.extend(string_rows("stepId", (1, 200), true));
        rows.extend(enum_rows("action", ResolveAction::ALL));
        rows.push(row("action", None, &["action: Required"]));
        rows.extend(string_rows("actorId", (1, 256), true));
        rows.extend(string_rows("reason", (0, 2000), false));
        rows.push(row("output", Some(json!({"note": {"any": [1]}})), &[]));
        rows.push(row(
            "output",
            Some(json!("done")),
            &["output: Expected object, received string"],
        ));
        rows.push(row("output", Some(Value::Null), &["output: Expected object, received null"]));
        rows.push(unknown_key_row());
        let base =
            json!({"executionId": "e", "stepId": "s", "action": "force-fail", "actorId": "a"});
        run(base, rows, |b| problems(parse_resolve_step(b)));

        let body = json!({"executionId": "e", "stepId": "s", "action": "force-complete",
                          "actorId": "a", "output": {"ok": true}, "reason": "manual"});
        let expected = ResolveStepRequest {
            execution_id: "e".into(),
            step_id: "s".into(),
            action: ResolveAction::ForceComplete,
            actor_id: "a".into(),
            output: json!({"ok": true}).as_object().cloned(),
            reason: Some("manual".into()),
        };
        assert_eq!(parse_resolve_step(&body), Ok(expected));
    }

    #[test]
    fn wire_names_round_trip() {
        assert_eq!(ExecutionStatus::Cancelled.as_str(), "cancelled");
        assert_eq!(ResolveAction::ReviewerReject.as_str(), "reviewer-reject");
        for &(variant, name) in ResolveAction::ALL {
            assert_eq!(variant.as_str(), name);
        }
        for &(variant, name) in ExecutionStatus::ALL {
            assert_eq!(variant.as_str(), name);
        }
    }
}
