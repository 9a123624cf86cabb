//! `/definitions/*`: create, update, get, list, delete, validate and getVersion.

use super::auth::Workspace;
use super::envelope::{ok, Data};
use super::error::{ApiError, ApiResult};
use super::names::{check_names, urls_of};
use super::AppState;
use crate::engine::{app_trigger_entries, schedule_entries};
use assent_core::schema::definition::Mode;
use assent_core::schema::requests;
use assent_core::validate::{validate_definition, Validated};
use assent_core::view::{definition_view, stored_body, view_parts, ViewMeta};
use assent_store::{DefinitionRecord, NewDefinition, Store};
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};

pub async fn create(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let validated = validate_definition(&body, Mode::Create, &app.address_policy)?;
    check_names(app.engine.outbound(), urls_of(&validated.spec)).await?;
    app.engine.check_app_connections(&ws.0, &validated.spec).await?;
    let id = validated.spec.definition_id.clone();
    let now_ms = app.clock.now_ms();
    let def = new_definition(&body, &validated, now_ms);
    let record = app.store.create_definition(&ws.0, def, now_ms).await;
    let record = record.map_err(|e| ApiError::store(e, &id))?;
    app.engine.wake_schedules();
    Ok(ok(view(&record)))
}

pub async fn update(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let validated = validate_definition(&body, Mode::Update, &app.address_policy)?;
    check_names(app.engine.outbound(), urls_of(&validated.spec)).await?;
    app.engine.check_app_connections(&ws.0, &validated.spec).await?;
    let id = validated.spec.definition_id.clone();
    let if_version = validated.if_version.unwrap_or_default();
    let now_ms = app.clock.now_ms();
    let def = new_definition(&body, &validated, now_ms);
    let record = app.store.update_definition(&ws.0, def, if_version, now_ms).await;
    let record = record.map_err(|e| ApiError::store(e, &id))?;
    app.engine.wake_schedules();
    Ok(ok(view(&record)))
}

pub async fn get(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = requests::parse_get(&body).map_err(ApiError::schema)?;
    let id = req.definition_id;
    let found = app.store.get_definition(&ws.0, &id).await;
    let record = found.map_err(|e| ApiError::store(e, &id))?;
    let record = record.ok_or_else(|| ApiError::store(assent_store::StoreError::NotFound, &id))?;
    Ok(ok(view(&record)))
}

pub async fn list(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = requests::parse_list(&body).map_err(ApiError::schema)?;
    let page = app.store.list_definitions(&ws.0, req.page_size, req.cursor).await;
    let page = page.map_err(ApiError::internal)?;
    let items: Vec<Value> = page.items.iter().map(view).collect();
    Ok(ok(json!({ "items": items, "nextCursor": page.next_cursor })))
}

pub async fn delete(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = requests::parse_delete(&body).map_err(ApiError::schema)?;
    let id = req.definition_id;
    let now_ms = app.clock.now_ms();
    let deleted = app.store.delete_definition(&ws.0, &id, req.purge, now_ms).await;
    deleted.map_err(|e| ApiError::store(e, &id))?;
    app.engine.wake_schedules();
    Ok(ok(json!({ "deleted": true, "purged": req.purge, "definitionId": id })))
}

/// The whole write-time check without saving. With `ifVersion` the body is checked as an
/// update of this workspace's definition, so a stale version or a missing id is reported as
/// the update would report it.
pub async fn validate(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let as_update = body.get("ifVersion").is_some();
    let mode = if as_update { Mode::Update } else { Mode::Create };
    let validated = validate_definition(&body, mode, &app.address_policy)?;
    check_names(app.engine.outbound(), urls_of(&validated.spec)).await?;
    app.engine.check_app_connections(&ws.0, &validated.spec).await?;
    if let Some(if_version) = validated.if_version {
        let id = &validated.spec.definition_id;
        let found = app.store.get_definition(&ws.0, id).await;
        let current = found.map_err(|e| ApiError::store(e, id))?;
        let current =
            current.ok_or_else(|| ApiError::store(assent_store::StoreError::NotFound, id))?;
        if current.version != if_version {
            let conflict = assent_store::StoreError::VersionConflict {
                expected: if_version,
                current: current.version,
            };
            return Err(ApiError::store(conflict, id));
        }
    }
    Ok(ok(json!({ "valid": true, "compiled": validated.compiled.to_json() })))
}

pub async fn get_version(
    State(app): State<AppState>,
    ws: Workspace,
    Data(body): Data,
) -> ApiResult<Response> {
    let req = requests::parse_get_version(&body).map_err(ApiError::schema)?;
    let id = req.definition_id;
    let found = app.store.get_definition_version(&ws.0, &id, req.version).await;
    let record = found.map_err(|e| ApiError::store(e, &id))?.ok_or_else(|| {
        let message = format!("Definition {id} has no version {}", req.version);
        ApiError::new(super::Code::NotFound, message)
    })?;
    Ok(ok(view(&record)))
}

/// What the store writes: the body, its view, its schedules as of `now_ms`, and the
/// installations its app triggers name.
fn new_definition(body: &Value, validated: &Validated, now_ms: i64) -> NewDefinition {
    NewDefinition {
        definition_id: validated.spec.definition_id.clone(),
        body: stored_body(body),
        view: view_parts(body, &validated.spec, &validated.compiled),
        schedules: schedule_entries(&validated.spec, now_ms),
        app_triggers: app_trigger_entries(&validated.spec),
    }
}

fn view(record: &DefinitionRecord) -> Value {
    let meta = ViewMeta {
        definition_id: &record.definition_id,
        version: record.version,
        status: record.status.as_str(),
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
    };
    definition_view(&meta, &record.view)
}
