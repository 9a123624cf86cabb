//! The config of a `human` node: who reviews, and which of them must approve.

use crate::issue::Path;
use crate::model::{HumanConfig, Reviewer};
use crate::schema::check::{Checker, Str};
use crate::schema::fields::{self, clean_since};
use serde_json::Value;
use std::collections::HashSet;

const KEYS: [&str; 4] = ["reviewers", "reviewerIds", "reviewerEmails", "commentBody"];

const NO_REVIEWERS: &str = "at least one of reviewerIds or reviewers must be provided";
const BOTH_LISTS: &str = "cannot set both reviewerIds and reviewers, use one";
const DUPLICATE_REVIEWER: &str = "reviewer userIds must be unique";
const NO_MANDATORY: &str = "reviewers must include at least one mandatory reviewer";

const REVIEWERS_MAX: usize = 50;
const USER_ID: Str<'static> = Str::len(1, 256);

pub fn config(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<HumanConfig> {
    let mark = c.issues.len();
    let obj = c.object(v, path, &KEYS)?;
    let reviewers = reviewer_list(c, obj.get("reviewers"), obj.get("reviewerIds"), path);
    let emails_path = path.key("reviewerEmails");
    let reviewer_emails =
        fields::email_list(c, obj.get("reviewerEmails"), &emails_path, (0, REVIEWERS_MAX), false);
    let comment_body =
        c.opt_string(obj.get("commentBody"), &path.key("commentBody"), Str::len(0, 8000));

    if !clean_since(c, mark) {
        return None;
    }
    let (reviewers, legacy_reviewer_ids) = reviewers?;
    Some(HumanConfig {
        reviewers,
        legacy_reviewer_ids,
        reviewer_emails: reviewer_emails?,
        comment_body,
    })
}

/// The reviewers from whichever of the two lists was written, `reviewerIds` becoming
/// mandatory reviewers; with `true` when it was the legacy list.
fn reviewer_list(
    c: &mut Checker,
    reviewers: Option<&Value>,
    reviewer_ids: Option<&Value>,
    path: &Path,
) -> Option<(Vec<Reviewer>, bool)> {
    let (list_path, legacy) = match (reviewers.is_some(), reviewer_ids.is_some()) {
        (false, false) => {
            c.exact(path, NO_REVIEWERS);
            return None;
        }
        (true, true) => {
            c.exact(path, BOTH_LISTS);
            return None;
        }
        (true, false) => (path.key("reviewers"), false),
        (false, true) => (path.key("reviewerIds"), true),
    };
    let mark = c.issues.len();
    let bounds = (1, REVIEWERS_MAX);
    let list = if legacy {
        let ids = c.string_list(reviewer_ids, &list_path, bounds, USER_ID, true);
        let mandatory = |user_id| Reviewer { user_id, mandatory: true };
        ids.map(|ids| ids.into_iter().map(mandatory).collect())
    } else {
        fields::list(c, reviewers, &list_path, bounds, true, reviewer)
    };
    // The rules below are about a list that is well formed.
    let list: Vec<Reviewer> = list.filter(|_| clean_since(c, mark))?;

    let mut seen = HashSet::new();
    if !list.iter().all(|r| seen.insert(r.user_id.as_str())) {
        c.exact(&list_path, DUPLICATE_REVIEWER);
    }
    if !list.iter().any(|r| r.mandatory) {
        c.exact(&list_path, NO_MANDATORY);
    }
    clean_since(c, mark).then_some((list, legacy))
}

fn reviewer(c: &mut Checker, v: &Value, path: &Path) -> Option<Reviewer> {
    let obj = c.object(Some(v), path, &["userId", "mandatory"])?;
    let user_id = c.string(obj.get("userId"), &path.key("userId"), USER_ID);
    let mandatory = c.boolean(obj.get("mandatory"), &path.key("mandatory"));
    Some(Reviewer { user_id: user_id?, mandatory: mandatory? })
}

#[cfg(test)]
mod tests {
    use crate::model::{NodeConfig, Reviewer};
    use crate::schema::testkit::{issues, parse_config, problems, with_config};
    use serde_json::json;

    fn reviewer(id: &str, mandatory: bool) -> serde_json::Value {
        json!({"userId": id, "mandatory": mandatory})
    }

    #[test]
    fn reviewer_ids_become_mandatory_reviewers() {
        let NodeConfig::Human(config) = parse_config("human", json!({"reviewerIds": ["a", "b"]}))
        else {
            panic!("not a human node");
        };
        assert!(config.legacy_reviewer_ids);
        assert_eq!(
            config.reviewers,
            [
                Reviewer { user_id: "a".into(), mandatory: true },
                Reviewer { user_id: "b".into(), mandatory: true }
            ]
        );
    }

    #[test]
    fn exact_messages() {
        let many: Vec<_> = (0..51).map(|i| reviewer(&format!("u{i}"), true)).collect();
        let cases = [
            (
                json!({}),
                "nodes.0.config",
                "at least one of reviewerIds or reviewers must be provided",
            ),
            (
                json!({"reviewers": [reviewer("a", true)], "reviewerIds": ["a"]}),
                "nodes.0.config",
                "cannot set both reviewerIds and reviewers, use one",
            ),
            (
                json!({"reviewers": [reviewer("a", true), reviewer("a", false)]}),
                "nodes.0.config.reviewers",
                "reviewer userIds must be unique",
            ),
            (
                json!({"reviewerIds": ["a", "a"]}),
                "nodes.0.config.reviewerIds",
                "reviewer userIds must be unique",
            ),
            (
                json!({"reviewers": [reviewer("a", false)]}),
                "nodes.0.config.reviewers",
                "reviewers must include at least one mandatory reviewer",
            ),
            (
                json!({"reviewers": many}),
                "nodes.0.config.reviewers",
                "Array must contain at most 50 element(s)",
            ),
        ];
        for (config, path, message) in cases {
            let found = issues(&with_config("human", config.clone()));
            assert_eq!(found.len(), 1, "{config}: {found:?}");
            assert_eq!(
                (found[0].path.to_string().as_str(), found[0].message.as_str()),
                (path, message)
            );
            let exact = !message.starts_with("Array");
            assert_eq!(found[0].exact, exact, "{message}");
        }
    }

    #[test]
    fn limits() {
        let fifty_ids: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
        let fifty_emails: Vec<String> = (0..50).map(|i| format!("u{i}@example.com")).collect();
        let mut fifty_one_emails = fifty_emails.clone();
        fifty_one_emails.push("x@example.com".into());
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (json!({"reviewerIds": fifty_ids}), vec![]),
            (
                json!({"reviewerIds": []}),
                vec!["reviewerIds: Array must contain at least 1 element(s)"],
            ),
            (
                json!({"reviewerIds": [""]}),
                vec!["reviewerIds.0: String must contain at least 1 character(s)"],
            ),
            (
                json!({"reviewers": [{"userId": "a".repeat(257), "mandatory": true}]}),
                vec!["reviewers.0.userId: String must contain at most 256 character(s)"],
            ),
            (json!({"reviewers": [{"userId": "a"}]}), vec!["reviewers.0.mandatory: Required"]),
            (json!({"reviewers": null}), vec!["reviewers: Expected array, received null"]),
            (json!({"reviewerIds": ["a"], "reviewerEmails": fifty_emails}), vec![]),
            (
                json!({"reviewerIds": ["a"], "reviewerEmails": fifty_one_emails}),
                vec!["reviewerEmails: Array must contain at most 50 element(s)"],
            ),
            (
                json!({"reviewerIds": ["a"], "reviewerEmails": ["not-an-email", "a@b"]}),
                vec!["reviewerEmails.0: Invalid email", "reviewerEmails.1: Invalid email"],
            ),
            (json!({"reviewerIds": ["a"], "commentBody": "a".repeat(8000)}), vec![]),
            (
                json!({"reviewerIds": ["a"], "commentBody": "a".repeat(8001)}),
                vec!["commentBody: String must contain at most 8000 character(s)"],
            ),
            (
                json!({"reviewerIds": ["a"], "rejection": {}}),
                vec![": Unrecognized key(s) in object: 'rejection'"],
            ),
        ];
        for (config, expected) in cases {
            let expected: Vec<String> = expected
                .iter()
                .map(|e| format!("nodes.0.config{}{e}", if e.starts_with(':') { "" } else { "." }))
                .collect();
            assert_eq!(problems(&with_config("human", config.clone())), expected, "{config}");
        }
    }
}
