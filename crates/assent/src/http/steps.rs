//! `/steps/*`: reviewer decisions, agent resolutions, cancel and resolve.

use super::auth::Workspace;
use super::envelope::{ok, Data};
use super::error::{ApiError, ApiResult};
use super::AppState;
use assent_core::engine::Command;
use assent_core::schema::executions as schema;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

pub async fn record_reviewer_decision(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_record_reviewer_decision(&body).map_err(ApiError::schema)?;
    let command = Command::RecordReviewerDecision {
        step_id: req.step_id,
        reviewer_id: req.reviewer_id,
        decision: req.decision,
        reason: req.reason,
    };
    Ok(ok(app.engine.apply(&ws.0, &req.execution_id, command).await?))
}

pub async fn record_agent_resolution(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_record_agent_resolution(&body).map_err(ApiError::schema)?;
    let command = Command::RecordAgentResolution {
        step_id: req.step_id,
        response_id: req.response_id,
        resolution: req.resolution.as_str().to_owned(),
        actor_id: req.actor_id,
        reason: req.reason,
    };
    Ok(ok(app.engine.apply(&ws.0, &req.execution_id, command).await?))
}

pub async fn cancel(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_cancel_step(&body).map_err(ApiError::schema)?;
    let step_id = req.step_id.clone();
    let command =
        Command::CancelStep { step_id: req.step_id, actor_id: req.actor_id, reason: req.reason };
    app.engine.apply(&ws.0, &req.execution_id, command).await?;
    Ok(ok(json!({ "cancelled": true, "executionId": req.execution_id, "stepId": step_id })))
}

pub async fn resolve(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = schema::parse_resolve_step(&body).map_err(ApiError::schema)?;
    let command = Command::ResolveStep {
        step_id: req.step_id.clone(),
        action: req.action,
        actor_id: req.actor_id,
        output: req.output,
        reason: req.reason,
    };
    let applied = app.engine.apply(&ws.0, &req.execution_id, command).await;
    applied.map_err(|e| ApiError::from(e).for_resolve(req.action))?;
    Ok(ok(json!({
        "resolved": true,
        "executionId": req.execution_id,
        "stepId": req.step_id,
        "action": req.action.as_str(),
    })))
}
