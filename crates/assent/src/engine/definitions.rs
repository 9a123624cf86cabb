//! Definitions as the engine runs them: parsed and compiled once per stored version.

use super::RunError;
use assent_core::address::AddressPolicy;
use assent_core::compile::Compiled;
use assent_core::model::DefinitionSpec;
use assent_core::schema::definition::Mode;
use assent_core::validate::validate_definition;
use assent_store::DefinitionRecord;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many compiled definitions are kept; past it the cache starts over.
const CACHED_DEFINITIONS_MAX: usize = 1024;

/// A stored definition version, ready for the engine.
pub struct Runnable {
    pub spec: DefinitionSpec,
    pub compiled: Compiled,
    pub version: i64,
}

/// A version's identity: a re-created definition starts at version 1 again, so the
/// timestamps tell lineages apart.
type CacheKey = (String, String, i64, i64, i64);

#[derive(Default)]
pub struct DefinitionCache {
    compiled: Mutex<HashMap<CacheKey, Arc<Runnable>>>,
}

impl DefinitionCache {
    /// The runnable form of a stored record, compiled on first use.
    pub fn runnable(
        &self,
        workspace_id: &str,
        record: &DefinitionRecord,
        policy: &AddressPolicy,
    ) -> Result<Arc<Runnable>, RunError> {
        let key = (
            workspace_id.to_owned(),
            record.definition_id.clone(),
            record.version,
            record.created_at_ms,
            record.updated_at_ms,
        );
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        let validated = validate_definition(&record.body, Mode::Create, policy).map_err(|e| {
            RunError::Internal(format!("stored definition {} no longer validates: {e:?}", key.1))
        })?;
        let runnable = Arc::new(Runnable {
            spec: validated.spec,
            compiled: validated.compiled,
            version: record.version,
        });
        let mut cache = self.lock();
        if cache.len() >= CACHED_DEFINITIONS_MAX {
            cache.clear();
        }
        cache.insert(key, runnable.clone());
        Ok(runnable)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<Runnable>>> {
        self.compiled.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
