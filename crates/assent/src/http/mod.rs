//! The HTTP API: one module per resource, each handler short: extract, call, respond.

mod app_inbound;
mod auth;
mod callbacks;
mod definitions;
mod deliveries;
mod envelope;
mod error;
mod executions;
mod health;
mod inbound;
mod names;
mod steps;

use crate::clock::Clock;
use crate::engine::{AgentRunner, Engine, Notifications};
use crate::outbound::Outbound;
use assent_core::address::AddressPolicy;
use assent_store::AnyStore;
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

pub use error::{ApiError, Code};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<AnyStore>,
    pub clock: Arc<dyn Clock>,
    pub address_policy: Arc<AddressPolicy>,
    pub engine: Arc<Engine>,
}

impl AppState {
    /// The state of a server over `store`, with its engine.
    pub fn new(
        store: Arc<AnyStore>,
        clock: Arc<dyn Clock>,
        outbound: Outbound,
        agent_runner: Option<AgentRunner>,
        notifications: Notifications,
    ) -> AppState {
        let address_policy = outbound.policy().clone();
        let engine =
            Engine::new(store.clone(), clock.clone(), outbound, agent_runner, notifications);
        AppState { store, clock, address_policy, engine: Arc::new(engine) }
    }
}

/// Every endpoint, answered under both `/v1/workflow` and `/v2/workflow`; all but the inbound
/// webhook trigger are enveloped.
fn workflow_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/definitions/create", post(definitions::create)),
        ("/definitions/update", post(definitions::update)),
        ("/definitions/get", post(definitions::get)),
        ("/definitions/list", post(definitions::list)),
        ("/definitions/delete", post(definitions::delete)),
        ("/definitions/validate", post(definitions::validate)),
        ("/definitions/getVersion", post(definitions::get_version)),
        ("/executions/dispatch", post(executions::dispatch)),
        ("/executions/get", post(executions::get)),
        ("/executions/list", post(executions::list)),
        ("/executions/cancel", post(executions::cancel)),
        ("/executions/getEvents", post(executions::get_events)),
        ("/steps/recordReviewerDecision", post(steps::record_reviewer_decision)),
        ("/steps/recordAgentResolution", post(steps::record_agent_resolution)),
        ("/steps/cancel", post(steps::cancel)),
        ("/steps/resolve", post(steps::resolve)),
        ("/deliveries/list", post(deliveries::list)),
        ("/deliveries/redeliver", post(deliveries::redeliver)),
        ("/webhook-inbound/trigger", post(inbound::trigger)),
        ("/app-inbound/{provider}", post(app_inbound::receive)),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut router =
        Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    for prefix in ["/v1/workflow", "/v2/workflow"] {
        for (path, handler) in workflow_routes() {
            router = router.route(&format!("{prefix}{path}"), handler);
        }
        let callback_path = format!("{prefix}/webhook-inbound/callback");
        router = router.route(&callback_path, post(callbacks::callback));
    }
    router
        .fallback(no_such_endpoint)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One line per request at debug level: what was asked, how it ended, how long it took.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = next.run(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, latency_ms, "request");
    response
}

async fn no_such_endpoint(method: Method, uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("No such endpoint: {method} {}", uri.path()))
}
