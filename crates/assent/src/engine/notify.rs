//! Delivering notification steps: email through the operator's SMTP server, Slack messages
//! through the chat API (channel ids) or an incoming webhook (URLs), each result judged as the
//! reference counts it. The core has rendered the message; nothing here reads a template.

use crate::clock::Clock;
use crate::outbound::{Answer, Failure, Outbound, Request};
use crate::smtp::{Mail, Mailer, SmtpError};
use assent_core::address::{check_url, AddressPolicy, Refusal};
use assent_core::engine::{NotificationMessage, WorkOutcome};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The chat API's base URL unless the operator gives another.
pub const SLACK_API_BASE_URL_DEFAULT: &str = "https://slack.com/api";
/// How long one Slack request may take, answer included.
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a Slack answer read at most.
const SLACK_ANSWER_MAX_BYTES: usize = 64 * 1024;
/// Slack errors that may pass: everything else Slack says is the definition's or the
/// operator's to fix.
const SLACK_TRANSIENT_ERRORS: [&str; 6] = [
    "rate_limited",
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

const EMAIL_DELIVERY_FAILED: &str = "notification-email-delivery-failed";
const SLACK_API_ERROR: &str = "notification-slack-api-error";

/// The notification options of `assent serve`, as given. Not `Debug`: it holds secrets.
#[derive(Clone)]
pub struct NotificationSettings {
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    pub slack_bot_token: Option<String>,
    pub slack_api_base_url: String,
}

impl Default for NotificationSettings {
    fn default() -> NotificationSettings {
        NotificationSettings {
            smtp_url: None,
            smtp_from: None,
            slack_bot_token: None,
            slack_api_base_url: SLACK_API_BASE_URL_DEFAULT.to_owned(),
        }
    }
}

/// The checked notification options: what a server can send with.
pub struct Notifications {
    mailer: Option<Mailer>,
    slack_bot_token: Option<String>,
    slack_api_base_url: String,
}

impl Default for Notifications {
    /// Nothing configured: email steps and Slack channel-id steps fail as not configured.
    fn default() -> Notifications {
        Notifications {
            mailer: None,
            slack_bot_token: None,
            slack_api_base_url: SLACK_API_BASE_URL_DEFAULT.to_owned(),
        }
    }
}

impl fmt::Debug for Notifications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifications")
            .field("mailer", &self.mailer)
            .field("slack_bot_token", &self.slack_bot_token.as_ref().map(|_| "<set>"))
            .field("slack_api_base_url", &self.slack_api_base_url)
            .finish()
    }
}

impl Notifications {
    /// Checks the settings. SMTP over TLS trusts the built-in roots and `extra_ca_pem` (the
    /// `--webhook-ca-file`); the Slack API base URL must pass the address guard's `policy`,
    /// as every request to it will be checked again.
    pub fn new(
        settings: &NotificationSettings,
        extra_ca_pem: Option<&[u8]>,
        policy: &AddressPolicy,
    ) -> Result<Notifications, String> {
        let mailer = match (&settings.smtp_url, &settings.smtp_from) {
            (Some(url), Some(from)) => {
                Some(Mailer::new(url, from, extra_ca_pem).map_err(|e| format!("--smtp-url: {e}"))?)
            }
            (None, None) => None,
            _ => return Err("--smtp-url and --smtp-from go together: give both or neither".into()),
        };
        let base = settings.slack_api_base_url.trim_end_matches('/');
        check_url(base, policy).map_err(|refusal| {
            format!("--slack-api-base-url {refusal} (a --webhook-allow entry can exempt it)")
        })?;
        let slack_bot_token = settings.slack_bot_token.clone().filter(|t| !t.trim().is_empty());
        Ok(Notifications { mailer, slack_bot_token, slack_api_base_url: base.to_owned() })
    }
}

/// Sends notifications with the server's settings, its guarded HTTP client and its clock.
pub struct Notifier {
    notifications: Notifications,
    outbound: Outbound,
    clock: Arc<dyn Clock>,
}

impl Notifier {
    pub fn new(notifications: Notifications, outbound: Outbound, clock: Arc<dyn Clock>) -> Self {
        Notifier { notifications, outbound, clock }
    }

    /// Sends one message and says how it went.
    pub async fn send(&self, message: &NotificationMessage) -> WorkOutcome {
        match message {
            NotificationMessage::Email { recipients, subject, body, html } => {
                let date_ms = self.clock.now_ms();
                let mail =
                    Mail { recipients, subject: subject.as_deref(), body, html: *html, date_ms };
                self.email(&mail).await
            }
            NotificationMessage::Slack { target, text, blocks } => {
                let mut body = Map::new();
                if let Some(text) = text {
                    body.insert("text".into(), json!(text));
                }
                if let Some(blocks) = blocks {
                    body.insert("blocks".into(), blocks.clone());
                }
                let is_webhook = target.contains("://");
                if is_webhook {
                    self.slack_webhook(target, body).await
                } else {
                    self.slack_api(target, body).await
                }
            }
        }
    }

    /// Email: delivered when at least one recipient was accepted; none accepted is retried.
    async fn email(&self, mail: &Mail<'_>) -> WorkOutcome {
        let Some(mailer) = &self.notifications.mailer else {
            let message = "no SMTP server is configured (start the server with --smtp-url and \
                           --smtp-from)";
            return failed(
                Channel::Email,
                Retry::Terminal,
                "notification-email-not-configured",
                message,
            );
        };
        let sent = match mailer.send(mail).await {
            Ok(sent) => sent,
            Err(error) => return smtp_failed(error),
        };
        if sent.accepted.is_empty() {
            tracing::warn!(refused = sent.refused.len(), "the SMTP server accepted no recipient");
            let refused = sent.refused.len();
            let message = format!("the SMTP server accepted no recipient ({refused} refused)");
            return failed(Channel::Email, Retry::Transient, EMAIL_DELIVERY_FAILED, &message);
        }
        if !sent.refused.is_empty() {
            tracing::warn!(
                accepted = sent.accepted.len(),
                refused = sent.refused.len(),
                "the SMTP server refused some recipients"
            );
        }
        let output = json!({
            "channel": "email",
            "acceptedRecipients": sent.accepted,
            "refusedRecipients": sent.refused,
            "messageId": sent.message_id,
        });
        delivered(output)
    }

    /// `chat.postMessage` with the bot token.
    async fn slack_api(&self, channel: &str, mut body: Map<String, Value>) -> WorkOutcome {
        let Some(token) = &self.notifications.slack_bot_token else {
            let message = "no Slack bot token is configured (start the server with \
                           --slack-bot-token), which a channel id needs";
            return failed(
                Channel::Slack,
                Retry::Terminal,
                "notification-slack-not-configured",
                message,
            );
        };
        body.insert("channel".into(), json!(channel));
        let url = format!("{}/chat.postMessage", self.notifications.slack_api_base_url);
        let headers = vec![
            ("authorization".to_owned(), format!("Bearer {token}")),
            ("content-type".to_owned(), "application/json; charset=utf-8".to_owned()),
        ];
        let answer = match self.post(&url, headers, &body).await {
            Ok(answer) => answer,
            Err(failure) => return unsent(failure),
        };
        if let Some(outcome) = http_failure(&answer) {
            return outcome;
        }
        api_answer(&answer)
    }

    /// An incoming webhook: a 2xx answer is delivery.
    async fn slack_webhook(&self, url: &str, body: Map<String, Value>) -> WorkOutcome {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let answer = match self.post(url, headers, &body).await {
            Ok(answer) => answer,
            Err(failure) => return unsent(failure),
        };
        match http_failure(&answer) {
            Some(outcome) => outcome,
            None => delivered(json!({ "channel": "slack" })),
        }
    }

    async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: &Map<String, Value>,
    ) -> Result<Answer, Failure> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let request = Request {
            method: Method::POST,
            url,
            headers,
            body: Some(body.into()),
            timeout: SLACK_TIMEOUT,
            max_answer_bytes: SLACK_ANSWER_MAX_BYTES,
        };
        self.outbound.send(request).await
    }
}

#[derive(Clone, Copy)]
enum Channel {
    Email,
    Slack,
}

/// `retryClass` of `step.failed`.
#[derive(Clone, Copy)]
enum Retry {
    Transient,
    Terminal,
}

fn failed(channel: Channel, retry: Retry, code: &str, message: &str) -> WorkOutcome {
    let channel = match channel {
        Channel::Email => "email",
        Channel::Slack => "slack",
    };
    let (code, message) = (code.to_owned(), message.to_owned());
    match retry {
        Retry::Transient => {
            let data = json!({ "channel": channel, "retryClass": "transient" });
            WorkOutcome::TransientFailure { code, message, data }
        }
        Retry::Terminal => {
            let data = json!({ "channel": channel, "retryClass": "terminal" });
            WorkOutcome::PermanentFailure { code, message, data }
        }
    }
}

fn delivered(output: Value) -> WorkOutcome {
    match output {
        Value::Object(output) => WorkOutcome::Delivered { output },
        _ => WorkOutcome::Delivered { output: Map::new() },
    }
}

fn smtp_failed(error: SmtpError) -> WorkOutcome {
    tracing::warn!(detail = %error.detail, "email not sent: {}", error.message);
    let retry = if error.permanent { Retry::Terminal } else { Retry::Transient };
    failed(Channel::Email, retry, EMAIL_DELIVERY_FAILED, &error.message)
}

/// A request that got no answer: refused by the address guard (for good), or not through.
fn unsent(failure: Failure) -> WorkOutcome {
    let (name, message) = match &failure {
        Failure::Refused(refusal) => {
            let code = format!("notification-slack-ssrf-blocked:{}", rule_of(refusal));
            let message = format!("the Slack URL {refusal}");
            return failed(Channel::Slack, Retry::Terminal, &code, &message);
        }
        Failure::Unresolved => ("unresolved", "the Slack host name did not resolve"),
        Failure::Timeout => ("timeout", "Slack did not answer in time"),
        Failure::Connection(detail) => {
            tracing::warn!(detail = %detail, "Slack request failed");
            ("connection-failed", "the connection to Slack failed")
        }
    };
    failed(Channel::Slack, Retry::Transient, &format!("{SLACK_API_ERROR}:{name}"), message)
}

/// The rule a refusal names, as one word: the range for an address (`10.0.0.0/8`).
fn rule_of(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Malformed => "malformed-url".to_owned(),
        Refusal::Scheme => "scheme".to_owned(),
        Refusal::Userinfo => "userinfo".to_owned(),
        Refusal::NamedHost(_) => "named-host".to_owned(),
        Refusal::Range { range, .. } => {
            range.split(',').next().unwrap_or(range).trim().replace(' ', "-")
        }
    }
}

/// A non-2xx answer: 429 and 5xx may pass, the rest will not. Slack names the error in the
/// body of a webhook's answer (`channel_not_found`); otherwise the status is the name.
fn http_failure(answer: &Answer) -> Option<WorkOutcome> {
    if (200..300).contains(&answer.status) {
        return None;
    }
    let body = std::str::from_utf8(&answer.body).unwrap_or_default().trim();
    let name = error_name(body).unwrap_or_else(|| format!("http-{}", answer.status));
    let message = format!("Slack answered HTTP {} ({name})", answer.status);
    let code = format!("{SLACK_API_ERROR}:{name}");
    let passes = answer.status == 429 || answer.status >= 500;
    let retry = if passes { Retry::Transient } else { Retry::Terminal };
    Some(failed(Channel::Slack, retry, &code, &message))
}

/// The chat API answers HTTP 200 with `{ok, error}`.
fn api_answer(answer: &Answer) -> WorkOutcome {
    let Ok(json) = serde_json::from_slice::<Value>(&answer.body) else {
        let code = format!("{SLACK_API_ERROR}:unreadable-answer");
        return failed(Channel::Slack, Retry::Terminal, &code, "Slack's answer is not JSON");
    };
    if json["ok"] == true {
        let output =
            json!({ "channel": "slack", "slackChannel": json["channel"], "ts": json["ts"] });
        return delivered(output);
    }
    let name = json["error"].as_str().and_then(error_name).unwrap_or_else(|| "unknown".into());
    let message = format!("Slack refused the message ({name})");
    let passes = SLACK_TRANSIENT_ERRORS.contains(&name.as_str());
    let retry = if passes { Retry::Transient } else { Retry::Terminal };
    failed(Channel::Slack, retry, &format!("{SLACK_API_ERROR}:{name}"), &message)
}

/// A Slack error name (`channel_not_found`): short, lower case, digits and `_` only, so that
/// nothing else a server says reaches a step's error.
fn error_name(text: &str) -> Option<String> {
    let is_name = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    is_name.then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: HeaderMap::new(),
            body: body.to_owned().into(),
            truncated: false,
            latency: Duration::ZERO,
        }
    }

    fn code_and_class(outcome: &WorkOutcome) -> (String, &'static str) {
        match outcome {
            WorkOutcome::TransientFailure { code, .. } => (code.clone(), "transient"),
            WorkOutcome::PermanentFailure { code, .. } => (code.clone(), "terminal"),
            WorkOutcome::Delivered { .. } => ("delivered".into(), "-"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn chat_api_answers() {
        let api = "notification-slack-api-error";
        let cases = [
            (200, r#"{"ok":true,"channel":"C1","ts":"1.2"}"#, "delivered".to_owned(), "-"),
            (
                200,
                r#"{"ok":false,"error":"channel_not_found"}"#,
                format!("{api}:channel_not_found"),
                "terminal",
            ),
            (
                200,
                r#"{"ok":false,"error":"invalid_auth"}"#,
                format!("{api}:invalid_auth"),
                "terminal",
            ),
            (
                200,
                r#"{"ok":false,"error":"ratelimited"}"#,
                format!("{api}:ratelimited"),
                "transient",
            ),
            (
                200,
                r#"{"ok":false,"error":"internal_error"}"#,
                format!("{api}:internal_error"),
                "transient",
            ),
            (200, r#"{"ok":false,"error":"Some <html>"}"#, format!("{api}:unknown"), "terminal"),
            (200, "<html>", format!("{api}:unreadable-answer"), "terminal"),
            (429, "", format!("{api}:http-429"), "transient"),
            (503, "upstream down", format!("{api}:http-503"), "transient"),
            (404, "channel_not_found", format!("{api}:channel_not_found"), "terminal"),
            (400, "invalid_payload", format!("{api}:invalid_payload"), "terminal"),
            (302, "", format!("{api}:http-302"), "terminal"),
        ];
        for (status, body, code, class) in cases {
            let a = answer(status, body);
            let outcome = http_failure(&a).unwrap_or_else(|| api_answer(&a));
            assert_eq!(code_and_class(&outcome), (code, class), "{status} {body}");
        }
    }

    #[test]
    fn settings_are_checked_at_start() {
        let policy = AddressPolicy::default();
        let slack = |base: &str| NotificationSettings {
            slack_api_base_url: base.into(),
            ..NotificationSettings::default()
        };
        let checked = Notifications::new(&slack("https://slack.com/api/"), None, &policy);
        assert_eq!(checked.map(|n| n.slack_api_base_url).as_deref(), Ok("https://slack.com/api"));
        let refused = [
            ("https://localhost/api", "--slack-api-base-url host \"localhost\" is not allowed"),
            ("http://slack.com/api", "--slack-api-base-url must use https scheme"),
        ];
        for (base, words) in refused {
            let err = Notifications::new(&slack(base), None, &policy).unwrap_err();
            assert!(err.contains(words), "{base}: {err}");
        }
        let half = NotificationSettings {
            smtp_url: Some("smtp://mail.example.com".into()),
            ..NotificationSettings::default()
        };
        let err = Notifications::new(&half, None, &policy).unwrap_err();
        assert!(err.contains("give both or neither"), "{err}");
        let bad_from = NotificationSettings { smtp_from: Some("nobody".into()), ..half };
        let err = Notifications::new(&bad_from, None, &policy).unwrap_err();
        assert!(err.contains("--smtp-from"), "{err}");
    }

    #[test]
    fn refusal_rules() {
        let range =
            Refusal::Range { address: "10.0.0.1".parse().unwrap(), range: "10.0.0.0/8, private" };
        let outside = Refusal::Range {
            address: "3000::1".parse().unwrap(),
            range: "outside 2000::/3, reserved",
        };
        let named = Refusal::NamedHost("localhost".into());
        assert_eq!(rule_of(&range), "10.0.0.0/8");
        assert_eq!(rule_of(&outside), "outside-2000::/3");
        assert_eq!(rule_of(&named), "named-host");
        assert_eq!(rule_of(&Refusal::Scheme), "scheme");
    }
}
