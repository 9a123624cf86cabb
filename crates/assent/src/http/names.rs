//! The write-time DNS half of the address guard: a URL whose named host resolves to a
//! refused address is refused when it is written, with the path of the field that holds it.
//! A name that does not resolve within a second is let through; every request checks again.

use super::error::{ApiError, ApiResult};
use crate::outbound::Outbound;
use assent_core::issue::{Issue, Path};
use assent_core::model::{DefinitionSpec, NodeConfig};
use std::time::Duration;
use tokio::task::JoinSet;

const RESOLVE_WAIT: Duration = Duration::from_secs(1);

/// A URL to check, where it sits, and the sentence a refusal starts with.
pub struct WrittenUrl {
    pub path: Path,
    /// `webhookUrl` for event webhooks (the hosted engine's fixed sentences), else the field.
    pub field: &'static str,
    pub url: String,
}

/// The URLs of a definition that Assent will call.
pub fn urls_of(spec: &DefinitionSpec) -> Vec<WrittenUrl> {
    let mut urls = Vec::new();
    if let Some(config) = &spec.webhook_config {
        let path = Path::root().key("webhookConfig").key("url");
        urls.push(WrittenUrl { path, field: "webhookUrl", url: config.url.clone() });
    }
    for (i, node) in spec.nodes.iter().enumerate() {
        let config_path = Path::root().key("nodes").index(i).key("config");
        match &node.config {
            NodeConfig::Webhook(config) => urls.push(WrittenUrl {
                path: config_path.key("url"),
                field: "url",
                url: config.url.clone(),
            }),
            NodeConfig::Notification(config) => {
                let target = config.slack_target.as_deref().unwrap_or_default();
                if target.contains("://") {
                    urls.push(WrittenUrl {
                        path: config_path.key("slackTarget"),
                        field: "slackTarget",
                        url: target.to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    urls
}

/// Resolves every named host at once; INVALID_ARGUMENT listing each refused one.
pub async fn check_names(outbound: &Outbound, urls: Vec<WrittenUrl>) -> ApiResult<()> {
    let mut checks = JoinSet::new();
    for (index, written) in urls.iter().enumerate() {
        let (outbound, url) = (outbound.clone(), written.url.clone());
        checks
            .spawn(async move { (index, outbound.check_name_at_write(&url, RESOLVE_WAIT).await) });
    }
    let mut refused = Vec::new();
    while let Some(checked) = checks.join_next().await {
        if let Ok((index, Err(refusal))) = checked {
            refused.push((index, refusal));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    refused.sort_by_key(|(index, _)| *index);
    let issues = refused
        .into_iter()
        .map(|(index, refusal)| {
            let written = &urls[index];
            Issue::exact(&written.path, format!("{} {refusal}", written.field))
        })
        .collect();
    Err(ApiError::schema(issues))
}
