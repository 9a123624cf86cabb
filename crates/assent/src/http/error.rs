//! API errors: the status vocabulary, its HTTP mapping, and the one place where store and
//! validation failures become messages for clients.

use crate::engine::RunError;
use assent_core::engine::{ErrorStatus, ResolveAction};
use assent_core::issue::Issue;
use assent_core::validate::Invalid;
use assent_store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The status names of the error envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    Internal,
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error on its way to becoming an error envelope.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Option<Value>,
    /// Set only for the one exception to the mapping: an oversized body is 413.
    http_status: Option<StatusCode>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), details: None, http_status: None }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// Schema problems: the first one's headline, every one in `details.issues`.
    pub fn schema(issues: Vec<Issue>) -> ApiError {
        let message = issues.first().map_or_else(|| "Invalid request".into(), Issue::headline);
        ApiError::new(Code::InvalidArgument, message).with_details(json!({ "issues": issues }))
    }

    pub fn body_too_large(limit_bytes: usize) -> ApiError {
        let message = format!("Request body is larger than {limit_bytes} bytes");
        ApiError { http_status: Some(StatusCode::PAYLOAD_TOO_LARGE), ..Self::invalid(message) }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidArgument, message)
    }

    /// A failure that is ours, not the client's: the detail goes to the log under a
    /// request id, and the client gets only that id.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        let request_id = new_request_id();
        tracing::error!(request_id = %request_id, "request failed: {detail}");
        ApiError::new(Code::Internal, "Internal error")
            .with_details(json!({ "requestId": request_id }))
    }

    /// A store failure, worded for the definition it concerns.
    pub fn store(err: StoreError, definition_id: &str) -> ApiError {
        match err {
            StoreError::AlreadyExists => ApiError::new(
                Code::AlreadyExists,
                format!("Definition {definition_id} already exists"),
            ),
            StoreError::NotFound => {
                ApiError::new(Code::NotFound, format!("Definition {definition_id} not found"))
            }
            StoreError::VersionConflict { .. } => {
                ApiError::new(Code::FailedPrecondition, err.to_string())
            }
            StoreError::InFlight => ApiError::new(
                Code::FailedPrecondition,
                format!("Definition {definition_id} has executions in flight"),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl ApiError {
    /// A store failure outside the definitions endpoints.
    pub fn from_store(err: StoreError) -> ApiError {
        match err {
            StoreError::InvalidCursor => ApiError::invalid(
                "cursor is not one this server handed out; pass nextCursor back unchanged",
            ),
            StoreError::NotFound => ApiError::new(Code::NotFound, "Not found"),
            other => ApiError::internal(other),
        }
    }

    /// Rewords a NOT_FOUND for the thing that was not found.
    pub fn or_not_found(self, message: &str) -> ApiError {
        if self.code == Code::NotFound {
            return ApiError::new(Code::NotFound, message);
        }
        self
    }

    /// `steps/resolve` answers an unknown execution or step of a `force-*` action with
    /// FAILED_PRECONDITION and a fixed message; `reviewer-*` actions keep NOT_FOUND.
    pub fn for_resolve(self, action: ResolveAction) -> ApiError {
        if self.code == Code::NotFound && !action.is_reviewer() {
            return ApiError::new(
                Code::FailedPrecondition,
                "resolveStep not applied: step-not-found",
            );
        }
        self
    }
}

impl From<RunError> for ApiError {
    fn from(err: RunError) -> ApiError {
        match err {
            RunError::Command(e) => ApiError::new(command_code(e.status), e.message),
            RunError::NotFound(message) => ApiError::new(Code::NotFound, message),
            RunError::Precondition(message) => ApiError::new(Code::FailedPrecondition, message),
            RunError::Store(e) => ApiError::from_store(e),
            RunError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

fn command_code(status: ErrorStatus) -> Code {
    match status {
        ErrorStatus::InvalidArgument => Code::InvalidArgument,
        ErrorStatus::NotFound => Code::NotFound,
        ErrorStatus::FailedPrecondition => Code::FailedPrecondition,
        ErrorStatus::PermissionDenied => Code::PermissionDenied,
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> ApiError {
        match invalid {
            Invalid::Schema(issues) => ApiError::schema(issues),
            Invalid::Rule(message) => ApiError::invalid(message),
            Invalid::Lint(lint) => {
                let list = serde_json::to_value(&lint).unwrap_or(Value::Null);
                let message = format!("Definition linter failed: {list}");
                ApiError::invalid(message).with_details(json!({ "lint": list }))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.http_status.unwrap_or_else(|| self.code.http_status());
        let mut error = json!({ "message": self.message, "status": self.code.as_str() });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

pub(super) fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    // A request id only correlates a log line with a response; a fixed id is better than
    // failing the error path if the random source is unavailable.
    let _ = getrandom::fill(&mut bytes);
    format!("req_{}", hex::encode(bytes))
}
