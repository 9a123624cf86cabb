//! The config of a `webhook` node: an HTTPS call to the customer's endpoint.

use crate::address::AddressPolicy;
use crate::issue::Path;
use crate::model::{
    HttpMethod, WebhookAuthMode, WebhookBody, WebhookMode, WebhookNodeConfig,
    WEBHOOK_NODE_TIMEOUT_DEFAULT_MS,
};
use crate::schema::check::{Checker, Object, Str};
use crate::schema::fields::{self, clean_since};
use serde_json::Value;

const KEYS: [&str; 9] = [
    "url",
    "mode",
    "method",
    "authMode",
    "authTokenHeader",
    "timeoutMs",
    "expectedStatusCodes",
    "bodyTemplate",
    "requestHeaders",
];

const TOKEN_NEEDS_HEADER: &str =
    "webhook node with authMode=\"token\" requires authTokenHeader to be set";

/// Most extra headers a node may send; the reference sets no number, so this is Assent's.
const REQUEST_HEADERS_MAX: usize = 64;
const HEADER_NAME_MAX: usize = 256;
const HEADER_VALUE: Str<'static> = Str::len(0, 2000);

pub fn config(
    c: &mut Checker,
    policy: &AddressPolicy,
    v: Option<&Value>,
    path: &Path,
) -> Option<WebhookNodeConfig> {
    let mark = c.issues.len();
    let obj = c.object(v, path, &KEYS)?;
    let at = |key: &str| path.key(key);
    let url = fields::guarded_url(c, policy, obj.get("url"), &at("url"), "url");
    let mode = c.opt_enumeration(obj.get("mode"), &at("mode"), &["sync", "async"]);
    let method = c.opt_enumeration(obj.get("method"), &at("method"), &["GET", "POST"]);
    let auth_mode =
        c.opt_enumeration(obj.get("authMode"), &at("authMode"), &["hmac", "token", "none"]);
    let token_header = auth_token_header(c, obj.get("authTokenHeader"), &at("authTokenHeader"));
    let timeout_ms = fields::opt_uint(c, obj.get("timeoutMs"), &at("timeoutMs"), 1000, 60_000);
    let codes = status_codes(c, obj.get("expectedStatusCodes"), &at("expectedStatusCodes"));
    let bodies = ["envelope", "pass-through", "none"];
    let body = c.opt_enumeration(obj.get("bodyTemplate"), &at("bodyTemplate"), &bodies);
    let headers = request_headers(c, obj.get("requestHeaders"), &at("requestHeaders"));
    pairing_rules(c, obj, path);

    if !clean_since(c, mark) {
        return None;
    }
    Some(WebhookNodeConfig {
        url: url?,
        mode: if mode == Some("async") { WebhookMode::Async } else { WebhookMode::Sync },
        method: if method == Some("GET") { HttpMethod::Get } else { HttpMethod::Post },
        auth_mode: match auth_mode {
            None | Some("hmac") => WebhookAuthMode::Hmac,
            Some("token") => WebhookAuthMode::Token,
            Some(_) => WebhookAuthMode::None,
        },
        auth_token_header: token_header,
        timeout_ms: timeout_ms.unwrap_or(WEBHOOK_NODE_TIMEOUT_DEFAULT_MS),
        expected_status_codes: codes,
        body_template: match body {
            None | Some("envelope") => WebhookBody::Envelope,
            Some("pass-through") => WebhookBody::PassThrough,
            Some(_) => WebhookBody::None,
        },
        request_headers: headers.unwrap_or_default(),
    })
}

/// Rules across fields, judged on what was written.
fn pairing_rules(c: &mut Checker, obj: &Object, path: &Path) {
    let token_auth = obj.get("authMode").and_then(Value::as_str) == Some("token");
    if token_auth && !fields::is_filled_string(obj.get("authTokenHeader")) {
        c.exact(&path.key("authTokenHeader"), TOKEN_NEEDS_HEADER);
    }
    let no_body = obj.get("bodyTemplate").and_then(Value::as_str) == Some("none");
    let get = obj.get("method").and_then(Value::as_str) == Some("GET");
    if no_body && !get {
        c.custom(&path.key("bodyTemplate"), "bodyTemplate \"none\" requires method \"GET\"");
    }
}

/// The header that carries the dispatch's token: a header Assent does not set itself.
fn auth_token_header(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<String> {
    // An empty name is reported by the token rule when it matters.
    let name = c.opt_string(v, path, Str::len(0, 500))?;
    if let Some(problem) = fields::header_name_problem(&name, true).filter(|_| !name.is_empty()) {
        c.custom(path, problem);
        return None;
    }
    Some(name)
}

/// `expectedStatusCodes`; an empty list is taken as absent, so the 2xx rule applies.
fn status_codes(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<Vec<u16>> {
    let codes = fields::list(c, v, path, (0, 20), false, |c, v, p| {
        fields::uint::<u16>(c, Some(v), p, 100, 599)
    })?;
    (!codes.is_empty()).then_some(codes)
}

fn request_headers(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
) -> Option<Vec<(String, String)>> {
    let obj = c.any_object(v, path, false)?;
    let mark = c.issues.len();
    if obj.len() > REQUEST_HEADERS_MAX {
        c.custom(path, format!("At most {REQUEST_HEADERS_MAX} request headers are allowed"));
    }
    let mut headers = Vec::with_capacity(obj.len());
    for (name, value) in obj {
        let at = path.key(name);
        let value = c.string(Some(value), &at, HEADER_VALUE);
        let name_problem = if name.len() > HEADER_NAME_MAX {
            Some(format!("Header names are at most {HEADER_NAME_MAX} characters"))
        } else {
            fields::header_name_problem(name, false)
        };
        if let Some(problem) = name_problem {
            c.custom(&at, problem);
        }
        let injects =
            value.as_deref().is_some_and(|v| v.chars().any(|ch| ch.is_control() && ch != '\t'));
        if injects {
            c.custom(&at, "Header values must not contain control characters such as CR or LF");
        }
        headers.extend(value.map(|value| (name.clone(), value)));
    }
    clean_since(c, mark).then_some(headers)
}

#[cfg(test)]
mod tests {
    use crate::model::{HttpMethod, NodeConfig, WebhookAuthMode, WebhookBody, WebhookMode};
    use crate::schema::testkit::{issues, parse_config, problems, with_config};
    use serde_json::json;

    fn webhook(extra: serde_json::Value) -> Vec<String> {
        let mut config = json!({"url": "https://cms.example.com/hook"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        problems(&with_config("webhook", config))
            .into_iter()
            .map(|p| p.trim_start_matches("nodes.0.config.").to_owned())
            .collect()
    }

    #[test]
    fn defaults_are_filled_in() {
        let NodeConfig::Webhook(config) =
            parse_config("webhook", json!({"url": "https://cms.example.com/hook"}))
        else {
            panic!("not a webhook node");
        };
        assert_eq!(config.mode, WebhookMode::Sync);
        assert_eq!(config.method, HttpMethod::Post);
        assert_eq!(config.auth_mode, WebhookAuthMode::Hmac);
        assert_eq!(config.timeout_ms, 10_000);
        assert_eq!(config.body_template, WebhookBody::Envelope);
        assert_eq!(config.expected_status_codes, None);
        assert!(config.request_headers.is_empty());
    }

    #[test]
    fn token_auth_needs_its_header() {
        let found = issues(&with_config(
            "webhook",
            json!({"url": "https://x.example", "authMode": "token"}),
        ));
        assert_eq!(found.len(), 1);
        assert!(found[0].exact);
        assert_eq!(found[0].path.to_string(), "nodes.0.config.authTokenHeader");
        assert_eq!(
            found[0].headline(),
            "webhook node with authMode=\"token\" requires authTokenHeader to be set"
        );
    }

    #[test]
    fn fields_and_limits() {
        let twenty: Vec<u16> = (200..220).collect();
        let twenty_one: Vec<u16> = (200..221).collect();
        let cases: Vec<(serde_json::Value, Vec<&str>)> =
            vec![
            (json!({}), vec![]),
            (json!({"url": "http://cms.example.com/hook"}), vec!["url: url must use https scheme"]),
            (
                json!({"url": "https://10.0.0.1/hook"}),
                vec![
                    "url: url host resolves to a private, loopback, or link-local address \
                     (10.0.0.0/8, private)",
                ],
            ),
            (
                json!({"url": "https://127.0.0.1/x"}),
                vec![
                    "url: url host resolves to a private, loopback, or link-local address \
                     (127.0.0.0/8, loopback)",
                ],
            ),
            (
                json!({"url": "https://metadata/x"}),
                vec!["url: url host \"metadata\" is not allowed"],
            ),
            (json!({"url": format!("https://e.com/{}", "a".repeat(1986))}), vec![]),
            (
                json!({"url": format!("https://e.com/{}", "a".repeat(1987))}),
                vec!["url: String must contain at most 2000 character(s)"],
            ),
            (json!({"url": null}), vec!["url: Expected string, received null"]),
            (json!({"authMode": "token", "authTokenHeader": "Authorization"}), vec![]),
            (
                json!({"authMode": "token", "authTokenHeader": "x-".repeat(250) + "x"}),
                vec!["authTokenHeader: String must contain at most 500 character(s)"],
            ),
            (
                json!({"authMode": "token", "authTokenHeader": "X-Velt-Token"}),
                vec!["authTokenHeader: Header \"X-Velt-Token\" is reserved: x-velt-* headers are \
                 set by Assent"],
            ),
            (
                json!({"authMode": "bearer"}),
                vec!["authMode: Invalid enum value. Expected 'hmac' | 'token' | 'none', received \
                 'bearer'"],
            ),
            (json!({"mode": "async", "method": "GET", "bodyTemplate": "none"}), vec![]),
            (
                json!({"bodyTemplate": "none"}),
                vec!["bodyTemplate: bodyTemplate \"none\" requires method \"GET\""],
            ),
            (
                json!({"method": "PUT"}),
                vec!["method: Invalid enum value. Expected 'GET' | 'POST', received 'PUT'"],
            ),
            (
                json!({"timeoutMs": 999}),
                vec!["timeoutMs: Number must be greater than or equal to 1000"],
            ),
            (json!({"timeoutMs": 1000}), vec![]),
            (json!({"timeoutMs": 60_000}), vec![]),
            (
                json!({"timeoutMs": 60_001}),
                vec!["timeoutMs: Number must be less than or equal to 60000"],
            ),
            (json!({"expectedStatusCodes": twenty}), vec![]),
            (
                json!({"expectedStatusCodes": twenty_one}),
                vec!["expectedStatusCodes: Array must contain at most 20 element(s)"],
            ),
            (
                json!({"expectedStatusCodes": [99, 100, 599, 600]}),
                vec!["expectedStatusCodes.0: Number must be greater than or equal to \
                 100", "expectedStatusCodes.3: Number must be less than or equal to 599"],
            ),
            (json!({"requestHeaders": {"X-Tenant": "acme", "Accept": "application/json"}}), vec![]),
            (
                json!({"requestHeaders": {"x-velt-signature": "v"}}),
                vec!["requestHeaders.x-velt-signature: Header \"x-velt-signature\" is reserved: \
                 x-velt-* headers are set by Assent"],
            ),
            (
                json!({"requestHeaders": {"HOST": "v"}}),
                vec!["requestHeaders.HOST: Header \"HOST\" is reserved: Assent's HTTP client sets \
                 it"],
            ),
            (
                json!({"requestHeaders": {"Authorization": "Bearer s"}}),
                vec!["requestHeaders.Authorization: Header \"Authorization\" is reserved: send \
                 credentials with authMode \"token\""],
            ),
            (
                json!({"requestHeaders": {"bad name": "v"}}),
                vec!["requestHeaders.bad name: Invalid header name \"bad name\""],
            ),
            (
                json!({"requestHeaders": {"X-A": "a\r\nX-B: b"}}),
                vec!["requestHeaders.X-A: Header values must not contain control characters such \
                 as CR or LF"],
            ),
            (json!({"requestHeaders": {"X-A": "a".repeat(2000)}}), vec![]),
            (
                json!({"requestHeaders": {"X-A": "a".repeat(2001)}}),
                vec!["requestHeaders.X-A: String must contain at most 2000 character(s)"],
            ),
            (
                json!({"requestHeaders": {"X-A": 1}}),
                vec!["requestHeaders.X-A: Expected string, received number"],
            ),
            (
                json!({"retries": 3}),
                vec!["nodes.0.config: Unrecognized key(s) in object: 'retries'"],
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(webhook(extra.clone()), expected, "{extra}");
        }
    }

    #[test]
    fn request_headers_are_bounded() {
        let headers: serde_json::Map<String, serde_json::Value> =
            (0..65).map(|i| (format!("x-h{i}"), json!("v"))).collect();
        assert_eq!(
            webhook(json!({"requestHeaders": headers})),
            ["requestHeaders: At most 64 request headers are allowed"]
        );
    }
}
