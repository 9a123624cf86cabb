//! Request authentication: the API key names the workspace, the auth token proves the
//! caller may act in it.

use super::error::{ApiError, ApiResult, Code};
use super::AppState;
use assent_store::{AuthOutcome, Store};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub const API_KEY_HEADER: &str = "x-velt-api-key";
pub const AUTH_TOKEN_HEADER: &str = "x-velt-auth-token";

/// The workspace a request acts in, once its credentials have been checked.
pub struct Workspace(pub String);

impl FromRequestParts<AppState> for Workspace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> ApiResult<Workspace> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let outcome = app
            .store
            .authenticate(header(API_KEY_HEADER), header(AUTH_TOKEN_HEADER))
            .await
            .map_err(ApiError::internal)?;
        match outcome {
            AuthOutcome::Authenticated { workspace_id } => Ok(Workspace(workspace_id)),
            AuthOutcome::UnknownApiKey => {
                Err(ApiError::new(Code::Unauthenticated, "Missing or unknown API key"))
            }
            AuthOutcome::MissingAuthToken => Err(ApiError::invalid("Auth token is required")),
            AuthOutcome::BadAuthToken => Err(ApiError::new(
                Code::PermissionDenied,
                "Auth token is not valid for this API key",
            )),
        }
    }
}
