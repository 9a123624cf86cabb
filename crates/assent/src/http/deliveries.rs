//! `/deliveries/*`: the delivery log of outbound event webhooks, and redelivery.

use super::auth::Workspace;
use super::envelope::{ok, Data};
use super::error::{ApiError, ApiResult, Code};
use super::AppState;
use assent_core::schema::executions as schema;
use assent_store::{DeliveryAttempt, DeliveryFilter, DeliveryRecord, DeliveryStatus, Store};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

pub async fn list(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_list_deliveries(&body).map_err(ApiError::schema)?;
    let filter = DeliveryFilter {
        execution_id: req.execution_id.as_deref(),
        status: req.status.and_then(|s| DeliveryStatus::from_name(s.as_str())),
        page_size: req.page_size,
        cursor: req.cursor.as_deref(),
    };
    let page = app.store.list_deliveries(&ws.0, filter).await.map_err(ApiError::from_store)?;
    let items: Vec<Value> = page.items.iter().map(delivery_view).collect();
    Ok(ok(json!({ "items": items, "nextCursor": page.next_cursor })))
}

pub async fn redeliver(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_redeliver(&body).map_err(ApiError::schema)?;
    let id = &req.execution_id;
    let execution = app.store.get_execution(&ws.0, id).await.map_err(ApiError::from_store)?;
    if execution.is_none() {
        return Err(ApiError::new(Code::NotFound, format!("Execution {id} not found")));
    }
    let now_ms = app.clock.now_ms();
    let restarted =
        app.store.redeliver(&ws.0, id, req.event_ids.as_deref(), now_ms).await.map_err(|e| {
            let message = format!("Execution {id} has no delivery of one of the eventIds given");
            ApiError::from_store(e).or_not_found(&message)
        })?;
    app.engine.wake();
    Ok(ok(json!({ "executionId": id, "redelivered": restarted })))
}

fn delivery_view(delivery: &DeliveryRecord) -> Value {
    json!({
        "executionId": delivery.execution_id,
        "eventId": delivery.event_id,
        "seq": delivery.seq,
        "type": delivery.event_type,
        "url": delivery.url,
        "status": delivery.status.as_str(),
        "createdAt": delivery.created_at_ms,
        "updatedAt": delivery.updated_at_ms,
        "nextAttemptAt": delivery.next_attempt_at_ms,
        "attempts": delivery.attempts.iter().map(attempt_view).collect::<Vec<_>>(),
    })
}

fn attempt_view(attempt: &DeliveryAttempt) -> Value {
    json!({
        "attempt": attempt.attempt,
        "at": attempt.at_ms,
        "httpStatus": attempt.http_status,
        "error": attempt.error,
        "latencyMs": attempt.latency_ms,
    })
}
