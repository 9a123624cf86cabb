//! The config of a `notification` node: an email or a Slack message built from a template.

use crate::address::AddressPolicy;
use crate::issue::Path;
use crate::model::{Channel, NotificationConfig, NotificationFormat};
use crate::schema::check::{Checker, Object, Str};
use crate::schema::fields::{self, clean_since};
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

const KEYS: [&str; 6] =
    ["channel", "bodyTemplate", "recipients", "subjectTemplate", "slackTarget", "format"];

const EMAIL_NEEDS_RECIPIENTS: &str =
    "notification node with channel=\"email\" requires a non-empty recipients array";
const SLACK_NEEDS_TARGET: &str = "notification node with channel=\"slack\" requires a slackTarget \
                                  (channel id or incoming-webhook URL)";

/// A Slack conversation id: public (`C`), private (`G`) or direct (`D`).
static SLACK_CHANNEL_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[CGD][A-Z0-9]{2,31}$").expect("slack channel id pattern"));

pub fn config(
    c: &mut Checker,
    policy: &AddressPolicy,
    v: Option<&Value>,
    path: &Path,
) -> Option<NotificationConfig> {
    let mark = c.issues.len();
    let obj = c.object(v, path, &KEYS)?;
    let at = |key: &str| path.key(key);
    let channel = c.enumeration(obj.get("channel"), &at("channel"), &["email", "slack"]);
    let body = c.string(obj.get("bodyTemplate"), &at("bodyTemplate"), Str::len(1, 16_000));
    let recipients =
        fields::email_list(c, obj.get("recipients"), &at("recipients"), (0, 50), false);
    let subject =
        c.opt_string(obj.get("subjectTemplate"), &at("subjectTemplate"), Str::len(0, 2000));
    let slack_target = slack_target(c, policy, obj.get("slackTarget"), &at("slackTarget"));
    let formats = ["text", "html", "slack-blocks"];
    let format = c.opt_enumeration(obj.get("format"), &at("format"), &formats);
    let channel = channel.map(|name| match name {
        "email" => Channel::Email,
        _ => Channel::Slack,
    });
    if let Some(channel) = channel {
        channel_rules(c, channel, obj, path);
    }

    if !clean_since(c, mark) {
        return None;
    }
    Some(NotificationConfig {
        channel: channel?,
        body_template: body?,
        recipients: recipients?,
        subject_template: subject,
        slack_target,
        format: match format {
            None | Some("text") => NotificationFormat::Text,
            Some("html") => NotificationFormat::Html,
            Some(_) => NotificationFormat::SlackBlocks,
        },
    })
}

/// What each channel needs, judged on what was written.
fn channel_rules(c: &mut Checker, channel: Channel, obj: &Object, path: &Path) {
    match channel {
        Channel::Email => {
            let has_recipients =
                matches!(obj.get("recipients"), Some(Value::Array(a)) if !a.is_empty());
            if !has_recipients {
                c.exact(&path.key("recipients"), EMAIL_NEEDS_RECIPIENTS);
            }
            if obj.get("format").and_then(Value::as_str) == Some("slack-blocks") {
                c.custom(
                    &path.key("format"),
                    "format \"slack-blocks\" is only for channel \"slack\"",
                );
            }
        }
        Channel::Slack => {
            if !fields::is_filled_string(obj.get("slackTarget")) {
                c.exact(&path.key("slackTarget"), SLACK_NEEDS_TARGET);
            }
        }
    }
}

/// A Slack channel id, or an incoming-webhook URL that passes the address guard.
fn slack_target(
    c: &mut Checker,
    policy: &AddressPolicy,
    v: Option<&Value>,
    path: &Path,
) -> Option<String> {
    let target = c.opt_string(v, path, Str::len(0, fields::URL_MAX))?;
    let looks_like_url = target.contains("://");
    if looks_like_url {
        return fields::guarded_url(c, policy, v, path, "slackTarget");
    }
    // An empty target is reported by the channel rule, not here.
    if !target.is_empty() && !SLACK_CHANNEL_ID.is_match(&target) {
        let msg = "slackTarget must be a Slack channel id (such as C0123ABC) or an https URL";
        c.custom(path, msg);
        return None;
    }
    Some(target)
}

#[cfg(test)]
mod tests {
    use crate::schema::testkit::{issues, problems, with_config};
    use serde_json::json;

    fn notification(config: serde_json::Value) -> Vec<String> {
        problems(&with_config("notification", config))
            .into_iter()
            .map(|p| p.trim_start_matches("nodes.0.config.").to_owned())
            .collect()
    }

    const EMAIL: &str =
        "notification node with channel=\"email\" requires a non-empty recipients array";
    const SLACK: &str = "notification node with channel=\"slack\" requires a slackTarget \
                         (channel id or incoming-webhook URL)";

    #[test]
    fn exact_messages_per_channel() {
        let cases = [
            (json!({"channel": "email", "bodyTemplate": "b"}), "recipients", EMAIL),
            (
                json!({"channel": "email", "bodyTemplate": "b", "recipients": []}),
                "recipients",
                EMAIL,
            ),
            (json!({"channel": "slack", "bodyTemplate": "b"}), "slackTarget", SLACK),
            (
                json!({"channel": "slack", "bodyTemplate": "b", "slackTarget": ""}),
                "slackTarget",
                SLACK,
            ),
        ];
        for (config, path, message) in cases {
            let found = issues(&with_config("notification", config.clone()));
            assert_eq!(found.len(), 1, "{config}: {found:?}");
            assert!(found[0].exact);
            assert_eq!(found[0].path.to_string(), format!("nodes.0.config.{path}"));
            assert_eq!(found[0].headline(), message);
        }
    }

    #[test]
    fn fields_and_limits() {
        let email = |extra: serde_json::Value| {
            let mut config =
                json!({"channel": "email", "bodyTemplate": "b", "recipients": ["a@example.com"]});
            for (k, v) in extra.as_object().unwrap() {
                config[k] = v.clone();
            }
            config
        };
        let fifty: Vec<String> = (0..50).map(|i| format!("u{i}@example.com")).collect();
        let mut fifty_one = fifty.clone();
        fifty_one.push("z@example.com".into());
        let cases: Vec<(serde_json::Value, Vec<&str>)> =
            vec![
            (email(json!({})), vec![]),
            (email(json!({"format": "html", "subjectTemplate": "s".repeat(2000)})), vec![]),
            (
                email(json!({"subjectTemplate": "s".repeat(2001)})),
                vec!["subjectTemplate: String must contain at most 2000 character(s)"],
            ),
            (
                email(json!({"bodyTemplate": ""})),
                vec!["bodyTemplate: String must contain at least 1 character(s)"],
            ),
            (email(json!({"bodyTemplate": "b".repeat(16_000)})), vec![]),
            (
                email(json!({"bodyTemplate": "b".repeat(16_001)})),
                vec!["bodyTemplate: String must contain at most 16000 character(s)"],
            ),
            (email(json!({"recipients": fifty})), vec![]),
            (
                email(json!({"recipients": fifty_one})),
                vec!["recipients: Array must contain at most 50 element(s)"],
            ),
            (email(json!({"recipients": ["nobody"]})), vec!["recipients.0: Invalid email"]),
            (
                email(json!({"format": "slack-blocks"})),
                vec!["format: format \"slack-blocks\" is only for channel \"slack\""],
            ),
            (
                email(json!({"format": "pdf"})),
                vec!["format: Invalid enum value. Expected 'text' | 'html' | 'slack-blocks', \
                 received 'pdf'"],
            ),
            (
                email(json!({"channel": "sms"})),
                vec!["channel: Invalid enum value. Expected 'email' | 'slack', received 'sms'"],
            ),
            (
                json!({"channel": "slack", "bodyTemplate": "[]",
                       "slackTarget": "C0123", "format": "slack-blocks"}),
                vec![],
            ),
            (
                json!({"channel": "slack", "bodyTemplate": "b",
                       "slackTarget": "https://hooks.slack.com/services/T/B/x"}),
                vec![],
            ),
            (
                json!({"channel": "slack", "bodyTemplate": "b", "slackTarget": "#general"}),
                vec!["slackTarget: slackTarget must be a Slack channel id (such as C0123ABC) or \
                 an https URL"],
            ),
            (
                json!({"channel": "slack", "bodyTemplate": "b",
                       "slackTarget": "http://hooks.slack.com/x"}),
                vec!["slackTarget: slackTarget must use https scheme"],
            ),
            (
                json!({"channel": "slack", "bodyTemplate": "b",
                       "slackTarget": "https://localhost/x"}),
                vec!["slackTarget: slackTarget host \"localhost\" is not allowed"],
            ),
            (
                json!({"channel": "slack", "bodyTemplate": "b",
                       "slackTarget": "https://192.168.1.1/x"}),
                vec!["slackTarget: slackTarget host resolves to a private, loopback, or \
                 link-local address (192.168.0.0/16, private)"],
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(notification(config.clone()), expected, "{config}");
        }
    }
}
