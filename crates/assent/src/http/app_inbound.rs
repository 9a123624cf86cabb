//! `POST /app-inbound/{github|vercel}`: the webhooks of a GitHub App or a Vercel integration.
//! Like the inbound trigger endpoint, there is no envelope either way and no API key: the
//! connection of the installation the delivery names gives the workspace, and its webhook
//! secret proves the sender. The answer is `{ok, code, executions?, refused?}`.

use super::inbound::{read_limited, RequestHeaders, Unread};
use super::AppState;
use crate::engine::{AppDelivery, AppRefusal, AppRuns};
use assent_core::inbound::Refusal;
use assent_core::model::AppProvider;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The query parameter that names the installation for bodies that do not.
const INSTALLATION_PARAM: &str = "installationRef";

/// Why the endpoint started no run; [`Failure::answer`] maps each to its HTTP status and
/// `code`, in one place.
#[derive(Debug)]
enum Failure {
    ProviderNotFound,
    BodyTooLarge,
    BodyInvalid,
    Delivery(AppRefusal),
    /// Every definition the delivery fired refused to start a run.
    DispatchRefused(Vec<(String, String)>),
}

pub async fn receive(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&app, &provider, query.as_deref(), &headers, body).await {
        Ok(runs) => accepted(runs),
        Err(failure) => failure.answer(),
    }
}

async fn accept(
    app: &AppState,
    provider: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<AppRuns, Failure> {
    let provider = AppProvider::from_name(provider).ok_or(Failure::ProviderNotFound)?;
    let raw_body = read_limited(body, headers).await.map_err(|unread| match unread {
        Unread::TooLarge => Failure::BodyTooLarge,
        Unread::Broken => Failure::BodyInvalid,
    })?;
    let body = match serde_json::from_slice(&raw_body) {
        Ok(body @ Value::Object(_)) => body,
        _ => return Err(Failure::BodyInvalid),
    };

    let installation = installation_in_query(query);
    let delivery = AppDelivery {
        provider,
        installation_in_query: installation.as_deref(),
        raw_body: &raw_body,
        body,
        headers: &RequestHeaders(headers),
    };
    let runs = app.engine.receive_app_delivery(delivery).await.map_err(Failure::Delivery)?;
    if runs.started.is_empty() && !runs.refused.is_empty() {
        return Err(Failure::DispatchRefused(runs.refused));
    }
    Ok(runs)
}

/// The query's `installationRef`; the first counts when it is repeated.
fn installation_in_query(query: Option<&str>) -> Option<String> {
    let mut pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    pairs.find(|(key, _)| key == INSTALLATION_PARAM).map(|(_, value)| value.into_owned())
}

/// `accepted` with the runs when any started (or were found again), `no-match` when no
/// definition's trigger fired.
fn accepted(runs: AppRuns) -> Response {
    if runs.started.is_empty() {
        return (StatusCode::OK, Json(json!({ "ok": true, "code": "no-match" }))).into_response();
    }
    let executions: Vec<Value> = runs
        .started
        .iter()
        .map(|run| {
            json!({
                "definitionId": run.definition_id,
                "executionId": run.execution_id,
                "deduplicated": run.deduplicated,
            })
        })
        .collect();
    let mut answer = json!({ "ok": true, "code": "accepted", "executions": executions });
    if !runs.refused.is_empty() {
        answer["refused"] = refused_json(&runs.refused);
    }
    (StatusCode::OK, Json(answer)).into_response()
}

fn refused_json(refused: &[(String, String)]) -> Value {
    let entries = refused.iter().map(
        |(definition_id, _)| json!({ "definitionId": definition_id, "code": "dispatch-refused" }),
    );
    Value::Array(entries.collect())
}

impl Failure {
    fn answer(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut answer = json!({ "ok": false, "code": code });
        match self {
            Failure::Delivery(AppRefusal::Failed(e)) => {
                let request_id = super::error::new_request_id();
                tracing::error!(request_id = %request_id, "app delivery failed: {e}");
                answer["requestId"] = json!(request_id);
            }
            Failure::DispatchRefused(refused) => answer["refused"] = refused_json(&refused),
            _ => tracing::debug!(code, "app delivery refused"),
        }
        (status, Json(answer)).into_response()
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Failure::ProviderNotFound => (StatusCode::NOT_FOUND, "provider-not-found"),
            Failure::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            Failure::BodyInvalid => (StatusCode::BAD_REQUEST, "invalid-body"),
            Failure::Delivery(AppRefusal::InstallationMissing) => {
                (StatusCode::BAD_REQUEST, "installation-missing")
            }
            Failure::Delivery(AppRefusal::InstallationNotFound) => {
                (StatusCode::NOT_FOUND, "installation-not-found")
            }
            Failure::Delivery(AppRefusal::Refused(refusal)) => {
                (StatusCode::UNAUTHORIZED, Refusal::code(*refusal))
            }
            Failure::Delivery(AppRefusal::DeliveryIdMissing) => {
                (StatusCode::BAD_REQUEST, "delivery-id-missing")
            }
            Failure::Delivery(AppRefusal::Failed(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            Failure::DispatchRefused(_) => (StatusCode::CONFLICT, "dispatch-refused"),
        }
    }
}
