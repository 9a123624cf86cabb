//! The config of an `agent` node: which agent runner job to start, against which page, and
//! how long to wait for it.

use crate::issue::Path;
use crate::model::{
    AgentConfig, ResolutionPolicy, AGENT_MAX_RUNTIME_DEFAULT_MS, AGENT_POLL_INTERVAL_DEFAULT_MS,
};
use crate::schema::check::{Checker, Object, Str};
use crate::schema::fields::{self, clean_since};
use serde_json::Value;

const KEYS: [&str; 14] = [
    "agentId",
    "url",
    "urlPath",
    "crossPageExecute",
    "maxUrlsToProcess",
    "userContextMapping",
    "promptOverride",
    "inputMapping",
    "pollIntervalMs",
    "agentMaxRuntimeMs",
    "aiConfig",
    "blocking",
    "resolutionPolicy",
    "requireNonEmptyOutput",
];

const NEEDS_URL: &str = "agent node requires either a static \"url\" or a \"urlPath\"";
const BLOCKING_NEEDS_POLICY: &str = "resolutionPolicy required when blocking === true";
const MIN_COUNT_REQUIRED: &str = "minCount required when kind === \"minResolved\"";

/// Longest `agentMaxRuntimeMs`: one day.
const RUNTIME_MAX_MS: i64 = 24 * 60 * 60 * 1000;

/// Dot-paths into the trigger context, and mapped input values.
const MAPPING_VALUE: Str<'static> = Str::len(0, 2000);

pub fn config(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<AgentConfig> {
    let mark = c.issues.len();
    let obj = c.object(v, path, &KEYS)?;
    let at = |key: &str| path.key(key);
    let agent_id = c.string(obj.get("agentId"), &at("agentId"), Str::len(1, 128));
    let url = fields::opt_http_url(c, obj.get("url"), &at("url"));
    let url_path = c.opt_string(obj.get("urlPath"), &at("urlPath"), Str::len(0, 500));
    let cross_page = c.opt_bool(obj.get("crossPageExecute"), &at("crossPageExecute"));
    let max_urls =
        fields::opt_uint(c, obj.get("maxUrlsToProcess"), &at("maxUrlsToProcess"), 1, 500);
    let user_context = fields::string_map(
        c,
        obj.get("userContextMapping"),
        &at("userContextMapping"),
        MAPPING_VALUE,
    );
    let prompt = c.opt_string(obj.get("promptOverride"), &at("promptOverride"), Str::len(0, 8000));
    let input_mapping =
        fields::string_map(c, obj.get("inputMapping"), &at("inputMapping"), MAPPING_VALUE);
    let poll = fields::opt_uint(c, obj.get("pollIntervalMs"), &at("pollIntervalMs"), 5000, 60_000);
    let runtime_path = at("agentMaxRuntimeMs");
    let runtime =
        fields::opt_uint(c, obj.get("agentMaxRuntimeMs"), &runtime_path, 1, RUNTIME_MAX_MS);
    let ai_config = ai_config(c, obj.get("aiConfig"), &at("aiConfig"));
    let blocking = c.opt_bool(obj.get("blocking"), &at("blocking"));
    let resolution = resolution_policy(c, obj.get("resolutionPolicy"), &at("resolutionPolicy"));
    let non_empty = c.opt_bool(obj.get("requireNonEmptyOutput"), &at("requireNonEmptyOutput"));
    pairing_rules(c, obj, path);

    if !clean_since(c, mark) {
        return None;
    }
    Some(AgentConfig {
        agent_id: agent_id?,
        url,
        url_path,
        cross_page_execute: cross_page.unwrap_or(false),
        max_urls_to_process: max_urls,
        user_context_mapping: user_context,
        prompt_override: prompt,
        input_mapping,
        poll_interval_ms: poll.unwrap_or(AGENT_POLL_INTERVAL_DEFAULT_MS),
        agent_max_runtime_ms: runtime.unwrap_or(AGENT_MAX_RUNTIME_DEFAULT_MS),
        ai_config,
        blocking,
        resolution_policy: resolution,
        require_non_empty_output: non_empty,
    })
}

/// Rules across fields, judged on what was written: an empty string counts as absent, as it
/// does for the hosted engine's JavaScript.
fn pairing_rules(c: &mut Checker, obj: &Object, path: &Path) {
    let has_target =
        fields::is_filled_string(obj.get("url")) || fields::is_filled_string(obj.get("urlPath"));
    if !has_target {
        c.exact(path, NEEDS_URL);
    }
    let blocking = obj.get("blocking") == Some(&Value::Bool(true));
    if blocking && !obj.contains_key("resolutionPolicy") {
        c.exact(&path.key("resolutionPolicy"), BLOCKING_NEEDS_POLICY);
    }
}

fn resolution_policy(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<ResolutionPolicy> {
    let obj = c.opt_object(v, path, &["kind", "minCount"])?;
    let kind = c.enumeration(obj.get("kind"), &path.key("kind"), &["allResolved", "minResolved"]);
    let min_count: Option<u32> =
        fields::opt_uint(c, obj.get("minCount"), &path.key("minCount"), 1, 500);
    match kind? {
        "allResolved" => Some(ResolutionPolicy::AllResolved),
        _ if !obj.contains_key("minCount") => {
            c.exact(&path.key("minCount"), MIN_COUNT_REQUIRED);
            None
        }
        _ => Some(ResolutionPolicy::MinResolved { min_count: min_count? }),
    }
}

const AI_KEYS: [&str; 4] = ["provider", "model", "defaultModels", "maxToolTurns"];
const AI_PROVIDERS: [&str; 3] = ["gemini", "claude", "openai"];

/// A model name. The hosted engine keeps an allowlist that is not published, so any
/// reasonable name is accepted and the agent runner has the last word.
const MODEL: Str<'static> = Str::len(1, 128);

/// `aiConfig`, passed to the agent runner as written once checked.
fn ai_config(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
) -> Option<serde_json::Map<String, Value>> {
    let mark = c.issues.len();
    let obj = c.opt_object(v, path, &AI_KEYS)?;
    if !AI_KEYS.iter().any(|k| obj.contains_key(*k)) {
        c.custom(
            path,
            "aiConfig must set at least one of provider, model, defaultModels, maxToolTurns",
        );
    }
    c.opt_enumeration(obj.get("provider"), &path.key("provider"), &AI_PROVIDERS);
    c.opt_string(obj.get("model"), &path.key("model"), MODEL);
    default_models(c, obj.get("defaultModels"), &path.key("defaultModels"));
    c.opt_int(obj.get("maxToolTurns"), &path.key("maxToolTurns"), 1, 16);
    clean_since(c, mark).then(|| obj.clone())
}

/// `defaultModels`, whose shape the reference leaves open beyond "non-empty": accepted as a
/// list of model names or as an object of model names (by provider), with 1 to 16 entries.
fn default_models(c: &mut Checker, v: Option<&Value>, path: &Path) {
    match v {
        Some(Value::Object(_)) => {
            if fields::string_map(c, v, path, MODEL).is_some_and(|m| m.is_empty() || m.len() > 16) {
                c.custom(path, "defaultModels must name 1 to 16 models");
            }
        }
        _ => {
            c.string_list(v, path, (1, 16), MODEL, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::testkit::{parse_config, problems, with_config};
    use serde_json::json;

    fn agent(extra: serde_json::Value) -> serde_json::Value {
        let mut config = json!({"agentId": "a1", "urlPath": "doc.url"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        with_config("agent", config)
    }

    #[test]
    fn defaults_are_filled_in() {
        let crate::model::NodeConfig::Agent(config) =
            parse_config("agent", json!({"agentId": "a", "url": "https://x.example/p"}))
        else {
            panic!("not an agent");
        };
        assert_eq!(config.poll_interval_ms, 15_000);
        assert_eq!(config.agent_max_runtime_ms, 600_000);
        assert!(!config.cross_page_execute);
    }

    #[test]
    fn limits() {
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (json!({"agentId": "a".repeat(128)}), vec![]),
            (
                json!({"agentId": "a".repeat(129)}),
                vec!["agentId: String must contain at most 128 character(s)"],
            ),
            (json!({"agentId": ""}), vec!["agentId: String must contain at least 1 character(s)"]),
            (json!({"url": "https://example.com/doc"}), vec![]),
            (json!({"url": "http://example.com/doc"}), vec![]),
            (json!({"url": "example.com/doc"}), vec!["url: Invalid url"]),
            (json!({"url": "ftp://example.com/doc"}), vec!["url: Invalid url"]),
            (json!({"url": format!("https://e.com/{}", "a".repeat(1986))}), vec![]),
            (
                json!({"url": format!("https://e.com/{}", "a".repeat(1987))}),
                vec!["url: String must contain at most 2000 character(s)"],
            ),
            (json!({"urlPath": "a".repeat(500)}), vec![]),
            (
                json!({"urlPath": "a".repeat(501)}),
                vec!["urlPath: String must contain at most 500 character(s)"],
            ),
            (
                json!({"maxUrlsToProcess": 0}),
                vec!["maxUrlsToProcess: Number must be greater than or equal to 1"],
            ),
            (json!({"maxUrlsToProcess": 500}), vec![]),
            (
                json!({"maxUrlsToProcess": 501}),
                vec!["maxUrlsToProcess: Number must be less than or equal to 500"],
            ),
            (
                json!({"pollIntervalMs": 4999}),
                vec!["pollIntervalMs: Number must be greater than or equal to 5000"],
            ),
            (json!({"pollIntervalMs": 5000}), vec![]),
            (json!({"pollIntervalMs": 60_000}), vec![]),
            (
                json!({"pollIntervalMs": 60_001}),
                vec!["pollIntervalMs: Number must be less than or equal to 60000"],
            ),
            (
                json!({"agentMaxRuntimeMs": 0}),
                vec!["agentMaxRuntimeMs: Number must be greater than or equal to 1"],
            ),
            (json!({"agentMaxRuntimeMs": 86_400_000}), vec![]),
            (
                json!({"agentMaxRuntimeMs": 86_400_001}),
                vec!["agentMaxRuntimeMs: Number must be less than or equal to 86400000"],
            ),
            (json!({"promptOverride": "a".repeat(8000)}), vec![]),
            (
                json!({"promptOverride": "a".repeat(8001)}),
                vec!["promptOverride: String must contain at most 8000 character(s)"],
            ),
            (
                json!({"crossPageExecute": "yes"}),
                vec!["crossPageExecute: Expected boolean, received string"],
            ),
            (json!({"userContextMapping": {"user": "doc.owner"}}), vec![]),
            (
                json!({"userContextMapping": {"user": 3}}),
                vec!["userContextMapping.user: Expected string, received number"],
            ),
            (json!({"inputMapping": {"tone": "formal"}}), vec![]),
            (json!({"inputMapping": []}), vec!["inputMapping: Expected object, received array"]),
            (json!({"requireNonEmptyOutput": true}), vec![]),
            (json!({"url": null}), vec!["url: Expected string, received null"]),
        ];
        for (extra, expected) in cases {
            let expected: Vec<String> =
                expected.iter().map(|e| format!("nodes.0.config.{e}")).collect();
            assert_eq!(problems(&agent(extra.clone())), expected, "{extra}");
        }
    }

    #[test]
    fn url_or_url_path_is_required() {
        let exact = "nodes.0.config: agent node requires either a static \"url\" or a \"urlPath\"";
        for config in [json!({"agentId": "a"}), json!({"agentId": "a", "urlPath": ""})] {
            assert_eq!(problems(&with_config("agent", config)), [exact]);
        }
        let issues = crate::schema::testkit::issues(&with_config("agent", json!({"agentId": "a"})));
        assert!(issues[0].exact);
        assert_eq!(
            issues[0].headline(),
            "agent node requires either a static \"url\" or a \"urlPath\""
        );
    }

    #[test]
    fn resolution_policy() {
        let cases: Vec<(serde_json::Value, Vec<&str>)> =
            vec![
            (json!({"blocking": true, "resolutionPolicy": {"kind": "allResolved"}}), vec![]),
            (json!({"resolutionPolicy": {"kind": "minResolved", "minCount": 1}}), vec![]),
            (json!({"resolutionPolicy": {"kind": "minResolved", "minCount": 500}}), vec![]),
            (
                json!({"resolutionPolicy": {"kind": "minResolved", "minCount": 0}}),
                vec!["resolutionPolicy.minCount: Number must be greater than or equal to 1"],
            ),
            (
                json!({"resolutionPolicy": {"kind": "minResolved", "minCount": 501}}),
                vec!["resolutionPolicy.minCount: Number must be less than or equal to 500"],
            ),
            (
                json!({"resolutionPolicy": {"kind": "minResolved"}}),
                vec!["resolutionPolicy.minCount: minCount required when kind === \"minResolved\""],
            ),
            (
                json!({"blocking": true}),
                vec!["resolutionPolicy: resolutionPolicy required when blocking === true"],
            ),
            (
                json!({"resolutionPolicy": {"kind": "some"}}),
                vec!["resolutionPolicy.kind: Invalid enum value. Expected 'allResolved' | \
                 'minResolved', received 'some'"],
            ),
        ];
        for (extra, expected) in cases {
            let expected: Vec<String> =
                expected.iter().map(|e| format!("nodes.0.config.{e}")).collect();
            assert_eq!(problems(&agent(extra.clone())), expected, "{extra}");
        }
    }

    #[test]
    fn ai_config() {
        let cases: Vec<(serde_json::Value, Vec<&str>)> =
            vec![
            (json!({"provider": "claude", "model": "any-model", "maxToolTurns": 16}), vec![]),
            (json!({"defaultModels": ["m1"]}), vec![]),
            (json!({"defaultModels": {"openai": "m1"}}), vec![]),
            (
                json!({}),
                vec!["aiConfig: aiConfig must set at least one of provider, model, defaultModels, \
                 maxToolTurns"],
            ),
            (
                json!({"defaultModels": []}),
                vec!["aiConfig.defaultModels: Array must contain at least 1 element(s)"],
            ),
            (
                json!({"defaultModels": {}}),
                vec!["aiConfig.defaultModels: defaultModels must name 1 to 16 models"],
            ),
            (
                json!({"maxToolTurns": 0}),
                vec!["aiConfig.maxToolTurns: Number must be greater than or equal to 1"],
            ),
            (
                json!({"maxToolTurns": 17}),
                vec!["aiConfig.maxToolTurns: Number must be less than or equal to 16"],
            ),
            (
                json!({"model": ""}),
                vec!["aiConfig.model: String must contain at least 1 character(s)"],
            ),
            (
                json!({"provider": "mistral"}),
                vec!["aiConfig.provider: Invalid enum value. Expected 'gemini' | 'claude' | \
                 'openai', received 'mistral'"],
            ),
            (
                json!({"temperature": 1}),
                vec![
                    "aiConfig: Unrecognized key(s) in object: 'temperature'",
                    "aiConfig: aiConfig must set at least one of provider, model, defaultModels, \
                     maxToolTurns",
                ],
            ),
        ];
        for (ai, expected) in cases {
            let expected: Vec<String> =
                expected.iter().map(|e| format!("nodes.0.config.{e}")).collect();
            assert_eq!(problems(&agent(json!({"aiConfig": ai}))), expected, "{ai}");
        }
    }
}
