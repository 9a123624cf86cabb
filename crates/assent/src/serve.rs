//! `assent serve`: open the store, bootstrap, listen, and shut down cleanly on a signal.

use crate::clock::{Clock, SystemClock};
use crate::engine::{
    run_deliveries, run_schedules, run_timers, AgentRunner, NotificationSettings, Notifications,
};
use crate::http::{router, AppState};
use crate::outbound::{Outbound, OutboundOptions, SystemResolver};
use assent_core::address::AddressPolicy;
use assent_store::AnyStore;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct ServeConfig {
    pub listen: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub bootstrap: bool,
    pub agent_runner_url: Option<String>,
    /// `--webhook-allow` entries: hosts and CIDR ranges exempt from the address ranges.
    pub webhook_allow: Vec<String>,
    pub webhook_ca_file: Option<PathBuf>,
    pub webhook_allow_http: bool,
    /// `--public-url`: the base of the callback URL handed to async webhook endpoints.
    pub public_url: Option<String>,
    /// SMTP and Slack; SMTP over TLS also trusts `webhook_ca_file`.
    pub notifications: NotificationSettings,
}

/// Runs the server until SIGINT or SIGTERM. Options are checked before the store is
/// touched, so a bad one changes nothing.
pub async fn run(config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    let public_url = config.public_url.as_deref().map(public_url).transpose()?;
    let (outbound, agent_runner, notifications) = outbound_clients(&config)?;
    let store = AnyStore::open(&config.database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if config.bootstrap {
        crate::bootstrap::first_workspace(&store, clock.as_ref(), &config.data_dir).await?;
    }
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(&config.listen).await?;
    let state = AppState::new(Arc::new(store), clock, outbound, agent_runner, notifications);
    if let Some(url) = &public_url {
        state.engine.set_public_url(url);
    }
    tracing::info!(listen = %listener.local_addr()?, "assent is serving");
    serve(listener, state, shutdown).await?;
    tracing::info!("assent stopped");
    Ok(())
}

/// What the server calls out with: the guarded client for users' addresses, the agent
/// runner, and the notification channels, from the `--webhook-*`, `--agent-runner-url`,
/// `--smtp-*` and `--slack-*` options.
fn outbound_clients(
    config: &ServeConfig,
) -> Result<(Outbound, Option<AgentRunner>, Notifications), String> {
    let extra_ca_pem = match &config.webhook_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("--webhook-ca-file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let agent_runner = config
        .agent_runner_url
        .as_deref()
        .map(|url| AgentRunner::new(url, extra_ca_pem.as_deref()))
        .transpose()
        .map_err(|e| format!("--agent-runner-url: {e}"))?;
    let policy = AddressPolicy::with_allow_list(config.webhook_allow_http, &config.webhook_allow)
        .map_err(|e| format!("--webhook-allow: {e}"))?;
    if policy.allow_http {
        tracing::warn!(
            "--webhook-allow-http is set: webhooks may be sent over plain http; \
             use this for local development only"
        );
    }
    let notifications =
        Notifications::new(&config.notifications, extra_ca_pem.as_deref(), &policy)?;
    let outbound = Outbound::new(OutboundOptions {
        policy: Arc::new(policy),
        extra_ca_pem,
        resolver: Arc::new(SystemResolver),
    })
    .map_err(|e| format!("--webhook-ca-file: {e}"))?;
    Ok((outbound, agent_runner, notifications))
}

/// `--public-url`: an absolute `http` or `https` URL without a query; its trailing slash
/// is dropped.
fn public_url(raw: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("--public-url {raw}: {why}");
    let url = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("must be an absolute http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight
/// finish. Without a public URL set, callbacks go to `http://<listen address>`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if state.engine.callback_url().is_none() {
        if local.ip().is_unspecified() {
            tracing::warn!(
                "async webhook callbacks go to http://{local}, an address endpoints cannot \
                 reach; set --public-url"
            );
        }
        state.engine.set_public_url(&format!("http://{local}"));
    }
    // Read now so the first async webhook call does not wait for it; on failure the first
    // use tries again.
    if let Err(e) = state.engine.server_secret().await {
        tracing::error!("reading the server secret failed: {e}");
    }
    let timers = tokio::spawn(run_timers(state.engine.clone()));
    let deliveries = tokio::spawn(run_deliveries(state.engine.clone()));
    let schedules = tokio::spawn(run_schedules(state.engine.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    // A timer cut short here is claimed again once its lease runs out.
    timers.abort();
    deliveries.abort();
    // An instant claimed but not yet started is lost, as one missed while down would be.
    schedules.abort();
    served
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed before this returns, so a
/// signal that arrives as soon as the server says it is serving is not lost.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupt received, shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn public_urls() {
        let cases = [
            ("https://assent.example.com/", Ok("https://assent.example.com")),
            ("http://10.0.0.5:8080", Ok("http://10.0.0.5:8080")),
            ("https://example.com/assent/", Ok("https://example.com/assent")),
            ("ftp://example.com", Err("must be an absolute http")),
            ("assent.example.com", Err("relative URL without a base")),
            ("https://example.com/?a=1", Err("must not have a query")),
        ];
        for (raw, expected) in cases {
            match (public_url(raw), expected) {
                (Ok(url), Ok(want)) => assert_eq!(url, want),
                (Err(message), Err(want)) => assert!(message.contains(want), "{raw}: {message}"),
                (got, want) => panic!("{raw}: got {got:?}, expected {want:?}"),
            }
        }
    }
}
