//! The `{{dot.path}}` templates of notification nodes. Substitution only: a token names a
//! value in a JSON context and is replaced by it; nothing is evaluated.
//!
//! A token is `{{`, a dot path (optionally padded with spaces), `}}`. A path that leads
//! nowhere, or to `null`, renders empty; strings render as they are; numbers and booleans as
//! JSON writes them; objects and arrays as compact JSON. Text between `{{` and `}}` that is
//! not a path (spaces inside, braces, an empty segment) is left as it was written.

use crate::expr::lookup;
use serde_json::Value;
use std::io;

/// How substituted values are escaped for where the text goes. The template's own text is
/// never escaped: it is the author's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Plain text (email text bodies, subjects).
    None,
    /// HTML email bodies: `& < > " '` become character references.
    Html,
    /// Slack message text: `& < >` become entities, so a value cannot mention or link.
    Slack,
    /// Slack Block Kit JSON: escaped as `Slack`, and inside a JSON string literal of the
    /// template, also escaped as string content, so that a value cannot break the JSON.
    SlackJson,
}

/// A rendered template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// The text reached `max_bytes` and was cut there (at a character boundary).
    pub truncated: bool,
}

/// Renders `template` against `ctx`, stopping at `max_bytes` bytes of output.
pub fn render(template: &str, ctx: &Value, escape: Escape, max_bytes: usize) -> Rendered {
    let mut out = Output { text: String::new(), max_bytes, truncated: false };
    let mut json = JsonScan::default();
    let mut rest = template;
    while !rest.is_empty() && !out.truncated {
        let Some(open) = rest.find("{{") else {
            out.literal(rest, &mut json);
            break;
        };
        out.literal(&rest[..open], &mut json);
        let after = &rest[open + 2..];
        match token_path(after) {
            Some((path, consumed)) => {
                out.value(lookup(ctx, path), escape, json.in_string);
                rest = &after[consumed..];
            }
            None => {
                // Not a token: the first brace is text, and scanning goes on after it.
                out.literal("{", &mut json);
                rest = &rest[open + 1..];
            }
        }
    }
    Rendered { text: out.text, truncated: out.truncated }
}

/// The dot path of a token whose `{{` has been read, and the bytes up to and including its
/// `}}`; `None` when what follows is not a token.
fn token_path(after_open: &str) -> Option<(&str, usize)> {
    let close = after_open.find("}}")?;
    let path = after_open[..close].trim_matches(' ');
    let well_formed = !path.is_empty()
        && path.split('.').all(|segment| {
            !segment.is_empty()
                && !segment.chars().any(|c| c.is_whitespace() || c == '{' || c == '}')
        });
    well_formed.then_some((path, close + 2))
}

/// Where the template's own text stands in JSON: inside a string literal or not.
#[derive(Default)]
struct JsonScan {
    in_string: bool,
    escaped: bool,
}

impl JsonScan {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            match (self.in_string, self.escaped, c) {
                (true, true, _) => self.escaped = false,
                (true, false, '\\') => self.escaped = true,
                (true, false, '"') => self.in_string = false,
                (false, _, '"') => self.in_string = true,
                _ => {}
            }
        }
    }
}

struct Output {
    text: String,
    max_bytes: usize,
    truncated: bool,
}

impl Output {
    fn literal(&mut self, text: &str, json: &mut JsonScan) {
        json.feed(text);
        self.push(text);
    }

    fn value(&mut self, value: Option<&Value>, escape: Escape, in_json_string: bool) {
        let room = self.max_bytes.saturating_sub(self.text.len());
        // A value cut at the room left already fills the output, escaped or not.
        let (raw, _) = plain_text(value, room.saturating_add(1));
        let escaped = match escape {
            Escape::None => raw,
            Escape::Html => html_escape(&raw),
            Escape::Slack => slack_escape(&raw),
            Escape::SlackJson if in_json_string => json_string_content(&slack_escape(&raw)),
            Escape::SlackJson => slack_escape(&raw),
        };
        self.push(&escaped);
    }

    fn push(&mut self, text: &str) {
        let room = self.max_bytes.saturating_sub(self.text.len());
        if text.len() <= room {
            self.text.push_str(text);
            return;
        }
        self.text.push_str(&text[..floor_char_boundary(text, room)]);
        self.truncated = true;
    }
}

/// A value as text: strings as they are, missing and `null` empty, anything else as compact
/// JSON. At most about `limit` bytes are produced; the flag says the value was cut.
fn plain_text(value: Option<&Value>, limit: usize) -> (String, bool) {
    match value {
        None | Some(Value::Null) => (String::new(), false),
        Some(Value::String(s)) if s.len() <= limit => (s.clone(), false),
        Some(Value::String(s)) => (s[..floor_char_boundary(s, limit)].to_owned(), true),
        Some(other) => {
            let mut writer = Bounded { bytes: Vec::new(), limit };
            let cut = serde_json::to_writer(&mut writer, other).is_err();
            (String::from_utf8_lossy(&writer.bytes).into_owned(), cut)
        }
    }
}

/// A writer that takes at most `limit` bytes and then refuses, so a large value is never
/// serialised in full.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.bytes.len();
        if room == 0 {
            return Err(io::Error::other("the rendered value reached its bound"));
        }
        let taken = buf.len().min(room);
        self.bytes.extend_from_slice(&buf[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Slack's three control characters, as its message formatting rules ask.
fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as it would appear between the quotes of a JSON string.
fn json_string_content(text: &str) -> String {
    let quoted = Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: usize = 64 * 1024;

    fn ctx() -> Value {
        json!({
            "input": {
                "title": "Q3 plan",
                "score": 0.75,
                "count": 3,
                "ok": true,
                "none": null,
                "tags": ["a", "b"],
                "owner": {"name": "Ada", "id": 7},
                "items": [{"name": "first"}, {"name": "second"}],
                "html": "<b>\"Tom\" & 'Jerry'</b>",
                "quote": "say \"hi\"\n\\ok",
                "mention": "<!channel> & <https://evil.example|click>",
                "long": "é".repeat(10),
            },
            "execution": {"executionId": "exec_1", "triggerContext": {"pr": {"number": 42}}},
            "step": {"stepId": "step_a", "retryCount": 0},
        })
    }

    fn text(template: &str, escape: Escape) -> String {
        let rendered = render(template, &ctx(), escape, MAX);
        assert!(!rendered.truncated, "{template}");
        rendered.text
    }

    #[test]
    fn substitution() {
        let cases = [
            ("plain text", "plain text"),
            ("{{input.title}}", "Q3 plan"),
            ("Review {{ input.title }} now", "Review Q3 plan now"),
            ("{{input.score}} {{input.count}} {{input.ok}}", "0.75 3 true"),
            ("[{{input.missing}}] [{{nothing.at.all}}] [{{input.none}}]", "[] [] []"),
            ("{{input.tags}}", r#"["a","b"]"#),
            ("{{input.owner}}", r#"{"name":"Ada","id":7}"#),
            ("{{input.items.1.name}} {{input.tags.0}}", "second a"),
            ("{{input.items.01.name}}|{{input.tags.9}}", "|"),
            ("{{input.title.length}}", ""),
            ("#{{execution.triggerContext.pr.number}} {{step.stepId}}", "#42 step_a"),
            ("{{step.retryCount}}", "0"),
            (
                "{{ input title }} {{}} {{ }} {{input..title}}",
                "{{ input title }} {{}} {{ }} {{input..title}}",
            ),
            ("{{{input.title}}}", "{Q3 plan}"),
            ("{{input.title}", "{{input.title}"),
            ("}} {{", "}} {{"),
            ("{{input.title}}{{input.count}}", "Q3 plan3"),
            ("{{input.html}}", "<b>\"Tom\" & 'Jerry'</b>"),
        ];
        for (template, expected) in cases {
            assert_eq!(text(template, Escape::None), expected, "{template}");
        }
    }

    #[test]
    fn no_code_runs() {
        let cases = [
            "{{input.count + 1}}",
            "{{input.title.toUpperCase()}}",
            "{{constructor.constructor('x')()}}",
            "{{#if input.ok}}yes{{/if}}",
            "${input.title}",
        ];
        let outputs: Vec<String> = cases.iter().map(|t| text(t, Escape::None)).collect();
        assert_eq!(
            outputs,
            vec!["{{input.count + 1}}", "", "", "{{#if input.ok}}yes", "${input.title}"]
        );
    }

    #[test]
    fn escaping_of_values_only() {
        let cases = [
            (
                Escape::Html,
                "<p>{{input.html}}</p>",
                "<p>&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;</p>",
            ),
            (
                Escape::Html,
                "{{input.owner}}",
                "{&quot;name&quot;:&quot;Ada&quot;,&quot;id&quot;:7}",
            ),
            (
                Escape::Slack,
                "<!here> {{input.mention}}",
                "<!here> &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;",
            ),
            (Escape::None, "{{input.mention}}", "<!channel> & <https://evil.example|click>"),
        ];
        for (escape, template, expected) in cases {
            assert_eq!(text(template, escape), expected, "{template}");
        }
    }

    #[test]
    fn slack_blocks_stay_json() {
        let template = concat!(
            r#"[{"type":"section","text":{"type":"mrkdwn","#,
            r#""text":"*{{input.quote}}* {{input.owner}} \"{{input.mention}}\""}},"#,
            r#"{"type":"context","elements":{{input.items}}}]"#,
        );
        let rendered = text(template, Escape::SlackJson);
        let blocks: Value = serde_json::from_str(&rendered).expect("valid JSON");
        assert_eq!(
            blocks[0]["text"]["text"],
            concat!(
                "*say \"hi\"\n\\ok* {\"name\":\"Ada\",\"id\":7} ",
                "\"&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;\""
            )
        );
        assert_eq!(blocks[1]["elements"], json!([{"name": "first"}, {"name": "second"}]));
    }

    #[test]
    fn output_is_bounded() {
        let cases = [
            ("abcdef", 4, "abcd"),
            ("ab{{input.title}}", 5, "abQ3 "),
            ("{{input.long}}", 5, "éé"),
            ("{{input.owner}}", 8, r#"{"name":"#),
            ("ééé", 3, "é"),
        ];
        for (template, max_bytes, expected) in cases {
            let rendered = render(template, &ctx(), Escape::None, max_bytes);
            assert_eq!(
                (rendered.text.as_str(), rendered.truncated),
                (expected, true),
                "{template}"
            );
        }
        let exact = render("abcd", &ctx(), Escape::None, 4);
        assert_eq!((exact.text.as_str(), exact.truncated), ("abcd", false));
    }

    #[test]
    fn a_huge_value_is_never_serialised_in_full() {
        let big: Vec<Value> = (0..200_000).map(|i| json!({"i": i})).collect();
        let ctx = json!({"input": {"big": big}});
        let template = "{{input.big}}".repeat(1000);
        let rendered = render(&template, &ctx, Escape::Html, 1000);
        assert_eq!(rendered.text.len(), 1000);
        assert!(rendered.truncated);
    }
}
