//! First start: a store without any workspace gets one, whose credentials are shown once.

use crate::clock::Clock;
use assent_store::{AnyStore, NewCredentials, Store, StoreError};
use serde_json::json;
use std::io::Write;
use std::path::Path;

pub const CREDENTIALS_FILE: &str = "initial-credentials.json";

/// Creates the first workspace if the store has none, prints its credentials on stdout and
/// writes them, readable by the owner only, into the data directory.
pub async fn first_workspace(
    store: &AnyStore,
    clock: &dyn Clock,
    data_dir: &Path,
) -> Result<(), BootstrapError> {
    let Some(creds) = store.bootstrap_workspace("default", clock.now_ms()).await? else {
        return Ok(());
    };
    let text = credentials_json(&creds);
    println!("{text}");
    write_private(&data_dir.join(CREDENTIALS_FILE), &text)?;
    tracing::info!(
        workspace_id = %creds.workspace_id,
        "created the first workspace; its credentials were printed once and saved to {}",
        data_dir.join(CREDENTIALS_FILE).display()
    );
    Ok(())
}

/// The one-line JSON form in which new credentials are handed out.
pub fn credentials_json(creds: &NewCredentials) -> String {
    json!({
        "workspaceId": creds.workspace_id,
        "apiKey": creds.api_key,
        "authToken": creds.auth_token,
    })
    .to_string()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("could not create the first workspace: {0}")]
    Store(#[from] StoreError),
    #[error("could not write {CREDENTIALS_FILE}: {0}")]
    Io(#[from] std::io::Error),
}
