//! The HTTP API: one module per resource, each handler short: extract, call, respond.

mod auth;
mod definitions;
mod envelope;
mod error;
mod health;

use crate::clock::Clock;
use assent_core::address::AddressPolicy;
use assent_store::AnyStore;
use axum::http::{Method, Uri};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use std::sync::Arc;

pub use error::{ApiError, Code};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<AnyStore>,
    pub clock: Arc<dyn Clock>,
    pub address_policy: Arc<AddressPolicy>,
}

/// Every enveloped endpoint, answered under both `/v1/workflow` and `/v2/workflow`.
fn workflow_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/definitions/create", post(definitions::create)),
        ("/definitions/update", post(definitions::update)),
        ("/definitions/get", post(definitions::get)),
        ("/definitions/list", post(definitions::list)),
        ("/definitions/delete", post(definitions::delete)),
        ("/definitions/validate", post(definitions::validate)),
        ("/definitions/getVersion", post(definitions::get_version)),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut router =
        Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    for prefix in ["/v1/workflow", "/v2/workflow"] {
        for (path, handler) in workflow_routes() {
            router = router.route(&format!("{prefix}{path}"), handler);
        }
    }
    router.fallback(no_such_endpoint).with_state(state)
}

async fn no_such_endpoint(method: Method, uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("No such endpoint: {method} {}", uri.path()))
}
