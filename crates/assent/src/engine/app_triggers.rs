//! App triggers: a webhook delivery from a GitHub App or a Vercel integration is traced to
//! its connection (and so to a workspace), held to the connection's secret (the core's `app`
//! rules), and starts one run of each definition whose app trigger it fires, each under a
//! key of its own. Also the write-time rule that an app trigger's installation is connected.

use super::triggers::{triggered_dispatch, TRIGGER_KEY_TTL_MS};
use super::{Engine, RunError};
use assent_core::app::{self, Delivery};
use assent_core::engine::CommandError;
use assent_core::ids;
use assent_core::inbound::{Headers, Refusal};
use assent_core::model::{AppProvider, DefinitionSpec};
use assent_store::{AppTriggerEntry, Store, StoreError};
use serde_json::Value;
use tracing::Instrument;

/// The most definitions one delivery is held against; the index lists them by id, and
/// those past the limit are skipped with a warning.
pub const DEFINITIONS_PER_DELIVERY_MAX: u32 = 100;

/// A request to an app-inbound endpoint. No API key: the installation it names leads to
/// the workspace.
pub struct AppDelivery<'a, H: Headers> {
    pub provider: AppProvider,
    /// The `installationRef` of the webhook's address, for bodies that name none.
    pub installation_in_query: Option<&'a str>,
    /// The body exactly as it arrived: the signature covers these bytes.
    pub raw_body: &'a [u8],
    /// The same body, parsed: a JSON object.
    pub body: Value,
    pub headers: &'a H,
}

/// Why a delivery was not let through to the definitions.
#[derive(Debug)]
pub enum AppRefusal {
    /// Neither the body nor the address names an installation.
    InstallationMissing,
    /// No connection for this provider and installation.
    InstallationNotFound,
    Refused(Refusal),
    /// Signed, but without the provider's delivery id.
    DeliveryIdMissing,
    Failed(RunError),
}

/// A run a delivery started, or the earlier one a redelivery answers with.
#[derive(Debug)]
pub struct AppRun {
    pub definition_id: String,
    pub execution_id: String,
    pub deduplicated: bool,
}

/// What a delivery did, definition by definition.
#[derive(Debug, Default)]
pub struct AppRuns {
    pub started: Vec<AppRun>,
    /// `(definitionId, reason)` of each definition whose trigger fired but which cannot
    /// start a run (a webhook node without a secret).
    pub refused: Vec<(String, String)>,
}

impl Engine {
    /// Starts the runs a provider's delivery calls for, or answers a redelivery with them.
    pub async fn receive_app_delivery<H: Headers>(
        &self,
        req: AppDelivery<'_, H>,
    ) -> Result<AppRuns, AppRefusal> {
        let provider = req.provider;
        let from_query = req.installation_in_query.filter(|r| !r.is_empty()).map(str::to_owned);
        let installation = app::installation_ref(provider, &req.body).or(from_query);
        let installation = installation.ok_or(AppRefusal::InstallationMissing)?;
        let connection = self.store.get_connection(provider, &installation).await;
        let connection = connection.map_err(store_failed)?;
        let connection = connection.ok_or(AppRefusal::InstallationNotFound)?;
        let secret = &connection.webhook_secret;
        app::authenticate(provider, secret, req.raw_body, req.headers)
            .map_err(AppRefusal::Refused)?;

        let delivery_id = app::delivery_id(provider, &req.body, req.headers);
        let delivery_id = delivery_id.ok_or(AppRefusal::DeliveryIdMissing)?;
        let event = app::event_name(provider, &req.body, req.headers);
        let delivery = Delivery {
            provider,
            installation_ref: &installation,
            delivery_id: &delivery_id,
            event: event.as_deref(),
            body: &req.body,
        };
        let workspace_id = &connection.record.workspace_id;
        let span = tracing::info_span!(
            "app_delivery",
            workspace_id = %workspace_id,
            provider = provider.as_str(),
            delivery_id = %delivery_id
        );
        self.start_app_runs(workspace_id, &delivery).instrument(span).await
    }

    /// One run for each definition of the workspace whose app trigger the delivery fires.
    async fn start_app_runs(
        &self,
        workspace_id: &str,
        delivery: &Delivery<'_>,
    ) -> Result<AppRuns, AppRefusal> {
        let (provider, installation) = (delivery.provider, delivery.installation_ref);
        let limit = DEFINITIONS_PER_DELIVERY_MAX + 1;
        let found = self.store.app_trigger_definitions(workspace_id, provider, installation, limit);
        let mut definition_ids = found.await.map_err(store_failed)?;
        if definition_ids.len() > DEFINITIONS_PER_DELIVERY_MAX as usize {
            tracing::warn!(
                installation_ref = %installation,
                "more than {DEFINITIONS_PER_DELIVERY_MAX} definitions name this installation; \
                 those after {} were not considered",
                definition_ids[DEFINITIONS_PER_DELIVERY_MAX as usize - 1]
            );
            definition_ids.truncate(DEFINITIONS_PER_DELIVERY_MAX as usize);
        }

        let mut runs = AppRuns::default();
        for definition_id in definition_ids {
            self.start_app_run(workspace_id, definition_id, delivery, &mut runs).await?;
        }
        Ok(runs)
    }

    /// Starts the definition's run when one of its app triggers fires, noting the outcome.
    async fn start_app_run(
        &self,
        workspace_id: &str,
        definition_id: String,
        delivery: &Delivery<'_>,
        runs: &mut AppRuns,
    ) -> Result<(), AppRefusal> {
        let record = self.store.get_definition(workspace_id, &definition_id).await;
        // Deleted since the index was read: it no longer takes deliveries.
        let Some(record) = record.map_err(store_failed)? else { return Ok(()) };
        let runnable = self.definitions.runnable(workspace_id, &record, &self.policy);
        let runnable = runnable.map_err(AppRefusal::Failed)?;
        let Some(trigger_id) = app::first_fired(&runnable.spec, delivery) else { return Ok(()) };

        let provider = delivery.provider.as_str();
        let key = ids::app_key(provider, delivery.delivery_id, &definition_id);
        let context = delivery.trigger_context(trigger_id);
        let dispatch = triggered_dispatch(&runnable.spec, Some(key), context);
        let expires_at_ms = self.clock.now_ms().saturating_add(TRIGGER_KEY_TTL_MS);
        match self.dispatch_keyed(workspace_id, dispatch, Some(expires_at_ms)).await {
            Ok(run) => {
                let (execution_id, deduplicated) = (&run.execution_id, run.deduplicated);
                tracing::info!(
                    %definition_id, %trigger_id, %execution_id, deduplicated, "run started"
                );
                let execution_id = run.execution_id;
                runs.started.push(AppRun { definition_id, execution_id, deduplicated });
            }
            Err(RunError::NotFound(_)) => {}
            Err(
                RunError::Precondition(reason)
                | RunError::Command(CommandError { message: reason, .. }),
            ) => {
                tracing::warn!(%definition_id, %trigger_id, "no run started: {reason}");
                runs.refused.push((definition_id, reason));
            }
            Err(other) => return Err(AppRefusal::Failed(other)),
        }
        Ok(())
    }

    /// A definition's app triggers may name only installations connected to its workspace:
    /// FAILED_PRECONDITION otherwise, naming the first trigger whose installation is not.
    pub async fn check_app_connections(
        &self,
        workspace_id: &str,
        spec: &DefinitionSpec,
    ) -> Result<(), RunError> {
        for (trigger_id, provider, installation) in app::installations(spec) {
            let connection = self.store.get_connection(provider, installation).await?;
            // Connected to another workspace reads the same as not connected at all.
            let connected_here = connection.is_some_and(|c| c.record.workspace_id == workspace_id);
            if !connected_here {
                return Err(RunError::Precondition(format!(
                    "appTrigger installationRef {installation:?} of trigger {trigger_id} is not \
                     connected: connect the {} installation to this workspace first",
                    provider.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// The app trigger index entries of a definition: each installation its app triggers name,
/// once.
pub fn app_trigger_entries(spec: &DefinitionSpec) -> Vec<AppTriggerEntry> {
    let installations = app::installations(spec).into_iter();
    installations
        .map(|(_, provider, installation)| AppTriggerEntry {
            provider,
            installation_ref: installation.to_owned(),
        })
        .collect()
}

fn store_failed(e: StoreError) -> AppRefusal {
    AppRefusal::Failed(RunError::Store(e))
}
