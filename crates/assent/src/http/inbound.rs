//! `POST /webhook-inbound/trigger`: a source outside Assent (GitHub, Vercel, Velt, anything
//! that signs its webhooks) starts a run. The body is the source's raw JSON, with no
//! envelope, and so is the answer: `{ok, code, executionId?, deduplicated?}`.

use super::envelope::BODY_LIMIT_BYTES;
use super::AppState;
use crate::engine::{Dispatched, Inbound, InboundOutcome, RunError};
use assent_core::inbound::{Headers, Refusal};
use assent_store::Store;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Map, Value};
use tracing::Instrument;

const API_KEY_HEADER: &str = super::auth::API_KEY_HEADER;

/// Why the endpoint answered without starting a run; [`Failure::answer`] maps each to its
/// HTTP status and `code`, in one place.
#[derive(Debug)]
enum Failure {
    BodyTooLarge,
    BodyInvalid,
    ApiKeyMissing,
    ApiKeyInvalid,
    TriggerUnnamed,
    Outcome(InboundOutcome),
}

pub async fn trigger(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&app, query.as_deref(), &headers, body).await {
        Ok(run) => {
            let answer = json!({
                "ok": true,
                "code": "accepted",
                "executionId": run.execution_id,
                "deduplicated": run.deduplicated,
            });
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(failure) => failure.answer(),
    }
}

async fn accept(
    app: &AppState,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Dispatched, Failure> {
    let raw_body = read_limited(body, headers).await?;
    let query = QueryParams::parse(query);
    let workspace_id = workspace(app, headers, &query).await?;
    let body: Map<String, Value> = match serde_json::from_slice(&raw_body) {
        Ok(Value::Object(body)) => body,
        _ => return Err(Failure::BodyInvalid),
    };

    let (definition_id, trigger_id) = trigger_named(&query, &body)?;
    let span = tracing::info_span!(
        "inbound",
        workspace_id = %workspace_id,
        definition_id = %definition_id,
        trigger_id = %trigger_id
    );
    let request = Inbound {
        workspace_id: &workspace_id,
        definition_id: &definition_id,
        trigger_id: &trigger_id,
        raw_body: &raw_body,
        body,
        headers: &RequestHeaders(headers),
    };
    let run = app.engine.trigger_inbound(request).instrument(span.clone()).await;
    let run = run.map_err(Failure::Outcome)?;
    let _entered = span.enter();
    let (execution_id, deduplicated) = (&run.execution_id, run.deduplicated);
    tracing::info!(execution_id = %execution_id, deduplicated, "run started");
    Ok(run)
}

/// The `definitionId` and `triggerId` the query string gives, else the body's. The query
/// comes first: it is what the trigger's owner wrote in the webhook's address, while the body
/// is whatever the source sends.
fn trigger_named(
    query: &QueryParams,
    body: &Map<String, Value>,
) -> Result<(String, String), Failure> {
    let named = |key: &str| {
        let in_body = || body.get(key).and_then(Value::as_str).map(str::to_owned);
        query.get(key).or_else(in_body).filter(|id| !id.is_empty())
    };
    match (named("definitionId"), named("triggerId")) {
        (Some(definition_id), Some(trigger_id)) => Ok((definition_id, trigger_id)),
        _ => Err(Failure::TriggerUnnamed),
    }
}

/// The workspace of the API key: the header's when it is sent, else the `apiKey` query
/// parameter's.
async fn workspace(
    app: &AppState,
    headers: &HeaderMap,
    query: &QueryParams,
) -> Result<String, Failure> {
    let from_header =
        headers.get(API_KEY_HEADER).map(|v| v.to_str().unwrap_or_default().to_owned());
    let api_key = from_header.or_else(|| query.get("apiKey")).filter(|key| !key.is_empty());
    let api_key = api_key.ok_or(Failure::ApiKeyMissing)?;
    match app.store.workspace_of_api_key(&api_key).await {
        Ok(Some(workspace_id)) => Ok(workspace_id),
        Ok(None) => Err(Failure::ApiKeyInvalid),
        Err(e) => Err(Failure::Outcome(InboundOutcome::Failed(RunError::Store(e)))),
    }
}

/// Why a raw body was not read.
pub(super) enum Unread {
    TooLarge,
    Broken,
}

impl From<Unread> for Failure {
    fn from(unread: Unread) -> Failure {
        match unread {
            Unread::TooLarge => Failure::BodyTooLarge,
            Unread::Broken => Failure::BodyInvalid,
        }
    }
}

/// The body, refused past 1 MiB before it is read in full.
pub(super) async fn read_limited(body: Body, headers: &HeaderMap) -> Result<bytes::Bytes, Unread> {
    let declared_len = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    if declared_len.is_some_and(|len: u64| len > BODY_LIMIT_BYTES as u64) {
        return Err(Unread::TooLarge);
    }
    match Limited::new(body, BODY_LIMIT_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Unread::TooLarge),
        Err(_) => Err(Unread::Broken),
    }
}

/// The query string's parameters; the first of a repeated name counts.
struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    fn parse(query: Option<&str>) -> QueryParams {
        let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        QueryParams(pairs.into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
    }
}

/// A request's headers, as the core's trigger rules read them.
pub(super) struct RequestHeaders<'a>(pub(super) &'a HeaderMap);

impl Headers for RequestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name.to_ascii_lowercase().as_str())?.to_str().ok()
    }
}

impl Failure {
    fn answer(self) -> Response {
        let (status, code) = match &self {
            Failure::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            Failure::BodyInvalid => (StatusCode::BAD_REQUEST, "invalid-body"),
            Failure::ApiKeyMissing => (StatusCode::UNAUTHORIZED, "api-key-missing"),
            Failure::ApiKeyInvalid => (StatusCode::UNAUTHORIZED, "api-key-invalid"),
            Failure::TriggerUnnamed => (StatusCode::BAD_REQUEST, "trigger-unnamed"),
            Failure::Outcome(outcome) => outcome_status(outcome),
        };
        let mut answer = json!({ "ok": false, "code": code });
        match self {
            Failure::Outcome(InboundOutcome::Failed(e)) => {
                let request_id = super::error::new_request_id();
                tracing::error!(request_id = %request_id, "inbound trigger failed: {e}");
                answer["requestId"] = json!(request_id);
            }
            Failure::Outcome(InboundOutcome::DispatchRefused(message)) => {
                tracing::warn!("inbound trigger could not start a run: {message}");
            }
            _ => tracing::debug!(code, "inbound trigger refused"),
        }
        (status, Json(answer)).into_response()
    }
}

fn outcome_status(outcome: &InboundOutcome) -> (StatusCode, &'static str) {
    match outcome {
        InboundOutcome::DefinitionNotFound => (StatusCode::NOT_FOUND, "definition-not-found"),
        InboundOutcome::DefinitionDeleted => (StatusCode::GONE, "definition-deleted"),
        InboundOutcome::TriggerNotFound => (StatusCode::NOT_FOUND, "trigger-not-found"),
        InboundOutcome::Refused(Refusal::PayloadNotObject) => {
            (StatusCode::BAD_REQUEST, Refusal::PayloadNotObject.code())
        }
        InboundOutcome::Refused(refusal) => (StatusCode::UNAUTHORIZED, refusal.code()),
        InboundOutcome::EventIgnored => (StatusCode::OK, "event-ignored"),
        InboundOutcome::DispatchRefused(_) => (StatusCode::CONFLICT, "dispatch-refused"),
        InboundOutcome::Failed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}
