//! Step ids, deterministic so that a retried command lands on the same record. The ids the
//! shell generates (executions, correlation ids, keys, events) are in `crate::ids`.

use sha2::{Digest, Sha256};

/// Longest step id; a longer one is replaced by a hashed form.
pub const STEP_ID_LEN_MAX: usize = 200;
const HASH_HEX_DIGITS: usize = 24;

/// `human:<stepId>`.
pub fn resume_key(step_id: &str) -> String {
    format!("human:{step_id}")
}

/// `step_<nodeId>_<epoch ms>_<6 chars>`.
pub fn root_step_id(node_id: &str, now_ms: u64, rand6: &str) -> String {
    bounded(format!("step_{node_id}_{now_ms}_{rand6}"), node_id)
}

/// `<parentStepId>__to__<childNodeId>`.
pub fn fanout_step_id(parent_step_id: &str, child_node_id: &str) -> String {
    bounded(format!("{parent_step_id}__to__{child_node_id}"), child_node_id)
}

/// `group_<groupId>__to__<childNodeId>`, with `__iter_<n>` from the second loop pass on.
pub fn group_step_id(group_id: &str, child_node_id: &str, iteration: u32) -> String {
    let base = format!("group_{group_id}__to__{child_node_id}");
    let id = if iteration >= 2 { format!("{base}__iter_{iteration}") } else { base };
    bounded(id, child_node_id)
}

/// `<terminalStepId>__loop_<n>__to__<entryNodeId>`.
pub fn loop_step_id(terminal_step_id: &str, iteration: u32, entry_node_id: &str) -> String {
    bounded(format!("{terminal_step_id}__loop_{iteration}__to__{entry_node_id}"), entry_node_id)
}

/// `<terminalStepId>__exhausted__to__<nodeId>`.
pub fn exhausted_step_id(terminal_step_id: &str, node_id: &str) -> String {
    bounded(format!("{terminal_step_id}__exhausted__to__{node_id}"), node_id)
}

/// The id itself, or `step_<childNodeId>_<24 hex of its SHA-256>` when it is too long.
fn bounded(id: String, child_node_id: &str) -> String {
    if id.len() <= STEP_ID_LEN_MAX {
        return id;
    }
    let digest = hex::encode(Sha256::digest(id.as_bytes()));
    format!("step_{child_node_id}_{}", &digest[..HASH_HEX_DIGITS])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let cases = [
            (root_step_id("review", 17, "abcdef"), "step_review_17_abcdef"),
            (fanout_step_id("step_a_1_x", "b"), "step_a_1_x__to__b"),
            (group_step_id("g", "b", 1), "group_g__to__b"),
            (group_step_id("g", "b", 2), "group_g__to__b__iter_2"),
            (loop_step_id("s", 2, "draft"), "s__loop_2__to__draft"),
            (exhausted_step_id("s", "esc"), "s__exhausted__to__esc"),
            (resume_key("s"), "human:s"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn long_ids_are_hashed() {
        let parent = "p".repeat(195);
        let id = fanout_step_id(&parent, "child");
        assert!(id.starts_with("step_child_"));
        assert_eq!(id.len(), "step_child_".len() + HASH_HEX_DIGITS);
        assert_eq!(id, fanout_step_id(&parent, "child"));
        let exact = fanout_step_id(&"p".repeat(200 - "__to__child".len()), "child");
        assert_eq!(exact.len(), 200);
    }
}
