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
    /// SMTP and Slack; SMTP over TLS also trusts `webhook_ca_file`.
    pub notifications: NotificationSettings,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    let store = AnyStore::open(&config.database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if config.bootstrap {
        crate::bootstrap::first_workspace(&store, clock.as_ref(), &config.data_dir).await?;
    }
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(&config.listen).await?;
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
            "--webhook-allow-http is set: webhooks may be sent over plain http; use this for local development only"
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
    let state = AppState::new(Arc::new(store), clock, outbound, agent_runner, notifications);
    tracing::info!(listen = %listener.local_addr()?, "assent is serving");
    serve(listener, state, shutdown).await?;
    tracing::info!("assent stopped");
    Ok(())
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight
/// finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
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
