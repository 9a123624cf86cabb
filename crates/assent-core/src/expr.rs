//! The `when` expression language: a JSON AST parsed and checked at write time, and
//! evaluated by a tree walker that never fails at run time.

use crate::schema::check::utf16_len;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Longest `when` source, counted in UTF-16 code units like every string length of the API.
pub const SOURCE_LEN_MAX: usize = 1000;
/// Deepest nesting of expressions; the outermost expression is at depth 1.
pub const DEPTH_MAX: usize = 32;
/// Longest pattern, in bytes, that `regex` compiles when the pattern is read at run time.
pub const RUNTIME_PATTERN_LEN_MAX: usize = 1000;
/// Compiled-program and lazy-DFA budget of one regex.
const REGEX_SIZE_LIMIT_BYTES: usize = 1 << 20;
/// Deepest nesting that `eq` follows into arrays and objects before it answers false.
const EQUALITY_DEPTH_MAX: usize = 128;

const STEP_FIELDS: [&str; 4] = ["stepId", "nodeId", "status", "retryCount"];

/// A parsed, checked expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    Var(String),
    Op {
        op: Op,
        args: Vec<Expr>,
    },
    /// A `regex` whose pattern is a string literal, compiled once when it was parsed. A
    /// `regex` whose pattern is computed stays an `Op` and compiles at each evaluation.
    Match {
        subject: Box<Expr>,
        pattern: Pattern,
    },
}

/// A regex pattern compiled at write time. Two patterns are equal when their sources are.
#[derive(Clone, Debug)]
pub struct Pattern(Regex);

impl Pattern {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, subject: &str) -> bool {
        self.0.is_match(subject)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    And,
    Or,
    Not,
    In,
    Includes,
    StartsWith,
    EndsWith,
    Length,
    IsEmpty,
    Regex,
}

/// How many arguments an operator takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeastOne,
}

impl Arity {
    fn admits(self, count: usize) -> bool {
        match self {
            Arity::Exactly(n) => count == n,
            Arity::AtLeastOne => count >= 1,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Arity::Exactly(1) => "exactly 1 argument",
            Arity::Exactly(2) => "exactly 2 arguments",
            Arity::Exactly(_) => "a fixed number of arguments",
            Arity::AtLeastOne => "at least 1 argument",
        }
    }
}

impl Op {
    pub const ALL: [Op; 16] = [
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::And,
        Op::Or,
        Op::Not,
        Op::In,
        Op::Includes,
        Op::StartsWith,
        Op::EndsWith,
        Op::Length,
        Op::IsEmpty,
        Op::Regex,
    ];

    /// The operator's name in the JSON AST.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::And => "and",
            Op::Or => "or",
            Op::Not => "not",
            Op::In => "in",
            Op::Includes => "includes",
            Op::StartsWith => "startsWith",
            Op::EndsWith => "endsWith",
            Op::Length => "length",
            Op::IsEmpty => "isEmpty",
            Op::Regex => "regex",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    pub fn arity(self) -> Arity {
        match self {
            Op::And | Op::Or => Arity::AtLeastOne,
            Op::Not | Op::Length | Op::IsEmpty => Arity::Exactly(1),
            _ => Arity::Exactly(2),
        }
    }
}

/// Parses the string of a custom edge's `when`. The error is a sentence for the API.
pub fn parse_when(source: &str) -> Result<Expr, String> {
    let len = utf16_len(source);
    if len > SOURCE_LEN_MAX {
        return Err(format!("expression is {len} characters long; the limit is {SOURCE_LEN_MAX}"));
    }
    let json: Value =
        serde_json::from_str(source).map_err(|e| format!("expression is not valid JSON ({e})"))?;
    parse_expr(&json, 1)
}

fn parse_expr(json: &Value, depth: usize) -> Result<Expr, String> {
    if depth > DEPTH_MAX {
        return Err(format!("expression is nested deeper than {DEPTH_MAX} levels"));
    }
    match json {
        Value::Object(obj) if obj.contains_key("var") => parse_var(obj),
        Value::Object(obj) if obj.contains_key("op") => parse_op(obj, depth),
        Value::Object(_) => Err("an object in an expression must be {\"var\": \"<path>\"} or \
             {\"op\": \"<name>\", \"args\": [...]}"
            .to_owned()),
        Value::Array(items) => parse_array_literal(items),
        scalar => Ok(Expr::Literal(scalar.clone())),
    }
}

/// Array literals exist for `in`; they hold scalars only, so nothing in them is ever
/// mistaken for an expression.
fn parse_array_literal(items: &[Value]) -> Result<Expr, String> {
    let all_scalars = items.iter().all(|v| !v.is_array() && !v.is_object());
    if !all_scalars {
        return Err("an array literal may hold only strings, numbers, booleans and null".to_owned());
    }
    Ok(Expr::Literal(Value::Array(items.to_vec())))
}

fn parse_var(obj: &Map<String, Value>) -> Result<Expr, String> {
    if obj.len() != 1 {
        return Err("a variable must be {\"var\": \"<path>\"} with no other keys".to_owned());
    }
    let Some(Value::String(path)) = obj.get("var") else {
        return Err("\"var\" must be a path string such as \"output.decision\"".to_owned());
    };
    check_var_path(path)?;
    Ok(Expr::Var(path.clone()))
}

fn check_var_path(path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!("variable {} has an empty path segment", quoted(path)));
    }
    match segments.as_slice() {
        ["output", ..] | ["execution", "input", ..] => Ok(()),
        ["step", field] if STEP_FIELDS.contains(field) => Ok(()),
        ["step", ..] => Err(format!(
            "unknown variable {}: a step variable is step.stepId, step.nodeId, step.status \
             or step.retryCount",
            quoted(path)
        )),
        _ => Err(format!(
            "unknown variable {}: a variable starts with output, step or execution.input",
            quoted(path)
        )),
    }
}

fn parse_op(obj: &Map<String, Value>, depth: usize) -> Result<Expr, String> {
    let Some(Value::String(name)) = obj.get("op") else {
        return Err("\"op\" must be an operator name such as \"eq\"".to_owned());
    };
    let op = Op::from_name(name).ok_or_else(|| format!("unknown operator {}", quoted(name)))?;
    if let Some(key) = obj.keys().find(|k| *k != "op" && *k != "args") {
        return Err(format!(
            "operator {} has an unknown key {}: an operator is {{\"op\": ..., \"args\": [...]}}",
            quoted(name),
            quoted(key)
        ));
    }
    let Some(Value::Array(raw_args)) = obj.get("args") else {
        return Err(format!("operator {} needs an \"args\" array", quoted(name)));
    };
    if !op.arity().admits(raw_args.len()) {
        return Err(format!(
            "operator {} takes {}, not {}",
            quoted(name),
            op.arity().describe(),
            raw_args.len()
        ));
    }

    let args =
        raw_args.iter().map(|arg| parse_expr(arg, depth + 1)).collect::<Result<Vec<_>, _>>()?;
    if op == Op::Regex {
        return regex_expr(args);
    }
    Ok(Expr::Op { op, args })
}

/// A `regex` with a literal pattern is compiled now, so that a bad pattern is refused at write
/// time and the engine never compiles it again.
fn regex_expr(mut args: Vec<Expr>) -> Result<Expr, String> {
    debug_assert_eq!(args.len(), 2, "arity is checked before");
    let pattern = args.pop();
    let subject = args.pop();
    match (subject, pattern) {
        (Some(subject), Some(Expr::Literal(Value::String(source)))) => {
            let pattern = Pattern(compile_literal_pattern(&source)?);
            Ok(Expr::Match { subject: Box::new(subject), pattern })
        }
        (_, Some(Expr::Literal(_))) => {
            Err("the pattern of \"regex\" (its second argument) must be a string".to_owned())
        }
        (subject, pattern) => {
            Ok(Expr::Op { op: Op::Regex, args: subject.into_iter().chain(pattern).collect() })
        }
    }
}

fn compile_literal_pattern(source: &str) -> Result<Regex, String> {
    if let Err(e) = regex_syntax::Parser::new().parse(source) {
        return Err(describe_syntax_error(source, &e));
    }
    build_regex(source).map_err(|e| {
        let reason = match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("it compiles to more than {limit} bytes")
            }
            other => other.to_string(),
        };
        format!("regex pattern {} does not compile: {reason}", quoted(source))
    })
}

fn describe_syntax_error(source: &str, error: &regex_syntax::Error) -> String {
    use regex_syntax::ast::ErrorKind;

    let reason = match error {
        regex_syntax::Error::Parse(e) => {
            let offset = e.span().start.offset;
            let named_backreference = source.get(offset..).is_some_and(|s| s.starts_with("\\k"));
            match e.kind() {
                ErrorKind::UnsupportedLookAround => {
                    return needs_backtracking(source, "look-around")
                }
                ErrorKind::UnsupportedBackreference => {
                    return needs_backtracking(source, "a back-reference")
                }
                ErrorKind::EscapeUnrecognized if named_backreference => {
                    return needs_backtracking(source, "a back-reference")
                }
                kind => kind.to_string(),
            }
        }
        regex_syntax::Error::Translate(e) => e.kind().to_string(),
        other => other.to_string(),
    };
    format!("regex pattern {} does not compile: {reason}", quoted(source))
}

fn needs_backtracking(source: &str, feature: &str) -> String {
    format!(
        "regex pattern {} uses {feature}, which needs a backtracking engine: Assent runs \
         regexes on a linear-time engine, which does not support it",
        quoted(source)
    )
}

fn build_regex(source: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT_BYTES)
        .dfa_size_limit(REGEX_SIZE_LIMIT_BYTES)
        .build()
}

/// A string as JSON writes it, for quoting user input in messages.
fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

impl Expr {
    /// The AST as JSON, as `compiled.forwardEdges[].when` shows it.
    pub fn to_json(&self) -> Value {
        match self {
            Expr::Literal(value) => value.clone(),
            Expr::Var(path) => serde_json::json!({ "var": path }),
            Expr::Op { op, args } => serde_json::json!({
                "op": op.name(),
                "args": args.iter().map(Expr::to_json).collect::<Vec<_>>(),
            }),
            Expr::Match { subject, pattern } => serde_json::json!({
                "op": Op::Regex.name(),
                "args": [subject.to_json(), pattern.as_str()],
            }),
        }
    }

    /// Whether the expression reads the variable `prefix` or anything below it
    /// (`reads_var("step.status")`).
    pub fn reads_var(&self, prefix: &str) -> bool {
        match self {
            Expr::Literal(_) => false,
            Expr::Var(path) => path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.')),
            Expr::Op { args, .. } => args.iter().any(|arg| arg.reads_var(prefix)),
            Expr::Match { subject, .. } => subject.reads_var(prefix),
        }
    }

    /// Evaluates against a context object with roots `output`, `step` and `execution`.
    /// Never fails: a missing path is null and a type mismatch is false (null for `length`).
    pub fn eval(&self, ctx: &Value) -> Value {
        self.eval_ref(ctx).into_owned()
    }

    fn eval_ref<'a>(&'a self, ctx: &'a Value) -> Cow<'a, Value> {
        match self {
            Expr::Literal(value) => Cow::Borrowed(value),
            Expr::Var(path) => lookup(ctx, path).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
            Expr::Op { op, args } => Cow::Owned(eval_op(*op, args, ctx)),
            Expr::Match { subject, pattern } => {
                let subject = subject.eval_ref(ctx);
                Cow::Owned(Value::Bool(subject.as_str().is_some_and(|s| pattern.is_match(s))))
            }
        }
    }
}

/// Follows a dot path; a numeric segment indexes an array, any segment keys an object.
pub fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |value, segment| match value {
        Value::Object(obj) => obj.get(segment),
        Value::Array(items) => array_index(segment).and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A canonical array index: digits, and no leading zero unless it is `0`.
fn array_index(segment: &str) -> Option<usize> {
    let canonical = segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    canonical.then(|| segment.parse().ok()).flatten()
}

fn eval_op(op: Op, args: &[Expr], ctx: &Value) -> Value {
    // Arity was checked at parse time; a missing argument (a hand-built Expr) reads as null.
    let arg = |i: usize| args.get(i).map_or(Cow::Owned(Value::Null), |a| a.eval_ref(ctx));
    let result = match op {
        Op::Eq => json_eq(&arg(0), &arg(1), 0),
        Op::Ne => !json_eq(&arg(0), &arg(1), 0),
        Op::Gt => compare(&arg(0), &arg(1)).is_some_and(Ordering::is_gt),
        Op::Gte => compare(&arg(0), &arg(1)).is_some_and(Ordering::is_ge),
        Op::Lt => compare(&arg(0), &arg(1)).is_some_and(Ordering::is_lt),
        Op::Lte => compare(&arg(0), &arg(1)).is_some_and(Ordering::is_le),
        Op::And => args.iter().all(|a| truthy(&a.eval_ref(ctx))),
        Op::Or => args.iter().any(|a| truthy(&a.eval_ref(ctx))),
        Op::Not => !truthy(&arg(0)),
        Op::In => is_member(&arg(0), &arg(1)),
        Op::Includes => includes(&arg(0), &arg(1)),
        Op::StartsWith => both_strings(&arg(0), &arg(1), |s, p| s.starts_with(p)),
        Op::EndsWith => both_strings(&arg(0), &arg(1), |s, p| s.ends_with(p)),
        Op::Length => return length(&arg(0)),
        Op::IsEmpty => is_empty(&arg(0)),
        Op::Regex => both_strings(&arg(0), &arg(1), runtime_regex_match),
    };
    Value::Bool(result)
}

/// Truthiness: false, null, 0 and "" are false; everything else is true.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Equality as `eq` judges it: JSON equality, with numbers compared by value (1 == 1.0).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    json_eq(a, b, 0)
}

/// JSON equality, with numbers compared by value (1 == 1.0) at every depth.
fn json_eq(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > EQUALITY_DEPTH_MAX {
        return false;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y, depth + 1))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs.iter().all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y, depth + 1)))
        }
        _ => a == b,
    }
}

/// Integers compare exactly; anything else as doubles.
fn compare_numbers(x: &Number, y: &Number) -> Option<Ordering> {
    let as_integer = |n: &Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    match (as_integer(x), as_integer(y)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

/// Two numbers, or two strings by Unicode code point (which is how `str` orders).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn is_member(needle: &Value, haystack: &Value) -> bool {
    match haystack {
        Value::Array(items) => items.iter().any(|item| json_eq(needle, item, 0)),
        _ => false,
    }
}

fn includes(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::Array(_), _) => is_member(needle, haystack),
        (Value::String(s), Value::String(part)) => s.contains(part.as_str()),
        _ => false,
    }
}

fn both_strings(a: &Value, b: &Value, test: impl Fn(&str, &str) -> bool) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => test(a, b),
        _ => false,
    }
}

fn length(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::from(utf16_len(s)),
        Value::Array(items) => Value::from(items.len()),
        Value::Object(obj) => Value::from(obj.len()),
        _ => Value::Null,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(obj) => obj.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A pattern read at run time: bounded in length and size, and false when it does not compile.
fn runtime_regex_match(subject: &str, pattern: &str) -> bool {
    pattern.len() <= RUNTIME_PATTERN_LEN_MAX
        && build_regex(pattern).is_ok_and(|re| re.is_match(subject))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "output": {
                "decision": "approve",
                "score": 0.9,
                "count": 3,
                "big": 9007199254740993u64,
                "tags": ["a", "b", 1],
                "body": "urgent: fix it",
                "empty": "",
                "none": null,
                "zero": 0,
                "no": false,
                "items": [{"id": "x"}, {"id": "y"}],
                "obj": {"k": 1, "j": [1, 2]},
                "emptyObj": {},
                "emptyArr": [],
                "emoji": "a😀",
                "pattern": "^urg",
                "badPattern": "(",
                "10": "ten",
            },
            "step": {"stepId": "step_a", "nodeId": "a", "status": "breached", "retryCount": 2},
            "execution": {"input": {"user": {"email": "ann@example.com"}}},
        })
    }

    fn eval(source: &str) -> Value {
        let expr = parse_when(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        expr.eval(&ctx())
    }

    fn op(name: &str, args: Value) -> String {
        json!({"op": name, "args": args}).to_string()
    }

    fn nested_nots(count: usize) -> String {
        (0..count).fold(json!(true), |inner, _| json!({"op": "not", "args": [inner]})).to_string()
    }

    #[test]
    fn operators_evaluate_per_the_table() {
        let var = |p: &str| json!({"var": p});
        let cases: Vec<(String, Value)> = vec![
            // eq / ne: JSON equality, numbers by value
            (op("eq", json!([var("output.decision"), "approve"])), json!(true)),
            (op("eq", json!([1, 1.0])), json!(true)),
            (op("eq", json!([var("output.count"), 3.0])), json!(true)),
            (op("eq", json!([var("output.big"), 9007199254740992u64])), json!(false)),
            (op("eq", json!(["1", 1])), json!(false)),
            (op("eq", json!([null, var("output.missing")])), json!(true)),
            (op("eq", json!([var("output.obj"), var("output.obj")])), json!(true)),
            (op("eq", json!([var("output.tags"), ["a", "b", 1.0]])), json!(true)),
            (op("eq", json!([var("output.tags"), ["b", "a", 1]])), json!(false)),
            (op("eq", json!([false, 0])), json!(false)),
            (op("ne", json!([var("output.decision"), "reject"])), json!(true)),
            (op("ne", json!([2, 2.0])), json!(false)),
            // comparisons: both numbers or both strings, else false
            (op("gt", json!([var("output.score"), 0.8])), json!(true)),
            (op("gt", json!([var("output.count"), 3])), json!(false)),
            (op("gte", json!([var("output.count"), 3])), json!(true)),
            (op("lt", json!([-1, 0.5])), json!(true)),
            (op("lte", json!([2.5, 2.5])), json!(true)),
            (op("gt", json!(["b", "a"])), json!(true)),
            (op("lt", json!(["Z", "a"])), json!(true)),
            (op("lt", json!(["\u{ffff}", "😀"])), json!(true)),
            (op("gt", json!(["10", 9])), json!(false)),
            (op("lte", json!(["10", 9])), json!(false)),
            (op("gt", json!([var("output.missing"), -1])), json!(false)),
            (op("gte", json!([null, null])), json!(false)),
            // and / or: truthiness, boolean results
            (op("and", json!([1, "x"])), json!(true)),
            (op("and", json!([1, 0])), json!(false)),
            (op("and", json!([true])), json!(true)),
            (op("or", json!([0, "", null, false])), json!(false)),
            (op("or", json!([0, [], false])), json!(true)),
            (op("or", json!(["x"])), json!(true)),
            // not
            (op("not", json!([var("output.none")])), json!(true)),
            (op("not", json!([var("output.obj")])), json!(false)),
            // in
            (op("in", json!([var("output.decision"), ["approve", "reject"]])), json!(true)),
            (op("in", json!([1, [1.0, 2]])), json!(true)),
            (op("in", json!(["x", ["a"]])), json!(false)),
            (op("in", json!(["a", "abc"])), json!(false)),
            (op("in", json!(["a", var("output.tags")])), json!(true)),
            // includes
            (op("includes", json!([var("output.tags"), "b"])), json!(true)),
            (op("includes", json!([var("output.tags"), 1.0])), json!(true)),
            (op("includes", json!([var("output.tags"), "z"])), json!(false)),
            (op("includes", json!([var("output.body"), "fix"])), json!(true)),
            (op("includes", json!([var("output.body"), ""])), json!(true)),
            (op("includes", json!([var("output.body"), 1])), json!(false)),
            (op("includes", json!([var("output.obj"), "k"])), json!(false)),
            (op("includes", json!([null, "a"])), json!(false)),
            // startsWith / endsWith
            (op("startsWith", json!([var("output.body"), "urgent"])), json!(true)),
            (op("startsWith", json!([var("output.body"), "fix"])), json!(false)),
            (op("endsWith", json!([var("output.body"), "it"])), json!(true)),
            (op("endsWith", json!([var("output.count"), "3"])), json!(false)),
            (op("startsWith", json!([var("output.tags"), "a"])), json!(false)),
            // length: UTF-16 units, items, keys; null otherwise
            (op("length", json!([var("output.emoji")])), json!(3)),
            (op("length", json!([var("output.tags")])), json!(3)),
            (op("length", json!([var("output.obj")])), json!(2)),
            (op("length", json!([""])), json!(0)),
            (op("length", json!([5])), json!(null)),
            (op("length", json!([var("output.missing")])), json!(null)),
            (op("length", json!([true])), json!(null)),
            // isEmpty
            (op("isEmpty", json!([null])), json!(true)),
            (op("isEmpty", json!([var("output.empty")])), json!(true)),
            (op("isEmpty", json!([var("output.emptyArr")])), json!(true)),
            (op("isEmpty", json!([var("output.emptyObj")])), json!(true)),
            (op("isEmpty", json!([var("output.missing")])), json!(true)),
            (op("isEmpty", json!([0])), json!(false)),
            (op("isEmpty", json!([false])), json!(false)),
            (op("isEmpty", json!([" "])), json!(false)),
            // regex: literal and computed patterns
            (op("regex", json!([var("output.body"), "^urgent"])), json!(true)),
            (op("regex", json!([var("output.body"), "^fix"])), json!(false)),
            (op("regex", json!([var("output.body"), "(?i)URGENT"])), json!(true)),
            (op("regex", json!([var("output.count"), "3"])), json!(false)),
            (op("regex", json!([var("output.missing"), ".*"])), json!(false)),
            (op("regex", json!([var("output.body"), var("output.pattern")])), json!(true)),
            (op("regex", json!([var("output.body"), var("output.badPattern")])), json!(false)),
            (op("regex", json!([var("output.body"), var("output.count")])), json!(false)),
        ];
        for (source, expected) in cases {
            assert_eq!(eval(&source), expected, "{source}");
        }
    }

    #[test]
    fn variables_follow_paths_and_missing_ones_are_null() {
        let cases = [
            ("output.decision", json!("approve")),
            ("output.items.1.id", json!("y")),
            ("output.items.2.id", json!(null)),
            ("output.items.01.id", json!(null)),
            ("output.items.-1", json!(null)),
            ("output.items.x", json!(null)),
            ("output.obj.j.0", json!(1)),
            ("output.10", json!("ten")),
            ("output.decision.length", json!(null)),
            ("output.missing.deeper", json!(null)),
            ("output", ctx()["output"].clone()),
            ("step.status", json!("breached")),
            ("step.retryCount", json!(2)),
            ("execution.input.user.email", json!("ann@example.com")),
            ("execution.input.nothing", json!(null)),
        ];
        for (path, expected) in cases {
            assert_eq!(eval(&json!({"var": path}).to_string()), expected, "{path}");
        }
        let missing_roots = Expr::Var("output.decision".into()).eval(&json!({}));
        assert_eq!(missing_roots, Value::Null);
        assert_eq!(Expr::Var("output.x".into()).eval(&json!(7)), Value::Null);
    }

    #[test]
    fn truthiness() {
        let falsy = [json!(false), json!(null), json!(0), json!(0.0), json!(-0.0), json!("")];
        let truthy_values =
            [json!(true), json!(1), json!(-0.5), json!("0"), json!("false"), json!([]), json!({})];
        for value in falsy {
            assert!(!truthy(&value), "{value}");
        }
        for value in truthy_values {
            assert!(truthy(&value), "{value}");
        }
    }

    #[test]
    fn hand_built_expressions_never_panic() {
        let bare_and = Expr::Op { op: Op::And, args: vec![Expr::Literal(json!(0))] };
        assert_eq!(bare_and.eval(&ctx()), json!(false));
        let broken = Expr::Op { op: Op::Eq, args: vec![] };
        assert_eq!(broken.eval(&ctx()), json!(true), "null == null");
        let broken_length = Expr::Op { op: Op::Length, args: vec![] };
        assert_eq!(broken_length.eval(&ctx()), json!(null));
    }

    #[test]
    fn literals_and_to_json_round_trip() {
        let sources = [
            r#"true"#,
            r#""text""#,
            r#"null"#,
            r#"1.5"#,
            r#"{"op":"in","args":[{"var":"output.decision"},["approve",1,null,true]]}"#,
            r#"{"op":"regex","args":[{"var":"output.body"},"^urgent"]}"#,
            r#"{"op":"regex","args":[{"var":"output.body"},{"var":"output.pattern"}]}"#,
            concat!(
                r#"{"op":"and","args":[{"op":"eq","args":[{"var":"output.decision"},"reject"]},"#,
                r#"{"op":"not","args":[{"var":"step.status"}]}]}"#
            ),
        ];
        for source in sources {
            let expr = parse_when(source).unwrap();
            let expected: Value = serde_json::from_str(source).unwrap();
            assert_eq!(expr.to_json(), expected, "{source}");
            assert_eq!(parse_when(&expr.to_json().to_string()).unwrap(), expr);
        }
    }

    #[test]
    fn literal_patterns_are_compiled_once() {
        let expr = parse_when(&op("regex", json!([{"var": "output.body"}, "^urgent"]))).unwrap();
        assert!(matches!(expr, Expr::Match { ref pattern, .. } if pattern.as_str() == "^urgent"));
        let computed = op("regex", json!([{"var": "output.body"}, {"var": "output.pattern"}]));
        assert!(matches!(parse_when(&computed).unwrap(), Expr::Op { op: Op::Regex, .. }));
    }

    #[test]
    fn runtime_patterns_are_bounded() {
        let long = "a".repeat(RUNTIME_PATTERN_LEN_MAX + 1);
        assert!(!runtime_regex_match(&long, &long));
        assert!(runtime_regex_match("aaa", &"a".repeat(3)));
        assert!(!runtime_regex_match("x", r"\w{1000}\w{1000}\w{1000}"), "too big to compile");
    }

    #[test]
    fn reads_var_matches_whole_segments() {
        let expr = parse_when(
            r#"{"op":"or","args":[{"op":"eq","args":[{"var":"step.status"},"breached"]},
                {"op":"regex","args":[{"var":"output.body"},"x"]}]}"#,
        )
        .unwrap();
        assert!(expr.reads_var("step.status"));
        assert!(expr.reads_var("step"));
        assert!(expr.reads_var("output.body"));
        assert!(!expr.reads_var("step.stat"));
        assert!(!expr.reads_var("output.bo"));
        assert!(!expr.reads_var("step.nodeId"));
        assert!(!parse_when("true").unwrap().reads_var("step.status"));
    }

    #[test]
    fn write_time_errors() {
        let deep = nested_nots(DEPTH_MAX);
        let too_long = format!("\"{}\"", "a".repeat(SOURCE_LEN_MAX - 1));
        let cases: Vec<(String, &str)> = vec![
            ("output.decision == 'approve'".into(), "expression is not valid JSON"),
            ("".into(), "expression is not valid JSON"),
            (too_long, "expression is 1001 characters long; the limit is 1000"),
            (op("foo", json!([1])), r#"unknown operator "foo""#),
            (op("EQ", json!([1, 1])), r#"unknown operator "EQ""#),
            (r#"{"op":1,"args":[]}"#.into(), r#""op" must be an operator name"#),
            (op("eq", json!([1])), r#"operator "eq" takes exactly 2 arguments, not 1"#),
            (op("eq", json!([1, 2, 3])), r#"operator "eq" takes exactly 2 arguments, not 3"#),
            (op("not", json!([])), r#"operator "not" takes exactly 1 argument, not 0"#),
            (op("and", json!([])), r#"operator "and" takes at least 1 argument, not 0"#),
            (op("length", json!([1, 2])), r#"operator "length" takes exactly 1 argument"#),
            (op("regex", json!(["a"])), r#"operator "regex" takes exactly 2 arguments"#),
            (r#"{"op":"eq"}"#.into(), r#"operator "eq" needs an "args" array"#),
            (r#"{"op":"eq","args":{}}"#.into(), r#"operator "eq" needs an "args" array"#),
            (r#"{"op":"eq","args":[1,1],"x":1}"#.into(), r#"has an unknown key "x""#),
            (r#"{"var":"output.a","op":"eq"}"#.into(), "no other keys"),
            (r#"{"var":1}"#.into(), r#""var" must be a path string"#),
            (r#"{"value":1}"#.into(), "an object in an expression must be"),
            (r#"{}"#.into(), "an object in an expression must be"),
            (r#"[1,{"var":"output.a"}]"#.into(), "an array literal may hold only"),
            (r#"[[1]]"#.into(), "an array literal may hold only"),
            (r#"{"var":"decision"}"#.into(), r#"unknown variable "decision": a variable starts"#),
            (r#"{"var":"execution.id"}"#.into(), r#"unknown variable "execution.id""#),
            (r#"{"var":"execution"}"#.into(), r#"unknown variable "execution""#),
            (r#"{"var":"input.x"}"#.into(), r#"unknown variable "input.x""#),
            (r#"{"var":"step.name"}"#.into(), "a step variable is step.stepId"),
            (r#"{"var":"step"}"#.into(), "a step variable is step.stepId"),
            (r#"{"var":"step.status.x"}"#.into(), "a step variable is step.stepId"),
            (r#"{"var":"output..a"}"#.into(), "has an empty path segment"),
            (r#"{"var":"output."}"#.into(), "has an empty path segment"),
            (r#"{"var":""}"#.into(), "has an empty path segment"),
            (deep, "expression is nested deeper than 32 levels"),
            (op("regex", json!([{"var": "output.body"}, "("])), r#"regex pattern "(" does not"#),
            (op("regex", json!([{"var": "output.body"}, r"\p{Nope}"])), "does not compile"),
            (op("regex", json!([{"var": "output.body"}, 1])), "must be a string"),
            (op("regex", json!([{"var": "output.body"}, null])), "must be a string"),
            (op("regex", json!(["x", "a(?=b)"])), "uses look-around, which needs a backtracking"),
            (op("regex", json!(["x", "(?<!a)b"])), "uses look-around"),
            (op("regex", json!(["x", r"(a)\1"])), "uses a back-reference"),
            (op("regex", json!(["x", r"(?<n>a)\k<n>"])), "uses a back-reference"),
            (op("regex", json!(["x", r"\w{1000}\w{1000}"])), "compiles to more than 1048576 bytes"),
            (op("not", json!([{"op": "foo", "args": []}])), r#"unknown operator "foo""#),
        ];
        for (source, expected) in cases {
            let error = parse_when(&source).expect_err(&source);
            assert!(error.contains(expected), "{source}: got {error:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let deep = nested_nots(DEPTH_MAX - 1);
        assert!(parse_when(&deep).is_ok(), "32 levels");
        let at_limit = format!("\"{}\"", "é".repeat(SOURCE_LEN_MAX - 2));
        assert!(parse_when(&at_limit).is_ok(), "1000 UTF-16 units, more bytes");
        let backtracking = "linear-time engine";
        let message = parse_when(&op("regex", json!(["x", "(?=a)"]))).unwrap_err();
        assert!(message.contains(backtracking), "{message}");
    }
}
