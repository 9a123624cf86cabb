//! Definitions as the engine runs them: parsed and compiled once per stored version.

use super::RunError;
use assent_core::address::AddressPolicy;
use assent_core::compile::Compiled;
use assent_core::model::DefinitionSpec;
use assent_core::schema::definition::Mode;
use assent_core::validate::validate_definition;
use assent_store::{DefinitionHead, DefinitionRecord};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many entries each cache keeps; past it the cache starts over.
const CACHED_ENTRIES_MAX: usize = 16_384;

/// A stored definition version, ready for the engine.
pub struct Runnable {
    pub spec: DefinitionSpec,
    pub compiled: Compiled,
    pub version: i64,
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

/// Compiled definitions by stored version, and the version each execution runs: an
/// execution's pinned definition never changes, so commands after the first need no read
/// to find it.
#[derive(Default)]
pub struct DefinitionCache {
    compiled: Bounded<VersionKey>,
    pinned: Bounded<ExecutionKey>,
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
            version: record.version,
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
}

/// A map of at most [`CACHED_ENTRIES_MAX`] entries; past it, it starts over.
struct Bounded<K> {
    entries: Mutex<HashMap<K, Arc<Runnable>>>,
}

impl<K> Default for Bounded<K> {
    fn default() -> Self {
        Bounded { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: std::hash::Hash + Eq> Bounded<K> {
    fn get(&self, key: &K) -> Option<Arc<Runnable>> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: K, value: Arc<Runnable>) {
        let mut entries = self.lock();
        if entries.len() >= CACHED_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<Runnable>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
