//! App triggers judged: a webhook delivery from a GitHub App or a Vercel integration, which
//! installation sent it, whether it is signed with that installation's secret, which event
//! and delivery it is, and which app trigger of a definition it fires. The shell finds the
//! connection and the definitions; everything here is a function of the request.

use crate::expr::{lookup, values_equal};
use crate::inbound::{self, Headers, Refusal, SignatureScheme};
use crate::model::{AppProvider, AppTrigger, DefinitionSpec, PayloadFilter};
use serde_json::{json, Map, Value};

const GITHUB_EVENT_HEADER: &str = "x-github-event";
const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";

/// Where a GitHub body names its App installation.
const GITHUB_INSTALLATION_PATHS: [&str; 1] = ["installation.id"];

/// Where a Vercel body may name its integration configuration, tried in order. Vercel's
/// documented envelope (`{id, type, createdAt, region, payload}`) names it only in the
/// `integration-configuration.*` events, as `payload.configuration.id`; the other two are
/// the field names older and third-party senders use.
const VERCEL_INSTALLATION_PATHS: [&str; 3] =
    ["payload.configuration.id", "payload.configurationId", "configurationId"];

/// The field of a GitHub body that refines its event (`opened` of `pull_request`).
const GITHUB_ACTION_FIELD: &str = "action";

const REPO_NAME_PATH: &str = "repository.full_name";
const PROJECT_ID_PATH: &str = "payload.project.id";
/// A Vercel project's name: in project events, and as the deployment's name otherwise.
const PROJECT_NAME_PATHS: [&str; 2] = ["payload.project.name", "payload.deployment.name"];

/// The key of `triggerContext` that says which trigger and delivery started the run.
pub const CONTEXT_KEY: &str = "appTrigger";

/// How the provider signs its webhooks.
pub fn signature_scheme(provider: AppProvider) -> SignatureScheme<'static> {
    match provider {
        AppProvider::Github => inbound::GITHUB_SIGNATURE,
        AppProvider::Vercel => inbound::VERCEL_SIGNATURE,
    }
}

/// Checks that the exact body bytes are signed with the connection's webhook secret, as the
/// provider signs them; the comparison takes the same time wherever the bytes differ.
pub fn authenticate(
    provider: AppProvider,
    webhook_secret: &str,
    raw_body: &[u8],
    headers: &impl Headers,
) -> Result<(), Refusal> {
    inbound::check_signature(signature_scheme(provider), webhook_secret, raw_body, headers)
}

/// The installation the body names: GitHub's `installation.id`, or the first Vercel
/// configuration field present. A non-empty string or an integer; `None` otherwise.
pub fn installation_ref(provider: AppProvider, body: &Value) -> Option<String> {
    let paths: &[&str] = match provider {
        AppProvider::Github => &GITHUB_INSTALLATION_PATHS,
        AppProvider::Vercel => &VERCEL_INSTALLATION_PATHS,
    };
    paths.iter().find_map(|path| id_text(lookup(body, path)?))
}

/// The provider's id of this delivery, which a redelivery repeats: GitHub's
/// `x-github-delivery` header, Vercel's body `id`.
pub fn delivery_id(provider: AppProvider, body: &Value, headers: &impl Headers) -> Option<String> {
    match provider {
        AppProvider::Github => header_text(headers, GITHUB_DELIVERY_HEADER),
        AppProvider::Vercel => id_text(body.get("id")?),
    }
}

/// The event the delivery reports: GitHub's `x-github-event` header, Vercel's body `type`.
pub fn event_name(provider: AppProvider, body: &Value, headers: &impl Headers) -> Option<String> {
    match provider {
        AppProvider::Github => header_text(headers, GITHUB_EVENT_HEADER),
        AppProvider::Vercel => body.get("type")?.as_str().filter(|t| !t.is_empty()).map(Into::into),
    }
}

fn header_text(headers: &impl Headers, name: &str) -> Option<String> {
    let value = headers.get(name)?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A non-empty string, or an integer written in decimal.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// An authenticated delivery, as app triggers judge it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    pub provider: AppProvider,
    pub installation_ref: &'a str,
    pub delivery_id: &'a str,
    pub event: Option<&'a str>,
    /// The provider's body, parsed; a JSON object.
    pub body: &'a Value,
}

impl Delivery<'_> {
    /// Whether the trigger takes this delivery: same provider and installation, and every
    /// filter it sets passes. An empty filter list is no filter.
    pub fn fires(&self, trigger: &AppTrigger) -> bool {
        let same_installation =
            trigger.provider == self.provider && trigger.installation_ref == self.installation_ref;
        same_installation
            && self.admits_event(trigger.allowed_events.as_deref())
            && self.passes(trigger.repo_filter.as_deref(), |d, repos| d.in_repos(repos))
            && self.passes(trigger.project_filter.as_deref(), |d, ids| d.in_projects(ids))
            && trigger.payload_filters.iter().all(|filter| self.matches(filter))
    }

    fn passes(&self, list: Option<&[String]>, check: impl Fn(&Self, &[String]) -> bool) -> bool {
        list.filter(|list| !list.is_empty()).is_none_or(|list| check(self, list))
    }

    /// Every event without `allowedEvents`; else a listed event name, or for GitHub a listed
    /// `<event>.<action>`. A delivery whose event is unknown is not admitted.
    fn admits_event(&self, allowed: Option<&[String]>) -> bool {
        let Some(allowed) = allowed else { return true };
        let Some(event) = self.event else { return false };
        let action = match self.provider {
            AppProvider::Github => self.body.get(GITHUB_ACTION_FIELD).and_then(Value::as_str),
            AppProvider::Vercel => None,
        };
        let names_action = |entry: &str| {
            let entry_action = entry.strip_prefix(event).and_then(|rest| rest.strip_prefix('.'));
            action.is_some_and(|action| !action.is_empty() && entry_action == Some(action))
        };
        allowed.iter().any(|entry| entry == event || names_action(entry))
    }

    /// GitHub owner and repository names ignore ASCII case, so the comparison does too.
    fn in_repos(&self, repos: &[String]) -> bool {
        let name = lookup(self.body, REPO_NAME_PATH).and_then(Value::as_str);
        name.is_some_and(|name| repos.iter().any(|repo| repo.eq_ignore_ascii_case(name)))
    }

    fn in_projects(&self, projects: &[String]) -> bool {
        let paths = std::iter::once(PROJECT_ID_PATH).chain(PROJECT_NAME_PATHS);
        let mut known = paths.filter_map(|path| lookup(self.body, path)?.as_str());
        known.any(|project| projects.iter().any(|listed| listed == project))
    }

    fn matches(&self, filter: &PayloadFilter) -> bool {
        let value = lookup(self.body, &filter.path);
        value.is_some_and(|value| filter.any_of.iter().any(|listed| values_equal(value, listed)))
    }

    /// The run's `triggerContext`: the provider's body, with `appTrigger` set to what
    /// started the run (replacing a body field of that name, which neither provider sends).
    pub fn trigger_context(&self, trigger_id: &str) -> Map<String, Value> {
        let mut context = self.body.as_object().cloned().unwrap_or_default();
        let about = json!({
            "triggerId": trigger_id,
            "provider": self.provider.as_str(),
            "installationRef": self.installation_ref,
            "deliveryId": self.delivery_id,
            "event": self.event,
        });
        context.insert(CONTEXT_KEY.to_owned(), about);
        context
    }
}

/// The id of the definition's first trigger entry (in authored order) whose app trigger the
/// delivery fires; a definition starts one run per delivery, however many entries match.
pub fn first_fired<'a>(spec: &'a DefinitionSpec, delivery: &Delivery<'_>) -> Option<&'a str> {
    let app_triggers = spec.triggers.iter().filter_map(|t| Some((t, t.app_trigger.as_ref()?)));
    let mut fired = app_triggers.filter(|(_, app)| delivery.fires(app));
    fired.next().map(|(trigger, _)| trigger.trigger_id.as_str())
}

/// The installations the definition's app triggers name, each once, in the order first named,
/// with the id of the first trigger naming it.
pub fn installations(spec: &DefinitionSpec) -> Vec<(&str, AppProvider, &str)> {
    let mut named: Vec<(&str, AppProvider, &str)> = Vec::new();
    for trigger in &spec.triggers {
        let Some(app) = &trigger.app_trigger else { continue };
        let installation = (app.provider, app.installation_ref.as_str());
        if !named.iter().any(|&(_, provider, reference)| (provider, reference) == installation) {
            named.push((trigger.trigger_id.as_str(), installation.0, installation.1));
        }
    }
    named
}

#[cfg(test)]
mod tests;
