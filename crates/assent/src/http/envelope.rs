//! The request and response envelope: `{"data": {...}}` in, `{"result": ...}` out.

use super::error::{ApiError, ApiResult};
use assent_core::issue::{Issue, Path};
use assent_core::schema::check::type_name;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};

/// Bodies over 1 MiB are refused before they are parsed.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The `data` object of an enveloped request.
pub struct Data(pub Value);

/// A successful answer: `{"result": ...}`.
pub fn ok(result: Value) -> Response {
    Json(json!({ "result": result })).into_response()
}

impl<S: Send + Sync> FromRequest<S> for Data {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> ApiResult<Data> {
        require_json_content_type(req.headers())?;
        let declared_len = content_length(req.headers());
        let bytes = read_limited(req.into_body(), declared_len).await?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
            let issue = Issue::new("invalid_json", &Path::root(), format!("Malformed JSON: {e}"));
            ApiError::schema(vec![issue])
        })?;
        unwrap_data(body).map(Data)
    }
}

fn require_json_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/json") => Ok(()),
        _ => Err(ApiError::invalid("Content-Type must be application/json")),
    }
}

async fn read_limited(body: Body, declared_len: Option<u64>) -> ApiResult<bytes::Bytes> {
    if declared_len.is_some_and(|len| len > BODY_LIMIT_BYTES as u64) {
        return Err(ApiError::body_too_large(BODY_LIMIT_BYTES));
    }
    match Limited::new(body, BODY_LIMIT_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::body_too_large(BODY_LIMIT_BYTES))
        }
        Err(e) => Err(ApiError::invalid(format!("Could not read the request body: {e}"))),
    }
}

/// Takes the `data` object out of `{"data": {...}}`, refusing any other shape.
fn unwrap_data(body: Value) -> ApiResult<Value> {
    let Value::Object(mut envelope) = body else {
        let issue = Issue::new("invalid_type", &Path::root(), "Expected object");
        return Err(ApiError::schema(vec![issue]));
    };
    let data = envelope.remove("data");
    if !envelope.is_empty() {
        let keys: Vec<String> = envelope.keys().map(|k| format!("'{k}'")).collect();
        let msg = format!("Unrecognized key(s) in object: {}", keys.join(", "));
        let issue = Issue::new("unrecognized_keys", &Path::root(), msg);
        return Err(ApiError::schema(vec![issue]));
    }
    let path = Path::root().key("data");
    match data {
        Some(data @ Value::Object(_)) => Ok(data),
        None => Err(ApiError::schema(vec![Issue::new("invalid_type", &path, "Required")])),
        Some(other) => {
            let msg = format!("Expected object, received {}", type_name(&other));
            Err(ApiError::schema(vec![Issue::new("invalid_type", &path, msg)]))
        }
    }
}

/// The declared `Content-Length`, if any.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
