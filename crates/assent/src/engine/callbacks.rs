//! Callbacks of async webhook steps (DECISIONS §8): the URL they are sent to, the tokens
//! that authorise them, and applying the report they carry.
//!
//! A token names the workspace, execution, step and attempt it was minted for, with an
//! HMAC-SHA256 of those keyed by the store's server secret, so every process of a
//! deployment checks it without a lookup. Whether it still works is the step's business:
//! the core refuses a report for a step that no longer awaits that attempt.

use super::{Engine, RunError};
use assent_core::engine::Command;
use assent_core::schema::callback::CallbackReport;
use assent_store::Store;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::OnceLock;
use tokio::sync::OnceCell;

/// Where callbacks are POSTed, under the server's public URL (`/v1/...` answers as well).
pub const CALLBACK_PATH: &str = "/v2/workflow/webhook-inbound/callback";
const TOKEN_VERSION: &str = "v1";
/// Keeps these MACs apart from anything else the server secret may key one day.
const MAC_CONTEXT: &[u8] = b"assent webhook callback v1\n";
/// Longer tokens are not ours and are refused before any work.
pub const TOKEN_MAX_CHARS: usize = 2048;
/// Random bytes of a server secret candidate.
const SECRET_BYTES: usize = 32;

/// What a valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackClaims {
    pub workspace_id: String,
    pub execution_id: String,
    pub step_id: String,
    pub attempt: u32,
}

/// `v1.<hex of the claims as JSON>.<hex of their HMAC>`.
pub fn mint_token(secret: &str, claims: &CallbackClaims) -> String {
    let payload = json!([claims.workspace_id, claims.execution_id, claims.step_id, claims.attempt])
        .to_string();
    let tag = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!("{TOKEN_VERSION}.{}.{}", hex::encode(payload), hex::encode(tag))
}

/// The claims of a token this secret minted; the MAC is compared in constant time.
pub fn verify_token(secret: &str, token: &str) -> Option<CallbackClaims> {
    if token.len() > TOKEN_MAX_CHARS {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(TOKEN_VERSION), Some(payload), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let payload = hex::decode(payload).ok()?;
    let tag = hex::decode(tag).ok()?;
    mac(secret, &payload).verify_slice(&tag).ok()?;
    let (workspace_id, execution_id, step_id, attempt) = serde_json::from_slice(&payload).ok()?;
    Some(CallbackClaims { workspace_id, execution_id, step_id, attempt })
}

fn mac(secret: &str, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(MAC_CONTEXT);
    mac.update(payload);
    mac
}

/// The engine's part of callbacks: the public base URL and the server secret.
#[derive(Default)]
pub(super) struct Callbacks {
    public_url: OnceLock<String>,
    secret: OnceCell<String>,
}

/// Why a callback was not applied.
#[derive(Debug, thiserror::Error)]
pub enum CallbackRefusal {
    #[error("the callback token is not valid")]
    TokenInvalid,
    #[error("the step is not waiting for this callback")]
    NotWaiting,
    #[error(transparent)]
    Run(RunError),
}

impl Engine {
    /// Sets the base URL callback URLs are made from (`--public-url`); the first call wins.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.callbacks.public_url.set(url.trim_end_matches('/').to_owned());
    }

    /// The URL async webhook endpoints POST to, once the public URL is known.
    pub fn callback_url(&self) -> Option<String> {
        self.callbacks.public_url.get().map(|base| format!("{base}{CALLBACK_PATH}"))
    }

    /// The store's server secret: this process's random candidate unless another process
    /// (or an earlier start) made one first. Read once, then kept.
    pub async fn server_secret(&self) -> Result<&str, RunError> {
        let secret = self
            .callbacks
            .secret
            .get_or_try_init(|| async {
                let mut candidate = [0u8; SECRET_BYTES];
                getrandom::fill(&mut candidate)
                    .map_err(|e| RunError::Internal(format!("no random source: {e}")))?;
                let kept = self.store.server_secret(&hex::encode(candidate)).await?;
                Ok::<_, RunError>(kept)
            })
            .await?;
        Ok(secret)
    }

    pub async fn callback_token(&self, claims: &CallbackClaims) -> Result<String, RunError> {
        Ok(mint_token(self.server_secret().await?, claims))
    }

    /// Checks a token; `TokenInvalid` for anything this deployment did not mint.
    pub async fn verify_callback_token(
        &self,
        token: &str,
    ) -> Result<CallbackClaims, CallbackRefusal> {
        let secret = self.server_secret().await.map_err(CallbackRefusal::Run)?;
        verify_token(secret, token).ok_or(CallbackRefusal::TokenInvalid)
    }

    /// Applies an endpoint's report to the step its token names; the answer is `{ok: true}`
    /// or, for the report the step already took, `{ok: true, duplicate: true}`.
    pub async fn webhook_callback(
        &self,
        claims: CallbackClaims,
        report: CallbackReport,
    ) -> Result<Value, CallbackRefusal> {
        let command =
            Command::WebhookCallback { step_id: claims.step_id, attempt: claims.attempt, report };
        match self.apply(&claims.workspace_id, &claims.execution_id, command).await {
            Ok(answer) => Ok(answer),
            Err(RunError::Command(_) | RunError::NotFound(_)) => Err(CallbackRefusal::NotWaiting),
            Err(other) => Err(CallbackRefusal::Run(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> CallbackClaims {
        CallbackClaims {
            workspace_id: "ws_1".into(),
            execution_id: "exec_1_abcdefgh".into(),
            step_id: "step_hook_1_abcdef".into(),
            attempt: 2,
        }
    }

    #[test]
    fn a_token_verifies_under_its_secret_only() {
        let token = mint_token("secret-a", &claims());
        assert_eq!(verify_token("secret-a", &token), Some(claims()));
        assert_eq!(verify_token("secret-b", &token), None);
    }

    #[test]
    fn altered_tokens_are_refused() {
        let token = mint_token("secret-a", &claims());
        let (head, tag) = token.rsplit_once('.').unwrap();
        let other = mint_token("secret-a", &CallbackClaims { attempt: 3, ..claims() });
        let other_payload = other.split('.').nth(1).unwrap();
        let last = if tag.ends_with('0') { '1' } else { '0' };
        let flipped_tag = format!("{head}.{}{last}", &tag[..tag.len() - 1]);
        let cases = [
            String::new(),
            "v1..".into(),
            token.replacen("v1.", "v2.", 1),
            format!("{token}.x"),
            flipped_tag,
            format!("{head}.{}", &tag[..32]),
            format!("v1.{other_payload}.{tag}"),
            "v1.zz.zz".into(),
            "x".repeat(TOKEN_MAX_CHARS + 1),
        ];
        for case in cases {
            assert_eq!(verify_token("secret-a", &case), None, "{case}");
        }
    }
}
