//! Field rules shared by the parts of a definition (identifiers, lists, URLs, emails, header
//! names).

use crate::address::AddressPolicy;
use crate::issue::{Issue, Path};
use crate::schema::check::{Checker, Object, Str};
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// Longest URL accepted anywhere in a definition.
pub const URL_MAX: usize = 2000;

/// Pattern of definition ids.
pub static DEFINITION_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-z0-9][a-z0-9-]{2,63}$").expect("definitionId pattern"));

/// True when no issue was added since `mark` (a length of `c.issues`).
pub fn clean_since(c: &Checker, mark: usize) -> bool {
    c.issues.len() == mark
}

/// An identifier of `1..=max` characters without `__`, which step ids use as a separator.
pub fn id(c: &mut Checker, v: Option<&Value>, path: &Path, max: usize) -> Option<String> {
    let id = c.string(v, path, Str::len(1, max))?;
    if id.contains("__") {
        c.custom(path, "Two underscores (\"__\") are not allowed in an id");
        return None;
    }
    Some(id)
}

/// An optional integer in `min..=max` (with `min >= 0`), converted to the model's type.
pub fn opt_uint<T: TryFrom<i64>>(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
    min: i64,
    max: i64,
) -> Option<T> {
    debug_assert!(min >= 0);
    c.opt_int(v, path, min, max).and_then(|i| T::try_from(i).ok())
}

/// A required integer in `min..=max` (with `min >= 0`), converted to the model's type.
pub fn uint<T: TryFrom<i64>>(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
    min: i64,
    max: i64,
) -> Option<T> {
    debug_assert!(min >= 0);
    c.int(v, path, min, max).and_then(|i| T::try_from(i).ok())
}

/// An array of `min..=max` items, each parsed by `item`. Every item is walked even when an
/// earlier one fails; the list is returned only when all of them passed. An absent optional
/// array is an empty list.
pub fn list<T>(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
    (min, max): (usize, usize),
    required: bool,
    mut item: impl FnMut(&mut Checker, &Value, &Path) -> Option<T>,
) -> Option<Vec<T>> {
    if v.is_none() && !required {
        return Some(Vec::new());
    }
    let items = c.array(v, path, min, max)?;
    let parsed: Vec<Option<T>> =
        items.iter().enumerate().map(|(i, v)| item(c, v, &path.index(i))).collect();
    parsed.into_iter().collect()
}

/// An optional object whose values are all strings checked by `rule`.
pub fn string_map(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
    rule: Str<'_>,
) -> Option<Object> {
    let obj = c.any_object(v, path, false)?;
    let mark = c.issues.len();
    for (key, value) in obj {
        c.string(Some(value), &path.key(key), rule);
    }
    clean_since(c, mark).then(|| obj.clone())
}

/// True when `v` is a string with at least one character (JavaScript truthiness).
pub fn is_filled_string(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::String(s)) if !s.is_empty())
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$").expect("email pattern"));

/// Longest email address (RFC 5321 path limit).
const EMAIL_MAX: usize = 254;

/// A list of email addresses. The check is deliberately simple: one `@`, no spaces, a dotted
/// domain; the mail server has the last word.
pub fn email_list(
    c: &mut Checker,
    v: Option<&Value>,
    path: &Path,
    bounds: (usize, usize),
    required: bool,
) -> Option<Vec<String>> {
    list(c, v, path, bounds, required, |c, item, path| {
        let email = c.string(Some(item), path, Str::len(3, EMAIL_MAX))?;
        if !EMAIL.is_match(&email) {
            c.push(Issue::new("invalid_string", path, "Invalid email"));
            return None;
        }
        Some(email)
    })
}

/// An absolute `http(s)` URL that Assent passes on but never calls itself.
pub fn opt_http_url(c: &mut Checker, v: Option<&Value>, path: &Path) -> Option<String> {
    let raw = c.opt_string(v, path, Str::len(1, URL_MAX))?;
    let absolute_http = url::Url::parse(&raw)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !absolute_http {
        c.push(Issue::new("invalid_string", path, "Invalid url"));
        return None;
    }
    Some(raw)
}

/// A URL that Assent will call: length-checked, then passed through the address guard under
/// the operator's `policy`. A refusal is reported as `<field> <rule>`, with the path.
pub fn guarded_url(
    c: &mut Checker,
    policy: &AddressPolicy,
    v: Option<&Value>,
    path: &Path,
    field: &str,
) -> Option<String> {
    let raw = c.string(v, path, Str::len(1, URL_MAX))?;
    if let Err(refusal) = crate::address::check_url(&raw, policy) {
        c.custom(path, format!("{field} {refusal}"));
        return None;
    }
    Some(raw)
}

/// The URL of an event webhook (`webhookConfig.url`, dispatch `webhookUrl`). Refusals use the
/// hosted engine's fixed sentences, which call the field `webhookUrl` wherever it sits.
pub fn webhook_url(
    c: &mut Checker,
    policy: &AddressPolicy,
    v: Option<&Value>,
    path: &Path,
) -> Option<String> {
    let raw = c.string(v, path, Str::len(1, URL_MAX))?;
    if let Err(refusal) = crate::address::check_url(&raw, policy) {
        c.exact(path, format!("webhookUrl {refusal}"));
        return None;
    }
    Some(raw)
}

static HEADER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$").expect("header name pattern"));

/// Headers that Assent's HTTP client sets itself (framing and hop-by-hop headers), which a
/// definition may not override. `authorization` is handled apart: see [`header_name_problem`].
const RESERVED_HEADERS: [&str; 11] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Why `name` cannot be an outbound header of a webhook node, if it cannot. With
/// `allow_authorization` false, `authorization` is refused too: a definition is echoed back
/// verbatim on every read, so a credential belongs in `authMode: "token"`, whose value arrives
/// with each dispatch and is never stored in the definition.
pub fn header_name_problem(name: &str, allow_authorization: bool) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if !HEADER_NAME.is_match(name) {
        return Some(format!("Invalid header name \"{name}\""));
    }
    if lower.starts_with("x-velt-") {
        return Some(format!("Header \"{name}\" is reserved: x-velt-* headers are set by Assent"));
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Some(format!("Header \"{name}\" is reserved: Assent's HTTP client sets it"));
    }
    if lower == "authorization" && !allow_authorization {
        let msg =
            format!("Header \"{name}\" is reserved: send credentials with authMode \"token\"");
        return Some(msg);
    }
    None
}
