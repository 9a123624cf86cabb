//! The identifiers and idempotency keys the engine mints. Time and randomness are arguments:
//! the shell reads the clock and the operating system's random source and passes them in.

use regex::Regex;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Pattern of idempotency keys and correlation ids, generated or given.
pub static KEY_PATTERN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9:_\-.]{1,200}$").expect("key pattern"));

/// Prefixes of the keys the server makes; a caller's key may not start with one.
pub const RESERVED_KEY_PREFIXES: [&str; 4] = ["auto:", "trig:", "sched:", "app:"];

/// Length of the random part of execution and correlation ids.
pub const ID_RANDOM_LEN: usize = 8;

/// Hex digits of SHA-256 kept when a trigger key is too long or has a character the key
/// pattern refuses.
const KEY_HASH_HEX_LEN: usize = 40;

/// The characters of random suffixes: lowercase base 36.
const SUFFIX_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Bytes at or above this value are used only when the unbiased ones run out: 252 is the
/// largest multiple of 36 that fits in a byte, so `byte % 36` is uniform below it.
const UNBIASED_BYTE_LIMIT: u8 = 252;

/// `exec_<epoch ms>_<8 chars [a-z0-9]>`.
pub fn execution_id(now_ms: i64, rand8: &str) -> String {
    debug_assert!(is_random_suffix(rand8, ID_RANDOM_LEN), "bad random part {rand8:?}");
    format!("exec_{now_ms}_{rand8}")
}

/// `corr_<epoch ms>_<8 chars [a-z0-9]>`, for a dispatch that brings no `correlationId`.
pub fn correlation_id(now_ms: i64, rand8: &str) -> String {
    debug_assert!(is_random_suffix(rand8, ID_RANDOM_LEN), "bad random part {rand8:?}");
    format!("corr_{now_ms}_{rand8}")
}

/// `auto:<executionId>`, for a dispatch that brings no `idempotencyKey`.
pub fn auto_idempotency_key(execution_id: &str) -> String {
    format!("auto:{execution_id}")
}

/// `evt_<executionId>_<seq>`: the same event gets the same id on every delivery attempt.
pub fn event_id(execution_id: &str, seq: u64) -> String {
    format!("evt_{execution_id}_{seq}")
}

/// `trig:<triggerId>:<sourceEventId>`, the key of an inbound-webhook dispatch.
pub fn trigger_key(trigger_id: &str, source_id: &str) -> String {
    bounded_key("trig:", &format!("{trigger_id}:{source_id}"))
}

/// `sched:<definitionId>:<triggerId>:<scheduledAt epoch ms>`, the key of a scheduled run.
pub fn schedule_key(definition_id: &str, trigger_id: &str, scheduled_at_ms: i64) -> String {
    bounded_key("sched:", &format!("{definition_id}:{trigger_id}:{scheduled_at_ms}"))
}

/// `app:<provider>:<deliveryId>:<definitionId>`, the key of an app-trigger dispatch. One
/// delivery may start a run of several definitions of a workspace, so the key names the
/// definition after the delivery; definition ids have no `:`, so the key reads one way.
pub fn app_key(provider: &str, delivery_id: &str, definition_id: &str) -> String {
    bounded_key("app:", &format!("{provider}:{delivery_id}:{definition_id}"))
}

/// Whether `key` can be an idempotency key or correlation id.
pub fn is_valid_key(key: &str) -> bool {
    KEY_PATTERN.is_match(key)
}

/// The server's prefix that `key` starts with, if any (compared exactly: the server's keys
/// are lowercase, so `AUTO:x` can never collide with one).
pub fn reserved_prefix(key: &str) -> Option<&'static str> {
    RESERVED_KEY_PREFIXES.into_iter().find(|prefix| key.starts_with(prefix))
}

/// `prefix` + `rest` when that is a valid key, else `prefix` + the hashed `rest`, so the key is
/// valid and still the same for the same source event.
fn bounded_key(prefix: &str, rest: &str) -> String {
    debug_assert!(RESERVED_KEY_PREFIXES.contains(&prefix));
    let whole = format!("{prefix}{rest}");
    if is_valid_key(&whole) {
        whole
    } else {
        format!("{prefix}{}", hashed(rest))
    }
}

/// The first [`KEY_HASH_HEX_LEN`] lowercase hex digits of the SHA-256 of `text`'s UTF-8 bytes.
fn hashed(text: &str) -> String {
    let mut digest = hex::encode(Sha256::digest(text.as_bytes()));
    digest.truncate(KEY_HASH_HEX_LEN);
    digest
}

/// Number of random bytes to pass to [`random_suffix_from`] for `len` characters: enough that
/// running out of unbiased bytes is vanishingly rare.
pub const fn random_bytes_for(len: usize) -> usize {
    2 * len
}

/// `len` characters of `[a-z0-9]` from random `bytes` (pass [`random_bytes_for`]`(len)` of
/// them). Bytes below 252 are used first, one character each, so every character is equally
/// likely; the rest fill in only if those run out. Fewer than `len` bytes give a shorter
/// string.
pub fn random_suffix_from(bytes: &[u8], len: usize) -> String {
    debug_assert!(bytes.len() >= len, "{} random bytes for {len} characters", bytes.len());
    let unbiased = bytes.iter().filter(|&&b| b < UNBIASED_BYTE_LIMIT);
    let spare = bytes.iter().filter(|&&b| b >= UNBIASED_BYTE_LIMIT);
    unbiased
        .chain(spare)
        .take(len)
        .map(|&b| char::from(SUFFIX_ALPHABET[usize::from(b) % SUFFIX_ALPHABET.len()]))
        .collect()
}

fn is_random_suffix(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of "abc", from FIPS 180-2, appendix B.1.
    const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn generated_ids_follow_the_documented_formats() {
        let cases = [
            (execution_id(1_777_374_504_255, "xzy43k9q"), "exec_1777374504255_xzy43k9q"),
            (correlation_id(1_777_374_504_255, "ab12cd34"), "corr_1777374504255_ab12cd34"),
            (auto_idempotency_key("exec_1_abcdefgh"), "auto:exec_1_abcdefgh"),
            (event_id("exec_1_abcdefgh", 0), "evt_exec_1_abcdefgh_0"),
            (event_id("exec_1_abcdefgh", 12), "evt_exec_1_abcdefgh_12"),
        ];
        for (made, expected) in cases {
            assert_eq!(made, expected);
        }
    }

    #[test]
    fn generated_correlation_ids_and_keys_match_the_key_pattern() {
        let id = execution_id(i64::MAX, "zzzzzzzz");
        assert!(is_valid_key(&correlation_id(i64::MAX, "00000000")));
        assert!(is_valid_key(&auto_idempotency_key(&id)));
        assert_eq!(reserved_prefix(&auto_idempotency_key(&id)), Some("auto:"));
    }

    #[test]
    fn hashing_keeps_the_first_40_hex_digits() {
        assert_eq!(hashed("abc"), &SHA256_ABC[..40]);
    }

    #[test]
    fn trigger_keys_are_kept_when_valid() {
        let cases = [
            (trigger_key("gh-push", "d1f9.7"), "trig:gh-push:d1f9.7"),
            (schedule_key("nightly-review", "cron", 1_700_000_000_000), {
                "sched:nightly-review:cron:1700000000000"
            }),
            (app_key("github", "72d3162e-cc78", "release-review"), {
                "app:github:72d3162e-cc78:release-review"
            }),
        ];
        for (made, expected) in cases {
            assert_eq!(made, expected);
        }
    }

    #[test]
    fn trigger_keys_hash_the_rest_when_invalid() {
        // Digests computed with `printf %s '<rest>' | sha256sum`.
        let spaced = trigger_key("t", "a b");
        assert_eq!(spaced, "trig:d69c659439972ae2cf26a8fe05bb4c80580fc959");
        let long_id = "x".repeat(200);
        let long = app_key("github", &long_id, "d");
        assert_eq!(long, format!("app:{}", &hashed(&format!("github:{long_id}:d"))));
        let sched = schedule_key("d", "tz/europe", 5);
        assert_eq!(sched, "sched:e2ee753011daae76ec0e2b11014706d0f205f502");
        for key in [spaced, long, sched] {
            assert!(is_valid_key(&key), "{key}");
            assert!(reserved_prefix(&key).is_some(), "{key}");
        }
    }

    #[test]
    fn trigger_keys_hash_at_exactly_the_length_limit() {
        // "trig:" + "t:" + 193 chars is 200 characters: kept. One more is hashed.
        let at_limit = trigger_key("t", &"s".repeat(193));
        assert_eq!(at_limit.len(), 200);
        assert!(at_limit.ends_with('s'));
        let over = trigger_key("t", &"s".repeat(194));
        assert_eq!(over.len(), "trig:".len() + 40);
    }

    #[test]
    fn reserved_prefixes_are_exact() {
        let cases = [
            ("auto:x", Some("auto:")),
            ("trig:x", Some("trig:")),
            ("sched:x", Some("sched:")),
            ("app:x", Some("app:")),
            ("AUTO:x", None),
            ("auto", None),
            ("apps:x", None),
            ("x-auto:", None),
        ];
        for (key, expected) in cases {
            assert_eq!(reserved_prefix(key), expected, "{key}");
        }
    }

    #[test]
    fn random_suffixes_map_bytes_to_base36() {
        let cases: [(&[u8], usize, &str); 5] = [
            (&[0, 25, 26, 35], 4, "az09"),
            (&[36, 71, 251], 3, "a99"),
            // 252..=255 are passed over while unbiased bytes remain...
            (&[252, 1, 255, 2], 2, "bc"),
            // ...and used, in order, only when those run out (252 % 36 = 0, 253 % 36 = 1).
            (&[252, 1, 253], 3, "bab"),
            (&[7, 8, 9], 2, "hi"),
        ];
        for (bytes, len, expected) in cases {
            assert_eq!(random_suffix_from(bytes, len), expected, "{bytes:?}");
        }
        assert_eq!(random_bytes_for(ID_RANDOM_LEN), 16);
    }

    #[test]
    fn random_suffixes_are_valid_id_parts() {
        let bytes: Vec<u8> = (0..=255).collect();
        let suffix = random_suffix_from(&bytes, ID_RANDOM_LEN);
        assert!(is_random_suffix(&suffix, ID_RANDOM_LEN), "{suffix}");
        assert!(execution_id(1, &suffix).starts_with("exec_1_"));
    }
}
