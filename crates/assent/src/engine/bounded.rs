//! A small in-process cache with a hard bound on its size.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// How many entries each cache keeps; past it the cache starts over.
const CACHED_ENTRIES_MAX: usize = 16_384;

/// A map of at most [`CACHED_ENTRIES_MAX`] entries; past it, it starts over. Every entry
/// can be read again from the store, so forgetting is only ever slower.
pub struct Bounded<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> Bounded<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= CACHED_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
