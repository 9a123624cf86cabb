//! Definitions as the engine runs them: parsed and compiled once per stored version.

use super::bounded::Bounded;
use super::RunError;
use assent_core::address::AddressPolicy;
use assent_core::compile::Compiled;
use assent_core::model::DefinitionSpec;
use assent_core::schema::definition::Mode;
use assent_core::validate::validate_definition;
use assent_store::{DefinitionHead, DefinitionRecord, DefinitionStatus};
use std::sync::Arc;

/// A stored definition version, ready for the engine.
pub struct Runnable {
    pub spec: DefinitionSpec,
    pub compiled: Compiled,
    /// The stored version this was compiled from (always an active one).
    pub head: DefinitionHead,
}

/// A version's identity: a re-created definition starts at version 1 again, so the
/// timestamps tell lineages apart.
type VersionKey = (String, String, i64, i64, i64);

fn version_key(
    workspace_id: &str,
    definition_id: &str,
    version: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
) -> VersionKey {
    (workspace_id.to_owned(), definition_id.to_owned(), version, created_at_ms, updated_at_ms)
}

/// An execution, by workspace and id.
pub type ExecutionKey = (String, String);

/// A definition, by workspace and id.
type DefinitionKey = (String, String);

/// Compiled definitions by stored version, and the version each execution runs: an
/// execution's pinned definition never changes, so commands after the first need no read
/// to find it. Also the version of each definition this process last dispatched, for
/// stores that dispatch without a read first (the store checks it is still current).
#[derive(Default)]
pub struct DefinitionCache {
    compiled: Bounded<VersionKey, Arc<Runnable>>,
    pinned: Bounded<ExecutionKey, Arc<Runnable>>,
    heads: Bounded<DefinitionKey, Arc<Runnable>>,
}

impl DefinitionCache {
    /// The runnable form of a stored record, compiled on first use.
    pub fn runnable(
        &self,
        workspace_id: &str,
        record: &DefinitionRecord,
        policy: &AddressPolicy,
    ) -> Result<Arc<Runnable>, RunError> {
        let key = version_key(
            workspace_id,
            &record.definition_id,
            record.version,
            record.created_at_ms,
            record.updated_at_ms,
        );
        if let Some(found) = self.compiled.get(&key) {
            return Ok(found);
        }
        let validated = validate_definition(&record.body, Mode::Create, policy).map_err(|e| {
            RunError::Internal(format!("stored definition {} no longer validates: {e:?}", key.1))
        })?;
        let runnable = Arc::new(Runnable {
            spec: validated.spec,
            compiled: validated.compiled,
            head: DefinitionHead {
                version: record.version,
                status: DefinitionStatus::Active,
                created_at_ms: record.created_at_ms,
                updated_at_ms: record.updated_at_ms,
            },
        });
        self.compiled.insert(key, runnable.clone());
        Ok(runnable)
    }

    /// The compiled form of the version `head` names, if this process has compiled it.
    pub fn cached(
        &self,
        workspace_id: &str,
        definition_id: &str,
        head: &DefinitionHead,
    ) -> Option<Arc<Runnable>> {
        let key = version_key(
            workspace_id,
            definition_id,
            head.version,
            head.created_at_ms,
            head.updated_at_ms,
        );
        self.compiled.get(&key)
    }

    /// The definition an execution was seen to run, if it was seen.
    pub fn pinned(&self, execution: &ExecutionKey) -> Option<Arc<Runnable>> {
        self.pinned.get(execution)
    }

    pub fn remember_pinned(&self, execution: ExecutionKey, runnable: Arc<Runnable>) {
        self.pinned.insert(execution, runnable);
    }

    /// The version of this definition the last dispatch here was built from.
    pub fn head(&self, workspace_id: &str, definition_id: &str) -> Option<Arc<Runnable>> {
        self.heads.get(&(workspace_id.to_owned(), definition_id.to_owned()))
    }

    pub fn remember_head(&self, workspace_id: &str, definition_id: &str, runnable: Arc<Runnable>) {
        self.heads.insert((workspace_id.to_owned(), definition_id.to_owned()), runnable);
    }

    pub fn forget_head(&self, workspace_id: &str, definition_id: &str) {
        self.heads.remove(&(workspace_id.to_owned(), definition_id.to_owned()));
    }
}
