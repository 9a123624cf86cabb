//! A small strict-schema checker over `serde_json::Value`. It collects every problem it
//! finds, with the messages of the hosted engine's validator, and hands back typed values
//! so that parsing and validating are one pass.

use crate::issue::{Issue, Path};
use regex::Regex;
use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// Length and pattern limits for a string. Lengths count UTF-16 code units, as the hosted
/// engine's JavaScript validator does.
#[derive(Clone, Copy)]
pub struct Str<'r> {
    pub min: usize,
    pub max: usize,
    pub pattern: Option<&'r Regex>,
}

impl Str<'static> {
    pub const fn len(min: usize, max: usize) -> Str<'static> {
        Str { min, max, pattern: None }
    }
}

impl<'r> Str<'r> {
    pub fn matching(min: usize, max: usize, pattern: &'r Regex) -> Str<'r> {
        Str { min, max, pattern: Some(pattern) }
    }
}

/// Collects issues while a request body is walked.
#[derive(Default)]
pub struct Checker {
    pub issues: Vec<Issue>,
}

/// Length of a string as JavaScript counts it.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The validator's name for a JSON value's type.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker::default()
    }

    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }

    pub fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// A rule with one of the reference's exact sentences.
    pub fn exact(&mut self, path: &Path, message: impl Into<String>) {
        self.issues.push(Issue::exact(path, message));
    }

    /// A rule with a message of Assent's own, reported with its path.
    pub fn custom(&mut self, path: &Path, message: impl Into<String>) {
        self.issues.push(Issue::new("custom", path, message));
    }

    fn required(&mut self, path: &Path) {
        self.issues.push(Issue::new("invalid_type", path, "Required"));
    }

    fn wrong_type(&mut self, path: &Path, expected: &str, got: &Value) {
        let msg = format!("Expected {expected}, received {}", type_name(got));
        self.issues.push(Issue::new("invalid_type", path, msg));
    }

    /// Reports keys of `obj` that are not in `known`.
    pub fn strict_keys(&mut self, obj: &Object, path: &Path, known: &[&str]) {
        let unknown: Vec<String> =
            obj.keys().filter(|k| !known.contains(&k.as_str())).map(|k| format!("'{k}'")).collect();
        if !unknown.is_empty() {
            let msg = format!("Unrecognized key(s) in object: {}", unknown.join(", "));
            self.issues.push(Issue::new("unrecognized_keys", path, msg));
        }
    }

    /// A required object whose keys must all be in `known`.
    pub fn object<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &Path,
        known: &[&str],
    ) -> Option<&'v Object> {
        match v {
            None => {
                self.required(path);
                None
            }
            Some(v) => self.present_object(v, path, known),
        }
    }

    /// An optional object: absent is fine, `null` is not.
    pub fn opt_object<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &Path,
        known: &[&str],
    ) -> Option<&'v Object> {
        v.and_then(|v| self.present_object(v, path, known))
    }

    fn present_object<'v>(
        &mut self,
        v: &'v Value,
        path: &Path,
        known: &[&str],
    ) -> Option<&'v Object> {
        match v {
            Value::Object(obj) => {
                self.strict_keys(obj, path, known);
                Some(obj)
            }
            other => {
                self.wrong_type(path, "object", other);
                None
            }
        }
    }

    /// A free-form object (any keys), required or not as `required` says.
    pub fn any_object<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &Path,
        required: bool,
    ) -> Option<&'v Object> {
        match v {
            None if required => {
                self.required(path);
                None
            }
            None => None,
            Some(Value::Object(obj)) => Some(obj),
            Some(other) => {
                self.wrong_type(path, "object", other);
                None
            }
        }
    }

    pub fn string(&mut self, v: Option<&Value>, path: &Path, rule: Str<'_>) -> Option<String> {
        match v {
            None => {
                self.required(path);
                None
            }
            Some(v) => self.present_string(v, path, rule),
        }
    }

    pub fn opt_string(&mut self, v: Option<&Value>, path: &Path, rule: Str<'_>) -> Option<String> {
        v.and_then(|v| self.present_string(v, path, rule))
    }

    fn present_string(&mut self, v: &Value, path: &Path, rule: Str<'_>) -> Option<String> {
        let Value::String(s) = v else {
            self.wrong_type(path, "string", v);
            return None;
        };
        let len = utf16_len(s);
        let before = self.issues.len();
        if len < rule.min {
            let msg = format!("String must contain at least {} character(s)", rule.min);
            self.issues.push(Issue::new("too_small", path, msg));
        }
        if len > rule.max {
            let msg = format!("String must contain at most {} character(s)", rule.max);
            self.issues.push(Issue::new("too_big", path, msg));
        }
        if let Some(re) = rule.pattern {
            if !re.is_match(s) {
                self.issues.push(Issue::new("invalid_string", path, "Invalid"));
            }
        }
        (self.issues.len() == before).then(|| s.clone())
    }

    pub fn boolean(&mut self, v: Option<&Value>, path: &Path) -> Option<bool> {
        match v {
            None => {
                self.required(path);
                None
            }
            Some(v) => self.present_bool(v, path),
        }
    }

    pub fn opt_bool(&mut self, v: Option<&Value>, path: &Path) -> Option<bool> {
        v.and_then(|v| self.present_bool(v, path))
    }

    fn present_bool(&mut self, v: &Value, path: &Path) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, "boolean", other);
                None
            }
        }
    }

    /// A required integer in `min..=max`.
    pub fn int(&mut self, v: Option<&Value>, path: &Path, min: i64, max: i64) -> Option<i64> {
        match v {
            None => {
                self.required(path);
                None
            }
            Some(v) => self.present_int(v, path, min, max),
        }
    }

    pub fn opt_int(&mut self, v: Option<&Value>, path: &Path, min: i64, max: i64) -> Option<i64> {
        v.and_then(|v| self.present_int(v, path, min, max))
    }

    fn present_int(&mut self, v: &Value, path: &Path, min: i64, max: i64) -> Option<i64> {
        let Value::Number(n) = v else {
            self.wrong_type(path, "number", v);
            return None;
        };
        let Some(i) = as_integer(n) else {
            self.issues.push(Issue::new("invalid_type", path, "Expected integer, received float"));
            return None;
        };
        if i < min {
            let msg = format!("Number must be greater than or equal to {min}");
            self.issues.push(Issue::new("too_small", path, msg));
            return None;
        }
        if i > max {
            let msg = format!("Number must be less than or equal to {max}");
            self.issues.push(Issue::new("too_big", path, msg));
            return None;
        }
        Some(i)
    }

    /// A required array with `min..=max` elements.
    pub fn array<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &Path,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value]> {
        match v {
            None => {
                self.required(path);
                None
            }
            Some(v) => self.present_array(v, path, min, max),
        }
    }

    pub fn opt_array<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &Path,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value]> {
        v.and_then(|v| self.present_array(v, path, min, max))
    }

    fn present_array<'v>(
        &mut self,
        v: &'v Value,
        path: &Path,
        min: usize,
        max: usize,
    ) -> Option<&'v [Value]> {
        let Value::Array(items) = v else {
            self.wrong_type(path, "array", v);
            return None;
        };
        if items.len() < min {
            let msg = format!("Array must contain at least {min} element(s)");
            self.issues.push(Issue::new("too_small", path, msg));
        }
        if items.len() > max {
            let msg = format!("Array must contain at most {max} element(s)");
            self.issues.push(Issue::new("too_big", path, msg));
        }
        // Elements are still checked when the count is wrong, so every problem is listed.
        Some(items)
    }

    /// A required string that must be one of `allowed`.
    pub fn enumeration(
        &mut self,
        v: Option<&Value>,
        path: &Path,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        match v {
            None => {
                self.required(path);
                None
            }
            Some(v) => self.present_enum(v, path, allowed),
        }
    }

    pub fn opt_enumeration(
        &mut self,
        v: Option<&Value>,
        path: &Path,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        v.and_then(|v| self.present_enum(v, path, allowed))
    }

    fn present_enum(
        &mut self,
        v: &Value,
        path: &Path,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let Value::String(s) = v else {
            self.wrong_type(path, "string", v);
            return None;
        };
        if let Some(found) = allowed.iter().find(|a| **a == s.as_str()) {
            return Some(found);
        }
        let expected: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
        let msg = format!("Invalid enum value. Expected {}, received '{s}'", expected.join(" | "));
        self.issues.push(Issue::new("invalid_enum_value", path, msg));
        None
    }

    /// A list of strings, each checked by `rule`.
    pub fn string_list(
        &mut self,
        v: Option<&Value>,
        path: &Path,
        (min, max): (usize, usize),
        rule: Str<'_>,
        required: bool,
    ) -> Option<Vec<String>> {
        let items = if required {
            self.array(v, path, min, max)?
        } else {
            self.opt_array(v, path, min, max)?
        };
        let before = self.issues.len();
        let out: Vec<String> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.present_string(item, &path.index(i), rule))
            .collect();
        (self.issues.len() == before).then_some(out)
    }
}

/// An integer value of a JSON number, accepting `3.0` as 3 as JavaScript does.
fn as_integer(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    let integral = f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15;
    integral.then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_and_null_are_reported_differently() {
        let mut c = Checker::new();
        let body = json!({"b": null});
        let obj = body.as_object().unwrap();
        c.string(obj.get("a"), &Path::root().key("a"), Str::len(1, 5));
        c.opt_string(obj.get("b"), &Path::root().key("b"), Str::len(1, 5));
        let msgs: Vec<String> = c.issues.iter().map(|i| i.headline()).collect();
        assert_eq!(msgs, ["Required for a", "Expected string, received null for b"]);
    }

    #[test]
    fn unknown_keys_are_listed_in_one_issue() {
        let mut c = Checker::new();
        let body = json!({"a": 1, "x": 2, "y": 3});
        c.object(Some(&body), &Path::root(), &["a"]);
        assert_eq!(c.issues[0].message, "Unrecognized key(s) in object: 'x', 'y'");
    }

    #[test]
    fn string_lengths_count_utf16_units() {
        let mut c = Checker::new();
        let emoji = json!("😀");
        assert_eq!(c.string(Some(&emoji), &Path::root(), Str::len(2, 2)), Some("😀".into()));
        assert!(c.string(Some(&emoji), &Path::root(), Str::len(1, 1)).is_none());
        assert_eq!(c.issues[0].message, "String must contain at most 1 character(s)");
    }

    #[test]
    fn integers_accept_whole_floats_and_refuse_fractions() {
        let mut c = Checker::new();
        assert_eq!(c.int(Some(&json!(3.0)), &Path::root(), 1, 5), Some(3));
        assert_eq!(c.int(Some(&json!(3.5)), &Path::root(), 1, 5), None);
        assert_eq!(c.int(Some(&json!(9)), &Path::root(), 1, 5), None);
        let msgs: Vec<&str> = c.issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(
            msgs,
            ["Expected integer, received float", "Number must be less than or equal to 5"]
        );
    }

    #[test]
    fn enum_lists_the_choices() {
        let mut c = Checker::new();
        c.enumeration(Some(&json!("x")), &Path::root().key("on"), &["approve", "reject"]);
        assert_eq!(
            c.issues[0].headline(),
            "Invalid enum value. Expected 'approve' | 'reject', received 'x' for on"
        );
    }
}
