use super::*;
use crate::address::AddressPolicy;
use crate::model::PayloadFilter;
use crate::schema::definition::{parse_definition, Mode};
use std::collections::HashMap;

struct TestHeaders<'a>(HashMap<&'a str, &'a str>);

impl Headers for TestHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).copied()
    }
}

fn headers<const N: usize>(pairs: [(&'static str, &'static str); N]) -> TestHeaders<'static> {
    TestHeaders(HashMap::from(pairs))
}

/// GitHub's published example: this secret and body give this `x-hub-signature-256`.
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn github_signatures_match_github_s_published_example() {
    const HEADER: &str = "x-hub-signature-256";
    let (secret, body, signed) = (GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE);
    let upper = signed.replace("757107ea", "757107EA");
    let (invalid, missing) = (Err(Refusal::SignatureInvalid), Err(Refusal::SignatureMissing));
    // (secret, body, header, value, outcome)
    let cases = [
        (secret, body, HEADER, signed, Ok(())),
        (secret, body, HEADER, upper.as_str(), Ok(())),
        (secret, b"Hello, World?", HEADER, signed, invalid),
        ("another secret", body, HEADER, signed, invalid),
        (secret, body, HEADER, &signed[7..], invalid),
        (secret, body, "x-hub-signature", signed, missing),
    ];
    for (secret, body, header, value, expected) in cases {
        let headers = TestHeaders(HashMap::from([(header, value)]));
        let outcome = authenticate(AppProvider::Github, secret, body, &headers);
        let body = String::from_utf8_lossy(body);
        assert_eq!(outcome, expected, "{secret} {body:?} {header}: {value}");
    }
}

#[test]
fn vercel_signatures_are_bare_hmac_sha1_hex() {
    // RFC 2202, HMAC-SHA1 test case 2.
    let (secret, body) = ("Jefe", b"what do ya want for nothing?");
    let digest = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";
    let signed = headers([("x-vercel-signature", digest)]);
    assert_eq!(authenticate(AppProvider::Vercel, secret, body, &signed), Ok(()));
    let prefixed =
        headers([("x-vercel-signature", "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")]);
    let outcome = authenticate(AppProvider::Vercel, secret, body, &prefixed);
    assert_eq!(outcome, Err(Refusal::SignatureInvalid));
    let as_github = headers([("x-hub-signature-256", digest)]);
    let outcome = authenticate(AppProvider::Vercel, secret, body, &as_github);
    assert_eq!(outcome, Err(Refusal::SignatureMissing));
}

#[test]
fn installations_come_from_each_provider_s_field() {
    use AppProvider::{Github, Vercel};
    let both =
        json!({ "configurationId": "icfg_3", "payload": { "configuration": { "id": "icfg_1" } } });
    let cases = [
        (Github, json!({ "installation": { "id": 4242 } }), Some("4242")),
        (Github, json!({ "installation": { "id": "4242" } }), Some("4242")),
        (Github, json!({ "installation": { "id": 1.5 } }), None),
        (Github, json!({ "installation": { "id": "" } }), None),
        (Github, json!({ "configurationId": "icfg_1" }), None),
        (Vercel, json!({ "payload": { "configuration": { "id": "icfg_1" } } }), Some("icfg_1")),
        (Vercel, json!({ "payload": { "configurationId": "icfg_2" } }), Some("icfg_2")),
        (Vercel, json!({ "configurationId": "icfg_3", "payload": {} }), Some("icfg_3")),
        (Vercel, both, Some("icfg_1")),
        (Vercel, json!({ "payload": { "project": { "id": "prj_1" } } }), None),
    ];
    for (provider, body, expected) in cases {
        assert_eq!(installation_ref(provider, &body).as_deref(), expected, "{body}");
    }
}

#[test]
fn delivery_ids_and_events_come_from_each_provider_s_place() {
    use AppProvider::{Github, Vercel};
    let body = json!({ "id": "uHy3", "type": "deployment.succeeded", "action": "opened" });
    let github = headers([("x-github-delivery", " 72d3162e "), ("x-github-event", "push")]);
    let blank = headers([("x-github-delivery", " "), ("x-github-event", "")]);
    let none = headers([]);
    let cases = [
        (Github, &github, Some("72d3162e"), Some("push")),
        (Github, &blank, None, None),
        (Github, &none, None, None),
        (Vercel, &github, Some("uHy3"), Some("deployment.succeeded")),
        (Vercel, &none, Some("uHy3"), Some("deployment.succeeded")),
    ];
    for (provider, headers, delivery, event) in cases {
        assert_eq!(delivery_id(provider, &body, headers).as_deref(), delivery, "{provider:?}");
        assert_eq!(event_name(provider, &body, headers).as_deref(), event, "{provider:?}");
    }
    let numbered = json!({ "id": 17, "type": 3 });
    assert_eq!(delivery_id(Vercel, &numbered, &none).as_deref(), Some("17"));
    assert_eq!(event_name(Vercel, &numbered, &none), None);
}

fn trigger(provider: AppProvider, installation: &str) -> AppTrigger {
    AppTrigger {
        provider,
        installation_ref: installation.to_owned(),
        repo_filter: None,
        project_filter: None,
        allowed_events: None,
        payload_filters: Vec::new(),
    }
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

/// Triggers of installation 77 with one kind of filter.
fn github() -> AppTrigger {
    trigger(AppProvider::Github, "77")
}

fn vercel() -> AppTrigger {
    trigger(AppProvider::Vercel, "77")
}

fn events(mut trigger: AppTrigger, names: &[&str]) -> AppTrigger {
    trigger.allowed_events = strings(names);
    trigger
}

fn repos(names: &[&str]) -> AppTrigger {
    AppTrigger { repo_filter: strings(names), ..github() }
}

fn projects(mut trigger: AppTrigger, names: &[&str]) -> AppTrigger {
    trigger.project_filter = strings(names);
    trigger
}

/// A trigger with these payload filters, each `(path, [values...])`.
fn payload(filters: &[(&str, Value)]) -> AppTrigger {
    let filter = |(path, any_of): &(&str, Value)| PayloadFilter {
        path: path.to_string(),
        any_of: any_of.as_array().unwrap().clone(),
    };
    AppTrigger { payload_filters: filters.iter().map(filter).collect(), ..github() }
}

fn delivery<'a>(provider: AppProvider, event: Option<&'a str>, body: &'a Value) -> Delivery<'a> {
    Delivery { provider, installation_ref: "77", delivery_id: "d-1", event, body }
}

#[test]
fn github_filters() {
    let push = json!({
        "ref": "refs/heads/main",
        "repository": { "full_name": "Acme/Site", "private": true },
        "commits": [{ "id": "c1" }],
        "installation": { "id": 77 }
    });
    let opened = json!({ "action": "opened", "repository": { "full_name": "acme/site" } });
    let empty = json!({});
    let (p, pr) = (Some("push"), Some("pull_request"));
    let main = || ("ref", json!(["refs/heads/main"]));
    // (trigger, event, body, fires)
    let cases = [
        (github(), p, &push, true),
        (github(), None, &push, true),
        (trigger(AppProvider::Github, "78"), p, &push, false),
        (vercel(), p, &push, false),
        (events(github(), &["push"]), p, &push, true),
        (events(github(), &["release"]), p, &push, false),
        (events(github(), &["push"]), None, &push, false),
        (events(github(), &["pull_request"]), pr, &opened, true),
        (events(github(), &["pull_request.opened"]), pr, &opened, true),
        (events(github(), &["pull_request.closed"]), pr, &opened, false),
        (events(github(), &["push.opened"]), pr, &opened, false),
        (repos(&["acme/site"]), p, &push, true),
        (repos(&["acme/other", "ACME/SITE"]), p, &push, true),
        (repos(&["acme/other"]), p, &push, false),
        (repos(&[]), p, &push, true),
        (repos(&["acme/site"]), Some("ping"), &empty, false),
        (projects(github(), &["prj_1"]), p, &push, false),
        (payload(&[main()]), p, &push, true),
        (payload(&[main(), ("repository.private", json!([false]))]), p, &push, false),
        (payload(&[("installation.id", json!([76, 77.0]))]), p, &push, true),
        (payload(&[("commits.0.id", json!(["c1"]))]), p, &push, true),
        (payload(&[("missing.path", json!(["x"]))]), p, &push, false),
    ];
    for (i, (trigger, event, body, fires)) in cases.iter().enumerate() {
        let delivery = delivery(AppProvider::Github, *event, body);
        assert_eq!(delivery.fires(trigger), *fires, "case {i}: {trigger:?} {event:?}");
    }
}

#[test]
fn vercel_filters() {
    let deployed = json!({
        "id": "evt_1",
        "type": "deployment.succeeded",
        "action": "opened",
        "payload": {
            "project": { "id": "prj_1" },
            "deployment": { "id": "dpl_1", "name": "marketing-site" },
            "target": "production"
        }
    });
    let renamed = json!({ "payload": { "project": { "id": "prj_2", "name": "docs" } } });
    let succeeded = Some("deployment.succeeded");
    let repo_filtered = AppTrigger { repo_filter: strings(&["acme/site"]), ..vercel() };
    let cases = [
        (vercel(), succeeded, &deployed, true),
        (projects(vercel(), &["prj_1"]), succeeded, &deployed, true),
        (projects(vercel(), &["marketing-site"]), succeeded, &deployed, true),
        (projects(vercel(), &["Marketing-Site"]), succeeded, &deployed, false),
        (projects(vercel(), &["prj_2"]), succeeded, &deployed, false),
        (projects(vercel(), &["docs"]), Some("project.renamed"), &renamed, true),
        (
            events(vercel(), &["deployment.succeeded", "deployment.error"]),
            succeeded,
            &deployed,
            true,
        ),
        (events(vercel(), &["deployment.error"]), succeeded, &deployed, false),
        // Only GitHub events are refined by an action.
        (events(vercel(), &["deployment.succeeded.opened"]), succeeded, &deployed, false),
        (repo_filtered, succeeded, &deployed, false),
    ];
    for (i, (trigger, event, body, fires)) in cases.iter().enumerate() {
        let delivery = delivery(AppProvider::Vercel, *event, body);
        assert_eq!(delivery.fires(trigger), *fires, "case {i}: {trigger:?}");
    }
}

#[test]
fn the_context_is_the_body_with_what_started_the_run() {
    let body = json!({ "ref": "main", "appTrigger": "overwritten" });
    let delivery = delivery(AppProvider::Github, Some("push"), &body);
    let context = Value::Object(delivery.trigger_context("on-push"));
    let expected = json!({
        "ref": "main",
        "appTrigger": {
            "triggerId": "on-push",
            "provider": "github",
            "installationRef": "77",
            "deliveryId": "d-1",
            "event": "push"
        }
    });
    assert_eq!(context, expected);
}

fn spec(triggers: Value) -> DefinitionSpec {
    let body = json!({
        "definitionId": "app-demo",
        "name": "App demo",
        "nodes": [{
            "nodeId": "check",
            "type": "agent",
            "config": { "agentId": "__mock__", "url": "https://example.com/doc" }
        }],
        "edges": [],
        "triggers": triggers,
    });
    let parsed = parse_definition(&body, Mode::Create, &AddressPolicy::default());
    parsed.expect("a valid definition").0
}

#[test]
fn the_first_firing_entry_names_the_run_and_installations_are_listed_once() {
    let spec = spec(json!([
        { "triggerId": "nightly", "schedule": {
            "cron": "0 0 * * *", "timezone": "UTC", "enabled": true } },
        { "triggerId": "releases", "appTrigger": {
            "provider": "github", "installationRef": "77", "allowedEvents": ["release"] } },
        { "triggerId": "pushes", "appTrigger": { "provider": "github", "installationRef": "77" } },
        { "triggerId": "any-push", "appTrigger": {
            "provider": "github", "installationRef": "77" } },
        { "triggerId": "deploys", "appTrigger": { "provider": "vercel", "installationRef": "77" } }
    ]));
    let body = json!({});
    assert_eq!(
        first_fired(&spec, &delivery(AppProvider::Github, Some("push"), &body)),
        Some("pushes")
    );
    let release = delivery(AppProvider::Github, Some("release"), &body);
    assert_eq!(first_fired(&spec, &release), Some("releases"));
    let vercel = delivery(AppProvider::Vercel, Some("deployment.created"), &body);
    assert_eq!(first_fired(&spec, &vercel), Some("deploys"));
    let other = Delivery { installation_ref: "78", ..release };
    assert_eq!(first_fired(&spec, &other), None);

    let named = installations(&spec);
    assert_eq!(
        named,
        [("releases", AppProvider::Github, "77"), ("deploys", AppProvider::Vercel, "77")]
    );
}
