//! Workspace credentials: random secrets handed out once and stored only as hashes.

use sha2::{Digest, Sha256};

/// Credentials printed once when a workspace is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredentials {
    pub workspace_id: String,
    pub api_key: String,
    pub auth_token: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceInfo {
    pub workspace_id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub live_api_keys: i64,
    pub live_auth_tokens: i64,
}

/// What a request's credentials amount to, in the order the API checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The API key is missing, unknown or revoked.
    UnknownApiKey,
    /// The key is good but no auth token was sent.
    MissingAuthToken,
    /// The token is not a live token of the key's workspace.
    BadAuthToken,
    Authenticated {
        workspace_id: String,
    },
}

/// Random bytes of a new secret: 192 bits.
const SECRET_BYTES: usize = 24;

/// A new random secret with a readable prefix, such as `ak_…` or `at_…`.
pub(crate) fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!("{prefix}_{}", hex::encode(bytes))
}

/// The stored form of a secret. Secrets carry 192 random bits, so a plain SHA-256 is
/// enough: there is nothing to brute-force that a slow hash would protect.
pub(crate) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn new_workspace_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    format!("ws_{}", hex::encode(bytes))
}

/// The two kinds of secret a workspace hands out; each has a table of the same shape.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SecretKind {
    ApiKey,
    AuthToken,
}

impl SecretKind {
    pub(crate) fn table(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "api_keys",
            SecretKind::AuthToken => "auth_tokens",
        }
    }

    pub(crate) fn new_secret(self) -> String {
        match self {
            SecretKind::ApiKey => new_secret("ak"),
            SecretKind::AuthToken => new_secret("at"),
        }
    }
}
