//! Credentials this process checked lately, so that most requests skip the query that
//! checks them.
//!
//! Only a live answer is kept, under the SHA-256 of the key and the token, never the
//! secrets themselves. A revocation commits a NOTIFY on [`CREDENTIALS_CHANNEL`]; every
//! process that listens forgets everything it kept when it arrives. A process keeps
//! nothing while it is not listening (its listening connection is down, or it never
//! listened, like the command line), and nothing for longer than [`KEPT_FOR`], which bounds
//! how long a revocation whose notification went missing can go unseen.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The channel on which a revocation notifies every process.
pub(super) const CREDENTIALS_CHANNEL: &str = "assent_credentials";

/// The longest an answer is kept.
const KEPT_FOR: Duration = Duration::from_secs(10);

/// How many answers are kept; past it, all are forgotten.
const KEPT_MAX: usize = 4_096;

/// `(api key hash, auth token hash)`.
pub(super) type Hashes = (String, String);

#[derive(Default)]
pub(super) struct SeenCredentials {
    state: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Connections listening on [`CREDENTIALS_CHANNEL`] now.
    listeners: usize,
    /// Moves on whenever what was kept may be stale, so that an answer read before that
    /// is not kept after it.
    generation: u64,
    workspaces: HashMap<Hashes, (String, Instant)>,
}

impl SeenCredentials {
    /// The workspace these credentials were found live in, lately.
    pub(super) fn workspace(&self, hashes: &Hashes) -> Option<String> {
        let seen = self.lock();
        let (workspace_id, at) = seen.workspaces.get(hashes)?;
        (at.elapsed() < KEPT_FOR).then(|| workspace_id.clone())
    }

    /// What to hand [`SeenCredentials::remember`] for an answer about to be read; `None`
    /// while nothing can be kept.
    pub(super) fn generation(&self) -> Option<u64> {
        let seen = self.lock();
        (seen.listeners > 0).then_some(seen.generation)
    }

    /// Keeps a live answer read since `generation`, unless something may have been
    /// revoked in between.
    pub(super) fn remember(&self, generation: u64, hashes: Hashes, workspace_id: String) {
        let mut seen = self.lock();
        if seen.generation != generation {
            return;
        }
        if seen.workspaces.len() >= KEPT_MAX {
            seen.workspaces.clear();
        }
        seen.workspaces.insert(hashes, (workspace_id, Instant::now()));
    }

    /// Something was revoked.
    pub(super) fn forget_all(&self) {
        let mut seen = self.lock();
        seen.generation += 1;
        seen.workspaces.clear();
    }

    /// A connection started listening (`true`) or stopped (`false`). Both forget: a
    /// revocation may have gone by unheard.
    pub(super) fn listening(&self, started: bool) {
        let mut seen = self.lock();
        if started {
            seen.listeners += 1;
        } else {
            seen.listeners = seen.listeners.saturating_sub(1);
        }
        seen.generation += 1;
        seen.workspaces.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes() -> Hashes {
        ("k".to_owned(), "t".to_owned())
    }

    #[test]
    fn nothing_is_kept_without_a_listener() {
        let seen = SeenCredentials::default();
        assert_eq!(seen.generation(), None);
        seen.listening(true);
        seen.listening(false);
        assert_eq!(seen.generation(), None);
    }

    #[test]
    fn an_answer_is_kept_until_a_revocation() {
        let seen = SeenCredentials::default();
        seen.listening(true);
        let generation = seen.generation().unwrap();
        seen.remember(generation, hashes(), "ws_1".to_owned());
        assert_eq!(seen.workspace(&hashes()).as_deref(), Some("ws_1"));
        seen.forget_all();
        assert_eq!(seen.workspace(&hashes()), None);
    }

    #[test]
    fn an_answer_read_across_a_revocation_is_not_kept() {
        let seen = SeenCredentials::default();
        seen.listening(true);
        let generation = seen.generation().unwrap();
        seen.forget_all();
        seen.remember(generation, hashes(), "ws_1".to_owned());
        assert_eq!(seen.workspace(&hashes()), None);
    }

    #[test]
    fn a_listener_ending_forgets_even_when_another_still_listens() {
        let seen = SeenCredentials::default();
        seen.listening(true);
        seen.listening(true);
        let generation = seen.generation().unwrap();
        seen.remember(generation, hashes(), "ws_1".to_owned());
        seen.listening(false);
        assert_eq!(seen.workspace(&hashes()), None);
        assert!(seen.generation().is_some(), "one connection still listens");
    }
}
