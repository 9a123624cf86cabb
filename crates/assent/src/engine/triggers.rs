//! Inbound webhook triggers: find the trigger a request names, hold the request to it (the
//! core's `inbound` rules), and start the run under the trigger's idempotency key.

use super::{Dispatched, Engine, RunError, Runnable};
use assent_core::ids;
use assent_core::inbound::{self, Headers, Refusal};
use assent_core::model::{DefinitionSpec, InboundWebhook};
use assent_core::schema::executions::DispatchRequest;
use assent_store::{DefinitionStatus, Store};
use serde_json::{Map, Value};
use std::sync::Arc;

/// How long the key made from a source event's id deduplicates it (DECISIONS §4).
pub(super) const TRIGGER_KEY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// A request to the inbound trigger endpoint, once its API key named the workspace.
pub struct Inbound<'a, H: Headers> {
    pub workspace_id: &'a str,
    pub definition_id: &'a str,
    pub trigger_id: &'a str,
    /// The body exactly as it arrived: signatures cover these bytes.
    pub raw_body: &'a [u8],
    /// The same body, parsed.
    pub body: Map<String, Value>,
    pub headers: &'a H,
}

/// Why an inbound request started no run.
#[derive(Debug)]
pub enum InboundOutcome {
    DefinitionNotFound,
    DefinitionDeleted,
    /// The definition has no inbound webhook trigger with this id.
    TriggerNotFound,
    Refused(Refusal),
    /// The trigger's `allowedEvents` do not take this event.
    EventIgnored,
    /// The definition cannot start a run (no roots, a webhook node without a secret).
    DispatchRefused(String),
    Failed(RunError),
}

impl Engine {
    /// Starts a run for an inbound webhook request, or answers a repeated source event with
    /// the run it started.
    pub async fn trigger_inbound<H: Headers>(
        &self,
        req: Inbound<'_, H>,
    ) -> Result<Dispatched, InboundOutcome> {
        let runnable = self.inbound_definition(req.workspace_id, req.definition_id).await?;
        let spec = &runnable.spec;
        let hook = inbound_hook(spec, req.trigger_id).ok_or(InboundOutcome::TriggerNotFound)?;
        inbound::authenticate(hook, req.raw_body, req.headers).map_err(InboundOutcome::Refused)?;
        if !inbound::admits_event(hook, &req.body, req.headers) {
            return Err(InboundOutcome::EventIgnored);
        }

        let source_id = inbound::source_event_id(hook, &req.body, req.headers);
        let idempotency_key = source_id.map(|id| ids::trigger_key(req.trigger_id, &id));
        let trigger_context =
            inbound::trigger_context(hook, req.body).map_err(InboundOutcome::Refused)?;
        let dispatch = triggered_dispatch(spec, idempotency_key, trigger_context);
        let expires_at_ms = self.clock.now_ms().saturating_add(TRIGGER_KEY_TTL_MS);
        let dispatched = self.dispatch_keyed(req.workspace_id, dispatch, Some(expires_at_ms)).await;
        dispatched.map_err(|e| match e {
            RunError::NotFound(_) => InboundOutcome::DefinitionNotFound,
            RunError::Precondition(message) => InboundOutcome::DispatchRefused(message),
            RunError::Command(e) => InboundOutcome::DispatchRefused(e.message),
            other => InboundOutcome::Failed(other),
        })
    }

    /// The active definition, ready to run; a deleted one is told from a missing one.
    async fn inbound_definition(
        &self,
        workspace_id: &str,
        definition_id: &str,
    ) -> Result<Arc<Runnable>, InboundOutcome> {
        let failed = |e: assent_store::StoreError| InboundOutcome::Failed(RunError::Store(e));
        let record =
            self.store.get_definition(workspace_id, definition_id).await.map_err(failed)?;
        let Some(record) = record else {
            let status = self.store.definition_status(workspace_id, definition_id).await;
            return Err(match status.map_err(failed)? {
                Some(DefinitionStatus::Tombstoned) => InboundOutcome::DefinitionDeleted,
                _ => InboundOutcome::DefinitionNotFound,
            });
        };
        let runnable = self.definitions.runnable(workspace_id, &record, &self.policy);
        runnable.map_err(InboundOutcome::Failed)
    }
}

/// The first trigger with this id that is an inbound webhook.
fn inbound_hook<'a>(spec: &'a DefinitionSpec, trigger_id: &str) -> Option<&'a InboundWebhook> {
    let trigger = spec.triggers.iter().filter(|t| t.trigger_id == trigger_id);
    trigger.filter_map(|t| t.inbound_webhook.as_ref()).next()
}

/// A dispatch made by a trigger: the run takes the definition's scope, never ids from the
/// payload.
pub(super) fn triggered_dispatch(
    spec: &DefinitionSpec,
    idempotency_key: Option<String>,
    trigger_context: Map<String, Value>,
) -> DispatchRequest {
    DispatchRequest {
        definition_id: spec.definition_id.clone(),
        idempotency_key,
        correlation_id: None,
        trigger_context,
        organization_id: spec.scope.organization_id.clone(),
        document_id: spec.scope.document_id.clone(),
        folder_id: None,
        webhook: None,
    }
}
