//! `/webhook-inbound/callback`: an async webhook endpoint reports on the step it was called
//! for. No API key: the `x-velt-callback-token` header authorises the request, and the body
//! is raw JSON. Answers are `{ok, duplicate?}` or `{ok: false, code, message}`, not the
//! `{result}` envelope.

use super::envelope::BODY_LIMIT_BYTES;
use super::error::ApiError;
use super::AppState;
use crate::engine::{CallbackClaims, CallbackRefusal};
use assent_core::engine::webhook::CALLBACK_TOKEN_HEADER;
use assent_core::issue::Issue;
use assent_core::schema::callback::{parse_callback, CallbackReport};
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use tracing::Instrument;

pub async fn callback(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match accept(&app, &headers, body).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// The token first, so that nothing about the body is told to a caller without one.
async fn accept(app: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, Refusal> {
    let token = headers.get(CALLBACK_TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let claims = app.engine.verify_callback_token(token.unwrap_or_default()).await;
    let claims = claims.map_err(Refusal::from)?;
    let span = tracing::info_span!(
        "callback",
        workspace_id = %claims.workspace_id,
        execution_id = %claims.execution_id,
        step_id = %claims.step_id
    );
    async {
        let report = read_report(headers, body).await?;
        apply(app, claims, report).await
    }
    .instrument(span)
    .await
}

async fn read_report(headers: &HeaderMap, body: Body) -> Result<CallbackReport, Refusal> {
    let declared_len = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    if declared_len.is_some_and(|len: u64| len > BODY_LIMIT_BYTES as u64) {
        return Err(Refusal::too_large());
    }
    let bytes = match Limited::new(body, BODY_LIMIT_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(Refusal::too_large()),
        Err(e) => return Err(Refusal::body(format!("Could not read the body: {e}"), None)),
    };
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::body(format!("Malformed JSON: {e}"), None))?;
    parse_callback(&value).map_err(|issues| {
        let message = issues.first().map_or_else(|| "Invalid body".into(), Issue::headline);
        Refusal::body(message, Some(issues))
    })
}

async fn apply(
    app: &AppState,
    claims: CallbackClaims,
    report: CallbackReport,
) -> Result<Value, Refusal> {
    let status = report.status.as_str();
    let answer = app.engine.webhook_callback(claims, report).await.map_err(Refusal::from)?;
    let duplicate = answer["duplicate"] == true;
    tracing::info!(status, duplicate, "webhook callback accepted");
    Ok(answer)
}

/// A refused callback: its HTTP status and `{ok: false, code, message, ...}`.
struct Refusal {
    status: StatusCode,
    body: Value,
}

impl Refusal {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
        let body = json!({ "ok": false, "code": code, "message": message.into() });
        Refusal { status, body }
    }

    fn body(message: String, issues: Option<Vec<Issue>>) -> Refusal {
        let mut refusal = Refusal::new(StatusCode::BAD_REQUEST, "callback-body-invalid", message);
        if let Some(issues) = issues {
            refusal.body["issues"] = json!(issues);
        }
        refusal
    }

    fn too_large() -> Refusal {
        let message = format!("The body is larger than {BODY_LIMIT_BYTES} bytes");
        Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", message)
    }
}

impl From<CallbackRefusal> for Refusal {
    fn from(refusal: CallbackRefusal) -> Refusal {
        match refusal {
            CallbackRefusal::TokenInvalid => {
                tracing::debug!("webhook callback with an invalid token");
                let message = "The callback token is missing or not valid";
                Refusal::new(StatusCode::UNAUTHORIZED, "callback-token-invalid", message)
            }
            CallbackRefusal::NotWaiting => {
                tracing::info!("webhook callback for a step that no longer awaits it");
                let message = "The step is not waiting for this callback";
                Refusal::new(StatusCode::CONFLICT, "step-not-waiting", message)
            }
            CallbackRefusal::Run(e) => {
                let logged = ApiError::internal(e);
                let request_id = logged.details.map(|d| d["requestId"].clone());
                let mut refusal =
                    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error");
                refusal.body["requestId"] = request_id.unwrap_or(Value::Null);
                refusal
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
