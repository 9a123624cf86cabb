//! `assent connection add|list|remove`: which GitHub App installations and Vercel integration
//! configurations deliver webhooks to which workspace, and the secret they are signed with.
//! The secret goes in and is never printed.

use super::explain;
use assent_core::model::AppProvider;
use assent_store::{AnyStore, ConnectionRecord, NewConnection, Store, StoreError};
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

/// Longest installation reference, as app triggers may name one.
const INSTALLATION_REF_CHARS_MAX: usize = 256;
/// Longest webhook secret.
const WEBHOOK_SECRET_CHARS_MAX: usize = 512;

#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// Connect an installation to a workspace; its webhooks then start that workspace's runs.
    Add {
        provider: Provider,
        #[arg(long)]
        workspace: String,
        /// GitHub: the App installation id. Vercel: the integration configuration id.
        #[arg(long)]
        installation_ref: String,
        /// The secret the provider signs this installation's webhooks with.
        #[arg(long, env = "ASSENT_CONNECTION_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: String,
    },
    /// List connections, without their secrets.
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Remove a connection; definitions naming the installation stay, but receive nothing.
    Remove {
        provider: Provider,
        #[arg(long)]
        installation_ref: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Provider {
    Github,
    Vercel,
}

impl From<Provider> for AppProvider {
    fn from(provider: Provider) -> AppProvider {
        match provider {
            Provider::Github => AppProvider::Github,
            Provider::Vercel => AppProvider::Vercel,
        }
    }
}

/// Runs one connection command; returns the JSON it prints.
pub async fn run(
    store: &AnyStore,
    command: &ConnectionCommand,
    now_ms: i64,
) -> Result<Value, String> {
    match command {
        ConnectionCommand::Add { provider, workspace, installation_ref, webhook_secret } => {
            check_installation_ref(installation_ref)?;
            check_webhook_secret(webhook_secret)?;
            let new = NewConnection {
                workspace_id: workspace.clone(),
                provider: (*provider).into(),
                installation_ref: installation_ref.clone(),
                webhook_secret: webhook_secret.clone(),
            };
            add(store, new, now_ms).await
        }
        ConnectionCommand::List { workspace } => list(store, workspace.as_deref()).await,
        ConnectionCommand::Remove { provider, installation_ref } => {
            let provider = AppProvider::from(*provider);
            match store.remove_connection(provider, installation_ref).await {
                Ok(removed) => Ok(json!({ "removed": true, "connection": record_json(&removed) })),
                Err(StoreError::NotFound) => Err(format!(
                    "not found: no {} installation {installation_ref:?} is connected",
                    provider.as_str()
                )),
                Err(e) => Err(explain(e)),
            }
        }
    }
}

async fn add(store: &AnyStore, new: NewConnection, now_ms: i64) -> Result<Value, String> {
    let (provider, installation_ref) = (new.provider, new.installation_ref.clone());
    let workspace_id = new.workspace_id.clone();
    match store.add_connection(new, now_ms).await {
        Ok(record) => Ok(record_json(&record)),
        Err(StoreError::NotFound) => Err(format!("not found: no workspace {workspace_id}")),
        Err(StoreError::AlreadyExists) => {
            let holder =
                store.get_connection(provider, &installation_ref).await.map_err(explain)?;
            let holder = holder.map_or_else(|| "a workspace".into(), |c| c.record.workspace_id);
            Err(format!(
                "the {} installation {installation_ref:?} is already connected to {holder}; \
                 remove that connection first",
                provider.as_str()
            ))
        }
        Err(e) => Err(explain(e)),
    }
}

async fn list(store: &AnyStore, workspace: Option<&str>) -> Result<Value, String> {
    if let Some(workspace_id) = workspace {
        let workspaces = store.list_workspaces().await.map_err(explain)?;
        if !workspaces.iter().any(|w| w.workspace_id == workspace_id) {
            return Err(format!("not found: no workspace {workspace_id}"));
        }
    }
    let records = store.list_connections(workspace).await.map_err(explain)?;
    Ok(Value::Array(records.iter().map(record_json).collect()))
}

fn record_json(record: &ConnectionRecord) -> Value {
    json!({
        "workspaceId": record.workspace_id,
        "provider": record.provider.as_str(),
        "installationRef": record.installation_ref,
        "createdAt": record.created_at_ms,
    })
}

fn check_installation_ref(installation_ref: &str) -> Result<(), String> {
    let chars = installation_ref.chars().count();
    let plain = installation_ref.trim() == installation_ref
        && !installation_ref.chars().any(char::is_control);
    if chars == 0 || chars > INSTALLATION_REF_CHARS_MAX || !plain {
        return Err(format!(
            "--installation-ref must be 1 to {INSTALLATION_REF_CHARS_MAX} characters, without \
             surrounding spaces or control characters"
        ));
    }
    Ok(())
}

fn check_webhook_secret(secret: &str) -> Result<(), String> {
    let chars = secret.chars().count();
    if chars == 0 || chars > WEBHOOK_SECRET_CHARS_MAX {
        return Err(format!("--webhook-secret must be 1 to {WEBHOOK_SECRET_CHARS_MAX} characters"));
    }
    Ok(())
}
