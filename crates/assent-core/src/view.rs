//! The public view of a definition. Nodes, edges, groups and triggers are echoed as they
//! were written, except secrets: `webhookConfig` and the `secret` of an inbound-webhook
//! trigger are write-only and never part of a view.

use crate::compile::Compiled;
use crate::model::DefinitionSpec;
use serde_json::{json, Map, Value};

/// The parts of a definition's view that depend only on its content. They are computed once
/// at write time and stored beside the authored body.
pub fn view_parts(body: &Value, spec: &DefinitionSpec, compiled: &Compiled) -> Value {
    let authored = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "name": spec.name,
        "description": spec.description,
        "scope": {
            "level": spec.scope.level.as_str(),
            "organizationId": spec.scope.organization_id,
            "documentId": spec.scope.document_id,
        },
        "nodes": authored("nodes"),
        "edges": authored("edges"),
        "groups": authored("groups"),
        "compiled": compiled.to_json(),
        "triggers": without_trigger_secrets(authored("triggers")),
        "tags": authored("tags"),
        "custom": authored("custom"),
    })
}

/// The triggers with each `inboundWebhook.secret` left out.
fn without_trigger_secrets(mut triggers: Value) -> Value {
    for trigger in triggers.as_array_mut().into_iter().flatten() {
        if let Some(inbound) = trigger.get_mut("inboundWebhook").and_then(Value::as_object_mut) {
            inbound.remove("secret");
        }
    }
    triggers
}

/// Where a definition stands in its lifecycle, as a view reports it.
pub struct ViewMeta<'a> {
    pub definition_id: &'a str,
    pub version: i64,
    pub status: &'a str,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The whole `DefinitionView`: the stored parts with the lifecycle fields in their places.
pub fn definition_view(meta: &ViewMeta<'_>, parts: &Value) -> Value {
    let part = |key: &str| parts.get(key).cloned().unwrap_or(Value::Null);
    let mut view = Map::new();
    view.insert("definitionId".into(), meta.definition_id.into());
    view.insert("name".into(), part("name"));
    view.insert("description".into(), part("description"));
    view.insert("version".into(), meta.version.into());
    for key in ["scope", "nodes", "edges", "groups", "compiled", "triggers", "tags", "custom"] {
        view.insert(key.into(), part(key));
    }
    view.insert("createdAt".into(), meta.created_at_ms.into());
    view.insert("updatedAt".into(), meta.updated_at_ms.into());
    view.insert("status".into(), meta.status.into());
    Value::Object(view)
}

/// The authored body as stored: the request without `ifVersion`, which belongs to the
/// request and not to the definition.
pub fn stored_body(request: &Value) -> Value {
    let mut body = request.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("ifVersion");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_secrets_stay_out_of_views() {
        let triggers = json!([
            { "triggerId": "a", "inboundWebhook": { "authMode": "hmac", "secret": "s3cret-s3cret-s3cret" } },
            { "triggerId": "b", "schedule": { "cron": "* * * * *", "timezone": "UTC", "enabled": true } },
        ]);
        let shown = without_trigger_secrets(triggers);
        assert_eq!(shown[0]["inboundWebhook"], json!({ "authMode": "hmac" }));
        assert_eq!(shown[1]["schedule"]["cron"], "* * * * *");
        assert_eq!(without_trigger_secrets(Value::Null), Value::Null);
    }
}
