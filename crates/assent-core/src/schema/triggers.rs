//! Trigger entries: an inbound webhook, a schedule or an app trigger, at most one each.

use crate::issue::Path;
use crate::model::{
    AppProvider, AppTrigger, InboundAuthMode, InboundProvider, InboundWebhook, PayloadFilter,
    PayloadMapping, Schedule, SignatureAlgorithm, Trigger,
};
use crate::schema::check::{Checker, Object, Str};
use crate::schema::fields::{self, clean_since};
use serde_json::Value;

const KEYS: [&str; 6] =
    ["triggerId", "eventName", "filters", "inboundWebhook", "schedule", "appTrigger"];
const MECHANISMS: [&str; 3] = ["inboundWebhook", "schedule", "appTrigger"];

const EVENT_NAME: Str<'static> = Str::len(1, 128);

pub fn trigger(c: &mut Checker, v: &Value, path: &Path) -> Option<Trigger> {
    let mark = c.issues.len();
    let obj = c.object(Some(v), path, &KEYS)?;
    let at = |key: &str| path.key(key);
    let trigger_id = fields::id(c, obj.get("triggerId"), &at("triggerId"), 128);
    let event_name = c.opt_string(obj.get("eventName"), &at("eventName"), Str::len(0, 128));
    let filters = c.any_object(obj.get("filters"), &at("filters"), false).cloned();
    let inbound = inbound_webhook(c, obj.get("inboundWebhook"), &at("inboundWebhook"));
    let schedule = schedule(c, obj.get("schedule"), &at("schedule"));
    let app_trigger = app_trigger(c, obj.get("appTrigger"), &at("appTrigger"));
    let mechanisms = MECHANISMS.iter().filter(|m| obj.contains_key(**m)).count();
    if mechanisms > 1 {
        let msg = "A trigger holds at most one of inboundWebhook, schedule and appTrigger: \
                   use one entry per mechanism";
        c.custom(path, msg);
    }

    if !clean_since(c, mark) {
        return None;
    }
    Some(Trigger {
        trigger_id: trigger_id?,
        event_name,
        filters,
        inbound_webhook: inbound,
        schedule,
        app_trigger,
    })
}

const INBOUND_KEYS: [&str; 11] = [
    "authMode",
    "secret",
    "provider",
    "signatureHeader",
    "signatureAlgorithm",
    "signaturePrefix",
    "eventNameHeader",
    "allowedEvents",
    "idempotencyHeader",
    "idempotencyBodyPath",
    "payloadMapping",
];

/// The fields that describe a `custom` provider's signature; other providers have presets.
const CUSTOM_ONLY: [&str; 4] =
    ["signatureHeader", "signatureAlgorithm", "signaturePrefix", "eventNameHeader"];

/// The reference's sentence names the three providers literally; it is kept as it is, whichever
/// of them was written, so a client matching on it sees the hosted engine's words.
const PROVIDER_NEEDS_HMAC: &str =
    "inboundWebhook provider=\"github\"/\"vercel\"/\"custom\" requires authMode=\"hmac\"";
const CUSTOM_NEEDS_SIGNATURE: &str = "inboundWebhook with provider=\"custom\" and \
                                      authMode=\"hmac\" requires signatureHeader and \
                                      signatureAlgorithm";

const HEADER: Str<'static> = Str::len(1, 128);

fn inbound_webhook(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<InboundWebhook> {
    let mark = c.issues.len();
    let obj = c.opt_object(v, path, &INBOUND_KEYS)?;
    let at = |key: &str| path.key(key);
    let auth_mode = c.enumeration(obj.get("authMode"), &at("authMode"), &["hmac", "bearer"]);
    let secret = c.string(obj.get("secret"), &at("secret"), Str::len(16, 512));
    let providers = ["velt", "github", "vercel", "custom"];
    let provider = c.opt_enumeration(obj.get("provider"), &at("provider"), &providers);
    let sig_header = c.opt_string(obj.get("signatureHeader"), &at("signatureHeader"), HEADER);
    let algorithms = ["sha1", "sha256"];
    let algorithm =
        c.opt_enumeration(obj.get("signatureAlgorithm"), &at("signatureAlgorithm"), &algorithms);
    let prefix = c.opt_string(obj.get("signaturePrefix"), &at("signaturePrefix"), Str::len(0, 64));
    let event_header = c.opt_string(obj.get("eventNameHeader"), &at("eventNameHeader"), HEADER);
    let allowed =
        c.string_list(obj.get("allowedEvents"), &at("allowedEvents"), (1, 50), EVENT_NAME, false);
    let idem_header = c.opt_string(obj.get("idempotencyHeader"), &at("idempotencyHeader"), HEADER);
    let body_path = at("idempotencyBodyPath");
    let idem_path = c.opt_string(obj.get("idempotencyBodyPath"), &body_path, Str::len(1, 256));
    let mappings = ["pass-through", "wrap"];
    let mapping = c.opt_enumeration(obj.get("payloadMapping"), &at("payloadMapping"), &mappings);
    // A provider that was written but not understood has no rules to judge by.
    let provider_known = provider.is_some() || !obj.contains_key("provider");
    let provider = match provider {
        None | Some("velt") => InboundProvider::Velt,
        Some("github") => InboundProvider::Github,
        Some("vercel") => InboundProvider::Vercel,
        Some(_) => InboundProvider::Custom,
    };
    if provider_known {
        provider_rules(c, provider, obj, path);
    }

    if !clean_since(c, mark) {
        return None;
    }
    Some(InboundWebhook {
        auth_mode: if auth_mode? == "hmac" {
            InboundAuthMode::Hmac
        } else {
            InboundAuthMode::Bearer
        },
        secret: secret?,
        provider,
        signature_header: sig_header,
        signature_algorithm: algorithm.map(|a| match a {
            "sha1" => SignatureAlgorithm::Sha1,
            _ => SignatureAlgorithm::Sha256,
        }),
        signature_prefix: prefix,
        event_name_header: event_header,
        allowed_events: allowed,
        idempotency_header: idem_header,
        idempotency_body_path: idem_path,
        payload_mapping: if mapping == Some("wrap") {
            PayloadMapping::Wrap
        } else {
            PayloadMapping::PassThrough
        },
    })
}

/// What each provider allows and needs, judged on what was written.
fn provider_rules(c: &mut Checker, provider: InboundProvider, obj: &Object, path: &Path) {
    let hmac = obj.get("authMode").and_then(Value::as_str) == Some("hmac");
    let bearer = obj.get("authMode").and_then(Value::as_str) == Some("bearer");
    if provider != InboundProvider::Velt && bearer {
        c.exact(&path.key("authMode"), PROVIDER_NEEDS_HMAC);
    }
    if provider == InboundProvider::Custom {
        let signed = obj.contains_key("signatureHeader") && obj.contains_key("signatureAlgorithm");
        if hmac && !signed {
            c.exact(path, CUSTOM_NEEDS_SIGNATURE);
        }
        return;
    }
    for key in CUSTOM_ONLY.iter().filter(|k| obj.contains_key(**k)) {
        c.custom(&path.key(key), format!("{key} is only for provider \"custom\""));
    }
}

const SCHEDULE_KEYS: [&str; 4] = ["cron", "timezone", "enabled", "payloadTemplate"];
const CRON_INVALID: &str = "schedule.cron must be a valid 5-field cron expression";
const TIMEZONE_INVALID: &str =
    "schedule.timezone must be a valid IANA timezone name (e.g. America/Los_Angeles)";

fn schedule(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<Schedule> {
    let mark = c.issues.len();
    let obj = c.opt_object(v, path, &SCHEDULE_KEYS)?;
    let cron = c.string(obj.get("cron"), &path.key("cron"), Str::len(0, 256));
    if cron.as_deref().is_some_and(|source| crate::cron::parse_cron(source).is_err()) {
        c.exact(&path.key("cron"), CRON_INVALID);
    }
    let timezone = c.string(obj.get("timezone"), &path.key("timezone"), Str::len(0, 128));
    if timezone.as_deref().is_some_and(|name| !crate::cron::is_valid_timezone(name)) {
        c.exact(&path.key("timezone"), TIMEZONE_INVALID);
    }
    let enabled = c.boolean(obj.get("enabled"), &path.key("enabled"));
    let template_path = path.key("payloadTemplate");
    let payload_template = c.any_object(obj.get("payloadTemplate"), &template_path, false).cloned();

    if !clean_since(c, mark) {
        return None;
    }
    Some(Schedule { cron: cron?, timezone: timezone?, enabled: enabled?, payload_template })
}

const APP_KEYS: [&str; 6] = [
    "provider",
    "installationRef",
    "repoFilter",
    "projectFilter",
    "allowedEvents",
    "payloadFilters",
];

fn app_trigger(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<AppTrigger> {
    let mark = c.issues.len();
    let obj = c.opt_object(v, path, &APP_KEYS)?;
    let at = |key: &str| path.key(key);
    let provider = c.enumeration(obj.get("provider"), &at("provider"), &["github", "vercel"]);
    let installation =
        c.string(obj.get("installationRef"), &at("installationRef"), Str::len(1, 256));
    let filter_item = Str::len(1, 256);
    let repos =
        c.string_list(obj.get("repoFilter"), &at("repoFilter"), (0, 200), filter_item, false);
    let projects =
        c.string_list(obj.get("projectFilter"), &at("projectFilter"), (0, 200), filter_item, false);
    let allowed =
        c.string_list(obj.get("allowedEvents"), &at("allowedEvents"), (1, 50), EVENT_NAME, false);
    let filters = fields::list(
        c,
        obj.get("payloadFilters"),
        &at("payloadFilters"),
        (0, 20),
        false,
        payload_filter,
    );

    if !clean_since(c, mark) {
        return None;
    }
    Some(AppTrigger {
        provider: if provider? == "github" { AppProvider::Github } else { AppProvider::Vercel },
        installation_ref: installation?,
        repo_filter: repos,
        project_filter: projects,
        allowed_events: allowed,
        payload_filters: filters?,
    })
}

/// Most values one payload filter may list.
const FILTER_VALUES_MAX: usize = 100;

/// `{path, in: [...]}`: the value at a dot-path must equal one of the listed scalars.
fn payload_filter(c: &mut Checker, v: &Value, path: &Path) -> Option<PayloadFilter> {
    let mark = c.issues.len();
    let obj = c.object(Some(v), path, &["path", "in"])?;
    let dot_path = c.string(obj.get("path"), &path.key("path"), Str::len(1, 256));
    let any_of =
        fields::list(c, obj.get("in"), &path.key("in"), (1, FILTER_VALUES_MAX), true, |c, v, p| {
            if matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Some(v.clone());
            }
            let received = crate::schema::check::type_name(v);
            c.custom(p, format!("Expected string, number or boolean, received {received}"));
            None
        });
    if !clean_since(c, mark) {
        return None;
    }
    Some(PayloadFilter { path: dot_path?, any_of: any_of? })
}

#[cfg(test)]
mod tests {
    use crate::model::{InboundProvider, PayloadMapping};
    use crate::schema::testkit::{issues, minimal, parse, problems};
    use serde_json::{json, Value};

    fn with_trigger(trigger: Value) -> Value {
        let mut body = minimal();
        body["triggers"] = json!([trigger]);
        body
    }

    fn trigger_problems(trigger: Value) -> Vec<String> {
        problems(&with_trigger(trigger))
            .into_iter()
            .map(|p| p.trim_start_matches("triggers.0").trim_start_matches('.').to_owned())
            .collect()
    }

    fn inbound(extra: Value) -> Value {
        let mut w = json!({"authMode": "hmac", "secret": "s".repeat(16)});
        for (k, v) in extra.as_object().unwrap() {
            w[k] = v.clone();
        }
        json!({"triggerId": "t1", "inboundWebhook": w})
    }

    fn schedule(cron: &str, timezone: &str) -> Value {
        let schedule = json!({"cron": cron, "timezone": timezone, "enabled": true});
        json!({"triggerId": "t1", "schedule": schedule})
    }

    #[test]
    fn inbound_defaults() {
        let spec = parse(&with_trigger(inbound(json!({})))).expect("valid");
        let hook = spec.triggers[0].inbound_webhook.as_ref().expect("inbound webhook");
        assert_eq!(hook.provider, InboundProvider::Velt);
        assert_eq!(hook.payload_mapping, PayloadMapping::PassThrough);
    }

    #[test]
    fn exact_messages() {
        let custom_hmac = "inboundWebhook with provider=\"custom\" and authMode=\"hmac\" requires \
                           signatureHeader and signatureAlgorithm";
        let needs_hmac =
            "inboundWebhook provider=\"github\"/\"vercel\"/\"custom\" requires authMode=\"hmac\"";
        let cases = [
            (
                inbound(json!({"provider": "github", "authMode": "bearer"})),
                "triggers.0.inboundWebhook.authMode",
                needs_hmac,
            ),
            (
                inbound(json!({"provider": "vercel", "authMode": "bearer"})),
                "triggers.0.inboundWebhook.authMode",
                needs_hmac,
            ),
            (
                inbound(json!({"provider": "custom", "authMode": "bearer"})),
                "triggers.0.inboundWebhook.authMode",
                needs_hmac,
            ),
            (
                inbound(json!({"provider": "custom", "signatureHeader": "x-sig"})),
                "triggers.0.inboundWebhook",
                custom_hmac,
            ),
            (
                schedule("not a cron", "UTC"),
                "triggers.0.schedule.cron",
                "schedule.cron must be a valid 5-field cron expression",
            ),
            (
                schedule("61 9 * * 1", "UTC"),
                "triggers.0.schedule.cron",
                "schedule.cron must be a valid 5-field cron expression",
            ),
            (
                schedule("@daily", "UTC"),
                "triggers.0.schedule.cron",
                "schedule.cron must be a valid 5-field cron expression",
            ),
            (
                schedule("0 9 * * 1", "Mars/Olympus"),
                "triggers.0.schedule.timezone",
                "schedule.timezone must be a valid IANA timezone name (e.g. America/Los_Angeles)",
            ),
        ];
        for (trigger, path, message) in cases {
            let found = issues(&with_trigger(trigger.clone()));
            assert_eq!(found.len(), 1, "{trigger}: {found:?}");
            assert!(found[0].exact);
            assert_eq!(
                (found[0].path.to_string().as_str(), found[0].headline().as_str()),
                (path, message)
            );
        }
    }

    const UNKNOWN_PROVIDER: &str = "inboundWebhook.provider: Invalid enum value. Expected \
                                    'velt' | 'github' | 'vercel' | 'custom', received 'gitlab'";

    #[test]
    fn trigger_problems_table() {
        let events: Vec<String> = (0..51).map(|i| format!("e{i}")).collect();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"triggerId": "t".repeat(128), "eventName": "label",
                       "filters": {"any": [1]}}),
                vec![],
            ),
            (
                json!({"triggerId": "t".repeat(129)}),
                vec!["triggerId: String must contain at most 128 character(s)"],
            ),
            (
                json!({"triggerId": "t__1"}),
                vec!["triggerId: Two underscores (\"__\") are not allowed in an id"],
            ),
            (
                json!({"triggerId": "t", "eventName": "e".repeat(129)}),
                vec!["eventName: String must contain at most 128 character(s)"],
            ),
            (
                json!({"triggerId": "t", "filters": null}),
                vec!["filters: Expected object, received null"],
            ),
            (
                json!({"triggerId": "t",
                       "schedule": {"cron": "* * * * *", "timezone": "UTC", "enabled": true},
                       "appTrigger": {"provider": "github", "installationRef": "1"}}),
                vec![
                    ": A trigger holds at most one of inboundWebhook, schedule and appTrigger: \
                     use one entry per mechanism",
                ],
            ),
            (
                inbound(json!({"provider": "custom", "signatureHeader": "x-sig",
                               "signatureAlgorithm": "sha1", "signaturePrefix": "",
                               "eventNameHeader": "x-ev"})),
                vec![],
            ),
            (
                inbound(json!({"provider": "github", "signatureHeader": "x-sig",
                               "eventNameHeader": "x-ev"})),
                vec![
                    "inboundWebhook.signatureHeader: \
                     signatureHeader is only for provider \"custom\"",
                    "inboundWebhook.eventNameHeader: \
                     eventNameHeader is only for provider \"custom\"",
                ],
            ),
            (
                inbound(json!({"secret": "s".repeat(15)})),
                vec!["inboundWebhook.secret: String must contain at least 16 character(s)"],
            ),
            (inbound(json!({"secret": "s".repeat(512)})), vec![]),
            (
                inbound(json!({"secret": "s".repeat(513)})),
                vec!["inboundWebhook.secret: String must contain at most 512 character(s)"],
            ),
            (inbound(json!({"authMode": "bearer"})), vec![]),
            (
                inbound(json!({"provider": "gitlab", "signatureHeader": "x-sig"})),
                vec![UNKNOWN_PROVIDER],
            ),
            (
                inbound(json!({"authMode": "basic"})),
                vec![
                    "inboundWebhook.authMode: Invalid enum value. Expected 'hmac' | 'bearer', \
                     received 'basic'",
                ],
            ),
            (
                inbound(json!({"allowedEvents": []})),
                vec!["inboundWebhook.allowedEvents: Array must contain at least 1 element(s)"],
            ),
            (
                inbound(json!({"allowedEvents": events})),
                vec!["inboundWebhook.allowedEvents: Array must contain at most 50 element(s)"],
            ),
            (
                inbound(json!({"idempotencyHeader": "h".repeat(129),
                               "idempotencyBodyPath": ""})),
                vec![
                    "inboundWebhook.idempotencyHeader: \
                     String must contain at most 128 character(s)",
                    "inboundWebhook.idempotencyBodyPath: \
                     String must contain at least 1 character(s)",
                ],
            ),
            (inbound(json!({"payloadMapping": "wrap"})), vec![]),
            (
                json!({"triggerId": "t", "schedule": {"cron": "0 9 * * 1", "timezone": "UTC"}}),
                vec!["schedule.enabled: Required"],
            ),
            (schedule("*/15 8-18 * * 1-5", "America/Los_Angeles"), vec![]),
            (schedule("0 0 1 * *", "Europe/Paris"), vec![]),
            (
                json!({"triggerId": "t", "schedule": {"cron": "0 9 * * 1", "timezone": "UTC",
                       "enabled": false, "payloadTemplate": {"a": 1}}}),
                vec![],
            ),
            (
                json!({"triggerId": "t", "schedule": {"cron": "0 9 * * 1", "timezone": "UTC",
                       "enabled": true, "every": "1h"}}),
                vec!["schedule: Unrecognized key(s) in object: 'every'"],
            ),
        ];
        for (trigger, expected) in cases {
            assert_eq!(trigger_problems(trigger.clone()), expected, "{trigger}");
        }
    }

    #[test]
    fn app_trigger_problems() {
        let app = |extra: Value| {
            let mut a = json!({"provider": "github", "installationRef": "12345"});
            for (k, v) in extra.as_object().unwrap() {
                a[k] = v.clone();
            }
            json!({"triggerId": "t", "appTrigger": a})
        };
        let repos: Vec<String> = (0..201).map(|i| format!("org/r{i}")).collect();
        let filters: Vec<Value> = (0..21).map(|_| json!({"path": "ref", "in": ["main"]})).collect();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                app(json!({"repoFilter": ["org/repo"], "allowedEvents": ["push"],
                           "payloadFilters": [{"path": "ref", "in": ["main", 1, true]}]})),
                vec![],
            ),
            (
                app(json!({"provider": "gitlab"})),
                vec![
                    "appTrigger.provider: Invalid enum value. Expected 'github' | 'vercel', \
                 received 'gitlab'",
                ],
            ),
            (
                app(json!({"installationRef": ""})),
                vec!["appTrigger.installationRef: String must contain at least 1 character(s)"],
            ),
            (
                app(json!({"installationRef": "1".repeat(257)})),
                vec!["appTrigger.installationRef: String must contain at most 256 character(s)"],
            ),
            (
                app(json!({"repoFilter": repos})),
                vec!["appTrigger.repoFilter: Array must contain at most 200 element(s)"],
            ),
            (
                app(json!({"allowedEvents": []})),
                vec!["appTrigger.allowedEvents: Array must contain at least 1 element(s)"],
            ),
            (
                app(json!({"payloadFilters": filters})),
                vec!["appTrigger.payloadFilters: Array must contain at most 20 element(s)"],
            ),
            (
                app(json!({"payloadFilters": [{"path": "ref", "in": []}]})),
                vec!["appTrigger.payloadFilters.0.in: Array must contain at least 1 element(s)"],
            ),
            (
                app(json!({"payloadFilters": [{"path": "ref", "in": [null]}]})),
                vec![
                    "appTrigger.payloadFilters.0.in.0: Expected string, number or boolean, \
                 received null",
                ],
            ),
            (
                app(json!({"payloadFilters": [{"in": ["x"], "equals": 1}]})),
                vec![
                    "appTrigger.payloadFilters.0: Unrecognized key(s) in object: \
                 'equals'",
                    "appTrigger.payloadFilters.0.path: Required",
                ],
            ),
            (
                app(json!({"secret": "s"})),
                vec!["appTrigger: Unrecognized key(s) in object: 'secret'"],
            ),
        ];
        for (trigger, expected) in cases {
            assert_eq!(trigger_problems(trigger.clone()), expected, "{trigger}");
        }
    }
}
