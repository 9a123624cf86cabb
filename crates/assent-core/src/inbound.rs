//! Inbound webhook triggers judged: whether a request proves it knows the trigger's secret,
//! which event it reports, which source event it repeats, and what the run it starts gets as
//! `triggerContext`. The shell hands over the raw body and a way to read headers.

use crate::expr::lookup;
use crate::model::{
    InboundAuthMode, InboundProvider, InboundWebhook, PayloadMapping, SignatureAlgorithm,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The request's headers, looked up by lowercase name; a value that is not text is absent.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

/// Where a provider puts its signature, and how it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureScheme<'a> {
    pub header: &'a str,
    pub algorithm: SignatureAlgorithm,
    pub prefix: &'a str,
}

/// Why a request was not let through to a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    SignatureMissing,
    SignatureInvalid,
    BearerTokenMissing,
    BearerTokenInvalid,
    /// The velt provider's `payload` is not an object.
    PayloadNotObject,
}

impl Refusal {
    /// The `code` of the answer.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::SignatureMissing => "signature-missing",
            Refusal::SignatureInvalid => "signature-invalid",
            Refusal::BearerTokenMissing => "bearer-token-missing",
            Refusal::BearerTokenInvalid => "bearer-token-invalid",
            Refusal::PayloadNotObject => "payload-not-object",
        }
    }
}

/// How GitHub signs its webhooks: `x-hub-signature-256: sha256=<hex HMAC-SHA256>`.
pub const GITHUB_SIGNATURE: SignatureScheme<'static> = SignatureScheme {
    header: "x-hub-signature-256",
    algorithm: SignatureAlgorithm::Sha256,
    prefix: "sha256=",
};

/// How Vercel signs its webhooks: `x-vercel-signature: <hex HMAC-SHA1>`, no prefix.
pub const VERCEL_SIGNATURE: SignatureScheme<'static> = SignatureScheme {
    header: "x-vercel-signature",
    algorithm: SignatureAlgorithm::Sha1,
    prefix: "",
};

const VELT_EVENT_FIELD: &str = "type";
const GITHUB_EVENT_HEADER: &str = "x-github-event";
const VERCEL_EVENT_HEADER: &str = "x-vercel-deployment-event";

/// The signature scheme of a trigger: its provider's preset, or for `custom` the trigger's
/// own fields. `None` for a custom trigger without header or algorithm, which the schema
/// refuses to store.
pub fn signature_scheme(hook: &InboundWebhook) -> Option<SignatureScheme<'_>> {
    match hook.provider {
        InboundProvider::Velt => Some(SignatureScheme {
            header: "x-velt-signature",
            algorithm: SignatureAlgorithm::Sha256,
            prefix: "sha256=",
        }),
        InboundProvider::Github => Some(GITHUB_SIGNATURE),
        InboundProvider::Vercel => Some(VERCEL_SIGNATURE),
        InboundProvider::Custom => Some(SignatureScheme {
            header: hook.signature_header.as_deref()?,
            algorithm: hook.signature_algorithm?,
            prefix: hook.signature_prefix.as_deref().unwrap_or(""),
        }),
    }
}

/// Checks the request's proof of the trigger's secret: an HMAC of the exact body bytes in
/// the scheme's header (lowercase or uppercase hex after the prefix), or for bearer mode
/// `Authorization: Bearer <secret>`. Both comparisons take the same time wherever the
/// first differing byte is.
pub fn authenticate(
    hook: &InboundWebhook,
    raw_body: &[u8],
    headers: &impl Headers,
) -> Result<(), Refusal> {
    if hook.auth_mode == InboundAuthMode::Bearer {
        return check_bearer(&hook.secret, headers.get("authorization"));
    }
    let scheme = signature_scheme(hook).ok_or(Refusal::SignatureInvalid)?;
    check_signature(scheme, &hook.secret, raw_body, headers)
}

/// Checks the HMAC of the exact body bytes, keyed by `secret`, that the scheme's header
/// carries as hex (either case) after the scheme's prefix. The comparison takes the same
/// time wherever the first differing byte is.
pub fn check_signature(
    scheme: SignatureScheme<'_>,
    secret: &str,
    raw_body: &[u8],
    headers: &impl Headers,
) -> Result<(), Refusal> {
    let presented = headers.get(scheme.header).ok_or(Refusal::SignatureMissing)?.trim();
    let hex_digits = presented.strip_prefix(scheme.prefix).ok_or(Refusal::SignatureInvalid)?;
    let presented = hex::decode(hex_digits).map_err(|_| Refusal::SignatureInvalid)?;
    let expected = signature(scheme.algorithm, secret.as_bytes(), raw_body);
    if same_bytes(&presented, &expected) {
        Ok(())
    } else {
        Err(Refusal::SignatureInvalid)
    }
}

fn check_bearer(secret: &str, authorization: Option<&str>) -> Result<(), Refusal> {
    let authorization = authorization.ok_or(Refusal::BearerTokenMissing)?.trim();
    let (scheme, token) = authorization.split_once(' ').ok_or(Refusal::BearerTokenInvalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::BearerTokenInvalid);
    }
    // Digests of both have one length, so the comparison says nothing of the secret's.
    let presented = Sha256::digest(token.trim().as_bytes());
    let expected = Sha256::digest(secret.as_bytes());
    if same_bytes(&presented, &expected) {
        Ok(())
    } else {
        Err(Refusal::BearerTokenInvalid)
    }
}

/// The HMAC of `body` keyed by `secret`.
pub fn signature(algorithm: SignatureAlgorithm, secret: &[u8], body: &[u8]) -> Vec<u8> {
    match algorithm {
        SignatureAlgorithm::Sha256 => mac::<Hmac<Sha256>>(secret, body),
        SignatureAlgorithm::Sha1 => mac::<Hmac<Sha1>>(secret, body),
    }
}

fn mac<M: Mac + KeyInit>(secret: &[u8], body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = <M as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The event the request reports, from where the provider puts it: velt the body's `type`
/// (or its `payload.type`), github the `x-github-event` header, vercel the
/// `x-vercel-deployment-event` header and then the body's `type`, custom the trigger's
/// `eventNameHeader`. `None` when it is not there or not a non-empty string.
pub fn event_name(
    hook: &InboundWebhook,
    body: &Map<String, Value>,
    headers: &impl Headers,
) -> Option<String> {
    let field = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let header = |name: &str| headers.get(name).map(|v| v.trim().to_owned());
    let name = match hook.provider {
        InboundProvider::Velt => field(body.get(VELT_EVENT_FIELD))
            .or_else(|| field(body.get("payload").and_then(|p| p.get(VELT_EVENT_FIELD)))),
        InboundProvider::Github => header(GITHUB_EVENT_HEADER),
        InboundProvider::Vercel => {
            header(VERCEL_EVENT_HEADER).or_else(|| field(body.get(VELT_EVENT_FIELD)))
        }
        InboundProvider::Custom => hook.event_name_header.as_deref().and_then(header),
    };
    name.filter(|name| !name.is_empty())
}

/// Whether the trigger takes this request's event: every event when `allowedEvents` is not
/// set, else only a listed one. An event whose name cannot be found is not taken.
pub fn admits_event(
    hook: &InboundWebhook,
    body: &Map<String, Value>,
    headers: &impl Headers,
) -> bool {
    let Some(allowed) = &hook.allowed_events else { return true };
    event_name(hook, body, headers).is_some_and(|name| allowed.contains(&name))
}

/// The source event's id, for the `trig:` idempotency key: the `idempotencyHeader` value,
/// else the string or integer at `idempotencyBodyPath` in the body. `None` means every
/// request starts a run of its own.
pub fn source_event_id(
    hook: &InboundWebhook,
    body: &Map<String, Value>,
    headers: &impl Headers,
) -> Option<String> {
    let from_header = hook.idempotency_header.as_deref().and_then(|name| headers.get(name));
    let from_header = from_header.map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned);
    from_header.or_else(|| {
        let path = hook.idempotency_body_path.as_deref()?;
        match lookup_in(body, path)? {
            Value::String(id) if !id.is_empty() => Some(id.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            _ => None,
        }
    })
}

fn lookup_in<'a>(body: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let (first, rest) = path.split_once('.').map_or((path, None), |(f, r)| (f, Some(r)));
    let value = body.get(first)?;
    match rest {
        Some(rest) => lookup(value, rest),
        None => Some(value),
    }
}

/// The run's `triggerContext`: for velt the body's `payload` (an empty object when there is
/// none), for the other providers the whole body; nested under `source` when the trigger's
/// `payloadMapping` is `wrap`.
pub fn trigger_context(
    hook: &InboundWebhook,
    mut body: Map<String, Value>,
) -> Result<Map<String, Value>, Refusal> {
    let payload = match hook.provider {
        InboundProvider::Velt => match body.remove("payload") {
            None => Map::new(),
            Some(Value::Object(payload)) => payload,
            Some(_) => return Err(Refusal::PayloadNotObject),
        },
        _ => body,
    };
    Ok(match hook.payload_mapping {
        PayloadMapping::PassThrough => payload,
        PayloadMapping::Wrap => Map::from_iter([("source".to_owned(), Value::Object(payload))]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    impl Headers for HashMap<&str, &str> {
        fn get(&self, name: &str) -> Option<&str> {
            HashMap::get(self, name).copied()
        }
    }

    fn hook(provider: InboundProvider) -> InboundWebhook {
        InboundWebhook {
            auth_mode: InboundAuthMode::Hmac,
            secret: "It's a Secret to Everybody".into(),
            provider,
            signature_header: None,
            signature_algorithm: None,
            signature_prefix: None,
            event_name_header: None,
            allowed_events: None,
            idempotency_header: None,
            idempotency_body_path: None,
            payload_mapping: PayloadMapping::PassThrough,
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    /// GitHub's documented example of a webhook signature.
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn hmac_matches_known_vectors() {
        let secret = b"It's a Secret to Everybody";
        let sha256 = hex::encode(signature(SignatureAlgorithm::Sha256, secret, GITHUB_BODY));
        assert_eq!(format!("sha256={sha256}"), GITHUB_SIGNATURE);
        // RFC 2202, test case 2.
        let sha1 = signature(SignatureAlgorithm::Sha1, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(sha1), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn signatures_are_checked_per_provider() {
        let github = hook(InboundProvider::Github);
        let vercel = hook(InboundProvider::Vercel);
        let vercel_hex =
            hex::encode(signature(SignatureAlgorithm::Sha1, github.secret.as_bytes(), GITHUB_BODY));
        let mut custom = hook(InboundProvider::Custom);
        custom.signature_header = Some("x-sig".into());
        custom.signature_algorithm = Some(SignatureAlgorithm::Sha1);
        custom.signature_prefix = Some("v1,".into());
        let upper = GITHUB_SIGNATURE.replace("757107ea", "757107EA");
        let custom_sig = format!("v1,{vercel_hex}");
        let tampered = GITHUB_SIGNATURE.replace("e17", "e18");
        // (trigger, header, value, outcome)
        let cases: [(&InboundWebhook, &str, &str, Result<(), Refusal>); 10] = [
            (&github, "x-hub-signature-256", GITHUB_SIGNATURE, Ok(())),
            (&github, "x-hub-signature-256", &upper, Ok(())),
            (&github, "x-hub-signature-256", &tampered, Err(Refusal::SignatureInvalid)),
            (
                &github,
                "x-hub-signature-256",
                &GITHUB_SIGNATURE[7..],
                Err(Refusal::SignatureInvalid),
            ),
            (&github, "x-hub-signature-256", "sha256=zz", Err(Refusal::SignatureInvalid)),
            (&github, "x-velt-signature", GITHUB_SIGNATURE, Err(Refusal::SignatureMissing)),
            (&vercel, "x-vercel-signature", &vercel_hex, Ok(())),
            (&vercel, "x-vercel-signature", GITHUB_SIGNATURE, Err(Refusal::SignatureInvalid)),
            (&custom, "x-sig", &custom_sig, Ok(())),
            (&custom, "x-sig", &vercel_hex, Err(Refusal::SignatureInvalid)),
        ];
        for (trigger, header, value, expected) in cases {
            let headers = HashMap::from([(header, value)]);
            let outcome = authenticate(trigger, GITHUB_BODY, &headers);
            assert_eq!(outcome, expected, "{:?} {header}: {value}", trigger.provider);
        }
        let velt = hook(InboundProvider::Velt);
        let headers = HashMap::from([("x-velt-signature", GITHUB_SIGNATURE)]);
        assert_eq!(authenticate(&velt, GITHUB_BODY, &headers), Ok(()));
        assert_eq!(authenticate(&velt, b"Hello, World?", &headers), Err(Refusal::SignatureInvalid));
    }

    #[test]
    fn bearer_mode_compares_the_secret() {
        let mut velt = hook(InboundProvider::Velt);
        velt.auth_mode = InboundAuthMode::Bearer;
        let cases = [
            (Some("Bearer It's a Secret to Everybody"), Ok(())),
            (Some("bearer It's a Secret to Everybody"), Ok(())),
            (Some("Bearer It's a Secret to Everybody!"), Err(Refusal::BearerTokenInvalid)),
            (Some("Basic It's a Secret to Everybody"), Err(Refusal::BearerTokenInvalid)),
            (Some("It's"), Err(Refusal::BearerTokenInvalid)),
            (None, Err(Refusal::BearerTokenMissing)),
        ];
        for (authorization, expected) in cases {
            let headers: HashMap<&str, &str> =
                authorization.map(|value| ("authorization", value)).into_iter().collect();
            assert_eq!(authenticate(&velt, b"{}", &headers), expected, "{authorization:?}");
        }
    }

    #[test]
    fn event_names_come_from_each_provider_s_place() {
        let mut custom = hook(InboundProvider::Custom);
        custom.event_name_header = Some("x-event".into());
        let body = object(json!({ "type": "from-body", "payload": { "type": "nested" } }));
        let nested_only = object(json!({ "payload": { "type": "nested" } }));
        let headers = HashMap::from([
            ("x-github-event", "push"),
            ("x-vercel-deployment-event", "deployment.succeeded"),
            ("x-event", "custom.thing"),
        ]);
        let none = HashMap::new();
        let cases = [
            (hook(InboundProvider::Velt), &body, &headers, Some("from-body")),
            (hook(InboundProvider::Velt), &nested_only, &none, Some("nested")),
            (hook(InboundProvider::Github), &body, &headers, Some("push")),
            (hook(InboundProvider::Github), &body, &none, None),
            (hook(InboundProvider::Vercel), &body, &headers, Some("deployment.succeeded")),
            (hook(InboundProvider::Vercel), &body, &none, Some("from-body")),
            (custom.clone(), &body, &headers, Some("custom.thing")),
            (hook(InboundProvider::Custom), &body, &headers, None),
        ];
        for (trigger, body, headers, expected) in cases {
            let name = event_name(&trigger, body, headers);
            assert_eq!(name.as_deref(), expected, "{:?}", trigger.provider);
        }
    }

    #[test]
    fn allowed_events_fail_closed() {
        let mut github = hook(InboundProvider::Github);
        let body = Map::new();
        let push = HashMap::from([("x-github-event", "push")]);
        let issues = HashMap::from([("x-github-event", "issues")]);
        let blank = HashMap::from([("x-github-event", " ")]);
        assert!(admits_event(&github, &body, &issues), "no list: everything");
        github.allowed_events = Some(vec!["push".into(), "release".into()]);
        assert!(admits_event(&github, &body, &push));
        assert!(!admits_event(&github, &body, &issues));
        assert!(!admits_event(&github, &body, &blank));
        assert!(!admits_event(&github, &body, &HashMap::new()));
    }

    #[test]
    fn source_event_ids_come_from_header_then_body() {
        let mut trigger = hook(InboundProvider::Github);
        let body = object(json!({ "delivery": { "id": 42, "tags": ["a"] }, "name": "n" }));
        let headers = HashMap::from([("x-github-delivery", "72d3162e")]);
        assert_eq!(source_event_id(&trigger, &body, &headers), None);

        trigger.idempotency_body_path = Some("delivery.id".into());
        assert_eq!(source_event_id(&trigger, &body, &headers).as_deref(), Some("42"));
        trigger.idempotency_header = Some("x-github-delivery".into());
        assert_eq!(source_event_id(&trigger, &body, &headers).as_deref(), Some("72d3162e"));
        assert_eq!(source_event_id(&trigger, &body, &HashMap::new()).as_deref(), Some("42"));

        let paths = [("name", Some("n")), ("delivery.tags.0", Some("a")), ("delivery", None)];
        trigger.idempotency_header = None;
        for (path, expected) in paths {
            trigger.idempotency_body_path = Some(path.into());
            let id = source_event_id(&trigger, &body, &HashMap::new());
            assert_eq!(id.as_deref(), expected, "{path}");
        }
    }

    #[test]
    fn trigger_context_follows_provider_and_mapping() {
        let velt_body = json!({ "definitionId": "d", "triggerId": "t", "payload": { "a": 1 } });
        let github_body = json!({ "ref": "main" });
        let mut wrapped = hook(InboundProvider::Github);
        wrapped.payload_mapping = PayloadMapping::Wrap;
        let cases = [
            (hook(InboundProvider::Velt), velt_body.clone(), Ok(json!({ "a": 1 }))),
            (hook(InboundProvider::Velt), json!({ "definitionId": "d" }), Ok(json!({}))),
            (hook(InboundProvider::Velt), json!({ "payload": 3 }), Err(Refusal::PayloadNotObject)),
            (hook(InboundProvider::Github), github_body.clone(), Ok(github_body.clone())),
            (wrapped, github_body.clone(), Ok(json!({ "source": github_body }))),
        ];
        for (trigger, body, expected) in cases {
            let context = trigger_context(&trigger, object(body.clone())).map(Value::Object);
            assert_eq!(context, expected, "{body}");
        }
    }

    #[test]
    fn same_bytes_compares_whole_slices() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"ab"));
        assert!(same_bytes(b"", b""));
    }
}
