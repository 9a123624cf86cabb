//! The command line: `assent serve`, and the workspace, key, token and connection commands
//! whose JSON output scripts can rely on.

mod connection;

use crate::bootstrap::credentials_json;
use crate::clock::{Clock, SystemClock};
use crate::engine::{NotificationSettings, SLACK_API_BASE_URL_DEFAULT};
use crate::serve::ServeConfig;
use assent_store::{AnyStore, Store, StoreError};
use clap::{Args, Parser, Subcommand, ValueEnum};
use connection::ConnectionCommand;
use serde_json::json;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "assent", version, about = "A self-hostable approval workflow engine")]
pub struct Cli {
    /// Where the data lives: `sqlite:PATH` or `postgres://...`.
    /// Defaults to `sqlite:<data-dir>/assent.db`.
    #[arg(long, env = "ASSENT_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded database and the first start's credentials file.
    #[arg(long, env = "ASSENT_DATA_DIR", default_value = "./assent-data", global = true)]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Create and list workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Create and revoke API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create and revoke auth tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Connect GitHub App installations and Vercel integrations to workspaces.
    #[command(subcommand)]
    Connection(ConnectionCommand),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ASSENT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Log format.
    #[arg(long, env = "ASSENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Do not create a first workspace when the store has none.
    #[arg(long)]
    pub no_bootstrap: bool,

    /// Base URL of the agent runner that agent nodes call (`http://host:port`).
    #[arg(long, env = "ASSENT_AGENT_RUNNER_URL")]
    pub agent_runner_url: Option<String>,

    /// A host name, IP address or CIDR range that webhooks may reach although the address
    /// rules refuse it (a listed name's answers are not range-checked). Repeatable; the
    /// variable takes a comma-separated list. The https rule still applies.
    #[arg(long, env = "ASSENT_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,

    /// A PEM file of CA certificates trusted for webhooks, Slack, the agent runner and the SMTP
    /// server, besides the built-in roots.
    #[arg(long, env = "ASSENT_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,

    /// The base URL at which webhook endpoints reach this server, for the callback URL of
    /// async webhook nodes (`https://assent.example.com`, a path prefix allowed). Defaults to
    /// `http://<listen address>`.
    #[arg(long, env = "ASSENT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The SMTP server email notifications go through:
    /// `smtp://[user:password@]host[:port][?starttls=opportunistic|required|never]` (port 587,
    /// STARTTLS when offered, required with credentials) or `smtps://...` (TLS from the start,
    /// port 465). Prefer the variable: a password on the command line is visible to others.
    #[arg(long, env = "ASSENT_SMTP_URL", hide_env_values = true, requires = "smtp_from")]
    pub smtp_url: Option<String>,

    /// The sender of email notifications: `address` or `Name <address>`.
    #[arg(long, env = "ASSENT_SMTP_FROM", requires = "smtp_url")]
    pub smtp_from: Option<String>,

    /// The Slack bot token that notifications to a channel id post with (`chat.postMessage`).
    /// Prefer the variable: a token on the command line is visible to others.
    #[arg(long, env = "ASSENT_SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<String>,

    /// The base URL of Slack's Web API, held to the address rules like every webhook.
    #[arg(long, env = "ASSENT_SLACK_API_BASE_URL", default_value = SLACK_API_BASE_URL_DEFAULT)]
    pub slack_api_base_url: String,

    /// Let webhooks use plain http. For local development only.
    #[arg(long, env = "ASSENT_WEBHOOK_ALLOW_HTTP", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub webhook_allow_http: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace; prints its id, an API key and an auth token once.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List workspaces.
    List,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints it once.
    Create {
        #[arg(long)]
        workspace: String,
    },
    /// Revoke an API key.
    Revoke { key: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an auth token; prints it once.
    Create {
        #[arg(long)]
        workspace: String,
    },
    /// Revoke an auth token.
    Revoke { token: String },
}

impl Cli {
    pub fn database_url(&self) -> String {
        let default = || format!("sqlite:{}", self.data_dir.join("assent.db").display());
        self.database_url.clone().unwrap_or_else(default)
    }

    pub fn serve_config(&self, args: &ServeArgs) -> ServeConfig {
        ServeConfig {
            listen: args.listen.clone(),
            database_url: self.database_url(),
            data_dir: self.data_dir.clone(),
            bootstrap: !args.no_bootstrap,
            agent_runner_url: args.agent_runner_url.clone(),
            webhook_allow: args.webhook_allow.clone(),
            webhook_ca_file: args.webhook_ca_file.clone(),
            webhook_allow_http: args.webhook_allow_http,
            public_url: args.public_url.clone(),
            notifications: NotificationSettings {
                smtp_url: args.smtp_url.clone(),
                smtp_from: args.smtp_from.clone(),
                slack_bot_token: args.slack_bot_token.clone(),
                slack_api_base_url: args.slack_api_base_url.clone(),
            },
        }
    }
}

/// Runs one of the administrative commands, printing its JSON result on stdout.
pub async fn run_admin(database_url: &str, command: &Command) -> Result<(), String> {
    let store = AnyStore::open(database_url).await.map_err(|e| e.to_string())?;
    let now_ms = SystemClock.now_ms();
    let output = match command {
        Command::Serve(_) => unreachable!("serve is not an administrative command"),
        Command::Workspace(WorkspaceCommand::Create { name }) => {
            credentials_json(&store.create_workspace(name, now_ms).await.map_err(explain)?)
        }
        Command::Workspace(WorkspaceCommand::List) => workspace_list(&store).await?,
        Command::Key(KeyCommand::Create { workspace }) => {
            let api_key = store.create_api_key(workspace, now_ms).await.map_err(explain)?;
            json!({ "workspaceId": workspace, "apiKey": api_key }).to_string()
        }
        Command::Key(KeyCommand::Revoke { key }) => {
            store.revoke_api_key(key, now_ms).await.map_err(explain)?;
            json!({ "revoked": true }).to_string()
        }
        Command::Token(TokenCommand::Create { workspace }) => {
            let token = store.create_auth_token(workspace, now_ms).await.map_err(explain)?;
            json!({ "workspaceId": workspace, "authToken": token }).to_string()
        }
        Command::Token(TokenCommand::Revoke { token }) => {
            store.revoke_auth_token(token, now_ms).await.map_err(explain)?;
            json!({ "revoked": true }).to_string()
        }
        Command::Connection(command) => connection::run(&store, command, now_ms).await?.to_string(),
    };
    println!("{output}");
    Ok(())
}

async fn workspace_list(store: &AnyStore) -> Result<String, String> {
    let workspaces = store.list_workspaces().await.map_err(explain)?;
    let items: Vec<_> = workspaces
        .iter()
        .map(|w| {
            json!({
                "workspaceId": w.workspace_id,
                "name": w.name,
                "createdAt": w.created_at_ms,
                "liveApiKeys": w.live_api_keys,
                "liveAuthTokens": w.live_auth_tokens,
            })
        })
        .collect();
    Ok(serde_json::Value::Array(items).to_string())
}

fn explain(err: StoreError) -> String {
    match err {
        StoreError::NotFound => "not found: no such workspace, live key or live token".into(),
        other => other.to_string(),
    }
}
