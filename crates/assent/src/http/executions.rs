//! `/executions/*`: dispatch, get, list, cancel and getEvents.

use super::auth::Workspace;
use super::envelope::{ok, Data};
use super::error::{ApiError, ApiResult};
use super::names::{check_names, WrittenUrl};
use super::AppState;
use assent_core::engine::{execution_view, Command, ExecutionState};
use assent_core::ids;
use assent_core::issue::Path;
use assent_core::schema::executions as schema;
use assent_store::{ExecutionRecord, Store};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

pub async fn dispatch(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_dispatch(&body, &app.address_policy).map_err(ApiError::schema)?;
    if let Some(webhook) = &req.webhook {
        let path = Path::root().key("webhookUrl");
        let url = WrittenUrl { path, field: "webhookUrl", url: webhook.url.clone() };
        check_names(app.engine.outbound(), vec![url]).await?;
    }
    let dispatched = app.engine.dispatch(&ws.0, req).await?;
    Ok(ok(json!({
        "executionId": dispatched.execution_id,
        "correlationId": dispatched.correlation_id,
        "deduplicated": dispatched.deduplicated,
    })))
}

pub async fn get(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_get_execution(&body).map_err(ApiError::schema)?;
    let state = app.engine.execution(&ws.0, &req.execution_id).await?;
    Ok(ok(execution_view(&state, true)))
}

pub async fn list(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_list_executions(&body).map_err(ApiError::schema)?;
    let page = app
        .store
        .list_executions(
            &ws.0,
            req.definition_id.as_deref(),
            req.status,
            req.page_size,
            req.cursor.as_deref(),
        )
        .await
        .map_err(ApiError::from_store)?;
    let items: Result<Vec<Value>, ApiError> = page.items.iter().map(list_item).collect();
    Ok(ok(json!({ "items": items?, "nextCursor": page.next_cursor })))
}

fn list_item(record: &ExecutionRecord) -> Result<Value, ApiError> {
    let state: ExecutionState = serde_json::from_str(&record.state).map_err(ApiError::internal)?;
    Ok(execution_view(&state, false))
}

pub async fn cancel(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_cancel_execution(&body).map_err(ApiError::schema)?;
    let command = Command::CancelExecution { reason: req.reason };
    app.engine.apply(&ws.0, &req.execution_id, command).await?;
    Ok(ok(json!({ "cancelled": true, "executionId": req.execution_id })))
}

pub async fn get_events(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_get_events(&body).map_err(ApiError::schema)?;
    let id = req.execution_id;
    // The schema bounds sinceSeq below 2^53.
    let since_seq = req.since_seq as i64;
    let page = app.store.get_events(&ws.0, &id, since_seq, req.page_size).await;
    let page = page
        .map_err(|e| ApiError::from_store(e).or_not_found(&format!("Execution {id} not found")))?;
    let next_cursor = page.events.last().map_or(since_seq, |e| e.seq);
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            json!({
                "eventId": ids::event_id(&id, e.seq as u64),
                "seq": e.seq,
                "type": e.event_type,
                "stepId": e.step_id,
                "timestamp": e.timestamp_ms,
                "correlationId": e.correlation_id,
                "data": e.data,
            })
        })
        .collect();
    Ok(ok(json!({
        "executionId": id,
        "events": events,
        "nextCursor": next_cursor,
        "hasMore": page.has_more,
    })))
}
